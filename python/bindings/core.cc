// The thin binding between the C++ core and Python. Policy, names and UX
// live in the Python package; this file only converts types, releases the
// GIL around anything that can block or compute, and maps error kinds to the
// exception classes of edgepipe.errors.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cxxabi.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <thread>

#include "accel/fallback.h"
#include "accel/plugin.h"
#include "compiled/instance.h"
#include "model/model.h"
#include "pool/pool.h"
#include "runtime/runtime.h"

namespace py = pybind11;
using namespace edgepipe;

namespace edgepipe::bindings {
void RegisterProfile(py::module_& m);  // profile.cc
}  // namespace edgepipe::bindings

namespace {

py::object g_errors;  // the edgepipe.errors module, kept for the translator

const char* ExceptionName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kRuntime: return "RuntimeLoadError";
    case ErrorKind::kModel: return "ModelError";
    case ErrorKind::kCompile: return "CompileError";
    case ErrorKind::kInput: return "InputError";
    case ErrorKind::kRun: return "InferenceError";
    case ErrorKind::kQueueFull: return "QueueFullError";
    case ErrorKind::kDropped: return "DroppedError";
    case ErrorKind::kTimeout: return "RequestTimeoutError";
    case ErrorKind::kClosed: return "PoolClosedError";
    case ErrorKind::kCancelled: return "CancelledError";
    case ErrorKind::kAccelerator: return "AcceleratorError";
    case ErrorKind::kInternal: return "EdgepipeError";
  }
  return "EdgepipeError";
}

py::dtype MakeDtype(int element_type) {
  switch (element_type) {
    case litert::kElementFloat32: return py::dtype("float32");
    case litert::kElementFloat16: return py::dtype("float16");
    case litert::kElementFloat64: return py::dtype("float64");
    case litert::kElementInt8: return py::dtype("int8");
    case litert::kElementUInt8: return py::dtype("uint8");
    case litert::kElementInt16: return py::dtype("int16");
    case litert::kElementUInt16: return py::dtype("uint16");
    case litert::kElementInt32: return py::dtype("int32");
    case litert::kElementUInt32: return py::dtype("uint32");
    case litert::kElementInt64: return py::dtype("int64");
    case litert::kElementUInt64: return py::dtype("uint64");
    case litert::kElementBool: return py::dtype("bool");
    case litert::kElementComplex64: return py::dtype("complex64");
    case litert::kElementComplex128: return py::dtype("complex128");
    default:
      throw Error(ErrorKind::kModel, std::string("element type ") +
                                         ElementTypeName(element_type) +
                                         " has no numpy equivalent");
  }
}

// Parsing a dtype from its name costs about a microsecond, on every input
// and output of every call; the handful of dtypes is made once. Called with
// the GIL held; the cache is leaked so no Python object dies at exit.
py::dtype DtypeOf(int element_type) {
  static auto* cache = new std::unordered_map<int, py::dtype>();
  auto found = cache->find(element_type);
  if (found != cache->end()) return found->second;
  py::dtype made = MakeDtype(element_type);
  cache->emplace(element_type, made);
  return made;
}

std::vector<py::ssize_t> Dims(const std::vector<int32_t>& shape) {
  return std::vector<py::ssize_t>(shape.begin(), shape.end());
}

py::dict TensorDict(const TensorInfo& t) {
  py::dict d;
  d["name"] = t.name;
  d["shape"] = py::tuple(py::cast(t.shape));
  d["element_type"] = ElementTypeName(t.element_type);
  py::dict q;
  switch (t.quantization.type) {
    case litert::kQuantizationPerTensor:
      q["kind"] = "per_tensor";
      q["scale"] = t.quantization.scale;
      q["zero_point"] = t.quantization.zero_point;
      break;
    case litert::kQuantizationPerChannel:
      q["kind"] = "per_channel";
      q["scales"] = t.quantization.scales;
      q["zero_points"] = t.quantization.zero_points;
      q["quantized_dimension"] = t.quantization.quantized_dimension;
      break;
    case litert::kQuantizationBlockWise:
      q["kind"] = "block_wise";
      break;
    default:
      q["kind"] = "none";
  }
  d["quantization"] = q;
  return d;
}

py::list TensorList(const std::vector<TensorInfo>& list) {
  py::list out;
  for (const auto& t : list) out.append(TensorDict(t));
  return out;
}

