// Admin: topic administration (create, delete, list, describe), the
// cluster's state and consumer group administration (list, describe, lag,
// delete, offset resets; Kafka's kafka-consumer-groups.sh). Finds the active
// coordinator through the name servers, trying the other quorum members on
// NOT_COORDINATOR or a connection failure. Thread-safe.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "brook/types.h"

namespace brook::client {

struct AdminConfig {
  std::string nameservers;  // "HOST:PORT,..."; empty: DefaultNameservers()
  std::chrono::milliseconds request_timeout{30000};
};

struct NewTopic {
  std::string name;
  int32_t partitions = 0;          // 0: the server default
  int32_t replication_factor = 0;  // 0: the server default
  // Topic configs, Kafka-style names: flush.policy (always|interval|os),
  // flush.ms, segment.bytes, segment.ms, retention.ms, retention.bytes,
  // max.message.bytes, min.insync.replicas, index.interval.bytes,
  // unclean.leader.election.enable (true|false), cleanup.policy
  // (delete|compact|compact,delete), delete.retention.ms,
  // min.cleanable.dirty.ratio (0..1), min.compaction.lag.ms.
  std::map<std::string, std::string> configs;
};

struct PartitionInfo {
  int32_t partition = 0;
  int32_t leader = -1;
  int32_t leader_epoch = 0;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
  int64_t log_start_offset = -1;  // -1 when the leader could not be asked
  int64_t high_watermark = -1;
};

struct TopicInfo {
  std::string name;
  std::string topic_id;
  std::vector<PartitionInfo> partitions;
  std::map<std::string, std::string> configs;  // the configs set at creation
};

// One coordinator quorum member as the answering coordinator sees it.
struct CoordinatorStatus {
  int32_t id = 0;
  std::string host;
  int32_t port = 0;
  std::string role;             // leader, follower, candidate, unknown
  int64_t term = -1;            // -1 unknown (the answering member knows its own, the leader its followers')
  int64_t match_index = -1;     // known only to the leader; -1 unknown
  int64_t last_contact_ms = -1;  // known only to the leader; -1 unknown
};

struct BrokerStatus {
  int32_t id = 0;
  std::string host;
  int32_t port = 0;
  int64_t broker_epoch = 0;
  bool live = false;    // holds a lease
  bool fenced = false;  // as committed in the metadata log
  int64_t lease_remaining_ms = 0;
  int32_t leader_count = 0;
  int32_t replica_count = 0;
};

struct ClusterInfo {
  int32_t answered_by = -1;  // the coordinator that answered
  int32_t leader_id = -1;    // the coordinator leader, -1 none known
  int64_t term = 0;
  int64_t metadata_offset = -1;
  int64_t commit_index = -1;
  std::vector<CoordinatorStatus> coordinators;
  // Filled only when the leader answered (answered_by == leader_id).
  std::vector<BrokerStatus> brokers;
};

// ---- Consumer groups ----

struct GroupListing {
  std::string group_id;
  std::string protocol_type;  // "consumer"; empty for a group that only stores offsets
  std::string state;          // Empty, PreparingRebalance, CompletingRebalance, Stable
};

struct GroupTopicPartition {
  std::string topic;
  int32_t partition = 0;
  friend bool operator==(const GroupTopicPartition&, const GroupTopicPartition&) = default;
  friend auto operator<=>(const GroupTopicPartition&, const GroupTopicPartition&) = default;
};

struct GroupMemberInfo {
  std::string member_id;
  std::string group_instance_id;  // empty: a dynamic member
  std::string client_id;
  std::string host;
  // Decoded from the member's proto::ConsumerAssignment / ConsumerSubscription
  // when the group's protocol type is "consumer" and the group is Stable (the
  // coordinator hands out metadata and assignments only then); sorted.
  // `assignment_known` is false otherwise (other protocol types, a rebalance
  // in progress, bytes that do not parse).
  bool assignment_known = false;
  std::vector<GroupTopicPartition> assignment;
  std::vector<std::string> subscribed_topics;
};

struct GroupDescription {
  std::string group_id;
  std::string state;
  std::string protocol_type;
  std::string protocol_name;  // the chosen assignor for "consumer"
  int32_t generation = -1;
  std::string leader;  // member id; empty when none
  std::vector<GroupMemberInfo> members;  // sorted by member id
};

// One partition of GroupOffsets: every partition the group has committed an
// offset for or that is assigned to one of its members.
struct GroupPartitionOffsets {
  std::string topic;
  int32_t partition = 0;
  int64_t committed_offset = -1;  // the next offset to consume; -1: nothing committed
  int32_t committed_leader_epoch = -1;
  std::string metadata;           // the commit's metadata string
  int64_t log_end_offset = -1;    // the high watermark; -1: the leader could not be asked
  // log_end_offset - committed_offset (>= 0); -1 when either is unknown.
  int64_t lag = -1;
  // The member the partition is assigned to; all empty when none is (or the
  // assignment is unknown).
  std::string member_id;
  std::string client_id;
  std::string host;
};

// Where ResetGroupOffsets moves each selected partition. Targets outside
// [log start, log end] are clamped into it (as Kafka does).
struct OffsetResetSpec {
  enum class Kind {
    kEarliest,   // the log start offset
    kLatest,     // the log end offset (high watermark)
    kTimestamp,  // the first offset whose record timestamp >= value (ms since the
                 // epoch); the log end when there is none
    kOffset,     // value
    kShiftBy,    // the committed offset + value (needs a committed offset)
  };
  Kind kind = Kind::kEarliest;
  int64_t value = 0;
};

// The partitions ResetGroupOffsets acts on: all_topics (every partition the
// group has committed an offset for), or `topics`: each topic with the listed
// partitions, or all of its partitions when the list is empty.
struct OffsetResetSelection {
  bool all_topics = false;
  std::map<std::string, std::vector<int32_t>> topics;
};

struct OffsetResetResult {
  std::string topic;
  int32_t partition = 0;
  int64_t old_offset = -1;  // committed before; -1: nothing was committed
  int64_t new_offset = -1;  // planned (dry run) or committed
  int64_t log_start_offset = -1;
  int64_t log_end_offset = -1;
};

class Admin {
 public:
  static absl::StatusOr<std::unique_ptr<Admin>> Create(AdminConfig config);
  virtual ~Admin() = default;

