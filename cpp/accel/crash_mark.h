// Crash marks around the first use of a non-CPU accelerator (see
// python/edgepipe/accel/crash.py, which reads them back).
#pragma once

#include <string>

namespace edgepipe {

// A crash mark: a file that exists only while an accelerator is being
// initialised, compiled and run for the first time. A process killed in
// between leaves it behind, and the next start (python/edgepipe/accel/crash.py)
// turns it into a denylist entry, like TFLite's mini-benchmark does.
class CrashMark {
 public:
  CrashMark(const std::string& dir, const std::string& accelerator, const std::string& model);
  ~CrashMark();
  CrashMark(const CrashMark&) = delete;
  CrashMark& operator=(const CrashMark&) = delete;

 private:
  std::string path_;
};

}  // namespace edgepipe
