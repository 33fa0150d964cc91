#include "sched/scheduler.h"

#include <algorithm>
#include <utility>

#include "common/error.h"

namespace edgepipe {

Scheduler::Grant& Scheduler::Grant::operator=(Grant&& other) noexcept {
  if (this != &other) {
    Release();
    scheduler_ = std::move(other.scheduler_);
    demand_ = std::move(other.demand_);
    priority_ = other.priority_;
    since_ = other.since_;
    other.scheduler_.reset();
  }
  return *this;
}

void Scheduler::Grant::Release() {
  if (scheduler_) {
    std::shared_ptr<Scheduler> s = std::move(scheduler_);
    scheduler_.reset();
    s->Give(priority_, demand_, Clock::now() - since_);
  }
}

std::shared_ptr<Scheduler> Scheduler::Create(Options options) {
  if (options.cpu_threads < 1) {
    throw Error(ErrorKind::kInput, "a scheduler needs a budget of at least 1 CPU thread, got " +
                                       std::to_string(options.cpu_threads));
  }
  for (const auto& [name, slots] : options.accelerators) {
    if (slots < 0) {
      throw Error(ErrorKind::kInput,
                  "accelerator '" + name + "' has a negative slot count " + std::to_string(slots));
    }
  }
  if (options.aging_step.count() <= 0) {
    throw Error(ErrorKind::kInput, "the aging step must be positive");
  }
  if (options.reserve_window.count() < 0) {
    throw Error(ErrorKind::kInput, "the reserve window must be zero (off) or positive");
  }
  return std::shared_ptr<Scheduler>(new Scheduler(std::move(options)));
}

Scheduler::Scheduler(Options options)
    : options_(std::move(options)),
      cpu_free_(options_.cpu_threads),
      accel_free_(options_.accelerators) {}

void Scheduler::CheckFits(const Demand& demand) const {
  if (demand.cpu_threads < 0 || demand.cpu_threads > options_.cpu_threads) {
    throw Error(ErrorKind::kInput,
                "a run needs " + std::to_string(demand.cpu_threads) +
                    " CPU threads but the scheduler's budget is " +
                    std::to_string(options_.cpu_threads) +
                    "; use fewer threads per worker or a larger cpu_threads budget");
  }
  auto it = options_.accelerators.find(demand.accelerator);
  if (!demand.accelerator.empty() && it != options_.accelerators.end() && it->second < 1) {
    throw Error(ErrorKind::kInput,
                "the scheduler has no slot for accelerator '" + demand.accelerator + "'");
  }
}

bool Scheduler::Fits(const Demand& d) const {
  if (d.cpu_threads > cpu_free_) return false;
  auto it = accel_free_.find(d.accelerator);
  return d.accelerator.empty() || it == accel_free_.end() || it->second > 0;
}

void Scheduler::Take(int priority, const Demand& d) {
  cpu_free_ -= d.cpu_threads;
  classes_[priority].cpu_held += d.cpu_threads;
  auto it = accel_free_.find(d.accelerator);
  if (!d.accelerator.empty() && it != accel_free_.end()) --it->second;
}

void Scheduler::Give(int priority, const Demand& d, Clock::duration held) {
  std::lock_guard<std::mutex> lock(mutex_);
  cpu_free_ += d.cpu_threads;
  Class& c = classes_[priority];
  c.cpu_held -= d.cpu_threads;
  c.runs[c.n_runs++ % kHistory] = held;
  auto it = accel_free_.find(d.accelerator);
  if (!d.accelerator.empty() && it != accel_free_.end()) ++it->second;
  ServeLocked(Clock::now());
}

int64_t Scheduler::Effective(const Waiter& w, Clock::time_point now) const {
  auto waited = std::chrono::duration_cast<std::chrono::microseconds>(now - w.since);
  return static_cast<int64_t>(w.priority) + waited.count() / options_.aging_step.count();
}

bool Scheduler::Active(const Class& c, Clock::time_point now) const {
  return c.seen && options_.reserve_window.count() > 0 &&
         now - c.last_request <= options_.reserve_window;
}

Scheduler::Clock::time_point Scheduler::NextLapse(Clock::time_point now) const {
  auto next = Clock::time_point::max();
  for (const auto& [priority, c] : classes_) {
    if (Active(c, now)) next = std::min(next, c.last_request + options_.reserve_window);
  }
  return next == Clock::time_point::max() ? next : next + std::chrono::microseconds(1);
}

void Scheduler::NoteRequest(int priority, const Demand& d, Clock::time_point now) {
  Class& c = classes_[priority];
  if (!Active(c, now)) {  // a new active spell: forget the old one's demand and rhythm
    c.cpu_demand = 0;
    c.n_requests = 0;
  }
  c.requests[c.n_requests++ % (kHistory + 1)] = now;
  c.cpu_demand = std::max(c.cpu_demand, d.cpu_threads);
  c.last_request = now;
  c.seen = true;
}

Scheduler::Clock::time_point Scheduler::NextExpected(const Class& c) {
  constexpr size_t kRing = kHistory + 1;
  if (c.n_requests < kRing) return Clock::time_point::max();
  const Clock::time_point oldest = c.requests[c.n_requests % kRing];
  Clock::duration shortest = Clock::duration::max();
  for (size_t k = 1; k < kRing; ++k) {
    shortest = std::min(shortest, c.requests[(c.n_requests + k) % kRing] -
                                      c.requests[(c.n_requests + k - 1) % kRing]);
  }
  return oldest + static_cast<Clock::duration::rep>(kRing) * shortest;
}

Scheduler::Admit Scheduler::Admits(const Waiter& w, int64_t effective,
                                   Clock::time_point now) const {
  if (!Fits(w.demand)) return Admit::kNo;
  if (options_.reserve_window.count() <= 0) return Admit::kYes;
  const int left = cpu_free_ - w.demand.cpu_threads;            // free after this grant
  const int cap = options_.cpu_threads - w.demand.cpu_threads;  // never reserve it all
  // The longest recent run of the waiter's priority: how long it would hold.
  Clock::duration longest{};
  size_t runs = 0;
  if (auto own = classes_.find(w.priority); own != classes_.end()) {
    runs = std::min(own->second.n_runs, kHistory);
    for (size_t i = 0; i < runs; ++i) longest = std::max(longest, own->second.runs[i]);
  }
  bool borrow = false;
  int held_at_or_above = 0;
  for (auto it = classes_.rbegin(); it != classes_.rend() && it->first > effective; ++it) {
    const Class& c = it->second;
    held_at_or_above += c.cpu_held;
    if (!Active(c, now)) continue;
    const int need = std::min(cap, c.cpu_demand - held_at_or_above);
    if (need <= 0 || left >= need) continue;
    // It would eat q's headroom: only for a run expected to end before q's
    // next request is expected, and only once q has shown a rhythm. Twice the
    // longest recent run: a run slower than all of its last 8 (a chance of
    // about 1 in 9 for steady run times) must still not delay q's request.
    const Clock::time_point next = NextExpected(c);
    if (runs == 0 || next == Clock::time_point::max()) return Admit::kNo;
    if (now + kBorrowSafety * longest > next) return Admit::kNo;
    borrow = true;
  }
  return borrow ? Admit::kBorrow : Admit::kYes;
}

void Scheduler::ServeLocked(Clock::time_point now) {
  bool any = false;
  while (true) {
    Waiter* best = nullptr;
    int64_t best_eff = 0;
    int best_raw = 0;
    for (Waiter& w : waiters_) {
      if (w.granted) continue;
      int64_t eff = Effective(w, now);
      if (!best || eff > best_eff || (eff == best_eff && w.order < best->order)) {
        best = &w;
        best_eff = eff;
      }
      best_raw = std::max(best_raw, w.priority);
    }
    if (!best) break;
    const Admit admit = Admits(*best, best_eff, now);
    if (admit == Admit::kNo) {  // no backfilling past the best waiter
      if (!best->held_back && Fits(best->demand)) {
        best->held_back = true;
        ++held_back_;
      }
      break;
    }
    Take(best->priority, best->demand);
    if (admit == Admit::kBorrow) ++borrowed_;
    best->granted = true;
    best->granted_at = now;
    ++granted_;
    ++granted_by_priority_[best->priority];
    if (best->priority < best_raw) ++aged_;
    any = true;
  }
  if (any) changed_.notify_all();
}

Scheduler::Grant Scheduler::Acquire(int priority, const Demand& demand,
                                    Clock::time_point start_by) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (closed_) return {};
  auto now = Clock::now();
  NoteRequest(priority, demand, now);
  if (now >= start_by) {
    ++expired_;
    return {};
  }
  auto it = waiters_.insert(waiters_.end(), Waiter{priority, demand, now, next_order_++});
  ServeLocked(now);
  while (!it->granted && !closed_) {
    // Re-evaluate at least every aging step (effective priorities change with
    // time) and when a reservation lapses.
    auto wake = std::min({start_by, Clock::now() + options_.aging_step, NextLapse(now)});
    changed_.wait_until(lock, wake);
    now = Clock::now();
    if (it->granted || closed_) break;
    if (now >= start_by) break;
    ServeLocked(now);
  }
  Grant grant;
  if (it->granted) {
    grant.scheduler_ = shared_from_this();
    grant.demand_ = demand;
    grant.priority_ = priority;
    grant.since_ = it->granted_at;
  } else {
    ++expired_;
  }
  waiters_.erase(it);
  if (!grant) ServeLocked(Clock::now());  // our leaving may unblock the next best
  return grant;
}

