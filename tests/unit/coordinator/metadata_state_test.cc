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

proto::MetadataRecord ChangeRec(const std::string& topic, const std::string& id,
                                int32_t partition, int32_t leader, int32_t epoch,
                                const std::vector<int32_t>& isr) {
  proto::MetadataRecord r;
  proto::PartitionChangeRecord* c = r.mutable_partition_change();
  c->set_topic(topic);
  c->set_topic_id(id);
  c->set_partition(partition);
  c->set_leader(leader);
  c->set_leader_epoch(epoch);
  for (int32_t b : isr) c->add_isr(b);
  return r;
}

proto::MetadataRecord FenceRec(int32_t broker, int64_t epoch) {
  proto::MetadataRecord r;
  r.mutable_fence_broker()->set_broker_id(broker);
  r.mutable_fence_broker()->set_broker_epoch(epoch);
  return r;
}

TEST(MetadataStateTest, PartitionChangeSetsLeaderEpochAndIsr) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), TopicRec("t", "id-t", {{1, 2, 3}, {2, 3, 1}})).ok());
  ASSERT_TRUE(state.Apply(Offset(1), ChangeRec("t", "id-t", 1, 3, 7, {3, 1})).ok());
  const proto::PartitionDescription& p1 = state.FindTopic("t")->partitions(1);
  EXPECT_EQ(p1.leader(), 3);
  EXPECT_EQ(p1.leader_epoch(), 7);
  ASSERT_EQ(p1.isr_size(), 2);
  EXPECT_EQ(p1.isr(0), 3);
  EXPECT_EQ(p1.isr(1), 1);
  EXPECT_EQ(p1.replicas_size(), 3);  // replicas unchanged
  EXPECT_EQ(state.FindTopic("t")->partitions(0).leader(), 1);
  // The change shows in the assignments.
  auto a3 = state.AssignmentsFor(NodeId(3));
  ASSERT_EQ(a3.size(), 2u);
  EXPECT_EQ(a3[1].leader(), 3);
  EXPECT_EQ(a3[1].leader_epoch(), 7);
  EXPECT_EQ(a3[1].isr_size(), 2);
  // Offline: leader -1.
  ASSERT_TRUE(state.Apply(Offset(2), ChangeRec("t", "id-t", 0, -1, 1, {1})).ok());
  EXPECT_EQ(state.FindTopic("t")->partitions(0).leader(), -1);
  EXPECT_EQ(state.last_offset(), Offset(2));
}

TEST(MetadataStateTest, PartitionChangeForOtherIncarnationOrPartitionIsNoOp) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), TopicRec("t", "id-new", {{1, 2}})).ok());
  const std::string before = state.FindTopic("t")->SerializeAsString();
  ASSERT_TRUE(state.Apply(Offset(1), ChangeRec("t", "id-old", 0, 2, 9, {2})).ok());
  ASSERT_TRUE(state.Apply(Offset(2), ChangeRec("t", "id-new", 4, 2, 9, {2})).ok());
  ASSERT_TRUE(state.Apply(Offset(3), ChangeRec("missing", "x", 0, 2, 9, {2})).ok());
  EXPECT_EQ(state.FindTopic("t")->SerializeAsString(), before);
  EXPECT_EQ(state.FindTopic("missing"), nullptr);
  EXPECT_EQ(state.last_offset(), Offset(3));
}

proto::MetadataRecord AddRec(const std::string& name, const std::string& id, int32_t first,
                             const std::vector<std::vector<int32_t>>& replicas) {
  proto::MetadataRecord r;
  proto::AddPartitionsRecord* add = r.mutable_add_partitions();
  add->set_topic(name);
  add->set_topic_id(id);
  for (size_t i = 0; i < replicas.size(); ++i) {
    proto::PartitionDescription* d = add->add_partitions();
    d->set_partition(first + static_cast<int32_t>(i));
    for (int32_t b : replicas[i]) {
      d->add_replicas(b);
      d->add_isr(b);
    }
    d->set_leader(replicas[i][0]);
  }
  return r;
}

