// Tests of the durable Raft storage (coordinator/raft/durable_storage.h) on
// real files in a temp directory: log round trips across reopen, truncation,
// compaction, a torn tail, hard-state and snapshot files, and a 3-node
// RaftNode cluster restarted from its directories.
#include "coordinator/raft/durable_storage.h"

#include <stdlib.h>

#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/raft/raft_node.h"
#include "gtest/gtest.h"
#include "tests/unit/storage/fault_fs.h"

namespace brook::raft {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "raft_durable_XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

storage::FileSystem* Fs() { return storage::DefaultFileSystem(); }

std::vector<Entry> MakeEntries(int64_t first, int64_t count, int64_t term) {
  std::vector<Entry> out;
  for (int64_t i = first; i < first + count; ++i) {
    out.push_back(Entry{Term(term), LogIndex(i), i % 3 == 0 ? EntryType::kNoop : EntryType::kNormal,
                        "entry-" + std::to_string(i) + "-t" + std::to_string(term)});
  }
  return out;
}

std::vector<Entry> ReadAllEntries(const SegmentRaftLog& log) {
  auto e = log.Entries(log.FirstIndex(), LogIndex(log.LastIndex().value() + 1), 1 << 20);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : std::vector<Entry>{};
}

std::unique_ptr<SegmentRaftLog> OpenLog(const std::string& dir) {
  auto log = SegmentRaftLog::Open(Fs(), dir);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? std::move(*log) : nullptr;
}

TEST(SegmentRaftLog, AppendSyncReopenRoundTrip) {
  TempDir tmp;
  std::vector<Entry> want = MakeEntries(1, 5, 1);
  for (const Entry& e : MakeEntries(6, 5, 2)) want.push_back(e);
  want[7].data = std::string(3000, 'x');  // a larger payload
  want[8].data.clear();                   // an empty one
  {
    auto log = OpenLog(tmp.path());
    ASSERT_TRUE(log);
    EXPECT_EQ(log->FirstIndex(), LogIndex(1));
    EXPECT_EQ(log->LastIndex(), LogIndex(0));
    ASSERT_TRUE(log->Append(want).ok());
    ASSERT_TRUE(log->Sync().ok());
    EXPECT_EQ(ReadAllEntries(*log), want);
  }
  auto log = OpenLog(tmp.path());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->FirstIndex(), LogIndex(1));
  EXPECT_EQ(log->LastIndex(), LogIndex(10));
  EXPECT_EQ(*log->TermAt(LogIndex(0)), Term(0));
  EXPECT_EQ(*log->TermAt(LogIndex(5)), Term(1));
  EXPECT_EQ(*log->TermAt(LogIndex(6)), Term(2));
  EXPECT_FALSE(log->TermAt(LogIndex(11)).ok());
  EXPECT_EQ(ReadAllEntries(*log), want);
  // A bounded read in the middle.
  auto some = log->Entries(LogIndex(3), LogIndex(9), 4);
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 4u);
  EXPECT_EQ((*some)[0], want[2]);
  EXPECT_EQ((*some)[3], want[5]);
  // Appends must continue at LastIndex() + 1.
  EXPECT_FALSE(log->Append(MakeEntries(12, 1, 2)).ok());
}

