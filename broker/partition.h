// Partition: one partition hosted by this broker — its log, its replica
// assignment (leader, epoch, replicas, ISR), its high watermark and the
// fetches parked on it. PartitionManager owns every hosted partition and
// applies the coordinator's assignments to disk (open, wipe, remove).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/replication/replica_tracker.h"
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

  // Offsets below the high watermark may be served to consumers. The
  // leader's own log end counts as the log end for kInterval/kOs and the
  // durable offset for kAlways (nothing that could vanish in a crash is
  // served). With one replica that is the high watermark; a leader of several
  // replicas takes the minimum with the log ends of the committed in-sync
  // followers; a follower uses min(leader's high watermark, own log end).
  Offset high_watermark() const { return Offset(hw_.load(std::memory_order_acquire)); }
  // Recomputes the high watermark; when it advanced, runs (and forgets) every
  // registered waiter and completes acks=all waiters it passed. Safe from any
  // thread.
  void RefreshHighWatermark();

  // Registers `waiter` to run once the high watermark next advances (or the
  // partition closes). Waiters run on the thread that advanced it and must not
  // block.
  void AddWaiter(std::function<void()> waiter);

  // ---- replication ----
  enum class Role { kNone, kLeader, kFollower };
  struct RoleChange {
    Role before = Role::kNone;
    Role after = Role::kNone;
    bool epoch_changed = false;  // a new leader epoch (or role) since the last update
  };
  // Derives this broker's role from the current assignment. Becoming leader
  // (or a new epoch as leader) resets the follower tracker and records the
  // epoch's start in the log; losing leadership fails acks=all waiters with
  // NOT_LEADER. A committed in-sync set change is applied to the tracker
  // (counted in brook_isr_{shrinks,expands}_total). Call after SetAssignment.
  RoleChange UpdateRole(NodeId self, int64_t now_ms);
  Role role() const;
  bool replicated() const;  // more than one replica assigned
  // The log end offset where the current epoch began (as leader).
  Offset epoch_start_offset() const;

  // Leader: a follower fetch at `fetch_offset`. Refreshes the high watermark.
  // False when `replica` is not a follower of this partition.
  bool RecordFollowerFetch(NodeId replica, Offset fetch_offset, int64_t now_ms);
  // Leader: the in-sync set to ask for now, if a change is due.
  std::optional<std::vector<int32_t>> ProposeIsr(int64_t now_ms, int64_t lag_max_ms) const;
  // Leader: a snapshot of the follower positions.
  std::vector<replication::FollowerState> Followers() const;
  // Follower: the leader reported `leader_hw`; the high watermark becomes
  // min(leader_hw, own log end) (may move back after a truncation).
  void SetFollowerHighWatermark(Offset leader_hw);

  // Registers `waiter` to run once the log end next moves (an append) or the
  // partition closes; follower fetches park on this. Runs on the appending
  // thread; must not block.
  void AddLogEndWaiter(std::function<void()> waiter);
  // Runs the log-end waiters (call after an append).
  void NotifyAppended();

  // acks=all: `done` runs once with NONE when the high watermark passes
  // `last_offset` (NOT_ENOUGH_REPLICAS_AFTER_APPEND when the in-sync set is
  // then smaller than `min_isr`), or with NOT_LEADER when leadership is lost
  // or the partition closes. Runs on the thread that advanced the watermark.
  void AddAckWaiter(Offset last_offset, int32_t min_isr,
                    std::function<void(proto::ErrorCode)> done);
  size_t isr_size() const;

  // Closes the log (fsync) and wakes every waiter. Idempotent.
  absl::Status Close();
  bool closed() const;

  // Per-topic traffic counters (cached registry entries).
  metrics::Counter* bytes_in;
  metrics::Counter* records_in;
  metrics::Counter* bytes_out;
  metrics::Counter* records_out;

 private:
  struct AckWaiter {
    int32_t min_isr;
    std::function<void(proto::ErrorCode)> done;
  };
  void WakeWaiters();
  void AdvanceTo(int64_t target);
  void FailAckWaiters(proto::ErrorCode code);

  const TopicPartition tp_;
  const std::string topic_id_;
  std::unique_ptr<storage::PartitionLog> log_;
  std::atomic<int64_t> hw_{0};

  mutable absl::Mutex mu_;
  proto::PartitionAssignment assignment_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> waiters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> log_end_waiters_ ABSL_GUARDED_BY(mu_);
  std::multimap<int64_t, AckWaiter> ack_waiters_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  Role role_ ABSL_GUARDED_BY(mu_) = Role::kNone;
  int32_t role_epoch_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t epoch_start_ ABSL_GUARDED_BY(mu_) = 0;
  replication::ReplicaTracker tracker_ ABSL_GUARDED_BY(mu_);
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
