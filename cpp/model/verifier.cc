#include "model/verifier.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

// A hand-written walker over the TFLite flatbuffer schema. It performs the
// structural checks of flatbuffers::Verifier (offsets, vtables, alignment,
// bounds) and then the semantic checks the runtime silently relies on (tensor
// and subgraph indices, buffer sizes, ...). No flatbuffers library is used so
// that the checks are exactly the ones listed here and nothing in the model
// can reach code we have not read.
//
// Field slot numbers below follow tflite/converter/schema/schema.fbs: slot N
// lives at vtable offset 4 + 2 * N.

namespace edgepipe {
namespace {

#include "model/op_names.inc"

constexpr int kCustomOp = 32;            // BuiltinOperator_CUSTOM
constexpr int kDelegateOp = 51;
constexpr int kDequantizeOp = 6;
constexpr int kDensifyOp = 124;
constexpr int kConv2DOp = 3;
constexpr int kDepthwiseConv2DOp = 4;
constexpr int kReshapeOp = 22;
constexpr int kPadOp = 34;
constexpr int kSqueezeOp = 43;
constexpr int kPadV2Op = 60;
constexpr int kExpandDimsOp = 70;
constexpr int kMirrorPadOp = 100;
constexpr int kAveragePool2DOp = 1;
constexpr int kConcatenationOp = 2;
constexpr int kFullyConnectedOp = 9;
constexpr int kMaxPool2DOp = 17;
constexpr int kResizeBilinearOp = 23;
constexpr int kMeanOp = 40;
constexpr int kTransposeConvOp = 67;
constexpr int kSumOp = 74;
constexpr int kReduceProdOp = 81;
constexpr int kReduceMaxOp = 82;
constexpr int kReduceMinOp = 89;
constexpr int kResizeNearestNeighborOp = 97;
constexpr int kConv2DOptions = 1;           // BuiltinOptions_Conv2DOptions
constexpr int kDepthwiseConv2DOptions = 2;  // BuiltinOptions_DepthwiseConv2DOptions
constexpr int kPool2DOptions = 5;
constexpr int kFullyConnectedOptions = 8;
constexpr int kConcatenationOptions = 10;
constexpr int kReducerOptions = 27;
constexpr int kTransposeConvOptions = 49;
constexpr int kTypeInt32 = 2;
constexpr int kTypeInt64 = 4;
constexpr int kPlaceholderOp = 127;      // PLACEHOLDER_FOR_GREATER_OP_CODES
constexpr int kMaxTensorType = 22;       // FLOAT8_E5M2
constexpr int kTypeString = 5;
constexpr int kTypeResource = 13;
constexpr int kTypeVariant = 14;
constexpr int kMaxQuantizationDetails = 3;  // MultiAxisQuantization
constexpr int kMaxSparseIndexVector = 3;    // Uint8Vector

// Bits per element of each TensorType; 0 where the byte size is not a
// function of the shape (STRING, RESOURCE, VARIANT).
constexpr uint32_t kTypeBits[kMaxTensorType + 1] = {
    32,   // FLOAT32
    16,   // FLOAT16
    32,   // INT32
    8,    // UINT8
    64,   // INT64
    0,    // STRING
    8,    // BOOL
    16,   // INT16
    64,   // COMPLEX64
    8,    // INT8
    64,   // FLOAT64
    128,  // COMPLEX128
    64,   // UINT64
    0,    // RESOURCE
    0,    // VARIANT
    32,   // UINT32
    16,   // UINT16
    4,    // INT4, packed two per byte
    16,   // BFLOAT16
    2,    // INT2, packed four per byte
    4,    // UINT4, packed two per byte
    8,    // FLOAT8_E4M3FN
    8,    // FLOAT8_E5M2
};

// Whether input `position` of a builtin op may be -1 ("no tensor"). The
// runtime's kernels and the XNNPACK delegate index the tensor array with the
// input index unless they expect the input to be optional, so -1 anywhere
// else reads before the array (seen crashing LiteRT on DEQUANTIZE).
bool OptionalInputAllowed(int code, size_t position) {
  switch (code) {
    case kCustomOp:
    case kDelegateOp:
      return true;  // opaque to us
    case 16:   // LSTM
    case 24:   // RNN
    case 35:   // UNIDIRECTIONAL_SEQUENCE_RNN
    case 44:   // UNIDIRECTIONAL_SEQUENCE_LSTM
    case 46:   // BIDIRECTIONAL_SEQUENCE_RNN
    case 52:   // BIDIRECTIONAL_SEQUENCE_LSTM
      return position > 0;  // peepholes, projections, aux inputs, ...
    case 3:    // CONV_2D: bias
    case 4:    // DEPTHWISE_CONV_2D: bias
    case 9:    // FULLY_CONNECTED: bias
    case 15:   // LSH_PROJECTION: weight
    case 132:  // CONV_3D: bias
      return position == 2;
    case 27:   // SVDF: bias
    case 67:   // TRANSPOSE_CONV: bias
    case 141:  // CONV_3D_TRANSPOSE: bias
      return position == 3;
    default:
      return false;
  }
}

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
    default:
      return false;
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
    default:
      return false;
  }
}

// Output extent of a convolution or pooling window along one axis, as the
// runtime computes it (padding 0 = SAME, 1 = VALID); 0 when the window does
// not fit.
int64_t WindowOutSize(int padding, int64_t size, int64_t k, int64_t stride, int64_t dil) {
  int64_t eff = (k - 1) * dil + 1;
  return padding == 0 ? (size + stride - 1) / stride
                      : (size >= eff ? (size - eff + stride) / stride : 0);
}

