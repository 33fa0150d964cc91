// A verified model: its bytes (edgepipe's sealed copy, see byte_source.h:
// verified once, and then nothing can change them), the runtime's model
// handle built on them in place, and what a user needs to know to feed it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/byte_source.h"
#include "model/verifier.h"
#include "runtime/runtime.h"

namespace edgepipe {

struct Quantization {
  int type = litert::kQuantizationNone;
  float scale = 0.0f;  // per-tensor
  int64_t zero_point = 0;
  int32_t quantized_dimension = 0;  // per-channel
  std::vector<float> scales;
  std::vector<int64_t> zero_points;
};

struct TensorInfo {
  std::string name;
  int element_type = litert::kElementNone;
  std::vector<int32_t> shape;  // -1 for a dimension only known at run time
  Quantization quantization;

  bool is_dynamic() const;
  size_t element_size() const;  // 0 when edgepipe cannot feed this type
  size_t num_elements() const;  // of the static shape; 0 if dynamic
  size_t byte_size() const { return num_elements() * element_size(); }
};

struct SignatureInfo {
  std::string key;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
};

// Bytes of one element, 0 for types without a plain host representation.
size_t ElementSize(int element_type);
const char* ElementTypeName(int element_type);
// "[1, 96, 96, 3]", for messages.
std::string ShapeText(const std::vector<int32_t>& shape);

class Model {
 public:
  // Verifies the bytes (unless verify is false: for bytes verified earlier
  // in this process), then builds the runtime's model on them in place.
  static std::shared_ptr<Model> Load(std::shared_ptr<Runtime> runtime,
                                     std::shared_ptr<ByteSource> bytes, bool verify = true);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::shared_ptr<Runtime>& runtime() const { return runtime_; }
  const std::shared_ptr<ByteSource>& bytes() const { return bytes_; }
  litert::Model handle() const { return handle_; }
  const std::vector<SignatureInfo>& signatures() const { return signatures_; }
  const ModelSummary& summary() const { return summary_; }
  bool verified() const { return verified_; }
  std::string description() const { return bytes_->description(); }

  // Index of a signature by key; throws InputError when absent.
  size_t SignatureIndex(const std::string& key) const;

 private:
  Model() = default;
  void ReadSignatures();

  std::shared_ptr<Runtime> runtime_;
  std::shared_ptr<ByteSource> bytes_;
  litert::Model handle_ = nullptr;
  std::vector<SignatureInfo> signatures_;
  ModelSummary summary_;
  bool verified_ = false;
};

}  // namespace edgepipe
