#include "model/model.h"

#include "runtime/element_types.h"

#include <sstream>

namespace edgepipe {

std::string ShapeText(const std::vector<int32_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

bool TensorInfo::is_dynamic() const {
  for (int32_t d : shape) {
    if (d < 0) return true;
  }
  return false;
}

size_t TensorInfo::element_size() const { return ElementSize(element_type); }

size_t TensorInfo::num_elements() const {
  size_t n = 1;
  for (int32_t d : shape) {
    if (d < 0) return 0;
    n *= static_cast<size_t>(d);
  }
  return n;
}

namespace {

TensorInfo DescribeTensor(const LiteRtApi& api, litert::Tensor tensor, const char* name,
                          const std::string& where) {
  TensorInfo info;
  info.name = name ? name : "";
  litert::TensorTypeId type_id{};
  Check(api.LiteRtGetTensorTypeId(tensor, &type_id), ErrorKind::kModel,
        "cannot read the type of " + where);
  if (type_id == litert::kRankedTensorType) {
    litert::RankedTensorType ranked{};
    Check(api.LiteRtGetRankedTensorType(tensor, &ranked), ErrorKind::kModel,
          "cannot read the shape of " + where);
    info.element_type = ranked.element_type;
    for (unsigned i = 0; i < ranked.layout.rank; ++i) {
      info.shape.push_back(ranked.layout.dimensions[i]);
    }
  } else {
    throw Error(ErrorKind::kModel,
                where + " has no rank; edgepipe needs ranked model inputs and outputs");
  }
  litert::QuantizationTypeId qtype{};
  if (api.LiteRtGetQuantizationTypeId(tensor, &qtype) == litert::kOk) {
    info.quantization.type = qtype;
    if (qtype == litert::kQuantizationPerTensor) {
      litert::QuantizationPerTensor q{};
      if (api.LiteRtGetPerTensorQuantization(tensor, &q) == litert::kOk) {
        info.quantization.scale = q.scale;
        info.quantization.zero_point = q.zero_point;
      }
    } else if (qtype == litert::kQuantizationPerChannel) {
      litert::QuantizationPerChannel q{};
      if (api.LiteRtGetPerChannelQuantization(tensor, &q) == litert::kOk) {
        info.quantization.quantized_dimension = q.quantized_dimension;
        for (uint64_t c = 0; c < q.num_channels; ++c) {
          if (q.scales) info.quantization.scales.push_back(q.scales[c]);
          if (q.zero_points) info.quantization.zero_points.push_back(q.zero_points[c]);
        }
      }
    }
  }
  return info;
}

}  // namespace

std::shared_ptr<Model> Model::Load(std::shared_ptr<Runtime> runtime,
                                   std::shared_ptr<ByteSource> bytes, bool verify) {
  std::shared_ptr<Model> model(new Model());
  model->runtime_ = std::move(runtime);
  model->bytes_ = std::move(bytes);
  if (verify) {
    try {
      model->summary_ = VerifyTflite(model->bytes_->data(), model->bytes_->size());
    } catch (const Error& e) {
      throw Error(ErrorKind::kModel, model->bytes_->description() + ": " + e.what());
    }
    model->verified_ = true;
  }
  const LiteRtApi& api = model->runtime_->api();
  Check(api.LiteRtCreateModelFromBuffer(model->runtime_->cpu_environment(), model->bytes_->data(),
                                        model->bytes_->size(), &model->handle_),
        ErrorKind::kModel, "the runtime rejected model " + model->bytes_->description());
  model->ReadSignatures();
  return model;
}

Model::~Model() {
  if (handle_ != nullptr) runtime_->api().LiteRtDestroyModel(handle_);
}

void Model::ReadSignatures() {
  const LiteRtApi& api = runtime_->api();
  litert::ParamIndex count = 0;
  Check(api.LiteRtGetNumModelSignatures(handle_, &count), ErrorKind::kModel,
        "cannot list the signatures of " + description());
  if (count == 0) {
    throw Error(ErrorKind::kModel, description() + " has no signature to run");
  }
  for (litert::ParamIndex s = 0; s < count; ++s) {
    litert::Signature sig = nullptr;
    Check(api.LiteRtGetModelSignature(handle_, s, &sig), ErrorKind::kModel,
          "cannot read signature " + std::to_string(s));
    SignatureInfo info;
    const char* key = nullptr;
    Check(api.LiteRtGetSignatureKey(sig, &key), ErrorKind::kModel, "cannot read a signature key");
    info.key = key ? key : "";
    litert::ParamIndex n_in = 0, n_out = 0;
    Check(api.LiteRtGetNumSignatureInputs(sig, &n_in), ErrorKind::kModel,
          "cannot count inputs of signature " + info.key);
    Check(api.LiteRtGetNumSignatureOutputs(sig, &n_out), ErrorKind::kModel,
          "cannot count outputs of signature " + info.key);
    // Models without SignatureDefs get one placeholder signature over the
    // main subgraph, 0.
    auto sg = summary_.signature_subgraphs.find(info.key);
    const size_t subgraph = sg == summary_.signature_subgraphs.end() ? 0 : sg->second;
    for (litert::ParamIndex i = 0; i < n_in; ++i) {
      const char* name = nullptr;
      litert::Tensor t = nullptr;
      Check(api.LiteRtGetSignatureInputName(sig, i, &name), ErrorKind::kModel,
            "cannot read input name");
      Check(api.LiteRtGetSignatureInputTensorByIndex(sig, i, &t), ErrorKind::kModel,
            "cannot read input tensor");
      TensorInfo tensor =
          DescribeTensor(api, t, name, "input " + std::to_string(i) + " of " + info.key);
      // LiteRT reports the placeholder shape; the verifier kept the
      // shape_signature, whose -1 dimensions the caller may resize.
      uint32_t index = 0;
      if (api.LiteRtGetTensorIndex != nullptr &&
          api.LiteRtGetTensorIndex(t, &index) == litert::kOk) {
        auto dyn = summary_.dynamic_shapes.find({subgraph, index});
        if (dyn != summary_.dynamic_shapes.end() && dyn->second.size() == tensor.shape.size()) {
          tensor.shape = dyn->second;
        }
      }
      info.inputs.push_back(std::move(tensor));
    }
    for (litert::ParamIndex i = 0; i < n_out; ++i) {
      const char* name = nullptr;
      litert::Tensor t = nullptr;
      Check(api.LiteRtGetSignatureOutputName(sig, i, &name), ErrorKind::kModel,
            "cannot read output name");
      Check(api.LiteRtGetSignatureOutputTensorByIndex(sig, i, &t), ErrorKind::kModel,
            "cannot read output tensor");
      info.outputs.push_back(
          DescribeTensor(api, t, name, "output " + std::to_string(i) + " of " + info.key));
    }
    signatures_.push_back(std::move(info));
  }
}

size_t Model::SignatureIndex(const std::string& key) const {
  for (size_t i = 0; i < signatures_.size(); ++i) {
    if (signatures_[i].key == key) return i;
  }
  std::ostringstream msg;
  msg << "model has no signature '" << key << "'; it has:";
  for (const auto& s : signatures_) msg << " '" << s.key << "'";
  throw Error(ErrorKind::kInput, msg.str());
}

}  // namespace edgepipe
