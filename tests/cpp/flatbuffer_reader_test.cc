// Unit tests of the bounds-checked flatbuffer reader (cpp/model/verify/
// flatbuffer_reader.h) on hand-assembled buffers: the happy path, and that
// every malformed offset, vtable, field, vector and string is a kModel error
// naming where it was found, never a read outside the buffer.
#include "model/verify/flatbuffer_reader.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"

namespace edgepipe {
namespace verify {
namespace {

void Put16(std::vector<uint8_t>& b, size_t pos, uint16_t v) {
  b[pos] = v & 0xff;
  b[pos + 1] = v >> 8;
}
void Put32(std::vector<uint8_t>& b, size_t pos, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[pos + i] = (v >> (8 * i)) & 0xff;
}

// Root offset -> table at 16 whose vtable at 8 has slots 0 (u32 = 42 at
// table+4) and 1 (offset at table+8 to a vector of three u32 at 28, then a
// string "hi" at 44).
std::vector<uint8_t> Sample() {
  std::vector<uint8_t> b(52, 0);
  Put32(b, 0, 16);  // root table
  std::memcpy(&b[4], "TFL3", 4);
  Put16(b, 8, 8);         // vtable: size 8 = 2 slots
  Put16(b, 10, 16);       // table inline size
  Put16(b, 12, 4);        // slot 0 at +4
  Put16(b, 14, 8);        // slot 1 at +8
  Put32(b, 16, 8);        // soffset: vtable at 16 - 8
  Put32(b, 20, 42);       // slot 0
  Put32(b, 24, 28 - 24);  // slot 1 -> vector at 28
  Put32(b, 28, 3);        // vector length
  Put32(b, 32, 7);
  Put32(b, 36, 8);
  Put32(b, 40, 9);
  Put32(b, 44, 2);  // string length (unreferenced here)
  b[48] = 'h';
  b[49] = 'i';
  b[50] = 0;
  return b;
}

FlatbufferReader Reader(const std::vector<uint8_t>& b) {
  return FlatbufferReader(b.data(), b.size(), 64, 1000);
}

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kModel);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(FlatbufferReader, ReadsTableScalarsAndVectors) {
  std::vector<uint8_t> b = Sample();
  FlatbufferReader r = Reader(b);
  Table t =
      r.TableAt(r.Follow(0, FlatbufferReader::Field("root")), FlatbufferReader::Field("root"));
  EXPECT_EQ(t.pos, 16u);
  EXPECT_EQ(r.GetU32(t, 0, 0, "a"), 42u);
  EXPECT_EQ(r.GetU32(t, 5, 77, "absent"), 77u);  // beyond the vtable: default
  Vec v = r.Vector(t, 1, 4, "v");
  ASSERT_EQ(v.len, 3u);
  EXPECT_EQ(r.IntAt(v, 0), 7);
  EXPECT_EQ(r.IntAt(v, 2), 9);
}

TEST(FlatbufferReader, StringsMustBeTerminated) {
  std::vector<uint8_t> b = Sample();
  Put32(b, 24, 44 - 24);  // slot 1 -> the string
  FlatbufferReader r = Reader(b);
  Table t = r.TableAt(16, FlatbufferReader::Field("root"));
  bool present = false;
  EXPECT_EQ(r.String(t, 1, "name", &present), "hi");
  EXPECT_TRUE(present);
  b[50] = 'x';
  FlatbufferReader r2 = Reader(b);
  Table t2 = r2.TableAt(16, FlatbufferReader::Field("root"));
  EXPECT_NE(ErrorOf([&] { r2.String(t2, 1, "name"); }).find("not NUL-terminated"),
            std::string::npos);
}

TEST(FlatbufferReader, RefusesZeroAndOutOfRangeOffsets) {
  std::vector<uint8_t> b = Sample();
  Put32(b, 0, 0);
  FlatbufferReader r = Reader(b);
  EXPECT_NE(ErrorOf([&] { r.Follow(0, FlatbufferReader::Field("root")); }).find("invalid offset"),
            std::string::npos);
  Put32(b, 0, 1000);
  FlatbufferReader r2 = Reader(b);
  EXPECT_NE(ErrorOf([&] { r2.Follow(0, FlatbufferReader::Field("root")); }).find("truncated"),
            std::string::npos);
  Put32(b, 0, 0x80000000u);
  FlatbufferReader r3 = Reader(b);
  EXPECT_NE(ErrorOf([&] { r3.Follow(0, FlatbufferReader::Field("root")); }).find("invalid offset"),
            std::string::npos);
}

TEST(FlatbufferReader, RefusesMisalignedTablesAndBadVtables) {
  std::vector<uint8_t> b = Sample();
  FlatbufferReader r = Reader(b);
  EXPECT_NE(ErrorOf([&] { r.TableAt(18, FlatbufferReader::Field("t")); }).find("misaligned"),
            std::string::npos);
  Put32(b, 16, static_cast<uint32_t>(-4000));  // vtable past the end
  FlatbufferReader r2 = Reader(b);
  EXPECT_NE(ErrorOf([&] { r2.TableAt(16, FlatbufferReader::Field("t")); }).find("vtable"),
            std::string::npos);
  b = Sample();
  Put16(b, 8, 3);  // odd vtable size
  FlatbufferReader r3 = Reader(b);
  EXPECT_NE(ErrorOf([&] { r3.TableAt(16, FlatbufferReader::Field("t")); }).find("vtable size"),
            std::string::npos);
  b = Sample();
  Put16(b, 10, 200);  // inline size past the end
  FlatbufferReader r4 = Reader(b);
  EXPECT_NE(ErrorOf([&] { r4.TableAt(16, FlatbufferReader::Field("t")); }).find("truncated"),
            std::string::npos);
}

TEST(FlatbufferReader, RefusesFieldsOverrunningTheirTable) {
  std::vector<uint8_t> b = Sample();
  Put16(b, 12, 14);  // slot 0 at +14: 4 bytes overrun the 16-byte table
  FlatbufferReader r = Reader(b);
  Table t = r.TableAt(16, FlatbufferReader::Field("t"));
  EXPECT_NE(ErrorOf([&] { r.GetU32(t, 0, 0, "a"); }).find("overruns"), std::string::npos);
}

TEST(FlatbufferReader, RefusesVectorsPastTheEnd) {
  std::vector<uint8_t> b = Sample();
  Put32(b, 28, 1000000);
  FlatbufferReader r = Reader(b);
  Table t = r.TableAt(16, FlatbufferReader::Field("t"));
  EXPECT_NE(ErrorOf([&] { r.Vector(t, 1, 4, "v"); }).find("truncated"), std::string::npos);
  Put32(b, 28, 0xffffffffu);  // length * 8 must not wrap
  FlatbufferReader r2 = Reader(b);
  Table t2 = r2.TableAt(16, FlatbufferReader::Field("t"));
  EXPECT_NE(ErrorOf([&] { r2.Vector(t2, 1, 8, "v"); }).find("truncated"), std::string::npos);
}

TEST(FlatbufferReader, ErrorsNameThePath) {
  std::vector<uint8_t> b = Sample();
  Put32(b, 28, 1000000);
  FlatbufferReader r = Reader(b);
  Table t = r.TableAt(16, FlatbufferReader::Field("t"));
  FlatbufferReader::Scope outer(&r, "subgraph", 2);
  FlatbufferReader::Scope inner(&r, "tensor", 5);
  std::string msg = ErrorOf([&] { r.Vector(t, 1, 4, "shape"); });
  EXPECT_NE(msg.find("shape of tensor 5 of subgraph 2"), std::string::npos) << msg;
}

TEST(FlatbufferReader, LimitsNestingAndTableCount) {
  std::vector<uint8_t> b = Sample();
  FlatbufferReader shallow(b.data(), b.size(), 2, 1000);
  FlatbufferReader::Scope a(&shallow, "a");
  FlatbufferReader::Scope c(&shallow, "b");
  EXPECT_NE(ErrorOf([&] { FlatbufferReader::Scope d(&shallow, "c"); }).find("nesting"),
            std::string::npos);
  FlatbufferReader few(b.data(), b.size(), 64, 2);
  few.TableAt(16, FlatbufferReader::Field("t"));
  few.TableAt(16, FlatbufferReader::Field("t"));
  EXPECT_NE(ErrorOf([&] { few.TableAt(16, FlatbufferReader::Field("t")); }).find("tables"),
            std::string::npos);
}

TEST(FlatbufferReader, EscapeKeepsTextAndHexesTheRest) {
  const uint8_t raw[] = {'o', 'k', 0, '"', 0xff};
  EXPECT_EQ(Escape(raw, sizeof(raw)), "ok\\x00\\x22\\xff");
}

}  // namespace
}  // namespace verify
}  // namespace edgepipe
