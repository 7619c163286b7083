// Admin: topic administration (create, delete, list, describe) and the
// cluster's state. Finds the active coordinator through the name servers,
// trying the other quorum members on NOT_COORDINATOR or a connection failure.
// Thread-safe.
#pragma once

#include <chrono>
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
  // unclean.leader.election.enable (true|false).
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

class Admin {
 public:
  static absl::StatusOr<std::unique_ptr<Admin>> Create(AdminConfig config);
  virtual ~Admin() = default;

  // Creates the topic and waits until every partition has a leader that the
  // name servers route to (or the request timeout passes).
  virtual absl::StatusOr<TopicInfo> CreateTopic(const NewTopic& topic) = 0;
  virtual absl::Status DeleteTopic(const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<TopicInfo>> ListTopics() = 0;
  // With offsets (log start, high watermark) asked of each partition's leader.
  virtual absl::StatusOr<TopicInfo> DescribeTopic(const std::string& name) = 0;
  // The coordinator quorum and the brokers, as the coordinator leader sees
  // them (API_DESCRIBE_CLUSTER). Asks any coordinator the name servers know
  // and then the leader it names; when no leader answers, returns what a
  // follower knows (no brokers).
  virtual absl::StatusOr<ClusterInfo> DescribeCluster() = 0;
};

}  // namespace brook::client
