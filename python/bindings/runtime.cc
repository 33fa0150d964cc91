// Runtime, accelerator probes and the core's fact tables (element types, op
// names) for the Python layer to derive its own from.
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "accel/fallback.h"
#include "bindings.h"
#include "conversions.h"
#include "delegate/environment.h"
#include "delegate/plugin.h"
#include "model/op_names.h"
#include "runtime/element_types.h"
#include "runtime/runtime.h"

namespace edgepipe::bindings {
namespace {
// The name of builtin operator `code`, or null outside the generated table.
const char* OpName(long long code) {
  if (code < 0 || code > MaxBuiltinOpCode()) return nullptr;
  return BuiltinOpName(static_cast<int>(code));
}
}  // namespace

void RegisterRuntime(py::module_& m) {
  // Element type name -> numpy dtype name (None: no numpy equivalent).
  auto element_types = [] {
    py::dict d;
#define EDGEPIPE_ELEMENT_ENTRY(e, name, size) \
  d[name] = (size) > 0 ? py::object(py::str(name)) : py::object(py::none());
    EDGEPIPE_ELEMENT_TYPES(EDGEPIPE_ELEMENT_ENTRY)
#undef EDGEPIPE_ELEMENT_ENTRY
    return d;
  };
  m.attr("DTYPES") = element_types();
  m.def("element_types", element_types,
        "Element type name -> numpy dtype name, None where numpy has none (a new dict).");
  auto op_names = [] {
    py::list out;
    for (int code = 0; code <= MaxBuiltinOpCode(); ++code) {
      const char* name = BuiltinOpName(code);
      out.append(name ? py::object(py::str(name)) : py::object(py::none()));
    }
    return out;
  };
  m.attr("OP_NAMES") = py::tuple(op_names());
  m.def("op_names", op_names,
        "Builtin operator code -> name (None marks a gap), from the generated table.");
  m.def(
      "builtin_op_name",
      [](long long code) -> py::object {
        const char* name = OpName(code);
        return name ? py::object(py::str(name)) : py::object(py::none());
      },
      py::arg("code"), "The builtin operator's name, or None for an unknown code.");

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
             std::vector<AcceleratorEntry> entries;
             {
               py::gil_scoped_release release;
               entries = RegisteredAccelerators(rt);
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
             return DelegatePluginsSupported(rt);
           })
      .def_property_readonly("dispatch_library_dir", &Runtime::dispatch_library_dir);
}

// After RegisterModel: the probes take a Model.
void RegisterAcceleratorProbes(py::module_& m) {
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
  m.def(
      "check_plugin",
      [](const std::string& path) {
        py::gil_scoped_release release;
        try {
          PluginLibrary::Load(path);
          return std::string();
        } catch (const AcceleratorError& e) {
          return std::string(e.what());
        }
      },
      py::arg("path"));
}

}  // namespace edgepipe::bindings
