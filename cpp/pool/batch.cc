// Dynamic batching of a pool: the worker loop that takes several requests at
// once and the run that stacks them into one invoke (see pool/batch.h).
#include "pool/batch.h"

#include <algorithm>
#include <cstring>

#include "pool/pool.h"

namespace edgepipe {

std::vector<size_t> BatchSizes(size_t max_batch) {
  std::vector<size_t> sizes;
  for (size_t n = 2; n < max_batch; n *= 2) sizes.push_back(n);
  if (max_batch > 1) sizes.push_back(max_batch);
  return sizes;
}

size_t BatchSizeFor(const std::vector<size_t>& sizes, size_t k) {
  return static_cast<size_t>(std::lower_bound(sizes.begin(), sizes.end(), k) - sizes.begin());
}

std::vector<Pool::BatchInstance> Pool::CompileBatched(const std::shared_ptr<Model>& model,
                                                      const std::vector<std::string>& preferences) {
  std::vector<BatchInstance> out;
  for (size_t size : batch_sizes_) {
    CompileOptions compile = options_.compile;
    compile.batch = size;
    auto choice = CompileWithFallback(model, preferences, compile, &events_);
    BatchInstance b;
    b.size = size;
    b.instance = std::move(choice.instance);
    b.accelerator = std::move(choice.accelerator);
    out.push_back(std::move(b));
  }
  return out;
}

void Pool::BatchWorkerLoop(size_t index, Clock::time_point started) {
  // As WorkerLoop, for a batch: see there for free_since.
  Clock::time_point free_since = started;
  std::vector<std::shared_ptr<Request>> taken, batch;
  for (;;) {
    if (queue_.PopBatch(SpinWorthwhile(), &taken) == 0) return;
    busy_.fetch_add(1, std::memory_order_relaxed);
    // The slot whose instances run this batch (see TakeSlot: a direct run
    // may hold this worker's own).
    const size_t slot = TakeSlot(index, *taken.front(), &free_since);
    const Running on = SlotNow(slot);
    Scheduler::Grant grant;
    if (options_.scheduler) {
      // One run of the batch takes the instance's threads once; it may wait
      // for them as long as its most patient request may.
      Clock::time_point latest = Clock::time_point::min();
      for (const auto& r : taken) latest = std::max(latest, r->deadline());
      grant = options_.scheduler->Acquire(options_.priority, Demand(on), latest);
    }
    const Clock::time_point granted = Clock::now();
    batch.clear();
    for (const auto& r : taken) {
      if (options_.scheduler && (!grant || r->deadline() < granted)) {
        ExpireWaitingForScheduler(*r, free_since);
        continue;
      }
      switch (r->ClaimFor(free_since)) {
        case Request::Claim::kAbandoned:  // already ended by someone else
          break;
        case Request::Claim::kExpired:
          expired_.fetch_add(1, std::memory_order_relaxed);
          End(*r, false, ErrorKind::kTimeout,
              "request expired: its deadline passed before a worker was free for it");
          break;
        case Request::Claim::kStart:
          RecordStart(*r, granted);
          batch.push_back(r);
          break;
      }
    }
    taken.clear();
    if (batch.empty()) {
      FreeSlot(slot, &free_since);
    } else {
      batches_.fetch_add(1, std::memory_order_relaxed);
      batched_requests_.fetch_add(batch.size(), std::memory_order_relaxed);
      worker_runs_[slot].fetch_add(batch.size(), std::memory_order_relaxed);
      if (batch.size() == 1) {
        Execute(slot, on, *batch[0], &free_since);  // the batch-1 instance, as without batching
      } else {
        ExecuteBatch(slot, batch, &free_since);
      }
    }
    grant.Release();  // the shared budget is free for the next best run
    batch.clear();    // the worker keeps no request alive while it waits
    busy_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Pool::ExecuteBatch(size_t index, const std::vector<std::shared_ptr<Request>>& batch,
                        Clock::time_point* free_since) {
  const size_t k = batch.size();
  const size_t which = BatchSizeFor(batch_sizes_, k);
  std::shared_ptr<Instance> instance;
  std::string accelerator;
  {
    std::lock_guard<std::mutex> lock(slots_mutex_);
    const BatchInstance& b = slots_[index].batched.at(which);
    instance = b.instance;
    accelerator = b.accelerator;
  }
  const size_t rows = batch_sizes_[which];
  auto run_on = [&](Instance& inst) {
    for (size_t i = 0; i < input_bytes_.size(); ++i) {
      const size_t row = input_bytes_[i];
      auto* dst = static_cast<uint8_t*>(inst.input_data(i));
      for (size_t j = 0; j < k; ++j) std::memcpy(dst + j * row, batch[j]->inputs[i], row);
      // Rows past the requests: zeros, so a padded run is deterministic.
      if (rows > k) std::memset(dst + k * row, 0, (rows - k) * row);
    }
    inst.Run();
    for (size_t i = 0; i < output_bytes_.size(); ++i) {
      const size_t row = output_bytes_[i];
      const auto* src = static_cast<const uint8_t*>(inst.output_data(i));
      for (size_t j = 0; j < k; ++j) {
        if (batch[j]->outputs[i] != nullptr) std::memcpy(batch[j]->outputs[i], src + j * row, row);
      }
    }
  };
  const auto start = Clock::now();
  auto finish = [&](bool ok, const std::string& ran_on, ErrorKind kind, const std::string& error) {
    const double run_us = Micros(Clock::now() - start);
    if (ok) {
      NoteRunTime(run_us);
      completed_.fetch_add(k, std::memory_order_relaxed);
    } else {
      failed_.fetch_add(k, std::memory_order_relaxed);
    }
    for (const auto& r : batch) {
      r->run_us_ = run_us;
      if (ok) r->accelerator_ = ran_on;
    }
    FreeSlot(index, free_since);
    for (const auto& r : batch) End(*r, ok, kind, error);
  };
  std::string ran_on;
  try {
    CompileOptions compile = options_.compile;
    compile.batch = rows;
    ran_on = RunWithCpuFallback(
        index, [which](Slot& slot) -> Engine& { return slot.batched.at(which); }, instance,
        accelerator, compile, k, "batch runs of " + std::to_string(rows), run_on);
  } catch (const Error& e) {
    finish(false, "", e.kind() == ErrorKind::kInput ? ErrorKind::kInput : ErrorKind::kRun,
           e.what());
    return;
  }
  finish(true, ran_on, ErrorKind::kInternal, "");
}

}  // namespace edgepipe
