#include "conversions.h"

#include <pybind11/stl.h>

#include <cmath>
#include <unordered_map>

#include "delegate/plugin.h"

namespace edgepipe::bindings {
namespace {

py::dtype MakeDtype(int element_type) {
  if (ElementSize(element_type) == 0) {
    throw Error(ErrorKind::kModel, std::string("element type ") + ElementTypeName(element_type) +
                                       " has no numpy equivalent");
  }
  // Every element type with a host size has a numpy dtype of the same name
  // (runtime/element_types.h).
  return py::dtype(ElementTypeName(element_type));
}

std::string ShapeOf(const py::array& arr) {
  std::string got = "(";
  for (py::ssize_t d = 0; d < arr.ndim(); ++d) {
    got += (d ? ", " : "") + std::to_string(arr.shape(d));
  }
  return got + (arr.ndim() == 1 ? ",)" : ")");
}

std::string ShapeOf(const std::vector<int32_t>& shape) {
  std::string out = "(";
  for (size_t d = 0; d < shape.size(); ++d) out += (d ? ", " : "") + std::to_string(shape[d]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

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
    case litert::kQuantizationBlockWise: q["kind"] = "block_wise"; break;
    default: q["kind"] = "none";
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

InputRef CheckedInput(const py::handle& obj, const TensorInfo& t, size_t index) {
  if (!py::isinstance<py::array>(obj)) {
    throw Error(ErrorKind::kInput, "input " + std::to_string(index) + " ('" + t.name +
                                       "') must be a numpy array, got " +
                                       std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  py::dtype want = DtypeOf(t.element_type);
  if (!arr.dtype().is(want) && !arr.dtype().equal(want)) {
    throw Error(ErrorKind::kInput, "input '" + t.name + "' must be " + std::string(py::str(want)) +
                                       ", got " + std::string(py::str(arr.dtype())) +
                                       "; convert it with .astype(" + std::string(py::str(want)) +
                                       ") if that is what you mean");
  }
  bool same = static_cast<size_t>(arr.ndim()) == t.shape.size();
  for (size_t d = 0; same && d < t.shape.size(); ++d) {
    same = arr.shape(static_cast<py::ssize_t>(d)) == t.shape[d];
  }
  if (!same) {
    throw Error(ErrorKind::kInput, "input '" + t.name + "' must have shape " + ShapeOf(t.shape) +
                                       ", got " + ShapeOf(arr));
  }
  InputRef ref;
  if (arr.flags() & py::array::c_style) {
    ref.data = arr.data();
  } else {
    // Strided views (crops, channel flips) are copied, as numpy would for
    // np.ascontiguousarray: same values, one extra copy of this input.
    py::array copy = py::array::ensure(arr, py::array::c_style);
    if (!copy) throw py::error_already_set();
    ref.data = copy.data();
    ref.keep = std::move(copy);
  }
  return ref;
}

std::vector<InputRef> CheckedInputs(const py::list& inputs, const std::vector<TensorInfo>& info) {
  if (inputs.size() != info.size()) {
    throw Error(ErrorKind::kInput, "the model takes " + std::to_string(info.size()) +
                                       " inputs, got " + std::to_string(inputs.size()));
  }
  std::vector<InputRef> refs;
  refs.reserve(info.size());
  for (size_t i = 0; i < info.size(); ++i) refs.push_back(CheckedInput(inputs[i], info[i], i));
  return refs;
}

void* CheckedOutput(const py::handle& obj, const TensorInfo& t) {
  if (!py::isinstance<py::array>(obj)) {
    throw Error(ErrorKind::kInput, "out['" + t.name + "'] must be a numpy array");
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(DtypeOf(t.element_type)) ||
      static_cast<size_t>(arr.nbytes()) != t.byte_size() || !(arr.flags() & py::array::c_style) ||
      !arr.writeable()) {
    throw Error(ErrorKind::kInput, "out['" + t.name + "'] must be a writable C-contiguous " +
                                       std::string(py::str(DtypeOf(t.element_type))) +
                                       " array of " + std::to_string(t.byte_size()) + " bytes");
  }
  return arr.mutable_data();
}

py::array NewOutput(const TensorInfo& t) {
  return py::array(DtypeOf(t.element_type), Dims(t.shape));
}

std::vector<size_t> OutputSelection(const py::object& indices, size_t num_outputs) {
  std::vector<size_t> out;
  if (indices.is_none()) {
    for (size_t i = 0; i < num_outputs; ++i) out.push_back(i);
    return out;
  }
  for (const py::handle& item : indices) {
    if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item)) {
      throw Error(ErrorKind::kInput, "output indices must be integers");
    }
    const long long i = item.cast<long long>();
    if (i < 0 || static_cast<size_t>(i) >= num_outputs) {
      throw Error(ErrorKind::kInput, "output index " + std::to_string(i) +
                                         " out of range: the model has " +
                                         std::to_string(num_outputs) + " outputs");
    }
    for (size_t seen : out) {
      if (seen == static_cast<size_t>(i)) {
        throw Error(ErrorKind::kInput, "output index " + std::to_string(i) + " given twice");
      }
    }
    out.push_back(static_cast<size_t>(i));
  }
  if (out.empty()) throw Error(ErrorKind::kInput, "select at least one output");
  return out;
}

double CheckedSeconds(double seconds, const char* what) {
  if (std::isnan(seconds)) {
    throw Error(ErrorKind::kInput, std::string(what) +
                                       " must be a number of seconds (or None to wait forever), "
                                       "got nan");
  }
  return seconds;
}

}  // namespace edgepipe::bindings
