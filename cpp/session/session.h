// A session: one compiled instance of a model for direct, synchronous use,
// chosen down an accelerator preference list (accel/fallback.h), safe to call
// from several threads (one run at a time).
//
// Owns: the instance (and through it the model), the fallback events of its
// compile. Used by the Python binding (python/bindings/session.cc) and the
// C++ tools (cpp/tools/edgepipe_run.cc) alike.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "accel/fallback.h"
#include "compiled/instance.h"

namespace edgepipe {

struct SessionOptions {
  std::vector<std::string> accelerators = {"cpu"};  // preference order
  bool allow_cpu_fallback = true;                   // append "cpu" when absent
  CompileOptions compile;                           // threads, weight cache, signature, plugins
};

class Session {
 public:
  // Compiles down the preference list; throws the last error when nothing
  // compiles (kInput for a caller mistake, before any attempt).
  Session(std::shared_ptr<Model> model, SessionOptions options);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Exclusive use of the instance: while held, shapes cannot change and no
  // other run can start, so checks done under it stay true for the run.
  class Guard {
   public:
    explicit Guard(Session& session) : session_(session), lock_(session.mutex_) {}
    Instance& instance() { return *session_.instance_; }

   private:
    friend class Session;
    Session& session_;
    std::unique_lock<std::mutex> lock_;
  };

  // Runs once under `guard`. `inputs`: empty (run on the buffers as they
  // are, e.g. filled through input_data) or one pointer per input to
  // input_bytes(i) contiguous bytes; nullptr (or the instance's own buffer)
  // skips that copy. `outputs`: empty, or one pointer per output to
  // output_bytes(i) bytes; nullptr skips that output (a subset).
  void Run(Guard& guard, const std::vector<const void*>& inputs, const std::vector<void*>& outputs);
  // The same, taking the guard itself.
  void Run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs);

  // Runs n times on the current buffers without a host language in the
  // loop (copying through scratch buffers when `copy`): the floor that a
  // binding's per-call overhead is measured against. Returns seconds.
  double BenchLoop(size_t n, bool copy);

  // Changes input `index`'s shape (dynamic models); see Instance::Resize.
  void Resize(size_t index, const std::vector<int32_t>& shape);

  // Snapshots (copies): shapes may change under Resize.
  std::vector<TensorInfo> inputs();
  std::vector<TensorInfo> outputs();
  // The instance itself, for reads that need no lock (delegation, model).
  const std::shared_ptr<Instance>& instance() const { return instance_; }
  const std::string& accelerator() const { return accelerator_; }
  std::vector<FallbackEvent> events() const { return events_.Snapshot(); }

 private:
  std::shared_ptr<Instance> instance_;
  std::string accelerator_;
  EventLog events_;
  std::mutex mutex_;
};

}  // namespace edgepipe
