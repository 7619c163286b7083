// Replication decision logic without networking: the leader's follower
// tracker (high watermark over the in-sync set, shrink and expand
// proposals), a leader Partition's acks=all waits and role changes, and
// KIP-101/279 truncation between two real PartitionLogs that diverged.
#include <filesystem>
#include <vector>

#include "broker/partition.h"
#include "broker/replication/fetcher.h"
#include "broker/replication/replica_tracker.h"
#include "broker/storage/log.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"

namespace brook::broker {
namespace {

namespace fs = std::filesystem;
using replication::ReplicaTracker;

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "brook-repl-XXXXXX").string();
    path_ = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<uint8_t> Batch(int records, const std::string& tag) {
  RecordBatchBuilder b(RecordBatchBuilder::Options{});
  for (int i = 0; i < records; ++i) b.Append(1000 + i, tag, tag + std::to_string(i));
  return b.Build();
}

std::vector<uint8_t> ReadAll(const storage::PartitionLog& log) {
  auto r = log.Read(log.log_start_offset(), 1 << 30, log.log_end_offset());
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : std::vector<uint8_t>{};
}

// Copies the leader's log from the follower's log end (what a fetch does).
void Replicate(const storage::PartitionLog& leader, storage::PartitionLog& follower) {
  while (follower.log_end_offset() < leader.log_end_offset()) {
    auto chunk = leader.Read(follower.log_end_offset(), 4096, leader.log_end_offset());
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    ASSERT_TRUE(follower.AppendReplicated(std::span<const uint8_t>(*chunk)).ok());
  }
}

storage::LogConfig OsConfig() {
  storage::LogConfig c;
  c.flush_policy = storage::FlushPolicy::kOs;
  c.retention_ms = -1;
  return c;
}

// ---- ReplicaTracker ---------------------------------------------------------

TEST(ReplicaTrackerTest, HighWatermarkIsTheMinimumOverTheInSyncSet) {
  ReplicaTracker t;
  t.Reset(1, {1, 2, 3}, {1, 2, 3}, /*now_ms=*/0);
  // Nobody has fetched: the followers hold it back.
  EXPECT_EQ(t.HighWatermark(10), -1);
  EXPECT_TRUE(t.RecordFetch(2, 10, 10, 5));
  EXPECT_TRUE(t.RecordFetch(3, 4, 10, 5));
  EXPECT_EQ(t.HighWatermark(10), 4);
  // The leader's own log end (durable offset) bounds it too.
  EXPECT_EQ(t.HighWatermark(3), 3);
  // A replica outside the committed set does not count.
  t.SetIsr({1, 2}, 6);
  EXPECT_EQ(t.HighWatermark(10), 10);
  EXPECT_FALSE(t.RecordFetch(7, 1, 10, 5));  // not a replica
  // Single member: the leader alone.
  ReplicaTracker solo;
  solo.Reset(1, {1}, {1}, 0);
  EXPECT_EQ(solo.HighWatermark(42), 42);
}

TEST(ReplicaTrackerTest, ShrinksAFollowerNotCaughtUpWithinTheLagTime) {
  ReplicaTracker t;
  t.Reset(1, {1, 2, 3}, {1, 2, 3}, /*now_ms=*/1000);
  // Within the lag time after becoming leader nobody is dropped.
  EXPECT_FALSE(t.ProposeIsr(1500, 1000, 0, 0).has_value());
  // 2 keeps fetching at the log end; 3 fetches but stays behind.
  for (int64_t now = 1100; now <= 2500; now += 100) {
    t.RecordFetch(2, 50, 50, now);
    t.RecordFetch(3, 10, 50, now);
  }
  auto next = t.ProposeIsr(2500, 1000, 10, 0);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, (std::vector<int32_t>{1, 2}));
  // Reaching the leader's log end as of its previous fetch counts as caught
  // up at that previous fetch's time.
  ReplicaTracker u;
  u.Reset(1, {1, 2}, {1, 2}, 0);
  u.RecordFetch(2, 0, 100, 900);    // behind
  u.RecordFetch(2, 100, 150, 1900); // reached 100 = leader end at the 900 fetch
  EXPECT_EQ(u.follower(2)->last_caught_up_ms, 900);
  EXPECT_FALSE(u.ProposeIsr(1800, 1000, 0, 0).has_value());
  EXPECT_TRUE(u.ProposeIsr(2000, 1000, 0, 0).has_value());
}

