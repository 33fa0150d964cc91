// Unit tests of dynamic batching's queue side (RequestQueue::PopBatch) and of
// the batch sizes a worker compiles (cpp/pool/batch.h): FIFO batches of at
// most max_batch, the wait for a partial batch to fill (cut short by a full
// batch or close, never by a timer this test relies on), cancel and expiry
// of requests while a worker collects, and the constructor's refusals.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "pool/batch.h"
#include "pool/request.h"
#include "pool/request_queue.h"

namespace edgepipe {
namespace {

using namespace std::chrono_literals;
using Batch = std::vector<std::shared_ptr<Request>>;

std::shared_ptr<Request> NewRequest() { return std::make_shared<Request>(); }

TEST(BatchSizes, PowersOfTwoThenTheMaximum) {
  EXPECT_EQ(BatchSizes(1), std::vector<size_t>{});
  EXPECT_EQ(BatchSizes(2), (std::vector<size_t>{2}));
  EXPECT_EQ(BatchSizes(3), (std::vector<size_t>{2, 3}));
  EXPECT_EQ(BatchSizes(6), (std::vector<size_t>{2, 4, 6}));
  EXPECT_EQ(BatchSizes(8), (std::vector<size_t>{2, 4, 8}));
  EXPECT_EQ(BatchSizes(9), (std::vector<size_t>{2, 4, 8, 9}));
  EXPECT_EQ(BatchSizes(kMaxBatch).back(), kMaxBatch);
}

TEST(BatchSizes, SmallestSizeThatHoldsK) {
  const auto sizes = BatchSizes(6);  // 2, 4, 6
  EXPECT_EQ(BatchSizeFor(sizes, 2), 0u);
  EXPECT_EQ(BatchSizeFor(sizes, 3), 1u);
  EXPECT_EQ(BatchSizeFor(sizes, 4), 1u);
  EXPECT_EQ(BatchSizeFor(sizes, 5), 2u);
  EXPECT_EQ(BatchSizeFor(sizes, 6), 2u);
  EXPECT_EQ(BatchSizeFor(sizes, 7), sizes.size());
}

TEST(PopBatch, TakesAtMostMaxBatchInSubmissionOrder) {
  RequestQueue q(16, QueuePolicy::kBlock, 3);
  Batch pushed;
  for (int i = 0; i < 5; ++i) {
    pushed.push_back(NewRequest());
    q.Push(pushed.back());
  }
  Batch got;
  ASSERT_EQ(q.PopBatch(false, &got), 3u);
  EXPECT_EQ(got, Batch(pushed.begin(), pushed.begin() + 3));
  ASSERT_EQ(q.PopBatch(false, &got), 2u);  // delay 0: what is queued
  EXPECT_EQ(got, Batch(pushed.begin() + 3, pushed.end()));
  EXPECT_EQ(q.size(), 0u);
}

TEST(PopBatch, WaitsForAPartialBatchToFill) {
  RequestQueue q(16, QueuePolicy::kBlock, 4, std::chrono::hours(1));
  q.Push(NewRequest());
  std::thread pusher([&] {
    std::this_thread::sleep_for(5ms);
    for (int i = 0; i < 5; ++i) q.Push(NewRequest());
  });
  Batch got;
  // Returns when the batch is full, long before the hour.
  EXPECT_EQ(q.PopBatch(false, &got), 4u);
  pusher.join();
  EXPECT_EQ(q.size(), 2u);
}

TEST(PopBatch, ClosingWithDrainReleasesAPartialBatch) {
  RequestQueue q(16, QueuePolicy::kBlock, 8, std::chrono::hours(1));
  auto a = NewRequest(), b = NewRequest();
  q.Push(a);
  q.Push(b);
  Batch got;
  std::thread worker([&] { q.PopBatch(false, &got); });
  std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(q.Close(true).empty());
  worker.join();
  EXPECT_EQ(got, (Batch{a, b}));
  EXPECT_EQ(q.PopBatch(false, &got), 0u);  // closed and empty
}

TEST(PopBatch, ClosingWithoutDrainGivesTheRequestsBack) {
  RequestQueue q(16, QueuePolicy::kBlock, 8, std::chrono::hours(1));
  q.Push(NewRequest());
  size_t taken = 99;
  Batch got;
  std::thread worker([&] { taken = q.PopBatch(false, &got); });
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(q.Close(false).size(), 1u);
  worker.join();
  EXPECT_EQ(taken, 0u);
  EXPECT_TRUE(got.empty());
}

TEST(PopBatch, RequestsStayCancellableWhileAWorkerCollects) {
  RequestQueue q(16, QueuePolicy::kBlock, 4, std::chrono::hours(1));
  q.WorkerFree();  // one idle worker
  auto a = NewRequest(), b = NewRequest(), c = NewRequest();
  q.Push(a);
  q.Push(b);
  Batch got;
  std::thread worker([&] { q.PopBatch(false, &got); });
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(q.Remove(b->id()), b);
  // The collecting worker still counts as free, for max_batch entries.
  EXPECT_EQ(q.ExpireIfWaiting(a->id()), RequestQueue::Expiry::kAboutToStart);
  q.Push(c);
  q.Close(true);
  worker.join();
  EXPECT_EQ(got, (Batch{a, c}));
  EXPECT_EQ(q.free_workers(), 0u);  // taken: the worker holds the batch
}

TEST(PopBatch, AFreeWorkerTakesMaxBatchEntriesWhenItWakes) {
  RequestQueue q(16, QueuePolicy::kBlock, 2);
  q.WorkerFree();
  Batch pushed;
  for (int i = 0; i < 3; ++i) {
    pushed.push_back(NewRequest());
    q.Push(pushed.back());
  }
  EXPECT_EQ(q.ExpireIfWaiting(pushed[1]->id()), RequestQueue::Expiry::kAboutToStart);
  EXPECT_EQ(q.ExpireIfWaiting(pushed[2]->id()), RequestQueue::Expiry::kRemoved);
}

TEST(PopBatch, WithoutBatchingItIsPop) {
  RequestQueue q(4, QueuePolicy::kBlock);
  q.Push(NewRequest());
  q.Push(NewRequest());
  Batch got;
  EXPECT_EQ(q.PopBatch(false, &got), 1u);
  EXPECT_EQ(q.PopBatch(false, &got), 1u);
}

TEST(PopBatch, RefusesBatchesTheQueueCannotHold) {
  EXPECT_THROW(RequestQueue(4, QueuePolicy::kBlock, 0), Error);
  EXPECT_THROW(RequestQueue(4, QueuePolicy::kBlock, 5), Error);
  RequestQueue fits(4, QueuePolicy::kBlock, 4);
  EXPECT_EQ(fits.max_batch(), 4u);
}

}  // namespace
}  // namespace edgepipe
