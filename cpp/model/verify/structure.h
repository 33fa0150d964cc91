// The structural walk over the TFLite schema, the second layer of model
// verification: every table of the model (operator codes, buffers,
// subgraphs, tensors, quantization, sparsity, operators and their options,
// signatures, metadata) is visited through the bounds-checked
// FlatbufferReader, every index is checked against what it indexes, and each
// operator is handed to the per-op checks (op_rules.h, shapes.h). The
// summary (op counts, signatures, dynamic shapes, ...) is built on the way.
//
// Ownership: borrows `data` for the duration of the call; returns values.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/verifier.h"

namespace edgepipe {
namespace verify {

// Throws edgepipe::Error(kModel) on the first problem.
ModelSummary WalkModel(const uint8_t* data, size_t size, const VerifyLimits& limits);

}  // namespace verify
}  // namespace edgepipe
