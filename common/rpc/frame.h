// Framing of the native protocol (docs/protocol.md):
//   [u32 size][u16 api][u16 version][u32 correlation id][u32 header size]
//   [protobuf header][raw bytes]
// All integers big-endian; `size` counts every byte after itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace brook::rpc {

inline constexpr size_t kSizeFieldBytes = 4;
// api + version + correlation id + header size.
inline constexpr size_t kFixedHeaderBytes = 12;
inline constexpr uint16_t kResponseBit = 0x8000;
inline constexpr uint32_t kDefaultMaxFrameBytes = 64 * 1024 * 1024;

struct FrameHeader {
  uint32_t size = 0;  // bytes after the size field
  uint16_t api = 0;
  uint16_t version = 0;
  uint32_t correlation_id = 0;
  uint32_t header_size = 0;  // protobuf header bytes
  size_t payload_size() const { return size - kFixedHeaderBytes - header_size; }
};

// Decodes the 4-byte size prefix; fails (FRAME_TOO_LARGE / INVALID_REQUEST)
// when the size is below the fixed header or above `max_frame_bytes`, before
// any buffer is allocated for the body.
absl::StatusOr<uint32_t> DecodeFrameSize(std::span<const uint8_t, 4> prefix,
                                         uint32_t max_frame_bytes);

// Decodes the fixed fields of a frame body (the bytes after the size field);
// fails if header_size does not fit in the body.
absl::StatusOr<FrameHeader> DecodeFrameBody(uint32_t size, std::span<const uint8_t> body);

// Encodes the size prefix and fixed fields (16 bytes) for a frame whose
// protobuf header and payload have the given sizes.
void EncodeFramePrefix(uint16_t api, uint16_t version, uint32_t correlation_id,
                       uint32_t header_size, size_t payload_size, uint8_t out[16]);

}  // namespace brook::rpc
