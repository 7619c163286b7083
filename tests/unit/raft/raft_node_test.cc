// Unit tests of brook::raft's RaftNode, one behaviour each, over a hand-driven
// cluster: a manual clock, a fixed random source and a message queue that the
// test delivers (or drops) explicitly.
#include "coordinator/raft/raft_node.h"

#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/raft/memory_storage.h"
#include "gtest/gtest.h"

namespace brook::raft {
namespace {

class ManualClock : public Clock {
 public:
  int64_t NowMs() override { return now; }
  int64_t now = 0;
};

// Election timeouts: node 1 draws the shortest, so it times out first.
class FixedRandom : public Random {
 public:
  explicit FixedRandom(int64_t offset) : offset_(offset) {}
  int64_t Uniform(int64_t lo, int64_t hi) override { return std::min(lo + offset_, hi - 1); }

 private:
  int64_t offset_;
};

class Cluster;

class QueueTransport : public Transport {
 public:
  explicit QueueTransport(Cluster* c) : cluster_(c) {}
  void Send(Message m) override;

 private:
  Cluster* cluster_;
};

constexpr int64_t kElection = 100;
constexpr int64_t kHeartbeat = 20;

class Cluster {
 public:
  struct Node {
    MemoryLog log;
    MemoryHardStateStore hard_state;
    MemorySnapshotStore snapshots;
    std::unique_ptr<FixedRandom> random;
    std::unique_ptr<RaftNode> raft;
    std::vector<Entry> applied;
  };

  explicit Cluster(int n, bool pre_vote = true, bool check_quorum = true, size_t max_entries = 64)
      : transport_(this) {
    for (int i = 1; i <= n; ++i) voters_.push_back(NodeId(i));
    config_.voters = voters_;
    config_.election_timeout_ms = kElection;
    config_.heartbeat_interval_ms = kHeartbeat;
    config_.pre_vote = pre_vote;
    config_.check_quorum = check_quorum;
    config_.max_entries_per_message = max_entries;
    for (int i = 1; i <= n; ++i) {
      auto node = std::make_unique<Node>();
      node->random = std::make_unique<FixedRandom>((i - 1) * 30);
      nodes_.push_back(std::move(node));
    }
  }

  // Nodes start separately so a test can first seed their logs.
  void StartAll() {
    for (int i = 1; i <= static_cast<int>(nodes_.size()); ++i) Start(i);
  }
  void Start(int i) {
    RaftConfig c = config_;
    c.id = NodeId(i);
    Node& n = node(i);
    auto r = RaftNode::Create(c, &n.log, &n.hard_state, &n.snapshots, &transport_, &clock_,
                              n.random.get());
    ASSERT_TRUE(r.ok()) << r.status();
    n.raft = std::move(*r);
  }

  Node& node(int i) { return *nodes_[static_cast<size_t>(i - 1)]; }
  RaftNode& raft(int i) { return *node(i).raft; }

  // Cuts node i off from everyone (both directions) or reconnects it.
  void Isolate(int i, bool isolated) {
    if (isolated) {
      isolated_.insert(i);
    } else {
      isolated_.erase(i);
    }
  }

  // Cuts the link between a and b (both directions).
  void Cut(int a, int b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }

  void Enqueue(Message m) {
    const int from = static_cast<int>(m.from.value());
    const int to = static_cast<int>(m.to.value());
    if (isolated_.count(from) || isolated_.count(to) || cut_.count({from, to})) return;
    if (on_send) on_send(m);
    queue_.push_back(std::move(m));
  }

  // Delivers queued messages (and those they cause) until none is left.
  void DeliverAll(const std::function<void(const Message&)>& after = nullptr) {
    for (int guard = 0; !queue_.empty() && guard < 100000; ++guard) {
      Message m = std::move(queue_.front());
      queue_.pop_front();
      const int to = static_cast<int>(m.to.value());
      if (isolated_.count(to) || !node(to).raft) continue;
      ASSERT_TRUE(raft(to).Step(m).ok());
      if (after) after(m);
    }
  }

