// Unit tests of the pool's request queue and requests (cpp/pool/request*.h)
// and of the bounded stop of its delivery thread (cpp/pool/delivery.h):
// FIFO order, the block / reject / keep_latest policies, time limits that
// never overflow, deadlines, removal (cancel, expiry) and close.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "pool/delivery.h"
#include "pool/request.h"
#include "pool/request_queue.h"

namespace edgepipe {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<Request> NewRequest(Clock::duration limit = Clock::duration::max()) {
  auto r = std::make_shared<Request>();
  r->wait_limit = limit;
  return r;
}

ErrorKind KindOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no edgepipe::Error thrown";
  return ErrorKind::kInternal;
}

TEST(RequestQueue, PopsInSubmissionOrderWithIncreasingIds) {
  RequestQueue q(8, QueuePolicy::kBlock);
  std::vector<std::shared_ptr<Request>> pushed;
  for (int i = 0; i < 5; ++i) {
    pushed.push_back(NewRequest());
    EXPECT_EQ(q.Push(pushed.back()), nullptr);
  }
  EXPECT_EQ(q.size(), 5u);
  for (size_t i = 0; i < pushed.size(); ++i) {
    auto got = q.Pop(false);
    ASSERT_EQ(got, pushed[i]);
    if (i > 0) EXPECT_GT(got->id(), pushed[i - 1]->id());
  }
  EXPECT_EQ(q.size(), 0u);
}

TEST(RequestQueue, RejectPolicyRefusesWhenFull) {
  RequestQueue q(2, QueuePolicy::kReject);
  q.Push(NewRequest());
  q.Push(NewRequest());
  EXPECT_EQ(KindOf([&] { q.Push(NewRequest()); }), ErrorKind::kQueueFull);
  EXPECT_EQ(q.size(), 2u);
}

TEST(RequestQueue, KeepLatestDropsTheOldest) {
  RequestQueue q(2, QueuePolicy::kKeepLatest);
  auto a = NewRequest(), b = NewRequest(), c = NewRequest();
  q.Push(a);
  q.Push(b);
  EXPECT_EQ(q.Push(c), a);
  EXPECT_EQ(q.Pop(false), b);
  EXPECT_EQ(q.Pop(false), c);
}

TEST(RequestQueue, BlockPolicyTimesOutWithQueueFull) {
  RequestQueue q(1, QueuePolicy::kBlock);
  q.Push(NewRequest());
  const auto start = Clock::now();
  EXPECT_EQ(KindOf([&] { q.Push(NewRequest(), 0.05); }), ErrorKind::kQueueFull);
  EXPECT_GE(Clock::now() - start, 40ms);
}

TEST(RequestQueue, BlockPolicyWaitsForRoomWithInfiniteAndHugeTimeouts) {
  for (double timeout : {-1.0, std::numeric_limits<double>::infinity(), 1e300, 1e10}) {
    RequestQueue q(1, QueuePolicy::kBlock);
    auto first = NewRequest(), second = NewRequest();
    q.Push(first);
    std::thread popper([&] {
      std::this_thread::sleep_for(30ms);
      EXPECT_EQ(q.Pop(false), first);
    });
    EXPECT_EQ(q.Push(second, timeout), nullptr) << timeout;  // waited, no instant expiry
    popper.join();
    EXPECT_EQ(q.Pop(false), second);
  }
}

TEST(RequestQueue, NanBlockTimeoutIsAnInputError) {
  RequestQueue q(1, QueuePolicy::kBlock);
  EXPECT_EQ(KindOf([&] { q.Push(NewRequest(), std::nan("")); }), ErrorKind::kInput);
}

TEST(RequestQueue, CloseWakesABlockedPusherWithClosed) {
  RequestQueue q(1, QueuePolicy::kBlock);
  q.Push(NewRequest());
  std::thread closer([&] {
    std::this_thread::sleep_for(30ms);
    q.Close(true);
  });
  EXPECT_EQ(KindOf([&] { q.Push(NewRequest()); }), ErrorKind::kClosed);
  closer.join();
  EXPECT_EQ(KindOf([&] { q.Push(NewRequest()); }), ErrorKind::kClosed);
}

