// The pure part of the consumer side of the group protocol ("consumer"
// protocol type): member metadata and assignment encoding
// (proto::ConsumerSubscription / ConsumerAssignment), the leader's assignment
// step, how an assignment change turns into revocations, which rebalance
// protocol a member follows, and how a member reacts to group error codes.
// No I/O, no clocks, no shared state: every function may be called from any
// thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "brook/assignor.h"
#include "brook/types.h"
#include "proto/brook.pb.h"

namespace brook::client::group {

inline constexpr char kProtocolType[] = "consumer";

// proto::ConsumerSubscription bytes: topics (sorted, deduplicated), owned
// partitions grouped by topic, their generation and the assignor's user data.
std::string EncodeSubscription(const std::vector<std::string>& topics,
                               const std::vector<TopicPartition>& owned, int32_t generation,
                               const std::string& user_data);
// The leader's view of one member from its JoinGroup metadata.
// InvalidArgument when the bytes do not parse.
absl::StatusOr<MemberSubscription> DecodeSubscription(const proto::JoinGroupMember& member);

// proto::ConsumerAssignment bytes.
std::string EncodeAssignment(const MemberAssignment& assignment);
// Partitions come back sorted and deduplicated. Empty bytes: an empty
// assignment (the coordinator's answer for a member the leader left out).
absl::StatusOr<MemberAssignment> DecodeAssignment(std::string_view bytes);

// The rebalance protocol a member with `assignors` (in preference order)
// follows, and the assignors it advertises: cooperative when every
// configured assignor supports it (then all are advertised); otherwise eager,
// advertising only the assignors that support eager (so "cooperative-sticky"
// is dropped from {"range", "cooperative-sticky"}, as it cannot be run
// eagerly). InvalidArgument for an unknown or duplicate name or an empty list.
struct ProtocolChoice {
  RebalanceProtocol protocol = RebalanceProtocol::kEager;
  std::vector<std::string> advertised;
};
absl::StatusOr<ProtocolChoice> ChooseProtocol(const std::vector<std::string>& assignors);

// The leader's step: decodes every member's metadata, runs the assignor named
// by the group's protocol over `cluster` and encodes each member's share.
// Members absent from the assignor's answer get an empty assignment.
absl::StatusOr<std::map<std::string, std::string>> LeaderAssign(
    const PartitionAssignor& assignor, const std::vector<proto::JoinGroupMember>& members,
    const ClusterView& cluster);

// Union of the topics the members subscribe to (sorted), for the leader's
// metadata look-up. Members whose metadata does not parse are skipped.
std::vector<std::string> SubscribedTopics(const std::vector<proto::JoinGroupMember>& members);

// What a member does with a new assignment, given what it owns now.
struct AssignmentChange {
  std::vector<TopicPartition> revoked;  // owned, not assigned: give up (commit first)
  std::vector<TopicPartition> added;    // assigned, not owned: start consuming
  std::vector<TopicPartition> kept;     // both
  // Cooperative: something was revoked, so rejoin at once; the next round
  // gives the revoked partitions to their new owner.
  bool rejoin = false;
};
// Eager members revoked everything before joining, so `owned` is empty for
// them and everything assigned is added; for cooperative members only
// partitions that move are revoked. Inputs need not be sorted; outputs are.
AssignmentChange DiffAssignment(const std::vector<TopicPartition>& owned,
                                const std::vector<TopicPartition>& assigned,
                                RebalanceProtocol protocol);

// How a member reacts to an error code of JoinGroup / SyncGroup / Heartbeat /
// OffsetCommit.
enum class ErrorAction {
  kNone,          // NONE
  kRejoin,        // REBALANCE_IN_PROGRESS: keep partitions (cooperative), rejoin
  kLostRejoin,    // ILLEGAL_GENERATION: partitions lost; rejoin with the member id
  kLostReset,     // UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID: lost; rejoin with no member id
  kRetry,         // coordinator moved or unavailable, timeouts: try again
  kFatal,         // configuration errors (INCONSISTENT_GROUP_PROTOCOL, INVALID_*, ...)
};
ErrorAction ClassifyGroupError(proto::ErrorCode code);

// Topics of `all` whose whole name matches `pattern`, sorted.
std::vector<std::string> MatchTopics(const std::regex& pattern, const std::vector<std::string>& all);

// A subscription's view of the cluster, compared between metadata checks:
// a change (topic set or a partition count) requires a rebalance.
using TopicSnapshot = std::map<std::string, int32_t>;

}  // namespace brook::client::group
