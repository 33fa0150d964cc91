// edgepipe_run MODEL [--library PATH] [--runs N] [--threads N]
//
// Loads the LiteRT runtime, maps and verifies MODEL, compiles it for the CPU,
// fills every input with a fixed pattern, runs it N times and prints, per
// output, checksums that are comparable across machines (the same model gives
// the same numbers on x86-64 and aarch64 up to float rounding). It is also the
// shortest complete example of the C++ API: runtime -> model -> session.
//
// Exit status: 0 on success, 2 for a bad command line, model or input, 1 for
// any other failure (runtime missing, compile or run failed).

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"
#include "model/byte_source.h"
#include "model/model.h"
#include "runtime/runtime.h"
#include "session/session.h"

namespace {

using edgepipe::TensorInfo;
namespace litert = edgepipe::litert;

struct Args {
  std::string model;
  std::string library;  // empty: EDGEPIPE_LITERT_LIBRARY, then the system loader
  int runs = 10;
  int threads = 0;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "error: %s\nusage: edgepipe_run MODEL [--library PATH] [--runs N] "
               "[--threads N]\n",
               why);
  std::exit(2);
}

int PositiveInt(const char* flag, const char* text, int min) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < min || v > 1000000) {
    Usage((std::string(flag) + " needs an integer >= " + std::to_string(min)).c_str());
  }
  return static_cast<int>(v);
}

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--library" && has_value) {
      a.library = argv[++i];
    } else if (arg == "--runs" && has_value) {
      a.runs = PositiveInt("--runs", argv[++i], 1);
    } else if (arg == "--threads" && has_value) {
      a.threads = PositiveInt("--threads", argv[++i], 0);
    } else if (arg.rfind("--", 0) == 0) {
      Usage(("unknown or incomplete option " + arg).c_str());
    } else if (a.model.empty()) {
      a.model = arg;
    } else {
      Usage("more than one MODEL given");
    }
  }
  if (a.model.empty()) Usage("no MODEL given");
  return a;
}

std::string Shape(const TensorInfo& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.shape.size(); ++i) {
    s += (i ? "," : "") + std::to_string(t.shape[i]);
  }
  return s + "]";
}

// Element i of a plain host tensor as a double; false for types without one.
bool Element(int type, const void* data, size_t i, double* out) {
  switch (type) {
    case litert::kElementFloat32: *out = static_cast<const float*>(data)[i]; return true;
    case litert::kElementFloat64: *out = static_cast<const double*>(data)[i]; return true;
    case litert::kElementInt8: *out = static_cast<const int8_t*>(data)[i]; return true;
    case litert::kElementUInt8: *out = static_cast<const uint8_t*>(data)[i]; return true;
    case litert::kElementBool: *out = static_cast<const uint8_t*>(data)[i]; return true;
    case litert::kElementInt16: *out = static_cast<const int16_t*>(data)[i]; return true;
    case litert::kElementUInt16: *out = static_cast<const uint16_t*>(data)[i]; return true;
    case litert::kElementInt32: *out = static_cast<const int32_t*>(data)[i]; return true;
    case litert::kElementUInt32: *out = static_cast<const uint32_t*>(data)[i]; return true;
    case litert::kElementInt64:
      *out = static_cast<double>(static_cast<const int64_t*>(data)[i]);
      return true;
    case litert::kElementUInt64:
      *out = static_cast<double>(static_cast<const uint64_t*>(data)[i]);
      return true;
    default: return false;
  }
}

