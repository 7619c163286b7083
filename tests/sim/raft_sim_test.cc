// Deterministic simulation of a Raft group (brook::raft): seeded, virtual
// time, an in-memory network that drops, delays, duplicates, reorders and
// partitions, nodes that crash (losing unsynced log writes) and restart,
// failing fsyncs, log compaction (hence InstallSnapshot) and leadership
// transfers. Safety invariants are checked after every node action;
// liveness after the faults stop. BROOK_SIM_SEED=N replays one seed verbosely;
// BROOK_SIM_SEEDS=K runs K seeds (default 3000) from BROOK_SIM_FIRST_SEED
// (default 1).
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "coordinator/raft/memory_storage.h"
#include "coordinator/raft/raft_node.h"
#include "gtest/gtest.h"

namespace brook::raft {
namespace {

// splitmix64: tiny, and identical on every platform (unlike std distributions).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int64_t Uniform(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo));
  }
  bool Chance(double p) { return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p; }

 private:
  uint64_t s_;
};

constexpr int64_t kTickMs = 5;
constexpr int64_t kElectionTimeoutMs = 100;
constexpr int64_t kHeartbeatMs = 20;

struct Stats {
  int64_t committed = 0;  // committed entries at the end, summed over seeds
  int64_t leaders = 0;    // distinct (term, leader) pairs
  int64_t snapshots = 0;  // snapshots loaded into a state machine
};

// One seeded run. Not thread-safe.
class Simulation {
 public:
  Simulation(uint64_t seed, bool verbose) : rng_(seed), verbose_(verbose) {}

  // Returns an empty string on success, else what went wrong.
  std::string Run(Stats* stats);

 private:
  struct Node;
  class NodeTransport : public Transport {
   public:
    NodeTransport(Simulation* sim, int idx) : sim_(sim), idx_(idx) {}
    void Send(Message m) override { sim_->OnSend(idx_, std::move(m)); }

   private:
    Simulation* sim_;
    int idx_;
  };
  class NodeRandom : public Random {
   public:
    explicit NodeRandom(uint64_t seed) : rng_(seed) {}
    int64_t Uniform(int64_t lo, int64_t hi) override { return rng_.Uniform(lo, hi); }

   private:
    Rng rng_;
  };
  class SimClock : public Clock {
   public:
    explicit SimClock(const int64_t* now) : now_(now) {}
    int64_t NowMs() override { return *now_; }

   private:
    const int64_t* now_;
  };
  struct Node {
    Node(Simulation* sim, int idx, uint64_t seed) : transport(sim, idx), random(seed) {}
    MemoryLog log;
    MemoryHardStateStore hard_state;
    MemorySnapshotStore snapshots;
    NodeTransport transport;
    NodeRandom random;
    std::unique_ptr<RaftNode> raft;  // null while crashed
    int64_t restart_at = 0;
    // Per lifetime:
    LogIndex last_commit;
    LogIndex applied;
    Term leader_term;         // the term in which this lifetime was last seen leading
    uint64_t state_hash = 0;  // the state machine: a hash of the applied entries
  };
  struct InFlight {
    int64_t at;
    uint64_t seq;
    Message m;
    bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  struct EntryInfo {  // what (index, term) must name in every log
    EntryType type;
    std::string data;
    Term prev_term;
  };

  template <typename... Args>
  void Log(const Args&... args) {
    if (verbose_)
      std::printf("%7lld ms  %s\n", static_cast<long long>(now_), absl::StrCat(args...).c_str());
  }
  void Fail(const std::string& what) {
    if (failure_.empty()) failure_ = absl::StrCat("at ", now_, " ms: ", what);
  }
  bool Connected(int a, int b) const { return group_[a] == group_[b]; }
  void Start(int i);
  void Crash(int i, const char* why);
  void OnSend(int from, Message m);
  void Deliver(const InFlight& f);
  void Faults();
  void ProposeSomewhere(const std::string& data);
  void AfterCall(int i, const absl::Status& status);
  void CheckNode(int i);
  static uint64_t Mix(uint64_t h, const Entry& e) {
    Rng r(h ^ std::hash<std::string>()(e.data) ^ (static_cast<uint64_t>(e.term.value()) << 32) ^
          static_cast<uint64_t>(e.index.value()));
    return r.Next();
  }

  Rng rng_;
  const bool verbose_;
  int64_t now_ = 0;
  SimClock clock_{&now_};
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<NodeId> voters_;
  std::vector<int> group_;  // partition: nodes talk only within a group
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> net_;
  uint64_t seq_ = 0;
  bool faults_ = true;
  double drop_ = 0, dup_ = 0;
  double partition_p_ = 0, crash_p_ = 0, compact_p_ = 0;  // per tick
  int64_t max_delay_ = 10;
  size_t max_entries_ = 16;
  int64_t proposals_ = 0;
  std::string failure_;

