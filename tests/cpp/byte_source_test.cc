// Unit tests of cpp/model/byte_source.h: a model's bytes are edgepipe's sealed
// copy, so a file truncated or rewritten after loading changes nothing, and
// special files are refused before anything is read.
#include "model/byte_source.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"

namespace edgepipe {
namespace {

class ByteSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/edgepipe-byte-source-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  std::string Write(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
    return path;
  }
  // The message of the ModelError `fn` throws ("" if none).
  template <class Fn>
  static std::string ModelErrorOf(Fn fn) {
    try {
      fn();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kModel) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "no ModelError";
    return "";
  }
  std::string dir_;
};

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 131 + 7);
  return v;
}

TEST_F(ByteSourceTest, FileIsCopiedAlignedAndSealed) {
  const auto bytes = Pattern(3 * 4096 + 17);
  auto src = MapFile(Write("m.tflite", bytes));
  ASSERT_EQ(src->size(), bytes.size());
  EXPECT_EQ(std::memcmp(src->data(), bytes.data(), bytes.size()), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(src->data()) % 4096, 0u);
  EXPECT_TRUE(src->sealed());
  EXPECT_FALSE(src->zero_copy());
}

TEST_F(ByteSourceTest, TruncatedOrRewrittenFileLeavesTheCopyIntact) {
  const auto bytes = Pattern(64 * 1024);
  const std::string path = Write("m.tflite", bytes);
  auto src = MapFile(path);
  ASSERT_EQ(truncate(path.c_str(), 0), 0);  // a mapping of the file would SIGBUS below
  EXPECT_EQ(std::memcmp(src->data(), bytes.data(), bytes.size()), 0);
  Write("m.tflite", std::vector<uint8_t>(bytes.size(), 0xEE));
  EXPECT_EQ(std::memcmp(src->data(), bytes.data(), bytes.size()), 0);
}

TEST_F(ByteSourceTest, MemoryIsCopiedAndReleasedAtOnce) {
  auto bytes = Pattern(1001);
  bool released = false;
  auto src = WrapMemory(bytes.data() + 1, bytes.size() - 1, [&] { released = true; });
  EXPECT_TRUE(released);  // the caller's buffer is free as soon as WrapMemory returns
  std::vector<uint8_t> want(bytes.begin() + 1, bytes.end());
  std::fill(bytes.begin(), bytes.end(), 0);
  ASSERT_EQ(src->size(), want.size());
  EXPECT_EQ(std::memcmp(src->data(), want.data(), want.size()), 0);
  EXPECT_EQ(src->description(), "<buffer>");
}

TEST_F(ByteSourceTest, EmptyBufferIsRefusedAndStillReleased) {
  bool released = false;
  ModelErrorOf([&] { WrapMemory(nullptr, 0, [&] { released = true; }); });
  EXPECT_TRUE(released);
}

TEST_F(ByteSourceTest, SpecialFilesAreRefusedWithoutBlocking) {
  const std::string fifo = dir_ + "/fifo.tflite";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(ModelErrorOf([&] { MapFile(fifo); }).find("FIFO"), std::string::npos);
  EXPECT_NE(ModelErrorOf([&] { MapFile("/dev/zero"); }).find("character device"),
            std::string::npos);
  EXPECT_NE(ModelErrorOf([&] { MapFile(dir_); }).find("directory"), std::string::npos);

  const std::string sock = dir_ + "/sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", sock.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_NE(ModelErrorOf([&] { MapFile(sock); }).find("socket"), std::string::npos);
  close(fd);
}

TEST_F(ByteSourceTest, PathsWithNulEmptyOrMissingAreRefused) {
  const std::string path = Write("m.tflite", Pattern(100));
  EXPECT_NE(ModelErrorOf([&] { MapFile(path + std::string("\0junk", 5)); }).find("NUL"),
            std::string::npos);
  EXPECT_NE(ModelErrorOf([&] { MapFile(""); }).find("empty"), std::string::npos);
  EXPECT_NE(ModelErrorOf([&] { MapFile(dir_ + "/missing"); }).find("check the path"),
            std::string::npos);
  EXPECT_NE(ModelErrorOf([&] { MapFile(Write("empty.tflite", {})); }).find("0 bytes"),
            std::string::npos);
}

}  // namespace
}  // namespace edgepipe
