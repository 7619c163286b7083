// Partition: one partition hosted by this broker — its log, its replica
// assignment (leader, epoch, replicas, ISR), its high watermark and the
// fetches parked on it. PartitionManager owns every hosted partition and
// applies the coordinator's assignments to disk (open, wipe, remove).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/storage/fs.h"
#include "broker/storage/log.h"
#include "common/http/metrics.h"
#include "common/types.h"
#include "proto/brook.pb.h"

namespace brook::broker {

// The name of the file in a partition directory that records the topic id the
// directory belongs to (a re-created topic gets a new id).
inline constexpr char kPartitionMetadataFile[] = "partition.metadata";

// LogConfig for a topic: `topic` fields over `server_defaults` fields over the
// storage defaults. FLUSH_DEFAULT at both levels means kAlways.
storage::LogConfig MergeLogConfig(const proto::TopicConfig& topic,
                                  const proto::TopicConfig& server_defaults);

// One hosted partition. Thread-safe. The log pointer is fixed for the
// Partition's lifetime; a closed partition's log refuses every call.
class Partition {
 public:
  Partition(TopicPartition tp, std::string topic_id, std::unique_ptr<storage::PartitionLog> log);

  const TopicPartition& tp() const { return tp_; }
  const std::string& topic_id() const { return topic_id_; }
  storage::PartitionLog& log() const { return *log_; }

  // The assignment as last received from the coordinator.
  void SetAssignment(const proto::PartitionAssignment& a);
  proto::PartitionAssignment assignment() const;
  NodeId leader() const;
  LeaderEpoch leader_epoch() const;

  // Offsets below the high watermark may be served to consumers: the log end
  // for kInterval/kOs, the durable offset for kAlways (nothing that could
  // vanish in a crash is served).
  Offset high_watermark() const { return Offset(hw_.load(std::memory_order_acquire)); }
  // Recomputes the high watermark from the log; when it advanced, runs (and
  // forgets) every registered waiter. Safe from any thread.
  void RefreshHighWatermark();

  // Registers `waiter` to run once the high watermark next advances (or the
  // partition closes). Waiters run on the thread that advanced it and must not
  // block.
  void AddWaiter(std::function<void()> waiter);

  // Closes the log (fsync) and wakes every waiter. Idempotent.
  absl::Status Close();
  bool closed() const;

  // Per-topic traffic counters (cached registry entries).
  metrics::Counter* bytes_in;
  metrics::Counter* records_in;
  metrics::Counter* bytes_out;
  metrics::Counter* records_out;

 private:
  void WakeWaiters();

  const TopicPartition tp_;
  const std::string topic_id_;
  std::unique_ptr<storage::PartitionLog> log_;
  std::atomic<int64_t> hw_{0};

  mutable absl::Mutex mu_;
  proto::PartitionAssignment assignment_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> waiters_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// Owns the hosted partitions under one directory (<data-dir>/broker), one
// subdirectory <topic>-<partition> each. Thread-safe: Apply runs on the
// heartbeat thread, Get from request handlers.
class PartitionManager {
 public:
  // `fs` and `flusher` must outlive the manager.
  PartitionManager(storage::FileSystem* fs, storage::Flusher* flusher, std::string dir,
                   proto::TopicConfig server_defaults);
  ~PartitionManager();

  // Makes the hosted set equal `assignments`: opens new partitions (wiping a
  // directory left by an older incarnation of the topic), updates leaders and
  // epochs of existing ones, closes removed ones and deletes their
  // directories. With `remove_unknown_dirs`, also deletes partition
  // directories on disk that no assignment names (topics deleted while the
  // broker was down). Returns whether the hosted set or any route changed; a
  // partition that fails to open is logged and skipped (retried next time).
  absl::StatusOr<bool> Apply(const std::vector<proto::PartitionAssignment>& assignments,
                             bool remove_unknown_dirs);

  std::shared_ptr<Partition> Get(const TopicPartition& tp) const;
  std::vector<std::shared_ptr<Partition>> All() const;

  // Closes every partition (fsync). Further Apply calls are refused.
  absl::Status CloseAll();

  const std::string& dir() const { return dir_; }

 private:
  absl::StatusOr<std::shared_ptr<Partition>> OpenPartition(const proto::PartitionAssignment& a);
  absl::Status RemovePartition(const std::shared_ptr<Partition>& p);

  storage::FileSystem* const fs_;
  storage::Flusher* const flusher_;
  const std::string dir_;
  const proto::TopicConfig server_defaults_;

  // Serializes Apply/CloseAll (disk work happens outside mu_).
  absl::Mutex apply_mu_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<TopicPartition, std::shared_ptr<Partition>> partitions_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace brook::broker
