// Bounds-checked reading of a flatbuffer, the first layer of model
// verification. Every offset, vtable, field, vector and string is checked
// against [data, data + size) before it is read, and failures throw
// edgepipe::Error(kModel) naming the field and the path to it ("shape of
// tensor 3 of subgraph 0"). Nothing here knows the TFLite schema beyond the
// root offset at position 0; structure.cc walks the schema on top of it.
//
// Ownership: the reader borrows `data` (the caller keeps it alive and
// unchanged for the reader's lifetime); Table and Vec are plain positions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace edgepipe {
namespace verify {

// Positions are absolute byte offsets into the file. Position 0 holds the
// root offset, so no table, vector or string can start there: 0 means
// "absent" throughout.
struct Table {
  size_t pos = 0;
  size_t vtable = 0;
  uint16_t vsize = 0;
  uint16_t tsize = 0;
  explicit operator bool() const { return pos != 0; }
};

struct Vec {
  size_t pos = 0;  // first element
  size_t len = 0;
  explicit operator bool() const { return pos != 0; }
};

// Printable form of untrusted bytes: ASCII kept, everything else \xNN.
std::string Escape(const uint8_t* p, size_t n);

class FlatbufferReader {
 public:
  // max_depth bounds the nesting of Scope()s (tables inside tables);
  // max_tables the tables visited in total (offset loops).
  FlatbufferReader(const uint8_t* data, size_t size, size_t max_depth, size_t max_tables)
      : data_(data), size_(size), max_depth_(max_depth), max_tables_(max_tables) {}

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  // ---- where we are, for error messages --------------------------------
  // Built lazily: the walk visits millions of objects on big models and only
  // a failing one needs its path spelled out.
  struct Frame {
    const char* label;
    size_t index;
    bool indexed;
  };

  class Scope {
   public:
    Scope(FlatbufferReader* w, const char* label) : w_(w) { w_->Push({label, 0, false}); }
    Scope(FlatbufferReader* w, const char* label, size_t index) : w_(w) {
      w_->Push({label, index, true});
    }
    ~Scope() { w_->ctx_.pop_back(); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    FlatbufferReader* w_;
  };

  void Push(Frame f) {
    if (ctx_.size() >= max_depth_) {
      ctx_.push_back(f);
      Corrupt("nesting deeper than " + std::to_string(max_depth_) + " levels at " + Where());
    }
    ctx_.push_back(f);
  }

  std::string Where() const {
    std::string out;
    for (size_t i = ctx_.size(); i-- > 0;) {
      if (!out.empty()) out += " of ";
      out += ctx_[i].label;
      if (ctx_[i].indexed) out += " " + std::to_string(ctx_[i].index);
    }
    return out.empty() ? "the model" : out;
  }

  // `field` names the schema field being read; it is prefixed to Where().
  std::string At(const char* field) const {
    return ctx_.empty() ? std::string(field) : std::string(field) + " of " + Where();
  }

  // What a structural check is looking at, formatted only on failure.
  struct What {
    const char* label;
    size_t index;
    bool indexed;
  };
  static What Field(const char* field) { return {field, 0, false}; }
  std::string Str(const What& w) const {
    std::string s = w.label;
    if (w.indexed) s += " " + std::to_string(w.index);
    return ctx_.empty() ? s : s + " of " + Where();
  }

  [[noreturn]] void Corrupt(const std::string& what) const {
    throw Error(ErrorKind::kModel, "model is corrupt: " + what);
  }

  [[noreturn]] void Truncated(const std::string& what, size_t pos, uint64_t need) const {
    throw Error(ErrorKind::kModel, "model is truncated: " + what + " at offset " +
                                       std::to_string(pos) + " needs " + std::to_string(need) +
                                       " bytes but the file has " + std::to_string(size_));
  }

  // ---- raw reads; callers have checked bounds --------------------------
  uint8_t U8(size_t p) const { return data_[p]; }
  uint16_t U16(size_t p) const { return static_cast<uint16_t>(data_[p] | (data_[p + 1] << 8)); }
  uint32_t U32(size_t p) const {
    return static_cast<uint32_t>(data_[p]) | (static_cast<uint32_t>(data_[p + 1]) << 8) |
           (static_cast<uint32_t>(data_[p + 2]) << 16) |
           (static_cast<uint32_t>(data_[p + 3]) << 24);
  }
  uint64_t U64(size_t p) const {
    return static_cast<uint64_t>(U32(p)) | (static_cast<uint64_t>(U32(p + 4)) << 32);
  }
  int32_t I32(size_t p) const { return static_cast<int32_t>(U32(p)); }