  // Invariant state, across the whole history of the run.
  std::map<int64_t, int> leaders_;                                    // term -> node
  absl::flat_hash_map<std::pair<int64_t, int64_t>, EntryInfo> seen_;  // (index, term)
  std::vector<Entry> committed_;                                      // index i at [i - 1]
  std::vector<Term> commit_term_;         // a term by which committed_[k] was committed
  std::vector<uint64_t> committed_hash_;  // state hash after applying committed_[0..k]
  LogIndex live_index_;                   // the first committed liveness probe
  int64_t snapshots_loaded_ = 0;
};

void Simulation::Start(int i) {
  Node& n = *nodes_[i];
  RaftConfig c;
  c.id = voters_[i];
  c.voters = voters_;
  c.election_timeout_ms = kElectionTimeoutMs;
  c.heartbeat_interval_ms = kHeartbeatMs;
  c.max_entries_per_message = max_entries_;
  auto r =
      RaftNode::Create(c, &n.log, &n.hard_state, &n.snapshots, &n.transport, &clock_, &n.random);
  if (!r.ok()) {
    Fail(absl::StrCat("node ", i, " does not start: ", r.status().ToString()));
    return;
  }
  n.raft = std::move(*r);
  n.last_commit = LogIndex(0);
  n.applied = LogIndex(0);
  n.leader_term = Term(0);
  n.state_hash = 0;
  Log("node ", i, " starts: term ", n.raft->term().value(), " log ", n.log.LastIndex().value());
}

void Simulation::Crash(int i, const char* why) {
  Node& n = *nodes_[i];
  n.raft.reset();
  n.log.Crash();
  n.restart_at = now_ + rng_.Uniform(50, 800);
  Log("node ", i, " crashes (", why, "), durable log ", n.log.LastIndex().value());
}

void Simulation::OnSend(int from, Message m) {
  Node& n = *nodes_[from];
  // Durability before acknowledgement.
  if (m.type == MessageType::kRequestVoteResponse && m.granted) {
    const HardState& hs = n.hard_state.state();
    if (hs.term != m.term || hs.voted_for != m.to) {
      Fail(absl::StrCat("node ", from, " granted a vote that is not durable"));
    }
  }
  if (m.type == MessageType::kAppendEntriesResponse && m.granted) {
    const LogIndex match = m.match_index;
    const bool durable = match.value() > 0 && match <= n.log.FirstIndex() - 1
                             ? n.snapshots.snapshot() && n.snapshots.snapshot()->index >= match
                             : n.log.DurableLastIndex() >= match &&
                                   n.log.DurableTermAt(match) == *n.log.TermAt(match);
    if (!durable) {
      Fail(absl::StrCat("node ", from, " acknowledged entries through ", m.match_index.value(),
                        " that are not durable"));
    }
  }
  const int to = static_cast<int>(m.to.value()) - 1;
  if (!Connected(from, to) || rng_.Chance(drop_)) {
    Log("drop ", DebugString(m));
    return;
  }
  const int copies = rng_.Chance(dup_) ? 2 : 1;
  for (int c = 0; c < copies; ++c) {
    net_.push(InFlight{now_ + rng_.Uniform(1, max_delay_ + 1), seq_++, m});
  }
}

void Simulation::Deliver(const InFlight& f) {
  const int from = static_cast<int>(f.m.from.value()) - 1;
  const int to = static_cast<int>(f.m.to.value()) - 1;
  Node& n = *nodes_[to];
  if (!n.raft || !Connected(from, to)) return;
  Log("recv ", DebugString(f.m));
  AfterCall(to, n.raft->Step(f.m));
}

void Simulation::AfterCall(int i, const absl::Status& status) {
  if (!status.ok()) {
    // A failed fsync stops the node; it restarts from durable state.
    Crash(i, status.ToString().c_str());
    return;
  }
  CheckNode(i);
}

void Simulation::CheckNode(int i) {
  Node& n = *nodes_[i];
  RaftNode& r = *n.raft;

  // Log matching: (index, term) names one entry everywhere, and the same
  // predecessor term, so equal (index, term) implies equal prefixes.
  const LogIndex last = n.log.LastIndex();
  for (LogIndex k = n.log.TakeModifiedFrom(); k <= last; ++k) {
    const Entry& e = n.log.At(k);
    const Term prev = *n.log.TermAt(k - 1);
    auto [it, inserted] =
        seen_.try_emplace({k.value(), e.term.value()}, EntryInfo{e.type, e.data, prev});
    if (!inserted &&
        (it->second.type != e.type || it->second.data != e.data || it->second.prev_term != prev)) {
      Fail(absl::StrCat("log matching: node ", i, " index ", k.value(), " term ", e.term.value(),
                        " differs from another log"));
      return;
    }
  }

  // At most one leader per term; a new leader holds every committed entry.
  if (r.role() == Role::kLeader) {
    auto [it, inserted] = leaders_.try_emplace(r.term().value(), i);
    if (!inserted && it->second != i) {
      Fail(absl::StrCat("two leaders in term ", r.term().value(), ": nodes ", it->second, " and ",
                        i));
      return;
    }
    if (n.leader_term != r.term()) {
      n.leader_term = r.term();
      Log("node ", i, " leads term ", r.term().value());
      for (size_t k = 0; k < committed_.size(); ++k) {
        const Entry& c = committed_[k];
        if (commit_term_[k] >= r.term() || c.index < n.log.FirstIndex()) continue;
        if (c.index > last || n.log.At(c.index) != c) {
          Fail(absl::StrCat("leader completeness: leader ", i, " of term ", r.term().value(),
                            " lacks entry ", c.index.value(), " committed by term ",
                            commit_term_[k].value()));
          return;
        }
      }
    }
  }

  // Commit index: monotonic within a lifetime; a committed entry never changes
  // and is in the log of every leader of a later term.
  if (r.commit_index() < n.last_commit) {
    Fail(absl::StrCat("node ", i, " commit index went back"));
    return;
  }
  if (r.commit_index() > last) {
    Fail(absl::StrCat("node ", i, " commit index beyond its log"));
    return;
  }
  // A node in term T knows of a commit only from a leader of a term <= T, so
  // the entry was committed by term T: every leader of a later term has it.
  for (LogIndex k = std::max(n.last_commit + 1, n.log.FirstIndex()); k <= r.commit_index(); ++k) {
    // (Below FirstIndex: committed through an installed snapshot, checked
    // when the snapshot is taken.)
    const Entry& e = n.log.At(k);
    const size_t slot = static_cast<size_t>(k.value() - 1);
    if (slot > committed_.size()) {
      Fail(absl::StrCat("node ", i, " commits ", k.value(), " beyond every known commit"));
      return;
    }
    if (slot < committed_.size()) {
      if (committed_[slot] != e) {
        Fail(absl::StrCat("node ", i, " committed a different entry at ", k.value()));
        return;
      }
      commit_term_[slot] = std::min(commit_term_[slot], r.term());
    } else {
      committed_.push_back(e);
      commit_term_.push_back(r.term());
      committed_hash_.push_back(Mix(committed_hash_.empty() ? 0 : committed_hash_.back(), e));
      if (live_index_ == LogIndex(0) && e.data.rfind("live-", 0) == 0) live_index_ = e.index;
    }
    for (size_t j = 0; j < nodes_.size(); ++j) {
      const Node& m = *nodes_[j];
      if (!m.raft || m.raft->role() != Role::kLeader || m.raft->term() <= r.term()) continue;
      if (k < m.log.FirstIndex()) continue;  // in its snapshot
      if (m.log.LastIndex() < k || m.log.At(k) != e) {
        Fail(absl::StrCat("leader completeness: leader ", j, " of term ", m.raft->term().value(),
                          " lacks entry ", k.value(), " committed by term ", r.term().value()));
        return;
      }
    }
  }
  n.last_commit = r.commit_index();

  // State-machine safety: every node applies the committed entries, in order.
  auto snapshot = r.TakeSnapshot();
  if (!snapshot.ok()) {
    Fail(absl::StrCat("TakeSnapshot: ", snapshot.status().ToString()));
    return;
  }
  if (*snapshot) {
    const Snapshot& sn = **snapshot;
    const size_t slot = static_cast<size_t>(sn.index.value() - 1);
    if (sn.index <= n.applied || slot >= committed_.size() || committed_[slot].term != sn.term ||
        sn.data != absl::StrCat(committed_hash_[slot])) {
      Fail(absl::StrCat("state machine safety: node ", i, " got a wrong snapshot at ",
                        sn.index.value()));
      return;
    }
    Log("node ", i, " loads snapshot ", sn.index.value());
    ++snapshots_loaded_;
    n.applied = sn.index;
    n.state_hash = committed_hash_[slot];
  }
  auto applied = r.TakeCommitted();
  if (!applied.ok()) {
    Fail(absl::StrCat("TakeCommitted: ", applied.status().ToString()));
    return;
  }
  for (const Entry& e : *applied) {
    const size_t slot = static_cast<size_t>(e.index.value() - 1);
    if (e.index != n.applied + 1 || slot >= committed_.size() || committed_[slot] != e) {
      Fail(absl::StrCat("state machine safety: node ", i, " applied a wrong entry at ",
                        e.index.value()));
      return;
    }
    n.applied = e.index;
    n.state_hash = Mix(n.state_hash, e);
  }
}

void Simulation::ProposeSomewhere(const std::string& data) {
  std::vector<int> up;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->raft) up.push_back(static_cast<int>(i));
  }
  if (up.empty()) return;
  int i = up[rng_.Uniform(0, static_cast<int64_t>(up.size()))];
  auto hint = nodes_[i]->raft->leader();
  if (nodes_[i]->raft->role() != Role::kLeader && hint) {
    const int h = static_cast<int>(hint->value()) - 1;
    if (nodes_[h]->raft) i = h;
  }
  auto index = nodes_[i]->raft->Propose(data);
  if (index.ok()) {
    Log("node ", i, " proposes ", data, " at ", index->value());
    CheckNode(i);
  } else if (!absl::IsFailedPrecondition(index.status()) && !absl::IsUnavailable(index.status())) {
    Crash(i, "propose failed");
  }
}