TEST(RequestQueue, CloseWithDrainKeepsQueuedRequestsForTheWorkers) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto a = NewRequest(), b = NewRequest();
  q.Push(a);
  q.Push(b);
  EXPECT_TRUE(q.Close(true).empty());
  EXPECT_TRUE(q.closed());
  EXPECT_EQ(q.Pop(false), a);
  EXPECT_EQ(q.Pop(false), b);
  EXPECT_EQ(q.Pop(false), nullptr);
}

TEST(RequestQueue, CloseWithoutDrainHandsBackEveryQueuedRequest) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto a = NewRequest(), b = NewRequest();
  q.Push(a);
  q.Push(b);
  auto removed = q.Close(false);
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0], a);
  EXPECT_EQ(removed[1], b);
  EXPECT_EQ(q.Pop(false), nullptr);
}

TEST(RequestQueue, CloseWakesAnIdleWorker) {
  RequestQueue q(4, QueuePolicy::kBlock);
  std::thread worker([&] { EXPECT_EQ(q.Pop(true), nullptr); });
  std::this_thread::sleep_for(20ms);  // asleep in Pop by now (or not yet: either way)
  q.Close(true);
  worker.join();
}

TEST(RequestQueue, RemoveTakesOutOnlyAQueuedRequest) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto a = NewRequest(), b = NewRequest(), c = NewRequest();
  q.Push(a);
  q.Push(b);
  q.Push(c);
  EXPECT_EQ(q.Remove(b->id()), b);
  EXPECT_EQ(q.Remove(b->id()), nullptr);  // already removed
  EXPECT_EQ(q.Pop(false), a);
  EXPECT_EQ(q.Remove(a->id()), nullptr);  // a worker has it
  EXPECT_EQ(q.Remove(12345), nullptr);    // never queued
  EXPECT_EQ(q.Pop(false), c);
}

TEST(RequestQueue, RemoveMakesRoomForABlockedPusher) {
  RequestQueue q(1, QueuePolicy::kBlock);
  auto a = NewRequest(), b = NewRequest();
  q.Push(a);
  std::thread remover([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(q.Remove(a->id()), a);
  });
  EXPECT_EQ(q.Push(b, 5.0), nullptr);
  remover.join();
  EXPECT_EQ(q.Pop(false), b);
}

TEST(RequestQueue, ExpireIfWaitingRemovesWhenNoWorkerIsFree) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto a = NewRequest(0s), b = NewRequest(0s);
  q.Push(a);
  q.Push(b);
  EXPECT_EQ(q.ExpireIfWaiting(b->id()), RequestQueue::Expiry::kRemoved);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.Pop(false), a);
  EXPECT_EQ(q.ExpireIfWaiting(a->id()), RequestQueue::Expiry::kNotQueued);
}

TEST(RequestQueue, ExpireIfWaitingKeepsWhatAFreeWorkerWillTake) {
  RequestQueue q(4, QueuePolicy::kBlock);
  q.WorkerFree();  // one worker, free but not yet back in Pop
  auto a = NewRequest(0s), b = NewRequest(0s);
  q.Push(a);
  q.Push(b);
  EXPECT_EQ(q.ExpireIfWaiting(a->id()), RequestQueue::Expiry::kAboutToStart);
  EXPECT_EQ(q.ExpireIfWaiting(b->id()), RequestQueue::Expiry::kRemoved);  // second in line
  EXPECT_EQ(q.Pop(false), a);
  EXPECT_EQ(q.free_workers(), 0u);  // holds a request now
}

// ClaimIdle is how a pool's direct run takes a free worker without queueing.
TEST(RequestQueue, ClaimIdleTakesAFreeWorkerOnlyWhenNothingIsQueued) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto direct = NewRequest(0s);
  EXPECT_FALSE(q.ClaimIdle(*direct));  // no free worker
  q.WorkerFree();
  ASSERT_TRUE(q.ClaimIdle(*direct));
  EXPECT_NE(direct->id(), 0u);
  EXPECT_EQ(direct->deadline(), direct->enqueued());  // wait_limit 0
  EXPECT_EQ(q.free_workers(), 0u);
  EXPECT_EQ(q.size(), 0u);  // never queued
  auto queued = NewRequest(0s);
  q.Push(queued);
  EXPECT_GT(queued->id(), direct->id());
  // The direct run holds the only worker: the queued request is not about
  // to start, and expires at its deadline.
  EXPECT_EQ(q.ExpireIfWaiting(queued->id()), RequestQueue::Expiry::kRemoved);
  q.WorkerFree();  // the direct run ended
  q.Push(queued = NewRequest());
  auto late = NewRequest();
  EXPECT_FALSE(q.ClaimIdle(*late));  // something is queued: never overtake it
  EXPECT_EQ(q.Pop(false), queued);
  q.Close(true);
  EXPECT_FALSE(q.ClaimIdle(*late));  // closed
}

