// Topic config validation (NewTopic::configs -> proto::TopicConfig), address
// parsing, and Admin's refusal of bad input before any network I/O.
#include <cstdlib>

#include "brook/admin.h"
#include "client/address.h"
#include "client/topic_config.h"
#include "gtest/gtest.h"

namespace brook::client {
namespace {

TEST(TopicConfigTest, ValidConfigsConvert) {
  auto c = TopicConfigFromMap({{"flush.policy", "interval"},
                               {"flush.ms", "250"},
                               {"segment.bytes", "1048576"},
                               {"segment.ms", "60000"},
                               {"retention.ms", "-1"},
                               {"retention.bytes", "1000000000"},
                               {"max.message.bytes", "1048588"},
                               {"min.insync.replicas", "2"},
                               {"index.interval.bytes", "4096"},
                               {"unclean.leader.election.enable", "true"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->flush_policy(), proto::FLUSH_INTERVAL);
  EXPECT_EQ(c->flush_interval_ms(), 250);
  EXPECT_EQ(c->segment_bytes(), 1048576);
  EXPECT_EQ(c->segment_ms(), 60000);
  EXPECT_EQ(c->retention_ms(), -1);
  EXPECT_EQ(c->retention_bytes(), 1000000000);
  EXPECT_EQ(c->max_message_bytes(), 1048588);
  EXPECT_EQ(c->min_insync_replicas(), 2);
  EXPECT_EQ(c->index_interval_bytes(), 4096);
  EXPECT_TRUE(c->unclean_leader_election());
  EXPECT_EQ(TopicConfigToMap(*c).size(), 10u);
  EXPECT_EQ(TopicConfigToMap(*c).at("unclean.leader.election.enable"), "true");
  EXPECT_EQ(TopicConfigToMap(*c).at("flush.policy"), "interval");
}

TEST(TopicConfigTest, EmptyConfigLeavesEverythingUnset) {
  auto c = TopicConfigFromMap({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->flush_policy(), proto::FLUSH_DEFAULT);
  EXPECT_FALSE(c->has_segment_bytes());
  EXPECT_TRUE(TopicConfigToMap(*c).empty());
}

TEST(TopicConfigTest, BadConfigsAreInvalidArgument) {
  const std::vector<std::map<std::string, std::string>> bad = {
      {{"no.such.config", "1"}},
      {{"flush.policy", "sometimes"}},
      {{"segment.bytes", "0"}},
      {{"segment.bytes", "12abc"}},
      {{"segment.ms", "-5"}},
      {{"retention.ms", "-2"}},
      {{"retention.bytes", "lots"}},
      {{"max.message.bytes", "3000000000"}},  // over int32
      {{"min.insync.replicas", "0"}},
      {{"index.interval.bytes", ""}},
      {{"unclean.leader.election.enable", "yes"}},
      {{"flush.policy", "always"}, {"flush.ms", "10"}},
  };
  for (const auto& m : bad) {
    auto c = TopicConfigFromMap(m);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << m.begin()->first;
  }
  auto unknown = TopicConfigFromMap({{"compression.type", "zstd"}});
  EXPECT_NE(unknown.status().message().find("compression.type"), std::string::npos);
}

TEST(TopicConfigTest, CompactionConfigsConvertBothWays) {
  auto c = TopicConfigFromMap({{"cleanup.policy", "compact"},
                               {"delete.retention.ms", "60000"},
                               {"min.cleanable.dirty.ratio", "0.25"},
                               {"min.compaction.lag.ms", "0"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cleanup_policy(), proto::CLEANUP_COMPACT);
  EXPECT_EQ(c->delete_retention_ms(), 60000);
  EXPECT_DOUBLE_EQ(c->min_cleanable_dirty_ratio(), 0.25);
  EXPECT_TRUE(c->has_min_compaction_lag_ms());
  EXPECT_EQ(c->min_compaction_lag_ms(), 0);
  auto m = TopicConfigToMap(*c);
  EXPECT_EQ(m.at("cleanup.policy"), "compact");
  EXPECT_EQ(m.at("delete.retention.ms"), "60000");
  EXPECT_EQ(m.at("min.cleanable.dirty.ratio"), "0.25");
  EXPECT_EQ(m.at("min.compaction.lag.ms"), "0");
  // Round trip.
  auto again = TopicConfigFromMap(m);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), c->SerializeAsString());

  for (const char* v : {"compact,delete", "delete,compact", "Compact, Delete"}) {
    auto both = TopicConfigFromMap({{"cleanup.policy", v}});
    ASSERT_TRUE(both.ok()) << v << ": " << both.status();
    EXPECT_EQ(both->cleanup_policy(), proto::CLEANUP_COMPACT_DELETE) << v;
    EXPECT_EQ(TopicConfigToMap(*both).at("cleanup.policy"), "compact,delete");
  }
  auto del = TopicConfigFromMap({{"cleanup.policy", "delete"}});
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(del->has_cleanup_policy());
  EXPECT_EQ(del->cleanup_policy(), proto::CLEANUP_DELETE);
  EXPECT_EQ(TopicConfigToMap(*del).at("cleanup.policy"), "delete");
  auto edge = TopicConfigFromMap({{"min.cleanable.dirty.ratio", "1"}});
  ASSERT_TRUE(edge.ok());
  EXPECT_DOUBLE_EQ(edge->min_cleanable_dirty_ratio(), 1.0);
}

TEST(TopicConfigTest, BadCompactionConfigsAreInvalidArgument) {
  const std::vector<std::map<std::string, std::string>> bad = {
      {{"cleanup.policy", "compacted"}},
      {{"cleanup.policy", ""}},
      {{"cleanup.policy", "compact,compact"}},
      {{"delete.retention.ms", "-1"}},
      {{"delete.retention.ms", "soon"}},
      {{"min.compaction.lag.ms", "-5"}},
      {{"min.cleanable.dirty.ratio", "1.5"}},
      {{"min.cleanable.dirty.ratio", "-0.1"}},
      {{"min.cleanable.dirty.ratio", "half"}},
      {{"min.cleanable.dirty.ratio", "nan"}},
  };
  for (const auto& m : bad) {
    auto c = TopicConfigFromMap(m);
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument)
        << m.begin()->first << "=" << m.begin()->second;
    if (!c.ok()) {
      EXPECT_NE(c.status().message().find(m.begin()->first), std::string::npos) << c.status();
    }
  }
}

TEST(AddressTest, ParsesLists) {
  auto l = ParseNameservers("a:1, 127.0.0.1:9876,[::1]:5");
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_EQ(l->size(), 3u);
  EXPECT_EQ((*l)[0], (HostPort{"a", 1}));
  EXPECT_EQ((*l)[1], (HostPort{"127.0.0.1", 9876}));
  EXPECT_EQ((*l)[2], (HostPort{"::1", 5}));
  EXPECT_FALSE(ParseNameservers("a:0").ok());
  EXPECT_FALSE(ParseNameservers("a:70000").ok());
  EXPECT_FALSE(ParseNameservers("a").ok());
  EXPECT_FALSE(ParseNameservers(",").ok());
}

TEST(AddressTest, DefaultNameserversFollowsEnvironment) {
  ::unsetenv("BROOK_NAMESERVER");
  EXPECT_EQ(DefaultNameservers(), "127.0.0.1:9876");
  ::setenv("BROOK_NAMESERVER", "10.1.2.3:1234", 1);
  EXPECT_EQ(DefaultNameservers(), "10.1.2.3:1234");
  auto l = ParseNameservers("");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)[0], (HostPort{"10.1.2.3", 1234}));
  ::unsetenv("BROOK_NAMESERVER");
}

TEST(AdminTest, RejectsBadInputBeforeAnyRequest) {
  EXPECT_EQ(Admin::Create(AdminConfig{"bad address", std::chrono::milliseconds(100)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing listens at port 1: a valid request would fail with Unavailable,
  // so InvalidArgument proves validation came first.
  auto admin = Admin::Create(AdminConfig{"127.0.0.1:1", std::chrono::milliseconds(200)});
  ASSERT_TRUE(admin.ok()) << admin.status();
  NewTopic t;
  t.name = "t";
  t.configs = {{"retention.ms", "soon"}};
  EXPECT_EQ((*admin)->CreateTopic(t).status().code(), absl::StatusCode::kInvalidArgument);
  t.configs.clear();
  t.partitions = -1;
  EXPECT_EQ((*admin)->CreateTopic(t).status().code(), absl::StatusCode::kInvalidArgument);
  t.partitions = 1;
  auto r = (*admin)->CreateTopic(t);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
}

}  // namespace
}  // namespace brook::client
