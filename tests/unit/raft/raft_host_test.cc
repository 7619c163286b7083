// RaftHost (coordinator/raft_host.h) with three members on real loopback
// RpcServers and real storage in temp directories: election, proposals
// applied in the same order everywhere, failover when the leader stops,
// restart from disk, snapshots with compaction and restore, a single
// member that leads at once, and hostile API_RAFT input.
#include "coordinator/raft_host.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "boost/asio/executor_work_guard.hpp"
#include "common/errors.h"
#include "common/rpc/client.h"
#include "gtest/gtest.h"

namespace brook::coordinator {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// One member: its server (kept across host restarts), its host, and a state
// machine that is the list of applied entries.
struct Member {
  NodeId id;
  std::string dir;
  std::unique_ptr<rpc::RpcServer> server;
  std::mutex mu;
  std::unique_ptr<RaftHost> host;  // guarded by mu (replaced on restart)
  std::vector<std::string> applied;  // guarded by mu
  int64_t last_index = 0;            // guarded by mu
  int restores = 0;                  // guarded by mu
};

class RaftHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "raft_host_XXXXXX").string();
    ASSERT_NE(mkdtemp(t.data()), nullptr);
    root_ = t;
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }

  void TearDown() override {
    for (auto& m : members_) {
      std::unique_ptr<RaftHost> host;
      {
        std::lock_guard<std::mutex> lock(m->mu);
        host = std::move(m->host);
      }
      if (host) {
        EXPECT_TRUE(host->Stop().ok());
      }
      m->server->Stop();
    }
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    fs::remove_all(root_);
  }

  // Creates n members with listening servers (no hosts yet).
  void MakeMembers(int n) {
    for (int i = 1; i <= n; ++i) {
      auto m = std::make_unique<Member>();
      m->id = NodeId(i);
      m->dir = absl::StrCat(root_, "/m", i);
      m->server = std::make_unique<rpc::RpcServer>(io_, absl::StrCat("raft", i));
      Member* raw = m.get();
      m->server->Register(proto::API_RAFT, 0, [raw](rpc::Request req) {
        std::lock_guard<std::mutex> lock(raw->mu);
        if (raw->host) {
          raw->host->Handle(req);
        } else {
          req.RespondError(proto::SHUTTING_DOWN, "down");
        }
      });
      ASSERT_TRUE(m->server->Listen("127.0.0.1:0").ok());
      quorum_.push_back(RaftMember{m->id, "127.0.0.1", m->server->port()});
      members_.push_back(std::move(m));
    }
  }

  // Opens (or reopens from disk) the host of member i (0-based), with a
  // fresh, empty state machine.
  void StartHost(size_t i) {
    Member* m = members_[i].get();
    {
      std::lock_guard<std::mutex> lock(m->mu);
      m->applied.clear();
      m->last_index = 0;
    }
    RaftHostOptions o;
    o.id = m->id;
    o.members = quorum_;
    o.dir = m->dir;
    o.fs = storage::DefaultFileSystem();
    o.election_timeout_ms = 150;
    o.heartbeat_ms = 30;
    o.tick_ms = 5;
    o.snapshot_entries = snapshot_entries_;
    o.max_reconnect_backoff_ms = 100;
    RaftHostCallbacks cb;
    cb.apply = [m](raft::LogIndex index, const std::string& data) {
      std::lock_guard<std::mutex> lock(m->mu);
      EXPECT_GT(index.value(), m->last_index);
      m->last_index = index.value();
      m->applied.push_back(data);
    };
    cb.restore = [m](const raft::Snapshot& s) {
      std::lock_guard<std::mutex> lock(m->mu);
      m->applied = s.data.empty() ? std::vector<std::string>()
                                  : std::vector<std::string>(absl::StrSplit(s.data, '\n'));
      m->last_index = s.index.value();
      ++m->restores;
      return absl::OkStatus();
    };
    cb.take_snapshot = [m] {
      std::lock_guard<std::mutex> lock(m->mu);
      return absl::StrJoin(m->applied, "\n");
    };
    auto host = RaftHost::Open(std::move(o), std::move(cb));
    ASSERT_TRUE(host.ok()) << host.status();
    std::lock_guard<std::mutex> lock(m->mu);
    m->host = *std::move(host);
  }

  void StopHost(size_t i) {
    std::unique_ptr<RaftHost> host;
    {
      std::lock_guard<std::mutex> lock(members_[i]->mu);
      host = std::move(members_[i]->host);
    }
    ASSERT_TRUE(host->Stop().ok());
  }

  // The index of the serving leader among running hosts, waiting up to 5 s.
  int WaitForLeader() {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (size_t i = 0; i < members_.size(); ++i) {
        std::lock_guard<std::mutex> lock(members_[i]->mu);
        if (members_[i]->host && members_[i]->host->status().serving) return static_cast<int>(i);
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  }

  absl::StatusOr<raft::LogIndex> Propose(size_t i, std::vector<std::string> entries) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<raft::LogIndex>>>();
    auto future = promise->get_future();
    {
      std::lock_guard<std::mutex> lock(members_[i]->mu);
      members_[i]->host->Propose(std::move(entries), [promise](absl::StatusOr<raft::LogIndex> r) {
        promise->set_value(std::move(r));
      });
    }
    if (future.wait_for(5s) != std::future_status::ready) {
      return absl::DeadlineExceededError("proposal not answered");
    }
    return future.get();
  }

  std::vector<std::string> Applied(size_t i) {
    std::lock_guard<std::mutex> lock(members_[i]->mu);
    return members_[i]->applied;
  }

  // Waits until every running member applied exactly `want`.
  void ExpectAllApply(const std::vector<std::string>& want) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (size_t i = 0; i < members_.size(); ++i) {
      {
        std::lock_guard<std::mutex> lock(members_[i]->mu);
        if (!members_[i]->host) continue;
      }
      while (Applied(i) != want && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
      }
      EXPECT_EQ(Applied(i), want) << "member " << i + 1;
    }
  }

  std::string root_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Member>> members_;
  std::vector<RaftMember> quorum_;
  int64_t snapshot_entries_ = 0;
};