TEST(MetadataStateTest, AddPartitionsAppendsAndKeepsExistingPartitions) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), TopicRec("t", "id-t", {{1, 2}})).ok());
  ASSERT_TRUE(state.Apply(Offset(1), ChangeRec("t", "id-t", 0, 2, 5, {2})).ok());
  ASSERT_TRUE(state.Apply(Offset(2), AddRec("t", "id-t", 1, {{2, 1}, {1, 2}})).ok());
  const proto::TopicDescription* t = state.FindTopic("t");
  ASSERT_EQ(t->partitions_size(), 3);
  EXPECT_EQ(t->partitions(0).leader(), 2);  // the change before stays
  EXPECT_EQ(t->partitions(0).leader_epoch(), 5);
  EXPECT_EQ(t->partitions(1).partition(), 1);
  EXPECT_EQ(t->partitions(1).leader(), 2);
  EXPECT_EQ(t->partitions(2).leader(), 1);
  EXPECT_EQ(state.AssignmentsFor(NodeId(1)).size(), 3u);
}

TEST(MetadataStateTest, AddPartitionsForOtherIncarnationOrWrongStartIsNoOp) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), TopicRec("t", "id-new", {{1}, {1}})).ok());
  const std::string before = state.FindTopic("t")->SerializeAsString();
  ASSERT_TRUE(state.Apply(Offset(1), AddRec("t", "id-old", 2, {{1}})).ok());
  ASSERT_TRUE(state.Apply(Offset(2), AddRec("t", "id-new", 1, {{1}})).ok());  // overlaps
  ASSERT_TRUE(state.Apply(Offset(3), AddRec("t", "id-new", 3, {{1}})).ok());  // leaves a gap
  ASSERT_TRUE(state.Apply(Offset(4), AddRec("missing", "x", 0, {{1}})).ok());
  EXPECT_EQ(state.FindTopic("t")->SerializeAsString(), before);
  EXPECT_EQ(state.FindTopic("missing"), nullptr);
  EXPECT_EQ(state.last_offset(), Offset(4));
}

TEST(MetadataStateTest, FenceMatchesEpochAndRegistrationUnfences) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), BrokerRec(1, "h", 1, 10)).ok());
  ASSERT_FALSE(state.FindBroker(NodeId(1))->fenced);
  ASSERT_TRUE(state.Apply(Offset(1), FenceRec(1, 9)).ok());  // stale epoch
  EXPECT_FALSE(state.FindBroker(NodeId(1))->fenced);
  ASSERT_TRUE(state.Apply(Offset(2), FenceRec(1, 10)).ok());
  EXPECT_TRUE(state.FindBroker(NodeId(1))->fenced);
  ASSERT_TRUE(state.Apply(Offset(3), FenceRec(1, 10)).ok());  // again: still fenced
  EXPECT_TRUE(state.FindBroker(NodeId(1))->fenced);
  ASSERT_TRUE(state.Apply(Offset(4), FenceRec(5, 1)).ok());  // unknown broker
  EXPECT_EQ(state.FindBroker(NodeId(5)), nullptr);
  ASSERT_TRUE(state.Apply(Offset(5), BrokerRec(1, "h", 1, 11)).ok());
  EXPECT_FALSE(state.FindBroker(NodeId(1))->fenced);
  EXPECT_EQ(state.FindBroker(NodeId(1))->epoch, 11);
  ASSERT_TRUE(state.Apply(Offset(6), FenceRec(1, 10)).ok());  // the old registration's
  EXPECT_FALSE(state.FindBroker(NodeId(1))->fenced);
}