TEST(SegmentRaftLog, TruncateSuffixThenAppendSurvivesReopen) {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    ASSERT_TRUE(log->Append(MakeEntries(1, 8, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
    ASSERT_TRUE(log->TruncateSuffix(LogIndex(5)).ok());
    EXPECT_EQ(log->LastIndex(), LogIndex(4));
    ASSERT_TRUE(log->Append(MakeEntries(5, 3, 3)).ok());
    ASSERT_TRUE(log->Sync().ok());
  }
  auto log = OpenLog(tmp.path());
  EXPECT_EQ(log->LastIndex(), LogIndex(7));
  std::vector<Entry> want = MakeEntries(1, 4, 1);
  for (const Entry& e : MakeEntries(5, 3, 3)) want.push_back(e);
  EXPECT_EQ(ReadAllEntries(*log), want);
  EXPECT_EQ(*log->TermAt(LogIndex(4)), Term(1));
  EXPECT_EQ(*log->TermAt(LogIndex(5)), Term(3));
}

TEST(SegmentRaftLog, CompactPrefixAndResetToSurviveReopen) {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    ASSERT_TRUE(log->Append(MakeEntries(1, 10, 2)).ok());
    ASSERT_TRUE(log->Sync().ok());
    ASSERT_TRUE(log->CompactPrefix(LogIndex(6)).ok());
    EXPECT_EQ(log->FirstIndex(), LogIndex(7));
    EXPECT_EQ(*log->TermAt(LogIndex(6)), Term(2));
    EXPECT_FALSE(log->TermAt(LogIndex(5)).ok());
    ASSERT_TRUE(log->Append(MakeEntries(11, 2, 3)).ok());
    ASSERT_TRUE(log->Sync().ok());
  }
  {
    auto log = OpenLog(tmp.path());
    EXPECT_EQ(log->FirstIndex(), LogIndex(7));
    EXPECT_EQ(log->LastIndex(), LogIndex(12));
    EXPECT_EQ(*log->TermAt(LogIndex(6)), Term(2));
    std::vector<Entry> want = MakeEntries(7, 4, 2);
    for (const Entry& e : MakeEntries(11, 2, 3)) want.push_back(e);
    EXPECT_EQ(ReadAllEntries(*log), want);
    // Exactly one generation directory is left.
    int gens = 0;
    for (const auto& d : fs::directory_iterator(tmp.path())) {
      if (d.path().filename().string().rfind("log-", 0) == 0) ++gens;
    }
    EXPECT_EQ(gens, 1);
    ASSERT_TRUE(log->ResetTo(LogIndex(40), Term(5)).ok());
    EXPECT_EQ(log->FirstIndex(), LogIndex(41));
    EXPECT_EQ(log->LastIndex(), LogIndex(40));
  }
  auto log = OpenLog(tmp.path());
  EXPECT_EQ(log->FirstIndex(), LogIndex(41));
  EXPECT_EQ(log->LastIndex(), LogIndex(40));
  EXPECT_EQ(*log->TermAt(LogIndex(40)), Term(5));
  ASSERT_TRUE(log->Append(MakeEntries(41, 2, 6)).ok());
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(ReadAllEntries(*log), MakeEntries(41, 2, 6));
}

TEST(SegmentRaftLog, TornTailIsDroppedOnReopen) {
  TempDir tmp;
  {
    auto log = OpenLog(tmp.path());
    ASSERT_TRUE(log->Append(MakeEntries(1, 6, 1)).ok());
    ASSERT_TRUE(log->Sync().ok());
  }
  // Cut the last entry's batch in half, as a crash mid-write would.
  std::string segment;
  for (const auto& f : fs::directory_iterator(tmp.path() + "/log-0")) {
    if (f.path().extension() == ".log") segment = f.path().string();
  }
  ASSERT_FALSE(segment.empty());
  const auto size = fs::file_size(segment);
  fs::resize_file(segment, size - 10);
  auto log = OpenLog(tmp.path());
  ASSERT_TRUE(log);
  EXPECT_EQ(log->LastIndex(), LogIndex(5));
  EXPECT_EQ(ReadAllEntries(*log), MakeEntries(1, 5, 1));
  // The log continues where the intact prefix ends.
  ASSERT_TRUE(log->Append(MakeEntries(6, 1, 2)).ok());
  ASSERT_TRUE(log->Sync().ok());
  log.reset();
  log = OpenLog(tmp.path());
  EXPECT_EQ(log->LastIndex(), LogIndex(6));
  EXPECT_EQ(*log->TermAt(LogIndex(6)), Term(2));
}

TEST(SegmentRaftLog, CrashKeepsExactlyTheSyncedPrefix) {
  TempDir tmp;
  for (uint32_t seed : {0u, 7u, 12345u}) {
    const std::string dir = tmp.path() + "/crash" + std::to_string(seed);
    storage::testing::FaultInjectionFileSystem ffs;
    {
      auto log = SegmentRaftLog::Open(&ffs, dir);
      ASSERT_TRUE(log.ok()) << log.status();
      ASSERT_TRUE((*log)->Append(MakeEntries(1, 4, 1)).ok());
      ASSERT_TRUE((*log)->Sync().ok());
      ASSERT_TRUE((*log)->Append(MakeEntries(5, 3, 2)).ok());  // never synced
      ffs.Crash(seed);  // seed != 0 keeps a torn part of the unsynced tail
    }
    ffs.Restart();
    auto log = SegmentRaftLog::Open(&ffs, dir);
    ASSERT_TRUE(log.ok()) << log.status();
    // Whole unsynced entries may survive (the OS wrote them back), torn ones
    // never do; the synced prefix always does.
    ASSERT_GE((*log)->LastIndex(), LogIndex(4)) << "seed " << seed;
    std::vector<Entry> want = MakeEntries(1, 4, 1);
    for (const Entry& e : MakeEntries(5, 3, 2)) want.push_back(e);
    want.resize(static_cast<size_t>((*log)->LastIndex().value()));
    EXPECT_EQ(ReadAllEntries(**log), want) << "seed " << seed;
    if (seed == 0) {
      EXPECT_EQ((*log)->LastIndex(), LogIndex(4));
    }
  }
}

TEST(SegmentRaftLog, FailedSyncIsPermanent) {
  TempDir tmp;
  storage::testing::FaultInjectionFileSystem ffs;
  auto log = SegmentRaftLog::Open(&ffs, tmp.path());
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Append(MakeEntries(1, 2, 1)).ok());
  ffs.FailNextSync();
  EXPECT_FALSE((*log)->Sync().ok());
  // Neither a retry nor further writes pretend that nothing happened.
  EXPECT_FALSE((*log)->Sync().ok());
  EXPECT_FALSE((*log)->Append(MakeEntries(3, 1, 1)).ok());
  EXPECT_FALSE((*log)->TruncateSuffix(LogIndex(2)).ok());
}

