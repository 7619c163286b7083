// PartitionManager and Partition: applying assignments to partition
// directories (open, wipe on a new topic id, remove), config merging, and the
// high watermark under each flush policy. Real files in a temp directory.
#include "broker/partition.h"

#include <atomic>
#include <filesystem>
#include <fstream>

#include "common/errors.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"

namespace brook::broker {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "brook-partition-XXXXXX").string();
    path_ = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

proto::PartitionAssignment Assign(const std::string& topic, int32_t partition,
                                  const std::string& topic_id, int32_t leader = 1,
                                  int32_t epoch = 0) {
  proto::PartitionAssignment a;
  a.set_topic(topic);
  a.set_topic_id(topic_id);
  a.set_partition(partition);
  a.set_leader(leader);
  a.set_leader_epoch(epoch);
  a.add_replicas(leader);
  a.add_isr(leader);
  return a;
}

std::vector<uint8_t> Batch(int records) {
  RecordBatchBuilder b(RecordBatchBuilder::Options{});
  for (int i = 0; i < records; ++i) b.Append(1000 + i, "k", "value");
  return b.Build();
}

TEST(MergeLogConfigTest, TopicOverServerOverStorageDefaults) {
  proto::TopicConfig server;
  server.set_flush_policy(proto::FLUSH_INTERVAL);
  server.set_segment_bytes(1 << 20);
  server.set_retention_ms(5000);
  proto::TopicConfig topic;
  topic.set_retention_ms(9000);
  topic.set_max_message_bytes(4096);
  storage::LogConfig c = MergeLogConfig(topic, server);
  EXPECT_EQ(c.flush_policy, storage::FlushPolicy::kInterval);
  EXPECT_EQ(c.segment_bytes, 1 << 20);
  EXPECT_EQ(c.retention_ms, 9000);
  EXPECT_EQ(c.max_batch_bytes, 4096);
  EXPECT_EQ(c.retention_bytes, storage::LogConfig{}.retention_bytes);

  topic.set_flush_policy(proto::FLUSH_OS);
  EXPECT_EQ(MergeLogConfig(topic, server).flush_policy, storage::FlushPolicy::kOs);
  // FLUSH_DEFAULT everywhere means fsync before acknowledging.
  EXPECT_EQ(MergeLogConfig({}, {}).flush_policy, storage::FlushPolicy::kAlways);
}

class PartitionManagerTest : public ::testing::Test {
 protected:
  std::string BrokerDir() const { return dir_.path() + "/broker"; }
  TempDir dir_;
  storage::Flusher flusher_;
};

TEST_F(PartitionManagerTest, OpensAssignedPartitionsWithMetadataFile) {
  PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
  auto changed = pm.Apply({Assign("t", 0, "id1"), Assign("t", 1, "id1")}, true);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(pm.All().size(), 2u);
  ASSERT_NE(pm.Get({"t", PartitionId(1)}), nullptr);
  EXPECT_EQ(pm.Get({"t", PartitionId(2)}), nullptr);
  std::ifstream meta(BrokerDir() + "/t-0/" + kPartitionMetadataFile);
  std::string line;
  std::getline(meta, line);
  EXPECT_EQ(line, "topic_id=id1");

  // The same assignment again changes nothing; a new epoch is a change.
  changed = pm.Apply({Assign("t", 0, "id1"), Assign("t", 1, "id1")}, false);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  changed = pm.Apply({Assign("t", 0, "id1", 1, 3), Assign("t", 1, "id1")}, false);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(pm.Get({"t", PartitionId(0)})->leader_epoch(), LeaderEpoch(3));
  ASSERT_TRUE(pm.CloseAll().ok());
}

TEST_F(PartitionManagerTest, DroppedPartitionIsClosedAndRemoved) {
  PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
  ASSERT_TRUE(pm.Apply({Assign("a", 0, "x"), Assign("b", 0, "y")}, true).ok());
  auto a = pm.Get({"a", PartitionId(0)});
  ASSERT_NE(a, nullptr);
  auto changed = pm.Apply({Assign("b", 0, "y")}, false);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(a->closed());
  EXPECT_FALSE(fs::exists(BrokerDir() + "/a-0"));
  EXPECT_TRUE(fs::exists(BrokerDir() + "/b-0"));
  ASSERT_TRUE(pm.CloseAll().ok());
}

