#include "accel/crash_mark.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>

namespace edgepipe {

CrashMark::CrashMark(const std::string& dir, const std::string& accelerator,
                     const std::string& model) {
  if (dir.empty()) return;
  static std::atomic<unsigned> counter{0};
  std::string safe;
  for (char c : accelerator) safe += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  if (safe.size() > 80) safe = safe.substr(safe.size() - 80);
  path_ = dir + "/" + safe + "." + std::to_string(getpid()) + "." +
          std::to_string(counter.fetch_add(1)) + ".mark";
  std::string body = "{\"accelerator\": \"";
  for (char c : accelerator) {
    if (c == '"' || c == '\\') body += '\\';
    body += c;
  }
  body += "\", \"pid\": " + std::to_string(getpid()) + ", \"model\": \"";
  for (char c : model) {
    if (c == '"' || c == '\\') body += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) body += c;
  }
  body += "\"}\n";
  mkdir(dir.c_str(), 0755);
  int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    path_.clear();  // unwritable cache: no crash protection, but no failure
    return;
  }
  bool ok = write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
  // fsync: the mark must survive the crash it is there to detect.
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok) {
    unlink(path_.c_str());
    path_.clear();
  }
}

CrashMark::~CrashMark() {
  if (!path_.empty()) unlink(path_.c_str());
}

}  // namespace edgepipe