py::list EventList(const std::vector<FallbackEvent>& events) {
  py::list out;
  for (const auto& e : events) {
    py::dict d;
    d["from"] = e.from;
    d["to"] = e.to;
    d["stage"] = e.stage;
    d["error"] = e.error;
    d["time"] = e.unix_time;
    out.append(d);
  }
  return out;
}

// Checks one caller array against a tensor and returns its data pointer.
// No implicit conversion: a silent cast would hide a preprocessing bug.
const void* CheckedInput(const py::handle& obj, const TensorInfo& t, size_t index) {
  if (!py::isinstance<py::array>(obj)) {
    throw Error(ErrorKind::kInput, "input " + std::to_string(index) + " ('" + t.name +
                                       "') must be a numpy array");
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  py::dtype want = DtypeOf(t.element_type);
  if (!arr.dtype().is(want) && !arr.dtype().equal(want)) {
    throw Error(ErrorKind::kInput,
                "input '" + t.name + "' must be " + std::string(py::str(want)) + ", got " +
                    std::string(py::str(arr.dtype())) + "; convert it with .astype(" +
                    std::string(py::str(want)) + ") if that is what you mean");
  }
  bool same = static_cast<size_t>(arr.ndim()) == t.shape.size();
  for (size_t d = 0; same && d < t.shape.size(); ++d) {
    same = arr.shape(static_cast<py::ssize_t>(d)) == t.shape[d];
  }
  if (!same) {
    std::string got = "(";
    for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
      got += (d ? ", " : "") + std::to_string(arr.shape(d));
    }
    got += ")";
    std::string want_shape = "(";
    for (size_t d = 0; d < t.shape.size(); ++d) {
      want_shape += (d ? ", " : "") + std::to_string(t.shape[d]);
    }
    want_shape += ")";
    throw Error(ErrorKind::kInput, "input '" + t.name + "' must have shape " + want_shape +
                                       ", got " + got);
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw Error(ErrorKind::kInput, "input '" + t.name +
                                       "' must be C-contiguous; pass numpy.ascontiguousarray(x)");
  }
  return arr.data();
}

void* CheckedOutput(const py::handle& obj, const TensorInfo& t) {
  if (!py::isinstance<py::array>(obj)) {
    throw Error(ErrorKind::kInput, "out['" + t.name + "'] must be a numpy array");
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(DtypeOf(t.element_type)) ||
      static_cast<size_t>(arr.nbytes()) != t.byte_size() ||
      !(arr.flags() & py::array::c_style) || !arr.writeable()) {
    throw Error(ErrorKind::kInput, "out['" + t.name + "'] must be a writable C-contiguous " +
                                       std::string(py::str(DtypeOf(t.element_type))) +
                                       " array of " + std::to_string(t.byte_size()) + " bytes");
  }
  return arr.mutable_data();
}

py::list NewOutputs(const std::vector<TensorInfo>& outputs) {
  py::list out;
  for (const auto& t : outputs) out.append(py::array(DtypeOf(t.element_type), Dims(t.shape)));
  return out;
}

// Model bytes exposed through the buffer protocol: memoryview(model.bytes)
// reads the mapping itself, and keeps it alive for as long as it is used.
struct ModelBytes {
  std::shared_ptr<ByteSource> source;
};

using PluginOptionMap = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;

py::dict DelegationDict(const Instance& inst) {
  py::dict d;
  d["fully_accelerated"] = inst.fully_accelerated();
  d["non_cpu_fully_accelerated"] = inst.non_cpu_fully_accelerated();
  const auto& session = inst.delegation();
  d["observed"] = session && session->report.observed;
  if (session) {
    d["plugin"] = session->plugin ? session->plugin->path() : std::string();
    d["plugin_ops"] = session->report.plugin_ops;
    d["accelerator_kernels"] = session->report.accelerator_kernels;
    d["cpu_ops"] = session->report.cpu_ops;
    d["cpu_custom_ops"] = session->report.cpu_custom_ops;
  }
  return d;
}

// At interpreter exit, a daemon thread that takes the GIL back is ended by
// the interpreter with pthread_exit. Its forced unwind would run destructors
// of Python objects (a request's arrays) without the GIL, or leave a noexcept
// destructor such as ~gil_scoped_release (std::terminate): both crash the
// exiting process. Such a thread is parked instead; the process is ending.
[[noreturn]] void ParkExitingThread() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

