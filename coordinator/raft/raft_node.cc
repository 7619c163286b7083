// RaftNode: elections with pre-vote and check-quorum, log replication with
// fast backtracking, the current-term commit rule, leadership transfer,
// snapshots with log compaction and InstallSnapshot.
#include "coordinator/raft/raft_node.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace brook::raft {
namespace {

#define RAFT_RETURN_IF_ERROR(expr)       \
  do {                                   \
    absl::Status raft_st_ = (expr);      \
    if (!raft_st_.ok()) return raft_st_; \
  } while (0)

#define RAFT_CONCAT_INNER(a, b) a##b
#define RAFT_CONCAT(a, b) RAFT_CONCAT_INNER(a, b)
#define RAFT_ASSIGN_OR_RETURN(lhs, expr) \
  RAFT_ASSIGN_OR_RETURN_IMPL(RAFT_CONCAT(raft_sor_, __LINE__), lhs, expr)
#define RAFT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(*tmp)

// A message of `type` to `to`; the caller fills in the fields its type uses.
Message MakeMessage(MessageType type, NodeId to) {
  Message m;
  m.type = type;
  m.to = to;
  return m;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kPreCandidate:
      return "pre-candidate";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<RaftNode>> RaftNode::Create(RaftConfig config, RaftLog* log,
                                                           HardStateStore* hard_state,
                                                           SnapshotStore* snapshots,
                                                           Transport* transport, Clock* clock,
                                                           Random* random) {
  if (std::find(config.voters.begin(), config.voters.end(), config.id) == config.voters.end()) {
    return absl::InvalidArgumentError("raft: the node's id is not among the voters");
  }
  if (config.election_timeout_ms <= 0 || config.heartbeat_interval_ms <= 0 ||
      config.heartbeat_interval_ms >= config.election_timeout_ms) {
    return absl::InvalidArgumentError("raft: need 0 < heartbeat_interval_ms < election_timeout_ms");
  }
  if (config.max_entries_per_message == 0) config.max_entries_per_message = 1;
  std::unique_ptr<RaftNode> node(
      new RaftNode(std::move(config), log, hard_state, snapshots, transport, clock, random));
  RAFT_RETURN_IF_ERROR(node->Init());
  return node;
}

RaftNode::RaftNode(RaftConfig config, RaftLog* log, HardStateStore* hard_state,
                   SnapshotStore* snapshots, Transport* transport, Clock* clock, Random* random)
    : config_(std::move(config)),
      log_(log),
      hard_state_(hard_state),
      snapshots_(snapshots),
      transport_(transport),
      clock_(clock),
      random_(random) {}

absl::Status RaftNode::Init() {
  RAFT_ASSIGN_OR_RETURN(HardState hs, hard_state_->Load());
  term_ = hs.term;
  voted_for_ = hs.voted_for;
  saved_ = hs;
  RAFT_ASSIGN_OR_RETURN(snapshot_, snapshots_->Load());
  commit_ = config_.applied;
  if (snapshot_) {
    // The snapshot is saved before the log is reset or compacted, so a crash
    // in between leaves a log that may disagree with it: reconcile.
    auto t = log_->TermAt(snapshot_->index);
    if (!t.ok() || *t != snapshot_->term) {
      RAFT_RETURN_IF_ERROR(log_->ResetTo(snapshot_->index, snapshot_->term));
    } else {
      RAFT_RETURN_IF_ERROR(log_->CompactPrefix(snapshot_->index));
    }
    if (snapshot_->index > config_.applied) {
      snapshot_pending_ = true;
      commit_ = snapshot_->index;
    }
  }
  if (config_.applied > log_->LastIndex()) {
    return absl::InvalidArgumentError("raft: applied index beyond the log");
  }
  applied_ = config_.applied;
  synced_index_ = log_->LastIndex();
  ResetElectionTimer();
  return absl::OkStatus();
}

absl::Status RaftNode::Tick() {
  if (!failed_.ok()) return failed_;
  return Finish(TickInternal(), /*sync=*/true);
}

absl::Status RaftNode::Step(const Message& message) {
  if (!failed_.ok()) return failed_;
  return Finish(StepInternal(message), /*sync=*/true);
}

absl::StatusOr<LogIndex> RaftNode::Propose(std::string data, EntryType type) {
  if (!failed_.ok()) return failed_;
  if (role_ != Role::kLeader) {
    return absl::FailedPreconditionError(
        absl::StrCat("raft: not the leader (leader: ",
                     leader_ ? absl::StrCat(leader_->value()) : std::string("unknown"), ")"));
  }
  if (transfer_target_) {
    return absl::UnavailableError("raft: leadership transfer in progress");
  }
  Entry e{term_, log_->LastIndex() + 1, type, std::move(data)};
  LogIndex index = e.index;
  absl::Status st = log_->Append({std::move(e)});
  if (st.ok()) {
    log_dirty_ = true;
    for (NodeId p : config_.voters) {
      if (p == config_.id) continue;
      st = SendAppend(p, /*allow_empty=*/false);
      if (!st.ok()) break;
    }
  }
  RAFT_RETURN_IF_ERROR(Finish(std::move(st), /*sync=*/false));
  return index;
}

absl::Status RaftNode::TransferLeadership(NodeId target) {
  if (!failed_.ok()) return failed_;
  if (role_ != Role::kLeader) return absl::FailedPreconditionError("raft: not the leader");
  if (target == config_.id) return absl::OkStatus();
  if (!progress_.contains(target)) {
    return absl::InvalidArgumentError("raft: transfer target is not a voter");
  }
  transfer_target_ = target;
  transfer_deadline_ms_ = clock_->NowMs() + config_.election_timeout_ms;
  absl::Status st;
  if (progress_[target].match == log_->LastIndex()) {
    Send(MakeMessage(MessageType::kTimeoutNow, target));
  } else {
    st = SendAppend(target, /*allow_empty=*/true);
  }
  return Finish(std::move(st), /*sync=*/true);
}

absl::StatusOr<std::optional<Snapshot>> RaftNode::TakeSnapshot() {
  if (!failed_.ok()) return failed_;
  if (!snapshot_pending_) return std::optional<Snapshot>();
  snapshot_pending_ = false;
  applied_ = std::max(applied_, snapshot_->index);
  return snapshot_;
}

absl::Status RaftNode::Compact(LogIndex through, std::string data) {
  if (!failed_.ok()) return failed_;
  if (through > applied_) return absl::InvalidArgumentError("raft: compact beyond applied");
  if (through < log_->FirstIndex()) return absl::OkStatus();  // already compacted
  absl::StatusOr<Term> term = log_->TermAt(through);
  absl::Status st = term.status();
  if (st.ok()) {
    Snapshot snap{through, *term, std::move(data)};
    st = snapshots_->Save(snap);
    if (st.ok()) {
      snapshot_ = std::move(snap);
      st = log_->CompactPrefix(through);
    }
  }
  return Finish(std::move(st), /*sync=*/true);
}

absl::StatusOr<std::vector<Entry>> RaftNode::TakeCommitted() {
  if (!failed_.ok()) return failed_;
  if (snapshot_pending_) return absl::FailedPreconditionError("raft: take the snapshot first");
  std::vector<Entry> out;
  while (applied_ < commit_) {
    auto batch = log_->Entries(applied_ + 1, commit_ + 1, 1024);
    if (!batch.ok()) {
      failed_ = batch.status();
      return failed_;
    }
    BROOK_CHECK(!batch->empty() && batch->front().index == applied_ + 1);
    applied_ = batch->back().index;
    for (Entry& e : *batch) out.push_back(std::move(e));
  }
  return out;
}

std::vector<RaftNode::PeerProgress> RaftNode::peer_progress() const {
  std::vector<PeerProgress> out;
  if (role_ != Role::kLeader) return out;
  for (const auto& [id, pr] : progress_) {
    out.push_back(PeerProgress{id, pr.match, pr.next, pr.last_heard_ms});
  }
  std::sort(out.begin(), out.end(),
            [](const PeerProgress& a, const PeerProgress& b) { return a.id < b.id; });
  return out;
}

absl::Status RaftNode::Finish(absl::Status status, bool sync) {
  if (status.ok() && sync && log_dirty_) {
    status = log_->Sync();
    if (status.ok()) {
      log_dirty_ = false;
      synced_index_ = log_->LastIndex();
      if (role_ == Role::kLeader) status = MaybeCommit();
    }
  }
  HardState hs{term_, voted_for_};
  if (status.ok() && hs != saved_) {
    status = hard_state_->Save(hs);
    if (status.ok()) saved_ = hs;
  }
  if (!status.ok()) {
    failed_ = status;
    outbox_.clear();
    return status;
  }
  std::vector<Message> out;
  out.swap(outbox_);
  for (Message& m : out) transport_->Send(std::move(m));
  return absl::OkStatus();
}

void RaftNode::Send(Message m) {
  m.from = config_.id;
  if (m.type != MessageType::kPreVote) m.term = term_;
  outbox_.push_back(std::move(m));
}

void RaftNode::ResetElectionTimer() {
  election_deadline_ms_ = clock_->NowMs() + random_->Uniform(config_.election_timeout_ms,
                                                             2 * config_.election_timeout_ms);
}

bool RaftNode::InLease(int64_t now) const {
  if (!config_.check_quorum) return false;
  if (role_ == Role::kLeader) return true;
  return leader_.has_value() && heard_from_leader_ &&
         now - last_leader_contact_ms_ < config_.election_timeout_ms;
}

absl::Status RaftNode::TickInternal() {
  const int64_t now = clock_->NowMs();
  if (role_ == Role::kLeader) {
    if (config_.check_quorum && now >= check_quorum_deadline_ms_) {
      size_t active = 1;
      for (const auto& [id, pr] : progress_) {
        if (now - pr.last_heard_ms < config_.election_timeout_ms) ++active;
      }
      if (active < Quorum()) {
        BecomeFollower(term_, std::nullopt);
        return absl::OkStatus();
      }
      check_quorum_deadline_ms_ = now + config_.election_timeout_ms;
    }
    if (transfer_target_ && now >= transfer_deadline_ms_) transfer_target_.reset();
    if (now >= heartbeat_deadline_ms_) {
      heartbeat_deadline_ms_ = now + config_.heartbeat_interval_ms;
      for (NodeId p : config_.voters) {
        if (p != config_.id) RAFT_RETURN_IF_ERROR(SendAppend(p, /*allow_empty=*/true));
      }
    }
    return absl::OkStatus();
  }
  if (now >= election_deadline_ms_) {
    return Campaign(config_.pre_vote ? CampaignKind::kPreVote : CampaignKind::kVote);
  }
  return absl::OkStatus();
}

absl::Status RaftNode::Campaign(CampaignKind kind) {
  votes_.clear();
  leader_.reset();
  heard_from_leader_ = false;
  Term campaign_term = term_ + 1;
  if (kind == CampaignKind::kPreVote) {
    role_ = Role::kPreCandidate;
  } else {
    role_ = Role::kCandidate;
    term_ = campaign_term;
    voted_for_ = config_.id;
  }
  ResetElectionTimer();
  votes_[config_.id] = true;
  if (votes_.size() >= Quorum()) {  // a group of one
    return kind == CampaignKind::kPreVote ? Campaign(CampaignKind::kVote) : BecomeLeader();
  }
  RAFT_ASSIGN_OR_RETURN(Term last_term, log_->TermAt(log_->LastIndex()));
  for (NodeId p : config_.voters) {
    if (p == config_.id) continue;
    Message m = MakeMessage(
        kind == CampaignKind::kPreVote ? MessageType::kPreVote : MessageType::kRequestVote, p);
    m.term = campaign_term;
    m.last_log_index = log_->LastIndex();
    m.last_log_term = last_term;
    m.transfer = kind == CampaignKind::kTransfer;
    Send(std::move(m));
  }
  return absl::OkStatus();
}

void RaftNode::BecomeFollower(Term term, std::optional<NodeId> leader) {
  if (term > term_) {
    term_ = term;
    voted_for_.reset();
  }
  role_ = Role::kFollower;
  leader_ = leader;
  heard_from_leader_ = false;
  votes_.clear();
  progress_.clear();
  transfer_target_.reset();
  ResetElectionTimer();
}

absl::Status RaftNode::BecomeLeader() {
  const int64_t now = clock_->NowMs();
  role_ = Role::kLeader;
  leader_ = config_.id;
  votes_.clear();
  progress_.clear();
  transfer_target_.reset();
  const LogIndex last = log_->LastIndex();
  for (NodeId p : config_.voters) {
    if (p == config_.id) continue;
    progress_[p] = Progress{.next = last + 1, .match = LogIndex(0), .last_heard_ms = now};
  }
  check_quorum_deadline_ms_ = now + config_.election_timeout_ms;
  heartbeat_deadline_ms_ = now + config_.heartbeat_interval_ms;
  // A no-op of the new term: entries of earlier terms commit only once an
  // entry of the current term does (Raft §5.4.2).
  RAFT_RETURN_IF_ERROR(log_->Append({Entry{term_, last + 1, EntryType::kNoop, {}}}));
  log_dirty_ = true;
  for (NodeId p : config_.voters) {
    if (p != config_.id) RAFT_RETURN_IF_ERROR(SendAppend(p, /*allow_empty=*/true));
  }
  return absl::OkStatus();
}

absl::Status RaftNode::StepInternal(const Message& m) {
  const int64_t now = clock_->NowMs();
  const bool vote_request = m.type == MessageType::kPreVote || m.type == MessageType::kRequestVote;
  if (m.term > term_) {
    if (vote_request && !m.transfer && InLease(now)) {
      // A leader is known to be alive: do not let a node that lost contact
      // with it disrupt the group (nor bump our term).
      return absl::OkStatus();
    }
    if (m.type == MessageType::kPreVote || (m.type == MessageType::kPreVoteResponse && m.granted)) {
      // A pre-vote changes no term.
    } else if (m.type == MessageType::kAppendEntries || m.type == MessageType::kTimeoutNow ||
               m.type == MessageType::kInstallSnapshot) {
      BecomeFollower(m.term, m.from);
    } else {
      BecomeFollower(m.term, std::nullopt);
    }
  } else if (m.term < term_) {
    if ((m.type == MessageType::kAppendEntries || m.type == MessageType::kInstallSnapshot) &&
        (config_.check_quorum || config_.pre_vote)) {
      // A stale leader (e.g. cut off while we moved on): tell it our term so it
      // steps down, since pre-vote keeps us from disrupting it by campaigning.
      Send(MakeMessage(MessageType::kAppendEntriesResponse, m.from));
    } else if (m.type == MessageType::kPreVote) {
      Send(MakeMessage(MessageType::kPreVoteResponse, m.from));
    }
    return absl::OkStatus();
  }

  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kRequestVote:
      return HandleVoteRequest(m);
    case MessageType::kPreVoteResponse:
    case MessageType::kRequestVoteResponse:
      return HandleVoteResponse(m);
    case MessageType::kAppendEntries:
    case MessageType::kInstallSnapshot:
      BROOK_CHECK(role_ != Role::kLeader);  // two leaders in one term
      if (role_ != Role::kFollower) BecomeFollower(term_, m.from);
      leader_ = m.from;
      heard_from_leader_ = true;
      last_leader_contact_ms_ = now;
      ResetElectionTimer();
      return m.type == MessageType::kAppendEntries ? HandleAppendEntries(m)
                                                   : HandleInstallSnapshot(m);
    case MessageType::kAppendEntriesResponse:
      return HandleAppendResponse(m);
    case MessageType::kTimeoutNow:
      if (role_ == Role::kLeader) return absl::OkStatus();
      return Campaign(CampaignKind::kTransfer);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RaftNode::LogUpToDate(LogIndex last_index, Term last_term) {
  const LogIndex my_last = log_->LastIndex();
  RAFT_ASSIGN_OR_RETURN(Term my_term, log_->TermAt(my_last));
  return last_term > my_term || (last_term == my_term && last_index >= my_last);
}

absl::Status RaftNode::HandleVoteRequest(const Message& m) {
  const bool pre = m.type == MessageType::kPreVote;
  const bool can_vote =
      voted_for_ == m.from || (!voted_for_ && !leader_) || (pre && m.term > term_);
  RAFT_ASSIGN_OR_RETURN(bool up_to_date, LogUpToDate(m.last_log_index, m.last_log_term));
  const bool grant = can_vote && up_to_date;
  if (grant && !pre) {
    voted_for_ = m.from;
    ResetElectionTimer();
  }
  Message r =
      MakeMessage(pre ? MessageType::kPreVoteResponse : MessageType::kRequestVoteResponse, m.from);
  r.granted = grant;
  Send(std::move(r));
  if (pre && grant) outbox_.back().term = m.term;
  return absl::OkStatus();
}

absl::Status RaftNode::HandleVoteResponse(const Message& m) {
  const bool pre = m.type == MessageType::kPreVoteResponse;
  if (pre && (role_ != Role::kPreCandidate || (m.granted && m.term != term_ + 1))) {
    return absl::OkStatus();
  }
  if (!pre && role_ != Role::kCandidate) return absl::OkStatus();
  votes_.emplace(m.from, m.granted);
  size_t granted = 0;
  for (const auto& [id, g] : votes_) granted += g ? 1 : 0;
  if (granted >= Quorum()) {
    return pre ? Campaign(CampaignKind::kVote) : BecomeLeader();
  }
  if (votes_.size() - granted >= Quorum()) BecomeFollower(term_, std::nullopt);
  return absl::OkStatus();
}

absl::Status RaftNode::HandleAppendEntries(const Message& m) {
  Message r = MakeMessage(MessageType::kAppendEntriesResponse, m.from);
  r.prev_log_index = m.prev_log_index;  // on rejection: the index that did not match
  const LogIndex last = log_->LastIndex();
  const LogIndex snap = log_->FirstIndex() - 1;
  if (m.prev_log_index > last) {
    r.conflict_index = last + 1;
    Send(std::move(r));
    return absl::OkStatus();
  }
  size_t i = 0;
  if (m.prev_log_index < snap) {
    // Entries through `snap` are in our snapshot, hence committed and equal
    // to the leader's: skip them, and there is no predecessor to check.
    i = static_cast<size_t>(
        std::min<int64_t>(static_cast<int64_t>(m.entries.size()), snap - m.prev_log_index));
  }
  RAFT_ASSIGN_OR_RETURN(Term prev_term, log_->TermAt(std::max(m.prev_log_index, snap)));
  if (m.prev_log_index >= snap && prev_term != m.prev_log_term) {
    // Committed entries match the leader's, so the conflict lies above commit.
    BROOK_CHECK(m.prev_log_index > commit_);
    LogIndex first = m.prev_log_index;
    while (first - 1 > commit_) {
      RAFT_ASSIGN_OR_RETURN(Term t, log_->TermAt(first - 1));
      if (t != prev_term) break;
      first = first - 1;
    }
    r.conflict_term = prev_term;
    r.conflict_index = first;
    Send(std::move(r));
    return absl::OkStatus();
  }
  for (; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    if (e.index > log_->LastIndex()) break;
    RAFT_ASSIGN_OR_RETURN(Term t, log_->TermAt(e.index));
    if (t != e.term) {
      BROOK_CHECK(e.index > commit_);  // never rewrite a committed entry
      RAFT_RETURN_IF_ERROR(log_->TruncateSuffix(e.index));
      log_dirty_ = true;
      synced_index_ = std::min(synced_index_, e.index - 1);
      break;
    }
  }
  if (i < m.entries.size()) {
    std::vector<Entry> rest(m.entries.begin() + static_cast<std::ptrdiff_t>(i), m.entries.end());
    RAFT_RETURN_IF_ERROR(log_->Append(rest));
    log_dirty_ = true;
  }
  const LogIndex match = m.prev_log_index + static_cast<int64_t>(m.entries.size());
  commit_ = std::max(commit_, std::min(m.leader_commit, match));
  r.granted = true;
  r.match_index = match;
  Send(std::move(r));
  return absl::OkStatus();
}

absl::Status RaftNode::HandleInstallSnapshot(const Message& m) {
  const Snapshot& s = m.snapshot;
  Message r = MakeMessage(MessageType::kAppendEntriesResponse, m.from);
  r.granted = true;
  r.match_index = s.index;
  if (s.index > commit_) {
    absl::StatusOr<Term> t = log_->TermAt(s.index);
    if (t.ok() && *t == s.term) {
      // Our log holds the snapshot's last entry, so it matches the leader's
      // through there (log matching): commit and apply entries as usual.
      commit_ = s.index;
    } else {
      RAFT_RETURN_IF_ERROR(snapshots_->Save(s));  // durable before the ack
      snapshot_ = s;
      RAFT_RETURN_IF_ERROR(log_->ResetTo(s.index, s.term));
      synced_index_ = s.index;
      commit_ = s.index;
      snapshot_pending_ = true;
    }
  }
  // Else we committed past it already: our log matches the leader's there.
  Send(std::move(r));
  return absl::OkStatus();
}

absl::Status RaftNode::HandleAppendResponse(const Message& m) {
  if (role_ != Role::kLeader) return absl::OkStatus();
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return absl::OkStatus();
  Progress& pr = it->second;
  pr.last_heard_ms = clock_->NowMs();
  const LogIndex last = log_->LastIndex();
  if (m.granted) {
    if (m.match_index > pr.match) {
      pr.match = m.match_index;
      RAFT_RETURN_IF_ERROR(MaybeCommit());
    }
    pr.next = std::max(pr.next, pr.match + 1);
    if (transfer_target_ == m.from && pr.match == last) {
      Send(MakeMessage(MessageType::kTimeoutNow, m.from));
    }
    if (pr.next <= last) RAFT_RETURN_IF_ERROR(SendAppend(m.from, /*allow_empty=*/false));
    return absl::OkStatus();
  }
  LogIndex next = m.conflict_index;
  if (m.conflict_term > Term(0)) {
    // Skip the follower's whole conflicting term: resume after our last entry
    // of that term if we have one, else at the follower's first one.
    LogIndex i = std::min(last, m.prev_log_index);
    while (i > pr.match && i >= log_->FirstIndex()) {
      RAFT_ASSIGN_OR_RETURN(Term t, log_->TermAt(i));
      if (t == m.conflict_term) {
        next = i + 1;
        break;
      }
      if (t < m.conflict_term) break;
      i = i - 1;
    }
  }
  pr.next = std::min(std::max(next, pr.match + 1), last + 1);
  return SendAppend(m.from, /*allow_empty=*/true);
}

absl::Status RaftNode::SendAppend(NodeId to, bool allow_empty) {
  Progress& pr = progress_[to];
  const LogIndex last = log_->LastIndex();
  if (pr.next < log_->FirstIndex()) {
    // The entries it needs are compacted: send the snapshot instead.
    BROOK_CHECK(snapshot_.has_value());
    Message m = MakeMessage(MessageType::kInstallSnapshot, to);
    m.snapshot = *snapshot_;
    pr.next = snapshot_->index + 1;
    Send(std::move(m));
    return absl::OkStatus();
  }
  std::vector<Entry> entries;
  if (pr.next <= last) {
    RAFT_ASSIGN_OR_RETURN(entries,
                          log_->Entries(pr.next, last + 1, config_.max_entries_per_message));
  }
  if (entries.empty() && !allow_empty) return absl::OkStatus();
  Message m = MakeMessage(MessageType::kAppendEntries, to);
  m.prev_log_index = pr.next - 1;
  RAFT_ASSIGN_OR_RETURN(m.prev_log_term, log_->TermAt(m.prev_log_index));
  m.leader_commit = commit_;
  if (!entries.empty()) pr.next = entries.back().index + 1;
  m.entries = std::move(entries);
  Send(std::move(m));
  return absl::OkStatus();
}

absl::Status RaftNode::MaybeCommit() {
  std::vector<LogIndex> matches;
  matches.push_back(std::min(synced_index_, log_->LastIndex()));
  for (const auto& [id, pr] : progress_) matches.push_back(pr.match);
  std::sort(matches.begin(), matches.end(), std::greater<>());
  const LogIndex n = matches[Quorum() - 1];
  if (n <= commit_) return absl::OkStatus();
  RAFT_ASSIGN_OR_RETURN(Term t, log_->TermAt(n));
  // Only an entry of the current term commits by counting replicas (§5.4.2);
  // earlier ones commit with it.
  if (t == term_) commit_ = n;
  return absl::OkStatus();
}

const char* MessageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kPreVote:
      return "PreVote";
    case MessageType::kPreVoteResponse:
      return "PreVoteResponse";
    case MessageType::kRequestVote:
      return "RequestVote";
    case MessageType::kRequestVoteResponse:
      return "RequestVoteResponse";
    case MessageType::kAppendEntries:
      return "AppendEntries";
    case MessageType::kAppendEntriesResponse:
      return "AppendEntriesResponse";
    case MessageType::kTimeoutNow:
      return "TimeoutNow";
    case MessageType::kInstallSnapshot:
      return "InstallSnapshot";
  }
  return "?";
}

std::string DebugString(const Message& m) {
  std::string s = absl::StrCat(MessageTypeName(m.type), " ", m.from.value(), "->", m.to.value(),
                               " t", m.term.value());
  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kRequestVote:
      absl::StrAppend(&s, " last=", m.last_log_index.value(), "/t", m.last_log_term.value(),
                      m.transfer ? " transfer" : "");
      break;
    case MessageType::kPreVoteResponse:
    case MessageType::kRequestVoteResponse:
      absl::StrAppend(&s, m.granted ? " granted" : " rejected");
      break;
    case MessageType::kAppendEntries:
      absl::StrAppend(&s, " prev=", m.prev_log_index.value(), "/t", m.prev_log_term.value(),
                      " n=", m.entries.size(), " commit=", m.leader_commit.value());
      break;
    case MessageType::kAppendEntriesResponse:
      if (m.granted) {
        absl::StrAppend(&s, " ok match=", m.match_index.value());
      } else {
        absl::StrAppend(&s, " reject hint=", m.conflict_index.value(), "/t",
                        m.conflict_term.value());
      }
      break;
    case MessageType::kTimeoutNow:
      break;
    case MessageType::kInstallSnapshot:
      absl::StrAppend(&s, " snapshot=", m.snapshot.index.value(), "/t", m.snapshot.term.value());
      break;
  }
  return s;
}

}  // namespace brook::raft
