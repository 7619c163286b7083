// MetadataState: the in-memory image of the cluster metadata, built by
// applying MetadataRecords in log order. Deterministic: the same records give
// the same image, whichever log (local or replicated) delivered them.
//
// Not thread-safe; the owner (Coordinator) serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/types.h"
#include "proto/brook.pb.h"
#include "proto/metadata.pb.h"

namespace brook::coordinator {

struct BrokerRegistration {
  proto::BrokerInfo info;
  // Unique per registration and increasing: the BrokerRecord's broker_epoch
  // when set (> 0), else the record's log offset + 1.
  int64_t epoch = 0;
  // Lease lost or shut down (FenceBrokerRecord); cleared by re-registering.
  bool fenced = false;
  // Fenced by a controlled shutdown of this registration (see
  // FenceBrokerRecord.controlled_shutdown); cleared with `fenced`.
  bool shut_down = false;
};

class MetadataState {
 public:
  // Applies the record at `offset`. Offsets must strictly increase
  // (FailedPrecondition otherwise). A TopicRecord inserts or replaces the
  // topic of that name; a RemoveTopicRecord removes the topic when name and
  // (if given) topic_id match, and is a no-op otherwise; a BrokerRecord
  // inserts or replaces the broker. A record with no known content is
  // InvalidArgument. On error the image is unchanged.
  // A PartitionChangeRecord sets leader, leader epoch and in-sync set of the
  // partition when topic and topic_id match (no-op otherwise); a
  // FenceBrokerRecord fences the broker when its epoch matches (no-op
  // otherwise). A BrokerRecord clears `fenced`. Consumer group records
  // (GroupRecord, OffsetCommitRecord, RemoveGroupRecord) change nothing here
  // but the offset: the group coordinator applies them.
  absl::Status Apply(Offset offset, const proto::MetadataRecord& record);

  // The whole image (and last_offset) as a snapshot, and back. Restore
  // replaces the image; InvalidArgument on an inconsistent snapshot.
  // group_records are left empty and ignored (the coordinator's group
  // service fills and reads them).
  proto::MetadataSnapshot ToSnapshot() const;
  absl::Status Restore(const proto::MetadataSnapshot& snapshot);

  // Offset of the last applied record; -1 before any.
  Offset last_offset() const { return last_offset_; }

  // Null when absent. Pointers are valid until the next Apply.
  const proto::TopicDescription* FindTopic(const std::string& name) const;
  const BrokerRegistration* FindBroker(NodeId id) const;

  // Ordered by name / id.
  const std::map<std::string, proto::TopicDescription>& topics() const { return topics_; }
  const std::map<int32_t, BrokerRegistration>& brokers() const { return brokers_; }

  // Every partition for which `broker` is a replica, ordered by topic name
  // then partition.
  std::vector<proto::PartitionAssignment> AssignmentsFor(NodeId broker) const;

 private:
  Offset last_offset_{-1};
  std::map<std::string, proto::TopicDescription> topics_;
  std::map<int32_t, BrokerRegistration> brokers_;
};

}  // namespace brook::coordinator
