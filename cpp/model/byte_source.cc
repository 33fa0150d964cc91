#include "model/byte_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/sendfile.h>
#include <sys/syscall.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "common/error.h"

// Older libc headers lack the memfd and sealing constants; the kernel ABI
// values are fixed.
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#endif
#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

namespace edgepipe {
namespace {

std::string Errno(int err) { return std::strerror(err); }

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// A read-only mapping of edgepipe's own copy of the bytes.
class SealedBytes final : public ByteSource {
 public:
  SealedBytes(void* addr, size_t size, std::string description, bool sealed)
      : addr_(addr), size_(size), description_(std::move(description)), sealed_(sealed) {}
  ~SealedBytes() override { munmap(addr_, size_); }
  SealedBytes(const SealedBytes&) = delete;
  SealedBytes& operator=(const SealedBytes&) = delete;
  const uint8_t* data() const override { return static_cast<const uint8_t*>(addr_); }
  size_t size() const override { return size_; }
  std::string description() const override { return description_; }
  bool zero_copy() const override { return false; }
  bool sealed() const override { return sealed_; }

 private:
  void* addr_;
  size_t size_;
  std::string description_;
  bool sealed_;
};

int MemfdCreate(const std::string& name) {
#if defined(__linux__) && defined(SYS_memfd_create)
  return static_cast<int>(syscall(SYS_memfd_create, name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
#else
  (void)name;
  errno = ENOSYS;
  return -1;
#endif
}

[[noreturn]] void NoMemory(const std::string& description, size_t size, int err) {
  throw Error(ErrorKind::kModel, "cannot hold a copy of model " + description + " (" +
                                     std::to_string(size) + " bytes): " + Errno(err));
}

// Where the bytes come from: a file (read from offset 0) or memory.
struct Origin {
  int fd = -1;
  const uint8_t* data = nullptr;
};

// Copies `size` bytes from `origin` into `memfd` at its file position with
// system calls only, so a fault on either side is an errno, never a signal.
// Returns the bytes copied: fewer than `size` when the file ended early.
size_t CopyIntoFd(int memfd, const Origin& origin, size_t size, const std::string& description) {
  size_t done = 0;
  bool try_sendfile = origin.fd >= 0;
  std::vector<uint8_t> chunk;
  while (done < size) {
    const size_t want = std::min<size_t>(size - done, size_t{1} << 30);
    ssize_t n = -1;
    if (origin.data != nullptr) {
      n = write(memfd, origin.data + done, want);
    } else {
#if defined(__linux__)
      if (try_sendfile) {
        off_t off = static_cast<off_t>(done);
        n = sendfile(memfd, origin.fd, &off, want);
        if (n < 0 && (errno == EINVAL || errno == ENOSYS) && done == 0) {
          try_sendfile = false;  // an old kernel or an odd file system
          continue;
        }
      }
#else
      try_sendfile = false;
#endif
      if (!try_sendfile) {
        chunk.resize(std::min<size_t>(want, size_t{1} << 20));
        n = pread(origin.fd, chunk.data(), chunk.size(), static_cast<off_t>(done));
        if (n > 0) {
          ssize_t written = 0;
          while (written < n) {
            const ssize_t w =
                write(memfd, chunk.data() + written, static_cast<size_t>(n - written));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) NoMemory(description, size, w < 0 ? errno : ENOSPC);
            written += w;
          }
        }
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      if (err == ENOSPC || err == ENOMEM || err == EFBIG) NoMemory(description, size, err);
      throw Error(ErrorKind::kModel, "cannot read model " + description + ": " + Errno(err));
    }
    if (n == 0) break;  // the file ended early
    done += static_cast<size_t>(n);
  }
  return done;
}

// Memory that only this object writes, sealed read-only by Finish().
class SealedWriter {
 public:
  SealedWriter(size_t size, std::string description, const std::string& name)
      : size_(size), description_(std::move(description)) {
    memfd_.fd = MemfdCreate("edgepipe-model:" + name.substr(0, 200));
    if (memfd_.fd >= 0 && ftruncate(memfd_.fd, static_cast<off_t>(size)) != 0) {
      NoMemory(description_, size, errno);
    }
    if (memfd_.fd < 0) {
      // No memfd: anonymous memory, written here and then made read-only.
      void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (addr == MAP_FAILED) NoMemory(description_, size, errno);
      anon_ = addr;
    }
  }
  ~SealedWriter() {
    if (anon_ != nullptr) munmap(anon_, size_);
  }
  SealedWriter(const SealedWriter&) = delete;
  SealedWriter& operator=(const SealedWriter&) = delete;

  // Copies the bytes in; returns how many there were (fewer: file ended).
  size_t Fill(const Origin& origin) {
    if (memfd_.fd >= 0) return CopyIntoFd(memfd_.fd, origin, size_, description_);
    auto* out = static_cast<uint8_t*>(anon_);
    if (origin.data != nullptr) {
      std::memcpy(out, origin.data, size_);
      return size_;
    }
    size_t done = 0;
    while (done < size_) {
      const ssize_t n = pread(origin.fd, out + done, size_ - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        throw Error(ErrorKind::kModel, "cannot read model " + description_ + ": " + Errno(errno));
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  std::shared_ptr<ByteSource> Finish() {
    if (memfd_.fd >= 0) {
      const int seals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
      if (fcntl(memfd_.fd, F_ADD_SEALS, seals) != 0) {
        // Unsealable (a kernel without sealing): another process of this
        // user could still write it through /proc/PID/fd, so fall back to
        // anonymous memory, which nobody else can reach.
        return CopyToAnonymous();
      }
      void* addr = mmap(nullptr, size_, PROT_READ, MAP_SHARED, memfd_.fd, 0);
      if (addr == MAP_FAILED) NoMemory(description_, size_, errno);
      // The mapping keeps the memfd alive; the descriptor is not needed.
      return std::make_shared<SealedBytes>(addr, size_, description_, true);
    }
    if (mprotect(anon_, size_, PROT_READ) != 0) NoMemory(description_, size_, errno);
    void* addr = anon_;
    anon_ = nullptr;
    return std::make_shared<SealedBytes>(addr, size_, description_, true);
  }

 private:
  std::shared_ptr<ByteSource> CopyToAnonymous() {
    void* src = mmap(nullptr, size_, PROT_READ, MAP_SHARED, memfd_.fd, 0);
    if (src == MAP_FAILED) NoMemory(description_, size_, errno);
    void* addr = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      munmap(src, size_);
      NoMemory(description_, size_, err);
    }
    std::memcpy(addr, src, size_);
    munmap(src, size_);
    mprotect(addr, size_, PROT_READ);
    return std::make_shared<SealedBytes>(addr, size_, description_, true);
  }

  size_t size_;
  std::string description_;
  Fd memfd_;
  void* anon_ = nullptr;
};

// "a FIFO (named pipe)", for "model path X is <kind>, not a regular file".
const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

[[noreturn]] void NotRegular(const std::string& path, mode_t mode) {
  throw Error(ErrorKind::kModel, "model path " + path + " is " + KindOf(mode) +
                                     ", not a regular file; edgepipe loads models from "
                                     "regular files only (a .tflite file)");
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::shared_ptr<ByteSource> MapFile(const std::string& path) {
  if (path.empty()) {
    throw Error(ErrorKind::kModel, "model path is empty; give the path of a .tflite file");
  }
  if (path.find('\0') != std::string::npos) {
    // open() would stop at the NUL and load another file than the one named.
    throw Error(ErrorKind::kModel, "model path " + path.substr(0, path.find('\0')) +
                                       "\\0... contains a NUL byte; a path cannot hold one");
  }
  // O_NONBLOCK: opening a FIFO without a writer returns at once instead of
  // waiting for one; O_NOCTTY: a terminal never becomes ours. Nothing is read
  // before fstat says it is a regular file.
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.fd < 0) {
    const int err = errno;
    struct stat st{};
    if (err == ENXIO && stat(path.c_str(), &st) == 0) NotRegular(path, st.st_mode);  // socket
    if (err == EISDIR) NotRegular(path, S_IFDIR);
    std::string msg = "cannot open model file " + path + ": " + Errno(err);
    if (err == ENOENT) msg += " (check the path)";
    throw Error(ErrorKind::kModel, msg);
  }
  struct stat before{};
  if (fstat(fd.fd, &before) != 0) {
    throw Error(ErrorKind::kModel, "cannot stat model file " + path + ": " + Errno(errno));
  }
  if (!S_ISREG(before.st_mode)) NotRegular(path, before.st_mode);
  if (before.st_size == 0) {
    throw Error(ErrorKind::kModel, "model file " + path +
                                       " is empty (0 bytes); the download or "
                                       "copy that made it probably failed");
  }
  const size_t size = static_cast<size_t>(before.st_size);
  SealedWriter writer(size, path, BaseName(path));
  const size_t got = writer.Fill(Origin{fd.fd, nullptr});
  struct stat after{};
  const bool changed = got != size || fstat(fd.fd, &after) != 0 ||
                       after.st_size != before.st_size ||
                       after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
                       after.st_mtim.tv_nsec != before.st_mtim.tv_nsec;
  if (changed) {
    throw Error(ErrorKind::kModel,
                "model file " + path + " changed while it was being read (" + std::to_string(size) +
                    " bytes before, " +
                    std::to_string(got == size ? static_cast<size_t>(after.st_size) : got) +
                    " after); load it again once whatever writes it has finished");
  }
  return writer.Finish();
}

std::shared_ptr<ByteSource> WrapMemory(const void* data, size_t size, std::function<void()> release,
                                       std::string description) {
  struct ReleaseOnExit {
    std::function<void()>& fn;
    ~ReleaseOnExit() {
      if (fn) fn();
    }
  } release_on_exit{release};
  if (size == 0) throw Error(ErrorKind::kModel, "model buffer is empty (0 bytes)");
  SealedWriter writer(size, description, "buffer");
  const size_t got = writer.Fill(Origin{-1, static_cast<const uint8_t*>(data)});
  if (got != size) {
    throw Error(ErrorKind::kModel, "cannot copy model " + description + ": only " +
                                       std::to_string(got) + " of " + std::to_string(size) +
                                       " bytes were readable");
  }
  return writer.Finish();
}

}  // namespace edgepipe
