// Per-op-family static shape checks, the third layer of model verification.
//
// XNNPACK builds its graph from the shapes declared in the model and, for
// the ops checked here, does not re-derive them from the inputs the way the
// builtin kernels do: a declared shape that disagrees with the operands makes
// it read or write out of bounds (seen as SIGSEGV on corrupted models) or
// size a tensor from a damaged constant (seen as a 16 GB allocation). Only
// shapes that are fully static are compared. One file per family:
//   shapes_elementwise.cc  unary shape-preserving ops, broadcasting binaries
//   shapes_conv.cc         convolutions, pooling, transpose conv, fully connected
//   shapes_layout.cc       reshape-likes, pads, concatenation, resize, reductions
//
// Ownership: OpView borrows everything it points to (the reader, the tensor
// table of the subgraph being walked); it lives for one operator's checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/verify/flatbuffer_reader.h"

namespace edgepipe {
namespace verify {

struct BufferInfo {
  bool has_data = false;
  uint64_t bytes = 0;
  size_t pos = 0;  // start of the data inside the flatbuffer; 0 if stored after it
};

struct TensorInfo {
  bool constant = false;
  bool variable = false;
  bool dynamic = false;    // shape_signature has a -1: shape is only a placeholder
  bool quantized = false;  // has quantization parameters (scale)
  int type = 0;
  std::vector<int32_t> shape;
  const BufferInfo* buffer = nullptr;
  uint64_t Elements() const {
    uint64_t n = 1;
    for (int32_t d : shape) n *= static_cast<uint64_t>(d);  // bounded in TensorTable
    return n;
  }
};

// One operator as the shape checks see it; indices are already checked.
struct OpView {
  const FlatbufferReader* r = nullptr;
  int code = 0;
  const char* name = "";
  Vec inputs;
  Vec outputs;
  const std::vector<TensorInfo>* tensors = nullptr;
  int options_type = 0;
  Table options;

  size_t NumInputs() const { return inputs.len; }
  size_t NumOutputs() const { return outputs.len; }
  int32_t InputIndex(size_t i) const { return r->IntAt(inputs, i); }
  int32_t OutputIndex(size_t i) const { return r->IntAt(outputs, i); }
  // nullptr for a missing (-1 or absent) operand.
  const TensorInfo* In(size_t i) const {
    return i < inputs.len && InputIndex(i) >= 0 ? &(*tensors)[InputIndex(i)] : nullptr;
  }
  const TensorInfo* Out(size_t i = 0) const {
    return i < outputs.len && OutputIndex(i) >= 0 ? &(*tensors)[OutputIndex(i)] : nullptr;
  }
  bool AllPresent() const;
  [[noreturn]] void Fail(const std::string& what) const;
  // The runtime re-derives these outputs, but edgepipe reports the declared
  // shapes as the model's contract before compiling, so a declared shape the
  // op cannot produce is a damaged file all the same. An empty declared shape
  // is how some writers say "unknown"; it is left alone.
  void ExpectOut(const std::vector<int64_t>& want, const std::string& from) const;
  // Values of a dense int32/int64 constant stored inside the flatbuffer
  // (index vectors: sizes, axes, output shapes); false when they cannot be
  // read statically.
  bool ConstInts(const TensorInfo* t, std::vector<int64_t>* values) const;
};

std::string ShapeStr(const std::vector<int32_t>& shape);
std::string ShapeStr(const std::vector<int64_t>& shape);
std::vector<int64_t> Widen(const std::vector<int32_t>& shape);

// Throws through op.Fail() when a static shape is impossible for the op.
void CheckStaticShapes(const OpView& op);

// The families; each returns false when the op is not one of its own.
bool CheckElementwiseShapes(const OpView& op);
bool CheckConvShapes(const OpView& op);
bool CheckLayoutShapes(const OpView& op);

}  // namespace verify
}  // namespace edgepipe