TEST(MetadataStateTest, SnapshotRoundTrip) {
  MetadataState state;
  const auto records = History();
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(state.Apply(Offset(static_cast<int64_t>(i)), records[i]).ok());
  }
  ASSERT_TRUE(state.Apply(Offset(7), ChangeRec("a", "id-a", 0, 2, 3, {2})).ok());
  ASSERT_TRUE(state.Apply(Offset(8), FenceRec(2, 2)).ok());
  ASSERT_TRUE(state.FindBroker(NodeId(2))->fenced);

  const proto::MetadataSnapshot snapshot = state.ToSnapshot();
  EXPECT_EQ(snapshot.last_offset(), 8);
  ASSERT_EQ(snapshot.topics_size(), 2);
  EXPECT_EQ(snapshot.topics(0).name(), "a");  // ordered by name
  EXPECT_EQ(snapshot.topics(1).name(), "c");
  ASSERT_EQ(snapshot.brokers_size(), 2);
  EXPECT_EQ(snapshot.brokers(0).info().broker_id(), 1);  // ordered by id
  EXPECT_TRUE(snapshot.brokers(1).fenced());

  // Restore into an image holding something else: it is replaced.
  MetadataState restored;
  ASSERT_TRUE(restored.Apply(Offset(100), TopicRec("zzz", "id-z", {{9}})).ok());
  ASSERT_TRUE(restored.Restore(snapshot).ok());
  EXPECT_EQ(restored.last_offset(), Offset(8));
  EXPECT_EQ(restored.FindTopic("zzz"), nullptr);
  EXPECT_EQ(restored.ToSnapshot().SerializeAsString(), snapshot.SerializeAsString());
  ASSERT_EQ(restored.topics().size(), 2u);
  EXPECT_EQ(restored.FindTopic("a")->partitions(0).leader(), 2);
  EXPECT_EQ(restored.FindTopic("a")->partitions(0).leader_epoch(), 3);
  EXPECT_EQ(restored.FindBroker(NodeId(1))->epoch, 5);
  EXPECT_EQ(restored.FindBroker(NodeId(1))->info.port(), 9011);
  EXPECT_TRUE(restored.FindBroker(NodeId(2))->fenced);
  EXPECT_FALSE(restored.FindBroker(NodeId(1))->fenced);

  // Replay continues after the snapshot and matches the original.
  EXPECT_EQ(restored.Apply(Offset(8), FenceRec(1, 5)).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(restored.Apply(Offset(9), FenceRec(1, 5)).ok());
  ASSERT_TRUE(state.Apply(Offset(9), FenceRec(1, 5)).ok());
  EXPECT_EQ(restored.ToSnapshot().SerializeAsString(), state.ToSnapshot().SerializeAsString());

  // An empty image round-trips too.
  MetadataState empty;
  ASSERT_TRUE(restored.Restore(empty.ToSnapshot()).ok());
  EXPECT_EQ(restored.last_offset(), Offset(-1));
  EXPECT_TRUE(restored.topics().empty());
  EXPECT_TRUE(restored.brokers().empty());
}

TEST(MetadataStateTest, RestoreRejectsInconsistentSnapshotAndKeepsImage) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(3), TopicRec("keep", "id-k", {{1}})).ok());
  const std::string before = state.ToSnapshot().SerializeAsString();

  proto::MetadataSnapshot dup_topic;
  dup_topic.set_last_offset(10);
  dup_topic.add_topics()->set_name("x");
  dup_topic.add_topics()->set_name("x");
  EXPECT_EQ(state.Restore(dup_topic).code(), absl::StatusCode::kInvalidArgument);

  proto::MetadataSnapshot nameless;
  nameless.add_topics();
  EXPECT_EQ(state.Restore(nameless).code(), absl::StatusCode::kInvalidArgument);

  proto::MetadataSnapshot dup_partition;
  proto::TopicDescription* t = dup_partition.add_topics();
  t->set_name("y");
  t->add_partitions()->set_partition(0);
  t->add_partitions()->set_partition(0);
  EXPECT_EQ(state.Restore(dup_partition).code(), absl::StatusCode::kInvalidArgument);

  proto::MetadataSnapshot dup_broker;
  for (int i = 0; i < 2; ++i) {
    proto::MetadataSnapshot::Broker* b = dup_broker.add_brokers();
    b->mutable_info()->set_broker_id(1);
    b->set_epoch(1 + i);
  }
  EXPECT_EQ(state.Restore(dup_broker).code(), absl::StatusCode::kInvalidArgument);

  proto::MetadataSnapshot no_epoch;
  no_epoch.add_brokers()->mutable_info()->set_broker_id(1);
  EXPECT_EQ(state.Restore(no_epoch).code(), absl::StatusCode::kInvalidArgument);

  proto::MetadataSnapshot bad_offset;
  bad_offset.set_last_offset(-5);
  EXPECT_EQ(state.Restore(bad_offset).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(state.ToSnapshot().SerializeAsString(), before);
}

TEST(MetadataStateTest, GroupRecordsOnlyAdvanceTheOffset) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(0), TopicRec("t", "id1", {{1}})).ok());
  const proto::MetadataSnapshot before = state.ToSnapshot();
  proto::MetadataRecord group, commit, remove;
  group.mutable_group()->set_group_id("g");
  commit.mutable_offset_commit()->set_group_id("g");
  commit.mutable_offset_commit()->set_topic("t");
  commit.mutable_offset_commit()->set_offset(5);
  remove.mutable_remove_group()->set_group_id("g");
  ASSERT_TRUE(state.Apply(Offset(1), group).ok());
  ASSERT_TRUE(state.Apply(Offset(2), commit).ok());
  ASSERT_TRUE(state.Apply(Offset(3), remove).ok());
  EXPECT_EQ(state.last_offset(), Offset(3));
  proto::MetadataSnapshot after = state.ToSnapshot();
  EXPECT_EQ(after.group_records_size(), 0);
  after.set_last_offset(before.last_offset());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
}

}  // namespace
}  // namespace brook::coordinator
