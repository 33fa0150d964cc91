// A pool of long-lived compiled instances behind one bounded request queue.
//
// Workers are C++ threads, so inference never needs the Python GIL; callers
// hand in pointers to their input and output memory and wait (or get a
// callback). Each worker owns one instance of the model; all instances of a
// model share its mapped bytes and, through the XNNPACK weight cache file,
// its packed weights.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "accel/fallback.h"
#include "compiled/instance.h"
#include "pool/delivery.h"
#include "pool/histogram.h"

namespace edgepipe {

enum class QueuePolicy { kBlock, kReject, kKeepLatest };

QueuePolicy ParseQueuePolicy(const std::string& name);

struct PoolOptions {
  size_t workers = 1;
  size_t queue_capacity = 64;
  QueuePolicy policy = QueuePolicy::kBlock;
  std::vector<std::string> accelerators = {"cpu"};  // preference order
  CompileOptions compile;  // threads per worker, weight cache
  // A non-CPU accelerator whose runs fail this many times on a worker is
  // replaced by the CPU for that worker.
  int retire_after_failures = 3;
  // When set, on_done callbacks run on one delivery thread of the pool, in
  // batches under this lock (see pool/delivery.h), never on a worker.
  Delivery::LockedRun deliver_locked;
};

using Clock = std::chrono::steady_clock;

class Request : public std::enable_shared_from_this<Request> {
 public:
  // Caller memory, exactly the contract's byte sizes; must stay valid until
  // the request is done (or abandoned before it started).
  std::vector<const void*> inputs;
  std::vector<void*> outputs;
  // Latest time the request may *start*; a started run always completes.
  Clock::time_point deadline = Clock::time_point::max();
  // Called exactly once when the request ends: on the pool's delivery thread
  // when PoolOptions::deliver_locked is set, otherwise on the thread that
  // ended it (a worker, the submitter for keep_latest drops, or the closer).
  // Requests with on_done must be owned by a std::shared_ptr.
  std::function<void(Request&)> on_done;

  // Results, valid once done().
  bool ok() const { return ok_; }
  ErrorKind error_kind() const { return error_kind_; }
  const std::string& error() const { return error_; }
  double queue_us() const { return queue_us_; }
  double run_us() const { return run_us_; }
  const std::string& accelerator() const { return accelerator_; }

  bool done() const { return state_.load(std::memory_order_acquire) == kDone; }
  // Waits until done. With a timeout: returns false if the request had not
  // started by then, after making sure it never will (it ends with kTimeout);
  // a request that already started is waited for to the end.
  // `spin`: poll briefly before sleeping (worth it when runs are short).
  bool Wait(double timeout_seconds = -1, bool spin = false);

 private:
  friend class Pool;
  enum State { kQueued, kRunning, kDone };
  bool TryStart();                          // kQueued -> kRunning
  bool Finish(bool ok, ErrorKind kind, std::string error);  // -> kDone once

  std::atomic<int> state_{kQueued};
  bool waiting_ = false;  // a caller sleeps on cv_ (guarded by mutex_)
  bool ok_ = false;
  ErrorKind error_kind_ = ErrorKind::kInternal;
  std::string error_;
  double queue_us_ = 0, run_us_ = 0;
  std::string accelerator_;
  Clock::time_point enqueued_;
  std::mutex mutex_;
  std::condition_variable cv_;
};

struct PoolStats {
  uint64_t submitted = 0, completed = 0, failed = 0, dropped = 0, rejected = 0,
           expired = 0, cancelled = 0, fallback_runs = 0, swaps = 0,
           callback_errors = 0;
  size_t queue_depth = 0, queue_capacity = 0, busy_workers = 0, workers = 0;
  Histogram::Snapshot queue_wait, run_time;
  std::vector<std::string> worker_accelerators;
  std::vector<uint64_t> worker_runs;  // requests each worker ran (load balance)
  std::string last_callback_error;
};

class Pool {
 public:
  Pool(std::shared_ptr<Model> model, PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Queues a request or throws kQueueFull / kClosed / kInput. With policy
  // kBlock it waits for room up to `block_timeout_seconds` (< 0: forever).
  void Submit(const std::shared_ptr<Request>& request,
              double block_timeout_seconds = -1);

  // Stops taking requests. drain: queued ones still run; otherwise they end
  // with kCancelled. Joins the workers (except the calling one, when called
  // from a completion callback). Idempotent.
  void Close(bool drain);
  bool closed() const { return closed_.load(); }

  // Compiles `model` on the side for every worker, checks it keeps the input
  // and output contract, then swaps it in atomically. In-flight requests
  // finish on the old instances; the old model is freed with its last user.
  void Swap(std::shared_ptr<Model> model);

  std::shared_ptr<Model> model() const;
  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }
  PoolStats Stats() const;
  // Whether waiting on this pool should poll before sleeping: only when
  // recent runs are short enough that the result usually arrives within the
  // polling window. Polling for a long run would only steal a core.
  bool SpinWorthwhile() const;
  std::vector<FallbackEvent> Events() const { return events_.Snapshot(); }
  const PoolOptions& options() const { return options_; }
  // True on one of this pool's threads (a worker, or the delivery thread
  // inside a completion callback), where the pool must not be destroyed: it
  // would join itself.
  bool IsPoolThread() const;

 private:
  struct Slot {
    std::shared_ptr<Instance> instance;
    std::string accelerator;
    int failures = 0;
    std::shared_ptr<Instance> cpu_fallback;  // made on the first failed run
  };

  void WorkerLoop(size_t index);
  void Execute(size_t index, Request& request);
  void End(Request& request, bool ok, ErrorKind kind, std::string error);
  void NoteCallbackError(const std::string& error);
  std::vector<Slot> CompileSlots(const std::shared_ptr<Model>& model);

  PoolOptions options_;
  std::vector<std::string> preferences_;
  std::vector<TensorInfo> inputs_, outputs_;
  std::vector<size_t> input_bytes_, output_bytes_;

  mutable std::mutex slots_mutex_;
  std::vector<Slot> slots_;
  std::shared_ptr<Model> model_;
  std::mutex swap_mutex_;

  mutable std::mutex queue_mutex_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::shared_ptr<Request>> queue_;
  std::atomic<bool> closed_{false};
  bool stopping_ = false, drain_ = true;
  // Lock-free mirrors for the spin phase of a waiting worker, and who sleeps
  // on the condition variables, so that nobody pays a futex wake-up that no
  // thread waits for (all guarded by queue_mutex_ except the atomics).
  std::atomic<size_t> queued_{0};
  std::atomic<double> recent_run_us_{0.0};  // moving average of run times
  std::atomic<bool> stop_flag_{false};
  int sleeping_workers_ = 0, blocked_submitters_ = 0;

  std::vector<std::thread> threads_;
  std::vector<std::thread::id> thread_ids_;
  std::mutex close_mutex_;

  EventLog events_;
  Histogram queue_wait_, run_time_;
  std::atomic<uint64_t> submitted_{0}, completed_{0}, failed_{0}, dropped_{0},
      rejected_{0}, expired_{0}, cancelled_{0}, fallback_runs_{0}, swaps_{0},
      callback_errors_{0};
  std::atomic<size_t> busy_{0};
  std::unique_ptr<std::atomic<uint64_t>[]> worker_runs_;
  mutable std::mutex callback_error_mutex_;
  std::string last_callback_error_;
  // Last, so it is destroyed first: its thread touches the members above.
  std::unique_ptr<Delivery> delivery_;
};

}  // namespace edgepipe
