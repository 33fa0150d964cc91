// Where a model's bytes live. The runtime builds its model directly on these
// bytes (no copy), so a ByteSource must outlive every model, compiled
// instance and pool made from it: they all hold a shared_ptr to it.
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
  virtual bool zero_copy() const = 0;
};

// A read-only private mapping of a whole file. Checks (missing, directory,
// empty, unreadable) raise ModelError naming the path.
std::shared_ptr<ByteSource> MapFile(const std::string& path);

// Memory that belongs to someone else (a Python buffer, an Android asset).
// `release` runs when the last user is gone. Unaligned memory is copied
// into aligned storage, because the runtime reads weights in place.
std::shared_ptr<ByteSource> WrapMemory(const void* data, size_t size,
                                       std::function<void()> release,
                                       std::string description = "<buffer>");

}  // namespace edgepipe