TEST_F(RaftHostTest, ElectsAndAppliesInTheSameOrderEverywhere) {
  MakeMembers(3);
  for (size_t i = 0; i < 3; ++i) StartHost(i);
  const int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  // Every member agrees on the leader.
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  for (size_t i = 0; i < 3; ++i) {
    while (std::chrono::steady_clock::now() < deadline) {
      std::lock_guard<std::mutex> lock(members_[i]->mu);
      if (members_[i]->host->status().leader == NodeId(leader + 1)) break;
    }
  }
  const size_t follower = (static_cast<size_t>(leader) + 1) % 3;
  {
    std::lock_guard<std::mutex> lock(members_[follower]->mu);
    EXPECT_EQ(members_[follower]->host->status().leader, NodeId(leader + 1));
  }
  EXPECT_EQ(ToErrorCode(Propose(follower, {"x"}).status()), proto::NOT_COORDINATOR);

  std::vector<std::string> want;
  int64_t last = 0;
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<std::string> entries;
    for (int k = 0; k <= batch % 3; ++k) entries.push_back(absl::StrCat("e", batch, ".", k));
    want.insert(want.end(), entries.begin(), entries.end());
    auto index = Propose(static_cast<size_t>(leader), entries);
    ASSERT_TRUE(index.ok()) << index.status();
    EXPECT_GT(index->value(), last);
    last = index->value();
    // Applied on the leader before the proposal completes.
    EXPECT_EQ(Applied(static_cast<size_t>(leader)), want);
  }
  ExpectAllApply(want);

  std::lock_guard<std::mutex> lock(members_[static_cast<size_t>(leader)]->mu);
  RaftHostStatus st = members_[static_cast<size_t>(leader)]->host->status();
  EXPECT_EQ(st.role, raft::Role::kLeader);
  EXPECT_GE(st.commit.value(), last);
  ASSERT_EQ(st.peers.size(), 2u);
  for (const auto& p : st.peers) {
    EXPECT_GE(p.last_contact_ms, 0);
    EXPECT_LE(p.match, last);
  }
}

TEST_F(RaftHostTest, NewLeaderAfterStopAndRestartFromDisk) {
  MakeMembers(3);
  for (size_t i = 0; i < 3; ++i) StartHost(i);
  const int first = WaitForLeader();
  ASSERT_GE(first, 0);
  std::vector<std::string> want;
  for (int k = 0; k < 10; ++k) {
    want.push_back(absl::StrCat("a", k));
    ASSERT_TRUE(Propose(static_cast<size_t>(first), {want.back()}).ok());
  }
  ExpectAllApply(want);

  StopHost(static_cast<size_t>(first));
  const auto stopped_at = std::chrono::steady_clock::now();
  const int second = WaitForLeader();
  ASSERT_GE(second, 0);
  ASSERT_NE(second, first);
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, 3s);
  for (int k = 0; k < 10; ++k) {
    want.push_back(absl::StrCat("b", k));
    auto r = Propose(static_cast<size_t>(second), {want.back()});
    ASSERT_TRUE(r.ok()) << r.status();
  }
  ExpectAllApply(want);

  // The old leader comes back from its directory with an empty state
  // machine and catches up on everything, in order.
  StartHost(static_cast<size_t>(first));
  ExpectAllApply(want);

  // Restart every member: the committed log survives.
  for (size_t i = 0; i < 3; ++i) StopHost(i);
  for (size_t i = 0; i < 3; ++i) StartHost(i);
  const int third = WaitForLeader();
  ASSERT_GE(third, 0);
  ExpectAllApply(want);
  want.push_back("c");
  ASSERT_TRUE(Propose(static_cast<size_t>(third), {"c"}).ok());
  ExpectAllApply(want);
}

