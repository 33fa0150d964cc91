// The accelerator environment: which accelerators LiteRT may use for a
// non-CPU compile, and in which order.
//
// Registration order is application order, and the first accelerator to
// claim an op keeps it. Built as: LiteRT auto-registers only the GPU and NPU
// accelerators; then edgepipe registers its delegate dispatcher
// (delegate/plugin.h); then the CPU (XNNPACK) accelerator, copied from the
// runtime's exported LiteRtStaticLinkedAcceleratorCpuDef. Without that symbol
// the CPU is auto-registered first and delegate plugins are refused (XNNPACK
// would claim every op before a plugin saw it).
//
// Layer: above runtime/ (which only keeps the environment it is handed),
// below compiled/ (which compiles in it).
#pragma once

#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace edgepipe {

// The runtime's accelerator environment loading accelerator libraries from
// `dir` ("" : the runtime library's own folder); created on first use.
litert::Environment AcceleratorEnvironmentFor(Runtime& runtime, const std::string& dir = "");

// Whether the accelerator environment can host delegate plugins.
bool DelegatePluginsSupported(Runtime& runtime);

struct AcceleratorEntry {
  std::string name;
  int hardware = 0;  // litert::HwAccelerator bits
};
// Accelerators registered in the accelerator environment, in order.
std::vector<AcceleratorEntry> RegisteredAccelerators(Runtime& runtime);
bool HasRegistered(Runtime& runtime, int hardware_bit);

}  // namespace edgepipe
