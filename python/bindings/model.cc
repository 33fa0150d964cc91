// Model: loading from a file or a buffer, its bytes, description and summary.
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "bindings.h"
#include "conversions.h"
#include "model/byte_source.h"
#include "model/model.h"
#include "model/verifier.h"

namespace edgepipe::bindings {
namespace {

// Model bytes exposed through the buffer protocol: memoryview(model.bytes)
// reads the mapping itself, and keeps it alive for as long as it is used.
struct ModelBytes {
  std::shared_ptr<ByteSource> source;
};

}  // namespace

void RegisterModel(py::module_& m) {
  py::class_<ModelBytes>(m, "ModelBytes", py::buffer_protocol()).def_buffer([](ModelBytes& b) {
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
        d["warnings"] = s.warnings;  // fields the verifier ignored (e.g. stale metadata_buffer)
        d["signature_keys"] = s.signature_keys;
        d["has_sparse_tensors"] = s.has_sparse_tensors;
        d["constant_bytes"] = s.constant_bytes;
        return d;
      });

  m.def(
      "verify_bytes",
      [](const py::buffer& buffer) {
        py::buffer_info info = buffer.request();
        const auto* data = static_cast<const uint8_t*>(info.ptr);
        const size_t size = static_cast<size_t>(info.size * info.itemsize);
        py::gil_scoped_release release;
        VerifyTflite(data, size);
      },
      py::arg("buffer"));
}

}  // namespace edgepipe::bindings