TEST(ReplicaTrackerTest, ExpandsOnceTheFollowerReachesTheWatermarkAndEpochStart) {
  ReplicaTracker t;
  t.Reset(1, {1, 2, 3}, {1, 2}, 0);
  t.RecordFetch(2, 100, 100, 10);
  t.RecordFetch(3, 60, 100, 10);
  // Behind the high watermark: stays out.
  EXPECT_FALSE(t.ProposeIsr(20, 10000, 100, 0).has_value());
  t.RecordFetch(3, 100, 120, 30);
  // At the watermark but before the start of the leader's epoch: stays out.
  EXPECT_FALSE(t.ProposeIsr(40, 10000, 100, 110).has_value());
  auto next = t.ProposeIsr(40, 10000, 100, 90);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, (std::vector<int32_t>{1, 2, 3}));
  // Once committed, nothing more to ask.
  t.SetIsr(*next, 50);
  EXPECT_FALSE(t.ProposeIsr(60, 10000, 100, 90).has_value());
}

TEST(ReplicaTrackerTest, AReplicaThatStoppedFetchingIsNotProposedBack) {
  ReplicaTracker t;
  t.Reset(1, {1, 2}, {1, 2}, 0);
  t.RecordFetch(2, 100, 100, 10);
  // Dropped (e.g. by a controlled shutdown) while at the watermark.
  t.SetIsr({1}, 20);
  EXPECT_FALSE(t.ProposeIsr(30, 10000, 100, 0).has_value());
  // It fetches again: back in.
  t.RecordFetch(2, 100, 100, 40);
  ASSERT_TRUE(t.ProposeIsr(50, 10000, 100, 0).has_value());
  // But not on a fetch older than the lag time.
  EXPECT_FALSE(t.ProposeIsr(20000, 10000, 100, 0).has_value());
}

// ---- Partition as leader ----------------------------------------------------

class LeaderPartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto log = storage::PartitionLog::Open(storage::DefaultFileSystem(), dir_.path(), OsConfig());
    ASSERT_TRUE(log.ok()) << log.status();
    p_ = std::make_shared<Partition>(TopicPartition{"t", PartitionId(0)}, "id", std::move(*log));
    Assign(/*leader=*/1, /*epoch=*/3, {1, 2, 3});
  }
  void TearDown() override { ASSERT_TRUE(p_->Close().ok()); }

  void Assign(int32_t leader, int32_t epoch, std::vector<int32_t> isr) {
    proto::PartitionAssignment a;
    a.set_topic("t");
    a.set_topic_id("id");
    a.set_leader(leader);
    a.set_leader_epoch(epoch);
    for (int32_t r : {1, 2, 3}) a.add_replicas(r);
    for (int32_t r : isr) a.add_isr(r);
    p_->SetAssignment(a);
    p_->UpdateRole(NodeId(1), now_);
  }

  Offset Produce(int records) {
    std::vector<uint8_t> b = Batch(records, "r");
    auto r = p_->log().Append(b, p_->leader_epoch());
    EXPECT_TRUE(r.ok()) << r.status();
    p_->NotifyAppended();
    p_->RefreshHighWatermark();
    return r->last_offset;
  }

  TempDir dir_;
  int64_t now_ = 1000;
  std::shared_ptr<Partition> p_;
};

