// Verification of a .tflite flatbuffer before the runtime sees it.
//
// LiteRT's C API trusts its input: on corrupted copies of real models,
// LiteRtCreateCompiledModel crashed the process on 39 of 60 cases. So every
// byte range, table, vector, string and index is checked here first, and the
// model is summarised on the way (the walk visits every operator anyway).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace edgepipe {

struct VerifyLimits {
  size_t max_depth = 64;           // nesting of tables
  size_t max_tables = 10'000'000;  // tables visited in total
  size_t max_subgraphs = 10'000;
  size_t max_tensor_rank = 8;  // LiteRT's LITERT_TENSOR_MAX_RANK
  // Bytes one tensor without constant data may declare. The runtime
  // allocates what the shape says (a fuzzed [1, 2^31-1] float input made
  // compile zero 8 GB for minutes, [1, 2^30] took 15 s). Constant tensors are
  // bounded by their buffer, which must be in the file.
  uint64_t max_tensor_bytes = uint64_t{1} << 30;
};

struct ModelSummary {
  uint32_t schema_version = 0;
  std::string description;
  size_t num_subgraphs = 0;
  size_t num_tensors = 0;  // over all subgraphs
  size_t num_buffers = 0;
  size_t num_operators = 0;  // over all subgraphs
  // Builtin operator name ("CONV_2D", ...) or "CUSTOM:<custom_code>" -> count.
  std::map<std::string, size_t> op_counts;
  std::vector<std::string> custom_ops;  // distinct custom codes, sorted
  std::vector<std::string> signature_keys;
  // Subgraph of each signature key (models without SignatureDefs: none).
  std::map<std::string, size_t> signature_subgraphs;
  // shape_signature of every tensor with a dimension known only at run time
  // (-1), by (subgraph, tensor index). LiteRT reports only the placeholder
  // shape, so this is how edgepipe knows an input may be resized.
  std::map<std::pair<size_t, size_t>, std::vector<int32_t>> dynamic_shapes;
  bool has_sparse_tensors = false;
  size_t constant_bytes = 0;  // bytes of constant buffer data (weights)
  // Fields the runtime ignores that were found damaged and ignored here too
  // (e.g. a stale metadata_buffer index), one sentence each.
  std::vector<std::string> warnings;
};

// Throws edgepipe::Error(ErrorKind::kModel, "<what is wrong> at <where>")
// on the first problem; never reads outside [data, data + size).
ModelSummary VerifyTflite(const uint8_t* data, size_t size,
                          const VerifyLimits& limits = VerifyLimits());

}  // namespace edgepipe