TEST_F(RaftHostTest, SnapshotsCompactAndRestore) {
  snapshot_entries_ = 5;
  MakeMembers(3);
  for (size_t i = 0; i < 3; ++i) StartHost(i);
  int leader = WaitForLeader();
  ASSERT_GE(leader, 0);
  std::vector<std::string> want;
  for (int k = 0; k < 12; ++k) {
    want.push_back(absl::StrCat("s", k));
    ASSERT_TRUE(Propose(static_cast<size_t>(leader), {want.back()}).ok());
  }
  ExpectAllApply(want);
  for (size_t i = 0; i < 3; ++i) {
    std::lock_guard<std::mutex> lock(members_[i]->mu);
    EXPECT_GT(members_[i]->host->status().snapshot_index.value(), 0) << "member " << i + 1;
  }

  // A follower misses entries the leader compacts away; on restart it loads
  // its own snapshot, then the leader's (InstallSnapshot) or the tail.
  const size_t lagging = (static_cast<size_t>(leader) + 1) % 3;
  StopHost(lagging);
  for (int k = 0; k < 15; ++k) {
    want.push_back(absl::StrCat("t", k));
    ASSERT_TRUE(Propose(static_cast<size_t>(leader), {want.back()}).ok());
  }
  StartHost(lagging);
  {
    std::lock_guard<std::mutex> lock(members_[lagging]->mu);
    EXPECT_GE(members_[lagging]->restores, 1);  // its stored snapshot, at Open
  }
  ExpectAllApply(want);
}

TEST_F(RaftHostTest, SingleMemberLeadsAtOnce) {
  MakeMembers(1);
  const auto start = std::chrono::steady_clock::now();
  StartHost(0);
  {
    std::lock_guard<std::mutex> lock(members_[0]->mu);
    RaftHostStatus st = members_[0]->host->status();
    EXPECT_TRUE(st.serving);
    EXPECT_EQ(st.leader, NodeId(1));
  }
  auto r = Propose(0, {"only"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(Applied(0), std::vector<std::string>{"only"});
  // Restarted, it replays its log at once.
  StopHost(0);
  StartHost(0);
  EXPECT_EQ(Applied(0), std::vector<std::string>{"only"});
}

// Hostile API_RAFT input: an unparsable header and an unknown message type
// are refused with INVALID_REQUEST; messages from a process outside the
// quorum (or addressed to another member) are ignored, so a stray process
// with a high term cannot depose the leader. The host keeps serving.
TEST_F(RaftHostTest, BadAndForeignRaftMessagesChangeNothing) {
  MakeMembers(1);
  StartHost(0);
  rpc::IoThread io;
  auto conn = rpc::RpcClient::Connect(io.io(), "127.0.0.1", members_[0]->server->port());
  ASSERT_TRUE(conn.ok()) << conn.status();
  Term term_before;
  {
    std::lock_guard<std::mutex> lock(members_[0]->mu);
    term_before = members_[0]->host->status().term;
  }

  {
    // Read as a RaftRequest, this header's field 1 is a RaftMessage whose
    // bytes ("\x08": a tag with no value) are truncated: unparsable.
    proto::DescribeTopicRequest bad;
    bad.set_topic("\x08");
    proto::RaftResponse out;
    auto r = (*conn)->CallSync(proto::API_RAFT, 0, bad, {}, &out, 5s);
    EXPECT_EQ(ToErrorCode(r.status()), proto::INVALID_REQUEST) << r.status();
  }
  {
    proto::RaftRequest req;
    proto::RaftMessage* m = req.add_messages();
    m->set_type(99);
    m->set_from(1);
    m->set_to(1);
    proto::RaftResponse out;
    auto r = (*conn)->CallSync(proto::API_RAFT, 0, req, {}, &out, 5s);
    EXPECT_EQ(ToErrorCode(r.status()), proto::INVALID_REQUEST) << r.status();
  }
  {
    // A vote request from id 7 (not a member) with a far higher term, and one
    // from member 1 to id 5: both ignored.
    proto::RaftRequest req;
    raft::Message vote;
    vote.type = raft::MessageType::kRequestVote;
    vote.from = NodeId(7);
    vote.to = NodeId(1);
    vote.term = Term(term_before.value() + 100);
    vote.last_log_index = raft::LogIndex(1000);
    vote.last_log_term = Term(term_before.value() + 100);
    *req.add_messages() = ToProto(vote);
    vote.from = NodeId(1);
    vote.to = NodeId(5);
    *req.add_messages() = ToProto(vote);
    proto::RaftResponse out;
    auto r = (*conn)->CallSync(proto::API_RAFT, 0, req, {}, &out, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  std::this_thread::sleep_for(50ms);
  {
    std::lock_guard<std::mutex> lock(members_[0]->mu);
    RaftHostStatus st = members_[0]->host->status();
    EXPECT_EQ(st.term, term_before);
    EXPECT_EQ(st.leader, NodeId(1));
    EXPECT_TRUE(st.serving);
  }
  auto p = Propose(0, {"still-serving"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(Applied(0), std::vector<std::string>{"still-serving"});
}

}  // namespace
}  // namespace brook::coordinator
