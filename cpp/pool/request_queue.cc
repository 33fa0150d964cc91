#include "pool/request_queue.h"

#include <algorithm>

#include "pool/spin.h"

namespace edgepipe {

QueuePolicy ParseQueuePolicy(const std::string& name) {
  if (name == "block") return QueuePolicy::kBlock;
  if (name == "reject") return QueuePolicy::kReject;
  if (name == "keep_latest") return QueuePolicy::kKeepLatest;
  throw Error(ErrorKind::kInput,
              "unknown queue policy '" + name + "'; expected block, reject or keep_latest");
}

RequestQueue::RequestQueue(size_t capacity, QueuePolicy policy, size_t max_batch,
                           Clock::duration batch_delay)
    : capacity_(capacity), policy_(policy), max_batch_(max_batch), batch_delay_(batch_delay) {
  if (capacity_ == 0) throw Error(ErrorKind::kInput, "queue_size must be at least 1");
  if (max_batch_ == 0) throw Error(ErrorKind::kInput, "max_batch must be at least 1");
  if (max_batch_ > capacity_) {
    throw Error(ErrorKind::kInput, "max_batch (" + std::to_string(max_batch_) +
                                       ") is larger than queue_size (" + std::to_string(capacity_) +
                                       "): batches are taken from the queue and could never "
                                       "fill; use queue_size >= max_batch");
  }
}

size_t RequestQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

std::shared_ptr<Request> RequestQueue::Push(const std::shared_ptr<Request>& request,
                                            double block_timeout_seconds) {
  const Clock::duration block_limit = SecondsToDuration(block_timeout_seconds, "block_timeout");
  std::shared_ptr<Request> dropped;
  bool wake_worker = false, wake_collector = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopping_) throw Error(ErrorKind::kClosed, "the pool is closed");
    if (queue_.size() >= capacity_) {
      switch (policy_) {
        case QueuePolicy::kReject:
          throw Error(ErrorKind::kQueueFull,
                      "the pool's queue is full (" + std::to_string(capacity_) +
                          " waiting requests); retry later or use a larger queue_size");
        case QueuePolicy::kKeepLatest:
          dropped = std::move(queue_.front());
          queue_.pop_front();
          queued_.fetch_sub(1, std::memory_order_relaxed);
          break;
        case QueuePolicy::kBlock: {
          auto has_room = [this] { return stopping_ || queue_.size() < capacity_; };
          ++blocked_pushers_;
          bool room = true;
          if (block_limit == Clock::duration::max()) {
            not_full_.wait(lock, has_room);
          } else {
            room = not_full_.wait_until(lock, SaturatingAdd(Clock::now(), block_limit), has_room);
          }
          --blocked_pushers_;
          if (stopping_) throw Error(ErrorKind::kClosed, "the pool is closed");
          if (!room) {
            throw Error(ErrorKind::kQueueFull,
                        "the pool's queue stayed full for " +
                            std::to_string(block_timeout_seconds) +
                            " s; retry later, use a larger queue_size or a longer block_timeout");
          }
          break;
        }
      }
    }
    request->id_ = next_id_++;
    request->enqueued_ = Clock::now();
    request->deadline_ = SaturatingAdd(request->enqueued_, request->wait_limit);
    request->found_free_worker_ =
        static_cast<std::ptrdiff_t>(queue_.size()) <
        free_.load(std::memory_order_acquire) * static_cast<std::ptrdiff_t>(max_batch_);
    queue_.push_back(request);
    queued_.fetch_add(1, std::memory_order_release);
    wake_worker = sleeping_workers_ > 0;
    wake_collector = collecting_workers_ > 0 && queue_.size() >= max_batch_;
  }
  if (wake_worker) not_empty_.notify_one();
  if (wake_collector) batch_more_.notify_all();
  return dropped;
}

