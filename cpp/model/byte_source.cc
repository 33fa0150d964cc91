#include "model/byte_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace edgepipe {
namespace {

// FlatBuffers need 4-byte alignment for their scalars, and XNNPACK and the
// runtime read constant tensors in place; 16 covers every element type.
constexpr uintptr_t kMinAlignment = 16;

class MappedFile final : public ByteSource {
 public:
  MappedFile(std::string path, void* addr, size_t size)
      : path_(std::move(path)), addr_(addr), size_(size) {}
  ~MappedFile() override { munmap(addr_, size_); }
  const uint8_t* data() const override {
    return static_cast<const uint8_t*>(addr_);
  }
  size_t size() const override { return size_; }
  std::string description() const override { return path_; }
  bool zero_copy() const override { return true; }

 private:
  std::string path_;
  void* addr_;
  size_t size_;
};

class ForeignMemory final : public ByteSource {
 public:
  ForeignMemory(const void* data, size_t size, std::function<void()> release,
                std::string description)
      : data_(static_cast<const uint8_t*>(data)),
        size_(size),
        release_(std::move(release)),
        description_(std::move(description)) {}
  ~ForeignMemory() override {
    if (release_) release_();
  }
  const uint8_t* data() const override { return data_; }
  size_t size() const override { return size_; }
  std::string description() const override { return description_; }
  bool zero_copy() const override { return true; }

 private:
  const uint8_t* data_;
  size_t size_;
  std::function<void()> release_;
  std::string description_;
};

class AlignedCopy final : public ByteSource {
 public:
  AlignedCopy(const void* data, size_t size, std::string description)
      : size_(size), description_(std::move(description)) {
    size_t rounded = (size + 63) / 64 * 64;
    // posix_memalign: bionic has aligned_alloc only from API 28.
    void* mem = nullptr;
    data_ = posix_memalign(&mem, 64, rounded ? rounded : 64) == 0 ? static_cast<uint8_t*>(mem)
                                                                   : nullptr;
    if (data_ == nullptr) {
      throw Error(ErrorKind::kModel, "out of memory copying a model of " +
                                         std::to_string(size) + " bytes");
    }
    std::memcpy(data_, data, size);
  }
  ~AlignedCopy() override { std::free(data_); }
  const uint8_t* data() const override { return data_; }
  size_t size() const override { return size_; }
  std::string description() const override { return description_; }
  bool zero_copy() const override { return false; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_;
  std::string description_;
};

std::string Errno() { return std::strerror(errno); }

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

std::shared_ptr<ByteSource> MapFile(const std::string& path) {
  Fd fd{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    const int err = errno;
    std::string msg = "cannot open model file " + path + ": " + Errno();
    if (err == ENOENT) msg += " (check the path)";
    if (err == EISDIR) msg = "model path " + path + " is a directory, not a .tflite file";
    throw Error(ErrorKind::kModel, msg);
  }
  struct stat st{};
  if (fstat(fd.fd, &st) != 0) {
    throw Error(ErrorKind::kModel, "cannot stat model file " + path + ": " + Errno());
  }
  if (S_ISDIR(st.st_mode)) {
    throw Error(ErrorKind::kModel,
                "model path " + path + " is a directory, not a .tflite file");
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorKind::kModel,
                "model path " + path + " is not a regular file");
  }
  if (st.st_size == 0) {
    throw Error(ErrorKind::kModel, "model file " + path +
                                       " is empty (0 bytes); the download or "
                                       "copy that made it probably failed");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (addr == MAP_FAILED) {
    throw Error(ErrorKind::kModel, "cannot map model file " + path + ": " + Errno());
  }
  return std::make_shared<MappedFile>(path, addr, size);
}

std::shared_ptr<ByteSource> WrapMemory(const void* data, size_t size,
                                       std::function<void()> release,
                                       std::string description) {
  if (size == 0) {
    if (release) release();
    throw Error(ErrorKind::kModel, "model buffer is empty (0 bytes)");
  }
  if (reinterpret_cast<uintptr_t>(data) % kMinAlignment != 0) {
    auto copy = std::make_shared<AlignedCopy>(data, size, std::move(description));
    if (release) release();
    return copy;
  }
  return std::make_shared<ForeignMemory>(data, size, std::move(release),
                                         std::move(description));
}

}  // namespace edgepipe
