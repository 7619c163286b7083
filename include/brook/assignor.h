// Partition assignors for consumer groups: the pure function a group leader
// runs to split the partitions of the group's topics among its members
// (Kafka's ConsumerPartitionAssignor model). Built-ins: "range",
// "roundrobin", "sticky" and "cooperative-sticky", plus the KIP-429 helper
// that turns a target assignment into a safe cooperative rebalance round.
//
// Everything here is a value computation: no I/O, no clocks, no randomness.
// Assignors are stateless and immutable after construction, so one instance
// may be used from any number of threads at once. Output is deterministic:
// the same input (in any member order) gives the same assignment, with every
// partition list sorted by (topic, partition).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "brook/types.h"

namespace brook::client {

// How a group moves partitions between members during a rebalance.
enum class RebalanceProtocol {
  // Every member revokes all its partitions before joining; the new
  // assignment is handed out in one round ("stop the world").
  kEager,
  // Members keep their partitions while the group rebalances and revoke only
  // those that move to another member; moved partitions reach their new owner
  // in a second round (KIP-429).
  kCooperative,
};

// Generation of a member that has never been assigned anything.
inline constexpr int32_t kNoGeneration = -1;

// What one member sent when joining: the input of the leader's assignor for
// that member.
struct MemberSubscription {
  // Unique within the group; assigned by the coordinator. Must be non-empty.
  std::string member_id;
  // Static membership: a stable id the user configured. Unique within the
  // group when set. Range and round-robin order static members by it, so a
  // restarted static member gets the same partitions back.
  std::optional<std::string> group_instance_id;
  // Subscribed topics (any order, duplicates ignored). Topics absent from the
  // cluster view are skipped: they may not exist yet.
  std::vector<std::string> topics;
  // Partitions the member holds now (for the eager protocol: the partitions of
  // its last assignment, which it has already revoked). Used by the sticky
  // assignors and the cooperative helper; range and round-robin ignore them.
  // Claims on unknown topics, on topics the member no longer subscribes to,
  // or on partition numbers beyond the topic's count are ignored.
  std::vector<TopicPartition> owned_partitions;
  // Generation in which the member received `owned_partitions`;
  // kNoGeneration when it owns nothing. When several members claim one
  // partition, the claim from the newest generation is the valid one.
  int32_t generation = kNoGeneration;
  // Opaque bytes from PartitionAssignor::SubscriptionUserData on the member.
  std::string user_data;
};

// The leader's view of the cluster: the partition count of each topic that at
// least one member may subscribe to. Counts must be >= 0.
struct ClusterView {
  std::map<std::string, int32_t> partition_counts;
};

// What one member receives.
struct MemberAssignment {
  // Sorted by (topic, partition), no duplicates.
  std::vector<TopicPartition> partitions;
  // Opaque bytes for the member's assignor; empty for the built-ins.
  std::string user_data;
};

// The leader's answer for the whole group: one entry per member id of the
// input (members with nothing to do get an empty assignment). Each partition
// appears in at most one member's list.
struct GroupAssignment {
  std::map<std::string, MemberAssignment> members;
};

// A strategy for assigning partitions, selected by name during the group
// join (the "protocol name" each member advertises).
class PartitionAssignor {
 public:
  virtual ~PartitionAssignor() = default;

  // The protocol name on the wire, e.g. "range". Stable; never empty.
  virtual std::string_view Name() const = 0;

  // Rebalance protocols the assignor can be used with, eager first when both.
  virtual std::vector<RebalanceProtocol> SupportedProtocols() const = 0;

  // Bytes a member sends in MemberSubscription::user_data when it joins with
  // this assignor. The built-ins need none and return an empty string.
  virtual std::string SubscriptionUserData(const std::vector<std::string>& topics) const;

