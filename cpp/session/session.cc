#include "session/session.h"

#include <chrono>
#include <cstring>

namespace edgepipe {

Session::Session(std::shared_ptr<Model> model, SessionOptions options) {
  auto choice =
      CompileWithFallback(model, PreferenceList(options.accelerators, options.allow_cpu_fallback),
                          options.compile, &events_);
  instance_ = std::move(choice.instance);
  accelerator_ = std::move(choice.accelerator);
}

void Session::Run(Guard& guard, const std::vector<const void*>& inputs,
                  const std::vector<void*>& outputs) {
  if (&guard.session_ != this || !guard.lock_.owns_lock()) {
    throw Error(ErrorKind::kInternal, "Session::Run needs this session's guard");
  }
  Instance& inst = *instance_;
  if (!inputs.empty() && inputs.size() != inst.inputs().size()) {
    throw Error(ErrorKind::kInput, "the model takes " + std::to_string(inst.inputs().size()) +
                                       " inputs, got " + std::to_string(inputs.size()));
  }
  if (!outputs.empty() && outputs.size() != inst.outputs().size()) {
    throw Error(ErrorKind::kInput, "the model gives " + std::to_string(inst.outputs().size()) +
                                       " outputs, got room for " + std::to_string(outputs.size()));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i] != nullptr && inputs[i] != inst.input_data(i)) {
      std::memcpy(inst.input_data(i), inputs[i], inst.input_bytes(i));
    }
  }
  inst.Run();
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i] != nullptr) std::memcpy(outputs[i], inst.output_data(i), inst.output_bytes(i));
  }
}

void Session::Run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs) {
  Guard guard(*this);
  Run(guard, inputs, outputs);
}

double Session::BenchLoop(size_t n, bool copy) {
  Guard guard(*this);
  Instance& inst = *instance_;
  std::vector<std::vector<uint8_t>> in(inst.inputs().size()), out(inst.outputs().size());
  for (size_t i = 0; i < in.size(); ++i) in[i].resize(inst.input_bytes(i));
  for (size_t i = 0; i < out.size(); ++i) out[i].resize(inst.output_bytes(i));
  const auto start = std::chrono::steady_clock::now();
  for (size_t k = 0; k < n; ++k) {
    if (copy) {
      for (size_t i = 0; i < in.size(); ++i) {
        std::memcpy(inst.input_data(i), in[i].data(), in[i].size());
      }
    }
    inst.Run();
    if (copy) {
      for (size_t i = 0; i < out.size(); ++i) {
        std::memcpy(out[i].data(), inst.output_data(i), out[i].size());
      }
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Session::Resize(size_t index, const std::vector<int32_t>& shape) {
  Guard guard(*this);
  instance_->Resize(index, shape);
}

std::vector<TensorInfo> Session::inputs() {
  Guard guard(*this);
  return instance_->inputs();
}

std::vector<TensorInfo> Session::outputs() {
  Guard guard(*this);
  return instance_->outputs();
}

}  // namespace edgepipe
