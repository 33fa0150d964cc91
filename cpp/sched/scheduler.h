// The machine's budget, shared by pools: CPU threads and accelerator slots,
// handed out by priority, with aging so that low priorities are never starved
// and deadlines honoured before a run starts.
//
// Modelled on NVIDIA Triton's rate limiter: named resources with counts, and
// priorities that weight who is served next. A pool worker calls Acquire()
// with what its instance needs (its CPU threads, and one slot of its
// accelerator when it runs on one) before each run; the returned Grant gives
// the resources back when it is destroyed.
//
// Who is served next: among the waiters, the one with the highest effective
// priority, `priority + floor(waited / aging_step)`, first come first served
// on ties. The best waiter is served as soon as its whole demand is free; no
// lower waiter jumps ahead of it (no backfilling), so a large demand is not
// starved by small ones. Starvation bound: a waiter of priority p that has
// waited (q - p + 1) * aging_step outranks every newly arriving waiter of
// priority <= q, so it waits at most that long plus the runs already holding
// the resources.
//
// Ownership: shared (std::shared_ptr) by the pools that joined it; a Grant
// keeps its scheduler alive. Thread-safe.
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
    int cpu_threads = 1;                       // CPU threads runs may use at once
    std::map<std::string, int> accelerators;   // slots per accelerator name
    std::chrono::microseconds aging_step{50000};  // +1 priority per step waited
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
    std::map<int, uint64_t> granted_by_priority;
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
  };

  // Throws Error(kInput) for a budget below 1 thread or negative slots.
  static std::shared_ptr<Scheduler> Create(Options options);

  // Throws Error(kInput) when `demand` can never be met (more threads or an
  // accelerator slot than the budget has): a pool checks this when it joins.
  void CheckFits(const Demand& demand) const;

  // Waits until `demand` is granted. Returns an empty Grant when `start_by`
  // passes first (the run could no longer meet its deadline) or the
  // scheduler is closed. Clock::time_point::max() means no deadline.
  Grant Acquire(int priority, const Demand& demand, Clock::time_point start_by);

  // Grants `demand` only if it can be granted now without passing anyone:
  // it fits the free budget and no waiter's effective priority is >= `priority`
  // (a waiter wins ties: it came first). Never waits; an empty Grant otherwise
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
  };

  explicit Scheduler(Options options);
  bool Fits(const Demand& demand) const;           // under mutex_
  void Take(const Demand& demand);                 // under mutex_
  void Give(const Demand& demand);                 // locks mutex_
  void ServeLocked(Clock::time_point now);         // under mutex_
  int64_t Effective(const Waiter& w, Clock::time_point now) const;

  const Options options_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::list<Waiter> waiters_;
  int cpu_free_;
  std::map<std::string, int> accel_free_;
  uint64_t next_order_ = 0;
  bool closed_ = false;
  uint64_t granted_ = 0, expired_ = 0, aged_ = 0;
  std::map<int, uint64_t> granted_by_priority_;
};

}  // namespace edgepipe
