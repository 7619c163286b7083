// The Raft consensus core's vocabulary: log entries, messages, configuration,
// and the small interfaces through which a RaftNode (raft_node.h) reaches its
// durable log, its durable hard state, the network, a clock and a random source.
// Nothing here does I/O; implementations are supplied by the caller (the
// in-memory ones in memory_storage.h serve tests and the simulation).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/types.h"

namespace brook::raft {

// Position of an entry in the Raft log. The first entry has index 1; index 0
// stands for "before the log" and has term 0.
using LogIndex = NamedType<int64_t, struct RaftLogIndexTag>;

enum class EntryType : uint8_t {
  kNormal = 0,  // a client proposal; `data` is opaque to Raft
  kNoop = 1,    // appended by every new leader so it can commit its term
};

struct Entry {
  Term term;
  LogIndex index;
  EntryType type = EntryType::kNormal;
  std::string data;
  bool operator==(const Entry&) const = default;
};

enum class MessageType : uint8_t {
  kPreVote,
  kPreVoteResponse,
  kRequestVote,
  kRequestVoteResponse,
  kAppendEntries,
  kAppendEntriesResponse,
  kTimeoutNow,
  kInstallSnapshot,
};

const char* MessageTypeName(MessageType t);

// The caller's state machine as of `index` (whose entry has `term`); `data`
// is opaque to Raft.
struct Snapshot {
  LogIndex index;
  Term term;
  std::string data;
};

// One Raft message. A flat struct: each type uses the fields named beside it;
// the others keep their defaults.
struct Message {
  MessageType type = MessageType::kAppendEntries;
  NodeId from;
  NodeId to;
  // The sender's term; for kPreVote the term the sender would campaign in,
  // and for a granted kPreVoteResponse the term of the pre-vote it grants.
  Term term;

  // kPreVote, kRequestVote: the candidate's last log position.
  LogIndex last_log_index;
  Term last_log_term;
  // kRequestVote: sent because of TimeoutNow (leadership transfer); voters
  // then ignore their leader lease.
  bool transfer = false;
  // kPreVoteResponse, kRequestVoteResponse, kAppendEntriesResponse.
  bool granted = false;  // vote granted / entries accepted

  // kAppendEntries: entries follow (prev_log_index, prev_log_term).
  // kAppendEntriesResponse echoes prev_log_index.
  LogIndex prev_log_index;
  Term prev_log_term;
  std::vector<Entry> entries;
  LogIndex leader_commit;

  // kAppendEntriesResponse. On success, the follower's log matches the
  // leader's through match_index (and that prefix is durable). On rejection, a
  // hint for fast backtracking: the follower has no entry at prev_log_index
  // (conflict_term == 0 and conflict_index == its last index + 1), or its entry
  // there has conflict_term, whose first entry in its log is conflict_index.
  LogIndex match_index;
  LogIndex conflict_index;
  Term conflict_term;

  // kInstallSnapshot: the leader's snapshot, for a follower whose next entry
  // the leader has compacted away; answered by an kAppendEntriesResponse.
  Snapshot snapshot;
};

std::string DebugString(const Message& m);

// The state that must be durable before a vote is granted: the current term
// and the candidate voted for in it.
struct HardState {
  Term term;
  std::optional<NodeId> voted_for;
  bool operator==(const HardState&) const = default;
};

// The durable Raft log. Not thread-safe; owned by one RaftNode at a time.
// Writes (Append, TruncateSuffix) may be buffered: only Sync() makes them
// durable, and after a crash the log is what it was at the last Sync (a
// truncation not yet synced may come back). CompactPrefix may be lost in a
// crash (the entries come back, which is harmless); ResetTo is durable when it
// returns. A failed Sync is permanent: the node stops (a failed fsync is never
// retried as if nothing happened).
class RaftLog {
 public:
  virtual ~RaftLog() = default;
  // Index of the first entry held (1 unless a prefix was compacted away).
  virtual LogIndex FirstIndex() const = 0;
  // Index of the last entry, or FirstIndex() - 1 when empty.
  virtual LogIndex LastIndex() const = 0;
  // Term of the entry at `index`; Term(0) for index 0, and the term of the
  // last compacted entry for FirstIndex() - 1. Error outside
  // [FirstIndex() - 1, LastIndex()].
  virtual absl::StatusOr<Term> TermAt(LogIndex index) const = 0;
  // Entries in [from, to), at most max_entries of them (at least one if any).
  virtual absl::StatusOr<std::vector<Entry>> Entries(LogIndex from, LogIndex to,
                                                     size_t max_entries) const = 0;
  // Appends entries; entries[0].index must be LastIndex() + 1 and indexes
  // consecutive.
  virtual absl::Status Append(const std::vector<Entry>& entries) = 0;
  // Removes every entry with index >= from.
  virtual absl::Status TruncateSuffix(LogIndex from) = 0;
  // Removes every entry with index <= through (through <= LastIndex()),
  // remembering the term of `through`.
  virtual absl::Status CompactPrefix(LogIndex through) = 0;
  // Removes every entry; the log continues after `index`, whose term is `term`
  // (after installing a snapshot).
  virtual absl::Status ResetTo(LogIndex index, Term term) = 0;
  // Makes every write so far durable.
  virtual absl::Status Sync() = 0;
};

// Durable storage of HardState. Save returns only once the state is durable.
class HardStateStore {
 public:
  virtual ~HardStateStore() = default;
  virtual absl::StatusOr<HardState> Load() = 0;  // HardState{} if never saved
  virtual absl::Status Save(const HardState& state) = 0;
};

// Durable storage of the latest snapshot. Save returns once it is durable.
class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  virtual absl::StatusOr<std::optional<Snapshot>> Load() = 0;
  virtual absl::Status Save(const Snapshot& snapshot) = 0;
};

// Delivers messages to peers, best effort: may drop, delay, duplicate or
// reorder them (Raft tolerates all four). Must not call back into the node.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual void Send(Message message) = 0;
};

// Monotonic time in milliseconds.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() = 0;
};

class Random {
 public:
  virtual ~Random() = default;
  // Uniformly distributed in [lo, hi); requires lo < hi.
  virtual int64_t Uniform(int64_t lo, int64_t hi) = 0;
};

struct RaftConfig {
  NodeId id;
  // Every voter, including `id`. Membership is static (from configuration).
  std::vector<NodeId> voters;
  // Election timeout is drawn uniformly from [min, 2 * min) each time the
  // timer is reset. The leader lease and check-quorum use `min` as well.
  int64_t election_timeout_ms = 1000;
  int64_t heartbeat_interval_ms = 100;
  bool pre_vote = true;
  bool check_quorum = true;
  // At most this many entries in one AppendEntries.
  size_t max_entries_per_message = 64;
  // Entries up to this index were applied by the caller before (from its own
  // durable state machine); they are not handed out again. Must not exceed an
  // index that was committed. If the stored snapshot is ahead of it, the node
  // hands out that snapshot first (RaftNode::TakeSnapshot).
  LogIndex applied;
};

}  // namespace brook::raft
