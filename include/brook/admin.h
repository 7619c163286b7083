// Admin: topic administration (create, delete, list, describe). Finds the
// active coordinator through the name servers. Thread-safe.
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
  // max.message.bytes, min.insync.replicas, index.interval.bytes.
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
};

}  // namespace brook::client