TEST(RequestQueue, PushRecordsWhetherAWorkerWasFreeForTheRequest) {
  RequestQueue q(4, QueuePolicy::kBlock);
  q.WorkerFree();  // one worker
  auto a = NewRequest(), b = NewRequest(), direct = NewRequest();
  q.Push(a);
  q.Push(b);
  EXPECT_TRUE(a->found_free_worker());
  EXPECT_FALSE(b->found_free_worker());  // second in line for one worker
  EXPECT_EQ(q.Pop(false), a);
  EXPECT_EQ(q.Pop(false), b);
  q.WorkerFree();
  q.WorkerFree();
  ASSERT_TRUE(q.ClaimIdle(*direct));
  EXPECT_TRUE(direct->found_free_worker());
  auto c = NewRequest();
  q.Push(c);
  EXPECT_FALSE(c->found_free_worker());  // the direct run holds the only worker
}

TEST(RequestQueue, AWorkerThatPopsDuringADirectRunIsCountedOnce) {
  RequestQueue q(4, QueuePolicy::kBlock);
  q.WorkerFree();  // one worker
  auto direct = NewRequest();
  ASSERT_TRUE(q.ClaimIdle(*direct));
  auto r = NewRequest();
  q.Push(r);
  EXPECT_EQ(q.Pop(false), r);  // the worker took it while the direct run holds its instance
  EXPECT_EQ(q.free_workers(), 0u);
  q.WorkerFree();                   // the direct run ends
  EXPECT_EQ(q.free_workers(), 0u);  // the worker still holds r
  q.WorkerFree();                   // r ends
  EXPECT_EQ(q.free_workers(), 1u);  // one worker, free: never two
}

TEST(RequestQueue, UnknownPolicyNameIsAnInputError) {
  EXPECT_EQ(ParseQueuePolicy("keep_latest"), QueuePolicy::kKeepLatest);
  EXPECT_EQ(KindOf([] { ParseQueuePolicy("fifo"); }), ErrorKind::kInput);
  EXPECT_EQ(KindOf([] { RequestQueue q(0, QueuePolicy::kBlock); }), ErrorKind::kInput);
}

TEST(RequestTimes, HugeInfiniteAndNegativeSecondsMeanNoLimit) {
  for (double s : {-1.0, 1e9, 1e10, 1e300, std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(SecondsToDuration(s, "timeout"), Clock::duration::max()) << s;
  }
  EXPECT_EQ(SecondsToDuration(0, "timeout"), Clock::duration::zero());
  EXPECT_EQ(SecondsToDuration(1.5, "timeout"), std::chrono::milliseconds(1500));
  EXPECT_EQ(KindOf([] { SecondsToDuration(std::nan(""), "timeout"); }), ErrorKind::kInput);
}

TEST(RequestTimes, SaturatingAddNeverWrapsAround) {
  const auto now = Clock::now();
  EXPECT_EQ(SaturatingAdd(now, Clock::duration::max()), Clock::time_point::max());
  EXPECT_EQ(SaturatingAdd(now, Clock::duration::max() - 1ns), Clock::time_point::max());
  EXPECT_EQ(SaturatingAdd(now, 1s), now + 1s);
}

TEST(RequestDeadline, AWorkerIdleAtEnqueueStartsAZeroTimeoutRequest) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto r = NewRequest(0s);
  const auto idle_since = Clock::now();
  q.Push(r);
  std::this_thread::sleep_for(2ms);  // the worker's wake-up latency
  EXPECT_EQ(q.Pop(false), r);
  EXPECT_EQ(r->ClaimFor(idle_since), Request::Claim::kStart);
  EXPECT_TRUE(r->started());
}

