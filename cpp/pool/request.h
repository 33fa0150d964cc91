// One request to a pool: the caller's input and output memory, its time
// limits, its completion callback and, once done, its result.
//
// Owned by std::shared_ptr, shared between the caller, the queue and the
// worker that runs it. A request moves kQueued -> kRunning -> kDone, or
// kQueued -> kDone without running (expired, dropped, cancelled, closed).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"

namespace edgepipe {

using Clock = std::chrono::steady_clock;

// A duration in microseconds, the unit of every figure a pool reports.
inline double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Seconds from a caller as a duration: < 0, +inf or anything past what the
// clock can add to "now" (1e10, 1e300) means "no limit" (Clock::duration::max()),
// never an overflow that would expire at once. NaN throws kInput naming `what`.
Clock::duration SecondsToDuration(double seconds, const char* what);
// start + d, saturating at Clock::time_point::max().
Clock::time_point SaturatingAdd(Clock::time_point start, Clock::duration d);

class Request : public std::enable_shared_from_this<Request> {
 public:
  // Caller memory, exactly the contract's byte sizes; must stay valid until
  // the request is done (or abandoned before it started), unless the request
  // owns a copy (OwnInputs). An output pointer may be null: that output is
  // not copied out (a caller that asked for a subset).
  std::vector<const void*> inputs;
  std::vector<void*> outputs;
  // How long the request may wait for a free worker (max(): no limit). A
  // request that a worker could take in time starts; a started run always
  // completes. 0 means "only if a worker is free now": an idle worker takes it.
  Clock::duration wait_limit = Clock::duration::max();
  // Called exactly once when the request ends: on the pool's delivery thread
  // when PoolOptions::deliver_locked is set, otherwise on the thread that
  // ended it (a worker, the submitter for keep_latest drops, a canceller or
  // the closer). Requests with on_done must be owned by a std::shared_ptr.
  std::function<void(Request&)> on_done;

  // Copies every input into memory the request owns (one aligned block), so
  // the caller may reuse or change its arrays as soon as Submit returns.
  // `bytes[i]` is input i's size.
  void OwnInputs(const std::vector<size_t>& bytes);

  // Set by the queue when the request is queued.
  uint64_t id() const { return id_; }
  Clock::time_point enqueued() const { return enqueued_; }
  Clock::time_point deadline() const { return deadline_; }
  // Whether a worker was free for it when it was queued (it was within the
  // first free_workers() entries), or it claimed one for a direct run.
  bool found_free_worker() const { return found_free_worker_; }

  // Results, valid once done().
  bool ok() const { return ok_; }
  ErrorKind error_kind() const { return error_kind_; }
  const std::string& error() const { return error_; }
  double queue_us() const { return queue_us_; }
  double run_us() const { return run_us_; }
  const std::string& accelerator() const { return accelerator_; }

  bool done() const { return state_.load(std::memory_order_acquire) == kDone; }
  bool started() const { return state_.load(std::memory_order_acquire) != kQueued; }
  // Waits until done. `spin`: poll briefly before sleeping (worth it when
  // runs are short).
  void Wait(bool spin = false);
  // Waits until done or `until`; returns done().
  bool WaitUntil(Clock::time_point until, bool spin = false);

  // How a worker that became free at `available_since` treats this request:
  // start it, or end it as expired because no worker was free before its
  // deadline, or skip it because it already ended (abandoned).
  enum class Claim { kStart, kExpired, kAbandoned };
  Claim ClaimFor(Clock::time_point available_since);

  // Ends the request (-> kDone) unless it already ended; true if this call
  // ended it. Results must not be written after (see RecordTimes).
  bool Finish(bool ok, ErrorKind kind, std::string error);
  void RecordTimes(double queue_us, double run_us, std::string accelerator);

 private:
  friend class RequestQueue;
  friend class Pool;  // writes the run's times and accelerator
  enum State { kQueued, kRunning, kDone };

  std::atomic<int> state_{kQueued};
  uint64_t id_ = 0;
  bool waiting_ = false;  // a caller sleeps on cv_ (guarded by mutex_)
  bool ok_ = false;
  ErrorKind error_kind_ = ErrorKind::kInternal;
  std::string error_;
  double queue_us_ = 0, run_us_ = 0;
  std::string accelerator_;
  Clock::time_point enqueued_{};
  Clock::time_point deadline_ = Clock::time_point::max();
  bool found_free_worker_ = false;
  std::unique_ptr<uint8_t[]> owned_inputs_;
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace edgepipe
