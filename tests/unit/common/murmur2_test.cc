// murmur2 against the values in Kafka's own UtilsTest.testMurmur2
// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
#include "common/murmur2.h"

#include <string>

#include "gtest/gtest.h"

namespace brook {
namespace {

TEST(Murmur2Test, KafkaUtilsTestVectors) {
  EXPECT_EQ(Murmur2("21"), -973932308);
  EXPECT_EQ(Murmur2("foobar"), -790332482);
  EXPECT_EQ(Murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(Murmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(Murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  EXPECT_EQ(Murmur2("abc"), 479470107);
}

TEST(Murmur2Test, PartitionIsPositiveHashModN) {
  // (murmur2 & 0x7fffffff) % n, from the published hashes above.
  EXPECT_EQ(PartitionForKey("21", 1000), (-973932308 & 0x7fffffff) % 1000);
  EXPECT_EQ(PartitionForKey("foobar", 7), (-790332482 & 0x7fffffff) % 7);
  EXPECT_EQ(PartitionForKey("abc", 3), 479470107 % 3);
  for (int n = 1; n < 50; ++n) {
    const int32_t p = PartitionForKey("a-little-bit-long-string", n);
    EXPECT_GE(p, 0);
    EXPECT_LT(p, n);
  }
}

}  // namespace
}  // namespace brook