std::shared_ptr<Request> RequestQueue::Pop(bool spin) {
  if (spin) {
    SpinFor([this] {
      return queued_.load(std::memory_order_acquire) > 0 || closed_.load(std::memory_order_acquire);
    });
  }
  std::shared_ptr<Request> request;
  bool wake_pusher = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    ++sleeping_workers_;
    not_empty_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --sleeping_workers_;
    if (queue_.empty() || (stopping_ && !drain_)) return nullptr;
    // Under the lock, so ExpireIfWaiting never counts a worker that already
    // took another request.
    free_.fetch_sub(1, std::memory_order_acq_rel);
    request = std::move(queue_.front());
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    wake_pusher = blocked_pushers_ > 0;
  }
  if (wake_pusher) not_full_.notify_one();
  return request;
}

bool RequestQueue::ClaimIdle(Request& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (stopping_ || !queue_.empty() || free_.load(std::memory_order_acquire) <= 0) return false;
  request.id_ = next_id_++;
  request.enqueued_ = Clock::now();
  request.deadline_ = SaturatingAdd(request.enqueued_, request.wait_limit);
  request.found_free_worker_ = true;
  free_.fetch_sub(1, std::memory_order_acq_rel);
  return true;
}

size_t RequestQueue::PopBatch(bool spin, std::vector<std::shared_ptr<Request>>* out) {
  out->clear();
  if (spin) {
    SpinFor([this] {
      return queued_.load(std::memory_order_acquire) > 0 || closed_.load(std::memory_order_acquire);
    });
  }
  size_t taken = 0;
  bool wake_pusher = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ++sleeping_workers_;
      not_empty_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --sleeping_workers_;
      if (queue_.empty() || (stopping_ && !drain_)) return 0;
      if (queue_.size() >= max_batch_ || batch_delay_ <= Clock::duration::zero() || stopping_) {
        break;
      }
      // A partial batch: wait (still free, the requests still queued) for
      // it to fill, for the delay, or for close.
      ++collecting_workers_;
      batch_more_.wait_until(lock, SaturatingAdd(Clock::now(), batch_delay_),
                             [this] { return stopping_ || queue_.size() >= max_batch_; });
      --collecting_workers_;
      if (stopping_ && !drain_) return 0;
      if (!queue_.empty()) break;
      // Everything was cancelled, expired or taken by another worker: wait anew.
    }
    // Under the lock, so ExpireIfWaiting never counts a worker that already
    // took its batch.
    free_.fetch_sub(1, std::memory_order_acq_rel);
    taken = std::min(queue_.size(), max_batch_);
    for (size_t i = 0; i < taken; ++i) {
      out->push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    queued_.fetch_sub(taken, std::memory_order_relaxed);
    wake_pusher = blocked_pushers_ > 0;
  }
  if (wake_pusher) {
    if (taken > 1) {
      not_full_.notify_all();
    } else {
      not_full_.notify_one();
    }
  }
  return taken;
}

std::shared_ptr<Request> RequestQueue::Remove(uint64_t id) {
  std::shared_ptr<Request> found;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if ((*it)->id_ == id) {
        found = std::move(*it);
        queue_.erase(it);
        queued_.fetch_sub(1, std::memory_order_relaxed);
        break;
      }
    }
    if (!found || blocked_pushers_ == 0) return found;
  }
  not_full_.notify_one();
  return found;
}

RequestQueue::Expiry RequestQueue::ExpireIfWaiting(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t position = 0;
    auto it = queue_.begin();
    for (; it != queue_.end() && (*it)->id_ != id; ++it) ++position;
    if (it == queue_.end()) return Expiry::kNotQueued;
    if (static_cast<std::ptrdiff_t>(position) <
            free_.load(std::memory_order_acquire) * static_cast<std::ptrdiff_t>(max_batch_) &&
        !stopping_) {
      return Expiry::kAboutToStart;
    }
    queue_.erase(it);
    queued_.fetch_sub(1, std::memory_order_relaxed);
    if (blocked_pushers_ == 0) return Expiry::kRemoved;
  }
  not_full_.notify_one();
  return Expiry::kRemoved;
}

std::deque<std::shared_ptr<Request>> RequestQueue::Close(bool drain) {
  std::deque<std::shared_ptr<Request>> removed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      drain_ = drain;
      closed_.store(true, std::memory_order_release);
    }
    if (!drain) {
      drain_ = false;
      removed.swap(queue_);
      queued_.store(0, std::memory_order_relaxed);
    }
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  batch_more_.notify_all();
  return removed;
}

}  // namespace edgepipe
