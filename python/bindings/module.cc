// The _core extension module: one registration call per concern, in the
// order of the layers (a class is registered before those that return it).
#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "edgepipe's compiled core (use the edgepipe package, not this module)";
  using namespace edgepipe::bindings;
  RegisterErrors(m);
  RegisterRuntime(m);
  RegisterModel(m);
  RegisterSession(m);
  RegisterScheduler(m);
  RegisterPool(m);
}