  bool Fits(size_t pos, uint64_t len) const { return pos <= size_ && len <= size_ - pos; }

  // ---- structure -------------------------------------------------------
  // Follows the uoffset stored at `at` (already bounds-checked).
  size_t Follow(size_t at, const What& what) const {
    uint32_t off = U32(at);
    // flatbuffers forbids zero (self-pointing) and offsets with the sign bit
    // set, so that a 32-bit implementation never sees them wrap.
    if (off == 0 || off > 0x7fffffffu) {
      Corrupt(Str(what) + " has invalid offset " + std::to_string(off) + " at offset " +
              std::to_string(at));
    }
    size_t target = at + off;
    if (!Fits(target, 1)) Truncated(Str(what), target, 1);
    return target;
  }

  Table TableAt(size_t pos, const What& what) {
    if (++tables_ > max_tables_) {
      Corrupt("more than " + std::to_string(max_tables_) + " tables (offset loop?) at " +
              Str(what));
    }
    if (pos % 4 != 0) {
      Corrupt(Str(what) + " is a table at misaligned offset " + std::to_string(pos));
    }
    if (!Fits(pos, 4)) Truncated(Str(what), pos, 4);
    int64_t vt = static_cast<int64_t>(pos) - static_cast<int64_t>(I32(pos));
    if (vt < 0 || vt % 2 != 0 || !Fits(static_cast<size_t>(vt), 4)) {
      Corrupt(Str(what) + " at offset " + std::to_string(pos) + " has its vtable at " +
              std::to_string(vt) + ", outside the file or misaligned");
    }
    Table t;
    t.pos = pos;
    t.vtable = static_cast<size_t>(vt);
    t.vsize = U16(t.vtable);
    t.tsize = U16(t.vtable + 2);
    if (t.vsize < 4 || t.vsize % 2 != 0) {
      Corrupt(Str(what) + " at offset " + std::to_string(pos) + " has vtable size " +
              std::to_string(t.vsize));
    }
    if (!Fits(t.vtable, t.vsize)) Truncated("vtable of " + Str(what), t.vtable, t.vsize);
    if (t.tsize < 4) {
      Corrupt(Str(what) + " at offset " + std::to_string(pos) + " has inline size " +
              std::to_string(t.tsize));
    }
    if (!Fits(pos, t.tsize)) Truncated(Str(what), pos, t.tsize);
    return t;
  }

  uint16_t SlotOffset(const Table& t, int slot) const {
    size_t vo = 4 + 2 * static_cast<size_t>(slot);
    return vo + 2 <= t.vsize ? U16(t.vtable + vo) : 0;
  }

  // Absolute position of a present field of `bytes` bytes, or 0.
  size_t FieldPos(const Table& t, int slot, size_t bytes, const char* field) const {
    uint16_t off = SlotOffset(t, slot);
    if (off == 0) return 0;
    if (off < 4 || static_cast<size_t>(off) + bytes > t.tsize) {
      Corrupt(At(field) + ": field at table offset " + std::to_string(off) + " with " +
              std::to_string(bytes) + " bytes overruns the table's " + std::to_string(t.tsize) +
              " bytes");
    }
    size_t p = t.pos + off;
    if (bytes > 1 && p % std::min<size_t>(bytes, 8) != 0) {
      Corrupt(At(field) + ": misaligned scalar at offset " + std::to_string(p));
    }
    return p;
  }

