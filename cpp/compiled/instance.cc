#include "compiled/instance.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

namespace edgepipe {
namespace {

constexpr size_t kAlignment = 64;  // LiteRT's host buffer requirement

// TOML basic strings escape backslash and quote; paths may contain either.
std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string ShapeText(const std::vector<int32_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

litert::RankedTensorType RankedType(const TensorInfo& info) {
  litert::RankedTensorType t{};
  t.element_type = static_cast<litert::ElementType>(info.element_type);
  t.layout.rank = static_cast<unsigned>(info.shape.size());
  t.layout.has_strides = 0;
  for (size_t i = 0; i < info.shape.size(); ++i) {
    t.layout.dimensions[i] = info.shape[i];
  }
  return t;
}

}  // namespace

Instance::Instance(std::shared_ptr<Model> model, const CompileOptions& options)
    : model_(std::move(model)), options_(options) {
  api_ = &model_->runtime()->api();
  const auto& signatures = model_->signatures();
  if (options_.signature >= signatures.size()) {
    throw Error(ErrorKind::kInput, "signature index " +
                                       std::to_string(options_.signature) +
                                       " out of range");
  }
  inputs_ = signatures[options_.signature].inputs;
  outputs_ = signatures[options_.signature].outputs;
  for (const auto* list : {&inputs_, &outputs_}) {
    for (const auto& t : *list) {
      if (t.element_size() == 0) {
        throw Error(ErrorKind::kModel,
                    "tensor '" + t.name + "' has element type " +
                        ElementTypeName(t.element_type) +
                        ", which edgepipe cannot exchange with numpy");
      }
    }
  }

  Check(api_->LiteRtCreateOptions(&compile_options_), ErrorKind::kCompile,
        "LiteRtCreateOptions failed");
  try {
    Check(api_->LiteRtSetOptionsHardwareAccelerators(compile_options_,
                                                     options_.accelerators),
          ErrorKind::kCompile, "cannot select accelerators");
    std::string toml;
    if (options_.num_threads > 0) {
      toml += "num_threads = " + std::to_string(options_.num_threads) + "\n";
    }
    if (!options_.weight_cache_path.empty()) {
      toml += "weight_cache_file_path = " +
              TomlString(options_.weight_cache_path) + "\n";
    }
    if (!toml.empty()) {
      char* payload = static_cast<char*>(std::malloc(toml.size() + 1));
      if (payload == nullptr) throw Error(ErrorKind::kCompile, "out of memory");
      std::memcpy(payload, toml.c_str(), toml.size() + 1);
      litert::OpaqueOptions opaque = nullptr;
      litert::Status st = api_->LiteRtCreateOpaqueOptions("xnnpack", payload,
                                                          std::free, &opaque);
      if (st != litert::kOk) {
        std::free(payload);
        ThrowStatus(ErrorKind::kCompile, st, "cannot create CPU options");
      }
      st = api_->LiteRtAddOpaqueOptions(compile_options_, opaque);
      if (st != litert::kOk) {
        api_->LiteRtDestroyOpaqueOptions(opaque);
        ThrowStatus(ErrorKind::kCompile, st, "cannot attach CPU options");
      }
    }
    litert::Environment env =
        (options_.accelerators & ~litert::kHwCpu) != 0
            ? model_->runtime()->accelerator_environment()
            : model_->runtime()->cpu_environment();
    Check(api_->LiteRtCreateCompiledModel(env, model_->handle(),
                                          compile_options_, &compiled_),
          ErrorKind::kCompile,
          "the runtime could not compile " + model_->description());

    // Dynamic dimensions get size 1 until the caller resizes them, so that
    // every instance starts runnable.
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (inputs_[i].is_dynamic()) {
        std::vector<int32_t> shape = inputs_[i].shape;
        for (auto& d : shape) d = d < 0 ? 1 : d;
        Resize(i, shape);
      }
    }
    inputs_mem_.resize(inputs_.size());
    outputs_mem_.resize(outputs_.size());
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (inputs_mem_[i].buffer == nullptr) Bind(inputs_mem_[i], inputs_[i], "input");
    }
    RefreshOutputs();
    // LiteRT compiles a graph with an unresolved custom op and only fails
    // when it runs. A run on the zero-filled buffers turns that into a
    // compile error naming the op, instead of a failure on the first request.
    const auto& custom_ops = model_->summary().custom_ops;
    if (!custom_ops.empty()) {
      if (api_->LiteRtRunCompiledModel(compiled_, options_.signature, input_handles_.size(),
                                       input_handles_.data(), output_handles_.size(),
                                       output_handles_.data()) != litert::kOk) {
        std::string names;
        for (const auto& op : custom_ops) names += (names.empty() ? "" : ", ") + op;
        throw Error(ErrorKind::kCompile,
                    model_->description() + " needs custom op(s) " + names +
                        " that this runtime cannot run; build the runtime with them or "
                        "export the model without them");
      }
    }
  } catch (...) {
    // Undo the partial construction before the error leaves; the destructor
    // does not run for a constructor that throws.
    for (auto& b : inputs_mem_) Release(b);
    for (auto& b : outputs_mem_) Release(b);
    if (compiled_) api_->LiteRtDestroyCompiledModel(compiled_);
    api_->LiteRtDestroyOptions(compile_options_);
    throw;
  }
}

