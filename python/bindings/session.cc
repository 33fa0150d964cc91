// Session: a thin wrapper of cpp/session/session.h. Checks the caller's
// arrays under the session's guard (so shapes cannot change in between),
// then runs with the GIL released.
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.h"
#include "conversions.h"
#include "gil.h"
#include "session/session.h"

namespace edgepipe::bindings {
namespace {

py::list Run(Session& session, const py::list& inputs, const py::object& outputs,
             const py::object& output_indices) {
  std::optional<Session::Guard> guard;
  WithoutGil([&] { guard.emplace(session); });
  Instance& inst = guard->instance();
  std::vector<InputRef> refs;
  std::vector<const void*> src;
  if (!inputs.empty()) {
    refs = CheckedInputs(inputs, inst.inputs());
    for (const auto& r : refs) src.push_back(r.data);
  }
  const std::vector<size_t> selected = OutputSelection(output_indices, inst.outputs().size());
  py::list result;
  if (outputs.is_none()) {
    for (size_t i : selected) result.append(NewOutput(inst.outputs()[i]));
  } else {
    result = py::list(outputs);
    if (result.size() != selected.size()) {
      throw Error(ErrorKind::kInput, "out must hold " + std::to_string(selected.size()) +
                                         " arrays, got " + std::to_string(result.size()));
    }
  }
  std::vector<void*> dst(inst.outputs().size(), nullptr);
  for (size_t k = 0; k < selected.size(); ++k) {
    dst[selected[k]] = CheckedOutput(result[k], inst.outputs()[selected[k]]);
  }
  // Released through WithoutGil: a daemon thread still in a long run at
  // interpreter exit is parked instead of crashing the exiting process.
  WithoutGil([&] { session.Run(*guard, src, dst); });
  return result;
}

}  // namespace

void RegisterSession(py::module_& m) {
  py::class_<Session>(m, "Session")
      .def(py::init([](std::shared_ptr<Model> model, std::vector<std::string> accelerators,
                       int threads, std::string weight_cache, size_t signature,
                       bool allow_cpu_fallback, PluginOptionMap plugin_options,
                       std::string crash_mark_dir) {
             SessionOptions options;
             options.accelerators = std::move(accelerators);
             options.allow_cpu_fallback = allow_cpu_fallback;
             options.compile.plugin_options = std::move(plugin_options);
             options.compile.crash_mark_dir = std::move(crash_mark_dir);
             options.compile.num_threads = threads;
             options.compile.weight_cache_path = std::move(weight_cache);
             options.compile.signature = signature;
             py::gil_scoped_release release;
             return std::make_unique<Session>(std::move(model), std::move(options));
           }),
           py::arg("model"), py::arg("accelerators") = std::vector<std::string>{"cpu"},
           py::arg("threads") = 0, py::arg("weight_cache") = "", py::arg("signature") = 0,
           py::arg("allow_cpu_fallback") = true, py::arg("plugin_options") = PluginOptionMap{},
           py::arg("crash_mark_dir") = "")
      .def("run", &Run, py::arg("inputs"), py::arg("outputs") = py::none(),
           py::arg("output_indices") = py::none(),
           "Runs once. `output_indices` (None: all) selects the outputs returned, in that "
           "order; `outputs`, when given, holds one preallocated array per returned output.")
      .def(
          "bench_loop",
          [](Session& s, size_t n, bool copy) {
            py::gil_scoped_release release;
            return s.BenchLoop(n, copy);
          },
          py::arg("n"), py::arg("copy") = true)
      .def("resize",
           [](Session& s, size_t index, const std::vector<int32_t>& shape) {
             py::gil_scoped_release release;
             s.Resize(index, shape);
           })
      .def("input_view",
           [](py::object self, size_t i) {
             Session& s = self.cast<Session&>();
             const TensorInfo t = s.inputs().at(i);
             // The view's base is the session, which owns the buffer.
             return py::array(DtypeOf(t.element_type), Dims(t.shape), s.instance()->input_data(i),
                              self);
           })
      .def_property_readonly("inputs", [](Session& s) { return TensorList(s.inputs()); })
      .def_property_readonly("outputs", [](Session& s) { return TensorList(s.outputs()); })
      .def_property_readonly("accelerator", &Session::accelerator)
      .def_property_readonly("fully_accelerated",
                             [](Session& s) { return s.instance()->fully_accelerated(); })
      .def_property_readonly("events", [](Session& s) { return EventList(s.events()); })
      .def_property_readonly("delegation", [](Session& s) { return DelegationDict(*s.instance()); })
      .def_property_readonly("model", [](Session& s) { return s.instance()->model(); });
}

}  // namespace edgepipe::bindings
