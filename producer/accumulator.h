// RecordAccumulator: the producer's per-partition batches, from Send to the
// sender. It chooses partitions (explicit, murmur2 by key, or sticky for null
// keys), closes batches when full or when linger passes, bounds buffered
// memory, keeps at most one request in flight per partition (which keeps
// records in order across retries) and tracks what Flush waits for. It knows
// nothing of the network, so tests drive it with a fake clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "brook/producer.h"
#include "brook/types.h"
#include "common/record_batch.h"

namespace brook::client {

using ProducerClock = std::chrono::steady_clock;

// One batch of one partition. Owned by the accumulator until taken, then by
// the request that carries it, then given back (Requeue) or completed.
struct ProducerBatch {
  struct Entry {
    Producer::Callback callback;
    int64_t timestamp_ms;
  };
  ProducerBatch(TopicPartition tp_in, uint64_t id_in, RecordBatchBuilder::Options options,
                ProducerClock::time_point now)
      : tp(std::move(tp_in)), id(id_in), builder(std::in_place, options), created(now) {}

  // Encodes (and compresses) the batch once; later calls keep the bytes.
  void Build() {
    if (builder) {
      bytes = builder->Build();
      builder.reset();
    }
  }
  int record_count() const { return static_cast<int>(entries.size()); }
  // Uncompressed size while open; built size after Build.
  size_t size_bytes() const { return builder ? builder->size_bytes() : bytes.size(); }

  TopicPartition tp;
  uint64_t id;  // creation order; Flush waits for ids up to a mark
  std::optional<RecordBatchBuilder> builder;  // until Build
  std::vector<uint8_t> bytes;                 // after Build
  std::vector<Entry> entries;                 // one per record, in order
  size_t memory = 0;                          // counted against buffer_memory
  ProducerClock::time_point created;
  int attempts = 0;  // failed sends so far
  absl::Status last_error;
};

using BatchPtr = std::unique_ptr<ProducerBatch>;

struct AccumulatorConfig {
  size_t batch_bytes = 256 * 1024;
  std::chrono::milliseconds linger{5};
  size_t buffer_memory = 64 * 1024 * 1024;
  std::chrono::milliseconds max_block{60000};
  std::chrono::milliseconds retry_backoff{100};
  std::chrono::milliseconds retry_backoff_max{1000};
  std::chrono::milliseconds delivery_timeout{120000};
  RecordBatchBuilder::Options builder_options;
};

// The bytes a record counts against buffer_memory: key, value and headers
// plus a fixed per-record overhead.
size_t RecordMemory(const ProducerRecord& record);
inline constexpr size_t kRecordOverheadBytes = 16;

// Thread-safe; one mutex guards everything and is held only briefly.
class RecordAccumulator {
 public:
  using Clock = ProducerClock;
  explicit RecordAccumulator(AccumulatorConfig config, uint32_t seed = std::random_device{}());

  // Appends `record` to its partition's open batch (creating one), and moves
  // `callback` into the batch. Blocks up to max_block while buffer_memory is
  // full. On failure `callback` is left untouched. Errors: FailedPrecondition
  // (closed), ResourceExhausted (memory stayed full, or the record alone is
  // larger than buffer_memory), UNKNOWN_TOPIC_OR_PARTITION (the partition
  // count is needed and unknown: call SetPartitionCount and retry),
  // InvalidArgument (explicit partition out of range). Returns the partition.
  absl::StatusOr<int32_t> Append(const ProducerRecord& record, int64_t timestamp_ms,
                                 Producer::Callback& callback, Clock::time_point now);
  void SetPartitionCount(const std::string& topic, int32_t count);

  // Closes open batches whose linger passed and returns the partitions whose
  // head batch may be sent now (closed, none in flight, not backing off).
  // `next` gets the earliest time something else may become sendable.
  std::vector<TopicPartition> Ready(Clock::time_point now, Clock::time_point* next);
  // Takes tp's closed batches in order (at least one, then while the total
  // stays within max_bytes) and marks tp in flight.
  std::vector<BatchPtr> Take(const TopicPartition& tp, size_t max_bytes);
  // Gives back batches taken from tp after a retriable failure `error`: they
  // go back to the head of the queue, sendable after the back-off.
  void Requeue(const TopicPartition& tp, std::vector<BatchPtr> batches, Clock::time_point now,
               absl::Status error);
  // Delays tp's head batch (no leader, no connection) by the back-off.
  void Backoff(const TopicPartition& tp, Clock::time_point now, absl::Status error);
  // After the callbacks of taken batches ran: frees their memory, clears tp's
  // in-flight mark and wakes Flush waiters.
  void Complete(const TopicPartition& tp, const std::vector<BatchPtr>& batches);
  // Removes (from partitions not in flight) closed batches older than
  // delivery_timeout, in order from each queue's head. The caller fails them
  // and then calls Release.
  std::vector<BatchPtr> Expired(Clock::time_point now);
  // Frees the memory of batches removed by Expired or DrainAll.
  void Release(const std::vector<BatchPtr>& batches);
  // Removes every batch not in flight (open ones too), for Close.
  std::vector<BatchPtr> DrainAll();

  // Flush: closes every open batch and returns the mark to wait for.
  uint64_t BeginFlush();
  // Waits until every batch with id <= mark completed, or the deadline.
  bool WaitFlushed(uint64_t mark, Clock::time_point deadline);

  // The sender sleeps here until Wake (new or closed batch, completion) or
  // `until`.
  void WaitForWork(Clock::time_point until);
  void Wake();

  // Later Appends fail; blocked Appends return at once.
  void Close();

  size_t buffered_bytes() const;
  bool empty() const;  // no batch anywhere, including in flight

 private:
  struct PartitionQueue {
    BatchPtr open;
    std::deque<BatchPtr> closed;  // in order; front is the head
    bool in_flight = false;
    Clock::time_point retry_at{};
  };
  struct TopicState {
    int32_t partition_count = 0;  // 0: unknown
    int32_t sticky = -1;          // the null-key partition; -1: choose anew
    int32_t previous_sticky = -1;  // the next sticky partition differs from it
    std::vector<PartitionQueue> partitions;
  };

  PartitionQueue& QueueFor(TopicState& ts, const std::string& topic, int32_t partition)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PartitionQueue* FindQueue(const TopicPartition& tp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseOpen(TopicState& ts, PartitionQueue& q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int32_t NewSticky(TopicState& ts, int32_t previous) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Clock::duration BackoffFor(int attempts) const;

  const AccumulatorConfig config_;
  mutable absl::Mutex mu_;
  absl::CondVar space_cv_;  // buffer memory freed, or closed
  absl::CondVar flush_cv_;  // a batch completed
  absl::CondVar work_cv_;   // the sender has something to do
  bool work_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  size_t buffered_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<uint64_t> incomplete_ ABSL_GUARDED_BY(mu_);  // ids of live batches
  absl::flat_hash_map<std::string, TopicState> topics_ ABSL_GUARDED_BY(mu_);
  std::minstd_rand rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace brook::client
