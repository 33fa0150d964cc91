#include "pool/pool.h"

#include <algorithm>
#include <cstring>
#include <system_error>

namespace edgepipe {

namespace {

// Runs longer than this make polling a waste (see Pool::SpinWorthwhile).
constexpr double kSpinWorthwhileUs = 20.0;

// While a caller waits past its deadline for a worker that is free but not
// yet awake, it re-checks this often.
constexpr auto kAboutToStartRecheck = std::chrono::milliseconds(1);

// The pool whose direct run this thread is doing (Pool::TryRunDirect), so
// that a Close() from that run's own completion callback does not wait for it.
thread_local const void* t_direct_run_pool = nullptr;

// Same names, types and shapes, in the same order: what callers already hold
// buffers for must stay valid across a swap.
void CheckSameContract(const std::vector<TensorInfo>& old_list,
                       const std::vector<TensorInfo>& new_list, const std::string& what) {
  if (old_list.size() != new_list.size()) {
    throw Error(ErrorKind::kModel, "the new model has " + std::to_string(new_list.size()) + " " +
                                       what + "s, the serving one " +
                                       std::to_string(old_list.size()));
  }
  for (size_t i = 0; i < old_list.size(); ++i) {
    const auto& a = old_list[i];
    const auto& b = new_list[i];
    if (a.name != b.name || a.element_type != b.element_type || a.shape != b.shape) {
      throw Error(ErrorKind::kModel, "the new model's " + what + " " + std::to_string(i) + " is '" +
                                         b.name + "' " + ElementTypeName(b.element_type) +
                                         ShapeText(b.shape) + " but the serving model's is '" +
                                         a.name + "' " + ElementTypeName(a.element_type) +
                                         ShapeText(a.shape));
    }
  }
}

}  // namespace

namespace {
PoolOptions Checked(PoolOptions options) {
  if (options.workers == 0 || options.workers > kMaxWorkers) {
    throw Error(ErrorKind::kInput, "workers must be between 1 and " + std::to_string(kMaxWorkers) +
                                       ", got " + std::to_string(options.workers));
  }
  if (options.compile.num_threads < 0 || options.compile.num_threads > kMaxThreadsPerInstance) {
    throw Error(ErrorKind::kInput, "threads must be between 1 and " +
                                       std::to_string(kMaxThreadsPerInstance) + ", got " +
                                       std::to_string(options.compile.num_threads));
  }
  const size_t threads = options.compile.num_threads > 0 ? options.compile.num_threads : 1;
  if (options.workers * threads > kMaxPoolThreads) {
    throw Error(ErrorKind::kInput,
                "workers x threads per worker must be at most " + std::to_string(kMaxPoolThreads) +
                    ", got " + std::to_string(options.workers) + " x " + std::to_string(threads));
  }
  if (options.max_batch == 0 || options.max_batch > kMaxBatch) {
    throw Error(ErrorKind::kInput, "max_batch must be between 1 and " + std::to_string(kMaxBatch) +
                                       ", got " + std::to_string(options.max_batch));
  }
  if (!(options.max_batch_delay_seconds >= 0) ||
      SecondsToDuration(options.max_batch_delay_seconds, "max_batch_delay") ==
          Clock::duration::max()) {
    throw Error(ErrorKind::kInput, "max_batch_delay must be a finite number of seconds >= 0, got " +
                                       std::to_string(options.max_batch_delay_seconds));
  }
  if (SecondsToDuration(options.callback_wait_seconds, "callback_wait") == Clock::duration::max()) {
    options.callback_wait_seconds = -1;  // inf, huge or negative: wait forever
  }
  return options;
}
}  // namespace

Pool::Pool(std::shared_ptr<Model> model, PoolOptions options)
    : options_(Checked(std::move(options))),
      batch_sizes_(BatchSizes(options_.max_batch)),
      queue_(options_.queue_capacity, options_.policy, options_.max_batch,
             SecondsToDuration(options_.max_batch_delay_seconds, "max_batch_delay")) {
  preferences_ = PreferenceList(options_.accelerators);
  const auto& signatures = model->signatures();
  if (options_.compile.signature >= signatures.size()) {
    throw Error(ErrorKind::kInput,
                "signature index " + std::to_string(options_.compile.signature) + " out of range");
  }
  const auto& sig = signatures[options_.compile.signature];
  for (const auto* list : {&sig.inputs, &sig.outputs}) {
    for (const auto& t : *list) {
      // A batching pool serves batch 1 of a dynamic dimension 0 (the
      // compile checks the rest: pool/batch.h).
      const bool batch_dim_only =
          options_.max_batch > 1 && !t.shape.empty() && t.shape[0] < 0 &&
          std::none_of(t.shape.begin() + 1, t.shape.end(), [](int32_t d) { return d < 0; });
      if (t.is_dynamic() && !batch_dim_only) {
        throw Error(ErrorKind::kInput,
                    "tensor '" + t.name + "' has a dynamic shape " + ShapeText(t.shape) +
                        "; pools serve fixed shapes: resize with a Session instead");
      }
    }
  }
  slots_ = CompileSlots(model);
  inputs_ = slots_[0].instance->inputs();
  outputs_ = slots_[0].instance->outputs();
  for (size_t i = 0; i < inputs_.size(); ++i) {
    input_bytes_.push_back(slots_[0].instance->input_bytes(i));
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    output_bytes_.push_back(slots_[0].instance->output_bytes(i));
  }
  model_ = std::move(model);
  if (options_.deliver_locked) {
    delivery_ = std::make_unique<Delivery>(options_.deliver_locked,
                                           [this](const std::string& e) { NoteCallbackError(e); });
  }
  worker_runs_ = std::make_unique<std::atomic<uint64_t>[]>(options_.workers);
  gates_ = std::make_unique<Gate[]>(options_.workers);
  const Clock::time_point started = Clock::now();
  for (size_t i = 0; i < options_.workers; ++i) queue_.WorkerFree();
  try {
    for (size_t i = 0; i < options_.workers; ++i) {
      threads_.emplace_back([this, i, started] { WorkerLoop(i, started); });
      thread_ids_.push_back(threads_.back().get_id());
    }
  } catch (const std::system_error& e) {
    // The system refused a thread: stop the ones started, then say so.
    queue_.Close(false);
    JoinWorkers();
    if (delivery_) delivery_->Stop();
    throw Error(ErrorKind::kRuntime,
                "cannot start worker thread " + std::to_string(threads_.size() + 1) + " of " +
                    std::to_string(options_.workers) + ": " + e.what() + "; use fewer workers");
  }
}

Pool::~Pool() {
  // Requests still queued when the last owner lets go fail with kClosed
  // (never silently lost); running ones finish.
  Shutdown(false, ErrorKind::kClosed,
           "the pool was destroyed (its last reference was dropped) before this request ran; "
           "keep the pool alive until its futures are done, or close() it");
  // A pool destroyed from its own callback cannot join the thread it runs on.
  for (auto& t : threads_) {
    if (t.joinable()) {
      if (t.get_id() == std::this_thread::get_id()) {
        t.detach();
      } else {
        t.join();
      }
    }
  }
}

void Pool::JoinWorkers() {
  for (auto& t : threads_) {
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
  }
}

std::vector<Pool::Slot> Pool::CompileSlots(const std::shared_ptr<Model>& model) {
  std::vector<Slot> slots(options_.workers);
  for (auto& slot : slots) {
    auto choice = CompileWithFallback(model, preferences_, options_.compile, &events_);
    slot.instance = std::move(choice.instance);
    slot.accelerator = std::move(choice.accelerator);
    if (!batch_sizes_.empty())
      slot.batched = CompileBatched(model, PreferenceList({slot.accelerator}));
  }
  return slots;
}

std::shared_ptr<Model> Pool::model() const {
  std::lock_guard<std::mutex> lock(slots_mutex_);
  return model_;
}

bool Pool::IsPoolThread() const {
  if (delivery_ && delivery_->OnDeliveryThread()) return true;
  const auto me = std::this_thread::get_id();
  return std::find(thread_ids_.begin(), thread_ids_.end(), me) != thread_ids_.end();
}

void Pool::NoteCallbackError(const std::string& error) {
  callback_errors_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(callback_error_mutex_);
  last_callback_error_ = error;
}

void Pool::CheckRequestShape(const Request& request) const {
  if (request.inputs.size() != inputs_.size() || request.outputs.size() != outputs_.size()) {
    throw Error(ErrorKind::kInput, "request has " + std::to_string(request.inputs.size()) +
                                       " inputs and " + std::to_string(request.outputs.size()) +
                                       " outputs; the model takes " +
                                       std::to_string(inputs_.size()) + " and gives " +
                                       std::to_string(outputs_.size()));
  }
}

uint64_t Pool::Submit(const std::shared_ptr<Request>& request, double block_timeout_seconds) {
  CheckRequestShape(*request);
  std::shared_ptr<Request> dropped;
  try {
    dropped = queue_.Push(request, block_timeout_seconds);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kQueueFull) rejected_.fetch_add(1, std::memory_order_relaxed);
    throw;
  }
  submitted_.fetch_add(1, std::memory_order_relaxed);
  if (dropped) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    End(*dropped, false, ErrorKind::kDropped,
        "dropped for a newer request: the queue is full and its policy is keep_latest");
  }
  return request->id();
}

