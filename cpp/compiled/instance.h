// One compiled instance of a model: the runtime's CompiledModel plus the
// host buffers it reads inputs from and writes outputs to.
//
// Buffers are allocated once, aligned as the runtime wants, and reused for
// every run, so a hot loop costs one copy in and one copy out (or none, when
// the caller writes straight into input_data()).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"

namespace edgepipe {

// Most CPU threads one instance may ask for: beyond this a typo (10**6), not
// a machine, is the likely cause, and the runtime would try to start them.
constexpr int kMaxThreadsPerInstance = 256;

struct CompileOptions {
  int accelerators = litert::kHwCpu;  // litert::HwAccelerator bit set
  int num_threads = 0;                // 0: the runtime's default; <= kMaxThreadsPerInstance
  // XNNPACK weight cache file. Instances of the same model sharing one
  // file share the packed weights (a file mapping) instead of each packing
  // a private copy.
  std::string weight_cache_path;
  size_t signature = 0;
  // External-delegate plugin to apply in this compile ("" for none); see
  // delegate/plugin.h. Options per plugin path go to tflite_plugin_create_delegate.
  std::string plugin_path;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> plugin_options;
  // Folder for crash marks around non-CPU first use ("" for none).
  std::string crash_mark_dir;
  // Compile with LiteRT's profiler attached (runtime_options_string
  // enable_profiling = true); read it through profile/profiler.h.
  bool profiling = false;
  // > 0: compile for this batch size, with dimension 0 of every input set to
  // it (a pool's dynamic batching, pool/batch.h). Every input's declared
  // dimension 0 must be 1 or -1 and the rest static, and every output's
  // dimension 0 must then follow (1 at batch 1, `batch` here); otherwise the
  // constructor throws kModel naming the tensor.
  size_t batch = 0;
};

struct DelegateSession;

class Instance {
 public:
  Instance(std::shared_ptr<Model> model, const CompileOptions& options);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  const std::shared_ptr<Model>& model() const { return model_; }
  const CompileOptions& options() const { return options_; }
  // Current tensor descriptions (shapes follow Resize()).
  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }

  void* input_data(size_t i) { return inputs_mem_.at(i).mem; }
  size_t input_bytes(size_t i) const { return inputs_mem_.at(i).bytes; }
  const void* output_data(size_t i) const { return outputs_mem_.at(i).mem; }
  size_t output_bytes(size_t i) const { return outputs_mem_.at(i).bytes; }

  // Runs once on the current input buffers. Not thread-safe: one caller at
  // a time per instance (pools give each worker its own instance).
  void Run();
  // Changes the shape of input `index` (dynamic models); output buffers are
  // re-derived from the runtime's new output layouts.
  void Resize(size_t index, const std::vector<int32_t>& shape);

  // The runtime's compiled model (for profile/profiler.h); owned here.
  litert::CompiledModel handle() const { return compiled_; }

  bool fully_accelerated() const;
  bool non_cpu_fully_accelerated() const;
  // What the delegate dispatcher saw (null for CPU-environment compiles).
  const std::shared_ptr<DelegateSession>& delegation() const { return delegation_; }

 private:
  struct HostBuffer {
    void* mem = nullptr;
    size_t capacity = 0;
    size_t bytes = 0;
    litert::TensorBuffer buffer = nullptr;
  };
  void Bind(HostBuffer& slot, const TensorInfo& info, const std::string& what);
  void Release(HostBuffer& slot);
  void RefreshOutputs();
  // Sets dimension 0 of every input to options_.batch (see CompileOptions)
  // and checks the outputs follow; before the buffers are bound.
  void ResizeBatch();

  std::shared_ptr<Model> model_;
  CompileOptions options_;
  const LiteRtApi* api_ = nullptr;
  litert::Options compile_options_ = nullptr;
  litert::CompiledModel compiled_ = nullptr;
  std::shared_ptr<DelegateSession> delegation_;
  bool error_buffer_ = false;  // run errors are kept for GetErrorMessages
  std::vector<TensorInfo> inputs_;
  std::vector<TensorInfo> outputs_;
  std::vector<HostBuffer> inputs_mem_;
  std::vector<HostBuffer> outputs_mem_;
  std::vector<litert::TensorBuffer> input_handles_;
  std::vector<litert::TensorBuffer> output_handles_;
};

}  // namespace edgepipe
