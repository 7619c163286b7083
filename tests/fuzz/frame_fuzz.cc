// Fuzz target for the native protocol's frame decoding (common/rpc/frame.h):
// the size prefix and fixed fields of any byte string must decode or fail
// cleanly, and what decodes must re-encode to the same 16 bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "common/check.h"
#include "common/rpc/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace brook::rpc;
  if (size < kSizeFieldBytes) return 0;
  // A small limit so that both the accept and the refuse paths are reached.
  constexpr uint32_t kMaxFrame = 1 << 16;
  auto frame_size = DecodeFrameSize(std::span<const uint8_t, 4>(data, 4), kMaxFrame);
  if (!frame_size.ok()) return 0;
  BROOK_CHECK(*frame_size >= kFixedHeaderBytes);
  BROOK_CHECK(*frame_size <= kMaxFrame);
  const std::span<const uint8_t> rest(data + kSizeFieldBytes, size - kSizeFieldBytes);
  if (rest.size() < *frame_size) return 0;  // the rest of the frame has not arrived
  auto header = DecodeFrameBody(*frame_size, rest.first(*frame_size));
  if (!header.ok()) return 0;
  BROOK_CHECK(header->size == *frame_size);
  BROOK_CHECK(static_cast<uint64_t>(kFixedHeaderBytes) + header->header_size <= header->size);
  uint8_t prefix[16];
  EncodeFramePrefix(header->api, header->version, header->correlation_id, header->header_size,
                    header->payload_size(), prefix);
  BROOK_CHECK(std::memcmp(prefix, data, sizeof(prefix)) == 0);
  return 0;
}
