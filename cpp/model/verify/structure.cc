#include "model/verify/structure.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "model/op_names.h"
#include "model/verify/flatbuffer_reader.h"
#include "model/verify/op_rules.h"
#include "model/verify/schema.h"
#include "model/verify/shapes.h"

namespace edgepipe {
namespace verify {
namespace {

class Walker : public FlatbufferReader {
 public:
  Walker(const uint8_t* data, size_t size, const VerifyLimits& limits)
      : FlatbufferReader(data, size, limits.max_depth, limits.max_tables), limits_(limits) {}

  ModelSummary Run();

 private:
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
                const OptionsLayout& (*layout_of)(int), const char* field, size_t subgraph);
  void SubgraphIndex(int64_t index, const char* field, size_t subgraph);
  void TensorIndices(const Vec& v, const char* field, size_t num_tensors, bool allow_optional,
                     const char* verb);
  void SignatureDefs(const Table& model);
  void Metadata(const Table& model);
  void ExternalBuffers(const Table& model);
  void CheckCallGraph();

  const VerifyLimits& limits_;

  ModelSummary summary_;
  std::vector<int> op_codes_;          // resolved builtin code per operator_codes entry
  std::vector<std::string> op_names_;  // summary name per operator_codes entry
  std::vector<BufferInfo> buffers_;
  std::vector<bool> buffer_counted_;
  std::vector<size_t> subgraph_tensors_;
  std::vector<std::set<int32_t>> subgraph_inputs_;  // tensor indices, per subgraph
  std::vector<std::set<int32_t>> subgraph_outputs_;
  std::vector<std::vector<size_t>> calls_;  // subgraph -> subgraphs it invokes
  std::set<uint32_t> external_buffer_ids_;
  size_t num_subgraphs_ = 0;
};

ModelSummary Walker::Run() {
  if (size() < 8) {
    throw Error(ErrorKind::kModel, "not a TFLite model: the file has " + std::to_string(size()) +
                                       " bytes, too few for a flatbuffer header");
  }
  if (std::memcmp(data() + 4, "TFL3", 4) != 0) {
    throw Error(ErrorKind::kModel, "not a TFLite model: file identifier is \"" +
                                       Escape(data() + 4, 4) + "\", expected \"TFL3\"");
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
  subgraph_inputs_.assign(num_subgraphs_, {});
  subgraph_outputs_.assign(num_subgraphs_, {});
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
                       (deprecated == op::PLACEHOLDER_FOR_GREATER_OP_CODES &&
                        builtin > op::PLACEHOLDER_FOR_GREATER_OP_CODES));
    if (!consistent) {
      Corrupt(Where() + " has deprecated_builtin_code " + std::to_string(deprecated) +
              " and builtin_code " + std::to_string(builtin) + ", which disagree");
    }
    int code = std::max<int32_t>(deprecated, builtin);
    if (code > MaxBuiltinOpCode() || code == op::PLACEHOLDER_FOR_GREATER_OP_CODES ||
        BuiltinOpName(code) == nullptr) {
      Corrupt(Where() + " has unknown builtin code " + std::to_string(code));
    }
    std::string name;
    if (code == op::CUSTOM) {
      if (!has_custom || custom.empty()) Corrupt(Where() + " is CUSTOM but has no custom_code");
      std::string escaped = Escape(reinterpret_cast<const uint8_t*>(custom.data()), custom.size());
      name = "CUSTOM:" + escaped;
      summary_.custom_ops.push_back(escaped);
    } else {
      name = BuiltinOpName(code);
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
    uint64_t length = GetU64(b, 2, 0, "size");
    BufferInfo& info = buffers_[i];
    if (offset > 1) {
      // Data of >2 GB models lives after the flatbuffer, addressed from the
      // start of the file.
      if (length > size() || offset > size() - length) {
        Corrupt(Where() + " points at bytes " + std::to_string(offset) + ".." +
                std::to_string(offset + length) + " but the file has " + std::to_string(size()));
      }
      info.has_data = length > 0;
      info.bytes = length;
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

void Walker::TensorIndices(const Vec& v, const char* field, size_t num_tensors, bool allow_optional,
                           const char* verb) {
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
  for (size_t i = 0; i < inputs.len; ++i) subgraph_inputs_[index].insert(IntAt(inputs, i));
  for (size_t i = 0; i < outputs.len; ++i) subgraph_outputs_[index].insert(IntAt(outputs, i));
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
  bool has_data = buffer < buffers_.size() && buffers_[buffer].has_data;
  if (!has_data && kTypeBits[type] != 0 &&
      elements / 8 > limits_.max_tensor_bytes / kTypeBits[type]) {
    Corrupt(Where() + " declares " + std::to_string(elements) + " elements of " +
            std::to_string(kTypeBits[type]) + " bits, more than the " +
            std::to_string(limits_.max_tensor_bytes) + "-byte limit for one tensor");
  }
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
        Corrupt(Where() + " has shape_signature[" + std::to_string(i) + "] = " + std::to_string(d) +
                " but shape[" + std::to_string(i) + "] = " + std::to_string(shape[i]));
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
      if (IntAt(vshape, k) < -1)
        Corrupt(Where() + " has dimension " + std::to_string(IntAt(vshape, k)));
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
        Corrupt(Where() + " has " +
                (sp ? std::to_string(values) + " stored values"
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
  // LiteRT reads zero_point[i] for every scale[i] without looking at the
  // vector's length (a scale without zero points crashed
  // LiteRtCreateModelFromBuffer), and divides by the scale.
  if (zero_point.len != scale.len) {
    Corrupt(Where() + " has " + std::to_string(scale.len) + " scales but " +
            std::to_string(zero_point.len) + " zero points");
  }
  for (size_t i = 0; i < scale.len; ++i) {
    uint32_t bits = U32(scale.pos + 4 * i);
    float s;
    std::memcpy(&s, &bits, sizeof(s));
    if (!std::isfinite(s) || !(s > 0.0f)) {
      Corrupt(Where() + " has scale[" + std::to_string(i) + "] = " + std::to_string(s) +
              ", expected a finite positive number");
    }
  }
  if (qdim < 0 || (!shape.empty() && static_cast<size_t>(qdim) >= shape.size()) ||
      (scale.len > 1 && static_cast<size_t>(qdim) >= shape.size())) {
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
      Corrupt(Where() + " has invalid traversal_order[" + std::to_string(i) +
              "] = " + std::to_string(d));
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
                      const OptionsLayout& (*layout_of)(int), const char* field, size_t subgraph) {
  int type = GetU8(op, type_slot, 0, field);
  if (type > max_type) {
    Corrupt(Where() + " has unknown " + field + " type " + std::to_string(type));
  }
  Table t = SubTable(op, value_slot, field);
  if (type == 0) return Table();
  const OptionsLayout& layout = layout_of(type);
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
  const char* op_name = BuiltinOpName(code);

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
    if (t == -1 && code != op::CUSTOM && code != op::DELEGATE) {
      Corrupt(Where() + " (" + op_name + ") has no tensor for output " + std::to_string(i));
    }
    if (t >= 0 && tensors[t].constant && !tensors[t].variable) {
      Corrupt(Where() + " writes constant tensor " + std::to_string(t));
    }
  }
  if ((code == op::DEQUANTIZE || code == op::DENSIFY) && inputs.len >= 1 && outputs.len >= 1) {
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
      Options(op, 3, 4, MaxBuiltinOptionsType(), BuiltinOptionsLayout, "builtin_options", subgraph);
  Options(op, 11, 12, MaxBuiltinOptions2Type(), BuiltinOptions2Layout, "builtin_options_2",
          subgraph);

  Vector(op, 5, 1, "custom_options");
  GetI8(op, 6, 0, "custom_options_format");
  uint64_t large_offset = GetU64(op, 9, 0, "large_custom_options_offset");
  uint64_t large_size = GetU64(op, 10, 0, "large_custom_options_size");
  if (large_offset > 1 && (large_size > size() || large_offset > size() - large_size)) {
    Corrupt(Where() + " has custom options at bytes " + std::to_string(large_offset) + ".." +
            std::to_string(large_offset + large_size) + " but the file has " +
            std::to_string(size()));
  }
  GetI32(op, 13, -1, "debug_metadata_index");
  OpView view;
  view.r = this;
  view.code = code;
  view.name = op_name;
  view.inputs = inputs;
  view.outputs = outputs;
  view.tensors = &tensors;
  view.options_type = options_type;
  view.options = options;
  CheckOpRules(view);
  CheckStaticShapes(view);
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
          Corrupt("subgraph " + std::to_string(node) + " calls subgraph " + std::to_string(callee) +
                  ", which is already on the call path (recursion)");
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
      std::set<uint32_t> seen;
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
        // LiteRT names the subgraph's inputs and outputs from the signature;
        // a signature tensor that is not one of them leaves a name unset (a
        // null string reached the binding).
        const auto& io = slot == 0 ? subgraph_inputs_[sg] : subgraph_outputs_[sg];
        if (io.count(static_cast<int32_t>(t)) == 0) {
          Corrupt(Where() + " maps to tensor " + std::to_string(t) + ", which is not an " +
                  (slot == 0 ? "input" : "output") + " of subgraph " + std::to_string(sg));
        }
        if (!seen.insert(t).second) {
          Corrupt(Where() + " maps to tensor " + std::to_string(t) +
                  ", which an earlier entry of the signature names already");
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
    // Deprecated field nothing in LiteRT reads, and ai-edge-quantizer 0.10.0
    // leaves the indices of the input model in it (e.g. 346 with 207
    // buffers): a stale entry is ignored and reported, not refused.
    if (b < 0 || static_cast<size_t>(b) >= buffers_.size()) {
      summary_.warnings.push_back("ignored metadata_buffer[" + std::to_string(i) +
                                  "] = " + std::to_string(b) + ": the model has " +
                                  std::to_string(buffers_.size()) + " buffers");
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

ModelSummary WalkModel(const uint8_t* data, size_t size, const VerifyLimits& limits) {
  Walker walker(data, size, limits);
  return walker.Run();
}

}  // namespace verify
}  // namespace edgepipe
