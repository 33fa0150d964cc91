// Releasing and retaking the GIL, safely even while the interpreter exits.
#pragma once

#include <pybind11/pybind11.h>

#include <cxxabi.h>

#include <chrono>
#include <exception>
#include <thread>

namespace edgepipe::bindings {

// At interpreter exit, a daemon thread that takes the GIL back is ended by
// the interpreter with pthread_exit. Its forced unwind would run destructors
// of Python objects (a request's arrays) without the GIL, or leave a noexcept
// destructor such as ~gil_scoped_release (std::terminate): both crash the
// exiting process. Such a thread is parked instead; the process is ending.
[[noreturn]] inline void ParkExitingThread() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

inline bool InterpreterFinalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// Runs fn with the GIL released, for calls that can block for long (waiting
// on a pool, a run), taking the GIL back safely even during interpreter exit.
template <class F>
void WithoutGil(F&& fn) {
  PyThreadState* state = PyEval_SaveThread();
  std::exception_ptr error;
  try {
    fn();
  } catch (abi::__forced_unwind&) {
    ParkExitingThread();
  } catch (...) {
    error = std::current_exception();
  }
  try {
    PyEval_RestoreThread(state);
  } catch (abi::__forced_unwind&) {
    ParkExitingThread();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace edgepipe::bindings
