// Shape checks of the windowed and weighted ops: CONV_2D, DEPTHWISE_CONV_2D,
// TRANSPOSE_CONV, AVERAGE/MAX_POOL_2D and FULLY_CONNECTED.
#include <algorithm>
#include <string>
#include <vector>

#include "model/op_names.h"
#include "model/verify/shapes.h"

namespace edgepipe {
namespace verify {
namespace {

// Output extent of a convolution or pooling window along one axis, as the
// runtime computes it (padding 0 = SAME, 1 = VALID); 0 when the window does
// not fit.
int64_t WindowOutSize(int padding, int64_t size, int64_t k, int64_t stride, int64_t dil) {
  int64_t eff = (k - 1) * dil + 1;
  return padding == 0 ? (size + stride - 1) / stride
                      : (size >= eff ? (size - eff + stride) / stride : 0);
}

}  // namespace

bool CheckConvShapes(const OpView& node) {
  auto In = [&node](size_t i) { return node.In(i); };
  const TensorInfo* out = node.Out();
  (void)out;
  switch (node.code) {
    case op::CONV_2D:
    case op::DEPTHWISE_CONV_2D: {
      bool depthwise = node.code == op::DEPTHWISE_CONV_2D;
      // The kernels accept a missing bias slot, but LiteRT 2.3.0 crashed
      // running a 2-input DEPTHWISE_CONV_2D; writers always emit the slot
      // (-1 when there is no bias).
      if (node.inputs.len != 3 || node.outputs.len != 1) {
        node.Fail("has " + std::to_string(node.inputs.len) + " inputs and " +
                  std::to_string(node.outputs.len) + " outputs, expected 3 and 1");
      }
      int want = depthwise ? options::DepthwiseConv2DOptions : options::Conv2DOptions;
      if (node.options_type != want || !node.options)
        node.Fail("has no " + std::string(BuiltinOptionsLayout(want).name));
      // Both option tables start with padding, stride_w, stride_h; dilations
      // follow at slots 4,5 (conv) or 5,6 (depthwise).
      int padding = node.r->GetI8(node.options, 0, 0, "padding");
      int32_t stride_w = node.r->GetI32(node.options, 1, 0, "stride_w");
      int32_t stride_h = node.r->GetI32(node.options, 2, 0, "stride_h");
      int32_t dil_w = node.r->GetI32(node.options, depthwise ? 5 : 4, 1, "dilation_w_factor");
      int32_t dil_h = node.r->GetI32(node.options, depthwise ? 6 : 5, 1, "dilation_h_factor");
      if (stride_w < 1 || stride_h < 1 || dil_w < 1 || dil_h < 1 || padding < 0 || padding > 1) {
        node.Fail("has stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) +
                  ", dilation " + std::to_string(dil_h) + "x" + std::to_string(dil_w) +
                  " and padding " + std::to_string(padding));
      }
      const TensorInfo* x = In(0);
      const TensorInfo* w = In(1);
      const TensorInfo* bias = In(2);
      if (!x || !w || !out) node.Fail("lacks its input, filter or output");
      if (x->shape.size() != 4 || w->shape.size() != 4 || out->shape.size() != 4) {
        if (x->dynamic || out->dynamic) return true;
        node.Fail("needs rank-4 input, filter and output, got " + ShapeStr(x->shape) + ", " +
                  ShapeStr(w->shape) + ", " + ShapeStr(out->shape));
      }
      int64_t out_channels = depthwise ? w->shape[3] : w->shape[0];
      bool channels_ok = depthwise ? (x->shape[3] > 0 && w->shape[3] % x->shape[3] == 0)
                                   : (w->shape[3] > 0 && x->shape[3] % w->shape[3] == 0);
      if (!channels_ok || (depthwise && w->shape[0] != 1)) {
        node.Fail("has input " + ShapeStr(x->shape) + " and filter " + ShapeStr(w->shape) +
                  ", whose channels disagree");
      }
      if (bias && (bias->shape.size() != 1 || bias->shape[0] != out_channels)) {
        node.Fail("has bias " + ShapeStr(bias->shape) + " for " + std::to_string(out_channels) +
                  " output channels");
      }
      if (x->dynamic || out->dynamic) return true;
      int64_t oh = WindowOutSize(padding, x->shape[1], w->shape[1], stride_h, dil_h);
      int64_t ow = WindowOutSize(padding, x->shape[2], w->shape[2], stride_w, dil_w);
      if (out->shape[0] != x->shape[0] || out->shape[1] != oh || out->shape[2] != ow ||
          out->shape[3] != out_channels) {
        node.Fail("maps input " + ShapeStr(x->shape) + " with filter " + ShapeStr(w->shape) +
                  " to declared output " + ShapeStr(out->shape) + ", expected [" +
                  std::to_string(x->shape[0]) + "," + std::to_string(oh) + "," +
                  std::to_string(ow) + "," + std::to_string(out_channels) + "]");
      }
      return true;
    }
    case op::FULLY_CONNECTED: {
      const TensorInfo* x = In(0);
      const TensorInfo* w = In(1);
      const TensorInfo* bias = In(2);
      if (!x || !w || !out || w->dynamic) return true;
      if (w->shape.size() != 2)
        node.Fail("has weights " + ShapeStr(w->shape) + ", expected rank 2");
      int64_t units = w->shape[0];
      int64_t depth = w->shape[1];
      if (bias && !bias->dynamic && bias->Elements() != static_cast<uint64_t>(units)) {
        node.Fail("has bias " + ShapeStr(bias->shape) + " for " + std::to_string(units) +
                  " output units");
      }
      if (x->dynamic || depth == 0 || x->shape.empty()) return true;
      // The input is read as rows of `depth` values. XNNPACK refuses a
      // remainder but the builtin kernel silently drops it.
      if (x->Elements() % static_cast<uint64_t>(depth) != 0) {
        node.Fail("has input " + ShapeStr(x->shape) + ", whose " + std::to_string(x->Elements()) +
                  " elements are not rows of the weights' " + std::to_string(depth) + " columns");
      }
      bool keep_dims = node.options_type == options::FullyConnectedOptions &&
                       node.r->GetU8(node.options, 2, 0, "keep_num_dims") != 0;
      std::vector<int64_t> want;
      if (keep_dims) {
        if (x->shape.back() != depth) {
          node.Fail("keeps the dimensions of input " + ShapeStr(x->shape) + " but the weights " +
                    ShapeStr(w->shape) + " take rows of " + std::to_string(depth));
        }
        want = Widen(x->shape);
        want.back() = units;
      } else {
        want = {static_cast<int64_t>(x->Elements()) / depth, units};
      }
      node.ExpectOut(want, "input " + ShapeStr(x->shape) + " with weights " + ShapeStr(w->shape));
      return true;
    }
    case op::AVERAGE_POOL_2D:
    case op::MAX_POOL_2D: {
      if (node.options_type != options::Pool2DOptions || !node.options)
        node.Fail("has no Pool2DOptions");
      int padding = node.r->GetI8(node.options, 0, 0, "padding");
      int32_t stride_w = node.r->GetI32(node.options, 1, 0, "stride_w");
      int32_t stride_h = node.r->GetI32(node.options, 2, 0, "stride_h");
      int32_t filter_w = node.r->GetI32(node.options, 3, 0, "filter_width");
      int32_t filter_h = node.r->GetI32(node.options, 4, 0, "filter_height");
      if (stride_w < 1 || stride_h < 1 || filter_w < 1 || filter_h < 1 || padding < 0 ||
          padding > 1) {
        node.Fail("has stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) +
                  ", filter " + std::to_string(filter_h) + "x" + std::to_string(filter_w) +
                  " and padding " + std::to_string(padding));
      }
      const TensorInfo* x = In(0);
      if (!x || x->dynamic) return true;
      if (x->shape.size() != 4) node.Fail("needs a rank-4 input, got " + ShapeStr(x->shape));
      int64_t oh = WindowOutSize(padding, x->shape[1], filter_h, stride_h, 1);
      int64_t ow = WindowOutSize(padding, x->shape[2], filter_w, stride_w, 1);
      // TFLite's formula gives an empty output here where XNNPACK computes
      // a 1x1 one: the two runtimes disagree, so no answer is right.
      if (oh == 0 || ow == 0) {
        node.Fail("pools input " + ShapeStr(x->shape) + " with a " + std::to_string(filter_h) +
                  "x" + std::to_string(filter_w) + " window that does not fit");
      }
      node.ExpectOut({x->shape[0], oh, ow, x->shape[3]}, "input " + ShapeStr(x->shape));
      return true;
    }
    case op::TRANSPOSE_CONV: {
      if (node.options_type != options::TransposeConvOptions || !node.options)
        node.Fail("has no TransposeConvOptions");
      int padding = node.r->GetI8(node.options, 0, 0, "padding");
      int32_t stride_w = node.r->GetI32(node.options, 1, 0, "stride_w");
      int32_t stride_h = node.r->GetI32(node.options, 2, 0, "stride_h");
      if (stride_w < 1 || stride_h < 1 || padding < 0 || padding > 1) {
        node.Fail("has stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) +
                  " and padding " + std::to_string(padding));
      }
      const TensorInfo* w = In(1);
      const TensorInfo* x = In(2);
      const TensorInfo* bias = In(3);
      if (!w || !x || !out) return true;
      if (w->shape.size() != 4 || x->shape.size() != 4) {
        node.Fail("needs rank-4 filter and input, got " + ShapeStr(w->shape) + " and " +
                  ShapeStr(x->shape));
      }
      int64_t out_channels = w->shape[0];
      // XNNPACK packs the bias as out_channels values read from its buffer,
      // without comparing the two counts: a short bias is read past its end.
      if (bias && !bias->dynamic && bias->Elements() != static_cast<uint64_t>(out_channels)) {
        node.Fail("has bias " + ShapeStr(bias->shape) + " for " + std::to_string(out_channels) +
                  " output channels");
      }
      if (x->dynamic) return true;
      if (x->shape[3] != w->shape[3]) {
        node.Fail("has input " + ShapeStr(x->shape) + " and filter " + ShapeStr(w->shape) +
                  ", whose channels disagree");
      }
      std::vector<int64_t> v;
      if (!node.ConstInts(In(0), &v)) return true;  // output shape computed at run time
      if (v.size() != 4) node.Fail("has output_shape " + ShapeStr(v) + ", expected 4 values");
      // output_shape must be an output the input could have come from: the
      // builtin kernel refuses others, XNNPACK silently produces a different
      // shape (VALID) or ignores the batch.
      int64_t ih = v[1] > 0 ? WindowOutSize(padding, v[1], w->shape[1], stride_h, 1) : -1;
      int64_t iw = v[2] > 0 ? WindowOutSize(padding, v[2], w->shape[2], stride_w, 1) : -1;
      if (v[0] != x->shape[0] || v[3] != out_channels || ih != x->shape[1] || iw != x->shape[2]) {
        node.Fail("has output_shape " + ShapeStr(v) + ", which input " + ShapeStr(x->shape) +
                  " and filter " + ShapeStr(w->shape) + " cannot produce");
      }
      node.ExpectOut(v, "output_shape " + ShapeStr(v));
      return true;
    }
    default: return false;
  }
}

}  // namespace verify
}  // namespace edgepipe
