// Consumer (assign mode): reads assigned partitions from chosen positions.
// A background fetcher keeps a bounded prefetch per partition using
// long-poll fetches, so Poll returns as soon as data arrives.
// Not thread-safe: one thread uses a Consumer (as with Kafka's consumer).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "brook/types.h"

namespace brook::client {

enum class OffsetReset { kEarliest, kLatest };

struct ConsumerConfig {
  std::string nameservers;  // "HOST:PORT,..."; empty: DefaultNameservers()
  size_t fetch_max_bytes = 50 * 1024 * 1024;
  size_t max_partition_fetch_bytes = 1024 * 1024;
  int32_t fetch_min_bytes = 1;
  std::chrono::milliseconds fetch_max_wait{500};
  size_t max_poll_records = 500;
  // Prefetched bytes per partition above which fetching pauses.
  size_t prefetch_bytes = 4 * 1024 * 1024;
  // Position of an assigned partition with no Seek.
  OffsetReset auto_offset_reset = OffsetReset::kLatest;
  std::chrono::milliseconds request_timeout{30000};
};

class Consumer {
 public:
  static absl::StatusOr<std::unique_ptr<Consumer>> Create(ConsumerConfig config);
  virtual ~Consumer() = default;

  // Replaces the assignment. Partitions keep their position if already assigned.
  virtual absl::Status Assign(const std::vector<TopicPartition>& partitions) = 0;
  virtual std::vector<TopicPartition> Assignment() const = 0;

  virtual absl::Status Seek(const TopicPartition& tp, int64_t offset) = 0;
  virtual absl::Status SeekToBeginning(const std::vector<TopicPartition>& tps) = 0;
  virtual absl::Status SeekToEnd(const std::vector<TopicPartition>& tps) = 0;
  // Moves to the first offset whose timestamp is >= timestamp_ms (the end
  // when there is none).
  virtual absl::Status SeekToTimestamp(const std::vector<TopicPartition>& tps,
                                       int64_t timestamp_ms) = 0;
  // The offset of the next record Poll will return for `tp`.
  virtual absl::StatusOr<int64_t> Position(const TopicPartition& tp) = 0;

  // Returns up to max_poll_records records, waiting up to `timeout` for the
  // first. Empty when none arrived. Records of one partition come in offset
  // order; records before a seeked offset inside a batch are skipped.
  virtual absl::StatusOr<std::vector<ConsumerRecord>> Poll(std::chrono::milliseconds timeout) = 0;

  // Partitions of a topic, from the name servers.
  virtual absl::StatusOr<int32_t> PartitionCount(const std::string& topic) = 0;

  virtual void Close() = 0;
};

}  // namespace brook::client
