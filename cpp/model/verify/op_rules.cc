#include "model/verify/op_rules.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "model/op_names.h"

namespace edgepipe {
namespace verify {
namespace {

// Tensor types (schema TensorType) as bits.
constexpr uint32_t Bit(int type) { return uint32_t{1} << type; }
constexpr uint32_t kF32 = Bit(0), kF16 = Bit(1), kI32 = Bit(2), kU8 = Bit(3), kI64 = Bit(4),
                   kStr = Bit(5), kBool = Bit(6), kI16 = Bit(7), kC64 = Bit(8), kI8 = Bit(9),
                   kF64 = Bit(10), kC128 = Bit(11), kU64 = Bit(12), kU32 = Bit(15), kU16 = Bit(16),
                   kI4 = Bit(17), kBF16 = Bit(18), kI2 = Bit(19), kU4 = Bit(20);

// Type classes of the spec strings below.
uint32_t ClassTypes(char c) {
  switch (c) {
    case 'a':
      return kF32 | kF16 | kI32 | kU8 | kI64 | kStr | kBool | kI16 | kC64 | kI8 | kF64 | kC128 |
             kU64 | kU32 | kU16 | kI4 | kBF16;
    case 'n':
      return kF32 | kF16 | kBF16 | kF64 | kI8 | kU8 | kI16 | kI32 | kI64 | kU16 | kU32 | kU64 |
             kBool;
    case 'q': return kF32 | kF16 | kBF16 | kI8 | kU8 | kI16;
    case 'w': return kF32 | kF16 | kBF16 | kI8 | kU8 | kI16 | kI4 | kU4 | kI2;
    case 'b': return kF32 | kF16 | kBF16 | kI32 | kI64;
    case 'i': return kI16 | kI32 | kI64;
    case 'B': return kBool;
    case 'r': return Bit(13) | kI32;  // RESOURCE handle (older writers: int32)
    case 'f': return kF32 | kF16 | kBF16 | kF64;
    default: return 0;  // 'x', 's', 'S': checked elsewhere or not at all
  }
}

struct Rule {
  int code;
  // One letter per position (class above; 's'/'S' = type of input 0/1),
  // optionally followed by '?' (may be -1, or absent when trailing) or '*'
  // (one or more, last item only).
  const char* inputs;
  const char* outputs;
  int options;  // BuiltinOptions type the kernel reads; 0 = none checked
};

using namespace op;       // NOLINT: the table reads best with bare op names
using namespace options;  // NOLINT

const Rule kRules[] = {
    {ADD, "nn", "s", AddOptions},
    {AVERAGE_POOL_2D, "q", "s", Pool2DOptions},
    {CONCATENATION, "a*", "s", ConcatenationOptions},
    {CONV_2D, "qwb?", "q", Conv2DOptions},
    {DEPTHWISE_CONV_2D, "qwb?", "q", DepthwiseConv2DOptions},
    {DEPTH_TO_SPACE, "n", "s", DepthToSpaceOptions},
    {DEQUANTIZE, "w", "f", 0},
    {EMBEDDING_LOOKUP, "iw", "n", 0},
    {FLOOR, "f", "s", 0},
    {FULLY_CONNECTED, "qwb?", "qq?", FullyConnectedOptions},
    {L2_NORMALIZATION, "q", "s", L2NormOptions},
    {L2_POOL_2D, "q", "s", Pool2DOptions},
    {LOCAL_RESPONSE_NORMALIZATION, "f", "s", LocalResponseNormalizationOptions},
    {LOGISTIC, "q", "s", 0},
    {MAX_POOL_2D, "q", "s", Pool2DOptions},
    {MUL, "nn", "s", MulOptions},
    {RELU, "q", "s", 0},
    {RELU_N1_TO_1, "q", "s", 0},
    {RELU6, "q", "s", 0},
    {RESHAPE, "ai?", "s", ReshapeOptions},
    {RESIZE_BILINEAR, "qi", "s", ResizeBilinearOptions},
    {SOFTMAX, "q", "q", SoftmaxOptions},
    {SPACE_TO_DEPTH, "n", "s", SpaceToDepthOptions},
    {TANH, "q", "s", 0},
    {PAD, "ai", "s", PadOptions},
    {GATHER, "ai", "s", GatherOptions},
    {BATCH_TO_SPACE_ND, "nii", "s", BatchToSpaceNDOptions},
    {SPACE_TO_BATCH_ND, "nii", "s", SpaceToBatchNDOptions},
    {TRANSPOSE, "ai", "s", TransposeOptions},
    {MEAN, "ni", "s", ReducerOptions},
    {SUB, "nn", "s", SubOptions},
    {DIV, "nn", "s", DivOptions},
    {SQUEEZE, "a", "s", SqueezeOptions},
    {STRIDED_SLICE, "aiii?", "s", StridedSliceOptions},
    {EXP, "q", "s", ExpOptions},
    {TOPK_V2, "ni", "si", TopKV2Options},
    {SPLIT, "ia", "S*", SplitOptions},
    {LOG_SOFTMAX, "q", "s", LogSoftmaxOptions},
    {CAST, "a", "a", CastOptions},
    {PRELU, "qq", "s", 0},
    {MAXIMUM, "nn", "s", MaximumMinimumOptions},
    {ARG_MAX, "ni", "i", ArgMaxOptions},
    {MINIMUM, "nn", "s", MaximumMinimumOptions},
    {LESS, "aa", "B", LessOptions},
    {NEG, "n", "s", NegOptions},
    {PADV2, "aia", "s", PadV2Options},
    {GREATER, "aa", "B", GreaterOptions},
    {GREATER_EQUAL, "aa", "B", GreaterEqualOptions},
    {LESS_EQUAL, "aa", "B", LessEqualOptions},
    {SELECT, "Baa", "S", SelectOptions},
    {SLICE, "aii", "s", SliceOptions},
    {SIN, "f", "s", 0},
    {TRANSPOSE_CONV, "iwqb?", "q", TransposeConvOptions},
    {TILE, "ai", "s", TileOptions},
    {EXPAND_DIMS, "ai", "s", ExpandDimsOptions},
    {EQUAL, "aa", "B", EqualOptions},
    {NOT_EQUAL, "aa", "B", NotEqualOptions},
    {LOG, "q", "s", 0},
    {SUM, "ni", "s", ReducerOptions},
    {SQRT, "q", "s", 0},
    {RSQRT, "q", "s", 0},
    {SHAPE, "a", "i", ShapeOptions},
    {POW, "nn", "s", PowOptions},
    {ARG_MIN, "ni", "i", ArgMinOptions},
    {REDUCE_PROD, "ni", "s", ReducerOptions},
    {REDUCE_MAX, "ni", "s", ReducerOptions},
    {PACK, "a*", "s", PackOptions},
    {LOGICAL_OR, "BB", "B", LogicalOrOptions},
    {LOGICAL_AND, "BB", "B", LogicalAndOptions},
    {LOGICAL_NOT, "B", "B", LogicalNotOptions},
    {UNPACK, "a", "s*", UnpackOptions},
    {REDUCE_MIN, "ni", "s", ReducerOptions},
    {FLOOR_DIV, "nn", "s", FloorDivOptions},
    {REDUCE_ANY, "Bi", "B", ReducerOptions},
    {SQUARE, "n", "s", SquareOptions},
    {ZEROS_LIKE, "n", "s", ZerosLikeOptions},
    {FILL, "ia", "S", FillOptions},
    {FLOOR_MOD, "nn", "s", FloorModOptions},
    {RANGE, "nnn", "s", RangeOptions},
    {RESIZE_NEAREST_NEIGHBOR, "ai", "s", ResizeNearestNeighborOptions},
    {LEAKY_RELU, "q", "s", LeakyReluOptions},
    {SQUARED_DIFFERENCE, "nn", "s", SquaredDifferenceOptions},
    {MIRROR_PAD, "ai", "s", MirrorPadOptions},
    {ABS, "n", "s", AbsOptions},
    {SPLIT_V, "aii", "s*", SplitVOptions},
    {CEIL, "f", "s", 0},
    {REVERSE_V2, "ai", "s", ReverseV2Options},
    {ADD_N, "n*", "s", AddNOptions},
    {GATHER_ND, "ai", "s", GatherNdOptions},
    {COS, "f", "s", CosOptions},
    {WHERE, "a", "i", WhereOptions},
    {RANK, "a", "i", RankOptions},
    {ELU, "q", "s", 0},
    {REVERSE_SEQUENCE, "ai", "s", ReverseSequenceOptions},
    {QUANTIZE, "q", "q", QuantizeOptions},
    {ROUND, "f", "s", 0},
    {HARD_SWISH, "q", "s", HardSwishOptions},
    {SCATTER_ND, "iai", "S", ScatterNdOptions},
    {SELECT_V2, "Baa", "S", SelectV2Options},
    {DENSIFY, "w", "s", DensifyOptions},
    {BATCH_MATMUL, "qq", "q", BatchMatMulOptions},
    {CUMSUM, "ni", "s", CumsumOptions},
    {BROADCAST_TO, "ai", "s", BroadcastToOptions},
    {GELU, "q", "s", GeluOptions},
    {CALL_ONCE, "", "", CallOnceOptions},
    // Resource variables: a fuzzed CUSTOM -> ASSIGN_VARIABLE with one input
    // crashed LiteRtCreateCompiledModel (SIGSEGV).
    {VAR_HANDLE, "", "r", 0},
    {READ_VARIABLE, "r", "a", 0},
    {ASSIGN_VARIABLE, "ra", "", 0},
};

const Rule* Find(int code) {
  static const Rule* const* table = [] {
    static const Rule* by_code[1024] = {};
    for (const Rule& r : kRules) by_code[r.code] = &r;
    return by_code;
  }();
  return code >= 0 && code < 1024 ? table[code] : nullptr;
}

struct Item {
  char cls;
  bool optional;
  bool repeated;
};

std::vector<Item> Parse(const char* spec) {
  std::vector<Item> items;
  for (const char* p = spec; *p; ++p) {
    if (*p == '?') {
      items.back().optional = true;
    } else if (*p == '*') {
      items.back().repeated = true;
    } else {
      items.push_back({*p, false, false});
    }
  }
  return items;
}

const char* TypeName(int type) {
  static const char* const kNames[] = {
      "FLOAT32",  "FLOAT16",  "INT32",     "UINT8",         "INT64",      "STRING",
      "BOOL",     "INT16",    "COMPLEX64", "INT8",          "FLOAT64",    "COMPLEX128",
      "UINT64",   "RESOURCE", "VARIANT",   "UINT32",        "UINT16",     "INT4",
      "BFLOAT16", "INT2",     "UINT4",     "FLOAT8_E4M3FN", "FLOAT8_E5M2"};
  return type >= 0 && type < static_cast<int>(sizeof(kNames) / sizeof(kNames[0])) ? kNames[type]
                                                                                  : "?";
}

// Arity and types of one side (inputs or outputs) against its spec.
void CheckSide(const OpView& op, const char* spec, bool outputs) {
  std::vector<Item> items = Parse(spec);
  size_t n = outputs ? op.NumOutputs() : op.NumInputs();
  const char* side = outputs ? "output" : "input";
  size_t required = 0;
  bool variadic = !items.empty() && items.back().repeated;
  for (const Item& it : items) required += it.optional ? 0 : 1;
  if (n < required || (!variadic && n > items.size())) {
    std::string want = variadic ? "at least " + std::to_string(required)
                       : required == items.size()
                           ? std::to_string(required)
                           : std::to_string(required) + " to " + std::to_string(items.size());
    op.Fail("has " + std::to_string(n) + " " + side + "s, expected " + want);
  }
  for (size_t i = 0; i < n; ++i) {
    const Item& it = items[std::min(i, items.size() - 1)];
    int32_t index = outputs ? op.OutputIndex(i) : op.InputIndex(i);
    if (index < 0) {
      if (!it.optional) {
        op.Fail("has no tensor for " + std::string(side) + " " + std::to_string(i) +
                ", which is not optional");
      }
      continue;
    }
    const TensorInfo& t = (*op.tensors)[index];
    bool ok = true;
    std::string want;
    if (it.cls == 's' || it.cls == 'S') {
      const TensorInfo* ref = op.In(it.cls == 's' ? 0 : 1);
      ok = !ref || ref->type == t.type;
      if (ref)
        want = TypeName(ref->type) + std::string(" like input ") + (it.cls == 's' ? "0" : "1");
    } else if (uint32_t mask = ClassTypes(it.cls)) {
      ok = t.type >= 0 && t.type < 32 && (mask & Bit(t.type)) != 0;
      for (int type = 0; type < 32; ++type) {
        if (mask & Bit(type)) want += std::string(want.empty() ? "" : ", ") + TypeName(type);
      }
      want = "one of " + want;
    }
    if (!ok) {
      op.Fail("has " + std::string(side) + " " + std::to_string(i) + " (tensor " +
              std::to_string(index) + ") of type " + TypeName(t.type) + ", expected " + want);
    }
  }
}

}  // namespace

bool HasOpRule(int code) { return Find(code) != nullptr; }

bool OptionalInputAllowed(int code, size_t position) {
  if (const Rule* r = Find(code)) {
    std::vector<Item> items = Parse(r->inputs);
    if (items.empty()) return false;
    return items[std::min(position, items.size() - 1)].optional;
  }
  switch (code) {
    case op::CUSTOM:
    case op::DELEGATE: return true;  // opaque to us
    case op::LSTM:
    case op::RNN:
    case op::UNIDIRECTIONAL_SEQUENCE_RNN:
    case op::UNIDIRECTIONAL_SEQUENCE_LSTM:
    case op::BIDIRECTIONAL_SEQUENCE_RNN:
    case op::BIDIRECTIONAL_SEQUENCE_LSTM:
      return position > 0;    // peepholes, projections, aux inputs, ...
    case op::LSH_PROJECTION:  // weight
    case op::CONV_3D:         // bias
      return position == 2;
    case op::SVDF:               // bias
    case op::CONV_3D_TRANSPOSE:  // bias
      return position == 3;
    default: return false;
  }
}

void CheckOpRules(const OpView& op) {
  const Rule* r = Find(op.code);
  if (!r) return;
  CheckSide(op, r->inputs, false);
  CheckSide(op, r->outputs, true);
  // The kernels read their options with builtin_options_as_<T>(); a table
  // of another op's type is read as defaults at best.
  if (r->options != 0 && op.options_type != 0 && op.options_type != r->options) {
    op.Fail("has builtin options " + std::string(BuiltinOptionsLayout(op.options_type).name) +
            ", expected " + BuiltinOptionsLayout(r->options).name);
  }
}

}  // namespace verify
}  // namespace edgepipe
