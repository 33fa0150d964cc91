// Unit tests of the shared-hardware scheduler (cpp/sched/scheduler.h): budget,
// priority order, aging bound, deadlines, accelerator slots, close, stress,
// and the reservation rule (headroom for active higher priorities, borrowing,
// the cap, lapsing, aging past it).
#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"

namespace edgepipe {
namespace {

using Clock = Scheduler::Clock;
using std::chrono::milliseconds;
constexpr auto kNever = Clock::time_point::max();

std::shared_ptr<Scheduler> Make(int cpu, std::map<std::string, int> accel = {},
                                milliseconds aging = milliseconds(50),
                                milliseconds reserve = milliseconds(1000)) {
  Scheduler::Options o;
  o.cpu_threads = cpu;
  o.accelerators = std::move(accel);
  o.aging_step = aging;
  o.reserve_window = reserve;
  return Scheduler::Create(o);
}

constexpr auto kLong = milliseconds(60000);  // keeps aging or lapsing out of a test

// One request of `priority` that runs for no time: marks the class active.
void Touch(Scheduler& s, int priority, int threads = 1) {
  auto g = s.Acquire(priority, {threads, ""}, kNever);
  ASSERT_TRUE(g);
}

// Waits (bounded) until `n` waiters are queued.
void WaitForWaiters(Scheduler& s, size_t n) {
  auto until = Clock::now() + std::chrono::seconds(5);
  while (s.GetStats().waiting < n && Clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_EQ(s.GetStats().waiting, n);
}

TEST(Scheduler, RefusesBadBudgetsAndDemandsThatCanNeverFit) {
  Scheduler::Options o;
  o.cpu_threads = 0;
  EXPECT_THROW(Scheduler::Create(o), Error);
  o.cpu_threads = 1;
  o.reserve_window = milliseconds(-1);
  EXPECT_THROW(Scheduler::Create(o), Error);
  auto s = Make(2, {{"gpu", 0}});
  EXPECT_THROW(s->CheckFits({3, ""}), Error);
  EXPECT_THROW(s->CheckFits({1, "gpu"}), Error);
  EXPECT_NO_THROW(s->CheckFits({2, ""}));
  EXPECT_NO_THROW(s->CheckFits({1, "npu"}));  // no budget for npu: not arbitrated
}

TEST(Scheduler, GrantsUpToTheBudgetAndReleasesOnDestruction) {
  auto s = Make(2);
  auto a = s->Acquire(0, {1, ""}, kNever);
  auto b = s->Acquire(0, {1, ""}, kNever);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(s->GetStats().cpu_threads_free, 0);
  // A third run cannot start before its deadline while both are held.
  auto c = s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_FALSE(c);
  EXPECT_EQ(s->GetStats().expired, 1u);
  a.Release();
  EXPECT_EQ(s->GetStats().cpu_threads_free, 1);
  {
    auto d = s->Acquire(0, {1, ""}, kNever);
    EXPECT_TRUE(d);
  }
  EXPECT_EQ(s->GetStats().cpu_threads_free, 1);
}

TEST(Scheduler, HigherPriorityIsServedFirst) {
  auto s = Make(1, {}, milliseconds(10000));  // aging out of the picture
  auto hold = s->Acquire(0, {1, ""}, kNever);
  std::mutex m;
  std::vector<int> order;
  auto waiter = [&](int priority) {
    auto g = s->Acquire(priority, {1, ""}, kNever);
    std::lock_guard<std::mutex> lock(m);
    order.push_back(priority);
  };
  std::thread low(waiter, 1);
  WaitForWaiters(*s, 1);
  std::thread mid(waiter, 5);
  WaitForWaiters(*s, 2);
  std::thread high(waiter, 9);
  WaitForWaiters(*s, 3);
  hold.Release();
  low.join();
  mid.join();
  high.join();
  EXPECT_EQ(order, (std::vector<int>{9, 5, 1}));
}

TEST(Scheduler, AgingBoundsHowLongALowPriorityWaits) {
  // One thread; a flood of priority-10 runs of 2 ms each; one priority-0 run.
  // With a 5 ms aging step the low run outranks new arrivals after 55 ms.
  auto s = Make(1, {}, milliseconds(5));
  std::atomic<bool> stop{false};
  std::vector<std::thread> flood;
  for (int i = 0; i < 3; ++i) {
    flood.emplace_back([&] {
      while (!stop) {
        auto g = s->Acquire(10, {1, ""}, kNever);
        std::this_thread::sleep_for(milliseconds(2));
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(20));
  auto start = Clock::now();
  auto g = s->Acquire(0, {1, ""}, start + std::chrono::seconds(5));
  auto waited = Clock::now() - start;
  stop = true;
  g.Release();
  for (auto& t : flood) t.join();
  EXPECT_FALSE(g);  // released above; it had been granted, not expired:
  EXPECT_EQ(s->GetStats().expired, 0u);
  // Without aging the flood would starve it until its 5 s deadline. The bound
  // is (10 - 0 + 1) steps of 5 ms plus the run in progress; the slack is for
  // a loaded machine under sanitizers.
  EXPECT_LT(waited, milliseconds(1000));
  EXPECT_GE(s->GetStats().aged, 1u);
}

// TryAcquire is the check of a pool's direct run (Pool::TryRunDirect): it
// takes what fits now unless a waiter would be served before it.
TEST(Scheduler, TryAcquireTakesWhatFitsWhenNobodyWaits) {
  auto s = Make(2);
  auto a = s->TryAcquire(0, {1, ""});
  ASSERT_TRUE(a);
  EXPECT_EQ(s->GetStats().cpu_threads_free, 1);
  EXPECT_FALSE(s->TryAcquire(0, {2, ""}));  // does not fit: never waits
  auto b = s->TryAcquire(3, {1, ""});
  ASSERT_TRUE(b);
  EXPECT_FALSE(s->TryAcquire(9, {1, ""}));  // budget spent
  a.Release();
  b.Release();
  EXPECT_EQ(s->GetStats().cpu_threads_free, 2);
  EXPECT_EQ(s->GetStats().granted, 2u);
  EXPECT_EQ(s->GetStats().granted_by_priority.at(3), 1u);
  EXPECT_EQ(s->GetStats().expired, 0u);  // a refusal is not an expiry
}

TEST(Scheduler, TryAcquireNeverPassesAWaiterOfEqualOrHigherPriority) {
  auto s = Make(2, {}, milliseconds(10000));  // aging out of the picture
  auto hold = s->Acquire(0, {1, ""}, kNever);
  // A priority-5 waiter for 2 threads: one is free, which fits a 1-thread
  // run, but no lower or equal priority may take it first (no backfilling).
  std::thread waiter([&] { auto g = s->Acquire(5, {2, ""}, kNever); });
  WaitForWaiters(*s, 1);
  EXPECT_FALSE(s->TryAcquire(0, {1, ""}));
  EXPECT_FALSE(s->TryAcquire(5, {1, ""}));  // ties go to who came first
  {
    auto higher = s->TryAcquire(6, {1, ""});  // outranks the waiter
    EXPECT_TRUE(higher);
  }
  hold.Release();
  waiter.join();
  EXPECT_EQ(s->GetStats().waiting, 0u);
  EXPECT_EQ(s->GetStats().cpu_threads_free, 2);
}

TEST(Scheduler, TryAcquireOnAClosedSchedulerIsEmpty) {
  auto s = Make(1);
  s->Close();
  EXPECT_FALSE(s->TryAcquire(0, {1, ""}));
}

TEST(SchedulerReservation, LowerPrioritiesLeaveAnActivePrioritysThreadsFree) {
  auto s = Make(2, {}, kLong, kLong);
  Touch(*s, 10);  // priority 10 is now active and needs 1 thread
  EXPECT_EQ(s->GetStats().reserved_by_priority.at(10), 1);
  auto low1 = s->Acquire(0, {1, ""}, kNever);
  ASSERT_TRUE(low1);  // one of two threads: the other stays free
  // The second low run would take priority 10's headroom: it waits (here
  // until its deadline, as nothing changes).
  EXPECT_FALSE(s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20)));
  auto st = s->GetStats();
  EXPECT_EQ(st.held_back, 1u);
  EXPECT_EQ(st.expired, 1u);
  // ...so that a priority-10 request starts at once, without waiting for a low run.
  auto high = s->Acquire(10, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_TRUE(high);
  EXPECT_EQ(s->GetStats().cpu_threads_free, 0);
}

TEST(SchedulerReservation, ThreadsHeldByTheHigherPriorityCountAsItsHeadroom) {
  auto s = Make(3, {}, kLong, kLong);
  auto high = s->Acquire(10, {1, ""}, kNever);
  ASSERT_TRUE(high);
  auto low1 = s->Acquire(0, {1, ""}, kNever);
  auto low2 = s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_TRUE(low1 && low2);  // priority 10 holds its thread: nothing else to keep
  EXPECT_EQ(s->GetStats().held_back, 0u);
  high.Release();
  low2.Release();
  // Two threads free: one more low run, and the last is priority 10's headroom again.
  auto low3 = s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_TRUE(low3);
  EXPECT_FALSE(s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20)));
}

TEST(SchedulerReservation, OffWhenTheWindowIsZero) {
  auto s = Make(2, {}, kLong, milliseconds(0));
  Touch(*s, 10);
  auto low1 = s->Acquire(0, {1, ""}, kNever);
  auto low2 = s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_TRUE(low1 && low2);
  EXPECT_TRUE(s->GetStats().reserved_by_priority.empty());
}

TEST(SchedulerReservation, NeverReservesTheWholeBudget) {
  // Budget of one run: a lower priority may still run on the idle budget.
  auto s = Make(1, {}, kLong, kLong);
  Touch(*s, 10);
  EXPECT_TRUE(s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20)));
  // A low run needing the whole budget starts when it is all free.
  auto s2 = Make(2, {}, kLong, kLong);
  Touch(*s2, 10);
  EXPECT_TRUE(s2->Acquire(0, {2, ""}, Clock::now() + milliseconds(20)));
  EXPECT_EQ(s2->GetStats().held_back, 0u);
}

TEST(SchedulerReservation, EqualAndLowerPrioritiesAreNotReservedFor) {
  auto s = Make(2, {}, kLong, kLong);
  Touch(*s, 0);
  Touch(*s, 5);
  auto a = s->Acquire(5, {1, ""}, kNever);
  auto b = s->Acquire(5, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_TRUE(a && b);
}

TEST(SchedulerReservation, LapsesWhenThePriorityGoesQuiet) {
  auto s = Make(2, {}, kLong, milliseconds(30));
  Touch(*s, 10);
  auto low1 = s->Acquire(0, {1, ""}, kNever);
  ASSERT_TRUE(low1);
  // Held back first, granted once priority 10 has been quiet for 30 ms (the
  // waiter wakes for the lapse itself: the aging step here is a minute).
  auto low2 = s->Acquire(0, {1, ""}, Clock::now() + std::chrono::seconds(30));
  EXPECT_TRUE(low2);
  EXPECT_EQ(s->GetStats().held_back, 1u);
  EXPECT_FALSE(s->GetStats().reserved_by_priority.count(10));
}

TEST(SchedulerReservation, AgingLiftsTheReservationWithinTheBound) {
  // Priority 2 vs 0 with a 10 ms aging step: after (2 - 0) steps the waiter
  // is no longer held back, although priority 2 stays active.
  auto s = Make(2, {}, milliseconds(10), kLong);
  Touch(*s, 2);
  auto low1 = s->Acquire(0, {1, ""}, kNever);
  ASSERT_TRUE(low1);
  auto start = Clock::now();
  auto low2 = s->Acquire(0, {1, ""}, start + std::chrono::seconds(30));
  EXPECT_TRUE(low2);
  EXPECT_GE(Clock::now() - start, milliseconds(20));
  EXPECT_EQ(s->GetStats().held_back, 1u);
}

TEST(SchedulerReservation, LendsTheHeadroomToRunsThatEndBeforeTheNextPeriodicRequest) {
  auto s = Make(2, {}, kLong, kLong);
  {
    auto g = s->Acquire(-1, {1, ""}, kNever);  // priority -1's runs take >= 300 ms
    std::this_thread::sleep_for(milliseconds(300));
  }
  // Priority 10 asks every >= 100 ms: nine requests, eight gaps, a rhythm.
  for (int i = 0; i < 9; ++i) {
    if (i) std::this_thread::sleep_for(milliseconds(100));
    Touch(*s, 10);
  }
  Touch(*s, 0);  // priority 0's runs take ~0 ms
  auto low1 = s->Acquire(0, {1, ""}, kNever);
  ASSERT_TRUE(low1);
  // Right after a priority-10 request its next is >= 100 ms away: lent.
  auto low2 = s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_TRUE(low2);
  EXPECT_EQ(s->GetStats().borrowed, 1u);
  low2.Release();
  // A run of priority -1 takes 300 ms, longer than the period: not lent.
  EXPECT_FALSE(s->Acquire(-1, {1, ""}, Clock::now() + milliseconds(20)));
  EXPECT_EQ(s->GetStats().borrowed, 1u);
}

TEST(SchedulerReservation, BurstyPrioritiesKeepTheirHeadroom) {
  auto s = Make(2, {}, kLong, kLong);
  for (int i = 0; i < 9; ++i) Touch(*s, 10);  // back-to-back: shortest gap ~0
  {
    auto g = s->Acquire(0, {1, ""}, kNever);  // priority 0's runs take >= 5 ms
    std::this_thread::sleep_for(milliseconds(5));
  }
  auto low1 = s->Acquire(0, {1, ""}, kNever);
  ASSERT_TRUE(low1);
  EXPECT_FALSE(s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20)));
  EXPECT_EQ(s->GetStats().borrowed, 0u);
}

