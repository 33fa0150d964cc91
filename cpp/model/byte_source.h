// Where a model's bytes live, and the promise that they never change.
//
// The runtime builds its model directly on these bytes and reads constant
// tensors in place for as long as any model, compiled instance or pool made
// from them lives (they all hold a shared_ptr to the ByteSource). Bytes that
// change under it crash the process: a file truncated under a mapping raises
// SIGBUS at the next read, and bytes rewritten after verification (a file
// overwritten in place, a caller's bytearray) reach LiteRT unverified.
//
// So a ByteSource always holds edgepipe's own copy of the bytes, made once
// at load and sealed:
//   - Linux and Android: a memfd sealed with F_SEAL_WRITE | F_SEAL_SHRINK |
//     F_SEAL_GROW | F_SEAL_SEAL and mapped read-only. No process, this one
//     included, can write, shrink or grow it; it shows in /proc/PID/maps as
//     "/memfd:edgepipe-model:<name>".
//   - where memfd_create is missing or refused (old kernels, seccomp):
//     anonymous memory, made read-only with mprotect after the copy.
// Cost: the model's size in memory per process (page-aligned, shared by every
// instance and pool worker of the process), and one read of the file at load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace edgepipe {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  // For messages: the file path or "<buffer>".
  virtual std::string description() const = 0;
  // True when the bytes are the caller's or the file's own, not a copy.
  // Always false now: every source is a sealed copy (see above).
  virtual bool zero_copy() const = 0;
  // True when nothing can change the bytes any more (a sealed memfd, or
  // memory mprotect-ed read-only).
  virtual bool sealed() const = 0;
};

// Reads the regular file `path` into sealed memory. Refuses, with a
// ModelError naming the path and what it is: a path with a NUL byte, a
// missing or unreadable file, a directory, FIFO, socket or device (opened
// with O_NONBLOCK and checked with fstat before any read, so a FIFO never
// blocks), an empty file, and a file that changed size while being read.
// Symbolic links are followed; what they point to must be a regular file.
// (The name says "map": the result is a read-only mapping of the copy.)
std::shared_ptr<ByteSource> MapFile(const std::string& path);

// Copies `size` bytes at `data` (a Python buffer, an Android asset) into
// sealed memory and calls `release` at once: the caller may reuse or change
// its memory as soon as this returns.
std::shared_ptr<ByteSource> WrapMemory(const void* data, size_t size, std::function<void()> release,
                                       std::string description = "<buffer>");

}  // namespace edgepipe
