// Unit tests of the profiler's event-layout guard (cpp/profile/profiler.h):
// the layout is decided from the bytes the runtime wrote, pinned per version,
// and decoding refuses implausible events instead of reading through them.
#include "profile/profiler.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace edgepipe::profile {
namespace {

const char kTag[] = "CONV_2D";

// An event array as a runtime writing `layout`-sized events leaves it.
std::vector<uint8_t> Written(const EventLayout& layout, size_t count, int type = kOperatorInvoke) {
  std::vector<uint8_t> bytes(count * kEventSlack, kGuardByte);
  for (size_t i = 0; i < count; ++i) {
    uint8_t* e = bytes.data() + i * layout.stride;
    std::memset(e, 0, layout.stride);
    const char* tag = kTag;
    std::memcpy(e + layout.tag, &tag, sizeof(tag));
    const int32_t t = type, source = 1;
    std::memcpy(e + layout.type, &t, sizeof(t));
    const uint64_t start = 1000 + i, elapsed = 10 + i;
    std::memcpy(e + layout.start_us, &start, sizeof(start));
    std::memcpy(e + layout.elapsed_us, &elapsed, sizeof(elapsed));
    const int64_t node = static_cast<int64_t>(i);
    std::memcpy(e + layout.metadata1, &node, sizeof(node));
    std::memcpy(e + layout.source, &source, sizeof(source));
  }
  return bytes;
}

TEST(ProfilerLayout, SizesMatchTheTwoKnownStructs) {
  EXPECT_EQ(kLayout104.stride, 104u);
  EXPECT_EQ(kLayout104.source, 96u);
  EXPECT_EQ(kLayout88.stride, 88u);
  EXPECT_EQ(kLayout88.source, 80u);
  EXPECT_GE(kEventSlack, 2 * kLayout104.stride);
}

TEST(ProfilerLayout, DetectedFromTheBytesWritten) {
  for (size_t n : {1u, 2u, 3u, 100u, 1550u}) {
    auto a = Written(kLayout104, n);
    EXPECT_EQ(DetectLayout(a.data(), n), &kLayout104) << n;
    auto b = Written(kLayout88, n);
    EXPECT_EQ(DetectLayout(b.data(), n), &kLayout88) << n;
  }
}

TEST(ProfilerLayout, UnknownSizesAndNothingWrittenAreRefused) {
  const EventLayout bigger{"bigger", 120, 0, 8, 16, 24, 96, 104, 112};
  auto a = Written(bigger, 5);
  EXPECT_EQ(DetectLayout(a.data(), 5), nullptr);
  std::vector<uint8_t> untouched(5 * kEventSlack, kGuardByte);
  EXPECT_EQ(DetectLayout(untouched.data(), 5), nullptr);
  EXPECT_EQ(DetectLayout(untouched.data(), 0), nullptr);
}

TEST(ProfilerLayout, PinnedPerVersion) {
  EXPECT_EQ(PinnedStride("2.3.0"), 104u);
  EXPECT_EQ(PinnedStride("2.3.1"), 104u);
  EXPECT_EQ(PinnedStride("unknown"), 0u);
  EXPECT_EQ(PinnedStride("stride:88"), 88u);
}

TEST(ProfilerDecode, ReadsEveryField) {
  auto a = Written(kLayout104, 3);
  auto events = DecodeEvents(a.data(), 3, kLayout104, 7);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2].tag, "CONV_2D");
  EXPECT_EQ(events[2].type, kOperatorInvoke);
  EXPECT_EQ(events[2].start_us, 1002u);
  EXPECT_EQ(events[2].elapsed_us, 12u);
  EXPECT_EQ(events[2].metadata1, 2);
  EXPECT_EQ(events[2].source, 1);
  EXPECT_EQ(events[2].run, 7u);
}

TEST(ProfilerDecode, ImplausibleEventsAreAnError) {
  auto bad_type = Written(kLayout104, 2, /*type=*/3);  // not one bit
  EXPECT_THROW(DecodeEvents(bad_type.data(), 2, kLayout104, 0), Error);
  auto null_tag = Written(kLayout104, 2);
  std::memset(null_tag.data() + kLayout104.stride + kLayout104.tag, 0, sizeof(void*));
  EXPECT_THROW(DecodeEvents(null_tag.data(), 2, kLayout104, 0), Error);
}

}  // namespace
}  // namespace edgepipe::profile
