#include "model/verifier.h"

#include <string>

#include "common/error.h"
#include "model/verify/structure.h"

// The verifier is three layers, one folder (model/verify/):
//   flatbuffer_reader  bounds-checked flatbuffer access (offsets, vtables,
//                      vectors, strings) and the error path ("... of tensor 3")
//   structure          the walk over the TFLite schema and its indices
//   op_rules, shapes_* what each builtin's kernel expects of its operands
// No flatbuffers library is used so that the checks are exactly the ones
// listed there and nothing in the model can reach code we have not read.

namespace edgepipe {

ModelSummary VerifyTflite(const uint8_t* data, size_t size, const VerifyLimits& limits) {
  if (data == nullptr && size != 0) {
    throw Error(ErrorKind::kModel, "model buffer is null");
  }
  return verify::WalkModel(data, size, limits);
}

}  // namespace edgepipe