void Simulation::Faults() {
  const int n = static_cast<int>(nodes_.size());
  if (rng_.Chance(partition_p_)) {
    if (rng_.Chance(0.4)) {
      for (int& g : group_) g = 0;
      Log("partition healed");
    } else {
      std::string desc;
      for (int& g : group_) {
        g = static_cast<int>(rng_.Uniform(0, 2));
        absl::StrAppend(&desc, g);
      }
      Log("partition ", desc);
    }
  }
  if (rng_.Chance(crash_p_)) {
    const int i = static_cast<int>(rng_.Uniform(0, n));
    if (nodes_[i]->raft) Crash(i, "injected");
  }
  if (rng_.Chance(0.0007)) {
    const int i = static_cast<int>(rng_.Uniform(0, n));
    if (nodes_[i]->raft) {
      nodes_[i]->log.FailNextSync();
      Log("node ", i, ": next sync will fail");
    }
  }
  if (rng_.Chance(compact_p_)) {
    const int i = static_cast<int>(rng_.Uniform(0, n));
    Node& node = *nodes_[i];
    if (node.raft && node.applied > node.raft->snapshot_index()) {
      Log("node ", i, " compacts through ", node.applied.value());
      AfterCall(i, node.raft->Compact(node.applied, absl::StrCat(node.state_hash)));
    }
  }
  if (rng_.Chance(0.002)) {
    for (int i = 0; i < n; ++i) {
      RaftNode* r = nodes_[i]->raft.get();
      if (r && r->role() == Role::kLeader) {
        const NodeId target = voters_[rng_.Uniform(0, n)];
        Log("node ", i, " transfers leadership to ", target.value() - 1);
        AfterCall(i, r->TransferLeadership(target));
        break;
      }
    }
  }
}

