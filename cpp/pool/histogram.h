// A lock-free latency histogram: log-spaced buckets (8 per power of two,
// so about 9% resolution) from 1 microsecond to about 70 minutes, recorded
// with relaxed atomics so worker threads never contend on a lock for it.
#pragma once

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

namespace edgepipe {

class Histogram {
 public:
  static constexpr int kSubBuckets = 8;
  static constexpr int kOctaves = 32;
  static constexpr int kBuckets = kSubBuckets * kOctaves + 1;

  void Record(double micros) {
    counts_[Index(micros)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    // Sum in nanoseconds keeps integer atomics exact enough for a mean.
    sum_ns_.fetch_add(static_cast<uint64_t>(micros * 1000.0), std::memory_order_relaxed);
    uint64_t v = static_cast<uint64_t>(micros * 1000.0);
    uint64_t prev = max_ns_.load(std::memory_order_relaxed);
    while (v > prev && !max_ns_.compare_exchange_weak(prev, v, std::memory_order_relaxed)) {
    }
  }

  struct Snapshot {
    uint64_t count = 0;
    double mean_us = 0, max_us = 0;
    double p50_us = 0, p90_us = 0, p99_us = 0;
    std::vector<std::pair<double, uint64_t>> buckets;  // (upper bound us, count)
  };

  Snapshot Take() const {
    Snapshot s;
    std::array<uint64_t, kBuckets> c{};
    for (int i = 0; i < kBuckets; ++i) {
      c[i] = counts_[i].load(std::memory_order_relaxed);
      s.count += c[i];
    }
    if (s.count == 0) return s;
    s.mean_us = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1000.0 /
                static_cast<double>(count_.load(std::memory_order_relaxed));
    s.max_us = static_cast<double>(max_ns_.load(std::memory_order_relaxed)) / 1000.0;
    auto quantile = [&](double q) {
      const double target = q * static_cast<double>(s.count);
      uint64_t seen = 0;
      for (int i = 0; i < kBuckets; ++i) {
        seen += c[i];
        if (static_cast<double>(seen) >= target && c[i] > 0) {
          return std::min(UpperBound(i), s.max_us);
        }
      }
      return s.max_us;
    };
    s.p50_us = quantile(0.50);
    s.p90_us = quantile(0.90);
    s.p99_us = quantile(0.99);
    for (int i = 0; i < kBuckets; ++i) {
      if (c[i]) s.buckets.emplace_back(UpperBound(i), c[i]);
    }
    return s;
  }

  static double UpperBound(int index) {
    if (index == 0) return 1.0;
    return std::pow(2.0, static_cast<double>(index) / kSubBuckets);
  }

 private:
  static int Index(double micros) {
    if (!(micros > 1.0)) return 0;
    int i = static_cast<int>(std::ceil(std::log2(micros) * kSubBuckets));
    return i >= kBuckets ? kBuckets - 1 : i;
  }

  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

}  // namespace edgepipe
