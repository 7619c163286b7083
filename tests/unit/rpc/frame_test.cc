// Frame prefix encoding and the size/header checks done before allocation.
#include "common/rpc/frame.h"

#include <array>
#include <cstring>

#include "common/errors.h"
#include "gtest/gtest.h"

namespace brook::rpc {
namespace {

TEST(FrameTest, EncodesBigEndianPrefix) {
  uint8_t out[16];
  EncodeFramePrefix(0x0102, 0x0304, 0x05060708, 0x00000009, 0x10, out);
  // size = 12 + 9 + 16 = 37 = 0x25.
  const uint8_t want[16] = {0,    0,    0,    0x25, 0x01, 0x02, 0x03, 0x04,
                            0x05, 0x06, 0x07, 0x08, 0,    0,    0,    0x09};
  EXPECT_EQ(0, std::memcmp(out, want, 16));
}

TEST(FrameTest, RoundTrip) {
  uint8_t buf[16 + 5 + 7] = {};
  EncodeFramePrefix(kResponseBit | 11, 3, 0xfffffffe, 5, 7, buf);
  auto size = DecodeFrameSize(std::span<const uint8_t, 4>(buf, 4), kDefaultMaxFrameBytes);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, 12u + 5 + 7);
  auto h = DecodeFrameBody(*size, std::span<const uint8_t>(buf + 4, *size));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->api, kResponseBit | 11);
  EXPECT_EQ(h->version, 3);
  EXPECT_EQ(h->correlation_id, 0xfffffffeu);
  EXPECT_EQ(h->header_size, 5u);
  EXPECT_EQ(h->payload_size(), 7u);
}

TEST(FrameTest, SizeBelowFixedHeaderIsInvalidRequest) {
  std::array<uint8_t, 4> p = {0, 0, 0, 11};
  auto size = DecodeFrameSize(p, kDefaultMaxFrameBytes);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(ToErrorCode(size.status()), proto::ErrorCode::INVALID_REQUEST);
  p = {0, 0, 0, 12};
  EXPECT_EQ(*DecodeFrameSize(p, kDefaultMaxFrameBytes), 12u);
}

TEST(FrameTest, SizeAboveMaximumIsFrameTooLarge) {
  std::array<uint8_t, 4> p = {0, 0, 0x04, 0x00};  // 1024
  EXPECT_EQ(*DecodeFrameSize(p, 1024), 1024u);
  p = {0, 0, 0x04, 0x01};  // 1025
  auto size = DecodeFrameSize(p, 1024);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(ToErrorCode(size.status()), proto::ErrorCode::FRAME_TOO_LARGE);
  p = {0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(ToErrorCode(DecodeFrameSize(p, kDefaultMaxFrameBytes).status()),
            proto::ErrorCode::FRAME_TOO_LARGE);
}

TEST(FrameTest, HeaderSizeOverrunIsInvalidRequest) {
  uint8_t buf[16 + 4] = {};
  EncodeFramePrefix(1, 0, 7, 4, 0, buf);  // exactly fits
  EXPECT_TRUE(DecodeFrameBody(16, std::span<const uint8_t>(buf + 4, 16)).ok());
  buf[15] = 5;  // header_size 5 > 16 - 12
  auto h = DecodeFrameBody(16, std::span<const uint8_t>(buf + 4, 16));
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(ToErrorCode(h.status()), proto::ErrorCode::INVALID_REQUEST);
  buf[12] = 0xff;  // huge header_size: no overflow in the check
  EXPECT_FALSE(DecodeFrameBody(16, std::span<const uint8_t>(buf + 4, 16)).ok());
}

TEST(FrameTest, BodyShorterThanSizeIsRejected) {
  uint8_t buf[16] = {};
  EncodeFramePrefix(1, 0, 7, 0, 0, buf);
  EXPECT_FALSE(DecodeFrameBody(20, std::span<const uint8_t>(buf + 4, 12)).ok());
  EXPECT_FALSE(DecodeFrameBody(8, std::span<const uint8_t>(buf + 4, 8)).ok());
}

}  // namespace
}  // namespace brook::rpc