TEST_F(LeaderPartitionTest, AcksAllCompletesWhenEveryInSyncFollowerHasTheBatch) {
  EXPECT_EQ(p_->role(), Partition::Role::kLeader);
  // The epoch's start was recorded before any append.
  EXPECT_EQ(p_->log().latest_epoch(), LeaderEpoch(3));
  int log_end_wakes = 0;
  p_->AddLogEndWaiter([&] { log_end_wakes++; });
  Offset last = Produce(5);  // offsets 0..4
  EXPECT_EQ(log_end_wakes, 1);
  std::vector<proto::ErrorCode> done;
  p_->AddAckWaiter(last, /*min_isr=*/2, [&](proto::ErrorCode c) { done.push_back(c); });
  EXPECT_EQ(p_->high_watermark(), Offset(0));
  EXPECT_TRUE(p_->RecordFollowerFetch(NodeId(2), Offset(5), now_));
  EXPECT_TRUE(done.empty()) << "follower 3 has nothing yet";
  EXPECT_TRUE(p_->RecordFollowerFetch(NodeId(3), Offset(3), now_));
  EXPECT_EQ(p_->high_watermark(), Offset(3));
  EXPECT_TRUE(done.empty());
  EXPECT_TRUE(p_->RecordFollowerFetch(NodeId(3), Offset(5), now_));
  EXPECT_EQ(p_->high_watermark(), Offset(5));
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], proto::NONE);
}

TEST_F(LeaderPartitionTest, ShrunkInSyncSetAnswersNotEnoughReplicasAfterAppend) {
  Offset last = Produce(2);
  std::vector<proto::ErrorCode> done;
  p_->AddAckWaiter(last, /*min_isr=*/3, [&](proto::ErrorCode c) { done.push_back(c); });
  p_->RecordFollowerFetch(NodeId(2), Offset(2), now_);
  // Follower 3 is dropped (committed by the coordinator): the watermark
  // passes the batch, but the in-sync set is below min.insync.replicas.
  Assign(1, 3, {1, 2});
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], proto::NOT_ENOUGH_REPLICAS_AFTER_APPEND);
  EXPECT_EQ(p_->isr_size(), 2u);
}

TEST_F(LeaderPartitionTest, LosingLeadershipFailsWaitersWithNotLeader) {
  Offset last = Produce(2);
  std::vector<proto::ErrorCode> done;
  p_->AddAckWaiter(last, 1, [&](proto::ErrorCode c) { done.push_back(c); });
  Assign(/*leader=*/2, /*epoch=*/4, {1, 2, 3});
  EXPECT_EQ(p_->role(), Partition::Role::kFollower);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], proto::NOT_LEADER);
  // A follower does not track fetches and refuses new waiters.
  EXPECT_FALSE(p_->RecordFollowerFetch(NodeId(3), Offset(2), now_));
  p_->AddAckWaiter(last, 1, [&](proto::ErrorCode c) { done.push_back(c); });
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1], proto::NOT_LEADER);
  // The follower's watermark comes from the leader, bounded by its log end.
  p_->SetFollowerHighWatermark(Offset(100));
  EXPECT_EQ(p_->high_watermark(), Offset(2));
}

TEST_F(LeaderPartitionTest, ProposesShrinkForALaggingFollower) {
  Produce(4);
  p_->RecordFollowerFetch(NodeId(2), Offset(4), now_ + 50);
  p_->RecordFollowerFetch(NodeId(3), Offset(0), now_ + 50);
  EXPECT_FALSE(p_->ProposeIsr(now_ + 100, 500).has_value());
  p_->RecordFollowerFetch(NodeId(2), Offset(4), now_ + 900);
  auto next = p_->ProposeIsr(now_ + 900, 500);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, (std::vector<int32_t>{1, 2}));
}

// ---- KIP-101 truncation -----------------------------------------------------

