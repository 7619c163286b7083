// Kafka-style topic config names (as in NewTopic::configs) to and from
// proto::TopicConfig.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "proto/brook.pb.h"

namespace brook::client {

// Validates and converts. InvalidArgument for an unknown key or a bad value:
//   flush.policy: always|interval|os     flush.ms: >= 0
//   segment.bytes, segment.ms: > 0       retention.ms, retention.bytes: >= -1
//   max.message.bytes, min.insync.replicas, index.interval.bytes: int32 > 0
//   unclean.leader.election.enable: true|false
//   cleanup.policy: delete|compact|compact,delete (or delete,compact)
//   delete.retention.ms, min.compaction.lag.ms: >= 0
//   min.cleanable.dirty.ratio: a number in [0, 1]
absl::StatusOr<proto::TopicConfig> TopicConfigFromMap(const std::map<std::string, std::string>& m);

// The fields set in `c`, with the same names.
std::map<std::string, std::string> TopicConfigToMap(const proto::TopicConfig& c);

}  // namespace brook::client
