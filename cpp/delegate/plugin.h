// Classic TFLite delegates (external-delegate plugins such as libedgetpu.so.1
// or a vendor's NNAPI/Hexagon/GPU delegate built as a plugin) run through the
// LiteRT C API, not through a second TFLite backend.
//
// How: the accelerator environment registers one edgepipe accelerator, the
// *delegate dispatcher*, before the CPU (XNNPACK) accelerator, with hardware
// bits 0 and "not JIT-responsible", so LiteRT applies it on every compile in
// that environment (bits 2/4 would tie it to the GPU/NPU request, and the NPU
// bit makes 2.3.0 skip it for any model without DISPATCH_OP nodes). The
// dispatcher only acts when the compile options carry the opaque option
// kDelegateSessionOption, whose payload is a DelegateSession: then it creates
// the plugin's TfLiteDelegate and hands LiteRT a *relay* delegate around it.
// Without the option it returns no delegate and LiteRT skips it, which is how
// a fallback compile in the same environment leaves a failed plugin out
// (LiteRT has no way to unregister an accelerator).
//
// The relay forwards Prepare to the plugin's delegate and meanwhile
//  * swaps the context's ReportError for one that captures the text, and
//    passes a capturing report_error to tflite_plugin_create_delegate, so a
//    plugin failure reaches the fallback event with the plugin's own words;
//  * walks the execution plan before and after, to report which ops the
//    plugin took, which an earlier accelerator (GPU/NPU) took, and which are
//    left for the CPU (partial delegation).
// With no plugin (a GPU/NPU compile) the relay is observe-only.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "runtime/runtime.h"

namespace edgepipe {

// Identifier of the opaque compile option that selects the dispatcher.
constexpr const char* kDelegateSessionOption = "edgepipe.delegate_session";

using PluginOptions = std::vector<std::pair<std::string, std::string>>;

// A dlopen()ed external-delegate plugin. Never unloaded: delegates created
// from it may outlive every edgepipe object (LiteRT destroys them when it
// destroys the compiled model), and plugins commonly start threads.
class PluginLibrary {
 public:
  using CreateFn = void* (*)(const char* const* keys, const char* const* values, size_t n,
                             void (*report_error)(const char*));
  using DestroyFn = void (*)(void*);

  // Loads (once per path) or throws AcceleratorError("library_load").
  static std::shared_ptr<PluginLibrary> Load(const std::string& path);

  const std::string& path() const { return path_; }
  CreateFn create() const { return create_; }
  DestroyFn destroy() const { return destroy_; }

 private:
  std::string path_;
  void* handle_ = nullptr;
  CreateFn create_ = nullptr;
  DestroyFn destroy_ = nullptr;
};

// What one compile saw, filled in by the dispatcher and the relay.
struct DelegationReport {
  bool observed = false;                         // the relay's Prepare ran
  std::vector<int> plugin_ops;                   // builtin codes the plugin took
  std::vector<std::string> accelerator_kernels;  // kernels of earlier accelerators (GPU/NPU)
  std::vector<int> cpu_ops;                      // builtin codes left for the CPU accelerator
  std::vector<std::string> cpu_custom_ops;       // custom op names left for the CPU
};

// Per-compile state shared between an Instance and the dispatcher.
struct DelegateSession {
  std::shared_ptr<PluginLibrary> plugin;  // null: observe only
  PluginOptions options;
  std::string errors;     // text captured from the plugin during create/prepare
  std::string failed_at;  // "create" or "prepare" when the plugin refused
  DelegationReport report;
};

// Registers the delegate dispatcher in `env`. Must run before the CPU
// accelerator is registered (see runtime.cc).
void RegisterDelegateDispatcher(const LiteRtApi& api, litert::Environment env);

// Adds the opaque option carrying `session` to compile options.
void AttachDelegateSession(const LiteRtApi& api, litert::Options options,
                           const std::shared_ptr<DelegateSession>& session);

}  // namespace edgepipe