bool InterpreterFinalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// Runs fn with the GIL released, for calls that can block for long (waiting
// on a pool), taking the GIL back safely even during interpreter exit.
template <class F>
void WithoutGil(F&& fn) {
  PyThreadState* state = PyEval_SaveThread();
  std::exception_ptr error;
  try {
    fn();
  } catch (abi::__forced_unwind&) {
    ParkExitingThread();
  } catch (...) {
    error = std::current_exception();
  }
  try {
    PyEval_RestoreThread(state);
  } catch (abi::__forced_unwind&) {
    ParkExitingThread();
  }
  if (error) std::rethrow_exception(error);
}

// A compiled instance for direct, single-caller use.
class Session {
 public:
  Session(std::shared_ptr<Model> model, std::vector<std::string> accelerators, int threads,
          std::string weight_cache, size_t signature, bool allow_cpu_fallback,
          PluginOptionMap plugin_options, std::string crash_mark_dir) {
    CompileOptions options;
    options.plugin_options = std::move(plugin_options);
    options.crash_mark_dir = std::move(crash_mark_dir);
    options.num_threads = threads;
    options.weight_cache_path = std::move(weight_cache);
    options.signature = signature;
    auto choice = CompileWithFallback(model, PreferenceList(accelerators, allow_cpu_fallback),
                                      options, &events_);
    instance_ = std::move(choice.instance);
    accelerator_ = std::move(choice.accelerator);
  }

  py::list Run(const py::list& inputs, const py::object& outputs) {
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    WithoutGil([&] { lock.lock(); });
    Instance& inst = *instance_;
    const auto& in_info = inst.inputs();
    std::vector<const void*> src;
    if (!inputs.empty()) {
      if (inputs.size() != in_info.size()) {
        throw Error(ErrorKind::kInput, "the model takes " + std::to_string(in_info.size()) +
                                           " inputs, got " + std::to_string(inputs.size()));
      }
      for (size_t i = 0; i < in_info.size(); ++i) {
        src.push_back(CheckedInput(inputs[i], in_info[i], i));
      }
    }
    py::list result = outputs.is_none() ? NewOutputs(inst.outputs()) : py::list(outputs);
    if (result.size() != inst.outputs().size()) {
      throw Error(ErrorKind::kInput, "out must hold " + std::to_string(inst.outputs().size()) +
                                         " arrays");
    }
    std::vector<void*> dst;
    for (size_t i = 0; i < inst.outputs().size(); ++i) {
      dst.push_back(CheckedOutput(result[i], inst.outputs()[i]));
    }
    // Released through WithoutGil: a daemon thread still in a long run at
    // interpreter exit is parked instead of crashing the exiting process.
    WithoutGil([&] {
      for (size_t i = 0; i < src.size(); ++i) {
        // Skip the copy when the caller filled our own buffer (input_view).
        if (src[i] != inst.input_data(i)) {
          std::memcpy(inst.input_data(i), src[i], inst.input_bytes(i));
        }
      }
      inst.Run();
      for (size_t i = 0; i < dst.size(); ++i) {
        std::memcpy(dst[i], inst.output_data(i), inst.output_bytes(i));
      }
    });
    return result;
  }

  // Runs n times on the current buffers without Python in the loop: the
  // floor that the Python-level overhead is measured against.
  double BenchLoop(size_t n, bool copy) {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
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

  void Resize(size_t index, const std::vector<int32_t>& shape) {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    instance_->Resize(index, shape);
  }

  std::shared_ptr<Instance> instance_;
  std::string accelerator_;
  EventLog events_;
  std::mutex mutex_;
};

// Heap-held Python objects of a submitted request, released under the GIL.
struct PendingCall {
  py::list inputs, outputs;
  py::object callback;
};

py::dict HistogramDict(const Histogram::Snapshot& h) {
  py::dict d;
  d["count"] = h.count;
  d["mean_us"] = h.mean_us;
  d["p50_us"] = h.p50_us;
  d["p90_us"] = h.p90_us;
  d["p99_us"] = h.p99_us;
  d["max_us"] = h.max_us;
  d["buckets"] = h.buckets;
  return d;
}

std::shared_ptr<Request> BuildRequest(Pool& pool, const py::list& inputs, const py::list& outputs,
                                      double timeout) {
  const auto& in_info = pool.inputs();
  const auto& out_info = pool.outputs();
  if (inputs.size() != in_info.size()) {
    throw Error(ErrorKind::kInput, "the model takes " + std::to_string(in_info.size()) +
                                       " inputs, got " + std::to_string(inputs.size()));
  }
  auto request = std::make_shared<Request>();
  for (size_t i = 0; i < in_info.size(); ++i) {
    request->inputs.push_back(CheckedInput(inputs[i], in_info[i], i));
  }
  for (size_t i = 0; i < out_info.size(); ++i) {
    request->outputs.push_back(CheckedOutput(outputs[i], out_info[i]));
  }
  if (timeout >= 0) {
    request->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout));
  }
  return request;
}