TEST(RequestDeadline, AWorkerFreedAfterTheDeadlineExpiresIt) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto r = NewRequest(1ms);
  q.Push(r);
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(q.Pop(false), r);
  EXPECT_EQ(r->ClaimFor(Clock::now()), Request::Claim::kExpired);
  EXPECT_FALSE(r->started());
}

TEST(RequestDeadline, NoLimitNeverExpires) {
  RequestQueue q(4, QueuePolicy::kBlock);
  auto r = NewRequest();
  q.Push(r);
  EXPECT_EQ(r->deadline(), Clock::time_point::max());
  EXPECT_EQ(q.Pop(false), r);
  EXPECT_EQ(r->ClaimFor(Clock::now() + 1000h), Request::Claim::kStart);
}

TEST(RequestDeadline, AnEndedRequestIsAbandoned) {
  auto r = NewRequest();
  EXPECT_TRUE(r->Finish(false, ErrorKind::kCancelled, "cancelled"));
  EXPECT_FALSE(r->Finish(true, ErrorKind::kInternal, ""));  // ends once
  EXPECT_EQ(r->ClaimFor(Clock::now()), Request::Claim::kAbandoned);
  EXPECT_EQ(r->error_kind(), ErrorKind::kCancelled);
}

TEST(Request, WaitUntilReturnsAtTheLimitAndWhenDone) {
  auto r = NewRequest();
  EXPECT_FALSE(r->WaitUntil(Clock::now() + 10ms));
  std::thread finisher([&] {
    std::this_thread::sleep_for(10ms);
    r->Finish(true, ErrorKind::kInternal, "");
  });
  EXPECT_TRUE(r->WaitUntil(Clock::now() + 10s));
  finisher.join();
  EXPECT_TRUE(r->ok());
}

TEST(Request, OwnInputsCopiesSoTheCallerMayChangeItsArrays) {
  std::vector<float> a(100, 1.0f);
  std::vector<uint8_t> b(3, 7);
  auto r = NewRequest();
  r->inputs = {a.data(), b.data()};
  r->OwnInputs({a.size() * sizeof(float), b.size()});
  std::fill(a.begin(), a.end(), 2.0f);
  b[0] = 9;
  EXPECT_NE(r->inputs[0], a.data());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r->inputs[0]) % 64, 0u);
  EXPECT_EQ(static_cast<const float*>(r->inputs[0])[99], 1.0f);
  EXPECT_EQ(static_cast<const uint8_t*>(r->inputs[1])[0], 7);
  EXPECT_EQ(KindOf([&] { r->OwnInputs({4}); }), ErrorKind::kInput);
}

TEST(Delivery, StopIsBoundedWhileACallbackBlocks) {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> delivered{0};
  auto delivery = std::make_unique<Delivery>(
      [](const std::function<void()>& deliver) { deliver(); }, [](const std::string&) {});
  for (int i = 0; i < 2; ++i) {
    auto r = NewRequest();
    r->on_done = [&](Request&) {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return release; });
      delivered.fetch_add(1);
    };
    delivery->Push(r);
  }
  const auto start = Clock::now();
  EXPECT_FALSE(delivery->Stop(0.05));
  EXPECT_LT(Clock::now() - start, 2s);
  delivery.reset();  // must not wait either
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  // The detached thread still delivers both.
  const auto until = Clock::now() + 5s;
  while (delivered.load() < 2 && Clock::now() < until) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(delivered.load(), 2);
  std::this_thread::sleep_for(5ms);  // let the thread leave its loop
}

TEST(Delivery, StopDeliversEverythingPushedBefore) {
  std::atomic<int> delivered{0};
  Delivery delivery([](const std::function<void()>& deliver) { deliver(); },
                    [](const std::string&) {});
  for (int i = 0; i < 10; ++i) {
    auto r = NewRequest();
    r->on_done = [&](Request&) { delivered.fetch_add(1); };
    delivery.Push(r);
  }
  EXPECT_TRUE(delivery.Stop(-1));
  EXPECT_EQ(delivered.load(), 10);
}

}  // namespace
}  // namespace edgepipe
