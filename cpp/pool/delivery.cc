#include "pool/delivery.h"

#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "pool/request.h"

namespace edgepipe {

struct Delivery::State {
  LockedRun locked_run;
  std::mutex mutex;
  std::condition_variable cv;        // work arrived, or stop
  std::condition_variable ended_cv;  // the loop returned
  std::vector<std::shared_ptr<Request>> pending;
  bool stop = false, sleeping = false, ended = false;
  // Guarded by error_mutex; cleared when the owner goes away.
  std::mutex error_mutex;
  std::function<void(const std::string&)> on_error;
};

Delivery::Delivery(LockedRun locked_run, std::function<void(const std::string&)> on_error)
    : state_(std::make_shared<State>()) {
  state_->locked_run = std::move(locked_run);
  state_->on_error = std::move(on_error);
  auto state = state_;
  thread_ = std::thread([state] { Loop(state); });
  id_ = thread_.get_id();
}

Delivery::~Delivery() {
  // No waiting here: an owner that wants the callbacks delivered first calls
  // Stop(bound) before (Pool::Close does). What is left is delivered by the
  // thread on its own.
  Stop(0);
  {
    std::lock_guard<std::mutex> lock(state_->error_mutex);
    state_->on_error = nullptr;
  }
  // Still joinable when destroyed on its own thread (from a callback), or
  // after a bounded Stop that timed out: the thread owns its state.
  if (thread_.joinable()) thread_.detach();
}

void Delivery::Push(std::shared_ptr<Request> request) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->pending.push_back(std::move(request));
    wake = state_->sleeping;
  }
  if (wake) state_->cv.notify_one();
}

bool Delivery::Stop(double timeout_seconds) {
  std::unique_lock<std::mutex> lock(state_->mutex);
  state_->stop = true;
  state_->cv.notify_one();
  if (OnDeliveryThread()) return false;
  if (timeout_seconds < 0) {
    state_->ended_cv.wait(lock, [this] { return state_->ended; });
  } else if (!state_->ended_cv.wait_for(lock, std::chrono::duration<double>(timeout_seconds),
                                        [this] { return state_->ended; })) {
    return false;
  }
  lock.unlock();
  if (thread_.joinable()) thread_.join();
  return true;
}

void Delivery::Loop(const std::shared_ptr<State>& state) {
  std::vector<std::shared_ptr<Request>> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(state->mutex);
      state->sleeping = true;
      state->cv.wait(lock, [&] { return state->stop || !state->pending.empty(); });
      state->sleeping = false;
      if (state->pending.empty()) {  // stopped and drained
        state->ended = true;
        state->ended_cv.notify_all();
        return;
      }
      batch.swap(state->pending);
    }
    state->locked_run([&] {
      for (auto& request : batch) {
        try {
          request->on_done(*request);
        } catch (const std::exception& e) {
          // A broken callback must not end the deliveries of the others.
          std::lock_guard<std::mutex> lock(state->error_mutex);
          if (state->on_error) state->on_error(e.what());
        }
        // Dropped here, under the host lock: the callback may own host objects.
        request.reset();
      }
    });
    batch.clear();
  }
}

}  // namespace edgepipe
