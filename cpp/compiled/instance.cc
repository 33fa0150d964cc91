#include "compiled/instance.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "common/stderr_capture.h"
#include "delegate/environment.h"
#include "delegate/plugin.h"

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

// Adds an opaque option whose payload is a malloc'ed TOML string.
void AddTomlOption(const LiteRtApi& api, litert::Options options, const char* id,
                   const std::string& toml) {
  char* payload = static_cast<char*>(std::malloc(toml.size() + 1));
  if (payload == nullptr) throw Error(ErrorKind::kCompile, "out of memory");
  std::memcpy(payload, toml.c_str(), toml.size() + 1);
  litert::OpaqueOptions opaque = nullptr;
  litert::Status st = api.LiteRtCreateOpaqueOptions(id, payload, std::free, &opaque);
  if (st != litert::kOk) {
    std::free(payload);
    ThrowStatus(ErrorKind::kCompile, st, std::string("cannot create ") + id + " options");
  }
  st = api.LiteRtAddOpaqueOptions(options, opaque);
  if (st != litert::kOk) {
    api.LiteRtDestroyOpaqueOptions(opaque);
    ThrowStatus(ErrorKind::kCompile, st, std::string("cannot attach ") + id + " options");
  }
}

std::string AcceleratorText(const CompileOptions& o) {
  if (!o.plugin_path.empty()) return "plugin " + o.plugin_path;
  std::string out;
  if (o.accelerators & litert::kHwNpu) out += "npu";
  if (o.accelerators & litert::kHwGpu) out += out.empty() ? "gpu" : "+gpu";
  if (out.empty()) out = "cpu";
  return out;
}