  // Advances the clock in heartbeat-sized steps, ticking every live node and
  // delivering messages after each step.
  void Run(int64_t ms) {
    for (int64_t t = 0; t < ms; t += 10) {
      clock_.now += 10;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i]->raft) {
          ASSERT_TRUE(nodes_[i]->raft->Tick().ok());
        }
      }
      DeliverAll();
    }
  }

  // The unique live leader of the highest term, or 0.
  int Leader() {
    int leader = 0;
    for (int i = 1; i <= static_cast<int>(nodes_.size()); ++i) {
      if (node(i).raft && raft(i).role() == Role::kLeader &&
          (leader == 0 || raft(i).term() > raft(leader).term())) {
        leader = i;
      }
    }
    return leader;
  }

  std::vector<Entry> Apply(int i) {
    auto e = raft(i).TakeCommitted();
    EXPECT_TRUE(e.ok());
    for (const Entry& x : *e) node(i).applied.push_back(x);
    return *e;
  }

  ManualClock& clock() { return clock_; }
  std::function<void(const Message&)> on_send;

 private:
  RaftConfig config_;
  std::vector<NodeId> voters_;
  ManualClock clock_;
  QueueTransport transport_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::set<int> isolated_;
  std::set<std::pair<int, int>> cut_;
  std::deque<Message> queue_;
};

void QueueTransport::Send(Message m) { cluster_->Enqueue(std::move(m)); }

std::vector<Term> Terms(const MemoryLog& log) {
  std::vector<Term> t;
  for (LogIndex i(1); i <= log.LastIndex(); ++i) t.push_back(log.At(i).term);
  return t;
}

void Seed(MemoryLog& log, std::vector<int64_t> terms) {
  std::vector<Entry> entries;
  for (size_t i = 0; i < terms.size(); ++i) {
    entries.push_back(Entry{Term(terms[i]), LogIndex(static_cast<int64_t>(i) + 1),
                            EntryType::kNormal, "seed" + std::to_string(i + 1)});
  }
  ASSERT_TRUE(log.Append(entries).ok());
  ASSERT_TRUE(log.Sync().ok());
}

TEST(RaftNode, ElectsOneLeaderWhoseVotesAreDurable) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);  // only node 1's timer (the shortest) has fired
  ASSERT_EQ(c.Leader(), 1);
  EXPECT_EQ(c.raft(1).term(), Term(1));
  for (int i = 2; i <= 3; ++i) {
    EXPECT_EQ(c.raft(i).role(), Role::kFollower);
    EXPECT_EQ(c.raft(i).leader(), NodeId(1));
    EXPECT_EQ(c.node(i).hard_state.state().term, Term(1));
  }
  EXPECT_EQ(c.node(2).hard_state.state().voted_for, NodeId(1));
  c.Run(1000);
  EXPECT_EQ(c.Leader(), 1);
  EXPECT_EQ(c.raft(1).term(), Term(1));
}

TEST(RaftNode, VoteIsPersistedBeforeTheResponseIsSent) {
  Cluster c(3);
  int checked = 0;
  c.on_send = [&](const Message& m) {
    if (m.type == MessageType::kRequestVoteResponse && m.granted) {
      const HardState& hs = c.node(static_cast<int>(m.from.value())).hard_state.state();
      EXPECT_EQ(hs.term, m.term);
      EXPECT_EQ(hs.voted_for, m.to);
      ++checked;
    }
    if (m.type == MessageType::kAppendEntriesResponse && m.granted) {
      EXPECT_GE(c.node(static_cast<int>(m.from.value())).log.DurableLastIndex(), m.match_index);
      ++checked;
    }
  };
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  ASSERT_TRUE(c.raft(1).Propose("x").ok());
  c.DeliverAll();
  EXPECT_GE(checked, 4);
}

TEST(RaftNode, ProposalsCommitAndApplyEverywhere) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  auto not_leader = c.raft(2).Propose("nope");
  EXPECT_TRUE(absl::IsFailedPrecondition(not_leader.status()));
  auto a = c.raft(1).Propose("a");
  auto b = c.raft(1).Propose("b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, LogIndex(2));  // index 1 is the leader's no-op
  EXPECT_EQ(*b, LogIndex(3));
  c.Run(2 * kHeartbeat);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(c.raft(i).commit_index(), LogIndex(3)) << i;
    std::vector<Entry> e = c.Apply(i);
    ASSERT_EQ(e.size(), 3u);
    EXPECT_EQ(e[0].type, EntryType::kNoop);
    EXPECT_EQ(e[1].data, "a");
    EXPECT_EQ(e[2].data, "b");
    EXPECT_TRUE(c.Apply(i).empty());  // each entry once
  }
}

