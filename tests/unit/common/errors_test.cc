#include "common/errors.h"

#include "gtest/gtest.h"

namespace brook {
namespace {

TEST(ErrorsTest, TaggedCodeSurvivesRoundTrip) {
  absl::Status s = MakeError(proto::ErrorCode::NOT_LEADER, "leader moved");
  EXPECT_EQ(ToErrorCode(s), proto::ErrorCode::NOT_LEADER);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsRetriable(ToErrorCode(s)));
}

TEST(ErrorsTest, UntaggedStatusMapsByCanonicalCode) {
  EXPECT_EQ(ToErrorCode(absl::OkStatus()), proto::ErrorCode::NONE);
  EXPECT_EQ(ToErrorCode(absl::ResourceExhaustedError("disk")), proto::ErrorCode::STORAGE_FULL);
  EXPECT_EQ(ToErrorCode(absl::NotFoundError("x")),
            proto::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
}

TEST(ErrorsTest, FromErrorCodeNamesTheCode) {
  absl::Status s = FromErrorCode(proto::ErrorCode::INVALID_TOPIC, "bad name");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("INVALID_TOPIC"), std::string::npos);
  EXPECT_FALSE(IsRetriable(ToErrorCode(s)));
  EXPECT_TRUE(FromErrorCode(proto::ErrorCode::NONE, "").ok());
}

}  // namespace
}  // namespace brook
