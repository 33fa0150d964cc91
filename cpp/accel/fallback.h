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
  std::string from;  // accelerator left
  std::string to;    // accelerator taken instead ("" when none was left)
  // "policy" (denied before any attempt, from Python), "library_load",
  // "accelerator_init", "compile", "first_run", "run", "retired"
  std::string stage;
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

// Delegate plugins are named "plugin:<path of the .so>".
constexpr const char* kPluginPrefix = "plugin:";
bool IsPluginName(const std::string& name);

// The runtime's hardware bits for an accelerator name ("cpu", "gpu", "npu",
// "plugin:<path>"). Non-CPU choices include the CPU bit so ops the
// accelerator cannot take stay on the CPU (partial delegation) instead of
// failing the compile; a plugin runs with the CPU bit only (the delegate
// dispatcher applies it regardless of bits).
int AcceleratorBits(const std::string& name);

// `base` set up for one accelerator name: bits and plugin path.
CompileOptions OptionsFor(const std::string& name, const CompileOptions& base);

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
// Every failure is added to `log` with its stage. Throws the last error when
// none works. With base.crash_mark_dir set, each non-CPU attempt is bracketed
// by a crash mark (accel/crash_mark.h).
CompiledChoice CompileWithFallback(const std::shared_ptr<Model>& model,
                                   const std::vector<std::string>& preferences,
                                   const CompileOptions& base, EventLog* log);

double UnixNow();

}  // namespace edgepipe