TEST(RaftNode, PreVoteKeepsARejoiningNodeFromDisruptingTheLeader) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.Isolate(3, true);
  c.Run(20 * kElection);
  EXPECT_EQ(c.raft(3).term(), Term(1));  // pre-votes failed: no term inflation
  EXPECT_NE(c.raft(3).role(), Role::kLeader);
  c.Isolate(3, false);
  c.Run(3 * kElection);
  EXPECT_EQ(c.Leader(), 1);
  EXPECT_EQ(c.raft(1).term(), Term(1));
  EXPECT_EQ(c.raft(3).leader(), NodeId(1));
}

TEST(RaftNode, WithoutPreVoteARejoiningNodeDisruptsTheLeader) {
  // The contrast to the test above: it shows that test can fail.
  Cluster c(3, /*pre_vote=*/false, /*check_quorum=*/false);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.Isolate(3, true);
  c.Run(20 * kElection);
  EXPECT_GT(c.raft(3).term(), Term(5));
  c.Isolate(3, false);
  c.Run(3 * kElection);
  ASSERT_NE(c.Leader(), 0);
  EXPECT_GT(c.raft(c.Leader()).term(), Term(5));
}

TEST(RaftNode, LeaderLeaseIgnoresANodeThatOnlyLostTheLeader) {
  // Node 3 cannot reach node 1 but can reach node 2, which still hears the
  // leader: node 2 must refuse node 3's pre-votes, so the group keeps its
  // leader and term.
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.Cut(1, 3);
  c.Run(20 * kElection);
  EXPECT_EQ(c.Leader(), 1);
  EXPECT_EQ(c.raft(1).term(), Term(1));
  EXPECT_EQ(c.raft(2).term(), Term(1));
  EXPECT_EQ(c.raft(3).term(), Term(1));
}

TEST(RaftNode, CheckQuorumMakesAnIsolatedLeaderStepDown) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.Isolate(1, true);
  c.Run(3 * kElection);
  EXPECT_NE(c.raft(1).role(), Role::kLeader);  // a follower, or pre-campaigning
  EXPECT_EQ(c.raft(1).term(), Term(1));
  EXPECT_TRUE(absl::IsFailedPrecondition(c.raft(1).Propose("x").status()));
  // The others elected a new leader meanwhile.
  const int leader = c.Leader();
  ASSERT_TRUE(leader == 2 || leader == 3);
  EXPECT_GT(c.raft(leader).term(), Term(1));
}

TEST(RaftNode, WithoutCheckQuorumAnIsolatedLeaderStaysLeader) {
  Cluster c(3, /*pre_vote=*/true, /*check_quorum=*/false);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.Isolate(1, true);
  c.Run(3 * kElection);
  EXPECT_EQ(c.raft(1).role(), Role::kLeader);
}

TEST(RaftNode, NewLeaderOverwritesAConflictingFollowerSuffix) {
  Cluster c(3);
  Seed(c.node(1).log, {1, 1, 3, 3});
  Seed(c.node(2).log, {1, 1, 2, 2, 2, 2});  // longer, but an older last term
  Seed(c.node(3).log, {1});
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(c.node(i).hard_state.Save({Term(3), {}}).ok());
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);  // node 2's log is not up to date enough for it
  EXPECT_EQ(c.raft(1).term(), Term(4));
  c.Run(2 * kHeartbeat);
  const std::vector<Term> want = {Term(1), Term(1), Term(3), Term(3), Term(4)};
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(Terms(c.node(i).log), want) << "node " << i;
  EXPECT_EQ(c.node(2).log.At(LogIndex(3)).data, "seed3");  // node 1's entry
  EXPECT_EQ(c.raft(2).commit_index(), LogIndex(5));
}