std::string Escape(const uint8_t* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = p[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Positions are absolute byte offsets into the file. Position 0 holds the
// root offset, so no table, vector or string can start there: 0 means
// "absent" throughout.
struct Table {
  size_t pos = 0;
  size_t vtable = 0;
  uint16_t vsize = 0;
  uint16_t tsize = 0;
  explicit operator bool() const { return pos != 0; }
};

struct Vec {
  size_t pos = 0;  // first element
  size_t len = 0;
  explicit operator bool() const { return pos != 0; }
};

struct BufferInfo {
  bool has_data = false;
  uint64_t bytes = 0;
  size_t pos = 0;  // start of the data inside the flatbuffer; 0 if stored after it
};

struct TensorInfo {
  bool constant = false;
  bool variable = false;
  bool dynamic = false;  // shape_signature has a -1: shape is only a placeholder
  int type = 0;
  std::vector<int32_t> shape;
  const BufferInfo* buffer = nullptr;
  uint64_t Elements() const {
    uint64_t n = 1;
    for (int32_t d : shape) n *= static_cast<uint64_t>(d);  // bounded in TensorTable
    return n;
  }
};

class Walker {
 public:
  Walker(const uint8_t* data, size_t size, const VerifyLimits& limits)
      : data_(data), size_(size), limits_(limits) {}

  ModelSummary Run();

 private:
  // ---- where we are, for error messages --------------------------------
  // Built lazily: the walk visits millions of objects on big models and only
  // a failing one needs its path spelled out.
  struct Frame {
    const char* label;
    size_t index;
    bool indexed;
  };

  class Scope {
   public:
    Scope(Walker* w, const char* label) : w_(w) { w_->Push({label, 0, false}); }
    Scope(Walker* w, const char* label, size_t index) : w_(w) {
      w_->Push({label, index, true});
    }
    ~Scope() { w_->ctx_.pop_back(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Walker* w_;
  };

  void Push(Frame f) {
    if (ctx_.size() >= limits_.max_depth) {
      ctx_.push_back(f);
      Corrupt("nesting deeper than " + std::to_string(limits_.max_depth) +
              " levels at " + Where());
    }
    ctx_.push_back(f);
  }

  std::string Where() const {
    std::string out;
    for (size_t i = ctx_.size(); i-- > 0;) {
      if (!out.empty()) out += " of ";
      out += ctx_[i].label;
      if (ctx_[i].indexed) out += " " + std::to_string(ctx_[i].index);
    }
    return out.empty() ? "the model" : out;
  }

  // `field` names the schema field being read; it is prefixed to Where().
  std::string At(const char* field) const {
    return ctx_.empty() ? std::string(field) : std::string(field) + " of " + Where();
  }

  // What a structural check is looking at, formatted only on failure.
  struct What {
    const char* label;
    size_t index;
    bool indexed;
  };
  static What Field(const char* field) { return {field, 0, false}; }
  std::string Str(const What& w) const {
    std::string s = w.label;
    if (w.indexed) s += " " + std::to_string(w.index);
    return ctx_.empty() ? s : s + " of " + Where();
  }

  [[noreturn]] void Corrupt(const std::string& what) const {
    throw Error(ErrorKind::kModel, "model is corrupt: " + what);
  }

  [[noreturn]] void Truncated(const std::string& what, size_t pos, uint64_t need) const {
    throw Error(ErrorKind::kModel,
                "model is truncated: " + what + " at offset " + std::to_string(pos) +
                    " needs " + std::to_string(need) + " bytes but the file has " +
                    std::to_string(size_));
  }

  // ---- raw reads; callers have checked bounds --------------------------
  uint8_t U8(size_t p) const { return data_[p]; }
  uint16_t U16(size_t p) const {
    return static_cast<uint16_t>(data_[p] | (data_[p + 1] << 8));
  }
  uint32_t U32(size_t p) const {
    return static_cast<uint32_t>(data_[p]) | (static_cast<uint32_t>(data_[p + 1]) << 8) |
           (static_cast<uint32_t>(data_[p + 2]) << 16) |
           (static_cast<uint32_t>(data_[p + 3]) << 24);
  }
  uint64_t U64(size_t p) const {
    return static_cast<uint64_t>(U32(p)) | (static_cast<uint64_t>(U32(p + 4)) << 32);
  }
  int32_t I32(size_t p) const { return static_cast<int32_t>(U32(p)); }

  bool Fits(size_t pos, uint64_t len) const {
    return pos <= size_ && len <= size_ - pos;
  }

  // ---- structure -------------------------------------------------------
  // Follows the uoffset stored at `at` (already bounds-checked).
  size_t Follow(size_t at, const What& what) const {
    uint32_t off = U32(at);
    // flatbuffers forbids zero (self-pointing) and offsets with the sign bit
    // set, so that a 32-bit implementation never sees them wrap.
    if (off == 0 || off > 0x7fffffffu) {
      Corrupt(Str(what) + " has invalid offset " + std::to_string(off) + " at offset " +
              std::to_string(at));
    }
    size_t target = at + off;
    if (!Fits(target, 1)) Truncated(Str(what), target, 1);
    return target;
  }

  Table TableAt(size_t pos, const What& what) {
    if (++tables_ > limits_.max_tables) {
      Corrupt("more than " + std::to_string(limits_.max_tables) +
              " tables (offset loop?) at " + Str(what));
    }
    if (pos % 4 != 0) {
      Corrupt(Str(what) + " is a table at misaligned offset " + std::to_string(pos));
    }
    if (!Fits(pos, 4)) Truncated(Str(what), pos, 4);
    int64_t vt = static_cast<int64_t>(pos) - static_cast<int64_t>(I32(pos));
    if (vt < 0 || vt % 2 != 0 || !Fits(static_cast<size_t>(vt), 4)) {
      Corrupt(Str(what) + " at offset " + std::to_string(pos) + " has its vtable at " +
              std::to_string(vt) + ", outside the file or misaligned");
    }
    Table t;
    t.pos = pos;
    t.vtable = static_cast<size_t>(vt);
    t.vsize = U16(t.vtable);
    t.tsize = U16(t.vtable + 2);
    if (t.vsize < 4 || t.vsize % 2 != 0) {
      Corrupt(Str(what) + " at offset " + std::to_string(pos) + " has vtable size " +
              std::to_string(t.vsize));
    }
    if (!Fits(t.vtable, t.vsize)) Truncated("vtable of " + Str(what), t.vtable, t.vsize);
    if (t.tsize < 4) {
      Corrupt(Str(what) + " at offset " + std::to_string(pos) + " has inline size " +
              std::to_string(t.tsize));
    }
    if (!Fits(pos, t.tsize)) Truncated(Str(what), pos, t.tsize);
    return t;
  }

  uint16_t SlotOffset(const Table& t, int slot) const {
    size_t vo = 4 + 2 * static_cast<size_t>(slot);
    return vo + 2 <= t.vsize ? U16(t.vtable + vo) : 0;
  }

  // Absolute position of a present field of `bytes` bytes, or 0.
  size_t FieldPos(const Table& t, int slot, size_t bytes, const char* field) const {
    uint16_t off = SlotOffset(t, slot);
    if (off == 0) return 0;
    if (off < 4 || static_cast<size_t>(off) + bytes > t.tsize) {
      Corrupt(At(field) + ": field at table offset " + std::to_string(off) + " with " +
              std::to_string(bytes) + " bytes overruns the table's " +
              std::to_string(t.tsize) + " bytes");
    }
    size_t p = t.pos + off;
    if (bytes > 1 && p % std::min<size_t>(bytes, 8) != 0) {
      Corrupt(At(field) + ": misaligned scalar at offset " + std::to_string(p));
    }
    return p;
  }

  uint8_t GetU8(const Table& t, int slot, uint8_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 1, field);
    return p ? U8(p) : def;
  }
  int8_t GetI8(const Table& t, int slot, int8_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 1, field);
    return p ? static_cast<int8_t>(U8(p)) : def;
  }
  uint32_t GetU32(const Table& t, int slot, uint32_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 4, field);
    return p ? U32(p) : def;
  }
  int32_t GetI32(const Table& t, int slot, int32_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 4, field);
    return p ? I32(p) : def;
  }
  uint64_t GetU64(const Table& t, int slot, uint64_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 8, field);
    return p ? U64(p) : def;
  }

  Table SubTable(const Table& t, int slot, const char* field) {
    size_t p = FieldPos(t, slot, 4, field);
    if (!p) return Table();
    return TableAt(Follow(p, Field(field)), Field(field));
  }

  Vec VectorAt(size_t target, size_t elem, const What& what) const {
    if (target % 4 != 0) {
      Corrupt(Str(what) + " is a vector at misaligned offset " + std::to_string(target));
    }
    if (!Fits(target, 4)) Truncated(Str(what), target, 4);
    uint64_t len = U32(target);
    uint64_t bytes = len * elem;  // len < 2^32 and elem <= 8: cannot overflow
    if (!Fits(target + 4, bytes)) Truncated("vector " + Str(what), target + 4, bytes);
    // Builders align vector elements to their size; the runtime reads them
    // in place, so a misaligned 8-byte vector is a corrupt one.
    if (elem > 4 && (target + 4) % elem != 0 && len > 0) {
      Corrupt(Str(what) + ": misaligned elements at offset " + std::to_string(target + 4));
    }
    Vec v;
    v.pos = target + 4;
    v.len = static_cast<size_t>(len);
    return v;
  }

  Vec Vector(const Table& t, int slot, size_t elem, const char* field) {
    size_t p = FieldPos(t, slot, 4, field);
    if (!p) return Vec();
    return VectorAt(Follow(p, Field(field)), elem, Field(field));
  }

  // Returns the string's bytes; `present` tells absent from empty.
  std::string String(const Table& t, int slot, const char* field, bool* present = nullptr) {
    if (present) *present = false;
    size_t p = FieldPos(t, slot, 4, field);
    if (!p) return std::string();
    Vec v = VectorAt(Follow(p, Field(field)), 1, Field(field));
    if (!Fits(v.pos + v.len, 1)) Truncated("terminator of " + At(field), v.pos + v.len, 1);
    if (U8(v.pos + v.len) != 0) Corrupt(At(field) + " is not NUL-terminated");
    if (present) *present = true;
    return std::string(reinterpret_cast<const char*>(data_ + v.pos), v.len);
  }

  Table Element(const Vec& v, size_t i, const char* label) {
    What what{label, i, true};
    return TableAt(Follow(v.pos + 4 * i, what), what);
  }

  int32_t IntAt(const Vec& v, size_t i) const { return I32(v.pos + 4 * i); }

  // A table whose field types we do not model: its vtable must be sound and
  // every present field must start inside the table.
  void GenericTable(const Table& t, const char* field) {
    for (int slot = 0; 4 + 2 * slot + 2 <= t.vsize; ++slot) FieldPos(t, slot, 1, field);
  }

  // ---- semantics -------------------------------------------------------
  void Check(bool ok, const std::string& what) const {
    if (!ok) Corrupt(what);
  }

  void OperatorCodes(const Table& model);
  void Buffers(const Table& model);
  void Subgraph(const Table& sg, size_t index);
  void TensorTable(const Table& t, size_t num_tensors);
  void Quantization(const Table& q, const std::vector<int64_t>& shape, size_t num_tensors);
  // Returns the number of stored values of the sparse tensor.
  uint64_t Sparsity(const Table& s, const std::vector<int64_t>& shape);
  void OperatorTable(const Table& op, size_t num_tensors, const std::vector<TensorInfo>& tensors,
                     size_t subgraph);
  Table Options(const Table& op, int type_slot, int value_slot, int max_type,
               const OptionsLayout* layouts, const char* field, size_t subgraph);
  void SubgraphIndex(int64_t index, const char* field, size_t subgraph);
  void TensorIndices(const Vec& v, const char* field, size_t num_tensors, bool allow_optional,
                     const char* verb);
  void StaticShapes(int code, const char* op_name, const Vec& inputs, const Vec& outputs,
                    const std::vector<TensorInfo>& tensors, int options_type,
                    const Table& options);
  void SignatureDefs(const Table& model);
  void Metadata(const Table& model);
  void ExternalBuffers(const Table& model);
  void CheckCallGraph();

  const uint8_t* data_;
  size_t size_;
  const VerifyLimits& limits_;
  std::vector<Frame> ctx_;
  size_t tables_ = 0;

  ModelSummary summary_;
  std::vector<int> op_codes_;            // resolved builtin code per operator_codes entry
  std::vector<std::string> op_names_;    // summary name per operator_codes entry
  std::vector<BufferInfo> buffers_;
  std::vector<bool> buffer_counted_;
  std::vector<size_t> subgraph_tensors_;
  std::vector<std::vector<size_t>> calls_;  // subgraph -> subgraphs it invokes
  std::set<uint32_t> external_buffer_ids_;
  size_t num_subgraphs_ = 0;
};