  // Creates the topic and waits until every partition has a leader that the
  // name servers route to (or the request timeout passes).
  virtual absl::StatusOr<TopicInfo> CreateTopic(const NewTopic& topic) = 0;
  virtual absl::Status DeleteTopic(const std::string& name) = 0;
  // Raises the topic to `count` partitions in all (new ones empty, same
  // replication factor) and waits until each has a routed leader, like
  // CreateTopic. Records with a key may map to another partition afterwards.
  // InvalidArgument (INVALID_PARTITIONS) unless count exceeds the current
  // count; NotFound for an unknown topic.
  virtual absl::StatusOr<TopicInfo> CreatePartitions(const std::string& topic,
                                                     int32_t count) = 0;
  virtual absl::StatusOr<std::vector<TopicInfo>> ListTopics() = 0;
  // With offsets (log start, high watermark) asked of each partition's leader.
  virtual absl::StatusOr<TopicInfo> DescribeTopic(const std::string& name) = 0;
  // The coordinator quorum and the brokers, as the coordinator leader sees
  // them (API_DESCRIBE_CLUSTER). Asks any coordinator the name servers know
  // and then the leader it names; when no leader answers, returns what a
  // follower knows (no brokers).
  virtual absl::StatusOr<ClusterInfo> DescribeCluster() = 0;

  // ---- Consumer groups (the active coordinator, APIs 54-58) ----

  // Every group the coordinator knows (also groups that only store offsets),
  // sorted by id.
  virtual absl::StatusOr<std::vector<GroupListing>> ListGroups() = 0;
  // State, protocol, generation, leader and members. NotFound
  // (GROUP_ID_NOT_FOUND) for an unknown group; InvalidArgument for an empty id.
  virtual absl::StatusOr<GroupDescription> DescribeGroup(const std::string& group) = 0;
  // Committed offsets with the log end offsets (asked of each partition's
  // leader; -1 where that fails), lag and owning member, sorted by topic and
  // partition. NotFound for an unknown group.
  virtual absl::StatusOr<std::vector<GroupPartitionOffsets>> GroupOffsets(
      const std::string& group) = 0;
  // Deletes Empty groups and their offsets. The outer status is the request's
  // (e.g. no coordinator answered); the map holds each group's own result:
  // NotFound (unknown), FailedPrecondition (NON_EMPTY_GROUP: it has members).
  virtual absl::StatusOr<std::map<std::string, absl::Status>> DeleteGroups(
      const std::vector<std::string>& groups) = 0;
  // Computes new committed offsets for the selected partitions and, unless
  // `dry_run`, commits them (a standalone commit: generation -1, no member).
  // Returns the plan (old and new offset per partition, sorted). Refuses
  // with FailedPrecondition when the group has members: their consumers own
  // the offsets (the coordinator refuses such commits too). An unknown group
  // may be given offsets (it is created by the commit, as in Kafka), but
  // not with all_topics (InvalidArgument: nothing is committed). NotFound for
  // an unknown topic; InvalidArgument for a partition the topic lacks or a
  // shift of a partition with nothing committed. Nothing is committed when
  // any partition fails.
  virtual absl::StatusOr<std::vector<OffsetResetResult>> ResetGroupOffsets(
      const std::string& group, const OffsetResetSelection& selection,
      const OffsetResetSpec& spec, bool dry_run) = 0;
};

}  // namespace brook::client