TEST(FileHardStateStore, PersistsAcrossReopenAndRejectsCorruption) {
  TempDir tmp;
  const std::string path = tmp.path() + "/hardstate";
  {
    FileHardStateStore store(Fs(), path);
    auto empty = store.Load();
    ASSERT_TRUE(empty.ok());
    EXPECT_EQ(*empty, HardState{});
    ASSERT_TRUE(store.Save(HardState{Term(7), NodeId(3)}).ok());
    ASSERT_TRUE(store.Save(HardState{Term(9), std::nullopt}).ok());
    ASSERT_TRUE(store.Save(HardState{Term(12), NodeId(2)}).ok());
  }
  FileHardStateStore store(Fs(), path);
  auto st = store.Load();
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(*st, (HardState{Term(12), NodeId(2)}));

  std::vector<uint8_t> bytes = EncodeHardState(HardState{Term(12), NodeId(2)});
  bytes[7] ^= 1;
  EXPECT_FALSE(DecodeHardState(bytes).ok());
  bytes.pop_back();
  EXPECT_FALSE(DecodeHardState(bytes).ok());
}

TEST(FileSnapshotStore, PersistsAcrossReopenAndRejectsCorruption) {
  TempDir tmp;
  const std::string path = tmp.path() + "/snapshot";
  {
    FileSnapshotStore store(Fs(), path);
    auto none = store.Load();
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(store.Save(Snapshot{LogIndex(5), Term(2), "old"}).ok());
    ASSERT_TRUE(store.Save(Snapshot{LogIndex(9), Term(3), std::string(5000, 's')}).ok());
  }
  FileSnapshotStore store(Fs(), path);
  auto snap = store.Load();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_TRUE(snap->has_value());
  EXPECT_EQ((*snap)->index, LogIndex(9));
  EXPECT_EQ((*snap)->term, Term(3));
  EXPECT_EQ((*snap)->data, std::string(5000, 's'));

  std::vector<uint8_t> bytes = EncodeSnapshot(Snapshot{LogIndex(9), Term(3), "abc"});
  bytes[30] ^= 0x40;
  EXPECT_FALSE(DecodeSnapshot(bytes).ok());
}

// ---------------------------------------------------------------- cluster

class ManualClock : public Clock {
 public:
  int64_t NowMs() override { return now; }
  int64_t now = 0;
};

class FixedRandom : public Random {
 public:
  explicit FixedRandom(int64_t offset) : offset_(offset) {}
  int64_t Uniform(int64_t lo, int64_t hi) override { return std::min(lo + offset_, hi - 1); }

 private:
  int64_t offset_;
};

class QueueTransport : public Transport {
 public:
  void Send(Message m) override { queue.push_back(std::move(m)); }
  std::deque<Message> queue;
};

// Three nodes, each on its own directory; Stop() drops every in-memory
// object, Start() recreates them from the files.
class DurableCluster {
 public:
  static constexpr int kNodes = 3;
  struct Node {
    std::unique_ptr<SegmentRaftLog> log;
    std::unique_ptr<FileHardStateStore> hard_state;
    std::unique_ptr<FileSnapshotStore> snapshots;
    std::unique_ptr<FixedRandom> random;
    std::unique_ptr<RaftNode> raft;
    std::vector<Entry> applied;
  };

  explicit DurableCluster(const std::string& root) : root_(root) {
    for (int i = 1; i <= kNodes; ++i) config_.voters.push_back(NodeId(i));
    config_.election_timeout_ms = 300;
    config_.heartbeat_interval_ms = 50;
  }