[[noreturn]] void ThrowRequestError(const Request& r) { throw Error(r.error_kind(), r.error()); }


// Destroys a pool when Python drops its last reference. ~Pool joins its
// delivery thread, which takes the GIL to resolve futures: destroying with
// the GIL held deadlocks, so it is released first. When the last reference
// goes inside a completion callback (on the delivery thread), the pool cannot
// join the thread it runs on, and that thread returns into the pool's loop
// afterwards: the pool is destroyed on a helper thread instead.
struct PoolDeleter {
  void operator()(Pool* pool) const {
    if (pool->IsPoolThread()) {
      std::thread([pool] { delete pool; }).detach();
      return;
    }
    if (Py_IsInitialized() && PyGILState_Check()) {
      py::gil_scoped_release release;
      delete pool;
    } else {
      delete pool;
    }
  }
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "edgepipe's compiled core (use the edgepipe package, not this module)";
  g_errors = py::module_::import("edgepipe.errors");
  // Leaked on purpose: the translator may run during interpreter teardown.
  g_errors.inc_ref();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      py::object cls = g_errors.attr(ExceptionName(e.kind()));
      PyErr_SetString(cls.ptr(), e.what());
    }
  });

  m.def("error_class_name", [](const std::string& kind) {
    for (auto k : {ErrorKind::kRuntime, ErrorKind::kModel, ErrorKind::kCompile,
                   ErrorKind::kInput, ErrorKind::kRun, ErrorKind::kQueueFull,
                   ErrorKind::kDropped, ErrorKind::kTimeout, ErrorKind::kClosed,
                   ErrorKind::kCancelled, ErrorKind::kAccelerator, ErrorKind::kInternal}) {
      if (kind == ErrorKindName(k)) return std::string(ExceptionName(k));
    }
    return std::string("EdgepipeError");
  });

  py::class_<Runtime, std::shared_ptr<Runtime>>(m, "Runtime")
      .def_static(
          "load",
          [](const std::string& library, const std::vector<std::string>& search_dirs,
             int log_severity) {
            RuntimeConfig config;
            config.library_path = library;
            config.search_dirs = search_dirs;
            config.log_severity = log_severity;
            py::gil_scoped_release release;
            return Runtime::Load(config);
          },
          py::arg("library") = "", py::arg("search_dirs") = std::vector<std::string>{},
          py::arg("log_severity") = static_cast<int>(litert::kLogError))
      .def_property_readonly("library_path", &Runtime::library_path)
      .def_property_readonly("library_dir", &Runtime::library_dir)
      .def_property_readonly("log_severity", &Runtime::log_severity)
      .def_property_readonly("missing_optional_symbols", &Runtime::missing_optional_symbols)
      .def("registered_accelerators",
           [](Runtime& rt) {
             std::vector<Runtime::AcceleratorEntry> entries;
             {
               py::gil_scoped_release release;
               entries = rt.registered_accelerators();
             }
             py::list out;
             for (const auto& e : entries) {
               py::dict d;
               d["name"] = e.name;
               d["hardware"] = e.hardware;
               out.append(d);
             }
             return out;
           })
      .def("delegate_plugins_supported",
           [](Runtime& rt) {
             py::gil_scoped_release release;
             return rt.delegate_plugins_supported();
           })
      .def_property_readonly("dispatch_library_dir", &Runtime::dispatch_library_dir);

  // Compiles `model` for exactly `accelerator` (no CPU bit when exact_bits,
  // no fallback) and drops it: the detection probe. Returns ("", "") when it
  // compiled, else (stage, error text); the error is the answer, not a
  // failure of the call.
  m.def(
      "probe_compile",
      [](std::shared_ptr<Model> model, const std::string& accelerator, bool exact_bits,
         PluginOptionMap plugin_options) {
        py::gil_scoped_release release;
        CompileOptions options;
        options.plugin_options = std::move(plugin_options);
        options = OptionsFor(accelerator, options);
        if (exact_bits) options.accelerators &= ~litert::kHwCpu;
        if (options.accelerators == 0 && options.plugin_path.empty()) {
          options.accelerators = litert::kHwCpu;
        }
        try {
          Instance instance(model, options);
          return std::make_pair(std::string(), std::string());
        } catch (const AcceleratorError& e) {
          return std::make_pair(e.stage(), std::string(e.what()));
        } catch (const Error& e) {
          if (e.kind() == ErrorKind::kInput) throw;
          return std::make_pair(std::string("compile"), std::string(e.what()));
        }
      },
      py::arg("model"), py::arg("accelerator"), py::arg("exact_bits") = false,
      py::arg("plugin_options") = PluginOptionMap{});

  // Loads a delegate plugin library; returns "" or why it cannot be used.
  m.def("check_plugin", [](const std::string& path) {
    py::gil_scoped_release release;
    try {
      PluginLibrary::Load(path);
      return std::string();
    } catch (const AcceleratorError& e) {
      return std::string(e.what());
    }
  });

  py::class_<ModelBytes>(m, "ModelBytes", py::buffer_protocol())
      .def_buffer([](ModelBytes& b) {
        return py::buffer_info(const_cast<uint8_t*>(b.source->data()), 1,
                               py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.source->size())}, {1},
                               /*readonly=*/true);
      });

  py::class_<Model, std::shared_ptr<Model>>(m, "Model")
      .def_static(
          "from_file",
          [](std::shared_ptr<Runtime> rt, const std::string& path, bool verify) {
            py::gil_scoped_release release;
            return Model::Load(rt, MapFile(path), verify);
          },
          py::arg("runtime"), py::arg("path"), py::arg("verify") = true)
      .def_static(
          "from_buffer",
          [](std::shared_ptr<Runtime> rt, const py::buffer& buffer, bool verify) {
            // Holding the buffer *view* (not just the object) pins the memory:
            // a bytearray cannot be resized while a view is exported. The
            // last user may be a worker thread, so the view is released
            // under the GIL.
            auto* view = new py::buffer_info(buffer.request());
            if (view->ndim != 1 || (view->itemsize != 1 && view->strides[0] != view->itemsize)) {
              delete view;
              throw Error(ErrorKind::kModel, "model buffer must be 1-D contiguous bytes");
            }
            const void* data = view->ptr;
            const size_t size = static_cast<size_t>(view->size * view->itemsize);
            auto release = [view] {
              if (!Py_IsInitialized()) return;  // interpreter gone: leak, don't crash
              py::gil_scoped_acquire gil;
              delete view;
            };
            py::gil_scoped_release unlock;
            return Model::Load(rt, WrapMemory(data, size, release), verify);
          },
          py::arg("runtime"), py::arg("buffer"), py::arg("verify") = true)
      .def_property_readonly("description", &Model::description)
      .def_property_readonly("size", [](const Model& m) { return m.bytes()->size(); })
      .def_property_readonly("zero_copy", [](const Model& m) { return m.bytes()->zero_copy(); })
      .def_property_readonly("verified", &Model::verified)
      .def_property_readonly("bytes", [](const Model& m) { return ModelBytes{m.bytes()}; })
      .def_property_readonly("runtime", &Model::runtime)
      .def_property_readonly("signatures",
                             [](const Model& m) {
                               py::list out;
                               for (const auto& s : m.signatures()) {
                                 py::dict d;
                                 d["key"] = s.key;
                                 d["inputs"] = TensorList(s.inputs);
                                 d["outputs"] = TensorList(s.outputs);
                                 out.append(d);
                               }
                               return out;
                             })
      .def_property_readonly("summary", [](const Model& m) {
        const ModelSummary& s = m.summary();
        py::dict d;
        d["schema_version"] = s.schema_version;
        d["description"] = s.description;
        d["num_subgraphs"] = s.num_subgraphs;
        d["num_tensors"] = s.num_tensors;
        d["num_buffers"] = s.num_buffers;
        d["num_operators"] = s.num_operators;
        d["op_counts"] = s.op_counts;
        d["custom_ops"] = s.custom_ops;
        d["signature_keys"] = s.signature_keys;
        d["has_sparse_tensors"] = s.has_sparse_tensors;
        d["constant_bytes"] = s.constant_bytes;
        return d;
      });

  m.def("verify_bytes", [](const py::buffer& buffer) {
    py::buffer_info info = buffer.request();
    const auto* data = static_cast<const uint8_t*>(info.ptr);
    const size_t size = static_cast<size_t>(info.size * info.itemsize);
    py::gil_scoped_release release;
    VerifyTflite(data, size);
  });

  py::class_<Session>(m, "Session")
      .def(py::init([](std::shared_ptr<Model> model, std::vector<std::string> accelerators,
                       int threads, std::string weight_cache, size_t signature,
                       bool allow_cpu_fallback, PluginOptionMap plugin_options,
                       std::string crash_mark_dir) {
             py::gil_scoped_release release;
             return std::make_unique<Session>(std::move(model), std::move(accelerators), threads,
                                              std::move(weight_cache), signature,
                                              allow_cpu_fallback, std::move(plugin_options),
                                              std::move(crash_mark_dir));
           }),
           py::arg("model"), py::arg("accelerators") = std::vector<std::string>{"cpu"},
           py::arg("threads") = 0, py::arg("weight_cache") = "", py::arg("signature") = 0,
           py::arg("allow_cpu_fallback") = true, py::arg("plugin_options") = PluginOptionMap{},
           py::arg("crash_mark_dir") = "")
      .def("run", &Session::Run, py::arg("inputs"), py::arg("outputs") = py::none())
      .def("bench_loop", &Session::BenchLoop, py::arg("n"), py::arg("copy") = true)
      .def("resize", &Session::Resize)
      .def(
          "input_view",
          [](py::object self, size_t i) {
            Session& s = self.cast<Session&>();
            const TensorInfo& t = s.instance_->inputs().at(i);
            // The view's base is the session, which owns the buffer.
            return py::array(DtypeOf(t.element_type), Dims(t.shape), s.instance_->input_data(i),
                             self);
          })
      .def_property_readonly("inputs", [](Session& s) { return TensorList(s.instance_->inputs()); })
      .def_property_readonly("outputs",
                             [](Session& s) { return TensorList(s.instance_->outputs()); })
      .def_property_readonly("accelerator", [](Session& s) { return s.accelerator_; })
      .def_property_readonly("fully_accelerated",
                             [](Session& s) { return s.instance_->fully_accelerated(); })
      .def_property_readonly("events", [](Session& s) { return EventList(s.events_.Snapshot()); })
      .def_property_readonly("delegation", [](Session& s) { return DelegationDict(*s.instance_); })
      .def_property_readonly("model", [](Session& s) { return s.instance_->model(); });

  py::class_<Pool, std::shared_ptr<Pool>>(m, "Pool")
      .def(py::init([](std::shared_ptr<Model> model, size_t workers, size_t queue_size,
                       const std::string& policy, std::vector<std::string> accelerators,
                       int threads, std::string weight_cache, size_t signature,
                       int retire_after_failures, PluginOptionMap plugin_options,
                       std::string crash_mark_dir) {
             PoolOptions o;
             o.compile.plugin_options = std::move(plugin_options);
             o.compile.crash_mark_dir = std::move(crash_mark_dir);
             o.workers = workers;
             o.queue_capacity = queue_size;
             o.policy = ParseQueuePolicy(policy);
             o.accelerators = std::move(accelerators);
             o.compile.num_threads = threads;
             o.compile.weight_cache_path = std::move(weight_cache);
             o.compile.signature = signature;
             o.retire_after_failures = retire_after_failures;
             // Futures are resolved on the pool's delivery thread, a batch per
             // GIL acquisition, so no worker ever waits for the GIL.
             o.deliver_locked = [](const std::function<void()>& deliver) {
               // Once interpreter shutdown began the GIL cannot be taken; the
               // atexit hook closes pools before that, so this only skips
               // callbacks of pools that were never closed.
               if (!Py_IsInitialized() || InterpreterFinalizing()) return;
               try {
                 py::gil_scoped_acquire gil;
                 deliver();
               } catch (abi::__forced_unwind&) {
                 ParkExitingThread();
               }
             };
             py::gil_scoped_release release;
             return std::shared_ptr<Pool>(new Pool(std::move(model), std::move(o)),
                                          PoolDeleter{});
           }),
           py::arg("model"), py::arg("workers") = 1, py::arg("queue_size") = 64,
           py::arg("policy") = "block", py::arg("accelerators") = std::vector<std::string>{"cpu"},
           py::arg("threads") = 1, py::arg("weight_cache") = "", py::arg("signature") = 0,
           py::arg("retire_after_failures") = 3, py::arg("plugin_options") = PluginOptionMap{},
           py::arg("crash_mark_dir") = "")
      .def(
          "run",
          [](Pool& pool, const py::list& inputs, double timeout) {
            py::list outputs = NewOutputs(pool.outputs());
            auto request = BuildRequest(pool, inputs, outputs, timeout);
            bool finished = false;
            WithoutGil([&] {
              pool.Submit(request, timeout);
              finished = request->Wait(timeout, pool.SpinWorthwhile());
            });
            if (!finished || !request->ok()) ThrowRequestError(*request);
            return outputs;
          },
          py::arg("inputs"), py::arg("timeout") = -1.0)
      .def(
          "submit",
          [](Pool& pool, const py::list& inputs, const py::list& outputs, py::object callback,
             double timeout, double block_timeout) {
            auto request = BuildRequest(pool, inputs, outputs, timeout);
            auto* pending = new PendingCall{inputs, outputs, std::move(callback)};
            // Runs on the pool's delivery thread with the GIL held.
            request->on_done = [pending](Request& r) {
              std::unique_ptr<PendingCall> owned(pending);
              try {
                owned->callback(r.ok(), ErrorKindName(r.error_kind()), r.error(),
                                r.queue_us(), r.run_us());
              } catch (py::error_already_set& e) {
                e.discard_as_unraisable("edgepipe pool completion callback");
              }
            };
            try {
              WithoutGil([&] { pool.Submit(request, block_timeout); });
            } catch (...) {
              // Never queued, so on_done will not run: free here (GIL held).
              delete pending;
              throw;
            }
          },
          py::arg("inputs"), py::arg("outputs"), py::arg("callback"), py::arg("timeout") = -1.0,
          py::arg("block_timeout") = -1.0)
      .def(
          "close",
          [](Pool& pool, bool drain) { WithoutGil([&] { pool.Close(drain); }); },
          py::arg("drain") = true)
      .def("swap",
           [](Pool& pool, std::shared_ptr<Model> model) {
             py::gil_scoped_release release;
             pool.Swap(std::move(model));
           })
      .def_property_readonly("closed", &Pool::closed)
      .def_property_readonly("model", &Pool::model)
      .def_property_readonly("inputs", [](Pool& p) { return TensorList(p.inputs()); })
      .def_property_readonly("outputs", [](Pool& p) { return TensorList(p.outputs()); })
      .def("events", [](Pool& p) { return EventList(p.Events()); })
      .def("stats", [](Pool& p) {
        PoolStats s;
        {
          py::gil_scoped_release release;
          s = p.Stats();
        }
        py::dict d;
        d["submitted"] = s.submitted;
        d["completed"] = s.completed;
        d["failed"] = s.failed;
        d["dropped"] = s.dropped;
        d["rejected"] = s.rejected;
        d["expired"] = s.expired;
        d["cancelled"] = s.cancelled;
        d["fallback_runs"] = s.fallback_runs;
        d["swaps"] = s.swaps;
        d["callback_errors"] = s.callback_errors;
        d["last_callback_error"] = s.last_callback_error;
        d["queue_depth"] = s.queue_depth;
        d["queue_capacity"] = s.queue_capacity;
        d["busy_workers"] = s.busy_workers;
        d["workers"] = s.workers;
        d["worker_accelerators"] = s.worker_accelerators;
        d["worker_runs"] = s.worker_runs;
        d["queue_wait"] = HistogramDict(s.queue_wait);
        d["run_time"] = HistogramDict(s.run_time);
        return d;
      });
  edgepipe::bindings::RegisterProfile(m);
}
