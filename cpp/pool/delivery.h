// One thread that hands finished requests back to the host language.
//
// A binding whose callbacks need a global lock (Python's GIL) must not take it
// on a worker: the worker would wait for the lock between runs, up to the
// interpreter's switch interval, while the clients hold it. Workers push
// finished requests here instead and go straight on to the next one; this
// thread takes the host lock once per batch of whatever finished meanwhile.
//
// A callback may block for as long as it likes; Stop() waits for it only up
// to a bound. The thread's state is shared with it, so the thread can finish
// the callback (and deliver what is left) after the Delivery is gone.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace edgepipe {

class Request;

class Delivery {
 public:
  // Runs `deliver` (which calls every request's on_done) while holding the
  // host's lock; for Python: takes the GIL, runs it, releases the GIL.
  using LockedRun = std::function<void(const std::function<void()>& deliver)>;
  // `on_error` receives the text of a std::exception thrown by an on_done;
  // it is not called after the Delivery is destroyed.
  Delivery(LockedRun locked_run, std::function<void(const std::string&)> on_error);
  // Signals stop and does not wait: the thread delivers what is left on its
  // own (call Stop first to wait for it).
  ~Delivery();
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  void Push(std::shared_ptr<Request> request);
  // Delivers everything pushed until the queue is empty, then ends the
  // thread. Waits for that up to `timeout_seconds` (< 0: forever) and returns
  // true when it ended; false leaves the thread finishing on its own (a
  // callback still blocks). Never waits when called on the delivery thread
  // (from a callback). Idempotent.
  bool Stop(double timeout_seconds = -1);
  bool OnDeliveryThread() const { return std::this_thread::get_id() == id_; }

 private:
  struct State;
  static void Loop(const std::shared_ptr<State>& state);

  std::shared_ptr<State> state_;
  std::thread thread_;
  std::thread::id id_;
};

}  // namespace edgepipe