  // Computes the assignment for `members` over `cluster`.
  //
  // Every partition of a topic some member subscribes to is assigned to
  // exactly one member subscribed to that topic; a member only receives
  // partitions of topics it subscribes to.
  //
  // Errors (InvalidArgument): an empty or duplicate member id, a group
  // instance id used by two members, a negative partition count. An empty
  // `members` gives an empty assignment.
  virtual absl::StatusOr<GroupAssignment> Assign(
      const ClusterView& cluster, const std::vector<MemberSubscription>& members) const = 0;
};

// "range" (eager): for each topic separately, the partitions are split into
// consecutive ranges over the topic's subscribers in member order (static
// members by group instance id first, then dynamic members by member id);
// the first (count % subscribers) members get one partition more. Two members
// on two topics of 3 partitions: C0 gets p0,p1 of both, C1 gets p2 of both.
std::unique_ptr<PartitionAssignor> MakeRangeAssignor();

// "roundrobin" (eager): all partitions of all subscribed topics, sorted by
// (topic, partition), are dealt one at a time to the members in member order
// (as for range) cyclically, skipping members not subscribed to the topic.
std::unique_ptr<PartitionAssignor> MakeRoundRobinAssignor();

// "sticky" (eager): a balanced assignment that leaves as many partitions as
// possible with the member that validly owns them.
//
// Ownership: for each partition the claim with the newest generation is
// valid and older claims lose; two claims from the same newest generation are
// both invalid (the partition is treated as unowned) — either way the
// partition goes to one member.
//
// Balance: when the assignment is done, for any two members X and Y with
// |X| >= |Y| + 2, Y subscribes to none of the topics of X's partitions. In
// particular members with the same subscription differ by at most one
// partition.
//
// Stickiness: valid owned partitions move only to restore balance, newly
// dealt partitions moving before owned ones, and preferably to a member that
// claimed them in an older generation. When all members subscribe to the same
// topics, the number of valid owned partitions kept is the maximum possible
// for a balanced assignment. With differing subscriptions it is a greedy best
// effort (as Kafka's), not a guaranteed optimum.
//
// Cost: each balancing move re-sorts the members by count (O(M log M) for M
// members) and, with differing subscriptions, may scan every pair of members
// for a movable partition; with equal subscriptions the first pair succeeds.
std::unique_ptr<PartitionAssignor> MakeStickyAssignor();

// "cooperative-sticky" (cooperative only): computes the same target as
// "sticky", then hands it out with PlanCooperativeRound: partitions that would
// move from one member to another are withheld this round. Members that see an
// owned partition missing from their assignment revoke it and rejoin; the next
// rebalance assigns the then unowned partitions. Not offered for the eager
// protocol: there members report partitions they have already revoked, and
// withholding them would leave them unassigned with no member left to ask for
// the follow-up rebalance ("sticky" is the eager equivalent).
std::unique_ptr<PartitionAssignor> MakeCooperativeStickyAssignor();

// The built-in assignor with protocol name `name`; NotFound otherwise.
absl::StatusOr<std::unique_ptr<PartitionAssignor>> MakeAssignor(std::string_view name);

// One round of a cooperative rebalance (KIP-429), derived from the members'
// current ownership and a target assignment.
struct CooperativeRound {
  // What to send this round: the target minus the withheld partitions.
  GroupAssignment assignment;
  // Per member (only members with something to revoke): the partitions it
  // claims that are not in its round assignment, sorted. The member stops
  // consuming them (and commits) before acting on the new assignment.
  std::map<std::string, std::vector<TopicPartition>> revoked;
  // Partitions of the target withheld from their target owner because another
  // member claims them now, sorted. Non-empty means a follow-up rebalance is
  // needed to hand them out once their previous owner has revoked them.
  std::vector<TopicPartition> withheld;
};

// Splits a move to `target` into a safe round. A partition assigned to member
// M in `target` is withheld when M does not claim it and some other member
// does (in any generation: stale claims are treated as live, because their
// holder may still be consuming). Consequently, once every member has applied
// its round assignment, no partition is held by two members; and if the next
// round starts from that ownership and a target that is a superset of it,
// nothing more needs to be withheld.
//
// Errors (InvalidArgument): `members` invalid as for Assign (empty or
// duplicate member id, shared group instance id), a member of `target` that
// is not in `members`, or a partition assigned to two members in `target`.
// Members absent from `target` get an empty assignment. Cost: O(P log P) for
// P claimed and assigned partitions, plus O(members) per member of `target`.
absl::StatusOr<CooperativeRound> PlanCooperativeRound(
    const std::vector<MemberSubscription>& members, const GroupAssignment& target);

}  // namespace brook::client