ModelSummary Walker::Run() {
  if (size_ < 8) {
    throw Error(ErrorKind::kModel, "not a TFLite model: the file has " + std::to_string(size_) +
                                       " bytes, too few for a flatbuffer header");
  }
  if (std::memcmp(data_ + 4, "TFL3", 4) != 0) {
    throw Error(ErrorKind::kModel, "not a TFLite model: file identifier is \"" +
                                       Escape(data_ + 4, 4) + "\", expected \"TFL3\"");
  }
  Table model = TableAt(Follow(0, Field("root table")), Field("root table"));

  summary_.schema_version = GetU32(model, 0, 0, "version");
  // The runtime refuses other versions only after it has started reading
  // them with the version 3 layout, and crashed on corrupted ones.
  if (summary_.schema_version != 3) {
    Corrupt("schema version is " + std::to_string(summary_.schema_version) +
            "; LiteRT runs TFLite schema version 3 models only");
  }
  bool has_description = false;
  summary_.description = String(model, 3, "description", &has_description);

  OperatorCodes(model);
  Buffers(model);
  ExternalBuffers(model);

  Vec subgraphs = Vector(model, 2, 4, "subgraphs");
  Check(subgraphs && subgraphs.len > 0, "the model has no subgraphs");
  if (subgraphs.len > limits_.max_subgraphs) {
    Corrupt("the model has " + std::to_string(subgraphs.len) + " subgraphs, more than the limit " +
            std::to_string(limits_.max_subgraphs));
  }
  num_subgraphs_ = subgraphs.len;
  subgraph_tensors_.assign(num_subgraphs_, 0);
  calls_.assign(num_subgraphs_, {});
  summary_.num_subgraphs = num_subgraphs_;
  for (size_t i = 0; i < subgraphs.len; ++i) {
    Table sg = Element(subgraphs, i, "subgraph");
    Scope s(this, "subgraph", i);
    Subgraph(sg, i);
  }
  CheckCallGraph();
  SignatureDefs(model);
  Metadata(model);

  std::sort(summary_.custom_ops.begin(), summary_.custom_ops.end());
  summary_.custom_ops.erase(std::unique(summary_.custom_ops.begin(), summary_.custom_ops.end()),
                            summary_.custom_ops.end());
  return std::move(summary_);
}

void Walker::OperatorCodes(const Table& model) {
  Vec codes = Vector(model, 1, 4, "operator_codes");
  for (size_t i = 0; i < codes.len; ++i) {
    Table oc = Element(codes, i, "operator code");
    Scope s(this, "operator code", i);
    int deprecated = GetI8(oc, 0, 0, "deprecated_builtin_code");
    bool has_custom = false;
    std::string custom = String(oc, 1, "custom_code", &has_custom);
    GetI32(oc, 2, 1, "version");
    int32_t builtin = GetI32(oc, 3, 0, "builtin_code");
    // Old writers set only deprecated_builtin_code, some new ones only
    // builtin_code; codes above 127 put the placeholder 127 in the old field.
    // The runtime takes max() of the two, so any other mix means one of them
    // was damaged and the op would silently change meaning.
    bool consistent = deprecated >= 0 && builtin >= 0 &&
                      (deprecated == builtin || deprecated == 0 || builtin == 0 ||
                       (deprecated == kPlaceholderOp && builtin > kPlaceholderOp));
    if (!consistent) {
      Corrupt(Where() + " has deprecated_builtin_code " + std::to_string(deprecated) +
              " and builtin_code " + std::to_string(builtin) + ", which disagree");
    }
    int code = std::max<int32_t>(deprecated, builtin);
    if (code > kMaxBuiltinOp || code == kPlaceholderOp || kBuiltinOpNames[code] == nullptr) {
      Corrupt(Where() + " has unknown builtin code " + std::to_string(code));
    }
    std::string name;
    if (code == kCustomOp) {
      if (!has_custom || custom.empty()) Corrupt(Where() + " is CUSTOM but has no custom_code");
      std::string escaped = Escape(reinterpret_cast<const uint8_t*>(custom.data()), custom.size());
      name = "CUSTOM:" + escaped;
      summary_.custom_ops.push_back(escaped);
    } else {
      name = kBuiltinOpNames[code];
    }
    op_codes_.push_back(code);
    op_names_.push_back(std::move(name));
  }
}

void Walker::Buffers(const Table& model) {
  Vec buffers = Vector(model, 4, 4, "buffers");
  summary_.num_buffers = buffers.len;
  buffers_.resize(buffers.len);
  buffer_counted_.assign(buffers.len, false);
  for (size_t i = 0; i < buffers.len; ++i) {
    Table b = Element(buffers, i, "buffer");
    Scope s(this, "buffer", i);
    Vec data = Vector(b, 0, 1, "data");
    uint64_t offset = GetU64(b, 1, 0, "offset");
    uint64_t size = GetU64(b, 2, 0, "size");
    BufferInfo& info = buffers_[i];
    if (offset > 1) {
      // Data of >2 GB models lives after the flatbuffer, addressed from the
      // start of the file.
      if (size > size_ || offset > size_ - size) {
        Corrupt(Where() + " points at bytes " + std::to_string(offset) + ".." +
                std::to_string(offset + size) + " but the file has " + std::to_string(size_));
      }
      info.has_data = size > 0;
      info.bytes = size;
    } else {
      info.has_data = data && data.len > 0;
      info.bytes = data ? data.len : 0;
      info.pos = data.pos;
    }
  }
}

void Walker::ExternalBuffers(const Table& model) {
  Vec groups = Vector(model, 8, 4, "external_buffer_groups");
  for (size_t i = 0; i < groups.len; ++i) {
    Table g = Element(groups, i, "external buffer group");
    Scope s(this, "external buffer group", i);
    String(g, 0, "name");
  }
  Vec ext = Vector(model, 9, 4, "external_buffers");
  for (size_t i = 0; i < ext.len; ++i) {
    Table e = Element(ext, i, "external buffer");
    Scope s(this, "external buffer", i);
    uint32_t id = GetU32(e, 0, 0, "id");
    uint32_t group = GetU32(e, 1, 0, "group");
    GetU64(e, 2, 0, "offset");
    GetU64(e, 3, 0, "length");
    String(e, 4, "packing");
    if (group >= groups.len) {
      Corrupt(Where() + " names group " + std::to_string(group) + " but the model has " +
              std::to_string(groups.len) + " external buffer groups");
    }
    external_buffer_ids_.insert(id);
  }
}

void Walker::TensorIndices(const Vec& v, const char* field, size_t num_tensors,
                           bool allow_optional, const char* verb) {
  for (size_t i = 0; i < v.len; ++i) {
    int32_t t = IntAt(v, i);
    if ((t == -1 && allow_optional) || (t >= 0 && static_cast<size_t>(t) < num_tensors)) continue;
    Corrupt(Where() + " " + verb + " tensor " + std::to_string(t) + " (" + field + "[" +
            std::to_string(i) + "]) but the subgraph has " + std::to_string(num_tensors) +
            " tensors");
  }
}

void Walker::Subgraph(const Table& sg, size_t index) {
  Vec tensors = Vector(sg, 0, 4, "tensors");
  Vec inputs = Vector(sg, 1, 4, "inputs");
  Vec outputs = Vector(sg, 2, 4, "outputs");
  Vec operators = Vector(sg, 3, 4, "operators");
  String(sg, 4, "name");
  GetI32(sg, 5, -1, "debug_metadata_index");

  size_t n = tensors.len;
  subgraph_tensors_[index] = n;
  summary_.num_tensors += n;
  summary_.num_operators += operators.len;

  std::vector<TensorInfo> infos(n);
  for (size_t i = 0; i < n; ++i) {
    Table t = Element(tensors, i, "tensor");
    Scope s(this, "tensor", i);
    TensorTable(t, n);
    uint32_t buffer = GetU32(t, 2, 0, "buffer");
    infos[i].constant = buffers_[buffer].has_data;  // index checked in TensorTable
    infos[i].buffer = &buffers_[buffer];
    infos[i].variable = GetU8(t, 5, 0, "is_variable") != 0;
    infos[i].type = GetI8(t, 1, 0, "type");
    Vec shape = Vector(t, 0, 4, "shape");
    for (size_t d = 0; d < shape.len; ++d) infos[i].shape.push_back(IntAt(shape, d));
    Vec signature = Vector(t, 7, 4, "shape_signature");
    for (size_t d = 0; d < signature.len; ++d) infos[i].dynamic |= IntAt(signature, d) == -1;
    if (infos[i].dynamic) {
      auto& dims = summary_.dynamic_shapes[{index, i}];
      for (size_t d = 0; d < signature.len; ++d) dims.push_back(IntAt(signature, d));
    }
  }
  // The runtime feeds subgraph inputs from the caller and writes outputs;
  // neither may be a hole.
  TensorIndices(inputs, "inputs", n, false, "takes as input");
  TensorIndices(outputs, "outputs", n, false, "gives as output");
  for (size_t i = 0; i < inputs.len; ++i) {
    size_t t = static_cast<size_t>(IntAt(inputs, i));
    // Constant data may be a read-only mapping of the file; the runtime would
    // copy the caller's input into it.
    if (infos[t].constant && !infos[t].variable) {
      Corrupt(Where() + " takes constant tensor " + std::to_string(t) + " as input");
    }
  }
  for (size_t i = 0; i < operators.len; ++i) {
    Table op = Element(operators, i, "operator");
    Scope s(this, "operator", i);
    OperatorTable(op, n, infos, index);
  }
}