std::string Simulation::Run(Stats* stats) {
  const int n = rng_.Chance(0.5) ? 3 : 5;
  drop_ = rng_.Chance(0.2) ? 0.0 : rng_.Uniform(0, 25) / 100.0;
  dup_ = rng_.Uniform(0, 10) / 100.0;
  max_delay_ = rng_.Uniform(2, 80);
  max_entries_ = rng_.Chance(0.5) ? 1 : static_cast<size_t>(rng_.Uniform(2, 17));
  const int64_t fault_ms = rng_.Uniform(2000, 10000);
  partition_p_ = rng_.Uniform(2, 30) / 1000.0;
  crash_p_ = rng_.Uniform(2, 20) / 1000.0;
  compact_p_ = rng_.Chance(0.3) ? 0.0 : rng_.Uniform(1, 40) / 1000.0;
  const double propose_p = rng_.Uniform(5, 40) / 100.0;
  Log("nodes ", n, " drop ", drop_, " dup ", dup_, " max delay ", max_delay_, " ms, faults for ",
      fault_ms, " ms, partition p ", partition_p_, " crash p ", crash_p_);
  for (int i = 0; i < n; ++i) {
    nodes_.push_back(std::make_unique<Node>(this, i, rng_.Next()));
    voters_.push_back(NodeId(i + 1));
    group_.push_back(0);
  }
  for (int i = 0; i < n; ++i) Start(i);

  int64_t next_tick = kTickMs;
  int64_t heal_at = fault_ms;
  const int64_t liveness_bound_ms = 5000;
  int64_t next_live_proposal = 0;
  while (failure_.empty()) {
    if (!net_.empty() && net_.top().at < next_tick) {
      InFlight f = net_.top();
      net_.pop();
      now_ = f.at;
      Deliver(f);
      continue;
    }
    now_ = next_tick;
    next_tick += kTickMs;
    if (faults_ && now_ >= heal_at) {
      // Faults stop: heal the network, restart every node, deliver promptly.
      faults_ = false;
      for (int& g : group_) g = 0;
      drop_ = 0;
      max_delay_ = std::min<int64_t>(max_delay_, 20);
      for (int i = 0; i < n; ++i) {
        if (!nodes_[i]->raft) Start(i);
      }
      Log("faults stop");
    }
    for (int i = 0; i < n; ++i) {
      if (!nodes_[i]->raft && now_ >= nodes_[i]->restart_at) Start(i);
    }
    if (faults_) {
      Faults();
      if (rng_.Chance(propose_p)) ProposeSomewhere(absl::StrCat("p", proposals_++));
    } else {
      bool all_live = live_index_ > LogIndex(0);
      for (auto& node : nodes_) all_live = all_live && node->applied >= live_index_;
      if (all_live) break;
      if (now_ > heal_at + liveness_bound_ms) {
        Fail(absl::StrCat("liveness: no proposal committed on every node within ",
                          liveness_bound_ms, " ms after the faults stopped"));
        break;
      }
      if (now_ >= next_live_proposal) {
        next_live_proposal = now_ + 4 * kElectionTimeoutMs;
        ProposeSomewhere(absl::StrCat("live-", proposals_++));
      }
    }
    for (int i = 0; i < n && failure_.empty(); ++i) {
      if (nodes_[i]->raft) AfterCall(i, nodes_[i]->raft->Tick());
    }
  }
  stats->committed += static_cast<int64_t>(committed_.size());
  stats->leaders += static_cast<int64_t>(leaders_.size());
  stats->snapshots += snapshots_loaded_;
  Log("end: ", committed_.size(), " committed, ", leaders_.size(), " terms with a leader");
  return failure_;
}

