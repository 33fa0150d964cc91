#include "common/error.h"

namespace edgepipe {

// These names are part of the contract with the bindings and the logs: keep
// them stable, lower_snake_case, one per kind.
const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kRuntime: return "runtime";
    case ErrorKind::kModel: return "model";
    case ErrorKind::kCompile: return "compile";
    case ErrorKind::kInput: return "input";
    case ErrorKind::kRun: return "run";
    case ErrorKind::kQueueFull: return "queue_full";
    case ErrorKind::kDropped: return "dropped";
    case ErrorKind::kTimeout: return "timeout";
    case ErrorKind::kClosed: return "closed";
    case ErrorKind::kCancelled: return "cancelled";
    case ErrorKind::kAccelerator: return "accelerator";
    case ErrorKind::kInternal: return "internal";
  }
  // A value outside the enum can only come from a cast bug.
  return "internal";
}

}  // namespace edgepipe