void Walker::TensorTable(const Table& t, size_t num_tensors) {
  Vec shape_vec = Vector(t, 0, 4, "shape");
  int type = GetI8(t, 1, 0, "type");
  uint32_t buffer = GetU32(t, 2, 0, "buffer");
  String(t, 3, "name");
  GetU8(t, 5, 0, "is_variable");
  Vec signature = Vector(t, 7, 4, "shape_signature");
  GetU8(t, 8, 0, "has_rank");
  uint32_t external = GetU32(t, 10, 0, "external_buffer");

  if (type < 0 || type > kMaxTensorType) {
    Corrupt(Where() + " has unknown type " + std::to_string(type));
  }
  if (shape_vec.len > limits_.max_tensor_rank) {
    Corrupt(Where() + " has rank " + std::to_string(shape_vec.len) + ", more than " +
            std::to_string(limits_.max_tensor_rank));
  }
  std::vector<int64_t> shape(shape_vec.len);
  uint64_t elements = 1;
  bool elements_overflow = false;
  for (size_t i = 0; i < shape_vec.len; ++i) {
    int32_t d = IntAt(shape_vec, i);
    if (d < 0) {
      Corrupt(Where() + " has negative dimension " + std::to_string(d) + " at shape[" +
              std::to_string(i) + "]");
    }
    shape[i] = d;
    if (d != 0 && elements > std::numeric_limits<uint64_t>::max() / 4 / static_cast<uint64_t>(d)) {
      elements_overflow = true;
    }
    elements *= static_cast<uint64_t>(d);
  }
  if (elements_overflow) Corrupt(Where() + " has a shape whose element count overflows");
  if (signature && signature.len > 0) {
    // shape_signature is shape with -1 where a dimension is dynamic; the
    // runtime sizes tensors from one and reports the other.
    if (signature.len != shape_vec.len) {
      Corrupt(Where() + " has shape_signature of rank " + std::to_string(signature.len) +
              " but shape of rank " + std::to_string(shape_vec.len));
    }
    for (size_t i = 0; i < signature.len; ++i) {
      int32_t d = IntAt(signature, i);
      if (d < -1 || (d != -1 && d != shape[i])) {
        Corrupt(Where() + " has shape_signature[" + std::to_string(i) + "] = " +
                std::to_string(d) + " but shape[" + std::to_string(i) + "] = " +
                std::to_string(shape[i]));
      }
    }
  }
  if (buffer >= buffers_.size()) {
    Corrupt(Where() + " uses buffer " + std::to_string(buffer) + " but the model has " +
            std::to_string(buffers_.size()) + " buffers");
  }
  if (external != 0 && external_buffer_ids_.count(external) == 0) {
    Corrupt(Where() + " uses external buffer " + std::to_string(external) +
            " which the model does not define");
  }

  Table q = SubTable(t, 4, "quantization");
  if (q) {
    Scope s(this, "quantization");
    Quantization(q, shape, num_tensors);
  }

  Table sp = SubTable(t, 6, "sparsity");
  uint64_t sparse_values = 0;
  if (sp) {
    Scope s(this, "sparsity");
    sparse_values = Sparsity(sp, shape);
    summary_.has_sparse_tensors = true;
  }

  Vec variants = Vector(t, 9, 4, "variant_tensors");
  for (size_t i = 0; i < variants.len; ++i) {
    Table v = Element(variants, i, "variant subtype");
    Scope s(this, "variant subtype", i);
    Vec vshape = Vector(v, 0, 4, "shape");
    int vtype = GetI8(v, 1, 0, "type");
    GetU8(v, 2, 0, "has_rank");
    if (vtype < 0 || vtype > kMaxTensorType) {
      Corrupt(Where() + " has unknown type " + std::to_string(vtype));
    }
    if (vshape.len > limits_.max_tensor_rank) {
      Corrupt(Where() + " has rank " + std::to_string(vshape.len));
    }
    for (size_t k = 0; k < vshape.len; ++k) {
      if (IntAt(vshape, k) < -1) Corrupt(Where() + " has dimension " + std::to_string(IntAt(vshape, k)));
    }
  }

  const BufferInfo& b = buffers_[buffer];
  if (b.has_data) {
    if (!buffer_counted_[buffer]) {
      buffer_counted_[buffer] = true;
      summary_.constant_bytes += static_cast<size_t>(b.bytes);
    }
    uint32_t bits = kTypeBits[type];
    if (bits != 0) {
      uint64_t values = sp ? sparse_values : elements;
      uint64_t want = (values * bits + 7) / 8;  // values < 2^62 / 4: no overflow
      if (b.bytes != want) {
        Corrupt(Where() + " has " + (sp ? std::to_string(values) + " stored values"
                                        : "shape of " + std::to_string(values) + " elements") +
                " (" + std::to_string(want) + " bytes) but buffer " + std::to_string(buffer) +
                " holds " + std::to_string(b.bytes) + " bytes");
      }
    }
  }
}

void Walker::Quantization(const Table& q, const std::vector<int64_t>& shape, size_t num_tensors) {
  Vec min = Vector(q, 0, 4, "min");
  Vec max = Vector(q, 1, 4, "max");
  Vec scale = Vector(q, 2, 4, "scale");
  Vec zero_point = Vector(q, 3, 8, "zero_point");
  int details_type = GetU8(q, 4, 0, "details_type");
  int32_t qdim = GetI32(q, 6, 0, "quantized_dimension");
  (void)min;
  (void)max;
  if (zero_point.len != 0 && zero_point.len != scale.len) {
    Corrupt(Where() + " has " + std::to_string(scale.len) + " scales but " +
            std::to_string(zero_point.len) + " zero points");
  }
  if (qdim < 0 || (scale.len > 1 && static_cast<size_t>(qdim) >= shape.size())) {
    Corrupt(Where() + " has quantized_dimension " + std::to_string(qdim) +
            " for a tensor of rank " + std::to_string(shape.size()));
  }
  // Per-channel kernels index scale[c] for every channel c of that dimension.
  if (scale.len > 1 && static_cast<uint64_t>(shape[qdim]) != scale.len) {
    Corrupt(Where() + " has " + std::to_string(scale.len) + " scales but dimension " +
            std::to_string(qdim) + " has size " + std::to_string(shape[qdim]));
  }
  if (details_type > kMaxQuantizationDetails) {
    Corrupt(Where() + " has unknown details type " + std::to_string(details_type));
  }
  Table d = SubTable(q, 5, "details");
  if (!d || details_type == 0) return;
  Scope s(this, "quantization details");
  auto tensor_ref = [&](int slot, const char* field) {
    int32_t t = GetI32(d, slot, 0, field);
    if (t < -1 || (t >= 0 && static_cast<size_t>(t) >= num_tensors)) {
      Corrupt(Where() + " refers to tensor " + std::to_string(t) + " (" + field +
              ") but the subgraph has " + std::to_string(num_tensors) + " tensors");
    }
  };
  switch (details_type) {
    case 1:  // CustomQuantization
      Vector(d, 0, 1, "custom");
      break;
    case 2:  // BlockwiseQuantization
      tensor_ref(0, "scales");
      tensor_ref(1, "zero_points");
      GetI32(d, 2, 0, "block_size");
      Vector(d, 3, 4, "block_shape");
      break;
    case 3: {  // MultiAxisQuantization
      tensor_ref(0, "scales");
      tensor_ref(1, "zero_points");
      GetI32(d, 2, 0, "block_size");
      Vec dims = Vector(d, 3, 4, "quantized_dimensions");
      for (size_t i = 0; i < dims.len; ++i) {
        int32_t dim = IntAt(dims, i);
        if (dim < 0 || static_cast<size_t>(dim) >= shape.size()) {
          Corrupt(Where() + " quantizes dimension " + std::to_string(dim) +
                  " of a tensor of rank " + std::to_string(shape.size()));
        }
      }
      break;
    }
  }
}

