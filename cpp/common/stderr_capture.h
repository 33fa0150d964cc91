// Capture of the process's stderr (fd 2) around a runtime call whose only
// report is a log line: LiteRT's GPU/NPU errors ("No adapters found") and the
// TFLite logger's INFO lines exist only as text written to fd 2.
#pragma once

#include <mutex>
#include <string>

namespace edgepipe {

// Redirects fd 2 into a temporary file while alive, then restores it and
// writes back to the real stderr what the caller's Echo asks for. One at a
// time process-wide, because fd 2 is process-global: the runtime's GPU/NPU
// errors ("No adapters found") exist only as log lines, and this is the one
// way to put them into a fallback event; the TFLite logger (not exported by
// libLiteRt.so, so its level cannot be set) prints an INFO line on the first
// CPU compile, which is how it is kept off a user's terminal.
class StderrCapture {
 public:
  explicit StderrCapture(bool enabled);
  ~StderrCapture();
  // What Finish writes back to the real stderr: everything (nothing lost,
  // only delayed), nothing (the caller keeps the text, e.g. in an event), or
  // every line except the TFLite logger's "INFO: " lines.
  enum class Echo { kAll, kNone, kAllButInfo };
  // Stops capturing (idempotent) and returns the captured text.
  std::string Finish(Echo echo = Echo::kAll);
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  int saved_fd_ = -1;
  int file_fd_ = -1;
  std::string text_;
};

// Whether compiles on non-CPU accelerators capture stderr
// (EDGEPIPE_CAPTURE_ACCELERATOR_LOG, default on; "0" turns it off).
bool CaptureAcceleratorLogDefault();

}  // namespace edgepipe
