#include "runtime/runtime.h"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <sstream>

namespace edgepipe {

namespace litert {
const char* StatusName(Status status) {
  switch (status) {
    case 0: return "ok";
    case 1: return "invalid argument";
    case 2: return "memory allocation failure";
    case 3: return "runtime failure";
    case 4: return "missing input tensor";
    case 5: return "unsupported";
    case 6: return "not found";
    case 7: return "timeout expired";
    case 8: return "wrong version";
    case 9: return "unknown error";
    case 10: return "already exists";
    case 100: return "cancelled";
    case 500: return "file I/O error";
    case 501: return "invalid flatbuffer";
    case 502: return "dynamic loading failed";
    case 503: return "serialization failed";
    case 504: return "compilation failed";
    case 1000: return "index out of bounds";
    case 4000: return "unsupported runtime version";
    case 5001: return "shape inference failed";
    default: return "error";
  }
}
}  // namespace litert

void ThrowStatus(ErrorKind kind, litert::Status status, const std::string& what) {
  std::ostringstream msg;
  msg << what << ": LiteRT status " << status << " (" << litert::StatusName(status) << ")";
  throw Error(kind, msg.str(), status);
}

namespace {

constexpr const char* kLibraryName = "libLiteRt.so";

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

// Where the dynamic loader actually found the library (for the system-loader
// case, where we only passed a bare name).
std::string LoadedPath(void* handle, void* symbol, const std::string& fallback) {
  Dl_info info{};
  if (symbol != nullptr && dladdr(symbol, &info) != 0 && info.dli_fname) {
    return info.dli_fname;
  }
  (void)handle;
  return fallback;
}

std::mutex& RegistryMutex() {
  static auto* m = new std::mutex;
  return *m;
}

// Deliberately leaked: runtimes live until the process ends (see runtime.h).
std::map<std::string, std::shared_ptr<Runtime>>& Registry() {
  static auto* r = new std::map<std::string, std::shared_ptr<Runtime>>;
  return *r;
}

}  // namespace

std::shared_ptr<Runtime> Runtime::Load(const RuntimeConfig& config) {
  std::vector<std::string> candidates;
  bool explicit_choice = false;
  if (!config.library_path.empty()) {
    candidates.push_back(config.library_path);
    explicit_choice = true;
  } else if (const char* env = std::getenv("EDGEPIPE_LITERT_LIBRARY");
             env != nullptr && *env != '\0') {
    candidates.push_back(env);
    explicit_choice = true;
  } else {
    for (const auto& dir : config.search_dirs) {
      if (!dir.empty()) candidates.push_back(dir + "/" + kLibraryName);
    }
    candidates.push_back(kLibraryName);  // the system loader's search
  }

  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::ostringstream tried;
  for (const auto& candidate : candidates) {
    auto found = Registry().find(candidate);
    if (found != Registry().end()) return found->second;

    dlerror();
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried << "\n  " << candidate << ": " << (why ? why : "not loadable");
      continue;
    }
    std::shared_ptr<Runtime> rt(new Runtime());
    rt->handle_ = handle;
    rt->log_severity_ = config.log_severity;
    std::vector<std::string> missing;
#define EDGEPIPE_RESOLVE_REQUIRED(name, ret, params)                               \
  rt->api_.name = reinterpret_cast<decltype(rt->api_.name)>(dlsym(handle, #name)); \
  if (rt->api_.name == nullptr) missing.push_back(#name);
    EDGEPIPE_LITERT_REQUIRED(EDGEPIPE_RESOLVE_REQUIRED)
#undef EDGEPIPE_RESOLVE_REQUIRED
#define EDGEPIPE_RESOLVE_OPTIONAL(name, ret, params)                               \
  rt->api_.name = reinterpret_cast<decltype(rt->api_.name)>(dlsym(handle, #name)); \
  if (rt->api_.name == nullptr) rt->missing_optional_.push_back(#name);
    EDGEPIPE_LITERT_OPTIONAL(EDGEPIPE_RESOLVE_OPTIONAL)
#undef EDGEPIPE_RESOLVE_OPTIONAL
    rt->library_path_ =
        LoadedPath(handle, reinterpret_cast<void*>(rt->api_.LiteRtCreateEnvironment), candidate);
    if (!missing.empty()) {
      std::ostringstream msg;
      msg << "the LiteRT library " << rt->library_path_ << " lacks symbol"
          << (missing.size() > 1 ? "s" : "") << " ";
      for (size_t i = 0; i < missing.size(); ++i) {
        msg << (i ? ", " : "") << missing[i];
      }
      msg << "; it is too old or not a LiteRT runtime. Install a supported "
             "runtime (pip install 'ai-edge-litert>=2.1,<2.4') or point "
             "EDGEPIPE_LITERT_LIBRARY at one.";
      // Keep the handle open: the library may already have started threads.
      throw Error(ErrorKind::kRuntime, msg.str());
    }
    rt->library_dir_ = DirName(rt->library_path_);
    Registry()[candidate] = rt;
    return rt;
  }
  std::ostringstream msg;
  msg << "could not load the LiteRT runtime library (" << kLibraryName << "); tried:" << tried.str()
      << "\n"
      << (explicit_choice ? "Fix the path in EDGEPIPE_LITERT_LIBRARY (or the library "
                            "argument), or unset it to use the installed ai-edge-litert."
                          : "Install it with: pip install ai-edge-litert (or set "
                            "EDGEPIPE_LITERT_LIBRARY to the path of libLiteRt.so).");
  throw Error(ErrorKind::kRuntime, msg.str());
}

litert::Environment Runtime::CreateEnvironment(const std::string& accelerator_dir,
                                               const std::vector<litert::EnvOption>& extra) {
  std::vector<litert::EnvOption> options(extra);
  litert::EnvOption severity{};
  severity.tag = litert::kEnvMinLoggerSeverity;
  severity.value.type = litert::kAnyInt;
  severity.value.int_value = log_severity_;
  options.push_back(severity);
  if (!accelerator_dir.empty()) {
    litert::EnvOption dir{};
    dir.tag = litert::kEnvRuntimeLibraryDir;
    dir.value.type = litert::kAnyString;
    dir.value.str_value = accelerator_dir.c_str();
    options.push_back(dir);
  }
  litert::Environment env = nullptr;
  Check(api_.LiteRtCreateEnvironment(static_cast<int>(options.size()), options.data(), &env),
        ErrorKind::kRuntime, "LiteRtCreateEnvironment failed for " + library_path_);
  return env;
}

litert::Environment Runtime::cpu_environment() {
  std::lock_guard<std::mutex> lock(env_mutex_);
  if (cpu_env_ == nullptr) cpu_env_ = CreateEnvironment("");
  return cpu_env_;
}

std::string Runtime::dispatch_library_dir() const {
  const char* env = std::getenv("EDGEPIPE_DISPATCH_LIBRARY_DIR");
  return env != nullptr && *env != '\0' ? std::string(env) : library_dir_;
}

Runtime::AcceleratorEnvironment Runtime::accelerator_environment(const std::string& dir,
                                                                 EnvironmentBuilder build) {
  std::lock_guard<std::mutex> lock(env_mutex_);
  const std::string wanted = dir.empty() ? library_dir_ : dir;
  if (accel_env_.env == nullptr) {
    accel_env_ = build(*this, wanted);
    accel_env_.dir = wanted;
  } else if (wanted != accel_env_.dir) {
    throw Error(ErrorKind::kAccelerator, "an accelerator environment for " + accel_env_.dir +
                                             " already exists; one accelerator folder per process");
  }
  return accel_env_;
}

void* Runtime::Symbol(const char* name) const { return dlsym(handle_, name); }

std::vector<std::string> Runtime::missing_optional_symbols() const { return missing_optional_; }

// Environments are never destroyed: compiled models made from them may
// still be alive in other owners at process exit, and LiteRT does not
// define destruction order across them.
Runtime::~Runtime() = default;

}  // namespace edgepipe
