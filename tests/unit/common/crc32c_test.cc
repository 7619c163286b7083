// CRC32C against the RFC 3720 (iSCSI) B.4 vectors, and the SSE4.2 path
// against the portable one.
#include "common/crc32c.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace brook {
namespace {

TEST(Crc32cTest, Rfc3720Vectors) {
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec.data(), dec.size()), 0x113FDB5Cu);
  EXPECT_EQ(Crc32cPortable(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32cPortable(0, ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32cPortable(0, inc.data(), inc.size()), 0x46DD794Eu);
  EXPECT_EQ(Crc32cPortable(0, dec.data(), dec.size()), 0x113FDB5Cu);
}

TEST(Crc32cTest, CheckValue) {
  const char* s = "123456789";
  EXPECT_EQ(Crc32c(s, 9), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable(0, s, 9), 0xE3069283u);
  EXPECT_EQ(Crc32c(s, 0), 0u);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  const std::string s = "The quick brown fox jumps over the lazy dog, twice over.";
  const uint32_t whole = Crc32c(s.data(), s.size());
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(Crc32c(Crc32c(s.data(), cut), s.data() + cut, s.size() - cut), whole) << cut;
    EXPECT_EQ(Crc32cPortable(Crc32cPortable(0, s.data(), cut), s.data() + cut, s.size() - cut),
              whole)
        << cut;
  }
}

TEST(Crc32cTest, DispatchedAgreesWithPortableOnRandomData) {
  std::mt19937 rng(12345);
  std::vector<uint8_t> buf(4096 + 16);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 16; ++align) {
    for (size_t len = 0; len < 300; ++len) {
      ASSERT_EQ(Crc32c(buf.data() + align, len), Crc32cPortable(0, buf.data() + align, len))
          << "align " << align << " len " << len;
    }
    for (size_t len : {1023u, 1024u, 1025u, 4096u}) {
      ASSERT_EQ(Crc32c(7, buf.data() + align, len), Crc32cPortable(7, buf.data() + align, len))
          << "align " << align << " len " << len;
    }
  }
}

}  // namespace
}  // namespace brook
