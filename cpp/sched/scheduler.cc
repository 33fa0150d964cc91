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
    other.scheduler_.reset();
  }
  return *this;
}

void Scheduler::Grant::Release() {
  if (scheduler_) {
    std::shared_ptr<Scheduler> s = std::move(scheduler_);
    scheduler_.reset();
    s->Give(demand_);
  }
}

std::shared_ptr<Scheduler> Scheduler::Create(Options options) {
  if (options.cpu_threads < 1) {
    throw Error(ErrorKind::kInput, "a scheduler needs a budget of at least 1 CPU thread, got " +
                                       std::to_string(options.cpu_threads));
  }
  for (const auto& [name, slots] : options.accelerators) {
    if (slots < 0) {
      throw Error(ErrorKind::kInput, "accelerator '" + name + "' has a negative slot count " +
                                         std::to_string(slots));
    }
  }
  if (options.aging_step.count() <= 0) {
    throw Error(ErrorKind::kInput, "the aging step must be positive");
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
    throw Error(ErrorKind::kInput, "the scheduler has no slot for accelerator '" +
                                       demand.accelerator + "'");
  }
}

bool Scheduler::Fits(const Demand& d) const {
  if (d.cpu_threads > cpu_free_) return false;
  auto it = accel_free_.find(d.accelerator);
  return d.accelerator.empty() || it == accel_free_.end() || it->second > 0;
}

void Scheduler::Take(const Demand& d) {
  cpu_free_ -= d.cpu_threads;
  auto it = accel_free_.find(d.accelerator);
  if (!d.accelerator.empty() && it != accel_free_.end()) --it->second;
}

void Scheduler::Give(const Demand& d) {
  std::lock_guard<std::mutex> lock(mutex_);
  cpu_free_ += d.cpu_threads;
  auto it = accel_free_.find(d.accelerator);
  if (!d.accelerator.empty() && it != accel_free_.end()) ++it->second;
  ServeLocked(Clock::now());
}

int64_t Scheduler::Effective(const Waiter& w, Clock::time_point now) const {
  auto waited = std::chrono::duration_cast<std::chrono::microseconds>(now - w.since);
  return static_cast<int64_t>(w.priority) + waited.count() / options_.aging_step.count();
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
    if (!best || !Fits(best->demand)) break;  // no backfilling past the best waiter
    Take(best->demand);
    best->granted = true;
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
  if (now >= start_by) {
    ++expired_;
    return {};
  }
  auto it = waiters_.insert(waiters_.end(), Waiter{priority, demand, now, next_order_++});
  ServeLocked(now);
  while (!it->granted && !closed_) {
    // Re-evaluate at least every aging step: effective priorities change with time.
    auto wake = std::min(start_by, Clock::now() + options_.aging_step);
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
  } else {
    ++expired_;
  }
  waiters_.erase(it);
  if (!grant) ServeLocked(Clock::now());  // our leaving may unblock the next best
  return grant;
}

Scheduler::Grant Scheduler::TryAcquire(int priority, const Demand& demand) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_ || !Fits(demand)) return {};
  const auto now = Clock::now();
  for (const Waiter& w : waiters_) {
    if (!w.granted && Effective(w, now) >= priority) return {};  // it is served first
  }
  Take(demand);
  ++granted_;
  ++granted_by_priority_[priority];
  Grant grant;
  grant.scheduler_ = shared_from_this();
  grant.demand_ = demand;
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
  s.granted_by_priority = granted_by_priority_;
  return s;
}

}  // namespace edgepipe
