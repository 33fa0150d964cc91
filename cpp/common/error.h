// Typed errors of the edgepipe core. Every failure leaving the core is an
// edgepipe::Error whose kind maps 1:1 onto a Python exception class, so the
// bindings never have to parse message text to decide what went wrong.
//
// EDGEPIPE_ERROR_KINDS is the one list of kinds: the enum, the stable kind
// names, and the Python class names (python/bindings/errors.cc exposes them
// as _core.ERROR_KINDS, from which edgepipe.errors derives its table) all
// expand from it. Adding a kind is one line here plus its Python class.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace edgepipe {

// clang-format off
// X(enumerator, stable lower_snake_case name, edgepipe.errors class name)
#define EDGEPIPE_ERROR_KINDS(X)                                                               \
  X(kRuntime, "runtime", "RuntimeLoadError")      /* runtime library/symbol/environment */   \
  X(kModel, "model", "ModelError")                /* the model file or buffer is unusable */ \
  X(kCompile, "compile", "CompileError")          /* the runtime refused to compile */       \
  X(kInput, "input", "InputError")                /* wrong inputs or arguments */            \
  X(kRun, "run", "InferenceError")                /* the runtime failed while running */     \
  X(kQueueFull, "queue_full", "QueueFullError")   /* reject policy or block timeout */       \
  X(kDropped, "dropped", "DroppedError")          /* replaced by a newer one (keep_latest) */\
  X(kTimeout, "timeout", "RequestTimeoutError")   /* no worker took it before its deadline */\
  X(kClosed, "closed", "PoolClosedError")         /* the pool is (or was) closed */          \
  X(kCancelled, "cancelled", "CancelledError")    /* cancelled before it started */          \
  X(kAccelerator, "accelerator", "AcceleratorError") /* an accelerator could not be used */  \
  X(kInternal, "internal", "EdgepipeError")       /* a bug in edgepipe */
// clang-format on

enum class ErrorKind {
#define EDGEPIPE_ERROR_ENUM(e, name, cls) e,
  EDGEPIPE_ERROR_KINDS(EDGEPIPE_ERROR_ENUM)
#undef EDGEPIPE_ERROR_ENUM
};

// The kind's stable name ("queue_full"): part of the contract with the
// bindings and the logs.
const char* ErrorKindName(ErrorKind kind);
// The edgepipe.errors class a kind maps to ("QueueFullError").
const char* ErrorClassName(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, int status = 0)
      : std::runtime_error(message), kind_(kind), status_(status) {}
  ErrorKind kind() const noexcept { return kind_; }
  // The LiteRtStatus code when the error came from the runtime, else 0.
  int status() const noexcept { return status_; }

 private:
  ErrorKind kind_;
  int status_;
};

// An accelerator failure together with the stage it happened at
// ("library_load", "accelerator_init", "compile", "first_run", "run"), so
// fallback events say where, not only what.
class AcceleratorError : public Error {
 public:
  AcceleratorError(std::string stage, const std::string& message)
      : Error(ErrorKind::kAccelerator, message), stage_(std::move(stage)) {}
  const std::string& stage() const noexcept { return stage_; }

 private:
  std::string stage_;
};

}  // namespace edgepipe
