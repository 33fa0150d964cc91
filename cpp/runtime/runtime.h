// The runtime layer: finds libLiteRt.so, resolves every symbol edgepipe uses
// into one function table up front, and owns the LiteRT environments.
//
// Resolving everything at load time means a runtime that lacks a function
// fails once, at start, with a message naming the library and the symbol,
// instead of crashing on a null pointer in the middle of a run.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/litert_api.h"

namespace edgepipe {

namespace litert {
// The function table: one pointer per symbol in litert_api.h.
struct Api {
#define EDGEPIPE_DECLARE_FN(name, ret, params) ret(*name) params = nullptr;
  EDGEPIPE_LITERT_REQUIRED(EDGEPIPE_DECLARE_FN)
  EDGEPIPE_LITERT_OPTIONAL(EDGEPIPE_DECLARE_FN)
#undef EDGEPIPE_DECLARE_FN
};
}  // namespace litert
using LiteRtApi = litert::Api;

struct RuntimeConfig {
  // Explicit library file. When set (here or in EDGEPIPE_LITERT_LIBRARY) it
  // is the only candidate: an explicit choice that silently fell through to
  // another copy would hide a deployment mistake.
  std::string library_path;
  // Folders searched for libLiteRt.so after the explicit path, in order
  // (the Python layer passes the installed ai_edge_litert package folder).
  std::vector<std::string> search_dirs;
  // Minimum severity of the runtime's own log lines (litert::LogSeverity).
  int log_severity = litert::kLogError;
};

// One loaded runtime library. Shared by every model, instance and pool made
// from it; never unloaded, because LiteRT keeps worker threads and static
// state that do not survive dlclose().
class Runtime {
 public:
  // Loads (or returns the already loaded) runtime for this configuration.
  static std::shared_ptr<Runtime> Load(const RuntimeConfig& config);

  const LiteRtApi& api() const { return api_; }
  const std::string& library_path() const { return library_path_; }
  const std::string& library_dir() const { return library_dir_; }
  int log_severity() const { return log_severity_; }

  // The environment for CPU work: created without accelerator library
  // folders, so it costs no GPU/NPU probing.
  litert::Environment cpu_environment();
  // The accelerator environment (loads GPU/NPU accelerator libraries),
  // created once per runtime by `build` on first use. The runtime only keeps
  // it: how it is composed (which accelerators, in which order) is the
  // delegate layer's business (delegate/environment.h), which passes `build`.
  // Throws kAccelerator when it already exists for another folder.
  struct AcceleratorEnvironment {
    litert::Environment env = nullptr;
    std::string dir;                 // accelerator library folder
    bool plugins_supported = false;  // delegate plugins can be hosted
  };
  using EnvironmentBuilder = AcceleratorEnvironment (*)(Runtime& runtime, const std::string& dir);
  AcceleratorEnvironment accelerator_environment(const std::string& dir, EnvironmentBuilder build);

  // A new environment with the runtime's log severity, loading accelerator
  // libraries from `accelerator_dir` ("" for none), plus `extra` options.
  litert::Environment CreateEnvironment(const std::string& accelerator_dir,
                                        const std::vector<litert::EnvOption>& extra = {});
  // A symbol of the runtime library outside the function table (null if absent).
  void* Symbol(const char* name) const;

  // Folder searched for NPU vendor dispatch libraries (libLiteRtDispatch_*.so):
  // EDGEPIPE_DISPATCH_LIBRARY_DIR or the runtime library's folder.
  std::string dispatch_library_dir() const;

  // Symbols of the optional set that this runtime lacks.
  std::vector<std::string> missing_optional_symbols() const;

  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

 private:
  Runtime() = default;

  void* handle_ = nullptr;
  LiteRtApi api_;
  std::string library_path_;
  std::string library_dir_;
  int log_severity_ = litert::kLogError;
  std::mutex env_mutex_;
  litert::Environment cpu_env_ = nullptr;
  AcceleratorEnvironment accel_env_;
  std::vector<std::string> missing_optional_;
};

// Throws Error(kind) for a failed runtime call, with the status name.
[[noreturn]] void ThrowStatus(ErrorKind kind, litert::Status status, const std::string& what);

inline void Check(litert::Status status, ErrorKind kind, const std::string& what) {
  if (status != litert::kOk) ThrowStatus(kind, status, what);
}

}  // namespace edgepipe