  void Start(int first_election_node) {
    for (int i = 1; i <= kNodes; ++i) {
      Node& n = nodes_[i - 1];
      const std::string dir = root_ + "/node" + std::to_string(i);
      auto log = SegmentRaftLog::Open(Fs(), dir + "/log");
      ASSERT_TRUE(log.ok()) << log.status();
      n.log = std::move(*log);
      n.hard_state = std::make_unique<FileHardStateStore>(Fs(), dir + "/hardstate");
      n.snapshots = std::make_unique<FileSnapshotStore>(Fs(), dir + "/snapshot");
      n.random = std::make_unique<FixedRandom>(i == first_election_node ? 0 : 100 + 30 * i);
      n.applied.clear();
      RaftConfig c = config_;
      c.id = NodeId(i);
      auto r = RaftNode::Create(c, n.log.get(), n.hard_state.get(), n.snapshots.get(),
                                &transport_, &clock_, n.random.get());
      ASSERT_TRUE(r.ok()) << r.status();
      n.raft = std::move(*r);
    }
  }

  void Stop() {
    transport_.queue.clear();
    for (Node& n : nodes_) n = Node{};
  }

  void Run(int64_t ms) {
    for (int64_t t = 0; t < ms; t += 10) {
      clock_.now += 10;
      for (Node& n : nodes_) ASSERT_TRUE(n.raft->Tick().ok());
      for (int guard = 0; !transport_.queue.empty() && guard < 100000; ++guard) {
        Message m = std::move(transport_.queue.front());
        transport_.queue.pop_front();
        ASSERT_TRUE(nodes_[m.to.value() - 1].raft->Step(m).ok());
      }
      for (Node& n : nodes_) {
        auto e = n.raft->TakeCommitted();
        ASSERT_TRUE(e.ok());
        n.applied.insert(n.applied.end(), e->begin(), e->end());
      }
    }
  }

  int Leader() {
    int leader = 0;
    for (int i = 1; i <= kNodes; ++i) {
      if (nodes_[i - 1].raft->role() == Role::kLeader &&
          (leader == 0 || nodes_[i - 1].raft->term() > nodes_[leader - 1].raft->term())) {
        leader = i;
      }
    }
    return leader;
  }

  Node& node(int i) { return nodes_[i - 1]; }

 private:
  std::string root_;
  RaftConfig config_;
  ManualClock clock_;
  QueueTransport transport_;
  Node nodes_[kNodes];
};

std::vector<std::string> NormalData(const std::vector<Entry>& entries) {
  std::vector<std::string> out;
  for (const Entry& e : entries) {
    if (e.type == EntryType::kNormal) out.push_back(e.data);
  }
  return out;
}

TEST(DurableRaft, ClusterKeepsCommittedEntriesAcrossRestart) {
  TempDir tmp;
  DurableCluster c(tmp.path());
  c.Start(/*first_election_node=*/1);
  c.Run(700);
  const int leader = c.Leader();
  ASSERT_NE(leader, 0);
  std::vector<std::string> proposed;
  for (int i = 0; i < 5; ++i) {
    proposed.push_back("cmd-" + std::to_string(i));
    ASSERT_TRUE(c.node(leader).raft->Propose(proposed.back()).ok());
  }
  c.Run(300);
  std::vector<Entry> committed = c.node(leader).applied;
  ASSERT_EQ(NormalData(committed), proposed);
  for (int i = 1; i <= DurableCluster::kNodes; ++i) {
    EXPECT_EQ(c.node(i).applied, committed) << "node " << i;
  }
  const Term old_term = c.node(leader).raft->term();

  // "Restart" every node from its files; a different node times out first.
  c.Stop();
  c.Start(/*first_election_node=*/leader == 2 ? 3 : 2);
  for (int i = 1; i <= DurableCluster::kNodes; ++i) {
    EXPECT_EQ(c.node(i).raft->term(), old_term) << "node " << i;
    EXPECT_GE(c.node(i).raft->last_index().value(), committed.back().index.value());
  }
  c.Run(1000);
  const int new_leader = c.Leader();
  ASSERT_NE(new_leader, 0);
  EXPECT_GT(c.node(new_leader).raft->term(), old_term);
  // The new leader commits its no-op, so the old entries are committed (and
  // handed out again, since RaftConfig::applied was 0) on every node.
  for (int i = 1; i <= DurableCluster::kNodes; ++i) {
    const std::vector<Entry>& applied = c.node(i).applied;
    ASSERT_GT(applied.size(), committed.size()) << "node " << i;
    EXPECT_EQ(std::vector<Entry>(applied.begin(), applied.begin() + committed.size()), committed)
        << "node " << i;
  }
  ASSERT_TRUE(c.node(new_leader).raft->Propose("after-restart").ok());
  c.Run(300);
  for (int i = 1; i <= DurableCluster::kNodes; ++i) {
    std::vector<std::string> data = NormalData(c.node(i).applied);
    ASSERT_FALSE(data.empty());
    EXPECT_EQ(data.back(), "after-restart");
  }
}

}  // namespace
}  // namespace brook::raft
