// Consumer: reads partitions either chosen by the caller (Assign) or given
// to it as a member of a consumer group (Subscribe, Kafka's group protocol
// with the assignors of brook/assignor.h). A background fetcher keeps a
// bounded prefetch per partition using long-poll fetches, so Poll returns as
// soon as data arrives; a background thread heartbeats to the group
// coordinator while the consumer is in a group.
// Not thread-safe: one thread uses a Consumer (as with Kafka's consumer);
// rebalance callbacks and commit callbacks run on that thread, inside Poll,
// Commit*, Unsubscribe or Close.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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

  // ---- Consumer groups (Subscribe, and Commit* in either mode) ----
  // The group whose offsets Commit* writes and Subscribe joins. Empty: no
  // group (Subscribe and Commit* fail with FailedPrecondition).
  std::string group_id;
  // Static membership (KIP-345): a member that restarts with the same
  // instance id within the session timeout gets its partitions back without
  // a rebalance. Unset: a dynamic member.
  std::optional<std::string> group_instance_id;
  std::string client_id = "brook-consumer";
  std::chrono::milliseconds session_timeout{10000};
  std::chrono::milliseconds heartbeat_interval{3000};
  // A member that does not call Poll for this long leaves the group (its
  // partitions go to others) and rejoins on its next Poll.
  std::chrono::milliseconds max_poll_interval{300000};
  // Assignors in order of preference: "range", "roundrobin", "sticky",
  // "cooperative-sticky" (incremental: only moved partitions are revoked).
  // Every member of a group must list at least one in common. A member
  // follows the cooperative protocol only when every listed assignor supports
  // it; otherwise it is eager and advertises only the eager-capable ones (so
  // the default list runs "range").
  std::vector<std::string> assignors = {"range", "cooperative-sticky"};
  // Commit the positions of owned partitions every auto_commit_interval
  // (inside Poll), before a revocation or rejoin and in Close. Group members
  // only: in assign mode commit explicitly.
  bool enable_auto_commit = true;
  std::chrono::milliseconds auto_commit_interval{5000};
  // How often subscribed topics are checked for new partitions and a pattern
  // for new topics (a change triggers a rebalance); also how old the
  // partition counts PartitionCount returns may be.
  std::chrono::milliseconds metadata_max_age{5000};
};

// A committed position: the next offset to consume, with optional metadata.
struct OffsetAndMetadata {
  int64_t offset = -1;
  std::string metadata;
  int32_t leader_epoch = -1;  // -1: unknown
  bool operator==(const OffsetAndMetadata&) const = default;
};

// Told about ownership changes of a group member. Runs on the user's thread
// inside Poll (or Unsubscribe / Close). With an eager assignor every
// rebalance revokes everything owned and then assigns the new set; with
// cooperative-sticky only partitions that move are revoked, and a second
// rebalance assigns them to their new owner.
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // Before the partitions are given up: commit what was processed here (with
  // auto-commit on, the consumer committed their positions just before).
  // Cooperative: the revocation comes after the first rebalance round, which
  // assigns the partitions to nobody, so commits for them are still accepted
  // here; once the second round gives them to another member, the
  // coordinator refuses them (PARTITION_NOT_OWNED).
  virtual void OnPartitionsRevoked(const std::vector<TopicPartition>& /*partitions*/) {}
  // After the partitions were added; their positions start at the committed
  // offsets (auto_offset_reset where none).
  virtual void OnPartitionsAssigned(const std::vector<TopicPartition>& /*partitions*/) {}
  // The partitions were lost without a clean revocation (the session expired,
  // the member was fenced): others may own them already, so commits would fail.
  virtual void OnPartitionsLost(const std::vector<TopicPartition>& partitions) {
    OnPartitionsRevoked(partitions);
  }
};

// The consumer's view of its group membership (for the topic spout, tests
// and tools).
struct GroupMembership {
  std::string group_id;
  std::string member_id;  // empty when not in the group
  int32_t generation = -1;
  std::string protocol;  // the chosen assignor
};

class Consumer {
 public:
  static absl::StatusOr<std::unique_ptr<Consumer>> Create(ConsumerConfig config);
  virtual ~Consumer() = default;

  // Replaces the assignment (assign mode; FailedPrecondition while
  // subscribed). Partitions keep their position if already assigned; a newly
  // assigned partition starts at the group's committed offset when
  // config.group_id is set and one exists.
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

  // Partitions of a topic, from the name servers (cached: asked again when
  // the routes of the assigned topics are older than metadata_max_age).
  virtual absl::StatusOr<int32_t> PartitionCount(const std::string& topic) = 0;

  // ---- Consumer groups ----
  // Joins the group (config.group_id) subscribed to `topics`; partitions are
  // assigned by the group and arrive through Poll (and `listener`, which must
  // outlive the subscription; null: none). Replaces any subscription or
  // assignment. The join itself happens inside Poll.
  virtual absl::Status Subscribe(const std::vector<std::string>& topics,
                                 RebalanceListener* listener = nullptr) = 0;
  // Subscribes to every topic whose whole name matches the ECMAScript
  // regular expression `pattern`, including topics created later.
  virtual absl::Status SubscribePattern(const std::string& pattern,
                                        RebalanceListener* listener = nullptr) = 0;
  // Revokes the owned partitions (listener, auto-commit) and leaves the group.
  virtual absl::Status Unsubscribe() = 0;
  // The subscribed topics (for a pattern: the topics it matches now).
  virtual std::vector<std::string> Subscription() const = 0;
  virtual GroupMembership Membership() const = 0;

  // Pauses fetching (Poll returns nothing for them) without giving the
  // partitions up; Resume undoes it. Only for assigned partitions.
  virtual absl::Status Pause(const std::vector<TopicPartition>& partitions) = 0;
  virtual absl::Status Resume(const std::vector<TopicPartition>& partitions) = 0;
  virtual std::vector<TopicPartition> Paused() const = 0;

  // Commits the current positions of every assigned partition (CommitSync())
  // or the given offsets, waiting until they are durable. In a group the
  // commit carries the member's generation (a stale member gets
  // ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID / REBALANCE_IN_PROGRESS errors);
  // in assign mode it commits as a standalone consumer (generation -1), which
  // the coordinator accepts only while the group has no members.
  virtual absl::Status CommitSync() = 0;
  virtual absl::Status CommitSync(const std::map<TopicPartition, OffsetAndMetadata>& offsets) = 0;
  // Sends the commit without waiting; `done` (optional) runs on the user's
  // thread inside a later Poll / Commit* / Close with the outcome.
  using CommitCallback = std::function<void(const absl::Status&)>;
  virtual void CommitAsync(CommitCallback done = nullptr) = 0;
  virtual void CommitAsync(const std::map<TopicPartition, OffsetAndMetadata>& offsets,
                           CommitCallback done = nullptr) = 0;
  // The group's committed offsets for `partitions` (absent: nothing committed).
  virtual absl::StatusOr<std::map<TopicPartition, OffsetAndMetadata>> Committed(
      const std::vector<TopicPartition>& partitions) = 0;

  // Commits (with auto-commit on), revokes and leaves the group (a static
  // member stays until its session expires), then stops the threads.
  virtual void Close() = 0;
};

}  // namespace brook::client
