#include "delegate/environment.h"

#include "delegate/plugin.h"

namespace edgepipe {
namespace {

Runtime::AcceleratorEnvironment Build(Runtime& runtime, const std::string& dir) {
  const LiteRtApi& api = runtime.api();
  auto* cpu_def = static_cast<const litert::AcceleratorDefHead* const*>(
      runtime.Symbol("LiteRtStaticLinkedAcceleratorCpuDef"));
  const bool ordered =
      cpu_def != nullptr && *cpu_def != nullptr && api.LiteRtCreateAccelerator != nullptr &&
      api.LiteRtSetDelegateFunction != nullptr && api.LiteRtWrapDelegate != nullptr;
  const std::string dispatch_dir = runtime.dispatch_library_dir();
  std::vector<litert::EnvOption> extra;
  litert::EnvOption o{};
  o.tag = litert::kEnvDispatchLibraryDir;
  o.value.type = litert::kAnyString;
  o.value.str_value = dispatch_dir.c_str();
  extra.push_back(o);
  if (ordered) {
    o = litert::EnvOption{};
    o.tag = litert::kEnvAutoRegisterAccelerators;
    o.value.type = litert::kAnyInt;
    o.value.int_value = litert::kHwGpu | litert::kHwNpu;
    extra.push_back(o);
  }
  litert::Environment env = runtime.CreateEnvironment(dir, extra);
  if (ordered) {
    RegisterDelegateDispatcher(api, env);
    const litert::AcceleratorDefHead* def = *cpu_def;
    litert::Accelerator cpu = nullptr;
    Check(api.LiteRtCreateAccelerator(&cpu), ErrorKind::kRuntime,
          "cannot create the CPU accelerator");
    api.LiteRtSetAcceleratorGetName(cpu, def->get_name);
    api.LiteRtSetAcceleratorGetVersion(cpu, def->get_version);
    api.LiteRtSetAcceleratorGetHardwareSupport(cpu, def->get_hardware_support);
    api.LiteRtSetIsAcceleratorDelegateResponsibleForJitCompilation(cpu, def->is_jit_responsible);
    api.LiteRtSetDelegateFunction(cpu, def->create_delegate);
    Check(api.LiteRtRegisterAccelerator(env, cpu, nullptr, nullptr), ErrorKind::kRuntime,
          "cannot register the CPU accelerator");
  }
  Runtime::AcceleratorEnvironment out;
  out.env = env;
  out.plugins_supported = ordered;
  return out;
}

}  // namespace

litert::Environment AcceleratorEnvironmentFor(Runtime& runtime, const std::string& dir) {
  return runtime.accelerator_environment(dir, Build).env;
}

bool DelegatePluginsSupported(Runtime& runtime) {
  return runtime.accelerator_environment("", Build).plugins_supported;
}

std::vector<AcceleratorEntry> RegisteredAccelerators(Runtime& runtime) {
  litert::Environment env = AcceleratorEnvironmentFor(runtime);
  const LiteRtApi& api = runtime.api();
  std::vector<AcceleratorEntry> out;
  if (api.LiteRtGetNumAccelerators == nullptr || api.LiteRtGetAccelerator == nullptr) return out;
  litert::ParamIndex n = 0;
  if (api.LiteRtGetNumAccelerators(env, &n) != litert::kOk) return out;
  for (litert::ParamIndex i = 0; i < n; ++i) {
    litert::Accelerator acc = nullptr;
    if (api.LiteRtGetAccelerator(env, i, &acc) != litert::kOk) continue;
    AcceleratorEntry e;
    const char* name = nullptr;
    if (api.LiteRtGetAcceleratorName && api.LiteRtGetAcceleratorName(acc, &name) == litert::kOk &&
        name != nullptr) {
      e.name = name;
    }
    if (api.LiteRtGetAcceleratorHardwareSupport) {
      api.LiteRtGetAcceleratorHardwareSupport(acc, &e.hardware);
    }
    out.push_back(e);
  }
  return out;
}

bool HasRegistered(Runtime& runtime, int hardware_bit) {
  for (const auto& e : RegisteredAccelerators(runtime)) {
    if (e.hardware & hardware_bit) return true;
  }
  return false;
}

}  // namespace edgepipe
