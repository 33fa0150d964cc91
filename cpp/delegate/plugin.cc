#include "delegate/plugin.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include "delegate/tfl_abi.h"

namespace edgepipe {
namespace {

// The dispatcher's callbacks are plain C function pointers without user
// data, so they reach the runtime's function table through this pointer.
// One runtime library per process is the supported case; a second one
// would register its own (identical) table.
std::atomic<const LiteRtApi*> g_api{nullptr};

// Where the capturing ReportError / report_error callbacks append. Set only
// around the plugin calls on the compiling thread.
thread_local std::string* t_capture = nullptr;

void AppendCaptured(const char* text) {
  if (t_capture == nullptr || text == nullptr) return;
  if (!t_capture->empty() && t_capture->back() != '\n') *t_capture += '\n';
  *t_capture += text;
}

void CaptureReportError(ep_context*, const char* format, ...) {
  char buffer[2048];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  AppendCaptured(buffer);
}

void CapturePluginReport(const char* message) { AppendCaptured(message); }

struct Relay {
  ep_delegate base;  // what LiteRT sees; base.data_ points back here
  ep_delegate* inner = nullptr;
  std::shared_ptr<PluginLibrary> plugin;
  std::shared_ptr<DelegateSession> session;
};

struct PlanNode {
  int index;
  int code;
  std::string custom;
  const ep_delegate* delegate;
};

std::vector<PlanNode> ReadPlan(ep_context* ctx) {
  std::vector<PlanNode> out;
  ep_int_array* plan = nullptr;
  if (ctx->GetExecutionPlan(ctx, &plan) != EP_TFL_OK || plan == nullptr) return out;
  for (int i = 0; i < plan->size; ++i) {
    ep_node* node = nullptr;
    ep_registration* reg = nullptr;
    if (ctx->GetNodeAndRegistration(ctx, plan->data[i], &node, &reg) != EP_TFL_OK) continue;
    out.push_back({plan->data[i], reg->builtin_code, reg->custom_name ? reg->custom_name : "",
                   node->delegate});
  }
  return out;
}

ep_status RelayPrepare(ep_context* ctx, ep_delegate* delegate) {
  auto* relay = static_cast<Relay*>(delegate->data_);
  DelegateSession& session = *relay->session;
  const std::vector<PlanNode> before = ReadPlan(ctx);
  ep_status status = EP_TFL_OK;
  if (relay->inner != nullptr) {
    auto saved = ctx->ReportError;
    t_capture = &session.errors;
    ctx->ReportError = CaptureReportError;
    status = relay->inner->Prepare(ctx, relay->inner);
    ctx->ReportError = saved;
    t_capture = nullptr;
    if (status != EP_TFL_OK) {
      session.failed_at = "prepare";
      if (session.errors.empty()) session.errors = "the plugin's Prepare failed without a message";
      // Passed on: LiteRT restores the plan and fails the compile, and the
      // fallback compile leaves this plugin out.
      return status;
    }
  }
  const std::vector<PlanNode> after = ReadPlan(ctx);
  DelegationReport report;
  report.observed = true;
  std::set<int> still_there;
  for (const auto& n : after) {
    still_there.insert(n.index);
    if (n.delegate == nullptr) {
      if (n.code == 32 /* CUSTOM */) {
        report.cpu_custom_ops.push_back(n.custom);
      } else {
        report.cpu_ops.push_back(n.code);
      }
    } else if (n.delegate != relay->inner) {
      report.accelerator_kernels.push_back(n.custom.empty() ? "delegate" : n.custom);
    }
  }
  for (const auto& n : before) {
    if (n.delegate == nullptr && !still_there.count(n.index)) report.plugin_ops.push_back(n.code);
  }
  session.report = std::move(report);
  return status;
}

void RelayDelete(void* opaque) {
  auto* relay = static_cast<Relay*>(static_cast<ep_delegate*>(opaque)->data_);
  if (relay->inner != nullptr) relay->plugin->destroy()(relay->inner);
  delete relay;
}

litert::Status DispatcherName(litert::Accelerator, const char** name) {
  *name = "edgepipe-delegate-dispatcher";
  return litert::kOk;
}
litert::Status DispatcherVersion(litert::Accelerator, litert::ApiVersion* v) {
  *v = {1, 0, 0};
  return litert::kOk;
}
litert::Status DispatcherHw(litert::Accelerator, litert::HwAcceleratorSet* hw) {
  *hw = litert::kHwNone;
  return litert::kOk;
}
litert::Status DispatcherJit(litert::Accelerator, bool* jit) {
  *jit = false;  // applied on every compile; the opaque option decides
  return litert::kOk;
}

litert::Status DispatcherCreate(void*, litert::Environment, litert::Accelerator,
                                litert::Options options, litert::DelegateWrapper* wrapper) {
  *wrapper = nullptr;
  const LiteRtApi* api = g_api.load();
  if (api == nullptr) return litert::kOk;
  litert::OpaqueOptions opaque = nullptr;
  void* data = nullptr;
  if (api->LiteRtGetOpaqueOptions(options, &opaque) != litert::kOk || opaque == nullptr ||
      api->LiteRtFindOpaqueOptionsData(opaque, kDelegateSessionOption, &data) != litert::kOk ||
      data == nullptr) {
    return litert::kOk;  // not an edgepipe compile that asked for us: skipped
  }
  auto session = *static_cast<std::shared_ptr<DelegateSession>*>(data);
  ep_delegate* inner = nullptr;
  if (session->plugin) {
    std::vector<const char*> keys, values;
    for (const auto& kv : session->options) {
      keys.push_back(kv.first.c_str());
      values.push_back(kv.second.c_str());
    }
    t_capture = &session->errors;
    inner = static_cast<ep_delegate*>(
        session->plugin->create()(keys.data(), values.data(), keys.size(), CapturePluginReport));
    t_capture = nullptr;
    if (inner == nullptr) {
      session->failed_at = "create";
      if (session->errors.empty()) {
        session->errors = "tflite_plugin_create_delegate returned no delegate";
      }
      return litert::kErrorRuntimeFailure;
    }
  }
  auto* relay = new Relay();
  relay->base.data_ = relay;
  relay->base.Prepare = RelayPrepare;
  // An observe-only relay must not stop a graph with dynamic tensors from
  // being delegated; a plugin's own flags are what TFLite should judge.
  relay->base.flags =
      inner ? inner->flags : static_cast<int64_t>(EP_DELEGATE_FLAG_ALLOW_DYNAMIC_TENSORS);
  relay->inner = inner;
  relay->plugin = session->plugin;
  relay->session = session;
  litert::Status st = api->LiteRtWrapDelegate(&relay->base, RelayDelete, wrapper);
  if (st != litert::kOk) RelayDelete(&relay->base);
  return st;
}

void DeleteSessionPayload(void* p) { delete static_cast<std::shared_ptr<DelegateSession>*>(p); }

}  // namespace

std::shared_ptr<PluginLibrary> PluginLibrary::Load(const std::string& path) {
  static std::mutex mutex;
  static auto* loaded = new std::map<std::string, std::shared_ptr<PluginLibrary>>;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = loaded->find(path);
  if (found != loaded->end()) return found->second;
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw AcceleratorError("library_load", "cannot load delegate plugin " + path + ": " +
                                               (why ? why : "dlopen failed"));
  }
  auto lib = std::make_shared<PluginLibrary>();
  lib->path_ = path;
  lib->handle_ = handle;
  lib->create_ = reinterpret_cast<CreateFn>(dlsym(handle, "tflite_plugin_create_delegate"));
  lib->destroy_ = reinterpret_cast<DestroyFn>(dlsym(handle, "tflite_plugin_destroy_delegate"));
  if (lib->create_ == nullptr || lib->destroy_ == nullptr) {
    // Kept loaded: unloading a library whose constructors ran is not safe.
    throw AcceleratorError(
        "library_load",
        path + " is not a TFLite external-delegate plugin: it lacks " +
            (lib->create_ ? "tflite_plugin_destroy_delegate" : "tflite_plugin_create_delegate"));
  }
  (*loaded)[path] = lib;
  return lib;
}

