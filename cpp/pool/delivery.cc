#include "pool/delivery.h"

#include <exception>
#include <string>
#include <utility>

#include "pool/pool.h"

namespace edgepipe {

Delivery::Delivery(LockedRun locked_run, std::function<void(const std::string&)> on_error)
    : locked_run_(std::move(locked_run)), on_error_(std::move(on_error)) {
  thread_ = std::thread([this] { Loop(); });
  id_ = thread_.get_id();
}

Delivery::~Delivery() {
  Stop();
  // Still joinable only when destroyed on its own thread (from a callback).
  if (thread_.joinable()) thread_.detach();
}

void Delivery::Push(std::shared_ptr<Request> request) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(request));
    wake = sleeping_;
  }
  if (wake) cv_.notify_one();
}

void Delivery::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_one();
  if (!OnDeliveryThread() && thread_.joinable()) thread_.join();
}

void Delivery::Loop() {
  std::vector<std::shared_ptr<Request>> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      sleeping_ = true;
      cv_.wait(lock, [this] { return stop_ || !pending_.empty(); });
      sleeping_ = false;
      if (pending_.empty()) return;  // stopped and drained
      batch.swap(pending_);
    }
    locked_run_([&] {
      for (auto& request : batch) {
        try {
          request->on_done(*request);
        } catch (const std::exception& e) {
          // A broken callback must not end the deliveries of the others.
          on_error_(e.what());
        }
        // Dropped here, under the host lock: the callback may own host objects.
        request.reset();
      }
    });
    batch.clear();
  }
}

}  // namespace edgepipe