// Deterministic input: floats follow a ramp in [-1, 1] (exact in binary, so
// every machine feeds the same bits), integers i % 7, booleans i % 2.
void Fill(const TensorInfo& t, void* data) {
  const size_t n = t.num_elements();
  for (size_t i = 0; i < n; ++i) {
    const int k = static_cast<int>(i % 17) - 8;  // -8..8
    switch (t.element_type) {
      case litert::kElementFloat32: static_cast<float*>(data)[i] = k / 8.0f; break;
      case litert::kElementFloat64: static_cast<double*>(data)[i] = k / 8.0; break;
      case litert::kElementBool: static_cast<uint8_t*>(data)[i] = i % 2; break;
      case litert::kElementInt8: static_cast<int8_t*>(data)[i] = i % 7; break;
      case litert::kElementUInt8: static_cast<uint8_t*>(data)[i] = i % 7; break;
      case litert::kElementInt16: static_cast<int16_t*>(data)[i] = i % 7; break;
      case litert::kElementUInt16: static_cast<uint16_t*>(data)[i] = i % 7; break;
      case litert::kElementInt32: static_cast<int32_t*>(data)[i] = i % 7; break;
      case litert::kElementUInt32: static_cast<uint32_t*>(data)[i] = i % 7; break;
      case litert::kElementInt64: static_cast<int64_t*>(data)[i] = i % 7; break;
      case litert::kElementUInt64: static_cast<uint64_t*>(data)[i] = i % 7; break;
      default:
        throw edgepipe::Error(edgepipe::ErrorKind::kInput,
                              std::string("cannot fill input '") + t.name + "' of type " +
                                  edgepipe::ElementTypeName(t.element_type));
    }
  }
}

int Main(const Args& args) {
  edgepipe::RuntimeConfig config;
  config.library_path = args.library;
  auto runtime = edgepipe::Runtime::Load(config);
  auto model = edgepipe::Model::Load(runtime, edgepipe::MapFile(args.model));

  edgepipe::SessionOptions options;
  options.accelerators = {"cpu"};
  options.compile.num_threads = args.threads;
  edgepipe::Session session(model, options);
  // Held for the whole tool: it fills the session's own input buffers and
  // reads its output buffers directly (no copies).
  edgepipe::Session::Guard guard(session);
  edgepipe::Instance& instance = guard.instance();

  std::printf("runtime %s\n", runtime->library_path().c_str());
  std::printf("model %s (%zu operators, %zu tensors)\n", args.model.c_str(),
              model->summary().num_operators, model->summary().num_tensors);
  for (size_t i = 0; i < instance.inputs().size(); ++i) {
    const TensorInfo& t = instance.inputs()[i];
    std::printf("input %zu %s %s %s\n", i, t.name.c_str(),
                edgepipe::ElementTypeName(t.element_type), Shape(t).c_str());
    Fill(t, instance.input_data(i));
  }

  double total_ms = 0;
  for (int r = 0; r < args.runs; ++r) {
    auto start = std::chrono::steady_clock::now();
    session.Run(guard, {}, {});
    total_ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }

  // sum and sum(|x|), plus a position-weighted sum that also changes when
  // values move between elements (a softmax always sums to 1).
  for (size_t i = 0; i < instance.outputs().size(); ++i) {
    const TensorInfo& t = instance.outputs()[i];
    std::printf("output %zu %s %s %s", i, t.name.c_str(), edgepipe::ElementTypeName(t.element_type),
                Shape(t).c_str());
    double sum = 0, abs_sum = 0, weighted = 0, v = 0;
    const size_t n = instance.output_bytes(i) / t.element_size();
    bool plain = true;
    for (size_t k = 0; k < n && plain; ++k) {
      plain = Element(t.element_type, instance.output_data(i), k, &v);
      sum += v;
      abs_sum += std::fabs(v);
      weighted += static_cast<double>(k % 16 + 1) * v;
    }
    if (plain) {
      std::printf(" sum=%.6e abs=%.6e wsum=%.6e\n", sum, abs_sum, weighted);
    } else {
      std::printf(" (no checksum for this type)\n");
    }
  }
  std::printf("runs %d mean_latency_ms %.3f\n", args.runs, total_ms / args.runs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = Parse(argc, argv);
  try {
    return Main(args);
  } catch (const edgepipe::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    const bool caller_fault =
        e.kind() == edgepipe::ErrorKind::kModel || e.kind() == edgepipe::ErrorKind::kInput;
    return caller_fault ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
