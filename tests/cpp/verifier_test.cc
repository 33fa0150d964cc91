// Unit tests of the model verifier (cpp/model/verifier.h) on the packaged
// default model (python/edgepipe/models/default.tflite, generator
// build_convnet): it is accepted and summarised; every truncation and every
// single-byte corruption ends in acceptance or a kModel error (under ASan in
// .ci/cpp-tests.sh, so no read outside the buffer); and field-level damage
// that crashed LiteRT (operator code swapped, wrong tensor type, options of
// another op, quantization without zero points) is refused by name.
#include "model/verifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/op_names.h"
#include "model/verify/flatbuffer_reader.h"

namespace edgepipe {
namespace {

using verify::FlatbufferReader;
using verify::Table;
using verify::Vec;

std::vector<uint8_t> DefaultModel() {
  std::ifstream f(std::string(EDGEPIPE_SOURCE_DIR) + "/python/edgepipe/models/default.tflite",
                  std::ios::binary);
  EXPECT_TRUE(f.good());
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::string VerifyError(const std::vector<uint8_t>& b) {
  try {
    VerifyTflite(b.data(), b.size());
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kModel);
    return e.what();
  }
  return "";
}

// Positions of schema fields in a valid model, found with the reader.
struct Locator {
  explicit Locator(const std::vector<uint8_t>& b) : r(b.data(), b.size(), 64, 100000) {
    model = r.TableAt(r.Follow(0, F("root")), F("root"));
  }
  static FlatbufferReader::What F(const char* s) { return FlatbufferReader::Field(s); }
  Table Element(const Table& t, int slot, size_t i) {
    Vec v = r.Vector(t, slot, 4, "v");
    return r.Element(v, i, "e");
  }
  size_t FieldPos(const Table& t, int slot) { return r.FieldPos(t, slot, 1, "f"); }
  FlatbufferReader r;
  Table model;
};

void Put32(std::vector<uint8_t>& b, size_t pos, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[pos + i] = (v >> (8 * i)) & 0xff;
}

TEST(Verifier, AcceptsAndSummarisesTheDefaultModel) {
  std::vector<uint8_t> b = DefaultModel();
  ModelSummary s = VerifyTflite(b.data(), b.size());
  EXPECT_EQ(s.schema_version, 3u);
  EXPECT_EQ(s.num_subgraphs, 1u);
  EXPECT_GT(s.num_operators, 0u);
  EXPECT_GT(s.op_counts.at("CONV_2D"), 0u);
  EXPECT_EQ(s.signature_keys.size(), 1u);
  EXPECT_TRUE(s.warnings.empty());
}

TEST(Verifier, EveryTruncationIsAModelError) {
  std::vector<uint8_t> b = DefaultModel();
  for (size_t n = 0; n < b.size(); n += (n < 256 ? 1 : 61)) {
    std::vector<uint8_t> cut(b.begin(), b.begin() + n);
    EXPECT_FALSE(VerifyError(cut).empty()) << "accepted a truncation to " << n << " bytes";
  }
}

TEST(Verifier, SingleByteCorruptionNeverEscapes) {
  std::vector<uint8_t> b = DefaultModel();
  // Header and tables live before the weights; hit every byte there and a
  // sample of the rest with a few values each.
  for (size_t pos = 0; pos < b.size(); pos += (pos < 1024 ? 1 : 97)) {
    for (uint8_t v : {uint8_t{0}, uint8_t{0xff}, static_cast<uint8_t>(b[pos] ^ 0x10)}) {
      std::vector<uint8_t> c = b;
      c[pos] = v;
      VerifyError(c);  // either accepted or a kModel error; anything else fails
    }
  }
}

TEST(Verifier, RefusesAnOperatorCodeSwappedToAnotherBuiltin) {
  std::vector<uint8_t> b = DefaultModel();
  Locator at(b);
  Vec codes = at.r.Vector(at.model, 1, 4, "operator_codes");
  bool patched = false;
  for (size_t i = 0; i < codes.len && !patched; ++i) {
    Table oc = at.r.Element(codes, i, "oc");
    if (at.r.GetI32(oc, 3, 0, "builtin_code") != op::CONV_2D) continue;
    Put32(b, at.FieldPos(oc, 3), op::SPLIT);
    if (size_t dep = at.FieldPos(oc, 0)) b[dep] = op::SPLIT;
    patched = true;
  }
  ASSERT_TRUE(patched);
  std::string msg = VerifyError(b);
  EXPECT_NE(msg.find("(SPLIT)"), std::string::npos) << msg;
}

TEST(Verifier, RefusesAnOperatorWithTooFewInputs) {
  std::vector<uint8_t> b = DefaultModel();
  Locator at(b);
  Table sg = at.Element(at.model, 2, 0);
  Table first = at.Element(sg, 3, 0);  // the first CONV_2D
  Vec inputs = at.r.Vector(first, 1, 4, "inputs");
  ASSERT_EQ(inputs.len, 3u);
  Put32(b, inputs.pos - 4, 1);  // shrink the vector in place: filter and bias gone
  std::string msg = VerifyError(b);
  EXPECT_NE(msg.find("has 1 inputs, expected 2 to 3"), std::string::npos) << msg;
}

TEST(Verifier, RefusesOptionsOfAnotherOp) {
  std::vector<uint8_t> b = DefaultModel();
  Locator at(b);
  Table sg = at.Element(at.model, 2, 0);
  Vec ops = at.r.Vector(sg, 3, 4, "operators");
  bool patched = false;
  for (size_t i = 0; i < ops.len && !patched; ++i) {
    Table o = at.r.Element(ops, i, "op");
    size_t type = at.FieldPos(o, 3);
    if (type == 0 || b[type] != options::Pool2DOptions) continue;
    b[type] = options::Conv2DOptions;
    patched = true;
  }
  ASSERT_TRUE(patched);
  EXPECT_FALSE(VerifyError(b).empty());
}

// ai-edge-quantizer 0.10.0 writes metadata_buffer indices of its input model
// (e.g. 346 with 207 buffers); LiteRT ignores the field, so must we, and say so.
TEST(Verifier, IgnoresAndReportsAStaleMetadataBuffer) {
  std::vector<uint8_t> b = DefaultModel();
  Locator at(b);
  Table m = at.model;
  ASSERT_EQ(at.FieldPos(m, 5), 0u);  // no metadata_buffer yet
  size_t description = at.FieldPos(m, 3);
  ASSERT_NE(description, 0u);
  // Give the root table a new vtable, appended to the file, whose slot 5
  // (metadata_buffer) shares slot 3's offset: the description string read as
  // a vector of int32 buffer indices (ASCII words: far past the buffers).
  size_t vt = (b.size() + 3) & ~size_t{3};
  uint16_t vsize = std::max<uint16_t>(m.vsize, 4 + 2 * 6);
  b.resize(vt + vsize, 0);
  std::memcpy(&b[vt], &b[m.vtable], m.vsize);
  b[vt] = vsize & 0xff;
  b[vt + 1] = vsize >> 8;
  uint16_t off = static_cast<uint16_t>(description - m.pos);
  b[vt + 4 + 2 * 5] = off & 0xff;
  b[vt + 4 + 2 * 5 + 1] = off >> 8;
  Put32(b, m.pos, static_cast<uint32_t>(static_cast<int64_t>(m.pos) - static_cast<int64_t>(vt)));
  ModelSummary s = VerifyTflite(b.data(), b.size());
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_NE(s.warnings[0].find("ignored metadata_buffer[0]"), std::string::npos) << s.warnings[0];
}

TEST(Verifier, OpNamesComeFromTheGeneratedTable) {
  EXPECT_STREQ(BuiltinOpName(op::CONV_2D), "CONV_2D");
  EXPECT_STREQ(BuiltinOpName(3), "CONV_2D");
  EXPECT_EQ(BuiltinOpName(-1), nullptr);
  EXPECT_EQ(BuiltinOpName(MaxBuiltinOpCode() + 1), nullptr);
  EXPECT_STREQ(BuiltinOptionsLayout(options::Conv2DOptions).name, "Conv2DOptions");
}

}  // namespace
}  // namespace edgepipe