TEST(RaftNode, OldTermEntryIsNotCommittedByCountingReplicas) {
  // Raft Figure 8: the term-4 leader holds an uncommitted term-2 entry at
  // index 2. Once a majority has it (but not yet the leader's term-4 no-op),
  // counting replicas must not commit it: a node with a term-3 entry there
  // could still be elected and overwrite it.
  Cluster c(3, true, true, /*max_entries=*/1);
  Seed(c.node(1).log, {1, 2});
  Seed(c.node(2).log, {1});
  Seed(c.node(3).log, {1});
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(c.node(i).hard_state.Save({Term(3), {}}).ok());
  c.StartAll();
  bool majority_had_only_old_entry = false;
  c.clock().now += kElection + 10;
  ASSERT_TRUE(c.raft(1).Tick().ok());
  c.DeliverAll([&](const Message& m) {
    if (c.raft(1).role() != Role::kLeader) return;
    if (m.type == MessageType::kAppendEntriesResponse && m.granted &&
        m.match_index == LogIndex(2) && m.to == NodeId(1)) {
      majority_had_only_old_entry = true;
      EXPECT_LT(c.raft(1).commit_index(), LogIndex(2));
    }
  });
  ASSERT_EQ(c.Leader(), 1);
  EXPECT_EQ(c.raft(1).term(), Term(4));
  EXPECT_TRUE(majority_had_only_old_entry);
  // Once the term-4 no-op is on a majority, both commit together.
  EXPECT_EQ(c.raft(1).commit_index(), LogIndex(3));
}

TEST(RaftNode, LeadershipTransferHandsOverToTheTarget) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  ASSERT_TRUE(c.raft(1).Propose("x").ok());
  c.Run(kHeartbeat);
  ASSERT_TRUE(c.raft(1).TransferLeadership(NodeId(3)).ok());
  EXPECT_TRUE(absl::IsUnavailable(c.raft(1).Propose("during").status()));
  c.DeliverAll();
  EXPECT_EQ(c.Leader(), 3);
  EXPECT_EQ(c.raft(3).term(), Term(2));
  EXPECT_EQ(c.raft(1).role(), Role::kFollower);
  EXPECT_EQ(c.raft(1).leader(), NodeId(3));
  EXPECT_TRUE(c.raft(3).Propose("after").ok());
}

TEST(RaftNode, TermAndVoteSurviveARestart) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.node(2).raft.reset();
  c.node(2).log.Crash();
  c.Start(2);
  EXPECT_EQ(c.raft(2).term(), Term(1));
  EXPECT_EQ(c.raft(2).voted_for(), NodeId(1));
  // Another candidate for term 1 is refused: the vote was already cast.
  Message m;
  m.type = MessageType::kRequestVote;
  m.from = NodeId(3);
  m.to = NodeId(2);
  m.term = Term(1);
  m.last_log_index = LogIndex(10);
  m.last_log_term = Term(1);
  std::vector<Message> sent;
  c.on_send = [&](const Message& x) { sent.push_back(x); };
  ASSERT_TRUE(c.raft(2).Step(m).ok());
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].type, MessageType::kRequestVoteResponse);
  EXPECT_FALSE(sent[0].granted);
}

TEST(RaftNode, FailedSyncStopsTheNodeAndSendsNoAck) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.node(2).log.FailNextSync();
  ASSERT_TRUE(c.raft(1).Propose("x").ok());
  bool acked_by_2 = false;
  c.on_send = [&](const Message& m) {
    if (m.from == NodeId(2) && m.type == MessageType::kAppendEntriesResponse) acked_by_2 = true;
  };
  // Deliver by hand: node 2's Step must fail.
  Message to2;
  to2.type = MessageType::kAppendEntries;
  to2.from = NodeId(1);
  to2.to = NodeId(2);
  to2.term = Term(1);
  to2.prev_log_index = LogIndex(1);
  to2.prev_log_term = Term(1);
  to2.entries.push_back(Entry{Term(1), LogIndex(2), EntryType::kNormal, "x"});
  EXPECT_EQ(c.raft(2).Step(to2).code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(acked_by_2);
  EXPECT_EQ(c.raft(2).Tick().code(), absl::StatusCode::kDataLoss);
  c.node(2).log.Crash();
  EXPECT_EQ(c.node(2).log.LastIndex(), LogIndex(1));  // the unsynced entry is gone
}

