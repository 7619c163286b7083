// Big-endian encoding and validation of native-protocol frame prefixes.
#include "common/rpc/frame.h"

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace brook::rpc {
namespace {

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint32_t Load32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

void Store16(uint16_t v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void Store32(uint32_t v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

absl::StatusOr<uint32_t> DecodeFrameSize(std::span<const uint8_t, 4> prefix,
                                         uint32_t max_frame_bytes) {
  uint32_t size = Load32(prefix.data());
  if (size < kFixedHeaderBytes) {
    return MakeError(proto::ErrorCode::INVALID_REQUEST,
                     absl::StrCat("frame size ", size, " is below the fixed header (",
                                  kFixedHeaderBytes, " bytes)"));
  }
  if (size > max_frame_bytes) {
    return MakeError(proto::ErrorCode::FRAME_TOO_LARGE,
                     absl::StrCat("frame size ", size, " exceeds the maximum ", max_frame_bytes));
  }
  return size;
}

absl::StatusOr<FrameHeader> DecodeFrameBody(uint32_t size, std::span<const uint8_t> body) {
  if (size < kFixedHeaderBytes || body.size() < kFixedHeaderBytes || body.size() < size) {
    return MakeError(proto::ErrorCode::INVALID_REQUEST,
                     absl::StrCat("frame body of ", body.size(), " bytes is shorter than its size ",
                                  size, " or the fixed header"));
  }
  FrameHeader h;
  h.size = size;
  h.api = Load16(body.data());
  h.version = Load16(body.data() + 2);
  h.correlation_id = Load32(body.data() + 4);
  h.header_size = Load32(body.data() + 8);
  if (h.header_size > size - kFixedHeaderBytes) {
    return MakeError(
        proto::ErrorCode::INVALID_REQUEST,
        absl::StrCat("header size ", h.header_size, " overruns the frame of ", size, " bytes"));
  }
  return h;
}

void EncodeFramePrefix(uint16_t api, uint16_t version, uint32_t correlation_id,
                       uint32_t header_size, size_t payload_size, uint8_t out[16]) {
  Store32(static_cast<uint32_t>(kFixedHeaderBytes + header_size + payload_size), out);
  Store16(api, out + 4);
  Store16(version, out + 6);
  Store32(correlation_id, out + 8);
  Store32(header_size, out + 12);
}

}  // namespace brook::rpc