uint64_t Walker::Sparsity(const Table& s, const std::vector<int64_t>& shape) {
  Vec order = Vector(s, 0, 4, "traversal_order");
  Vec block_map = Vector(s, 1, 4, "block_map");
  Vec dims = Vector(s, 2, 4, "dim_metadata");
  size_t n = shape.size();
  size_t k = block_map.len;
  if (k > n || order.len != n + k || dims.len != n + k) {
    Corrupt(Where() + " has traversal_order of length " + std::to_string(order.len) +
            ", block_map of length " + std::to_string(k) + " and dim_metadata of length " +
            std::to_string(dims.len) + " for a tensor of rank " + std::to_string(n));
  }
  // traversal_order: a permutation of the n tensor dims, then of the k block dims.
  std::vector<size_t> level_of(n + k, n + k);
  for (size_t i = 0; i < order.len; ++i) {
    int32_t d = IntAt(order, i);
    bool ok = i < n ? (d >= 0 && static_cast<size_t>(d) < n)
                    : (static_cast<size_t>(d) >= n && static_cast<size_t>(d) < n + k);
    if (!ok || level_of[d] != n + k) {
      Corrupt(Where() + " has invalid traversal_order[" + std::to_string(i) + "] = " +
              std::to_string(d));
    }
    level_of[d] = i;
  }
  std::vector<bool> blocked(n, false);
  for (size_t j = 0; j < k; ++j) {
    int32_t d = IntAt(block_map, j);
    if (d < 0 || static_cast<size_t>(d) >= n || blocked[d]) {
      Corrupt(Where() + " has invalid block_map[" + std::to_string(j) + "] = " + std::to_string(d));
    }
    blocked[d] = true;
  }

  // Walk the compressed levels the way the runtime densifies them: each
  // level multiplies (dense) or replaces (CSR) the number of positions, and
  // every segment/index array must fit the positions of the level above.
  std::vector<int64_t> level_size(n + k, -1);  // extent of each level, if known
  std::vector<Table> meta(n + k);
  for (size_t i = 0; i < dims.len; ++i) meta[i] = Element(dims, i, "dim_metadata");
  for (size_t j = 0; j < k; ++j) {
    // Block extents are only given by dense block levels.
    Table m = meta[level_of[n + j]];
    if (GetI8(m, 0, 0, "format") == 0) level_size[level_of[n + j]] = GetI32(m, 1, 0, "dense_size");
  }
  for (size_t i = 0; i < n + k; ++i) {
    int32_t d = IntAt(order, i);
    if (static_cast<size_t>(d) >= n) continue;
    int64_t extent = shape[d];
    if (blocked[d]) {
      size_t j = 0;
      while (static_cast<size_t>(IntAt(block_map, j)) != static_cast<size_t>(d)) ++j;
      int64_t b = level_size[level_of[n + j]];
      if (b <= 0 || extent % b != 0) {
        Corrupt(Where() + " blocks dimension " + std::to_string(d) + " of size " +
                std::to_string(extent) + " by " + std::to_string(b));
      }
      extent /= b;
    }
    level_size[i] = extent;
  }

  uint64_t positions = 1;
  for (size_t i = 0; i < n + k; ++i) {
    Scope sc(this, "dim_metadata", i);
    const Table& m = meta[i];
    int format = GetI8(m, 0, 0, "format");
    int32_t dense_size = GetI32(m, 1, 0, "dense_size");
    int seg_type = GetU8(m, 2, 0, "array_segments_type");
    int idx_type = GetU8(m, 4, 0, "array_indices_type");
    if (format == 0) {
      if (dense_size < 0 || (level_size[i] >= 0 && dense_size != level_size[i])) {
        Corrupt(Where() + " has dense_size " + std::to_string(dense_size) + " but the level has " +
                std::to_string(level_size[i]) + " entries");
      }
      positions *= static_cast<uint64_t>(dense_size);
      if (positions > (uint64_t{1} << 40)) Corrupt(Where() + " describes too many values");
      continue;
    }
    if (format != 1) Corrupt(Where() + " has unknown format " + std::to_string(format));
    if (seg_type < 1 || seg_type > kMaxSparseIndexVector || idx_type < 1 ||
        idx_type > kMaxSparseIndexVector) {
      Corrupt(Where() + " is SPARSE_CSR with index vector types " + std::to_string(seg_type) +
              " and " + std::to_string(idx_type));
    }
    auto index_vector = [&](int slot, int type, const char* field) {
      Table iv = SubTable(m, slot, field);
      if (!iv) Corrupt(Where() + " is SPARSE_CSR without " + field);
      static const size_t kElem[] = {0, 4, 2, 1};
      Scope sv(this, field);
      Vec v = Vector(iv, 0, kElem[type], "values");
      if (!v) Corrupt(Where() + " has no values");
      return std::make_pair(v, type);
    };
    auto value = [&](const std::pair<Vec, int>& v, size_t i) -> int64_t {
      switch (v.second) {
        case 1: return I32(v.first.pos + 4 * i);
        case 2: return U16(v.first.pos + 2 * i);
        default: return U8(v.first.pos + i);
      }
    };
    auto segments = index_vector(3, seg_type, "array_segments");
    auto indices = index_vector(5, idx_type, "array_indices");
    if (segments.first.len != positions + 1) {
      Corrupt(Where() + " has " + std::to_string(segments.first.len) +
              " array_segments, expected " + std::to_string(positions + 1));
    }
    int64_t prev = 0;
    for (size_t j = 0; j < segments.first.len; ++j) {
      int64_t v = value(segments, j);
      if ((j == 0 && v != 0) || v < prev) {
        Corrupt(Where() + " has array_segments[" + std::to_string(j) + "] = " + std::to_string(v) +
                " out of order");
      }
      prev = v;
    }
    if (static_cast<uint64_t>(prev) != indices.first.len) {
      Corrupt(Where() + " has array_segments ending at " + std::to_string(prev) + " but " +
              std::to_string(indices.first.len) + " array_indices");
    }
    for (size_t j = 0; j < indices.first.len; ++j) {
      int64_t v = value(indices, j);
      if (v < 0 || (level_size[i] >= 0 && v >= level_size[i])) {
        Corrupt(Where() + " has array_indices[" + std::to_string(j) + "] = " + std::to_string(v) +
                " outside a level of " + std::to_string(level_size[i]) + " entries");
      }
    }
    positions = indices.first.len;
  }
  return positions;
}

void Walker::SubgraphIndex(int64_t index, const char* field, size_t subgraph) {
  if (index < 0 || static_cast<uint64_t>(index) >= num_subgraphs_) {
    Corrupt(Where() + " refers to subgraph " + std::to_string(index) + " (" + field +
            ") but the model has " + std::to_string(num_subgraphs_) + " subgraphs");
  }
  calls_[subgraph].push_back(static_cast<size_t>(index));
}

Table Walker::Options(const Table& op, int type_slot, int value_slot, int max_type,
                     const OptionsLayout* layouts, const char* field, size_t subgraph) {
  int type = GetU8(op, type_slot, 0, field);
  if (type > max_type) {
    Corrupt(Where() + " has unknown " + field + " type " + std::to_string(type));
  }
  Table t = SubTable(op, value_slot, field);
  if (type == 0) return Table();
  const OptionsLayout& layout = layouts[type];
  // Every writer emits the options table with its type; type without table
  // is a damaged offset, and some runtime paths do not test for null.
  if (!t) Corrupt(Where() + " has " + field + " of type " + layout.name + " but no table");
  Scope s(this, layout.name);
  const char* f = layout.fields;
  size_t nfields = std::strlen(f);
  // Walk every slot of the layout, not only those in the vtable: an absent
  // subgraph index still means subgraph 0 to the runtime.
  int nslots = static_cast<int>(std::max<size_t>(nfields, (t.vsize - 4) / 2));
  for (int slot = 0; slot < nslots; ++slot) {
    char c = static_cast<size_t>(slot) < nfields ? f[slot] : '?';
    switch (c) {
      case '1': FieldPos(t, slot, 1, "field"); break;
      case '2': FieldPos(t, slot, 2, "field"); break;
      case '4': FieldPos(t, slot, 4, "field"); break;
      case '8': FieldPos(t, slot, 8, "field"); break;
      case 'g': {
        size_t p = FieldPos(t, slot, 4, "subgraph index");
        SubgraphIndex(p ? I32(p) : 0, "subgraph index", subgraph);
        break;
      }
      case 'b': Vector(t, slot, 1, "vector"); break;
      case 'h': Vector(t, slot, 2, "vector"); break;
      case 'w': Vector(t, slot, 4, "vector"); break;
      case 'q': Vector(t, slot, 8, "vector"); break;
      case 'G': {
        Vec v = Vector(t, slot, 4, "subgraph indices");
        for (size_t i = 0; i < v.len; ++i) SubgraphIndex(IntAt(v, i), "subgraph indices", subgraph);
        break;
      }
      case 's': String(t, slot, "string"); break;
      case 't': {
        Table sub = SubTable(t, slot, "table");
        if (sub) GenericTable(sub, "field");
        break;
      }
      default:
        // Unknown or deprecated slot (also slots added by a newer schema):
        // all we can require is that it starts inside the table.
        FieldPos(t, slot, 1, "field");
        break;
    }
  }
  return t;
}

