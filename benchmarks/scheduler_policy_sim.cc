// The scheduler's policy alone, without the machine's noise: a camera-rate
// priority-10 client and a priority-0 flood share a Scheduler, and every "run"
// is a sleep, so the results depend on the scheduling rule, not on how busy
// the cores are. Prints one JSON object: the camera's wait for the budget
// (p50/p90/p99/max, and (wait + run) / run at p99 = its p99 over solo, since
// alone it never waits) and the flood's share of the capacity the camera
// leaves free, with the reservation rule on and off.
//
//   g++ -std=c++17 -O2 -Icpp benchmarks/scheduler_policy_sim.cc
//       cpp/sched/scheduler.cc cpp/common/error.cc -pthread -o /tmp/policy_sim
//   /tmp/policy_sim [budget=2] [camera_ms=1.5] [flood_ms=1.5] [jitter=0.2] [fps=30] [seconds=5]
//
// jitter: sigma of the lognormal factor on each flood run's length.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "sched/scheduler.h"

using edgepipe::Scheduler;
using namespace std::chrono;

namespace {

struct Args {
  int budget = 2;
  double camera_ms = 1.5, flood_ms = 1.5, jitter = 0.2, fps = 30, seconds = 5;
};

void Measure(const Args& a, int reserve_ms, bool last) {
  Scheduler::Options o;
  o.cpu_threads = a.budget;
  o.reserve_window = milliseconds(reserve_ms);
  auto s = Scheduler::Create(o);
  std::atomic<bool> stop{false};
  std::atomic<double> flood_busy_ms{0};
  std::vector<std::thread> flood;
  for (int i = 0; i < a.budget; ++i) {
    flood.emplace_back([&, i] {
      std::mt19937 rng(i);
      std::lognormal_distribution<double> factor(0, a.jitter);
      while (!stop) {
        auto g = s->Acquire(0, {1, ""}, Scheduler::Clock::time_point::max());
        double ms = a.flood_ms * factor(rng);
        std::this_thread::sleep_for(microseconds(static_cast<long>(ms * 1000)));
        flood_busy_ms = flood_busy_ms + ms;
      }
    });
  }
  std::vector<double> waits;
  const auto start = steady_clock::now();
  const auto period = duration<double>(1.0 / a.fps);
  for (int n = 0; steady_clock::now() - start < duration<double>(a.seconds); ++n) {
    std::this_thread::sleep_until(start + duration_cast<steady_clock::duration>(n * period));
    const auto t0 = steady_clock::now();
    auto g = s->Acquire(10, {1, ""}, Scheduler::Clock::time_point::max());
    waits.push_back(duration<double, std::milli>(steady_clock::now() - t0).count());
    std::this_thread::sleep_for(microseconds(static_cast<long>(a.camera_ms * 1000)));
  }
  const double elapsed_ms = duration<double, std::milli>(steady_clock::now() - start).count();
  stop = true;
  for (auto& t : flood) t.join();
  std::sort(waits.begin(), waits.end());
  auto pct = [&](double q) {
    return waits[std::min(waits.size() - 1, static_cast<size_t>(q * waits.size()))];
  };
  const double leftover = a.budget - a.camera_ms * a.fps / 1000.0;  // threads
  const auto st = s->GetStats();
  std::printf(
      "  \"%s\": {\"camera_wait_ms\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
      "\"max\": %.3f}, \"camera_p99_vs_solo\": %.3f, \"flood_share_of_leftover\": %.3f, "
      "\"borrowed\": %llu, \"held_back\": %llu}%s\n",
      reserve_ms ? "reserve" : "no_reserve", pct(.5), pct(.9), pct(.99), waits.back(),
      (pct(.99) + a.camera_ms) / a.camera_ms, flood_busy_ms / elapsed_ms / leftover,
      static_cast<unsigned long long>(st.borrowed), static_cast<unsigned long long>(st.held_back),
      last ? "" : ",");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  double* fields[] = {nullptr, &a.camera_ms, &a.flood_ms, &a.jitter, &a.fps, &a.seconds};
  if (argc > 1) a.budget = std::atoi(argv[1]);
  for (int i = 2; i < argc && i < 7; ++i) *fields[i - 1] = std::atof(argv[i]);
  std::printf(
      "{\"budget\": %d, \"camera_ms\": %.2f, \"flood_ms\": %.2f, \"jitter\": %.2f, "
      "\"fps\": %.1f,\n",
      a.budget, a.camera_ms, a.flood_ms, a.jitter, a.fps);
  Measure(a, 1000, false);
  Measure(a, 0, true);
  std::printf("}\n");
}
