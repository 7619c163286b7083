// Value types shared by Brook's client libraries: records as sent and
// received, topic-partitions, and client-side configuration helpers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace brook::client {

struct Header {
  std::string key;
  std::optional<std::string> value;
  bool operator==(const Header&) const = default;
};

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};

// A record to send. Unset `partition`: chosen by key (murmur2, the same
// partition as Kafka's default partitioner) or, for a null key, by the sticky
// partitioner. Unset `timestamp_ms`: the time of Send.
struct ProducerRecord {
  std::string topic;
  std::optional<int32_t> partition;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<Header> headers;
  std::optional<int64_t> timestamp_ms;
};

// Where an acknowledged record was stored. offset is -1 with acks=0.
struct RecordMetadata {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;
};

struct ConsumerRecord {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<Header> headers;
};

enum class CompressionType { kNone, kZstd };

// The name servers to use when a config leaves them empty: $BROOK_NAMESERVER
// if set, else "127.0.0.1:9876".
std::string DefaultNameservers();

}  // namespace brook::client