void Walker::OperatorTable(const Table& op, size_t num_tensors,
                           const std::vector<TensorInfo>& tensors, size_t subgraph) {
  uint32_t opcode = GetU32(op, 0, 0, "opcode_index");
  if (opcode >= op_codes_.size()) {
    Corrupt(Where() + " uses operator code " + std::to_string(opcode) + " but the model has " +
            std::to_string(op_codes_.size()));
  }
  summary_.op_counts[op_names_[opcode]]++;
  int code = op_codes_[opcode];
  const char* op_name = kBuiltinOpNames[code];

  Vec inputs = Vector(op, 1, 4, "inputs");
  Vec outputs = Vector(op, 2, 4, "outputs");
  Vec mutating = Vector(op, 7, 1, "mutating_variable_inputs");
  Vec intermediates = Vector(op, 8, 4, "intermediates");
  TensorIndices(inputs, "inputs", num_tensors, true, "reads");
  TensorIndices(outputs, "outputs", num_tensors, true, "writes");
  TensorIndices(intermediates, "intermediates", num_tensors, true, "uses");
  for (size_t i = 0; i < inputs.len; ++i) {
    if (IntAt(inputs, i) == -1 && !OptionalInputAllowed(code, i)) {
      Corrupt(Where() + " (" + op_name + ") has no tensor for input " + std::to_string(i) +
              ", which is not optional");
    }
  }
  for (size_t i = 0; i < outputs.len; ++i) {
    int32_t t = IntAt(outputs, i);
    if (t == -1 && code != kCustomOp && code != kDelegateOp) {
      Corrupt(Where() + " (" + op_name + ") has no tensor for output " + std::to_string(i));
    }
    if (t >= 0 && tensors[t].constant && !tensors[t].variable) {
      Corrupt(Where() + " writes constant tensor " + std::to_string(t));
    }
  }
  if ((code == kDequantizeOp || code == kDensifyOp) && inputs.len >= 1 && outputs.len >= 1) {
    // XNNPACK turns DEQUANTIZE/DENSIFY of constant weights into static
    // tensors of the output's shape filled from the input's data, trusting
    // that the two shapes agree.
    const TensorInfo& in = tensors[IntAt(inputs, 0)];
    const TensorInfo& out = tensors[IntAt(outputs, 0)];
    if (in.shape != out.shape) {
      Corrupt(Where() + " (" + op_name + ") maps tensor " + std::to_string(IntAt(inputs, 0)) +
              " to tensor " + std::to_string(IntAt(outputs, 0)) + " of a different shape");
    }
  }
  if (mutating.len != 0 && mutating.len != inputs.len) {
    Corrupt(Where() + " has " + std::to_string(mutating.len) + " mutating_variable_inputs for " +
            std::to_string(inputs.len) + " inputs");
  }

  int options_type = GetU8(op, 3, 0, "builtin_options_type");
  Table options =
      Options(op, 3, 4, kBuiltinOptionsMax, kBuiltinOptionsLayouts, "builtin_options", subgraph);
  Options(op, 11, 12, kBuiltinOptions2Max, kBuiltinOptions2Layouts, "builtin_options_2", subgraph);

  Vector(op, 5, 1, "custom_options");
  GetI8(op, 6, 0, "custom_options_format");
  uint64_t large_offset = GetU64(op, 9, 0, "large_custom_options_offset");
  uint64_t large_size = GetU64(op, 10, 0, "large_custom_options_size");
  if (large_offset > 1 && (large_size > size_ || large_offset > size_ - large_size)) {
    Corrupt(Where() + " has custom options at bytes " + std::to_string(large_offset) + ".." +
            std::to_string(large_offset + large_size) + " but the file has " +
            std::to_string(size_));
  }
  GetI32(op, 13, -1, "debug_metadata_index");
  StaticShapes(code, op_name, inputs, outputs, tensors, options_type, options);
}