Instance::~Instance() {
  for (auto& b : inputs_mem_) Release(b);
  for (auto& b : outputs_mem_) Release(b);
  if (compiled_) api_->LiteRtDestroyCompiledModel(compiled_);
  if (compile_options_) api_->LiteRtDestroyOptions(compile_options_);
}

void Instance::Bind(HostBuffer& slot, const TensorInfo& info,
                    const std::string& what) {
  const size_t bytes = info.byte_size();
  const size_t capacity = std::max<size_t>((bytes + kAlignment - 1) / kAlignment * kAlignment,
                                           kAlignment);
  if (slot.buffer != nullptr) {
    api_->LiteRtDestroyTensorBuffer(slot.buffer);
    slot.buffer = nullptr;
  }
  if (capacity > slot.capacity) {
    std::free(slot.mem);
    // posix_memalign: bionic has aligned_alloc only from API 28.
    void* mem = nullptr;
    slot.mem = posix_memalign(&mem, kAlignment, capacity) == 0 ? mem : nullptr;
    if (slot.mem == nullptr) {
      slot.capacity = 0;
      throw Error(ErrorKind::kRun, "out of memory for " + what + " '" + info.name + "'");
    }
    std::memset(slot.mem, 0, capacity);
    slot.capacity = capacity;
  }
  slot.bytes = bytes;
  litert::RankedTensorType type = RankedType(info);
  Check(api_->LiteRtCreateTensorBufferFromHostMemory(&type, slot.mem, capacity,
                                                     nullptr, &slot.buffer),
        ErrorKind::kRun,
        "cannot create the " + what + " buffer for '" + info.name + "' " +
            ShapeText(info.shape));
}

void Instance::Release(HostBuffer& slot) {
  if (slot.buffer != nullptr) api_->LiteRtDestroyTensorBuffer(slot.buffer);
  std::free(slot.mem);
  slot = HostBuffer{};
}

void Instance::RefreshOutputs() {
  if (api_->LiteRtGetCompiledModelOutputTensorLayouts != nullptr && !outputs_.empty()) {
    std::vector<litert::Layout> layouts(outputs_.size());
    if (api_->LiteRtGetCompiledModelOutputTensorLayouts(
            compiled_, options_.signature, layouts.size(), layouts.data(),
            /*update_allocation=*/true) == litert::kOk) {
      for (size_t i = 0; i < outputs_.size(); ++i) {
        outputs_[i].shape.assign(layouts[i].dimensions,
                                 layouts[i].dimensions + layouts[i].rank);
      }
    }
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    if (outputs_[i].is_dynamic()) {
      throw Error(ErrorKind::kRun, "output '" + outputs_[i].name +
                                       "' has an unresolved shape " +
                                       ShapeText(outputs_[i].shape));
    }
    if (outputs_mem_[i].buffer == nullptr ||
        outputs_mem_[i].bytes != outputs_[i].byte_size()) {
      Bind(outputs_mem_[i], outputs_[i], "output");
    }
  }
  input_handles_.clear();
  output_handles_.clear();
  for (auto& b : inputs_mem_) input_handles_.push_back(b.buffer);
  for (auto& b : outputs_mem_) output_handles_.push_back(b.buffer);
}

void Instance::Run() {
  Check(api_->LiteRtRunCompiledModel(compiled_, options_.signature,
                                     input_handles_.size(), input_handles_.data(),
                                     output_handles_.size(), output_handles_.data()),
        ErrorKind::kRun, "the runtime failed to run " + model_->description());
}

void Instance::Resize(size_t index, const std::vector<int32_t>& shape) {
  if (index >= inputs_.size()) {
    throw Error(ErrorKind::kInput, "input index " + std::to_string(index) + " out of range");
  }
  const TensorInfo& declared = model_->signatures()[options_.signature].inputs[index];
  if (shape.size() != declared.shape.size()) {
    throw Error(ErrorKind::kInput, "input '" + declared.name + "' has rank " +
                                       std::to_string(declared.shape.size()) +
                                       ", cannot resize it to " + ShapeText(shape));
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] <= 0 || (declared.shape[d] >= 0 && declared.shape[d] != shape[d])) {
      throw Error(ErrorKind::kInput,
                  "input '" + declared.name + "' " + ShapeText(declared.shape) +
                      " cannot take shape " + ShapeText(shape) +
                      ": only dimensions declared as -1 can change");
    }
  }
  if (api_->LiteRtCompiledModelResizeInputTensor == nullptr) {
    throw Error(ErrorKind::kRun, "this runtime cannot resize inputs");
  }
  std::vector<int> dims(shape.begin(), shape.end());
  Check(api_->LiteRtCompiledModelResizeInputTensor(compiled_, options_.signature,
                                                   index, dims.data(), dims.size()),
        ErrorKind::kInput, "the runtime refused to resize input '" + declared.name +
                               "' to " + ShapeText(shape));
  inputs_[index].shape = shape;
  if (inputs_mem_.size() == inputs_.size()) {  // after construction
    Bind(inputs_mem_[index], inputs_[index], "input");
    RefreshOutputs();
  }
}

bool Instance::fully_accelerated() const {
  bool full = false;
  if (api_->LiteRtCompiledModelIsFullyAccelerated != nullptr &&
      api_->LiteRtCompiledModelIsFullyAccelerated(compiled_, &full) == litert::kOk) {
    return full;
  }
  return false;
}

}  // namespace edgepipe
