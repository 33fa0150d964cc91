// The bounded request queue of a pool: FIFO order, the full-queue policies
// (block / reject / keep_latest), removal of a queued request (cancel,
// expiry), and close with or without drain. Knows nothing of models or
// workers' instances, so it is unit-tested on its own (tests/cpp).
//
// Hand-offs are cheap when busy: a popping worker polls briefly before it
// sleeps, and nobody pays a futex wake-up that no thread waits for.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pool/request.h"

namespace edgepipe {

enum class QueuePolicy { kBlock, kReject, kKeepLatest };

// "block", "reject" or "keep_latest"; anything else throws kInput.
QueuePolicy ParseQueuePolicy(const std::string& name);

class RequestQueue {
 public:
  // `max_batch` > 1: workers take up to that many requests at once
  // (PopBatch), waiting up to `batch_delay` for a batch to fill.
  RequestQueue(size_t capacity, QueuePolicy policy, size_t max_batch = 1,
               Clock::duration batch_delay = Clock::duration::zero());
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  // Appends `request`, giving it an id, its enqueue time and its deadline.
  // When full: kReject throws kQueueFull; kKeepLatest removes the oldest
  // queued request and returns it (the caller ends it as dropped); kBlock
  // waits for room up to `block_timeout_seconds` (< 0, inf or huge:
  // forever; NaN: kInput) and then throws kQueueFull. Throws kClosed once
  // closed (also to a blocked pusher when the queue closes).
  std::shared_ptr<Request> Push(const std::shared_ptr<Request>& request,
                                double block_timeout_seconds = -1);

  // Worker side: the next request, waiting for one (polling first when
  // `spin`). Null once closed and empty, or closed without drain.
  std::shared_ptr<Request> Pop(bool spin);

  // Caller side of a direct run (Pool::TryRunDirect): when nothing is queued
  // and a worker is free, takes that free worker for `request` without
  // queueing it, giving it an id, enqueue time and deadline as Push does.
  // The taker gives the worker back with WorkerFree() when the run ends.
  // False (nothing changed) when a request is queued, no worker is free, or
  // the queue is closed: the request must then go through Push, behind the
  // queued ones.
  bool ClaimIdle(Request& request);

  // Worker side, dynamic batching: fills `out` with the next 1..max_batch
  // requests, oldest first, and returns how many (0 once closed and empty,
  // or closed without drain). Waits for a first request as Pop does; with
  // fewer than max_batch queued it then waits up to batch_delay for more
  // (0: takes what is queued). While it waits the worker still counts as
  // free and the requests stay queued: they can be cancelled or expire.
  size_t PopBatch(bool spin, std::vector<std::shared_ptr<Request>>* out);

  // Removes a queued request; null when `id` is not queued (never was,
  // already taken by a worker, or already removed).
  std::shared_ptr<Request> Remove(uint64_t id);

  // For a waiter whose deadline passed: removes the request unless a worker
  // that is free right now will take it (it is within the first
  // free_workers() x max_batch() entries). kNotQueued: a worker has it (or
  // it ended).
  enum class Expiry { kRemoved, kAboutToStart, kNotQueued };
  Expiry ExpireIfWaiting(uint64_t id);

  // Stops taking requests and wakes every waiter. drain: queued requests
  // stay for the workers; otherwise they are removed and returned.
  std::deque<std::shared_ptr<Request>> Close(bool drain);

  bool closed() const { return closed_.load(std::memory_order_acquire); }
  size_t size() const;
  size_t capacity() const { return capacity_; }
  QueuePolicy policy() const { return policy_; }
  size_t max_batch() const { return max_batch_; }
  // Worker side: this worker holds no request any more (it started, or
  // finished its last one). Called before the request it finished is ended,
  // so a caller woken by that end finds it free.
  void WorkerFree() { free_.fetch_add(1, std::memory_order_acq_rel); }
  // Workers not holding a request: they will take the queue's first entries.
  size_t free_workers() const {
    const std::ptrdiff_t n = free_.load(std::memory_order_acquire);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  // Lock-free hint of size(), for a caller deciding whether to try ClaimIdle.
  size_t queued_hint() const { return queued_.load(std::memory_order_acquire); }

 private:
  const size_t capacity_;
  const QueuePolicy policy_;
  const size_t max_batch_;
  const Clock::duration batch_delay_;
  mutable std::mutex mutex_;
  // batch_more_: a worker holding a partial batch waits there for it to fill.
  std::condition_variable not_empty_, not_full_, batch_more_;
  std::deque<std::shared_ptr<Request>> queue_;
  uint64_t next_id_ = 1;
  bool stopping_ = false, drain_ = true;
  std::atomic<bool> closed_{false};
  // Lock-free mirror of the size for the spin phase of a waiting worker.
  std::atomic<size_t> queued_{0};
  // Workers minus the requests they (and direct runs) hold. Below zero when
  // a worker popped a request while its instance still served a direct run
  // (it waits for the instance); every taker gives one back on WorkerFree().
  std::atomic<std::ptrdiff_t> free_{0};
  int sleeping_workers_ = 0, blocked_pushers_ = 0, collecting_workers_ = 0;  // guarded by mutex_
};

}  // namespace edgepipe
