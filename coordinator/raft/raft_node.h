// RaftNode: one member of a Raft group as a pure state machine. The caller
// drives it (Tick, Step, Propose, TransferLeadership) and collects committed
// entries (TakeCommitted); the node reaches its log, hard state, network, clock
// and random source only through the interfaces of raft.h.
//
// Durability rule: every public call ends by making the log durable
// (RaftLog::Sync) and saving the hard state if either changed, and only then
// hands the messages it produced to the Transport. So a vote is never sent
// before the vote is durable, and an AppendEntries acknowledgement never before
// the entries it acknowledges are (an installed snapshot is saved before its
// acknowledgement too). Propose is the one exception: it appends
// without syncing (the leader only sends AppendEntries, never an ack, and
// counts its own log toward a quorum only up to what it has synced), so a
// burst of proposals shares one sync at the next Tick or Step.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/raft/raft.h"

namespace brook::raft {

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };

const char* RoleName(Role role);
inline std::ostream& operator<<(std::ostream& os, Role role) { return os << RoleName(role); }

// Not thread-safe: one thread (or strand) owns a RaftNode and every object it
// was given, which must outlive it. After a storage error every call returns
// that error: the node has stopped and must be recreated from durable state.
class RaftNode {
 public:
  // Loads the hard state and the latest snapshot (bringing the log in line
  // with it) and starts as a follower. `config.voters` must contain `config.id`.
  static absl::StatusOr<std::unique_ptr<RaftNode>> Create(RaftConfig config, RaftLog* log,
                                                          HardStateStore* hard_state,
                                                          SnapshotStore* snapshots,
                                                          Transport* transport, Clock* clock,
                                                          Random* random);

  // Advances timers to clock->NowMs(): elections, heartbeats, check-quorum.
  // Call at least a few times per heartbeat interval.
  absl::Status Tick();
  // Handles one message addressed to this node.
  absl::Status Step(const Message& message);
  // Appends `data` to the log if this node is the leader and no leadership
  // transfer is under way; returns its index. The entry is committed (and
  // then returned by TakeCommitted) only if this node stays leader long
  // enough; a caller learns the outcome by watching the committed stream.
  // Not the leader: FailedPrecondition (see leader() for a hint); transfer in
  // progress: Unavailable.
  absl::StatusOr<LogIndex> Propose(std::string data, EntryType type = EntryType::kNormal);
  // Leader only: hands leadership to `target` once its log is caught up
  // (TimeoutNow); proposals are refused until then or until an election
  // timeout passes.
  absl::Status TransferLeadership(NodeId target);
  // Entries committed since the last call (each exactly once per node
  // lifetime, in index order, no-op entries included). FailedPrecondition
  // while a snapshot awaits TakeSnapshot.
  absl::StatusOr<std::vector<Entry>> TakeCommitted();
  // A snapshot the caller must load into its state machine before applying
  // further entries (one received from the leader, or the stored one at start
  // when it is ahead of RaftConfig::applied); nullopt if none.
  absl::StatusOr<std::optional<Snapshot>> TakeSnapshot();
  // The caller's state machine, serialized as `data`, reflects every entry
  // through `through` (<= applied_index()): store it as the snapshot and drop
  // those entries from the log. Followers too far behind get the snapshot.
  absl::Status Compact(LogIndex through, std::string data);

  NodeId id() const { return config_.id; }
  Role role() const { return role_; }
  Term term() const { return term_; }
  std::optional<NodeId> leader() const { return leader_; }
  std::optional<NodeId> voted_for() const { return voted_for_; }
  LogIndex commit_index() const { return commit_; }
  LogIndex applied_index() const { return applied_; }
  LogIndex last_index() const { return log_->LastIndex(); }
  // The latest snapshot's index (0 if none).
  LogIndex snapshot_index() const { return snapshot_ ? snapshot_->index : LogIndex(0); }

  // What a leader knows of each other voter (ordered by id); empty when not
  // the leader. last_heard_ms is in the node's Clock.
  struct PeerProgress {
    NodeId id;
    LogIndex match;
    LogIndex next;
    int64_t last_heard_ms = 0;
  };
  std::vector<PeerProgress> peer_progress() const;

 private:
  struct Progress {
    LogIndex next;   // next index to send (optimistically advanced on send)
    LogIndex match;  // highest index known replicated (and durable) there
    int64_t last_heard_ms = 0;
  };
  enum class CampaignKind { kPreVote, kVote, kTransfer };

  RaftNode(RaftConfig config, RaftLog* log, HardStateStore* hard_state, SnapshotStore* snapshots,
           Transport* transport, Clock* clock, Random* random);
  absl::Status Init();

  absl::Status Finish(absl::Status status, bool sync);
  absl::Status TickInternal();
  absl::Status StepInternal(const Message& m);
  absl::Status Campaign(CampaignKind kind);
  absl::Status BecomeLeader();
  void BecomeFollower(Term term, std::optional<NodeId> leader);
  absl::Status HandleVoteRequest(const Message& m);
  absl::Status HandleVoteResponse(const Message& m);
  absl::Status HandleAppendEntries(const Message& m);
  absl::Status HandleInstallSnapshot(const Message& m);
  absl::Status HandleAppendResponse(const Message& m);
  absl::Status SendAppend(NodeId to, bool allow_empty);
  absl::Status MaybeCommit();
  absl::StatusOr<bool> LogUpToDate(LogIndex last_index, Term last_term);
  void ResetElectionTimer();
  bool InLease(int64_t now) const;
  size_t Quorum() const { return config_.voters.size() / 2 + 1; }
  void Send(Message m);

  const RaftConfig config_;
  RaftLog* const log_;
  HardStateStore* const hard_state_;
  SnapshotStore* const snapshots_;
  Transport* const transport_;
  Clock* const clock_;
  Random* const random_;

  absl::Status failed_;
  Role role_ = Role::kFollower;
  Term term_;
  std::optional<NodeId> voted_for_;
  std::optional<NodeId> leader_;
  HardState saved_;
  LogIndex commit_;
  LogIndex applied_;
  bool log_dirty_ = false;
  LogIndex synced_index_;             // the log is durable through here
  std::optional<Snapshot> snapshot_;  // the latest (durable) snapshot
  bool snapshot_pending_ = false;     // snapshot_ not yet taken by the caller

  int64_t election_deadline_ms_ = 0;
  int64_t last_leader_contact_ms_ = 0;
  bool heard_from_leader_ = false;

  // Candidate and pre-candidate: responses received this campaign.
  absl::flat_hash_map<NodeId, bool> votes_;

  // Leader only.
  absl::flat_hash_map<NodeId, Progress> progress_;
  int64_t heartbeat_deadline_ms_ = 0;
  int64_t check_quorum_deadline_ms_ = 0;
  std::optional<NodeId> transfer_target_;
  int64_t transfer_deadline_ms_ = 0;

  std::vector<Message> outbox_;
};

}  // namespace brook::raft
