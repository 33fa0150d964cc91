// Binding of the shared-hardware scheduler (cpp/sched/scheduler.h): types only.
// A Pool joins a scheduler through its `scheduler=` and `priority=` arguments.
#include <pybind11/stl.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "bindings.h"
#include "sched/scheduler.h"

namespace edgepipe::bindings {

void RegisterScheduler(py::module_& m) {
  py::class_<Scheduler, std::shared_ptr<Scheduler>>(m, "Scheduler")
      .def(py::init([](int cpu_threads, std::map<std::string, int> accelerators,
                       double aging_seconds, double reserve_seconds) {
             Scheduler::Options o;
             o.cpu_threads = cpu_threads;
             o.accelerators = std::move(accelerators);
             o.aging_step = std::chrono::microseconds(static_cast<int64_t>(aging_seconds * 1e6));
             o.reserve_window =
                 std::chrono::microseconds(static_cast<int64_t>(reserve_seconds * 1e6));
             return Scheduler::Create(std::move(o));
           }),
           py::arg("cpu_threads"), py::arg("accelerators"), py::arg("aging_seconds"),
           py::arg("reserve_seconds") = 1.0)
      .def(
          "check_fits",
          [](const Scheduler& s, int cpu_threads, const std::string& accelerator) {
            s.CheckFits({cpu_threads, accelerator});
          },
          py::arg("cpu_threads"), py::arg("accelerator"))
      .def("close", &Scheduler::Close, py::call_guard<py::gil_scoped_release>())
      .def("stats", [](const Scheduler& s) {
        Scheduler::Stats st = s.GetStats();
        py::dict d, accel, by_priority, reserved;
        for (const auto& [name, slots] : st.accelerators) {
          py::dict a;
          a["slots"] = slots.first;
          a["free"] = slots.second;
          accel[py::str(name)] = a;
        }
        for (const auto& [priority, n] : st.granted_by_priority)
          by_priority[py::int_(priority)] = n;
        for (const auto& [priority, n] : st.reserved_by_priority) reserved[py::int_(priority)] = n;
        d["cpu_threads"] = st.cpu_threads;
        d["cpu_threads_free"] = st.cpu_threads_free;
        d["accelerators"] = accel;
        d["waiting"] = st.waiting;
        d["granted"] = st.granted;
        d["expired"] = st.expired;
        d["aged"] = st.aged;
        d["granted_by_priority"] = by_priority;
        d["borrowed"] = st.borrowed;
        d["held_back"] = st.held_back;
        d["reserved_by_priority"] = reserved;
        return d;
      });
}

}  // namespace edgepipe::bindings