void Pool::Run(const std::shared_ptr<Request>& request, double block_timeout_seconds) {
  CheckRequestShape(*request);
  if (TryRunDirect(request)) return;
  const bool spin = SpinWorthwhile();
  Submit(request, block_timeout_seconds);
  while (!request->WaitUntil(request->deadline(), spin)) {
    switch (queue_.ExpireIfWaiting(request->id())) {
      case RequestQueue::Expiry::kRemoved:
        expired_.fetch_add(1, std::memory_order_relaxed);
        End(*request, false, ErrorKind::kTimeout,
            "request timed out: its deadline passed before a worker was free for it");
        return;
      case RequestQueue::Expiry::kAboutToStart:
        // A free worker is waking up for it: not a timeout.
        if (request->WaitUntil(Clock::now() + kAboutToStartRecheck)) return;
        break;
      case RequestQueue::Expiry::kNotQueued:
        request->Wait();  // a worker has it; a started run completes
        return;
    }
  }
}

bool Pool::TryRunDirect(const std::shared_ptr<Request>& request) {
  // Lock-free hints first: a busy pool pays three atomic loads and nothing more.
  if (!options_.caller_runs || options_.max_batch > 1 || queue_.closed() ||
      queue_.queued_hint() != 0 || queue_.free_workers() == 0) {
    return false;
  }
  size_t index = options_.workers;
  {
    std::lock_guard<std::mutex> lock(gates_mutex_);
    // An accelerator's instance may be bound to its worker's thread (GPU and
    // NPU contexts): only CPU instances run on a caller's thread.
    for (size_t i = 0; i < options_.workers; ++i) {
      if (!gates_[i].held && IsCpuSlot(i)) {
        index = i;
        gates_[i].held = true;
        break;
      }
    }
  }
  if (index == options_.workers) return false;  // every CPU instance is busy
  const Running on = SlotNow(index);
  if (on.accelerator != "cpu") {  // swapped in since
    ReleaseGate(index, Clock::now());
    return false;
  }
  Scheduler::Grant grant;
  if (options_.scheduler) {
    // Only if the scheduler would grant this run now anyway: a better
    // waiter is served first, as with Acquire on a worker.
    grant = options_.scheduler->TryAcquire(options_.priority, Demand(on));
  }
  // Under the queue's lock: nothing queued (never overtake a queued
  // request) and a worker free, which this run now occupies.
  if ((options_.scheduler && !grant) || !queue_.ClaimIdle(*request)) {
    ReleaseGate(index, Clock::now());
    return false;  // `grant`, if taken, gives the budget back
  }
  {
    std::lock_guard<std::mutex> lock(gates_mutex_);
    gates_[index].direct_since = request->enqueued();
    ++direct_active_;
  }
  struct Active {
    Pool* pool;
    const void* outer = t_direct_run_pool;
    explicit Active(Pool* p) : pool(p) { t_direct_run_pool = p; }
    ~Active() {
      t_direct_run_pool = outer;
      std::lock_guard<std::mutex> lock(pool->gates_mutex_);
      if (--pool->direct_active_ == 0 && pool->gate_waiters_ > 0) pool->gate_freed_.notify_all();
    }
  } active(this);
  submitted_.fetch_add(1, std::memory_order_relaxed);
  busy_.fetch_add(1, std::memory_order_relaxed);
  Clock::time_point freed;
  if (request->ClaimFor(request->enqueued()) != Request::Claim::kStart) {
    // Ended before it was ever queued (a reused request): nothing to run.
    FreeSlot(index, &freed);
  } else {
    RecordStart(*request, Clock::now());
    Execute(index, on, *request, &freed);
    worker_runs_[index].fetch_add(1, std::memory_order_relaxed);
    caller_runs_.fetch_add(1, std::memory_order_relaxed);
  }
  grant.Release();
  busy_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

Pool::Running Pool::SlotNow(size_t index) const {
  std::lock_guard<std::mutex> lock(slots_mutex_);
  return {slots_[index].instance, slots_[index].accelerator};
}

bool Pool::IsCpuSlot(size_t index) const {
  std::lock_guard<std::mutex> lock(slots_mutex_);
  return slots_[index].accelerator == "cpu";
}

size_t Pool::TakeSlot(size_t index, const Request& request, Clock::time_point* free_since) {
  std::unique_lock<std::mutex> lock(gates_mutex_);
  bool waited = false;
  size_t slot = index;
  while (gates_[slot].held) {
    // A direct run holds this worker's instance. Any free CPU instance
    // serves as well (a worker thread may run any of them); otherwise wait
    // for a slot to be given back.
    slot = options_.workers;
    for (size_t j = 0; j < options_.workers; ++j) {
      if (!gates_[j].held && IsCpuSlot(j)) {
        slot = j;
        break;
      }
    }
    if (slot != options_.workers) break;
    ++gate_waiters_;
    gate_freed_.wait(lock);
    --gate_waiters_;
    waited = true;
    slot = index;
  }
  Gate& gate = gates_[slot];
  gate.held = true;
  // No worker was free when `request` was queued: it waited for an instance,
  // and a direct run may have been what held it.
  if (!request.found_free_worker()) {
    if (waited) {
      *free_since = std::max(*free_since, Clock::now());
    } else if (gate.direct_since != Clock::time_point{} &&
               gate.direct_since <= request.enqueued() && gate.freed > *free_since) {
      *free_since = gate.freed;
    }
  }
  return slot;
}

void Pool::ReleaseGate(size_t index, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(gates_mutex_);
  gates_[index].held = false;
  gates_[index].freed = now;
  if (gate_waiters_ > 0) gate_freed_.notify_all();
}

void Pool::FreeSlot(size_t index, Clock::time_point* free_since) {
  *free_since = Clock::now();
  ReleaseGate(index, *free_since);
  // After the gate: a caller that finds a worker free finds a slot free.
  queue_.WorkerFree();
}

bool Pool::Cancel(uint64_t id) {
  std::shared_ptr<Request> request = queue_.Remove(id);
  if (!request) return false;
  cancelled_.fetch_add(1, std::memory_order_relaxed);
  End(*request, false, ErrorKind::kCancelled, "cancelled before it started");
  return true;
}

void Pool::End(Request& request, bool ok, ErrorKind kind, std::string error) {
  if (!request.Finish(ok, kind, std::move(error))) return;
  if (!request.on_done) return;
  if (delivery_) {
    delivery_->Push(request.shared_from_this());
    return;
  }
  try {
    request.on_done(request);
  } catch (const std::exception& e) {
    // A broken callback must not kill a worker; it is counted and shown.
    NoteCallbackError(e.what());
  }
}

void Pool::WorkerLoop(size_t index, Clock::time_point started) {
  // When this worker last became free: a request enqueued after that (with
  // any time limit, 0 included) found a free worker and starts.
  // (Free since the pool started: counted by the constructor, so a request
  // made before this thread got going still finds it free.)
  if (options_.max_batch > 1) {
    BatchWorkerLoop(index, started);  // pool/batch.cc
    return;
  }
  Clock::time_point free_since = started;
  for (;;) {
    std::shared_ptr<Request> request = queue_.Pop(SpinWorthwhile());
    if (!request) return;
    busy_.fetch_add(1, std::memory_order_relaxed);
    const size_t slot = TakeSlot(index, *request, &free_since);
    const Running on = SlotNow(slot);
    Scheduler::Grant grant;
    if (options_.scheduler) {
      grant = options_.scheduler->Acquire(options_.priority, Demand(on), request->deadline());
      if (!grant) {
        ExpireWaitingForScheduler(*request, free_since);
        FreeSlot(slot, &free_since);
        busy_.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
    }
    switch (request->ClaimFor(free_since)) {
      case Request::Claim::kAbandoned:  // already ended by someone else
        FreeSlot(slot, &free_since);
        break;
      case Request::Claim::kExpired:
        expired_.fetch_add(1, std::memory_order_relaxed);
        FreeSlot(slot, &free_since);
        End(*request, false, ErrorKind::kTimeout,
            "request expired: its deadline passed before a worker was free for it");
        break;
      case Request::Claim::kStart: {
        RecordStart(*request, Clock::now());
        Execute(slot, on, *request, &free_since);
        grant.Release();  // the shared budget is free for the next best run
        worker_runs_[slot].fetch_add(1, std::memory_order_relaxed);
        break;
      }
    }
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
}

Scheduler::Demand Pool::Demand(const Running& on) const {
  Scheduler::Demand d;
  d.cpu_threads = options_.compile.num_threads > 0 ? options_.compile.num_threads : 1;
  if (on.accelerator != "cpu") d.accelerator = on.accelerator;
  return d;
}

void Pool::Execute(size_t index, const Running& on, Request& request,
                   Clock::time_point* free_since) {
  auto run_on = [&](Instance& inst) {
    for (size_t i = 0; i < input_bytes_.size(); ++i) {
      std::memcpy(inst.input_data(i), request.inputs[i], input_bytes_[i]);
    }
    inst.Run();
    for (size_t i = 0; i < output_bytes_.size(); ++i) {
      if (request.outputs[i] != nullptr) {
        std::memcpy(request.outputs[i], inst.output_data(i), output_bytes_[i]);
      }
    }
  };
  const auto start = Clock::now();
  try {
    request.accelerator_ = RunWithCpuFallback(
        index, [](Slot& slot) -> Engine& { return slot; }, on.instance, on.accelerator,
        options_.compile, 1, "runs", run_on);
    request.run_us_ = Micros(Clock::now() - start);
    NoteRunTime(request.run_us_);
    completed_.fetch_add(1, std::memory_order_relaxed);
    FreeSlot(index, free_since);
    End(request, true, ErrorKind::kInternal, "");
  } catch (const Error& e) {
    request.run_us_ = Micros(Clock::now() - start);
    failed_.fetch_add(1, std::memory_order_relaxed);
    FreeSlot(index, free_since);
    End(request, false, e.kind() == ErrorKind::kInput ? ErrorKind::kInput : ErrorKind::kRun,
        e.what());
  }
}

std::string Pool::RunWithCpuFallback(size_t index, const std::function<Engine&(Slot&)>& engine_of,
                                     const std::shared_ptr<Instance>& instance,
                                     const std::string& accelerator, const CompileOptions& compile,
                                     size_t requests, const std::string& runs,
                                     const std::function<void(Instance&)>& run_on) {
  try {
    run_on(*instance);
    return accelerator;
  } catch (const Error& e) {
    if (accelerator == "cpu") throw;
    // The accelerator failed a real run: answer on the CPU, and retire the
    // accelerator on this worker after repeated failures.
    std::shared_ptr<Instance> fallback;
    bool retire = false;
    {
      std::lock_guard<std::mutex> lock(slots_mutex_);
      Engine& engine = engine_of(slots_[index]);
      if (engine.instance == instance) {
        ++engine.failures;
        retire = engine.failures >= options_.retire_after_failures;
      }
      fallback = engine.cpu_fallback;
    }
    if (!fallback || fallback->model() != instance->model()) {
      CompileOptions cpu = compile;
      // No weight cache for this rare instance: the pool's cache path may
      // lead to another model's cache by now (during or after a swap the
      // binding points it at the new model's), and loading that would
      // answer with the other model's packed weights.
      cpu.weight_cache_path.clear();
      fallback = CompileWithFallback(instance->model(), {"cpu"}, cpu, &events_).instance;
    }
    events_.Add({accelerator, "cpu", "run", e.what(), UnixNow()});
    fallback_runs_.fetch_add(requests, std::memory_order_relaxed);
    run_on(*fallback);
    std::lock_guard<std::mutex> lock(slots_mutex_);
    Engine& engine = engine_of(slots_[index]);
    if (engine.instance == instance) {
      engine.cpu_fallback = fallback;
      if (retire) {
        events_.Add({accelerator, "cpu", "retired",
                     "failed " + std::to_string(engine.failures) + " " + runs + " on worker " +
                         std::to_string(index),
                     UnixNow()});
        engine.instance = fallback;
        engine.accelerator = "cpu";
        engine.cpu_fallback.reset();
        engine.failures = 0;
      }
    }
    return "cpu";
  }
}

void Pool::NoteRunTime(double run_us) {
  run_time_.Record(run_us);
  // A racy read-modify-write among workers is fine for a heuristic.
  const double recent = recent_run_us_.load(std::memory_order_relaxed);
  recent_run_us_.store(recent == 0.0 ? run_us : 0.9 * recent + 0.1 * run_us,
                       std::memory_order_relaxed);
}

void Pool::RecordStart(Request& request, Clock::time_point now) {
  const double queue_us = Micros(now - request.enqueued());
  queue_wait_.Record(queue_us);
  request.RecordTimes(queue_us, 0, "");
}

void Pool::ExpireWaitingForScheduler(Request& request, Clock::time_point free_since) {
  if (request.ClaimFor(free_since) == Request::Claim::kAbandoned) return;
  expired_.fetch_add(1, std::memory_order_relaxed);
  End(request, false, ErrorKind::kTimeout,
      "request expired: its deadline passed while it waited for the scheduler's "
      "resources (higher priorities were using them)");
}

void Pool::Close(bool drain) {
  Shutdown(drain, ErrorKind::kCancelled,
           "cancelled: the pool was closed with drain=False before this request ran");
}

void Pool::Shutdown(bool drain, ErrorKind kind, const std::string& why) {
  // A close from a callback (on the delivery thread) only signals, and must
  // not wait for close_mutex_: a close on another thread may hold it while it
  // joins the very thread this callback runs on.
  const bool on_pool_thread = IsPoolThread();
  std::unique_lock<std::mutex> close_lock(close_mutex_, std::defer_lock);
  if (!on_pool_thread) close_lock.lock();
  for (auto& r : queue_.Close(drain)) {
    cancelled_.fetch_add(1, std::memory_order_relaxed);
    End(*r, false, kind, why);
  }
  // From a completion callback only signal: joining there could wait on a
  // thread that waits for this one. The destructor, or a close() from any
  // other thread, joins.
  if (on_pool_thread) return;
  JoinWorkers();
  // Direct runs still going on their callers' threads finish too (none can
  // start now: the queue is closed), unless this close comes from the
  // completion callback of this thread's own direct run.
  if (t_direct_run_pool != this) {
    std::unique_lock<std::mutex> lock(gates_mutex_);
    while (direct_active_ > 0) {
      ++gate_waiters_;
      gate_freed_.wait(lock);
      --gate_waiters_;
    }
  }
  // After the workers: what they ended is delivered before close returns,
  // unless a callback blocks past the bound (it then finishes afterwards).
  if (delivery_) delivery_->Stop(options_.callback_wait_seconds);
}

void Pool::Swap(std::shared_ptr<Model> model) {
  std::lock_guard<std::mutex> swap_lock(swap_mutex_);
  if (queue_.closed()) throw Error(ErrorKind::kClosed, "the pool is closed");
  const auto& sig = model->signatures().at(options_.compile.signature);
  CheckSameContract(model_->signatures().at(options_.compile.signature).inputs, sig.inputs,
                    "input");
  CheckSameContract(model_->signatures().at(options_.compile.signature).outputs, sig.outputs,
                    "output");
  auto fresh = CompileSlots(model);  // on the side: the old slots keep serving
  {
    std::lock_guard<std::mutex> lock(slots_mutex_);
    slots_.swap(fresh);
    model_ = std::move(model);
  }
  swaps_.fetch_add(1, std::memory_order_relaxed);
  // `fresh` now holds the old instances; those still running a request are
  // kept alive by that worker's reference and freed when it finishes.
}

bool Pool::SpinWorthwhile() const {
  return recent_run_us_.load(std::memory_order_relaxed) < kSpinWorthwhileUs;
}

PoolStats Pool::Stats() const {
  PoolStats s;
  s.submitted = submitted_.load();
  s.completed = completed_.load();
  s.failed = failed_.load();
  s.dropped = dropped_.load();
  s.rejected = rejected_.load();
  s.expired = expired_.load();
  s.cancelled = cancelled_.load();
  s.fallback_runs = fallback_runs_.load();
  s.swaps = swaps_.load();
  s.callback_errors = callback_errors_.load();
  s.caller_runs = caller_runs_.load();
  s.queue_depth = queue_.size();
  s.queue_capacity = options_.queue_capacity;
  s.busy_workers = busy_.load();
  s.workers = options_.workers;
  s.queue_wait = queue_wait_.Take();
  s.run_time = run_time_.Take();
  {
    std::lock_guard<std::mutex> lock(slots_mutex_);
    for (const auto& slot : slots_) s.worker_accelerators.push_back(slot.accelerator);
  }
  for (size_t i = 0; i < options_.workers; ++i) s.worker_runs.push_back(worker_runs_[i].load());
  s.batches = batches_.load();
  s.batched_requests = batched_requests_.load();
  s.max_batch = options_.max_batch;
  {
    std::lock_guard<std::mutex> lock(callback_error_mutex_);
    s.last_callback_error = last_callback_error_;
  }
  return s;
}

}  // namespace edgepipe