TEST(RaftNode, LaggingFollowerCatchesUpFromASnapshot) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  c.Isolate(3, true);
  for (int k = 0; k < 10; ++k) ASSERT_TRUE(c.raft(1).Propose("v" + std::to_string(k)).ok());
  c.Run(2 * kHeartbeat);
  ASSERT_EQ(c.raft(1).commit_index(), LogIndex(11));
  ASSERT_EQ(c.Apply(1).size(), 11u);
  ASSERT_TRUE(c.raft(1).Compact(LogIndex(11), "state@11").ok());
  EXPECT_EQ(c.node(1).log.FirstIndex(), LogIndex(12));
  EXPECT_EQ(c.node(1).snapshots.snapshot()->term, Term(1));
  c.Isolate(3, false);
  c.Run(2 * kHeartbeat);
  // Node 3 had only the no-op; index 2.. are gone from the leader's log.
  EXPECT_TRUE(absl::IsFailedPrecondition(c.raft(3).TakeCommitted().status()));
  auto snap = c.raft(3).TakeSnapshot();
  ASSERT_TRUE(snap.ok() && snap->has_value());
  EXPECT_EQ((*snap)->index, LogIndex(11));
  EXPECT_EQ((*snap)->data, "state@11");
  EXPECT_EQ(c.node(3).snapshots.snapshot()->index, LogIndex(11));  // durable
  EXPECT_EQ(c.node(3).log.FirstIndex(), LogIndex(12));
  ASSERT_TRUE(c.raft(1).Propose("after").ok());
  c.Run(2 * kHeartbeat);
  std::vector<Entry> e = c.Apply(3);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].index, LogIndex(12));
  EXPECT_EQ(e[0].data, "after");
}

TEST(RaftNode, RestartHandsOutTheStoredSnapshotBeforeEntries) {
  Cluster c(3);
  c.StartAll();
  c.Run(kElection + 20);
  ASSERT_EQ(c.Leader(), 1);
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(c.raft(1).Propose("v" + std::to_string(k)).ok());
  c.Run(2 * kHeartbeat);
  ASSERT_EQ(c.Apply(2).size(), 5u);
  ASSERT_TRUE(c.raft(2).Compact(LogIndex(3), "state@3").ok());
  c.node(2).raft.reset();
  c.node(2).log.Crash();
  c.Start(2);
  EXPECT_TRUE(absl::IsFailedPrecondition(c.raft(2).TakeCommitted().status()));
  auto snap = c.raft(2).TakeSnapshot();
  ASSERT_TRUE(snap.ok() && snap->has_value());
  EXPECT_EQ((*snap)->data, "state@3");
  EXPECT_EQ(c.raft(2).applied_index(), LogIndex(3));
  c.Run(2 * kHeartbeat);  // the leader's heartbeat brings the commit index back
  std::vector<Entry> e = c.Apply(2);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].data, "v2");
  EXPECT_EQ(e[1].data, "v3");
}

TEST(MemoryLog, CrashRestoresTheLastSyncedState) {
  MemoryLog log;
  Seed(log, {1, 1, 1});
  ASSERT_TRUE(log.TruncateSuffix(LogIndex(2)).ok());
  ASSERT_TRUE(log.Append({Entry{Term(2), LogIndex(2), EntryType::kNormal, "new"}}).ok());
  EXPECT_EQ(log.DurableLastIndex(), LogIndex(3));
  log.Crash();  // the unsynced truncation and append are undone
  EXPECT_EQ(Terms(log), (std::vector<Term>{Term(1), Term(1), Term(1)}));
  ASSERT_TRUE(log.TruncateSuffix(LogIndex(2)).ok());
  ASSERT_TRUE(log.Sync().ok());
  log.Crash();
  EXPECT_EQ(log.LastIndex(), LogIndex(1));
  EXPECT_FALSE(log.TermAt(LogIndex(2)).ok());
}

}  // namespace
}  // namespace brook::raft