  uint8_t GetU8(const Table& t, int slot, uint8_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 1, field);
    return p ? U8(p) : def;
  }
  int8_t GetI8(const Table& t, int slot, int8_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 1, field);
    return p ? static_cast<int8_t>(U8(p)) : def;
  }
  uint32_t GetU32(const Table& t, int slot, uint32_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 4, field);
    return p ? U32(p) : def;
  }
  int32_t GetI32(const Table& t, int slot, int32_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 4, field);
    return p ? I32(p) : def;
  }
  uint64_t GetU64(const Table& t, int slot, uint64_t def, const char* field) const {
    size_t p = FieldPos(t, slot, 8, field);
    return p ? U64(p) : def;
  }

  Table SubTable(const Table& t, int slot, const char* field) {
    size_t p = FieldPos(t, slot, 4, field);
    if (!p) return Table();
    return TableAt(Follow(p, Field(field)), Field(field));
  }

  Vec VectorAt(size_t target, size_t elem, const What& what) const {
    if (target % 4 != 0) {
      Corrupt(Str(what) + " is a vector at misaligned offset " + std::to_string(target));
    }
    if (!Fits(target, 4)) Truncated(Str(what), target, 4);
    uint64_t len = U32(target);
    uint64_t bytes = len * elem;  // len < 2^32 and elem <= 8: cannot overflow
    if (!Fits(target + 4, bytes)) Truncated("vector " + Str(what), target + 4, bytes);
    // Builders align vector elements to their size; the runtime reads them
    // in place, so a misaligned 8-byte vector is a corrupt one.
    if (elem > 4 && (target + 4) % elem != 0 && len > 0) {
      Corrupt(Str(what) + ": misaligned elements at offset " + std::to_string(target + 4));
    }
    Vec v;
    v.pos = target + 4;
    v.len = static_cast<size_t>(len);
    return v;
  }

  Vec Vector(const Table& t, int slot, size_t elem, const char* field) {
    size_t p = FieldPos(t, slot, 4, field);
    if (!p) return Vec();
    return VectorAt(Follow(p, Field(field)), elem, Field(field));
  }

  // Returns the string's bytes; `present` tells absent from empty.
  std::string String(const Table& t, int slot, const char* field, bool* present = nullptr) {
    if (present) *present = false;
    size_t p = FieldPos(t, slot, 4, field);
    if (!p) return std::string();
    Vec v = VectorAt(Follow(p, Field(field)), 1, Field(field));
    if (!Fits(v.pos + v.len, 1)) Truncated("terminator of " + At(field), v.pos + v.len, 1);
    if (U8(v.pos + v.len) != 0) Corrupt(At(field) + " is not NUL-terminated");
    // Flatbuffer strings are UTF-8; names reach Python as str, where invalid
    // bytes would be an untyped UnicodeDecodeError instead of a ModelError.
    if (!ValidUtf8(data_ + v.pos, v.len)) Corrupt(At(field) + " is not valid UTF-8");
    if (present) *present = true;
    return std::string(reinterpret_cast<const char*>(data_ + v.pos), v.len);
  }

  // Well-formed UTF-8 (RFC 3629): no overlong forms, surrogates or code
  // points above U+10FFFF.
  static bool ValidUtf8(const uint8_t* s, size_t n) {
    size_t i = 0;
    while (i < n) {
      const uint8_t c = s[i];
      size_t extra;
      uint32_t cp;
      if (c < 0x80) {
        ++i;
        continue;
      } else if ((c & 0xE0) == 0xC0) {
        extra = 1;
        cp = c & 0x1F;
      } else if ((c & 0xF0) == 0xE0) {
        extra = 2;
        cp = c & 0x0F;
      } else if ((c & 0xF8) == 0xF0) {
        extra = 3;
        cp = c & 0x07;
      } else {
        return false;
      }
      if (n - i <= extra) return false;
      for (size_t k = 1; k <= extra; ++k) {
        if ((s[i + k] & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (s[i + k] & 0x3F);
      }
      static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
      if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
      i += extra + 1;
    }
    return true;
  }

  Table Element(const Vec& v, size_t i, const char* label) {
    What what{label, i, true};
    return TableAt(Follow(v.pos + 4 * i, what), what);
  }

  int32_t IntAt(const Vec& v, size_t i) const { return I32(v.pos + 4 * i); }

  // A table whose field types we do not model: its vtable must be sound and
  // every present field must start inside the table.
  void GenericTable(const Table& t, const char* field) {
    for (int slot = 0; 4 + 2 * slot + 2 <= t.vsize; ++slot) FieldPos(t, slot, 1, field);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t max_depth_;
  size_t max_tables_;
  std::vector<Frame> ctx_;
  size_t tables_ = 0;
};

}  // namespace verify
}  // namespace edgepipe