TEST_F(PartitionManagerTest, RecreatedTopicWipesTheOldData) {
  {
    PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
    ASSERT_TRUE(pm.Apply({Assign("t", 0, "old")}, true).ok());
    auto p = pm.Get({"t", PartitionId(0)});
    std::vector<uint8_t> b = Batch(3);
    ASSERT_TRUE(p->log().Append(b, LeaderEpoch(0)).ok());
    ASSERT_TRUE(pm.CloseAll().ok());
  }
  {
    // Restart with the same topic id: the data is still there.
    PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
    ASSERT_TRUE(pm.Apply({Assign("t", 0, "old")}, true).ok());
    EXPECT_EQ(pm.Get({"t", PartitionId(0)})->log().log_end_offset(), Offset(3));
    // Re-created while running: a fresh, empty log.
    ASSERT_TRUE(pm.Apply({Assign("t", 0, "new")}, false).ok());
    auto p = pm.Get({"t", PartitionId(0)});
    EXPECT_EQ(p->topic_id(), "new");
    EXPECT_EQ(p->log().log_end_offset(), Offset(0));
    ASSERT_TRUE(pm.CloseAll().ok());
  }
  {
    // Re-created while the broker was down.
    PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
    ASSERT_TRUE(pm.Apply({Assign("t", 0, "new")}, true).ok());
    auto p = pm.Get({"t", PartitionId(0)});
    std::vector<uint8_t> b = Batch(2);
    ASSERT_TRUE(p->log().Append(b, LeaderEpoch(0)).ok());
    ASSERT_TRUE(pm.CloseAll().ok());
  }
  PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
  ASSERT_TRUE(pm.Apply({Assign("t", 0, "newest")}, true).ok());
  EXPECT_EQ(pm.Get({"t", PartitionId(0)})->log().log_end_offset(), Offset(0));
  ASSERT_TRUE(pm.CloseAll().ok());
}

TEST_F(PartitionManagerTest, FirstApplyRemovesDirectoriesOfDeletedTopics) {
  {
    PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
    ASSERT_TRUE(pm.Apply({Assign("gone", 0, "g"), Assign("kept", 0, "k")}, true).ok());
    ASSERT_TRUE(pm.CloseAll().ok());
  }
  fs::create_directories(BrokerDir() + "/not-a-partition");
  PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
  ASSERT_TRUE(pm.Apply({Assign("kept", 0, "k")}, true).ok());
  EXPECT_FALSE(fs::exists(BrokerDir() + "/gone-0"));
  EXPECT_TRUE(fs::exists(BrokerDir() + "/kept-0"));
  // Directories without a partition.metadata file are not ours to remove.
  EXPECT_TRUE(fs::exists(BrokerDir() + "/not-a-partition"));
  ASSERT_TRUE(pm.CloseAll().ok());
}

TEST_F(PartitionManagerTest, HighWatermarkFollowsDurabilityUnderFlushAlways) {
  PartitionManager pm(storage::DefaultFileSystem(), &flusher_, BrokerDir(), {});
  proto::PartitionAssignment a = Assign("hw", 0, "h");
  a.mutable_config()->set_flush_policy(proto::FLUSH_ALWAYS);
  proto::PartitionAssignment b = Assign("os", 0, "o");
  b.mutable_config()->set_flush_policy(proto::FLUSH_OS);
  ASSERT_TRUE(pm.Apply({a, b}, true).ok());

  auto p = pm.Get({"hw", PartitionId(0)});
  std::atomic<int> woken{0};
  p->AddWaiter([&] { woken++; });
  std::vector<uint8_t> batch = Batch(4);
  auto r = p->log().Append(batch, LeaderEpoch(0));
  ASSERT_TRUE(r.ok()) << r.status();
  // Appended but not yet known durable: not served.
  p->RefreshHighWatermark();
  EXPECT_LE(p->high_watermark(), p->log().durable_offset());
  ASSERT_TRUE(p->log().Sync().ok());
  p->RefreshHighWatermark();
  EXPECT_EQ(p->high_watermark(), Offset(4));
  EXPECT_EQ(woken.load(), 1);
  // Waiters are one-shot.
  p->RefreshHighWatermark();
  EXPECT_EQ(woken.load(), 1);

  auto q = pm.Get({"os", PartitionId(0)});
  std::vector<uint8_t> batch2 = Batch(2);
  ASSERT_TRUE(q->log().Append(batch2, LeaderEpoch(0)).ok());
  q->RefreshHighWatermark();
  EXPECT_EQ(q->high_watermark(), Offset(2));

  // Closing wakes waiters too.
  std::atomic<int> closed_wake{0};
  q->AddWaiter([&] { closed_wake++; });
  ASSERT_TRUE(pm.CloseAll().ok());
  EXPECT_EQ(closed_wake.load(), 1);
  EXPECT_TRUE(q->closed());
}

}  // namespace
}  // namespace brook::broker