// XNNPACK builds its graph from the shapes declared in the model and, for
// these ops, does not re-derive them from the inputs the way the builtin
// kernels do: a declared shape that disagrees with the operands makes it read
// or write out of bounds (seen as SIGSEGV on corrupted models) or size a
// tensor from a damaged constant (seen as a 16 GB allocation). Only shapes
// that are fully static are compared.
void Walker::StaticShapes(int code, const char* op_name, const Vec& inputs, const Vec& outputs,
                          const std::vector<TensorInfo>& tensors, int options_type,
                          const Table& options) {
  auto in = [&](size_t i) -> const TensorInfo* {
    return i < inputs.len && IntAt(inputs, i) >= 0 ? &tensors[IntAt(inputs, i)] : nullptr;
  };
  const TensorInfo* out = outputs.len > 0 && IntAt(outputs, 0) >= 0 ? &tensors[IntAt(outputs, 0)]
                                                                      : nullptr;
  auto fail = [&](const std::string& what) {
    Corrupt(Where() + " (" + op_name + ") " + what);
  };
  auto shape_str = [](const auto& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
  };
  // The runtime re-derives these outputs (LiteRT 2.3.0 ran every probed op
  // with a wrong declared output shape correctly), but edgepipe reports the
  // declared shapes as the model's contract before compiling, so a declared
  // shape the op cannot produce is a damaged file all the same. An empty
  // shape is how some writers say "unknown"; it is left alone.
  auto expect_out = [&](const std::vector<int64_t>& want, const std::string& from) {
    if (!out || out->dynamic || (out->shape.empty() && !want.empty())) return;
    if (std::equal(want.begin(), want.end(), out->shape.begin(), out->shape.end())) return;
    fail("maps " + from + " to declared output " + shape_str(out->shape) + ", expected " +
         shape_str(want));
  };
  auto widen = [](const std::vector<int32_t>& shape) {
    return std::vector<int64_t>(shape.begin(), shape.end());
  };
  // Values of a dense int32/int64 constant stored inside the flatbuffer
  // (index vectors: sizes, axes, output shapes); false when they cannot be
  // read statically.
  auto const_ints = [&](const TensorInfo* t, std::vector<int64_t>* values) {
    if (!t || !t->constant || t->buffer->pos == 0) return false;
    if (t->type != kTypeInt32 && t->type != kTypeInt64) return false;
    size_t width = t->type == kTypeInt32 ? 4 : 8;
    uint64_t n = t->Elements();
    if (n > 64 || t->buffer->bytes != n * width) return false;
    values->clear();
    for (size_t i = 0; i < n; ++i) {
      size_t p = t->buffer->pos + width * i;
      values->push_back(width == 4 ? I32(p) : static_cast<int64_t>(U64(p)));
    }
    return true;
  };
  auto all_present = [&]() {
    for (size_t i = 0; i < inputs.len; ++i) {
      if (IntAt(inputs, i) < 0) return false;
    }
    return out != nullptr;
  };

  if (IsShapePreserving(code)) {
    const TensorInfo* x = in(0);
    if (x && !x->dynamic) expect_out(widen(x->shape), "input " + shape_str(x->shape));
    return;
  }
  if (IsBroadcastBinary(code)) {
    const TensorInfo* a = in(0);
    const TensorInfo* b = in(1);
    if (!a || !b || a->dynamic || b->dynamic) return;
    // Numpy broadcasting, aligned at the last dimension.
    size_t rank = std::max(a->shape.size(), b->shape.size());
    std::vector<int64_t> want(rank);
    for (size_t i = 0; i < rank; ++i) {
      int64_t da = i < rank - a->shape.size() ? 1 : a->shape[i - (rank - a->shape.size())];
      int64_t db = i < rank - b->shape.size() ? 1 : b->shape[i - (rank - b->shape.size())];
      if (da != db && da != 1 && db != 1) {
        fail("cannot broadcast input " + shape_str(a->shape) + " with input " +
             shape_str(b->shape));
      }
      want[i] = da == 1 ? db : da;
    }
    expect_out(want, "inputs " + shape_str(a->shape) + " and " + shape_str(b->shape));
    return;
  }

  switch (code) {
    case kReshapeOp:
    case kSqueezeOp:
    case kExpandDimsOp: {
      const TensorInfo* x = in(0);
      if (!x || !out || x->dynamic || out->dynamic) return;
      if (x->Elements() != out->Elements()) {
        fail("turns shape " + shape_str(x->shape) + " into " + shape_str(out->shape) +
             ", a different number of elements");
      }
      return;
    }
    case kPadOp:
    case kPadV2Op:
    case kMirrorPadOp: {
      const TensorInfo* x = in(0);
      const TensorInfo* pads = in(1);
      if (!x || !pads || !out || !pads->constant || pads->buffer->pos == 0) return;
      if (pads->type != kTypeInt32 && pads->type != kTypeInt64) return;
      size_t rank = x->shape.size();
      if (pads->shape.size() != 2 || static_cast<size_t>(pads->shape[0]) != rank ||
          pads->shape[1] != 2) {
        fail("has paddings of shape " + shape_str(pads->shape) + " for an input of rank " +
             std::to_string(rank));
      }
      if (x->dynamic || out->dynamic || out->shape.size() != rank) return;
      size_t width = pads->type == kTypeInt32 ? 4 : 8;
      if (pads->buffer->bytes < rank * 2 * width) return;  // sparse: not a dense [rank,2]
      size_t base = pads->buffer->pos;
      for (size_t d = 0; d < rank; ++d) {
        int64_t before = width == 4 ? I32(base + 8 * d) : static_cast<int64_t>(U64(base + 16 * d));
        int64_t after = width == 4 ? I32(base + 8 * d + 4)
                                   : static_cast<int64_t>(U64(base + 16 * d + 8));
        if (before < 0 || after < 0 || before > (1 << 30) || after > (1 << 30) ||
            x->shape[d] + before + after != out->shape[d]) {
          fail("pads dimension " + std::to_string(d) + " of size " + std::to_string(x->shape[d]) +
               " by " + std::to_string(before) + "+" + std::to_string(after) +
               " but declares size " + std::to_string(out->shape[d]));
        }
      }
      return;
    }
    case kConv2DOp:
    case kDepthwiseConv2DOp: {
      bool depthwise = code == kDepthwiseConv2DOp;
      // The kernels accept a missing bias slot, but LiteRT 2.3.0 crashed
      // running a 2-input DEPTHWISE_CONV_2D; writers always emit the slot
      // (-1 when there is no bias).
      if (inputs.len != 3 || outputs.len != 1) {
        fail("has " + std::to_string(inputs.len) + " inputs and " +
             std::to_string(outputs.len) + " outputs, expected 3 and 1");
      }
      int want = depthwise ? kDepthwiseConv2DOptions : kConv2DOptions;
      if (options_type != want || !options) fail("has no " + std::string(kBuiltinOptionsLayouts[want].name));
      // Both option tables start with padding, stride_w, stride_h; dilations
      // follow at slots 4,5 (conv) or 5,6 (depthwise).
      int padding = GetI8(options, 0, 0, "padding");
      int32_t stride_w = GetI32(options, 1, 0, "stride_w");
      int32_t stride_h = GetI32(options, 2, 0, "stride_h");
      int32_t dil_w = GetI32(options, depthwise ? 5 : 4, 1, "dilation_w_factor");
      int32_t dil_h = GetI32(options, depthwise ? 6 : 5, 1, "dilation_h_factor");
      if (stride_w < 1 || stride_h < 1 || dil_w < 1 || dil_h < 1 || padding < 0 || padding > 1) {
        fail("has stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) +
             ", dilation " + std::to_string(dil_h) + "x" + std::to_string(dil_w) +
             " and padding " + std::to_string(padding));
      }
      const TensorInfo* x = in(0);
      const TensorInfo* w = in(1);
      const TensorInfo* bias = in(2);
      if (!x || !w || !out) fail("lacks its input, filter or output");
      if (x->shape.size() != 4 || w->shape.size() != 4 || out->shape.size() != 4) {
        if (x->dynamic || out->dynamic) return;
        fail("needs rank-4 input, filter and output, got " + shape_str(x->shape) + ", " +
             shape_str(w->shape) + ", " + shape_str(out->shape));
      }
      int64_t out_channels = depthwise ? w->shape[3] : w->shape[0];
      bool channels_ok = depthwise ? (x->shape[3] > 0 && w->shape[3] % x->shape[3] == 0)
                                   : (w->shape[3] > 0 && x->shape[3] % w->shape[3] == 0);
      if (!channels_ok || (depthwise && w->shape[0] != 1)) {
        fail("has input " + shape_str(x->shape) + " and filter " + shape_str(w->shape) +
             ", whose channels disagree");
      }
      if (bias && (bias->shape.size() != 1 || bias->shape[0] != out_channels)) {
        fail("has bias " + shape_str(bias->shape) + " for " + std::to_string(out_channels) +
             " output channels");
      }
      if (x->dynamic || out->dynamic) return;
      int64_t oh = WindowOutSize(padding, x->shape[1], w->shape[1], stride_h, dil_h);
      int64_t ow = WindowOutSize(padding, x->shape[2], w->shape[2], stride_w, dil_w);
      if (out->shape[0] != x->shape[0] || out->shape[1] != oh || out->shape[2] != ow ||
          out->shape[3] != out_channels) {
        fail("maps input " + shape_str(x->shape) + " with filter " + shape_str(w->shape) +
             " to declared output " + shape_str(out->shape) + ", expected [" +
             std::to_string(x->shape[0]) + "," + std::to_string(oh) + "," + std::to_string(ow) +
             "," + std::to_string(out_channels) + "]");
      }
      return;
    }
    case kFullyConnectedOp: {
      const TensorInfo* x = in(0);
      const TensorInfo* w = in(1);
      const TensorInfo* bias = in(2);
      if (!x || !w || !out || w->dynamic) return;
      if (w->shape.size() != 2) fail("has weights " + shape_str(w->shape) + ", expected rank 2");
      int64_t units = w->shape[0];
      int64_t depth = w->shape[1];
      if (bias && !bias->dynamic && bias->Elements() != static_cast<uint64_t>(units)) {
        fail("has bias " + shape_str(bias->shape) + " for " + std::to_string(units) +
             " output units");
      }
      if (x->dynamic || depth == 0 || x->shape.empty()) return;
      // The input is read as rows of `depth` values. XNNPACK refuses a
      // remainder but the builtin kernel silently drops it.
      if (x->Elements() % static_cast<uint64_t>(depth) != 0) {
        fail("has input " + shape_str(x->shape) + ", whose " + std::to_string(x->Elements()) +
             " elements are not rows of the weights' " + std::to_string(depth) + " columns");
      }
      bool keep_dims = options_type == kFullyConnectedOptions &&
                       GetU8(options, 2, 0, "keep_num_dims") != 0;
      std::vector<int64_t> want;
      if (keep_dims) {
        if (x->shape.back() != depth) {
          fail("keeps the dimensions of input " + shape_str(x->shape) + " but the weights " +
               shape_str(w->shape) + " take rows of " + std::to_string(depth));
        }
        want = widen(x->shape);
        want.back() = units;
      } else {
        want = {static_cast<int64_t>(x->Elements()) / depth, units};
      }
      expect_out(want, "input " + shape_str(x->shape) + " with weights " + shape_str(w->shape));
      return;
    }
    case kAveragePool2DOp:
    case kMaxPool2DOp: {
      if (options_type != kPool2DOptions || !options) fail("has no Pool2DOptions");
      int padding = GetI8(options, 0, 0, "padding");
      int32_t stride_w = GetI32(options, 1, 0, "stride_w");
      int32_t stride_h = GetI32(options, 2, 0, "stride_h");
      int32_t filter_w = GetI32(options, 3, 0, "filter_width");
      int32_t filter_h = GetI32(options, 4, 0, "filter_height");
      if (stride_w < 1 || stride_h < 1 || filter_w < 1 || filter_h < 1 || padding < 0 ||
          padding > 1) {
        fail("has stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) +
             ", filter " + std::to_string(filter_h) + "x" + std::to_string(filter_w) +
             " and padding " + std::to_string(padding));
      }
      const TensorInfo* x = in(0);
      if (!x || x->dynamic) return;
      if (x->shape.size() != 4) fail("needs a rank-4 input, got " + shape_str(x->shape));
      int64_t oh = WindowOutSize(padding, x->shape[1], filter_h, stride_h, 1);
      int64_t ow = WindowOutSize(padding, x->shape[2], filter_w, stride_w, 1);
      // TFLite's formula gives an empty output here where XNNPACK computes
      // a 1x1 one: the two runtimes disagree, so no answer is right.
      if (oh == 0 || ow == 0) {
        fail("pools input " + shape_str(x->shape) + " with a " + std::to_string(filter_h) + "x" +
             std::to_string(filter_w) + " window that does not fit");
      }
      expect_out({x->shape[0], oh, ow, x->shape[3]}, "input " + shape_str(x->shape));
      return;
    }
    case kConcatenationOp: {
      if (inputs.len == 0 || !all_present()) return;
      const TensorInfo* first = in(0);
      for (size_t i = 0; i < inputs.len; ++i) {
        if (in(i)->dynamic) return;
      }
      int64_t rank = static_cast<int64_t>(first->shape.size());
      int32_t axis = options_type == kConcatenationOptions ? GetI32(options, 0, 0, "axis") : 0;
      int64_t a = axis < 0 ? int64_t{axis} + rank : int64_t{axis};
      if (rank == 0) return;
      if (a < 0 || a >= rank) {
        fail("concatenates along axis " + std::to_string(axis) + " inputs of rank " +
             std::to_string(rank));
      }
      std::vector<int64_t> want = widen(first->shape);
      for (size_t i = 1; i < inputs.len; ++i) {
        const TensorInfo* x = in(i);
        bool ok = x->shape.size() == first->shape.size();
        for (int64_t d = 0; ok && d < rank; ++d) ok = d == a || x->shape[d] == first->shape[d];
        if (!ok) {
          fail("concatenates along axis " + std::to_string(axis) + " input 0 " +
               shape_str(first->shape) + " and input " + std::to_string(i) + " " +
               shape_str(x->shape) + ", which differ in another dimension");
        }
        want[a] += x->shape[a];
      }
      expect_out(want, std::to_string(inputs.len) + " inputs along axis " + std::to_string(axis));
      return;
    }
    case kTransposeConvOp: {
      if (options_type != kTransposeConvOptions || !options) fail("has no TransposeConvOptions");
      int padding = GetI8(options, 0, 0, "padding");
      int32_t stride_w = GetI32(options, 1, 0, "stride_w");
      int32_t stride_h = GetI32(options, 2, 0, "stride_h");
      if (stride_w < 1 || stride_h < 1 || padding < 0 || padding > 1) {
        fail("has stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) +
             " and padding " + std::to_string(padding));
      }
      const TensorInfo* w = in(1);
      const TensorInfo* x = in(2);
      const TensorInfo* bias = in(3);
      if (!w || !x || !out) return;
      if (w->shape.size() != 4 || x->shape.size() != 4) {
        fail("needs rank-4 filter and input, got " + shape_str(w->shape) + " and " +
             shape_str(x->shape));
      }
      int64_t out_channels = w->shape[0];
      // XNNPACK packs the bias as out_channels values read from its buffer,
      // without comparing the two counts: a short bias is read past its end.
      if (bias && !bias->dynamic && bias->Elements() != static_cast<uint64_t>(out_channels)) {
        fail("has bias " + shape_str(bias->shape) + " for " + std::to_string(out_channels) +
             " output channels");
      }
      if (x->dynamic) return;
      if (x->shape[3] != w->shape[3]) {
        fail("has input " + shape_str(x->shape) + " and filter " + shape_str(w->shape) +
             ", whose channels disagree");
      }
      std::vector<int64_t> v;
      if (!const_ints(in(0), &v)) return;  // output shape computed at run time
      if (v.size() != 4) fail("has output_shape " + shape_str(v) + ", expected 4 values");
      // output_shape must be an output the input could have come from: the
      // builtin kernel refuses others, XNNPACK silently produces a different
      // shape (VALID) or ignores the batch.
      int64_t ih = v[1] > 0 ? WindowOutSize(padding, v[1], w->shape[1], stride_h, 1) : -1;
      int64_t iw = v[2] > 0 ? WindowOutSize(padding, v[2], w->shape[2], stride_w, 1) : -1;
      if (v[0] != x->shape[0] || v[3] != out_channels || ih != x->shape[1] ||
          iw != x->shape[2]) {
        fail("has output_shape " + shape_str(v) + ", which input " + shape_str(x->shape) +
             " and filter " + shape_str(w->shape) + " cannot produce");
      }
      expect_out(v, "output_shape " + shape_str(v));
      return;
    }
    case kResizeBilinearOp:
    case kResizeNearestNeighborOp: {
      const TensorInfo* x = in(0);
      if (!x || !in(1) || x->dynamic) return;
      if (x->shape.size() != 4) fail("needs a rank-4 input, got " + shape_str(x->shape));
      std::vector<int64_t> size;
      if (!const_ints(in(1), &size)) return;
      // A damaged size constant makes the runtime allocate the output it
      // describes: the builtin kernel crashed on 30000x30000.
      if (size.size() != 2 || size[0] < 1 || size[1] < 1) {
        fail("has size " + shape_str(size) + ", expected 2 positive values");
      }
      expect_out({x->shape[0], size[0], size[1], x->shape[3]},
                 "input " + shape_str(x->shape) + " with size " + shape_str(size));
      return;
    }
    case kMeanOp:
    case kSumOp:
    case kReduceProdOp:
    case kReduceMaxOp:
    case kReduceMinOp: {
      const TensorInfo* x = in(0);
      std::vector<int64_t> axes;
      if (!x || x->dynamic || !const_ints(in(1), &axes)) return;
      int64_t rank = static_cast<int64_t>(x->shape.size());
      std::vector<bool> reduced(rank, false);
      for (int64_t a : axes) {
        if (a < -rank || a >= rank) {
          fail("reduces axis " + std::to_string(a) + " of input " + shape_str(x->shape));
        }
        reduced[a < 0 ? a + rank : a] = true;  // repeated axes count once
      }
      bool keep_dims = options_type == kReducerOptions && GetU8(options, 0, 0, "keep_dims") != 0;
      std::vector<int64_t> want;
      for (int64_t d = 0; d < rank; ++d) {
        if (!reduced[d]) {
          want.push_back(x->shape[d]);
        } else if (keep_dims) {
          want.push_back(1);
        }
      }
      expect_out(want, "input " + shape_str(x->shape) + " reduced over axes " + shape_str(axes));
      return;
    }
    default:
      return;
  }
}

