// Typed errors of the edgepipe core. Every failure leaving the core is an
// edgepipe::Error whose kind maps 1:1 onto a Python exception class, so the
// bindings never have to parse message text to decide what went wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace edgepipe {

enum class ErrorKind {
  kRuntime,      // runtime library missing, symbol missing, environment failed
  kModel,        // the model file or buffer is unusable (corrupt, missing, ...)
  kCompile,      // the runtime refused to compile the model
  kInput,        // wrong inputs: names, dtypes, shapes, sizes
  kRun,          // the runtime failed while running
  kQueueFull,    // a pool refused a request (policy "reject" or block timeout)
  kDropped,      // a queued request was replaced by a newer one (keep_latest)
  kTimeout,      // a deadline passed before the request could run
  kClosed,       // the pool/session is closed
  kCancelled,    // a queued request was cancelled by close(drain=false)
  kAccelerator,  // an accelerator could not be used (reported as an event)
  kInternal,     // a bug in edgepipe
};

const char* ErrorKindName(ErrorKind kind);

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

}  // namespace edgepipe
