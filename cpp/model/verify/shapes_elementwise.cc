// Shape checks of elementwise ops: unary ops whose output has the shape of
// input 0, and binary ops with numpy-style broadcasting.
#include <algorithm>
#include <string>
#include <vector>

#include "model/op_names.h"
#include "model/verify/shapes.h"

namespace edgepipe {
namespace verify {
namespace {

// Elementwise binary ops with numpy-style broadcasting.
bool IsBroadcastBinary(int code) {
  switch (code) {
    case 0:   // ADD
    case 18:  // MUL
    case 41:  // SUB
    case 42:  // DIV
    case 55:  // MAXIMUM
    case 57:  // MINIMUM
    case 99:  // SQUARED_DIFFERENCE
      return true;
    default: return false;
  }
}

// Ops whose output has exactly the shape of input 0.
bool IsShapePreserving(int code) {
  switch (code) {
    case 8:    // FLOOR
    case 14:   // LOGISTIC
    case 19:   // RELU
    case 20:   // RELU_N1_TO_1
    case 21:   // RELU6
    case 25:   // SOFTMAX
    case 28:   // TANH
    case 47:   // EXP
    case 50:   // LOG_SOFTMAX
    case 59:   // NEG
    case 66:   // SIN
    case 73:   // LOG
    case 75:   // SQRT
    case 76:   // RSQRT
    case 92:   // SQUARE
    case 98:   // LEAKY_RELU
    case 101:  // ABS
    case 104:  // CEIL
    case 108:  // COS
    case 111:  // ELU
    case 114:  // QUANTIZE
    case 116:  // ROUND
    case 117:  // HARD_SWISH
    case 150:  // GELU
      return true;
    default: return false;
  }
}

}  // namespace

bool CheckElementwiseShapes(const OpView& node) {
  auto In = [&node](size_t i) { return node.In(i); };
  const TensorInfo* out = node.Out();
  (void)out;
  if (IsShapePreserving(node.code)) {
    const TensorInfo* x = In(0);
    if (x && !x->dynamic) node.ExpectOut(Widen(x->shape), "input " + ShapeStr(x->shape));
    return true;
  }
  if (IsBroadcastBinary(node.code)) {
    const TensorInfo* a = In(0);
    const TensorInfo* b = In(1);
    if (!a || !b || a->dynamic || b->dynamic) return true;
    // Numpy broadcasting, aligned at the last dimension.
    size_t rank = std::max(a->shape.size(), b->shape.size());
    std::vector<int64_t> want(rank);
    for (size_t i = 0; i < rank; ++i) {
      int64_t da = i < rank - a->shape.size() ? 1 : a->shape[i - (rank - a->shape.size())];
      int64_t db = i < rank - b->shape.size() ? 1 : b->shape[i - (rank - b->shape.size())];
      if (da != db && da != 1 && db != 1) {
        node.Fail("cannot broadcast input " + ShapeStr(a->shape) + " with input " +
                  ShapeStr(b->shape));
      }
      want[i] = da == 1 ? db : da;
    }
    node.ExpectOut(want, "inputs " + ShapeStr(a->shape) + " and " + ShapeStr(b->shape));
    return true;
  }
  return false;
}

}  // namespace verify
}  // namespace edgepipe