void Walker::CheckCallGraph() {
  // Control-flow ops prepare the subgraphs they call while being prepared
  // themselves; a cycle recurses until the stack overflows.
  enum { kNew, kActive, kDone };
  std::vector<int> state(num_subgraphs_, kNew);
  for (size_t root = 0; root < num_subgraphs_; ++root) {
    if (state[root] != kNew) continue;
    std::vector<std::pair<size_t, size_t>> stack{{root, 0}};
    state[root] = kActive;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      if (next < calls_[node].size()) {
        size_t callee = calls_[node][next++];
        if (state[callee] == kActive) {
          Corrupt("subgraph " + std::to_string(node) + " calls subgraph " +
                  std::to_string(callee) + ", which is already on the call path (recursion)");
        }
        if (state[callee] == kNew) {
          state[callee] = kActive;
          stack.push_back({callee, 0});
        }
      } else {
        state[node] = kDone;
        stack.pop_back();
      }
    }
  }
}

void Walker::SignatureDefs(const Table& model) {
  Vec sigs = Vector(model, 7, 4, "signature_defs");
  for (size_t i = 0; i < sigs.len; ++i) {
    Table sig = Element(sigs, i, "signature def");
    Scope s(this, "signature def", i);
    bool has_key = false;
    std::string key = String(sig, 2, "signature_key", &has_key);
    if (!has_key) Corrupt(Where() + " has no signature_key");
    uint32_t sg = GetU32(sig, 4, 0, "subgraph_index");
    if (sg >= num_subgraphs_) {
      Corrupt(Where() + " refers to subgraph " + std::to_string(sg) + " but the model has " +
              std::to_string(num_subgraphs_) + " subgraphs");
    }
    size_t n = subgraph_tensors_[sg];
    for (int slot = 0; slot < 2; ++slot) {
      const char* field = slot == 0 ? "inputs" : "outputs";
      Vec maps = Vector(sig, slot, 4, field);
      for (size_t j = 0; j < maps.len; ++j) {
        Table m = Element(maps, j, slot == 0 ? "input" : "output");
        Scope sm(this, slot == 0 ? "input" : "output", j);
        bool has_name = false;
        String(m, 0, "name", &has_name);
        if (!has_name) Corrupt(Where() + " has no name");
        uint32_t t = GetU32(m, 1, 0, "tensor_index");
        if (t >= n) {
          Corrupt(Where() + " maps to tensor " + std::to_string(t) + " but subgraph " +
                  std::to_string(sg) + " has " + std::to_string(n) + " tensors");
        }
      }
    }
    summary_.signature_keys.push_back(
        Escape(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
    summary_.signature_subgraphs[key] = sg;
  }
}

void Walker::Metadata(const Table& model) {
  Vec legacy = Vector(model, 5, 4, "metadata_buffer");
  for (size_t i = 0; i < legacy.len; ++i) {
    int32_t b = IntAt(legacy, i);
    if (b < 0 || static_cast<size_t>(b) >= buffers_.size()) {
      Corrupt("metadata_buffer[" + std::to_string(i) + "] = " + std::to_string(b) +
              " but the model has " + std::to_string(buffers_.size()) + " buffers");
    }
  }
  Vec meta = Vector(model, 6, 4, "metadata");
  for (size_t i = 0; i < meta.len; ++i) {
    Table m = Element(meta, i, "metadata");
    Scope s(this, "metadata", i);
    bool has_name = false;
    String(m, 0, "name", &has_name);
    if (!has_name) Corrupt(Where() + " has no name");
    uint32_t b = GetU32(m, 1, 0, "buffer");
    if (b >= buffers_.size()) {
      Corrupt(Where() + " uses buffer " + std::to_string(b) + " but the model has " +
              std::to_string(buffers_.size()) + " buffers");
    }
  }
}

}  // namespace

ModelSummary VerifyTflite(const uint8_t* data, size_t size, const VerifyLimits& limits) {
  if (data == nullptr && size != 0) {
    throw Error(ErrorKind::kModel, "model buffer is null");
  }
  Walker walker(data, size, limits);
  return walker.Run();
}

}  // namespace edgepipe