TEST(Scheduler, AcceleratorSlotsSerialiseTheirUsersOnly) {
  auto s = Make(4, {{"gpu", 1}});
  auto g1 = s->Acquire(0, {1, "gpu"}, kNever);
  ASSERT_TRUE(g1);
  EXPECT_FALSE(s->Acquire(0, {1, "gpu"}, Clock::now() + milliseconds(20)));
  auto cpu = s->Acquire(0, {1, ""}, Clock::now() + milliseconds(20));
  EXPECT_TRUE(cpu);  // a CPU-only run is not held up by the busy GPU slot
  g1.Release();
  EXPECT_TRUE(s->Acquire(0, {1, "gpu"}, Clock::now() + milliseconds(20)));
}

TEST(Scheduler, CloseWakesEveryWaiterEmptyHanded) {
  auto s = Make(1);
  auto hold = s->Acquire(0, {1, ""}, kNever);
  std::atomic<int> empty{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&] {
      if (!s->Acquire(0, {1, ""}, kNever)) ++empty;
    });
  }
  WaitForWaiters(*s, 3);
  s->Close();
  for (auto& t : ts) t.join();
  EXPECT_EQ(empty.load(), 3);
  EXPECT_FALSE(s->Acquire(0, {1, ""}, kNever));
}

TEST(Scheduler, NeverOversubscribesUnderStress) {
  auto s = Make(3, {{"gpu", 1}}, milliseconds(1));
  std::atomic<int> cpu_in_use{0}, gpu_in_use{0}, max_cpu{0}, max_gpu{0};
  std::atomic<uint64_t> runs{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        Scheduler::Demand d{1 + (t % 2), (t % 3 == 0) ? "gpu" : ""};
        auto g = s->Acquire(t % 4, d, kNever);
        ASSERT_TRUE(g);
        int c = cpu_in_use += d.cpu_threads;
        int gp = gpu_in_use += d.accelerator.empty() ? 0 : 1;
        max_cpu = std::max(max_cpu.load(), c);
        max_gpu = std::max(max_gpu.load(), gp);
        std::this_thread::yield();
        cpu_in_use -= d.cpu_threads;
        gpu_in_use -= d.accelerator.empty() ? 0 : 1;
        ++runs;
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(runs.load(), 8u * 300u);
  EXPECT_LE(max_cpu.load(), 3);
  EXPECT_LE(max_gpu.load(), 1);
  auto st = s->GetStats();
  EXPECT_EQ(st.granted, 8u * 300u);
  EXPECT_EQ(st.cpu_threads_free, 3);
  EXPECT_EQ(st.waiting, 0u);
}

// A pool's direct run (TryAcquire) obeys the reservation like a waiter.
TEST(SchedulerReservation, TryAcquireLeavesAnActivePrioritysThreadsFree) {
  auto s = Make(2, {}, kLong, kLong);
  Touch(*s, 10);  // priority 10 is active and needs 1 thread
  auto low = s->TryAcquire(0, {1, ""});
  ASSERT_TRUE(low);
  EXPECT_FALSE(s->TryAcquire(0, {1, ""}));  // the last thread is priority 10's
  EXPECT_TRUE(s->TryAcquire(10, {1, ""}));
  low.Release();
  EXPECT_EQ(s->GetStats().cpu_threads_free, 2);
}

}  // namespace
}  // namespace edgepipe
