// Pool: a thin wrapper of cpp/pool/pool.h. Inputs are checked and copied
// into the request at submit (the caller may change its arrays right after);
// completion callbacks run on the pool's delivery thread with the GIL.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bindings.h"
#include "conversions.h"
#include "gil.h"
#include "pool/pool.h"

namespace edgepipe::bindings {
namespace {

// Heap-held Python objects of a submitted request, released under the GIL
// (inside on_done, on the delivery thread).
struct PendingCall {
  py::list outputs;
  py::object callback;
};

// A request for `pool` from checked caller arrays. `outputs` holds one array
// per selected output. Inputs are copied into the request (GIL held).
// `refs` keeps the temporary contiguous copies of non-contiguous inputs that
// the request points at: it must outlive the request's use of its inputs
// (or OwnInputs must copy them first).
std::shared_ptr<Request> BuildRequest(Pool& pool, const py::list& inputs, const py::list& outputs,
                                      const std::vector<size_t>& selected, double timeout,
                                      std::vector<InputRef>* refs_out) {
  const auto& out_info = pool.outputs();
  std::vector<InputRef>& refs = *refs_out;
  refs = CheckedInputs(inputs, pool.inputs());
  if (outputs.size() != selected.size()) {
    throw Error(ErrorKind::kInput, "outputs must hold " + std::to_string(selected.size()) +
                                       " arrays, got " + std::to_string(outputs.size()));
  }
  auto request = std::make_shared<Request>();
  for (const auto& r : refs) request->inputs.push_back(r.data);
  request->outputs.assign(out_info.size(), nullptr);
  for (size_t k = 0; k < selected.size(); ++k) {
    request->outputs[selected[k]] = CheckedOutput(outputs[k], out_info[selected[k]]);
  }
  request->wait_limit = SecondsToDuration(timeout, "timeout");
  return request;
}

std::vector<size_t> InputBytes(const Pool& pool) {
  std::vector<size_t> bytes;
  for (const auto& t : pool.inputs()) bytes.push_back(t.byte_size());
  return bytes;
}

[[noreturn]] void ThrowRequestError(const Request& r) { throw Error(r.error_kind(), r.error()); }

// Destroys a pool when Python drops its last reference. ~Pool joins its
// workers and waits (bounded) for its delivery thread, which takes the GIL
// to resolve futures: destroying with the GIL held deadlocks, so it is
// released first. When the last reference goes inside a completion callback
// (on the delivery thread), the pool cannot join the thread it runs on, and
// that thread returns into the pool's loop afterwards: the pool is destroyed
// on a helper thread instead.
struct PoolDeleter {
  void operator()(Pool* pool) const {
    if (pool->IsPoolThread()) {
      std::thread([pool] { delete pool; }).detach();
      return;
    }
    if (Py_IsInitialized() && PyGILState_Check()) {
      py::gil_scoped_release release;
      delete pool;
    } else {
      delete pool;
    }
  }
};

}  // namespace

void RegisterPool(py::module_& m) {
  py::class_<Pool, std::shared_ptr<Pool>>(m, "Pool")
      .def(
          py::init([](std::shared_ptr<Model> model, size_t workers, size_t queue_size,
                      const std::string& policy, std::vector<std::string> accelerators, int threads,
                      std::string weight_cache, size_t signature, int retire_after_failures,
                      PluginOptionMap plugin_options, std::string crash_mark_dir,
                      double callback_wait, std::shared_ptr<Scheduler> scheduler, int priority,
                      size_t max_batch, double max_batch_delay, bool caller_runs) {
            PoolOptions o;
            o.max_batch = max_batch;
            o.max_batch_delay_seconds = max_batch_delay;
            o.scheduler = std::move(scheduler);
            o.priority = priority;
            o.caller_runs = caller_runs;
            if (o.scheduler) {
              o.scheduler->CheckFits({threads > 0 ? threads : 1, ""});
            }
            o.compile.plugin_options = std::move(plugin_options);
            o.compile.crash_mark_dir = std::move(crash_mark_dir);
            o.workers = workers;
            o.queue_capacity = queue_size;
            o.policy = ParseQueuePolicy(policy);
            o.accelerators = std::move(accelerators);
            o.compile.num_threads = threads;
            o.compile.weight_cache_path = std::move(weight_cache);
            o.compile.signature = signature;
            o.retire_after_failures = retire_after_failures;
            o.callback_wait_seconds = CheckedSeconds(callback_wait, "callback_wait");
            // Futures are resolved on the pool's delivery thread, a batch per
            // GIL acquisition, so no worker ever waits for the GIL.
            o.deliver_locked = [](const std::function<void()>& deliver) {
              // Once interpreter shutdown began the GIL cannot be taken; the
              // atexit hook closes pools before that, so this only skips
              // callbacks of pools that were never closed.
              if (!Py_IsInitialized() || InterpreterFinalizing()) return;
              try {
                py::gil_scoped_acquire gil;
                deliver();
              } catch (abi::__forced_unwind&) {
                ParkExitingThread();
              }
            };
            py::gil_scoped_release release;
            return std::shared_ptr<Pool>(new Pool(std::move(model), std::move(o)), PoolDeleter{});
          }),
          py::arg("model"), py::arg("workers") = 1, py::arg("queue_size") = 64,
          py::arg("policy") = "block", py::arg("accelerators") = std::vector<std::string>{"cpu"},
          py::arg("threads") = 1, py::arg("weight_cache") = "", py::arg("signature") = 0,
          py::arg("retire_after_failures") = 3, py::arg("plugin_options") = PluginOptionMap{},
          py::arg("crash_mark_dir") = "", py::arg("callback_wait") = 5.0,
          py::arg("scheduler") = nullptr, py::arg("priority") = 0, py::arg("max_batch") = 1,
          py::arg("max_batch_delay") = 0.0, py::arg("caller_runs") = true)
      .def(
          "run",
          [](Pool& pool, const py::list& inputs, double timeout, const py::object& output_indices) {
            const auto selected = OutputSelection(output_indices, pool.outputs().size());
            py::list outputs;
            for (size_t i : selected) outputs.append(NewOutput(pool.outputs()[i]));
            std::vector<InputRef> refs;  // alive until the run is over
            auto request = BuildRequest(pool, inputs, outputs, selected, timeout, &refs);
            // The caller waits, so its arrays are read in place (no copy at
            // submit); copies made for non-contiguous inputs live in `refs`.
            // Without the GIL: a direct run (caller_runs) happens right here.
            WithoutGil([&] { pool.Run(request, timeout); });
            if (!request->ok()) ThrowRequestError(*request);
            return outputs;
          },
          py::arg("inputs"), py::arg("timeout") = -1.0, py::arg("output_indices") = py::none(),
          "Runs one request and waits. `timeout` (< 0: none) bounds the wait for a free worker "
          "(0:\n"
          "only a worker free now); `output_indices` selects the outputs returned. With\n"
          "caller_runs, an idle CPU worker's instance runs it on this thread when nothing is "
          "queued.")
      .def(
          "submit",
          [](Pool& pool, const py::list& inputs, const py::list& outputs, py::object callback,
             double timeout, double block_timeout, const py::object& output_indices) {
            const auto selected = OutputSelection(output_indices, pool.outputs().size());
            std::vector<InputRef> refs;
            auto request = BuildRequest(pool, inputs, outputs, selected, timeout, &refs);
            CheckedSeconds(block_timeout, "block_timeout");
            // Copy at submit: the caller may reuse or change its arrays as
            // soon as submit returns.
            request->OwnInputs(InputBytes(pool));
            auto* pending = new PendingCall{outputs, std::move(callback)};
            // Runs on the pool's delivery thread with the GIL held.
            request->on_done = [pending](Request& r) {
              std::unique_ptr<PendingCall> owned(pending);
              try {
                owned->callback(r.ok(), ErrorKindName(r.error_kind()), r.error(), r.queue_us(),
                                r.run_us());
              } catch (py::error_already_set& e) {
                e.discard_as_unraisable("edgepipe pool completion callback");
              }
            };
            uint64_t ticket = 0;
            try {
              WithoutGil([&] { ticket = pool.Submit(request, block_timeout); });
            } catch (...) {
              // Never queued, so on_done will not run: free here (GIL held).
              delete pending;
              throw;
            }
            return ticket;
          },
          py::arg("inputs"), py::arg("outputs"), py::arg("callback"), py::arg("timeout") = -1.0,
          py::arg("block_timeout") = -1.0, py::arg("output_indices") = py::none(),
          "Queues a request; returns its ticket for cancel(). The inputs are copied now. "
          "`outputs`\n"
          "holds one array per selected output (all, or `output_indices`).")
      .def(
          "cancel",
          [](Pool& pool, uint64_t ticket) {
            bool removed = false;
            WithoutGil([&] { removed = pool.Cancel(ticket); });
            return removed;
          },
          py::arg("ticket"),
          "Removes a request that has not started: True, and it never runs (its callback runs "
          "once\n"
          "with kind 'cancelled'). False when it already started or ended.")
      .def(
          "close", [](Pool& pool, bool drain) { WithoutGil([&] { pool.Close(drain); }); },
          py::arg("drain") = true,
          "Stops taking requests; joins the workers and waits for completion callbacks up to\n"
          "`callback_wait` seconds (the pool's option), so a blocked callback cannot hang it.")
      .def(
          "swap",
          [](Pool& pool, std::shared_ptr<Model> model) {
            py::gil_scoped_release release;
            pool.Swap(std::move(model));
          },
          py::arg("model"))
      .def_property_readonly("closed", &Pool::closed)
      .def_property_readonly("model", &Pool::model)
      .def_property_readonly("inputs", [](Pool& p) { return TensorList(p.inputs()); })
      .def_property_readonly("outputs", [](Pool& p) { return TensorList(p.outputs()); })
      .def("events", [](Pool& p) { return EventList(p.Events()); })
      .def("stats", [](Pool& p) {
        PoolStats s;
        {
          py::gil_scoped_release release;
          s = p.Stats();
        }
        py::dict d;
        d["submitted"] = s.submitted;
        d["completed"] = s.completed;
        d["failed"] = s.failed;
        d["dropped"] = s.dropped;
        d["rejected"] = s.rejected;
        d["expired"] = s.expired;
        d["cancelled"] = s.cancelled;
        d["fallback_runs"] = s.fallback_runs;
        d["swaps"] = s.swaps;
        d["callback_errors"] = s.callback_errors;
        d["caller_runs"] = s.caller_runs;
        d["last_callback_error"] = s.last_callback_error;
        d["queue_depth"] = s.queue_depth;
        d["queue_capacity"] = s.queue_capacity;
        d["busy_workers"] = s.busy_workers;
        d["workers"] = s.workers;
        d["worker_accelerators"] = s.worker_accelerators;
        d["worker_runs"] = s.worker_runs;
        d["max_batch"] = s.max_batch;
        d["batches"] = s.batches;
        d["batched_requests"] = s.batched_requests;
        d["queue_wait"] = HistogramDict(s.queue_wait);
        d["run_time"] = HistogramDict(s.run_time);
        return d;
      });
}

}  // namespace edgepipe::bindings
