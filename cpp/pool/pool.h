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
#include "pool/batch.h"
#include "pool/delivery.h"
#include "pool/histogram.h"
#include "pool/request.h"
#include "pool/request_queue.h"
#include "sched/scheduler.h"

namespace edgepipe {

// Most workers one pool may have: each is a thread plus a compiled instance,
// and beyond this a typo (3000), not a machine, is the likely cause.
constexpr size_t kMaxWorkers = 256;
// Most CPU threads one pool may start in all (workers x threads per worker).
constexpr size_t kMaxPoolThreads = 4096;

struct PoolOptions {
  size_t workers = 1;  // 1..kMaxWorkers
  size_t queue_capacity = 64;
  QueuePolicy policy = QueuePolicy::kBlock;
  std::vector<std::string> accelerators = {"cpu"};  // preference order
  CompileOptions compile;                           // threads per worker, weight cache
  // A non-CPU accelerator whose runs fail this many times on a worker is
  // replaced by the CPU for that worker.
  int retire_after_failures = 3;
  // When set, on_done callbacks run on one delivery thread of the pool, in
  // batches under this lock (see pool/delivery.h), never on a worker.
  Delivery::LockedRun deliver_locked;
  // How long Close() and the destructor wait for completion callbacks still
  // running on the delivery thread (< 0: forever). Past it they return and
  // the callbacks finish on that thread afterwards.
  double callback_wait_seconds = 5.0;
  // When set, every run first takes its instance's CPU threads (and a slot of
  // its accelerator) from this shared budget, by `priority` (larger first;
  // see sched/scheduler.h); a request whose deadline passes while it waits
  // for them ends with kTimeout before it runs.
  std::shared_ptr<Scheduler> scheduler;
  int priority = 0;
  // Direct runs: Run() on an idle CPU worker's instance runs on the calling
  // thread when nothing is queued, instead of handing the request to the
  // worker thread and waiting to be woken (two thread wake-ups per call).
  // Ordering, stats, deadlines and scheduler priorities are the same either
  // way; instances of other accelerators always run on their own worker.
  // Off: every run happens on a worker thread (e.g. when the calling thread
  // must not do the inference work itself: its priority or CPU affinity).
  // Batching pools (max_batch > 1) never run direct: their requests go
  // through the queue to be batched.
  bool caller_runs = true;
  // Dynamic batching (see pool/batch.h): > 1 stacks up to this many queued
  // requests into one run (1..kMaxBatch, at most queue_capacity). A worker
  // that finds fewer waits up to max_batch_delay_seconds for more (0: runs
  // what is queued).
  size_t max_batch = 1;
  double max_batch_delay_seconds = 0;
};

struct PoolStats {
  uint64_t submitted = 0, completed = 0, failed = 0, dropped = 0, rejected = 0, expired = 0,
           cancelled = 0, fallback_runs = 0, swaps = 0, callback_errors = 0,
           caller_runs = 0;  // runs done on Run()'s calling thread (also in completed/failed)
  size_t queue_depth = 0, queue_capacity = 0, busy_workers = 0, workers = 0;
  Histogram::Snapshot queue_wait, run_time;
  std::vector<std::string> worker_accelerators;
  std::vector<uint64_t> worker_runs;  // requests each worker ran (load balance)
  // Batching: runs made (one per batch, a single request included) and the
  // requests they held; 0 without batching.
  uint64_t batches = 0, batched_requests = 0;
  size_t max_batch = 1;
  std::string last_callback_error;
};

class Pool {
 public:
  Pool(std::shared_ptr<Model> model, PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Queues a request or throws kQueueFull / kClosed / kInput, and returns
  // its id (for Cancel). With policy kBlock it waits for room up to
  // `block_timeout_seconds` (< 0 or inf: forever; NaN: kInput).
  uint64_t Submit(const std::shared_ptr<Request>& request, double block_timeout_seconds = -1);

  // Submits and waits for the end: the synchronous call. A request whose
  // wait_limit passes before a worker is free for it ends with kTimeout and
  // never runs; a worker already free then still takes it. With
  // options().caller_runs, a request that finds the queue empty and an idle
  // CPU worker runs on the calling thread, on that worker's instance (see
  // TryRunDirect); otherwise it is queued for the workers.
  void Run(const std::shared_ptr<Request>& request, double block_timeout_seconds = -1);

  // Removes a request that is still queued; it ends with kCancelled (its
  // on_done runs) and never runs. False when it already started or ended.
  bool Cancel(uint64_t id);

  // Stops taking requests. drain: queued ones still run; otherwise they end
  // with kCancelled. Joins the workers (except the calling one, when called
  // from a completion callback), then waits for the delivery of completion
  // callbacks up to options().callback_wait_seconds. Idempotent.
  void Close(bool drain);
  bool closed() const { return queue_.closed(); }

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
  // A compiled instance of a worker with its accelerator and the state of
  // its fallback to the CPU (see RunWithCpuFallback).
  struct Engine {
    std::shared_ptr<Instance> instance;
    std::string accelerator;
    int failures = 0;
    std::shared_ptr<Instance> cpu_fallback;  // made on the first failed run
  };
  // One batch-N instance of a worker (pool/batch.h).
  struct BatchInstance : Engine {
    size_t size = 0;
  };
  // A worker's batch-1 instance and, when batching, one instance per size
  // of batch_sizes_, in that order; each falls back to (and is retired to)
  // the CPU on its own.
  struct Slot : Engine {
    std::vector<BatchInstance> batched;
  };

  // Who runs a slot's instance now (guarded by gates_mutex_): taken from
  // before a run until FreeSlot(), which gives it back before the request is
  // ended. A worker takes its own slot, or any free CPU slot when a direct
  // run holds its own; a direct run takes any free CPU slot. A non-CPU slot
  // (contexts bound to its worker's thread) is only ever taken by its worker.
  struct Gate {
    bool held = false;
    // When the last direct run on this slot claimed its request, and when
    // the slot was last given back. A request queued while no worker was
    // free, and run on a slot whose direct run was going on then, waited
    // for that run to end (its deadline counts from then).
    Clock::time_point direct_since{}, freed{};
  };
  // A slot's instance and accelerator at one moment (a swap may replace it).
  struct Running {
    std::shared_ptr<Instance> instance;
    std::string accelerator;
  };

  void WorkerLoop(size_t index, Clock::time_point started);
  Scheduler::Demand Demand(const Running& on) const;  // what one run on `on` needs
  Running SlotNow(size_t index) const;
  bool IsCpuSlot(size_t index) const;
  // Worker `index` takes a slot for `request`: its own, else (when a direct
  // run holds it) any free CPU slot, else it waits for one. Moves
  // *free_since to when an instance became free for `request` if none was
  // when it was queued. Returns the slot taken.
  size_t TakeSlot(size_t index, const Request& request, Clock::time_point* free_since);
  // Gives slot `index` back (sets *free_since to now), then frees a worker
  // in the queue. Before the request is ended.
  void FreeSlot(size_t index, Clock::time_point* free_since);
  void ReleaseGate(size_t index, Clock::time_point now);
  // The direct run of Run(): if caller_runs, nothing is queued, a CPU slot's
  // gate is free and an idle worker can be claimed (and the scheduler, if
  // any, grants the run now without passing a better waiter), runs
  // `request` on that slot's instance on this thread and returns true, with
  // the request ended and counted as a worker's run would be. False: nothing
  // happened, the caller queues it.
  bool TryRunDirect(const std::shared_ptr<Request>& request);
  // Runs `request` on `on`, slot `index`'s instance, whose gate the caller
  // holds; FreeSlot()s the slot and ends the request.
  void Execute(size_t index, const Running& on, Request& request, Clock::time_point* free_since);
  // Runs `run_on` on `instance`, the instance of `engine_of(slots_[index])`
  // when the run began. If its non-CPU accelerator fails, answers on a CPU
  // instance compiled as `compile` (without the weight cache) and retires
  // the accelerator after retire_after_failures failures ("failed N `runs`
  // on worker i"). Returns the accelerator that answered; throws what the
  // CPU run threw. For `requests` requests (fallback_runs counts them).
  std::string RunWithCpuFallback(size_t index, const std::function<Engine&(Slot&)>& engine_of,
                                 const std::shared_ptr<Instance>& instance,
                                 const std::string& accelerator, const CompileOptions& compile,
                                 size_t requests, const std::string& runs,
                                 const std::function<void(Instance&)>& run_on);
  // A run of `run_us` ended well: the run-time histogram and the moving
  // average behind SpinWorthwhile().
  void NoteRunTime(double run_us);
  // `request` starts now: its queue wait is recorded.
  void RecordStart(Request& request, Clock::time_point now);
  // `request` never runs: its deadline passed (or the scheduler closed)
  // while its worker waited for the scheduler's resources.
  void ExpireWaitingForScheduler(Request& request, Clock::time_point free_since);
  void CheckRequestShape(const Request& request) const;  // throws kInput
  // Batching (pool/batch.cc): the worker loop when max_batch > 1, and one
  // run of `batch` (all claimed, 2..max_batch of them) on slot `index`,
  // whose gate the caller holds (FreeSlot()s it before ending the requests).
  void BatchWorkerLoop(size_t index, Clock::time_point started);
  void ExecuteBatch(size_t index, const std::vector<std::shared_ptr<Request>>& batch,
                    Clock::time_point* free_since);
  std::vector<BatchInstance> CompileBatched(const std::shared_ptr<Model>& model,
                                            const std::vector<std::string>& preferences);
  void End(Request& request, bool ok, ErrorKind kind, std::string error);
  void NoteCallbackError(const std::string& error);
  std::vector<Slot> CompileSlots(const std::shared_ptr<Model>& model);
  // Ends what the queue gave back on close with `kind`, then joins.
  void Shutdown(bool drain, ErrorKind kind, const std::string& why);
  void JoinWorkers();

  PoolOptions options_;
  std::vector<std::string> preferences_;
  std::vector<TensorInfo> inputs_, outputs_;
  std::vector<size_t> input_bytes_, output_bytes_;

  mutable std::mutex slots_mutex_;
  std::vector<Slot> slots_;
  // Lock order: gates_mutex_, then slots_mutex_ (never the other way).
  std::mutex gates_mutex_;
  std::condition_variable gate_freed_;
  int gate_waiters_ = 0;  // guarded by gates_mutex_
  // Direct runs claimed and not yet fully counted (guarded by gates_mutex_):
  // Close() waits for them as it joins the workers.
  int direct_active_ = 0;
  std::unique_ptr<Gate[]> gates_;  // one per slot; never replaced (a swap keeps them)
  std::shared_ptr<Model> model_;
  std::mutex swap_mutex_;

  std::vector<size_t> batch_sizes_;  // BatchSizes(max_batch)
  RequestQueue queue_;
  std::atomic<double> recent_run_us_{0.0};  // moving average of run times

  std::vector<std::thread> threads_;
  std::vector<std::thread::id> thread_ids_;
  std::mutex close_mutex_;

  EventLog events_;
  Histogram queue_wait_, run_time_;
  std::atomic<uint64_t> submitted_{0}, completed_{0}, failed_{0}, dropped_{0}, rejected_{0},
      expired_{0}, cancelled_{0}, fallback_runs_{0}, swaps_{0}, callback_errors_{0},
      caller_runs_{0}, batches_{0}, batched_requests_{0};
  std::atomic<size_t> busy_{0};
  std::unique_ptr<std::atomic<uint64_t>[]> worker_runs_;
  mutable std::mutex callback_error_mutex_;
  std::string last_callback_error_;
  // Last, so it is destroyed first: its thread touches the members above.
  std::unique_ptr<Delivery> delivery_;
};

}  // namespace edgepipe
