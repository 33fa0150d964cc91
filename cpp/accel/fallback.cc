#include "accel/fallback.h"

#include <algorithm>
#include <cstring>

#include "accel/crash_mark.h"

namespace edgepipe {

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void EventLog::Add(FallbackEvent event) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(std::move(event));
}

std::vector<FallbackEvent> EventLog::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

bool IsPluginName(const std::string& name) {
  return name.rfind(kPluginPrefix, 0) == 0 && name.size() > std::strlen(kPluginPrefix);
}

int AcceleratorBits(const std::string& name) {
  if (name == "cpu" || IsPluginName(name)) return litert::kHwCpu;
  if (name == "gpu") return litert::kHwGpu | litert::kHwCpu;
  if (name == "npu") return litert::kHwNpu | litert::kHwCpu;
  throw Error(ErrorKind::kInput,
              "unknown accelerator '" + name + "'; expected one of: cpu, gpu, npu, plugin:<path>");
}

CompileOptions OptionsFor(const std::string& name, const CompileOptions& base) {
  CompileOptions options = base;
  options.accelerators = AcceleratorBits(name);
  options.plugin_path = IsPluginName(name) ? name.substr(std::strlen(kPluginPrefix)) : "";
  return options;
}

std::vector<std::string> PreferenceList(const std::vector<std::string>& wanted,
                                        bool allow_cpu_fallback) {
  std::vector<std::string> out;
  for (const auto& name : wanted) {
    AcceleratorBits(name);  // validates
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  if (allow_cpu_fallback && std::find(out.begin(), out.end(), "cpu") == out.end()) {
    out.push_back("cpu");
  }
  if (out.empty()) throw Error(ErrorKind::kInput, "no accelerator to try");
  return out;
}

CompiledChoice CompileWithFallback(const std::shared_ptr<Model>& model,
                                   const std::vector<std::string>& preferences,
                                   const CompileOptions& base, EventLog* log) {
  for (size_t i = 0; i < preferences.size(); ++i) {
    const std::string& name = preferences[i];
    const std::string next = i + 1 < preferences.size() ? preferences[i + 1] : "";
    CompileOptions options = OptionsFor(name, base);
    std::string stage = "compile";
    try {
      // Held until this attempt ends either way; only a crash leaves it.
      std::unique_ptr<CrashMark> mark;
      if (name != "cpu") {
        mark = std::make_unique<CrashMark>(base.crash_mark_dir, name, model->description());
      }
      auto instance = std::make_shared<Instance>(model, options);
      if (name != "cpu") {
        // A delegate that compiles but cannot run is found here, on zeros,
        // rather than on the first real request.
        stage = "first_run";
        instance->Run();
      }
      return {std::move(instance), name};
    } catch (const AcceleratorError& e) {
      if (log) log->Add({name, next, e.stage(), e.what(), UnixNow()});
      if (next.empty()) throw;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kInput) throw;  // the caller's mistake, not the accelerator's
      if (log) log->Add({name, next, stage, e.what(), UnixNow()});
      if (next.empty()) throw;
    }
  }
  throw Error(ErrorKind::kInternal, "empty accelerator preference list");
}

}  // namespace edgepipe
