// Conversions between numpy arrays / Python dicts and the core's structs,
// with the argument checks that make a wrong array a typed InputError.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "accel/fallback.h"
#include "compiled/instance.h"
#include "model/model.h"
#include "pool/histogram.h"

namespace edgepipe::bindings {

namespace py = pybind11;

using PluginOptionMap = std::map<std::string, std::vector<std::pair<std::string, std::string>>>;

// The numpy dtype of an element type (cached; GIL held). Throws kModel for
// types numpy has no equivalent of.
py::dtype DtypeOf(int element_type);
std::vector<py::ssize_t> Dims(const std::vector<int32_t>& shape);

py::dict TensorDict(const TensorInfo& t);
py::list TensorList(const std::vector<TensorInfo>& list);
py::list EventList(const std::vector<FallbackEvent>& events);
py::dict DelegationDict(const Instance& inst);
py::dict HistogramDict(const Histogram::Snapshot& h);

// One checked caller input. No implicit dtype conversion: a silent cast
// would hide a preprocessing bug. A non-contiguous array (a crop, frame[...,
// ::-1]) is copied into a C-contiguous temporary held in `keep`; `data`
// points at C-contiguous bytes of exactly t.byte_size().
struct InputRef {
  const void* data = nullptr;
  py::object keep;  // the temporary copy, if one was made
};
InputRef CheckedInput(const py::handle& obj, const TensorInfo& t, size_t index);
// Checks every input against the contract (count, dtypes, shapes).
std::vector<InputRef> CheckedInputs(const py::list& inputs, const std::vector<TensorInfo>& info);

// A caller-provided output array: writable, C-contiguous, exact dtype/size.
void* CheckedOutput(const py::handle& obj, const TensorInfo& t);
py::array NewOutput(const TensorInfo& t);

// Which outputs a call returns: all (None) or the given indices, checked.
std::vector<size_t> OutputSelection(const py::object& indices, size_t num_outputs);

// A timeout in seconds from Python: < 0 means none; NaN is refused.
double CheckedSeconds(double seconds, const char* what);

}  // namespace edgepipe::bindings
