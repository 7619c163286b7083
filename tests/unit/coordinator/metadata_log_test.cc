// The metadata log's Raft encodings (coordinator/metadata_log.h): records and
// snapshots round-trip, and malformed entry data is refused rather than
// applied.
#include "coordinator/metadata_log.h"

#include <string>

#include "coordinator/metadata_state.h"
#include "gtest/gtest.h"

namespace brook::coordinator {
namespace {

proto::MetadataRecord TopicRecord(const std::string& name) {
  proto::MetadataRecord r;
  proto::TopicDescription* t = r.mutable_topic()->mutable_topic();
  t->set_name(name);
  t->set_topic_id("0123456789abcdef0123456789abcdef");
  proto::PartitionDescription* p = t->add_partitions();
  p->set_partition(0);
  p->add_replicas(1);
  p->add_isr(1);
  p->set_leader(1);
  return r;
}

TEST(MetadataLogTest, RecordRoundTrips) {
  proto::MetadataRecord fence;
  fence.mutable_fence_broker()->set_broker_id(3);
  fence.mutable_fence_broker()->set_broker_epoch(17);
  for (const proto::MetadataRecord& r : {TopicRecord("orders"), fence}) {
    auto decoded = DecodeMetadataRecord(EncodeMetadataRecord(r));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->SerializeAsString(), r.SerializeAsString());
  }
}

TEST(MetadataLogTest, EmptyOrGarbageRecordIsDataLoss) {
  EXPECT_EQ(DecodeMetadataRecord("").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeMetadataRecord("\xff\xff\xff").status().code(), absl::StatusCode::kDataLoss);
  // A truncated record does not parse either.
  const std::string full = EncodeMetadataRecord(TopicRecord("orders"));
  EXPECT_FALSE(DecodeMetadataRecord(full.substr(0, full.size() / 2)).ok());
}

TEST(MetadataLogTest, SnapshotRoundTripsThroughTheState) {
  MetadataState state;
  ASSERT_TRUE(state.Apply(Offset(3), TopicRecord("orders")).ok());
  proto::MetadataRecord broker;
  broker.mutable_broker()->mutable_broker()->set_broker_id(1);
  broker.mutable_broker()->mutable_broker()->set_host("127.0.0.1");
  broker.mutable_broker()->mutable_broker()->set_port(9092);
  ASSERT_TRUE(state.Apply(Offset(5), broker).ok());

  auto decoded = DecodeMetadataSnapshot(EncodeMetadataSnapshot(state.ToSnapshot()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  MetadataState restored;
  ASSERT_TRUE(restored.Restore(*decoded).ok());
  EXPECT_EQ(restored.last_offset(), Offset(5));
  ASSERT_NE(restored.FindTopic("orders"), nullptr);
  ASSERT_NE(restored.FindBroker(NodeId(1)), nullptr);
  EXPECT_EQ(restored.FindBroker(NodeId(1))->epoch, 6);
  EXPECT_EQ(DecodeMetadataSnapshot("\xff\xff").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace brook::coordinator