void RegisterDelegateDispatcher(const LiteRtApi& api, litert::Environment env) {
  if (api.LiteRtCreateAccelerator == nullptr || api.LiteRtRegisterAccelerator == nullptr ||
      api.LiteRtSetDelegateFunction == nullptr || api.LiteRtWrapDelegate == nullptr ||
      api.LiteRtGetOpaqueOptions == nullptr || api.LiteRtFindOpaqueOptionsData == nullptr ||
      api.LiteRtSetAcceleratorGetName == nullptr || api.LiteRtSetAcceleratorGetVersion == nullptr ||
      api.LiteRtSetAcceleratorGetHardwareSupport == nullptr ||
      api.LiteRtSetIsAcceleratorDelegateResponsibleForJitCompilation == nullptr) {
    throw AcceleratorError("accelerator_init",
                           "this LiteRT runtime does not export the accelerator registration API; "
                           "delegate plugins cannot be used with it");
  }
  g_api.store(&api);
  litert::Accelerator acc = nullptr;
  Check(api.LiteRtCreateAccelerator(&acc), ErrorKind::kAccelerator,
        "LiteRtCreateAccelerator failed");
  api.LiteRtSetAcceleratorGetName(acc, DispatcherName);
  api.LiteRtSetAcceleratorGetVersion(acc, DispatcherVersion);
  api.LiteRtSetAcceleratorGetHardwareSupport(acc, DispatcherHw);
  api.LiteRtSetIsAcceleratorDelegateResponsibleForJitCompilation(acc, DispatcherJit);
  api.LiteRtSetDelegateFunction(acc, DispatcherCreate);
  litert::Status st = api.LiteRtRegisterAccelerator(env, acc, nullptr, nullptr);
  if (st != litert::kOk) {
    if (api.LiteRtDestroyAccelerator) api.LiteRtDestroyAccelerator(acc);
    ThrowStatus(ErrorKind::kAccelerator, st, "cannot register the delegate dispatcher");
  }
}

void AttachDelegateSession(const LiteRtApi& api, litert::Options options,
                           const std::shared_ptr<DelegateSession>& session) {
  auto* payload = new std::shared_ptr<DelegateSession>(session);
  litert::OpaqueOptions opaque = nullptr;
  litert::Status st =
      api.LiteRtCreateOpaqueOptions(kDelegateSessionOption, payload, DeleteSessionPayload, &opaque);
  if (st != litert::kOk) {
    delete payload;
    ThrowStatus(ErrorKind::kCompile, st, "cannot create the delegate option");
  }
  st = api.LiteRtAddOpaqueOptions(options, opaque);
  if (st != litert::kOk) {
    api.LiteRtDestroyOpaqueOptions(opaque);
    ThrowStatus(ErrorKind::kCompile, st, "cannot attach the delegate option");
  }
}

}  // namespace edgepipe
