// Shared declarations of the _core binding, split by concern:
//   module.cc       the module: registers everything below, in layer order
//   errors.cc       error kinds -> edgepipe.errors classes (translator, tables)
//   gil.h           releasing and retaking the GIL safely (also at exit)
//   conversions.cc  numpy/dict <-> C++ structs, argument checks
//   runtime.cc      Runtime, accelerator probes, the core's tables
//   model.cc        Model, its bytes, verify_bytes
//   session.cc      Session (a thin wrapper of cpp/session)
//   scheduler.cc    Scheduler (a thin wrapper of cpp/sched), before Pool, which takes one
//   pool.cc         Pool (a thin wrapper of cpp/pool)
// Policy, names and UX live in the Python package; these files only convert
// types, release the GIL around anything that can block or compute, and map
// error kinds to exception classes.
#pragma once

#include <pybind11/pybind11.h>

namespace edgepipe::bindings {

namespace py = pybind11;

void RegisterErrors(py::module_& m);
void RegisterRuntime(py::module_& m);
void RegisterModel(py::module_& m);
void RegisterSession(py::module_& m);
void RegisterScheduler(py::module_& m);
void RegisterPool(py::module_& m);

}  // namespace edgepipe::bindings