// BROOK_CHECK inside the node aborts: say which seed did it.
uint64_t g_current_seed = 0;
void OnAbort(int) {
  char buf[128];
  const int len =
      std::snprintf(buf, sizeof(buf), "\naborted in seed %llu; replay: BROOK_SIM_SEED=%llu\n",
                    static_cast<unsigned long long>(g_current_seed),
                    static_cast<unsigned long long>(g_current_seed));
  if (len > 0) (void)!write(2, buf, static_cast<size_t>(len));
}

TEST(RaftSimulation, SeedsHoldSafetyAndLiveness) {
  std::signal(SIGABRT, OnAbort);
  Stats stats;
  if (const char* one = std::getenv("BROOK_SIM_SEED")) {
    g_current_seed = std::strtoull(one, nullptr, 10);
    const std::string failure = Simulation(g_current_seed, /*verbose=*/true).Run(&stats);
    EXPECT_EQ(failure, "") << "seed " << g_current_seed;
    return;
  }
  uint64_t seeds = 3000;
  if (const char* k = std::getenv("BROOK_SIM_SEEDS")) seeds = std::strtoull(k, nullptr, 10);
  uint64_t first = 1;
  if (const char* f = std::getenv("BROOK_SIM_FIRST_SEED")) first = std::strtoull(f, nullptr, 10);
  int failures = 0;
  for (uint64_t seed = first; seed < first + seeds && failures < 5; ++seed) {
    g_current_seed = seed;
    const std::string failure = Simulation(seed, /*verbose=*/false).Run(&stats);
    if (!failure.empty()) {
      ++failures;
      ADD_FAILURE() << "seed " << seed << " failed " << failure
                    << "\n  replay: BROOK_SIM_SEED=" << seed << " tests/sim/raft_sim_test";
    }
  }
  std::printf("%llu seeds: %lld committed entries, %lld leader terms, %lld snapshots loaded\n",
              static_cast<unsigned long long>(seeds), static_cast<long long>(stats.committed),
              static_cast<long long>(stats.leaders), static_cast<long long>(stats.snapshots));
  // The runs must actually exercise the protocol.
  EXPECT_GT(stats.leaders, static_cast<int64_t>(seeds));
  EXPECT_GT(stats.committed, static_cast<int64_t>(5 * seeds));
  EXPECT_GT(stats.snapshots, static_cast<int64_t>(seeds / 10));
}

}  // namespace
}  // namespace brook::raft