std::string Trimmed(std::string s, size_t max_bytes = 4000) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  return s;
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
  if (options_.num_threads < 0 || options_.num_threads > kMaxThreadsPerInstance) {
    throw Error(ErrorKind::kInput, "threads must be between 1 and " +
                                       std::to_string(kMaxThreadsPerInstance) +
                                       " (0: the runtime's "
                                       "default), got " +
                                       std::to_string(options_.num_threads));
  }
  const auto& signatures = model_->signatures();
  if (options_.signature >= signatures.size()) {
    throw Error(ErrorKind::kInput,
                "signature index " + std::to_string(options_.signature) + " out of range");
  }
  inputs_ = signatures[options_.signature].inputs;
  outputs_ = signatures[options_.signature].outputs;
  for (const auto* list : {&inputs_, &outputs_}) {
    for (const auto& t : *list) {
      if (t.element_size() == 0) {
        throw Error(ErrorKind::kModel, "tensor '" + t.name + "' has element type " +
                                           ElementTypeName(t.element_type) +
                                           ", which edgepipe cannot exchange with numpy");
      }
    }
  }

  Check(api_->LiteRtCreateOptions(&compile_options_), ErrorKind::kCompile,
        "LiteRtCreateOptions failed");
  try {
    Check(api_->LiteRtSetOptionsHardwareAccelerators(compile_options_, options_.accelerators),
          ErrorKind::kCompile, "cannot select accelerators");
    std::string toml;
    if (options_.num_threads > 0) {
      toml += "num_threads = " + std::to_string(options_.num_threads) + "\n";
    }
    if (!options_.weight_cache_path.empty()) {
      toml += "weight_cache_file_path = " + TomlString(options_.weight_cache_path) + "\n";
    }
    if (!toml.empty()) AddTomlOption(*api_, compile_options_, "xnnpack", toml);
    // Buffer error-reporter mode: a failed run's text (a delegate kernel's
    // ReportError, "Node number N failed to invoke") is kept for
    // LiteRtCompiledModelGetErrorMessages instead of going to stderr only.
    std::string runtime_toml;
    if (api_->LiteRtCompiledModelGetErrorMessages != nullptr) {
      runtime_toml += "error_reporter_mode = 2\n";
      error_buffer_ = true;
    }
    if (options_.profiling) runtime_toml += "enable_profiling = true\n";
    if (!runtime_toml.empty()) {
      AddTomlOption(*api_, compile_options_, "runtime_options_string", runtime_toml);
    }
    const bool accelerated =
        (options_.accelerators & ~litert::kHwCpu) != 0 || !options_.plugin_path.empty();
    Runtime& runtime = *model_->runtime();
    litert::Environment env = nullptr;
    if (accelerated) {
      env = AcceleratorEnvironmentFor(runtime);
      const int wanted = options_.accelerators & (litert::kHwGpu | litert::kHwNpu);
      if ((wanted & litert::kHwGpu) && !HasRegistered(runtime, litert::kHwGpu)) {
        throw AcceleratorError("accelerator_init",
                               "no GPU accelerator library could be loaded from " +
                                   runtime.library_dir() +
                                   " (libLiteRtGpuAccelerator.so, libLiteRtWebGpuAccelerator.so, "
                                   "libLiteRtOpenClAccelerator.so, libLiteRtVulkanAccelerator.so)");
      }
      if ((wanted & litert::kHwNpu) && !HasRegistered(runtime, litert::kHwNpu)) {
        throw AcceleratorError("accelerator_init",
                               "no NPU accelerator: no vendor dispatch library "
                               "(libLiteRtDispatch_*.so) in " +
                                   runtime.dispatch_library_dir());
      }
      delegation_ = std::make_shared<DelegateSession>();
      if (!options_.plugin_path.empty()) {
        if (!DelegatePluginsSupported(runtime)) {
          throw AcceleratorError("accelerator_init",
                                 "this runtime cannot host delegate plugins (it does not export "
                                 "LiteRtStaticLinkedAcceleratorCpuDef or the registration API)");
        }
        delegation_->plugin = PluginLibrary::Load(options_.plugin_path);
        auto found = options_.plugin_options.find(options_.plugin_path);
        if (found != options_.plugin_options.end()) delegation_->options = found->second;
      }
      if (DelegatePluginsSupported(runtime)) {
        AttachDelegateSession(*api_, compile_options_, delegation_);
      }
    } else {
      env = runtime.cpu_environment();
    }
    // Until one CPU compile succeeded, the TFLite logger may still print its
    // one-time INFO line ("Created TensorFlow Lite XNNPACK delegate for
    // CPU."): captured and dropped unless the runtime's level is info or
    // lower. A failed accelerator's text goes into its error (the fallback
    // event), and reaches stderr only at the runtime's info level or lower.
    static std::atomic<bool> cpu_compiled_once{false};
    const bool capture_cpu = !accelerated && !cpu_compiled_once.load(std::memory_order_acquire);
    StderrCapture capture(capture_cpu || (accelerated && CaptureAcceleratorLogDefault()));
    const litert::Status st =
        api_->LiteRtCreateCompiledModel(env, model_->handle(), compile_options_, &compiled_);
    StderrCapture::Echo echo = StderrCapture::Echo::kAllButInfo;
    if (runtime.log_severity() <= litert::kLogInfo) {
      echo = StderrCapture::Echo::kAll;
    } else if (accelerated && st != litert::kOk) {
      echo = StderrCapture::Echo::kNone;  // the text is in the error
    }
    const std::string log = capture.Finish(echo);
    if (!accelerated && st == litert::kOk) {
      cpu_compiled_once.store(true, std::memory_order_release);
    }
    if (st != litert::kOk) {
      std::string msg = "the runtime could not compile " + model_->description() + " for " +
                        AcceleratorText(options_) + ": LiteRT status " + std::to_string(st) + " (" +
                        litert::StatusName(st) + ")";
      if (delegation_ && !delegation_->errors.empty()) {
        msg += "; the delegate plugin failed at " + delegation_->failed_at + ": " +
               Trimmed(delegation_->errors);
      }
      if (!Trimmed(log).empty()) msg += "; runtime log: " + Trimmed(log);
      if (accelerated) throw AcceleratorError("compile", msg);
      throw Error(ErrorKind::kCompile, msg, st);
    }
    if (delegation_ && delegation_->report.observed && (options_.accelerators & ~litert::kHwCpu) &&
        delegation_->report.accelerator_kernels.empty()) {
      // LiteRT 2.3.0 skips the NPU accelerator for models without DISPATCH_OP
      // nodes and lets a GPU that takes nothing pass: calling that "npu" or
      // "gpu" would be a lie, so it is a fallback instead.
      throw AcceleratorError("compile", AcceleratorText(options_) + " compiled " +
                                            model_->description() + " but took none of its ops" +
                                            ((options_.accelerators & litert::kHwNpu)
                                                 ? " (NPU accelerators only run models "
                                                   "compiled for the NPU, with DISPATCH_OP nodes)"
                                                 : ""));
    }

    if (options_.batch > 0) ResizeBatch();
    // Dynamic dimensions get size 1 until the caller resizes them, so that
    // every instance starts runnable.
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (options_.batch == 0 && inputs_[i].is_dynamic()) {
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
    if (options_.batch > 0) {
      // The graph must carry the batch through: every output's dimension 0
      // is the batch size, the rest as at batch 1 (a RESHAPE that hard-codes
      // 1 fails here, or at the resize above).
      const auto& declared = model_->signatures()[options_.signature].outputs;
      for (size_t i = 0; i < outputs_.size(); ++i) {
        const auto& got = outputs_[i].shape;
        std::vector<int32_t> want = declared[i].shape;
        if (!want.empty()) want[0] = static_cast<int32_t>(options_.batch);
        bool follows = !got.empty() && got.size() == want.size() && got[0] == want[0];
        for (size_t d = 1; follows && d < got.size(); ++d) follows = got[d] == want[d];
        if (!follows) {
          throw Error(ErrorKind::kModel,
                      model_->description() + " cannot batch: at batch " +
                          std::to_string(options_.batch) + " output '" + outputs_[i].name +
                          "' is " + ShapeText(got) + ", not " + ShapeText(want) +
                          " (its dimension 0 does not follow the inputs'; a RESHAPE with a "
                          "fixed 1 is the usual cause: export it with -1); use max_batch=1");
        }
      }
    }
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

void Instance::Bind(HostBuffer& slot, const TensorInfo& info, const std::string& what) {
  const size_t bytes = info.byte_size();
  const size_t capacity =
      std::max<size_t>((bytes + kAlignment - 1) / kAlignment * kAlignment, kAlignment);
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
  Check(api_->LiteRtCreateTensorBufferFromHostMemory(&type, slot.mem, capacity, nullptr,
                                                     &slot.buffer),
        ErrorKind::kRun,
        "cannot create the " + what + " buffer for '" + info.name + "' " + ShapeText(info.shape));
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
        outputs_[i].shape.assign(layouts[i].dimensions, layouts[i].dimensions + layouts[i].rank);
      }
    }
  }
  for (size_t i = 0; i < outputs_.size(); ++i) {
    if (outputs_[i].is_dynamic()) {
      throw Error(ErrorKind::kRun, "output '" + outputs_[i].name + "' has an unresolved shape " +
                                       ShapeText(outputs_[i].shape));
    }
    if (outputs_mem_[i].buffer == nullptr || outputs_mem_[i].bytes != outputs_[i].byte_size()) {
      Bind(outputs_mem_[i], outputs_[i], "output");
    }
  }
  input_handles_.clear();
  output_handles_.clear();
  for (auto& b : inputs_mem_) input_handles_.push_back(b.buffer);
  for (auto& b : outputs_mem_) output_handles_.push_back(b.buffer);
}

