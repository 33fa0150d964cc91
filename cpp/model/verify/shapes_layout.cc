// Shape checks of layout ops: RESHAPE/SQUEEZE/EXPAND_DIMS, PAD/PADV2/MIRROR_PAD,
// CONCATENATION, RESIZE_BILINEAR/NEAREST_NEIGHBOR and the reductions.
#include <algorithm>
#include <string>
#include <vector>

#include "model/op_names.h"
#include "model/verify/schema.h"
#include "model/verify/shapes.h"

namespace edgepipe {
namespace verify {

bool CheckLayoutShapes(const OpView& node) {
  auto In = [&node](size_t i) { return node.In(i); };
  const TensorInfo* out = node.Out();
  (void)out;
  switch (node.code) {
    case op::RESHAPE:
    case op::SQUEEZE:
    case op::EXPAND_DIMS: {
      const TensorInfo* x = In(0);
      if (!x || !out || x->dynamic || out->dynamic) return true;
      if (x->Elements() != out->Elements()) {
        node.Fail("turns shape " + ShapeStr(x->shape) + " into " + ShapeStr(out->shape) +
                  ", a different number of elements");
      }
      return true;
    }
    case op::PAD:
    case op::PADV2:
    case op::MIRROR_PAD: {
      const TensorInfo* x = In(0);
      const TensorInfo* pads = In(1);
      if (!x || !pads || !out || !pads->constant || pads->buffer->pos == 0) return true;
      if (pads->type != kTypeInt32 && pads->type != kTypeInt64) return true;
      size_t rank = x->shape.size();
      if (pads->shape.size() != 2 || static_cast<size_t>(pads->shape[0]) != rank ||
          pads->shape[1] != 2) {
        node.Fail("has paddings of shape " + ShapeStr(pads->shape) + " for an input of rank " +
                  std::to_string(rank));
      }
      if (x->dynamic || out->dynamic || out->shape.size() != rank) return true;
      size_t width = pads->type == kTypeInt32 ? 4 : 8;
      if (pads->buffer->bytes < rank * 2 * width) return true;  // sparse: not a dense [rank,2]
      size_t base = pads->buffer->pos;
      for (size_t d = 0; d < rank; ++d) {
        int64_t before = width == 4 ? node.r->I32(base + 8 * d)
                                    : static_cast<int64_t>(node.r->U64(base + 16 * d));
        int64_t after = width == 4 ? node.r->I32(base + 8 * d + 4)
                                   : static_cast<int64_t>(node.r->U64(base + 16 * d + 8));
        if (before < 0 || after < 0 || before > (1 << 30) || after > (1 << 30) ||
            x->shape[d] + before + after != out->shape[d]) {
          node.Fail("pads dimension " + std::to_string(d) + " of size " +
                    std::to_string(x->shape[d]) + " by " + std::to_string(before) + "+" +
                    std::to_string(after) + " but declares size " + std::to_string(out->shape[d]));
        }
      }
      return true;
    }
    case op::CONCATENATION: {
      if (node.inputs.len == 0 || !node.AllPresent()) return true;
      const TensorInfo* first = In(0);
      for (size_t i = 0; i < node.inputs.len; ++i) {
        if (In(i)->dynamic) return true;
      }
      int64_t rank = static_cast<int64_t>(first->shape.size());
      int32_t axis = node.options_type == options::ConcatenationOptions
                         ? node.r->GetI32(node.options, 0, 0, "axis")
                         : 0;
      int64_t a = axis < 0 ? int64_t{axis} + rank : int64_t{axis};
      if (rank == 0) return true;
      if (a < 0 || a >= rank) {
        node.Fail("concatenates along axis " + std::to_string(axis) + " inputs of rank " +
                  std::to_string(rank));
      }
      std::vector<int64_t> want = Widen(first->shape);
      for (size_t i = 1; i < node.inputs.len; ++i) {
        const TensorInfo* x = In(i);
        bool ok = x->shape.size() == first->shape.size();
        for (int64_t d = 0; ok && d < rank; ++d) ok = d == a || x->shape[d] == first->shape[d];
        if (!ok) {
          node.Fail("concatenates along axis " + std::to_string(axis) + " input 0 " +
                    ShapeStr(first->shape) + " and input " + std::to_string(i) + " " +
                    ShapeStr(x->shape) + ", which differ in another dimension");
        }
        want[a] += x->shape[a];
      }
      node.ExpectOut(
          want, std::to_string(node.inputs.len) + " inputs along axis " + std::to_string(axis));
      return true;
    }
    case op::RESIZE_BILINEAR:
    case op::RESIZE_NEAREST_NEIGHBOR: {
      const TensorInfo* x = In(0);
      if (!x || !In(1) || x->dynamic) return true;
      if (x->shape.size() != 4) node.Fail("needs a rank-4 input, got " + ShapeStr(x->shape));
      std::vector<int64_t> size;
      if (!node.ConstInts(In(1), &size)) return true;
      // A damaged size constant makes the runtime allocate the output it
      // describes: the builtin kernel crashed on 30000x30000.
      if (size.size() != 2 || size[0] < 1 || size[1] < 1) {
        node.Fail("has size " + ShapeStr(size) + ", expected 2 positive values");
      }
      node.ExpectOut({x->shape[0], size[0], size[1], x->shape[3]},
                     "input " + ShapeStr(x->shape) + " with size " + ShapeStr(size));
      return true;
    }
    case op::MEAN:
    case op::SUM:
    case op::REDUCE_PROD:
    case op::REDUCE_MAX:
    case op::REDUCE_MIN: {
      const TensorInfo* x = In(0);
      std::vector<int64_t> axes;
      if (!x || x->dynamic || !node.ConstInts(In(1), &axes)) return true;
      int64_t rank = static_cast<int64_t>(x->shape.size());
      std::vector<bool> reduced(rank, false);
      for (int64_t a : axes) {
        if (a < -rank || a >= rank) {
          node.Fail("reduces axis " + std::to_string(a) + " of input " + ShapeStr(x->shape));
        }
        reduced[a < 0 ? a + rank : a] = true;  // repeated axes count once
      }
      bool keep_dims = node.options_type == options::ReducerOptions &&
                       node.r->GetU8(node.options, 0, 0, "keep_dims") != 0;
      std::vector<int64_t> want;
      for (int64_t d = 0; d < rank; ++d) {
        if (!reduced[d]) {
          want.push_back(x->shape[d]);
        } else if (keep_dims) {
          want.push_back(1);
        }
      }
      node.ExpectOut(want, "input " + ShapeStr(x->shape) + " reduced over axes " + ShapeStr(axes));
      return true;
    }
    default: return false;
  }
}

}  // namespace verify
}  // namespace edgepipe
