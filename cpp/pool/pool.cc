#include "pool/pool.h"

#include <algorithm>
#include <cstring>

namespace edgepipe {

namespace {

// How long a thread polls before sleeping on a condition variable. A pool
// call on a small model takes microseconds; a futex sleep and wake-up on each
// side costs as much again, and far more when no core is idle. Polling this
// briefly keeps a busy hand-off off the futex and costs an idle one nothing
// but this window.
constexpr auto kSpin = std::chrono::microseconds(50);
// Runs longer than this make polling a waste (see Pool::SpinWorthwhile).
constexpr double kSpinWorthwhileUs = 20.0;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield");
#endif
}

template <class Pred>
bool SpinFor(Pred&& ready) {
  const auto until = Clock::now() + kSpin;
  do {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      CpuRelax();
    }
  } while (Clock::now() < until);
  return ready();
}

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// Same names, types and shapes, in the same order: what callers already hold
// buffers for must stay valid across a swap.
void CheckSameContract(const std::vector<TensorInfo>& old_list,
                       const std::vector<TensorInfo>& new_list,
                       const std::string& what) {
  if (old_list.size() != new_list.size()) {
    throw Error(ErrorKind::kModel, "the new model has " + std::to_string(new_list.size()) +
                                       " " + what + "s, the serving one " +
                                       std::to_string(old_list.size()));
  }
  for (size_t i = 0; i < old_list.size(); ++i) {
    const auto& a = old_list[i];
    const auto& b = new_list[i];
    if (a.name != b.name || a.element_type != b.element_type || a.shape != b.shape) {
      throw Error(ErrorKind::kModel,
                  "the new model's " + what + " " + std::to_string(i) + " is '" + b.name +
                      "' " + ElementTypeName(b.element_type) + ShapeText(b.shape) +
                      " but the serving model's is '" + a.name + "' " +
                      ElementTypeName(a.element_type) + ShapeText(a.shape));
    }
  }
}

}  // namespace

QueuePolicy ParseQueuePolicy(const std::string& name) {
  if (name == "block") return QueuePolicy::kBlock;
  if (name == "reject") return QueuePolicy::kReject;
  if (name == "keep_latest") return QueuePolicy::kKeepLatest;
  throw Error(ErrorKind::kInput, "unknown queue policy '" + name +
                                     "'; expected block, reject or keep_latest");
}

bool Request::TryStart() {
  int expected = kQueued;
  return state_.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel);
}

bool Request::Finish(bool ok, ErrorKind kind, std::string error) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_.load(std::memory_order_acquire) == kDone) return false;
    ok_ = ok;
    error_kind_ = kind;
    error_ = std::move(error);
    state_.store(kDone, std::memory_order_release);
    wake = waiting_;
  }
  if (wake) cv_.notify_all();
  return true;
}