void Instance::Run() {
  const litert::Status st = api_->LiteRtRunCompiledModel(
      compiled_, options_.signature, input_handles_.size(), input_handles_.data(),
      output_handles_.size(), output_handles_.data());
  if (st == litert::kOk) return;
  std::string msg = "the runtime failed to run " + model_->description() + ": LiteRT status " +
                    std::to_string(st) + " (" + litert::StatusName(st) + ")";
  if (error_buffer_) {
    char* text = nullptr;
    if (api_->LiteRtCompiledModelGetErrorMessages(compiled_, &text) == litert::kOk &&
        text != nullptr) {
      std::string t = Trimmed(text);
      if (!t.empty()) msg += ": " + t;
    }
    std::free(text);  // the runtime malloc()s it for the caller
    if (api_->LiteRtCompiledModelClearErrors) api_->LiteRtCompiledModelClearErrors(compiled_);
  }
  throw Error(ErrorKind::kRun, msg, st);
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
      throw Error(ErrorKind::kInput, "input '" + declared.name + "' " + ShapeText(declared.shape) +
                                         " cannot take shape " + ShapeText(shape) +
                                         ": only dimensions declared as -1 can change");
    }
  }
  if (api_->LiteRtCompiledModelResizeInputTensor == nullptr) {
    throw Error(ErrorKind::kRun, "this runtime cannot resize inputs");
  }
  std::vector<int> dims(shape.begin(), shape.end());
  Check(api_->LiteRtCompiledModelResizeInputTensor(compiled_, options_.signature, index,
                                                   dims.data(), dims.size()),
        ErrorKind::kInput,
        "the runtime refused to resize input '" + declared.name + "' to " + ShapeText(shape));
  inputs_[index].shape = shape;
  if (inputs_mem_.size() == inputs_.size()) {  // after construction
    Bind(inputs_mem_[index], inputs_[index], "input");
    RefreshOutputs();
  }
}

