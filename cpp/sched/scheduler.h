// The machine's budget, shared by pools: CPU threads and accelerator slots,
// handed out by priority, with aging so that low priorities are never starved,
// headroom kept for active higher priorities, and deadlines honoured before a
// run starts.
//
// Modelled on NVIDIA Triton's rate limiter: named resources with counts, and
// priorities that weight who is served next. A pool worker calls Acquire()
// with what its instance needs (its CPU threads, and one slot of its
// accelerator when it runs on one) before each run; the returned Grant gives
// the resources back when it is destroyed. Runs are never pre-empted.
//
// The rule, in three parts:
//
// 1. Order. Among the waiters, the one with the highest effective priority,
//    `priority + floor(waited / aging_step)`, first come first served on ties,
//    is served next. No lower waiter jumps ahead of it (no backfilling), so a
//    large demand is not starved by small ones.
//
// 2. Reservation (headroom). Without pre-emption a high-priority request that
//    arrives while low-priority runs hold every thread waits for a whole low
//    run. So a priority class q is *active* for `reserve_window` after its last
//    Acquire(), and while it is, a waiter whose effective priority is below q
//    is granted only if it leaves q's CPU demand (the largest seen in its
//    active spell) free, counting threads already held by priorities >= q as
//    part of that headroom. The headroom is capped at `budget - the waiter's
//    own demand` so that a waiter can always run on an otherwise idle budget
//    (with a budget of one run, nothing is reserved).
//    Borrowing: a lower waiter may still use the headroom for a run that is
//    expected to end well before q's next request is expected: now + twice
//    the longest of the last 8 runs of the waiter's priority <= the earliest
//    time consistent with q's last 9 requests, the oldest of them + 9 x the
//    shortest gap between them (a request that came late does not push the
//    expected next one later). A periodic (camera-rate) class leaves its
//    headroom to lower priorities for most of each period; a bursty one
//    (short gaps) keeps it. Accelerator slots are not reserved.
//
// 3. Starvation bound. A waiter of priority p that has waited
//    (q - p) * aging_step is no longer held back by q's reservation, and after
//    (q - p + 1) * aging_step it outranks every newly arriving waiter of
//    priority <= q; so it waits at most (q_max - p + 1) * aging_step plus the
//    runs already holding the resources, q_max being the highest priority
//    competing with it.
//
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace edgepipe {

class Scheduler : public std::enable_shared_from_this<Scheduler> {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    int cpu_threads = 1;                          // CPU threads runs may use at once
    std::map<std::string, int> accelerators;      // slots per accelerator name
    std::chrono::microseconds aging_step{50000};  // +1 priority per step waited
    // How long a priority stays active (keeps its headroom) after its last
    // request; zero turns reservation off.
    std::chrono::microseconds reserve_window{1000000};
  };

  // What one run needs: CPU threads, and one slot of `accelerator` ("" or a
  // name the scheduler has no slots for: none).
  struct Demand {
    int cpu_threads = 1;
    std::string accelerator;
  };

  struct Stats {
    int cpu_threads = 0, cpu_threads_free = 0;
    std::map<std::string, std::pair<int, int>> accelerators;  // name -> (slots, free)
    size_t waiting = 0;
    uint64_t granted = 0, expired = 0, aged = 0;  // aged: served thanks to aging
    // borrowed: grants that used a higher priority's headroom (rule 2);
    // held_back: times the best waiter fit but was kept out of the headroom.
    uint64_t borrowed = 0, held_back = 0;
    std::map<int, uint64_t> granted_by_priority;
    std::map<int, int> reserved_by_priority;  // active priority -> CPU threads it keeps free
  };

  // Gives the resources of one Acquire() back when destroyed.
  class Grant {
   public:
    Grant() = default;
    Grant(Grant&& other) noexcept { *this = std::move(other); }
    Grant& operator=(Grant&& other) noexcept;
    ~Grant() { Release(); }
    explicit operator bool() const { return scheduler_ != nullptr; }
    void Release();

   private:
    friend class Scheduler;
    std::shared_ptr<Scheduler> scheduler_;
    Demand demand_;
    int priority_ = 0;
    Clock::time_point since_;
  };

  // Throws Error(kInput) for a budget below 1 thread, negative slots, a
  // non-positive aging step or a negative reserve window.
  static std::shared_ptr<Scheduler> Create(Options options);

  // Throws Error(kInput) when `demand` can never be met (more threads or an
  // accelerator slot than the budget has): a pool checks this when it joins.
  void CheckFits(const Demand& demand) const;

  // Waits until `demand` is granted. Returns an empty Grant when `start_by`
  // passes first (the run could no longer meet its deadline) or the
  // scheduler is closed. Clock::time_point::max() means no deadline.
  Grant Acquire(int priority, const Demand& demand, Clock::time_point start_by);

  // Grants `demand` only if it can be granted now without passing anyone:
  // it fits the free budget, no waiter's effective priority is >= `priority`
  // (a waiter wins ties: it came first), and it leaves an active higher
  // priority its headroom as a waiter would (rule 2; it counts as a request
  // of `priority` for that rule). Never waits; an empty Grant otherwise
  // (or when closed). For a pool's direct run on its caller's thread, which
  // falls back to the queue (and Acquire on a worker) when this says no.
  Grant TryAcquire(int priority, const Demand& demand);

  // Wakes every waiter with an empty Grant; later Acquire()s return at once.
  void Close();

  Stats GetStats() const;
  const Options& options() const { return options_; }

 private:
  struct Waiter {
    int priority;
    Demand demand;
    Clock::time_point since;
    uint64_t order;
    bool granted = false;
    bool held_back = false;  // counted once in held_back_
    Clock::time_point granted_at{};
  };

  // What the scheduler remembers of one priority class (rule 2).
  static constexpr size_t kHistory = 8;
  static constexpr int kBorrowSafety = 2;  // lent for runs of <= 1/2 the time left
  struct Class {
    Clock::time_point last_request{};
    bool seen = false;
    int cpu_demand = 0;                          // largest CPU demand in the current active spell
    int cpu_held = 0;                            // CPU threads its grants hold now
    Clock::time_point requests[kHistory + 1]{};  // the last 9, ring: 8 gaps
    size_t n_requests = 0;
    Clock::duration runs[kHistory]{};  // grant hold times, ring
    size_t n_runs = 0;
  };
  enum class Admit { kNo, kYes, kBorrow };

  explicit Scheduler(Options options);
  bool Fits(const Demand& demand) const;                                          // under mutex_
  void Take(int priority, const Demand& demand);                                  // under mutex_
  void Give(int priority, const Demand& demand, Clock::duration held);            // locks mutex_
  void NoteRequest(int priority, const Demand& demand, Clock::time_point now);    // under mutex_
  Admit Admits(const Waiter& w, int64_t effective, Clock::time_point now) const;  // under mutex_
  bool Active(const Class& c, Clock::time_point now) const;
  Clock::time_point NextLapse(Clock::time_point now) const;  // when an active class lapses
  // Earliest time the class's next request is expected; max() without a rhythm yet.
  static Clock::time_point NextExpected(const Class& c);
  void ServeLocked(Clock::time_point now);  // under mutex_
  int64_t Effective(const Waiter& w, Clock::time_point now) const;

  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::list<Waiter> waiters_;
  int cpu_free_;
  std::map<std::string, int> accel_free_;
  uint64_t next_order_ = 0;
  bool closed_ = false;
  uint64_t granted_ = 0, expired_ = 0, aged_ = 0, borrowed_ = 0, held_back_ = 0;
  std::map<int, uint64_t> granted_by_priority_;
  std::map<int, Class> classes_;  // by raw priority
};

}  // namespace edgepipe
