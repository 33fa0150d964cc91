// Accelerator choice with fallback: try each accelerator of a preference
// list in order, record why each one that failed was left, and end on the
// CPU, which always works for a model the verifier accepted.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "compiled/instance.h"

namespace edgepipe {

// One step down the preference list, visible in stats and bench output.
struct FallbackEvent {
  std::string from;   // accelerator left
  std::string to;     // accelerator taken instead ("" when none was left)
  std::string stage;  // "environment", "compile", "first_run", "run", "retired"
  std::string error;  // the runtime's or edgepipe's message
  double unix_time = 0;
};

// Thread-safe append-only list of events, shared by a pool's workers.
class EventLog {
 public:
  void Add(FallbackEvent event);
  std::vector<FallbackEvent> Snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::vector<FallbackEvent> events_;
};

// The runtime's hardware bits for an accelerator name ("cpu", "gpu", "npu").
// Non-CPU choices include the CPU bit so ops the accelerator cannot take stay
// on the CPU (partial delegation) instead of failing the compile.
int AcceleratorBits(const std::string& name);

// Normalises a preference list: validates names, drops duplicates, and
// appends "cpu" unless `allow_cpu_fallback` is false.
std::vector<std::string> PreferenceList(const std::vector<std::string>& wanted,
                                        bool allow_cpu_fallback = true);

struct CompiledChoice {
  std::shared_ptr<Instance> instance;
  std::string accelerator;
};

// Compiles `model` on the first accelerator of `preferences` that compiles
// and (for non-CPU ones) survives a first run on its zero-filled inputs.
// Every failure is added to `log`. Throws the last error when none works.
CompiledChoice CompileWithFallback(const std::shared_ptr<Model>& model,
                                   const std::vector<std::string>& preferences,
                                   const CompileOptions& base, EventLog* log);

double UnixNow();

}  // namespace edgepipe
