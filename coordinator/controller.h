// Controller decisions as pure functions of the metadata image: replica
// placement, leader election after a broker is lost or shuts down, in-sync set
// changes asked by leaders, preferred-leader rebalancing. Each returns the
// MetadataRecords to propose; nothing here touches the log, the network or a
// clock, so the rules are unit-tested on their own. The Coordinator proposes
// the records through its (Raft) metadata log and applies them when committed.
//
// Election rule (Kafka's): a new leader is the first replica, in replica
// order, that is live and in the in-sync set; when there is none, the
// partition goes offline (leader -1, in-sync set kept as the last member(s))
// unless the topic sets unclean_leader_election, when the first live replica
// is taken and becomes the whole in-sync set. Every leader change bumps the
// leader epoch by one; an in-sync change alone keeps it.
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/metadata_state.h"
#include "proto/brook.pb.h"
#include "proto/metadata.pb.h"

namespace brook::coordinator {

// Replica lists for a new topic: `partitions` lists of `rf` distinct broker ids
// drawn from `live` (sorted, non-empty, rf <= live.size()). Leaders (the
// first replica) and replicas spread evenly: partition p starts at broker
// (rotation + p) mod n and takes the next rf brokers, so with n brokers each
// leads about partitions / n and hosts about partitions * rf / n.
std::vector<std::vector<int32_t>> PlaceReplicas(const std::vector<int32_t>& live,
                                                int32_t partitions, int32_t rf,
                                                uint64_t rotation);

// Brokers in `lost` (lease lapsed) are fenced: one FenceBrokerRecord each
// (for brokers not already fenced) and, for every partition where one of them
// is the leader or in the in-sync set, a PartitionChangeRecord that removes
// them from the in-sync set (never below one member: the last member stays
// so that a later election knows who has the data) and elects a new leader
// when the leader was lost. `live` is the set of brokers holding a lease
// (disjoint from `lost`).
std::vector<proto::MetadataRecord> OnBrokersLost(const MetadataState& state,
                                                 const std::set<int32_t>& lost,
                                                 const std::set<int32_t>& live);

// Controlled shutdown of `broker`: as OnBrokersLost for it alone, except that
// partitions it leads with no other live in-sync replica keep it as leader
// (they are counted in *remaining_leaders) and it stays in their in-sync set.
// The FenceBrokerRecord (marked controlled_shutdown) is included only when
// remaining_leaders is 0.
std::vector<proto::MetadataRecord> ControlledShutdown(const MetadataState& state, int32_t broker,
                                                      const std::set<int32_t>& live,
                                                      int32_t* remaining_leaders);

// Partitions with no leader (-1) whose in-sync set has a live member get one
// (or, with unclean_leader_election, any live replica).
std::vector<proto::MetadataRecord> ElectLeaderless(const MetadataState& state,
                                                   const std::set<int32_t>& live);

// Validates one AlterIsr entry from `broker` (must be the partition's leader,
// with the current leader epoch; new_isr non-empty, distinct, a subset of the
// replicas, containing the leader; added members must be live and not
// fenced) and returns the PartitionChangeRecord, or an error whose
// ToErrorCode is UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER, FENCED_LEADER_EPOCH,
// UNKNOWN_LEADER_EPOCH or INVALID_REQUEST. A request that changes nothing
// returns the record anyway (harmless to apply).
absl::StatusOr<proto::MetadataRecord> AlterIsr(const MetadataState& state, int32_t broker,
                                               const proto::AlterIsrPartition& request,
                                               const std::set<int32_t>& live);

// Moves leadership back to the preferred replica (the first of the replica
// list) where it is live, in the in-sync set, and not the leader now.
std::vector<proto::MetadataRecord> PreferredLeaderMoves(const MetadataState& state,
                                                        const std::set<int32_t>& live);

}  // namespace brook::coordinator