// Leader A (epoch 1) wrote an unreplicated tail; B became leader in epoch 2
// and wrote different records at the same offsets. A returns as a follower:
// it truncates to where epoch 1 ends on B, then copies B, and both logs are
// byte-identical (no offset holds two different records).
TEST(EpochTruncationTest, ReturningLeaderDropsItsUnreplicatedTail) {
  TempDir da, db;
  auto a = storage::PartitionLog::Open(storage::DefaultFileSystem(), da.path(), OsConfig());
  auto b = storage::PartitionLog::Open(storage::DefaultFileSystem(), db.path(), OsConfig());
  ASSERT_TRUE(a.ok() && b.ok());
  storage::PartitionLog& la = **a;
  storage::PartitionLog& lb = **b;
  ASSERT_TRUE(la.AssignEpochStart(LeaderEpoch(1)).ok());
  for (int i = 0; i < 3; ++i) {
    auto batch = Batch(2, "a");
    ASSERT_TRUE(la.Append(batch, LeaderEpoch(1)).ok());
  }
  Replicate(la, lb);  // B has 0..5
  for (int i = 0; i < 2; ++i) {
    auto batch = Batch(3, "tail");
    ASSERT_TRUE(la.Append(batch, LeaderEpoch(1)).ok());  // 6..11, only on A
  }
  // B is elected in epoch 2 and writes its own records from offset 6.
  ASSERT_TRUE(lb.AssignEpochStart(LeaderEpoch(2)).ok());
  auto other = Batch(4, "b");
  ASSERT_TRUE(lb.Append(other, LeaderEpoch(2)).ok());  // 6..9 on B

  // A asks B where its latest epoch (1) ends.
  ASSERT_EQ(la.latest_epoch(), LeaderEpoch(1));
  auto answer = lb.EndOffsetForEpoch(*la.latest_epoch());
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->first, LeaderEpoch(1));
  EXPECT_EQ(answer->second, Offset(6));
  Offset target = replication::TruncationOffset(la, LeaderEpoch(1), answer->first.value(),
                                                answer->second.value(), Offset(6));
  EXPECT_EQ(target, Offset(6));
  ASSERT_TRUE(la.TruncateTo(target).ok());
  Replicate(lb, la);
  EXPECT_EQ(ReadAll(la), ReadAll(lb));
  EXPECT_EQ(la.log_end_offset(), Offset(10));
  EXPECT_EQ(la.EndOffsetForEpoch(LeaderEpoch(1)), lb.EndOffsetForEpoch(LeaderEpoch(1)));
  EXPECT_EQ(la.latest_epoch(), LeaderEpoch(2));
  ASSERT_TRUE(la.Close().ok());
  ASSERT_TRUE(lb.Close().ok());
}

// KIP-279: the follower's latest epoch (3) never existed on the leader, whose
// answer is an older epoch (2); the follower cuts where its own copy of epoch
// 2 ends when that is before the leader's end of epoch 2.
TEST(EpochTruncationTest, LeaderAnswersAnOlderEpoch) {
  TempDir df, dl;
  auto f = storage::PartitionLog::Open(storage::DefaultFileSystem(), df.path(), OsConfig());
  auto l = storage::PartitionLog::Open(storage::DefaultFileSystem(), dl.path(), OsConfig());
  ASSERT_TRUE(f.ok() && l.ok());
  storage::PartitionLog& lf = **f;
  storage::PartitionLog& ll = **l;
  auto b1 = Batch(4, "x");
  ASSERT_TRUE(ll.Append(b1, LeaderEpoch(2)).ok());  // 0..3 in epoch 2
  Replicate(ll, lf);
  auto b2 = Batch(4, "y");
  ASSERT_TRUE(ll.Append(b2, LeaderEpoch(2)).ok());  // 4..7, not on f
  // f led epoch 3 briefly (never seen by l) and wrote 4..5.
  auto b3 = Batch(2, "z");
  ASSERT_TRUE(lf.Append(b3, LeaderEpoch(3)).ok());
  ASSERT_TRUE(ll.AssignEpochStart(LeaderEpoch(4)).ok());
  auto answer = ll.EndOffsetForEpoch(LeaderEpoch(3));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->first, LeaderEpoch(2));
  EXPECT_EQ(answer->second, Offset(8));
  Offset target = replication::TruncationOffset(lf, LeaderEpoch(3), answer->first.value(),
                                                answer->second.value(), Offset(0));
  EXPECT_EQ(target, Offset(4));
  ASSERT_TRUE(lf.TruncateTo(target).ok());
  Replicate(ll, lf);
  EXPECT_EQ(ReadAll(lf), ReadAll(ll));
  // The leader knows no epoch at or below the asked one: cut to the
  // watermark.
  EXPECT_EQ(replication::TruncationOffset(lf, LeaderEpoch(3), -1, -1, Offset(5)), Offset(5));
  ASSERT_TRUE(lf.Close().ok());
  ASSERT_TRUE(ll.Close().ok());
}

}  // namespace
}  // namespace brook::broker
