// MetadataState: the image built by replaying metadata records.
#include "coordinator/metadata_state.h"

#include <vector>

#include "gtest/gtest.h"

namespace brook::coordinator {
namespace {

proto::MetadataRecord TopicRec(const std::string& name, const std::string& id,
                               const std::vector<std::vector<int32_t>>& replicas) {
  proto::MetadataRecord r;
  proto::TopicDescription* t = r.mutable_topic()->mutable_topic();
  t->set_name(name);
  t->set_topic_id(id);
  t->mutable_config()->set_retention_ms(1234);
  for (size_t p = 0; p < replicas.size(); ++p) {
    proto::PartitionDescription* d = t->add_partitions();
    d->set_partition(static_cast<int32_t>(p));
    for (int32_t b : replicas[p]) {
      d->add_replicas(b);
      d->add_isr(b);
    }
    d->set_leader(replicas[p][0]);
    d->set_leader_epoch(static_cast<int32_t>(p));
  }
  return r;
}

proto::MetadataRecord BrokerRec(int32_t id, const std::string& host, int32_t port,
                                int64_t epoch = 0) {
  proto::MetadataRecord r;
  r.mutable_broker()->mutable_broker()->set_broker_id(id);
  r.mutable_broker()->mutable_broker()->set_host(host);
  r.mutable_broker()->mutable_broker()->set_port(port);
  r.mutable_broker()->set_broker_epoch(epoch);
  return r;
}

proto::MetadataRecord RemoveRec(const std::string& name, const std::string& id) {
  proto::MetadataRecord r;
  r.mutable_remove_topic()->set_name(name);
  r.mutable_remove_topic()->set_topic_id(id);
  return r;
}

std::vector<proto::MetadataRecord> History() {
  return {BrokerRec(1, "h1", 9001),
          BrokerRec(2, "h2", 9002),
          TopicRec("a", "id-a", {{1, 2}, {2, 1}}),
          TopicRec("b", "id-b", {{2}}),
          BrokerRec(1, "h1", 9011),
          RemoveRec("b", "id-b"),
          TopicRec("c", "id-c", {{1}})};
}

TEST(MetadataStateTest, ReplayBuildsImage) {
  MetadataState state;
  EXPECT_EQ(state.last_offset(), Offset(-1));
  const auto records = History();
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(state.Apply(Offset(static_cast<int64_t>(i)), records[i]).ok()) << i;
  }
  EXPECT_EQ(state.last_offset(), Offset(6));

  ASSERT_EQ(state.topics().size(), 2u);
  EXPECT_EQ(state.FindTopic("b"), nullptr);
  const proto::TopicDescription* a = state.FindTopic("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->topic_id(), "id-a");
  ASSERT_EQ(a->partitions_size(), 2);
  EXPECT_EQ(a->partitions(1).leader(), 2);

  ASSERT_EQ(state.brokers().size(), 2u);
  const BrokerRegistration* b1 = state.FindBroker(NodeId(1));
  ASSERT_NE(b1, nullptr);
  EXPECT_EQ(b1->info.port(), 9011);
  EXPECT_EQ(b1->epoch, 5);  // re-registered at offset 4: epoch = offset + 1
  EXPECT_EQ(state.FindBroker(NodeId(2))->epoch, 2);
  EXPECT_EQ(state.FindBroker(NodeId(3)), nullptr);
}

TEST(MetadataStateTest, ExplicitBrokerEpochWins) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(10), BrokerRec(7, "h", 1, 99)).ok());
  EXPECT_EQ(state.FindBroker(NodeId(7))->epoch, 99);
}

TEST(MetadataStateTest, AssignmentsForBroker) {
  MetadataState state;
  const auto records = History();
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(state.Apply(Offset(static_cast<int64_t>(i)), records[i]).ok());
  }
  auto a1 = state.AssignmentsFor(NodeId(1));
  ASSERT_EQ(a1.size(), 3u);  // a-0, a-1, c-0
  EXPECT_EQ(a1[0].topic(), "a");
  EXPECT_EQ(a1[0].partition(), 0);
  EXPECT_EQ(a1[0].topic_id(), "id-a");
  EXPECT_EQ(a1[0].leader(), 1);
  EXPECT_EQ(a1[0].config().retention_ms(), 1234);
  EXPECT_EQ(a1[1].partition(), 1);
  EXPECT_EQ(a1[1].leader(), 2);
  EXPECT_EQ(a1[1].leader_epoch(), 1);
  EXPECT_EQ(a1[2].topic(), "c");
  ASSERT_EQ(a1[1].replicas_size(), 2);
  EXPECT_EQ(a1[1].isr_size(), 2);
  EXPECT_EQ(state.AssignmentsFor(NodeId(2)).size(), 2u);
  EXPECT_TRUE(state.AssignmentsFor(NodeId(3)).empty());
}

TEST(MetadataStateTest, DeterministicAcrossReplays) {
  MetadataState s1, s2;
  const auto records = History();
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(s1.Apply(Offset(static_cast<int64_t>(2 * i)), records[i]).ok());
    ASSERT_TRUE(s2.Apply(Offset(static_cast<int64_t>(2 * i)), records[i]).ok());
  }
  ASSERT_EQ(s1.topics().size(), s2.topics().size());
  for (const auto& [name, t] : s1.topics()) {
    ASSERT_NE(s2.FindTopic(name), nullptr);
    EXPECT_EQ(t.SerializeAsString(), s2.FindTopic(name)->SerializeAsString());
  }
  for (const auto& [id, b] : s1.brokers()) {
    EXPECT_EQ(b.epoch, s2.FindBroker(NodeId(id))->epoch);
  }
}

TEST(MetadataStateTest, RejectsOutOfOrderOffsets) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(5), BrokerRec(1, "h", 1)).ok());
  absl::Status s = state.Apply(Offset(5), TopicRec("x", "i", {{1}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(state.FindTopic("x"), nullptr);
  EXPECT_EQ(state.Apply(Offset(3), TopicRec("x", "i", {{1}})).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(state.last_offset(), Offset(5));
}

TEST(MetadataStateTest, RejectsEmptyRecordAndNamelessTopic) {
  MetadataState state;
  EXPECT_EQ(state.Apply(Offset(0), proto::MetadataRecord()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.Apply(Offset(0), TopicRec("", "i", {{1}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.last_offset(), Offset(-1));
  EXPECT_TRUE(state.topics().empty());
}

TEST(MetadataStateTest, RemoveOfOtherIncarnationIsNoOp) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), TopicRec("t", "new-id", {{1}})).ok());
  ASSERT_TRUE(state.Apply(Offset(1), RemoveRec("t", "old-id")).ok());
  ASSERT_NE(state.FindTopic("t"), nullptr);
  ASSERT_TRUE(state.Apply(Offset(2), RemoveRec("missing", "")).ok());
  ASSERT_TRUE(state.Apply(Offset(3), RemoveRec("t", "")).ok());
  EXPECT_EQ(state.FindTopic("t"), nullptr);
  EXPECT_EQ(state.last_offset(), Offset(3));
}

TEST(MetadataStateTest, TopicRecordReplacesExisting) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), TopicRec("t", "id", {{1}})).ok());
  ASSERT_TRUE(state.Apply(Offset(1), TopicRec("t", "id", {{2}, {3}})).ok());
  ASSERT_EQ(state.FindTopic("t")->partitions_size(), 2);
  EXPECT_EQ(state.FindTopic("t")->partitions(0).leader(), 2);
}

}  // namespace
}  // namespace brook::coordinator
