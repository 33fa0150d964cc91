// Binding of the per-op profiler (cpp/profile/profiler.h): a separately
// compiled, profiling-enabled instance of a model, run and read from Python
// by edgepipe.profiling. Registered from the module init by one call to
// RegisterProfile, after Model is bound.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "accel/fallback.h"
#include "compiled/instance.h"
#include "model/model.h"
#include "profile/profiler.h"

namespace py = pybind11;

namespace edgepipe::bindings {
namespace {

class ProfiledSession {
 public:
  ProfiledSession(std::shared_ptr<Model> model, const std::vector<std::string>& accelerators,
                  int threads, size_t signature, bool allow_cpu_fallback,
                  std::string runtime_version) {
    CompileOptions options;
    options.num_threads = threads;
    options.signature = signature;
    options.profiling = true;
    auto choice = CompileWithFallback(model, PreferenceList(accelerators, allow_cpu_fallback),
                                      options, &events_);
    instance_ = std::move(choice.instance);
    accelerator_ = std::move(choice.accelerator);
    profiler_ = std::make_unique<profile::Profiler>(instance_, std::move(runtime_version));
  }

  // Copies `inputs` (already ordered and checked by the Python layer: one
  // C-contiguous array per input with the right dtype and shape) into the
  // instance's buffers, then profiles.
  py::dict Profile(const py::list& inputs, size_t runs, size_t warmup) {
    if (runs == 0) throw Error(ErrorKind::kInput, "runs must be at least 1");
    std::lock_guard<std::mutex> lock(mutex_);
    Instance& inst = *instance_;
    if (!inputs.empty()) {
      if (inputs.size() != inst.inputs().size()) {
        throw Error(ErrorKind::kInput, "the model takes " + std::to_string(inst.inputs().size()) +
                                           " inputs, got " + std::to_string(inputs.size()));
      }
      for (size_t i = 0; i < inputs.size(); ++i) {
        auto arr = py::array::ensure(inputs[i], py::array::c_style);
        if (!arr || static_cast<size_t>(arr.nbytes()) != inst.input_bytes(i)) {
          throw Error(ErrorKind::kInput, "input " + std::to_string(i) +
                                             " must be a C-contiguous "
                                             "array of " +
                                             std::to_string(inst.input_bytes(i)) + " bytes");
        }
        std::memcpy(inst.input_data(i), arr.data(), inst.input_bytes(i));
      }
    }
    profile::Result r;
    {
      py::gil_scoped_release release;
      r = profiler_->Run(runs, warmup);
    }
    auto tuples = [](const std::vector<profile::Event>& list) {
      py::list out;
      for (const auto& e : list) {
        out.append(py::make_tuple(e.run, py::str(e.tag), e.type, e.start_us, e.elapsed_us,
                                  e.metadata1, e.metadata2, e.source));
      }
      return out;
    };
    py::list events = tuples(r.events);
    py::dict d;
    d["events"] = events;
    d["event_fields"] = py::make_tuple("run", "tag", "type", "start_us", "elapsed_us", "metadata1",
                                       "metadata2", "source");
    d["wall_us"] = r.wall_us;
    d["plain_wall_us"] = r.plain_wall_us;
    d["run_start_us"] = r.run_start_us;
    d["summary"] = r.summary;
    d["layout"] = r.layout;
    d["layout_note"] = r.layout_note;
    d["dropped"] = tuples(r.dropped);
    return d;
  }

  std::shared_ptr<Instance> instance_;
  std::string accelerator_;
  EventLog events_;
  std::unique_ptr<profile::Profiler> profiler_;
  std::mutex mutex_;
};

}  // namespace

void RegisterProfile(py::module_& m) {
  py::class_<ProfiledSession>(m, "ProfiledSession")
      .def(py::init([](std::shared_ptr<Model> model, std::vector<std::string> accelerators,
                       int threads, size_t signature, bool allow_cpu_fallback,
                       std::string runtime_version) {
             py::gil_scoped_release release;
             return std::make_unique<ProfiledSession>(std::move(model), accelerators, threads,
                                                      signature, allow_cpu_fallback,
                                                      std::move(runtime_version));
           }),
           py::arg("model"), py::arg("accelerators") = std::vector<std::string>{"cpu"},
           py::arg("threads") = 0, py::arg("signature") = 0, py::arg("allow_cpu_fallback") = true,
           py::arg("runtime_version") = "")
      .def("profile", &ProfiledSession::Profile, py::arg("inputs"), py::arg("runs"),
           py::arg("warmup") = 1)
      .def_property_readonly("accelerator", [](ProfiledSession& s) { return s.accelerator_; })
      .def_property_readonly("fallback_count",
                             [](ProfiledSession& s) { return s.events_.Snapshot().size(); });

  // Exposed for tests of the ABI guard: which layout the given bytes (an
  // event array of `count` events, kEventSlack bytes reserved each, guard
  // filled) were written with; "" for none.
  m.def("profiler_event_layout", [](const py::bytes& data, size_t count) {
    std::string s = data;
    if (s.size() < count * profile::kEventSlack) {
      throw Error(ErrorKind::kInput, "need " + std::to_string(count * profile::kEventSlack) +
                                         " bytes for " + std::to_string(count) + " events");
    }
    const auto* layout = profile::DetectLayout(reinterpret_cast<const uint8_t*>(s.data()), count);
    return std::string(layout ? layout->name : "");
  });
  m.attr("PROFILER_EVENT_SLACK") = profile::kEventSlack;
}

}  // namespace edgepipe::bindings