Scheduler::Grant Scheduler::TryAcquire(int priority, const Demand& demand) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return {};
  const auto now = Clock::now();
  // A direct run is a request of its priority like any other: it keeps that
  // priority active, so lower ones leave it its headroom.
  NoteRequest(priority, demand, now);
  for (const Waiter& w : waiters_) {
    if (!w.granted && Effective(w, now) >= priority) return {};  // it is served first
  }
  // The same admission as a waiter at the head of the line: it must fit and
  // leave an active higher priority its headroom (or borrow it).
  const Waiter self{priority, demand, now, 0};
  const Admit admit = Admits(self, priority, now);
  if (admit == Admit::kNo) return {};
  Take(priority, demand);
  if (admit == Admit::kBorrow) ++borrowed_;
  ++granted_;
  ++granted_by_priority_[priority];
  Grant grant;
  grant.scheduler_ = shared_from_this();
  grant.demand_ = demand;
  grant.priority_ = priority;
  grant.since_ = now;
  return grant;
}

void Scheduler::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

Scheduler::Stats Scheduler::GetStats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Stats s;
  s.cpu_threads = options_.cpu_threads;
  s.cpu_threads_free = cpu_free_;
  for (const auto& [name, slots] : options_.accelerators) {
    s.accelerators[name] = {slots, accel_free_.at(name)};
  }
  for (const Waiter& w : waiters_) s.waiting += w.granted ? 0 : 1;
  s.granted = granted_;
  s.expired = expired_;
  s.aged = aged_;
  s.borrowed = borrowed_;
  s.held_back = held_back_;
  auto now = Clock::now();
  for (const auto& [priority, c] : classes_) {
    if (Active(c, now)) s.reserved_by_priority[priority] = c.cpu_demand;
  }
  s.granted_by_priority = granted_by_priority_;
  return s;
}

}  // namespace edgepipe
