// One thread that hands finished requests back to the host language.
//
// A binding whose callbacks need a global lock (Python's GIL) must not take it
// on a worker: the worker would wait for the lock between runs, up to the
// interpreter's switch interval, while the clients hold it. Workers push
// finished requests here instead and go straight on to the next one; this
// thread takes the host lock once per batch of whatever finished meanwhile.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace edgepipe {

class Request;

class Delivery {
 public:
  // Runs `deliver` (which calls every request's on_done) while holding the
  // host's lock; for Python: takes the GIL, runs it, releases the GIL.
  using LockedRun = std::function<void(const std::function<void()>& deliver)>;
  // `on_error` receives the text of a std::exception thrown by an on_done.
  Delivery(LockedRun locked_run, std::function<void(const std::string&)> on_error);
  ~Delivery();
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  void Push(std::shared_ptr<Request> request);
  // Delivers what is pushed until now and everything pushed before the queue
  // is empty, then ends the thread. Joins it, except when called on it (from
  // a callback): the destructor joins then. Idempotent.
  void Stop();
  bool OnDeliveryThread() const { return std::this_thread::get_id() == id_; }

 private:
  void Loop();

  LockedRun locked_run_;
  std::function<void(const std::string&)> on_error_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Request>> pending_;
  bool stop_ = false, sleeping_ = false;
  std::thread thread_;
  std::thread::id id_;
};

}  // namespace edgepipe