bool Request::Wait(double timeout_seconds, bool spin) {
  auto is_done = [this] { return state_.load(std::memory_order_acquire) == kDone; };
  if (spin && SpinFor(is_done)) {
    // Results were written before state_ (release); taking the lock orders
    // them for this thread the same way the sleeping path does.
    std::lock_guard<std::mutex> lock(mutex_);
    return true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  waiting_ = true;
  struct Unmark {
    bool& flag;
    ~Unmark() { flag = false; }
  } unmark{waiting_};
  if (timeout_seconds < 0) {
    cv_.wait(lock, is_done);
    return true;
  }
  if (cv_.wait_for(lock, std::chrono::duration<double>(timeout_seconds), is_done)) return true;
  // Not done in time: claim it so no worker starts it. If a worker already
  // started it, the run finishes (it cannot be interrupted) and we wait.
  int expected = kQueued;
  if (state_.compare_exchange_strong(expected, kDone, std::memory_order_acq_rel)) {
    ok_ = false;
    error_kind_ = ErrorKind::kTimeout;
    error_ = "request timed out after " + std::to_string(timeout_seconds) +
             " s waiting in the queue";
    return false;
  }
  cv_.wait(lock, is_done);
  return true;
}

Pool::Pool(std::shared_ptr<Model> model, PoolOptions options)
    : options_(std::move(options)) {
  if (options_.workers == 0) throw Error(ErrorKind::kInput, "a pool needs at least one worker");
  if (options_.queue_capacity == 0) {
    throw Error(ErrorKind::kInput, "queue_size must be at least 1");
  }
  preferences_ = PreferenceList(options_.accelerators);
  const auto& sig = model->signatures().at(options_.compile.signature);
  for (const auto* list : {&sig.inputs, &sig.outputs}) {
    for (const auto& t : *list) {
      if (t.is_dynamic()) {
        throw Error(ErrorKind::kInput,
                    "tensor '" + t.name + "' has a dynamic shape " + ShapeText(t.shape) +
                        "; pools serve fixed shapes: resize with a Session instead");
      }
    }
  }
  slots_ = CompileSlots(model);
  inputs_ = slots_[0].instance->inputs();
  outputs_ = slots_[0].instance->outputs();
  for (size_t i = 0; i < inputs_.size(); ++i) input_bytes_.push_back(slots_[0].instance->input_bytes(i));
  for (size_t i = 0; i < outputs_.size(); ++i) output_bytes_.push_back(slots_[0].instance->output_bytes(i));
  model_ = std::move(model);
  if (options_.deliver_locked) {
    delivery_ = std::make_unique<Delivery>(options_.deliver_locked, [this](const std::string& e) {
      NoteCallbackError(e);
    });
  }
  worker_runs_ = std::make_unique<std::atomic<uint64_t>[]>(options_.workers);
  for (size_t i = 0; i < options_.workers; ++i) {
    threads_.emplace_back([this, i] { WorkerLoop(i); });
    thread_ids_.push_back(threads_.back().get_id());
  }
}

Pool::~Pool() {
  Close(false);
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

std::vector<Pool::Slot> Pool::CompileSlots(const std::shared_ptr<Model>& model) {
  std::vector<Slot> slots(options_.workers);
  for (auto& slot : slots) {
    auto choice = CompileWithFallback(model, preferences_, options_.compile, &events_);
    slot.instance = std::move(choice.instance);
    slot.accelerator = std::move(choice.accelerator);
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

void Pool::Submit(const std::shared_ptr<Request>& request, double block_timeout_seconds) {
  if (request->inputs.size() != inputs_.size() || request->outputs.size() != outputs_.size()) {
    throw Error(ErrorKind::kInput, "request has " + std::to_string(request->inputs.size()) +
                                       " inputs and " + std::to_string(request->outputs.size()) +
                                       " outputs; the model takes " +
                                       std::to_string(inputs_.size()) + " and gives " +
                                       std::to_string(outputs_.size()));
  }
  std::shared_ptr<Request> dropped;
  bool wake_worker = false;
  {
    std::unique_lock<std::mutex> lock(queue_mutex_);
    if (stopping_) throw Error(ErrorKind::kClosed, "the pool is closed");
    if (queue_.size() >= options_.queue_capacity) {
      switch (options_.policy) {
        case QueuePolicy::kReject:
          rejected_.fetch_add(1, std::memory_order_relaxed);
          throw Error(ErrorKind::kQueueFull,
                      "the pool's queue is full (" + std::to_string(options_.queue_capacity) +
                          " waiting requests); retry later or use a larger queue_size");
        case QueuePolicy::kKeepLatest:
          dropped = std::move(queue_.front());
          queue_.pop_front();
          queued_.fetch_sub(1, std::memory_order_relaxed);
          break;
        case QueuePolicy::kBlock: {
          auto has_room = [this] {
            return stopping_ || queue_.size() < options_.queue_capacity;
          };
          ++blocked_submitters_;
          bool room = true;
          if (block_timeout_seconds < 0) {
            not_full_.wait(lock, has_room);
          } else {
            room = not_full_.wait_for(
                lock, std::chrono::duration<double>(block_timeout_seconds), has_room);
          }
          --blocked_submitters_;
          if (!room) {
            rejected_.fetch_add(1, std::memory_order_relaxed);
            throw Error(ErrorKind::kQueueFull,
                        "the pool's queue stayed full for " +
                            std::to_string(block_timeout_seconds) + " s");
          }
          if (stopping_) throw Error(ErrorKind::kClosed, "the pool is closed");
          break;
        }
      }
    }
    request->enqueued_ = Clock::now();
    queue_.push_back(request);
    queued_.fetch_add(1, std::memory_order_release);
    submitted_.fetch_add(1, std::memory_order_relaxed);
    wake_worker = sleeping_workers_ > 0;
  }
  if (wake_worker) not_empty_.notify_one();
  if (dropped) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    End(*dropped, false, ErrorKind::kDropped,
        "dropped for a newer request: the queue is full and its policy is keep_latest");
  }
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

void Pool::WorkerLoop(size_t index) {
  for (;;) {
    std::shared_ptr<Request> request;
    bool wake_submitter = false;
    if (SpinWorthwhile()) {
      SpinFor([this] {
        return queued_.load(std::memory_order_acquire) > 0 ||
               stop_flag_.load(std::memory_order_acquire);
      });
    }
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      ++sleeping_workers_;
      not_empty_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --sleeping_workers_;
      if (queue_.empty() || (stopping_ && !drain_)) return;
      request = std::move(queue_.front());
      queue_.pop_front();
      queued_.fetch_sub(1, std::memory_order_relaxed);
      busy_.fetch_add(1, std::memory_order_relaxed);
      wake_submitter = blocked_submitters_ > 0;
    }
    if (wake_submitter) not_full_.notify_one();
    const auto now = Clock::now();
    if (!request->TryStart()) {
      // Abandoned by a caller whose wait timed out; already ended.
      expired_.fetch_add(1, std::memory_order_relaxed);
    } else if (now > request->deadline) {
      expired_.fetch_add(1, std::memory_order_relaxed);
      End(*request, false, ErrorKind::kTimeout,
          "request expired: its deadline passed while it waited in the queue");
    } else {
      request->queue_us_ = Micros(now - request->enqueued_);
      queue_wait_.Record(request->queue_us_);
      Execute(index, *request);
      worker_runs_[index].fetch_add(1, std::memory_order_relaxed);
    }
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Pool::Execute(size_t index, Request& request) {
  std::shared_ptr<Instance> instance;
  std::string accelerator;
  {
    std::lock_guard<std::mutex> lock(slots_mutex_);
    instance = slots_[index].instance;
    accelerator = slots_[index].accelerator;
  }
  auto run_on = [&](Instance& inst) {
    for (size_t i = 0; i < input_bytes_.size(); ++i) {
      std::memcpy(inst.input_data(i), request.inputs[i], input_bytes_[i]);
    }
    inst.Run();
    for (size_t i = 0; i < output_bytes_.size(); ++i) {
      std::memcpy(request.outputs[i], inst.output_data(i), output_bytes_[i]);
    }
  };
  const auto start = Clock::now();
  try {
    try {
      run_on(*instance);
      request.accelerator_ = accelerator;
    } catch (const Error& e) {
      if (accelerator == "cpu") throw;
      // The accelerator failed a real run: answer this request on the CPU
      // and retire the accelerator on this worker after repeated failures.
      std::shared_ptr<Instance> fallback;
      bool retire = false;
      {
        std::lock_guard<std::mutex> lock(slots_mutex_);
        Slot& slot = slots_[index];
        if (slot.instance == instance) {
          ++slot.failures;
          retire = slot.failures >= options_.retire_after_failures;
        }
        fallback = slot.cpu_fallback;
      }
      if (!fallback || fallback->model() != instance->model()) {
        CompileOptions compile = options_.compile;
        // No weight cache for this rare instance: the pool's cache path may
        // lead to another model's cache by now (during or after a swap the
        // binding points it at the new model's), and loading that would
        // answer with the other model's packed weights.
        compile.weight_cache_path.clear();
        fallback = CompileWithFallback(instance->model(), {"cpu"}, compile, &events_).instance;
      }
      events_.Add({accelerator, "cpu", "run", e.what(), UnixNow()});
      fallback_runs_.fetch_add(1, std::memory_order_relaxed);
      run_on(*fallback);
      request.accelerator_ = "cpu";
      {
        std::lock_guard<std::mutex> lock(slots_mutex_);
        Slot& slot = slots_[index];
        if (slot.instance == instance) {
          slot.cpu_fallback = fallback;
          if (retire) {
            events_.Add({accelerator, "cpu", "retired",
                         "failed " + std::to_string(slot.failures) + " runs on worker " +
                             std::to_string(index),
                         UnixNow()});
            slot.instance = fallback;
            slot.accelerator = "cpu";
            slot.cpu_fallback.reset();
            slot.failures = 0;
          }
        }
      }
    }
    request.run_us_ = Micros(Clock::now() - start);
    run_time_.Record(request.run_us_);
    // A racy read-modify-write among workers is fine for a heuristic.
    const double recent = recent_run_us_.load(std::memory_order_relaxed);
    recent_run_us_.store(recent == 0.0 ? request.run_us_ : 0.9 * recent + 0.1 * request.run_us_,
                         std::memory_order_relaxed);
    completed_.fetch_add(1, std::memory_order_relaxed);
    End(request, true, ErrorKind::kInternal, "");
  } catch (const Error& e) {
    request.run_us_ = Micros(Clock::now() - start);
    failed_.fetch_add(1, std::memory_order_relaxed);
    End(request, false, e.kind() == ErrorKind::kInput ? ErrorKind::kInput : ErrorKind::kRun,
        e.what());
  }
}

void Pool::Close(bool drain) {
  // A close from a callback (on the delivery thread) only signals, and must
  // not wait for close_mutex_: a close on another thread may hold it while it
  // joins the very thread this callback runs on.
  const bool on_pool_thread = IsPoolThread();
  std::unique_lock<std::mutex> close_lock(close_mutex_, std::defer_lock);
  if (!on_pool_thread) close_lock.lock();
  std::deque<std::shared_ptr<Request>> cancelled;
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    if (!stopping_) {
      stopping_ = true;
      stop_flag_.store(true, std::memory_order_release);
      drain_ = drain;
      closed_.store(true);
    }
    if (!drain) {
      cancelled.swap(queue_);
      queued_.store(0, std::memory_order_relaxed);
    }
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  for (auto& r : cancelled) {
    cancelled_.fetch_add(1, std::memory_order_relaxed);
    if (r->TryStart()) {
      End(*r, false, ErrorKind::kCancelled,
          "cancelled: the pool was closed with drain=False before this request ran");
    }
  }
  // From a completion callback only signal: joining there could wait on a
  // thread that waits for this one. The destructor, or a close() from any
  // other thread, joins.
  if (on_pool_thread) return;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  // After the workers: what they ended is delivered before close returns.
  if (delivery_) delivery_->Stop();
}

void Pool::Swap(std::shared_ptr<Model> model) {
  std::lock_guard<std::mutex> swap_lock(swap_mutex_);
  if (closed_.load()) throw Error(ErrorKind::kClosed, "the pool is closed");
  const auto& sig = model->signatures().at(options_.compile.signature);
  CheckSameContract(model_->signatures().at(options_.compile.signature).inputs, sig.inputs, "input");
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
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    s.queue_depth = queue_.size();
  }
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
  {
    std::lock_guard<std::mutex> lock(callback_error_mutex_);
    s.last_callback_error = last_callback_error_;
  }
  return s;
}

}  // namespace edgepipe
