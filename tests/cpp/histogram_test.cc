// Unit tests of the pool's lock-free latency histogram (cpp/pool/histogram.h):
// bucket bounds, percentiles against a sorted reference, and concurrent records.
#include "pool/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

namespace edgepipe {
namespace {

TEST(Histogram, EmptySnapshotIsAllZero) {
  Histogram h;
  Histogram::Snapshot s = h.Take();
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.p50_us, 0.0);
  EXPECT_TRUE(s.buckets.empty());
}

TEST(Histogram, PercentilesAreWithinOneBucketOfTheExactValue) {
  Histogram h;
  std::vector<double> values;
  for (int i = 1; i <= 1000; ++i) values.push_back(10.0 + i * 1.7);
  for (double v : values) h.Record(v);
  std::sort(values.begin(), values.end());
  Histogram::Snapshot s = h.Take();
  ASSERT_EQ(s.count, values.size());
  const double step = std::pow(2.0, 1.0 / Histogram::kSubBuckets);  // one bucket's width
  auto exact = [&](double q) { return values[static_cast<size_t>(q * values.size()) - 1]; };
  for (auto [q, got] : {std::pair{0.50, s.p50_us}, {0.90, s.p90_us}, {0.99, s.p99_us}}) {
    EXPECT_GE(got, exact(q)) << "q=" << q;         // an upper bound of the bucket
    EXPECT_LE(got, exact(q) * step) << "q=" << q;  // ... at most one bucket above
  }
  EXPECT_NEAR(s.max_us, values.back(), 1e-3);
  double sum = 0;
  for (double v : values) sum += v;
  EXPECT_NEAR(s.mean_us, sum / values.size(), 1e-3);
}

TEST(Histogram, SubMicrosecondAndHugeValuesLandInTheEndBuckets) {
  Histogram h;
  h.Record(0.0);
  h.Record(0.5);
  h.Record(1e300);
  Histogram::Snapshot s = h.Take();
  ASSERT_EQ(s.count, 3u);
  ASSERT_GE(s.buckets.size(), 2u);
  EXPECT_EQ(s.buckets.front().first, 1.0);
  EXPECT_EQ(s.buckets.front().second, 2u);
  EXPECT_EQ(s.buckets.back().first, Histogram::UpperBound(Histogram::kBuckets - 1));
}

TEST(Histogram, ConcurrentRecordsAreAllCounted) {
  Histogram h;
  constexpr int kThreads = 4, kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.Record(1.0 + (i % 100) + t);
    });
  }
  for (auto& th : threads) th.join();
  Histogram::Snapshot s = h.Take();
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads * kPerThread));
  uint64_t in_buckets = 0;
  for (auto& b : s.buckets) in_buckets += b.second;
  EXPECT_EQ(in_buckets, s.count);
}

}  // namespace
}  // namespace edgepipe
