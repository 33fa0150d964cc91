#include "common/stderr_capture.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace edgepipe {

namespace {
std::mutex& CaptureMutex() {
  static auto* m = new std::mutex;
  return *m;
}
}  // namespace

bool CaptureAcceleratorLogDefault() {
  const char* v = std::getenv("EDGEPIPE_CAPTURE_ACCELERATOR_LOG");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

StderrCapture::StderrCapture(bool enabled) {
  if (!enabled) return;
  lock_ = std::unique_lock<std::mutex>(CaptureMutex());
  char name[] = "/tmp/edgepipe-accel-log-XXXXXX";
  file_fd_ = mkstemp(name);
  if (file_fd_ < 0) return;  // no capture, the log goes to stderr as usual
  unlink(name);
  std::fflush(stderr);
  saved_fd_ = dup(2);
  if (saved_fd_ < 0 || dup2(file_fd_, 2) < 0) {
    if (saved_fd_ >= 0) close(saved_fd_);
    close(file_fd_);
    saved_fd_ = file_fd_ = -1;
  }
}

std::string StderrCapture::Finish(Echo echo) {
  if (saved_fd_ >= 0) {
    std::fflush(stderr);
    dup2(saved_fd_, 2);
    close(saved_fd_);
    saved_fd_ = -1;
    off_t size = lseek(file_fd_, 0, SEEK_END);
    if (size > 0) {
      text_.resize(static_cast<size_t>(size));
      ssize_t got = pread(file_fd_, &text_[0], text_.size(), 0);
      text_.resize(got > 0 ? static_cast<size_t>(got) : 0);
      // Re-emitted (as asked) so other threads' lines written meanwhile are
      // not lost.
      std::string out;
      if (echo == Echo::kAll) {
        out = text_;
      } else if (echo == Echo::kAllButInfo) {
        size_t start = 0;
        while (start < text_.size()) {
          size_t end = text_.find('\n', start);
          end = end == std::string::npos ? text_.size() : end + 1;
          if (text_.compare(start, 6, "INFO: ") != 0) out.append(text_, start, end - start);
          start = end;
        }
      }
      if (!out.empty() && write(2, out.data(), out.size()) < 0) {
        // stderr is gone; the text is still returned to the caller
      }
    }
    close(file_fd_);
    file_fd_ = -1;
  }
  if (lock_.owns_lock()) lock_.unlock();
  return text_;
}

StderrCapture::~StderrCapture() { Finish(Echo::kAll); }

}  // namespace edgepipe
