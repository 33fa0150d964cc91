// Error kinds of the core (cpp/common/error.h) as edgepipe.errors classes:
// the exception translator and the table the Python layer derives from.
#include <pybind11/stl.h>

#include <string>

#include "bindings.h"
#include "common/error.h"

namespace edgepipe::bindings {
namespace {

py::object g_errors;  // the edgepipe.errors module, kept for the translator

constexpr ErrorKind kAllKinds[] = {
#define EDGEPIPE_ERROR_ENUMERATOR(e, name, cls) ErrorKind::e,
    EDGEPIPE_ERROR_KINDS(EDGEPIPE_ERROR_ENUMERATOR)
#undef EDGEPIPE_ERROR_ENUMERATOR
};

}  // namespace

void RegisterErrors(py::module_& m) {
  g_errors = py::module_::import("edgepipe.errors");
  // Leaked on purpose: the translator may run during interpreter teardown.
  g_errors.inc_ref();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      py::object cls = g_errors.attr(ErrorClassName(e.kind()));
      PyErr_SetString(cls.ptr(), e.what());
    }
  });

  // Kind name -> edgepipe.errors class name, in declaration order.
  auto table = [] {
    py::dict kinds;
    for (ErrorKind k : kAllKinds) kinds[ErrorKindName(k)] = ErrorClassName(k);
    return kinds;
  };
  m.attr("ERROR_KINDS") = table();
  m.def("error_kinds", table,
        "Error kind name -> edgepipe.errors class name, in the core's order (a new dict).");
  m.def("error_class_name", [](const std::string& kind) {
    for (ErrorKind k : kAllKinds) {
      if (kind == ErrorKindName(k)) return std::string(ErrorClassName(k));
    }
    return std::string("EdgepipeError");
  });
}

}  // namespace edgepipe::bindings