void Instance::ResizeBatch() {
  const auto& sig = model_->signatures()[options_.signature];
  const std::string why = model_->description() + " cannot batch: ";
  const std::string what = "; use max_batch=1";
  for (const auto* list : {&sig.inputs, &sig.outputs}) {
    for (const auto& t : *list) {
      const char* kind = list == &sig.inputs ? "input '" : "output '";
      if (t.shape.empty()) {
        throw Error(ErrorKind::kModel,
                    why + kind + t.name + "' is a scalar (no batch dimension)" + what);
      }
      if (t.shape[0] != 1 && t.shape[0] != -1) {
        throw Error(ErrorKind::kModel,
                    why + kind + t.name + "' " + ShapeText(t.shape) + " has dimension 0 fixed at " +
                        std::to_string(t.shape[0]) + " (batching needs 1 or -1 there)" + what);
      }
      for (size_t d = 1; d < t.shape.size(); ++d) {
        if (t.shape[d] < 0) {
          throw Error(ErrorKind::kModel, why + kind + t.name + "' " + ShapeText(t.shape) +
                                             " has a dynamic dimension besides the batch" + what);
        }
      }
    }
  }
  for (size_t i = 0; i < sig.inputs.size(); ++i) {
    const TensorInfo& declared = sig.inputs[i];
    std::vector<int32_t> shape = declared.shape;
    shape[0] = static_cast<int32_t>(options_.batch);
    // A declared 1 is a fixed dimension: only the non-strict resize changes it.
    auto resize = declared.shape[0] < 0 ? api_->LiteRtCompiledModelResizeInputTensor
                                        : api_->LiteRtCompiledModelResizeInputTensorNonStrict;
    if (resize == nullptr) {
      throw Error(ErrorKind::kModel, why + "this runtime cannot resize inputs" + what);
    }
    std::vector<int> dims(shape.begin(), shape.end());
    if (resize(compiled_, options_.signature, i, dims.data(), dims.size()) != litert::kOk) {
      throw Error(ErrorKind::kModel, why + "the runtime refused to resize input '" + declared.name +
                                         "' to " + ShapeText(shape) + what);
    }
    inputs_[i].shape = shape;
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

bool Instance::non_cpu_fully_accelerated() const {
  bool full = false;
  if (api_->LiteRtCompiledModelIsNonCpuFullyAccelerated != nullptr &&
      api_->LiteRtCompiledModelIsNonCpuFullyAccelerated(compiled_, &full) == litert::kOk) {
    return full;
  }
  return false;
}

}  // namespace edgepipe
