// Replication end to end in one process: the real Coordinator and three
// Brokers, each with its own RPC server and data directory, over loopback.
// acks=all produce, follower logs byte-equal to the leader's, leader-epoch
// checks on follower fetches, OffsetForLeaderEpoch, and the in-sync set
// following a broker that stops (controlled shutdown).
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "boost/asio/executor_work_guard.hpp"
#include "broker/broker.h"
#include "broker/storage/log.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "common/rpc/server.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"

namespace brook::broker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kBrokers = 3;

std::vector<uint8_t> Batch(int records, const std::string& tag) {
  RecordBatchBuilder b(RecordBatchBuilder::Options{});
  const int64_t now = absl::ToUnixMillis(absl::Now());
  for (int i = 0; i < records; ++i) b.Append(now + i, absl::StrCat(tag, i), std::string(50, 'v'));
  return b.Build();
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class ReplicationClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "brook-replcluster-XXXXXX").string();
    dir_ = mkdtemp(t.data());
    for (int i = 0; i < 3; ++i) threads_.emplace_back([this] { io_.run(); });

    coordinator::CoordinatorOptions co;
    co.data_dir = dir_ + "/coordinator";
    auto c = coordinator::Coordinator::Open(storage::DefaultFileSystem(), nullptr, co, io_);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *std::move(c);
    coordinator_server_ = std::make_unique<rpc::RpcServer>(io_, "coordinator");
    coordinator_->RegisterApis(*coordinator_server_);
    ASSERT_TRUE(coordinator_server_->Listen("127.0.0.1:0").ok());
    coordinator_->SetAdvertisedAddress("127.0.0.1", coordinator_server_->port());

    for (int id = 1; id <= kBrokers; ++id) {
      BrokerOptions bo;
      bo.id = NodeId(id);
      bo.data_dir = BrokerDir(id);
      bo.coordinators = {absl::StrCat("127.0.0.1:", coordinator_server_->port())};
      bo.coordinator_heartbeat_ms = 300;
      bo.replica_lag_time_max_ms = 1000;
      bo.replica_fetch_wait_ms = 200;
      bo.controlled_shutdown_timeout_ms = 500;
      auto b = Broker::Open(storage::DefaultFileSystem(), bo, io_);
      ASSERT_TRUE(b.ok()) << b.status();
      auto server = std::make_unique<rpc::RpcServer>(io_, "broker");
      (*b)->RegisterApis(*server);
      ASSERT_TRUE(server->Listen("127.0.0.1:0").ok());
      // Broker 1 may advertise an address nobody listens on: followers then
      // cannot fetch from it (clients here connect to the real port).
      (*b)->SetAdvertisedAddress("127.0.0.1", id == 1 && unreachable_broker1_ ? 1 : server->port());
      (*b)->Start();
      brokers_.push_back(*std::move(b));
      servers_.push_back(std::move(server));
    }
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (auto& b : brokers_) {
      while (!b->registered() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
      }
      ASSERT_TRUE(b->registered());
    }
    auto cc = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", coordinator_server_->port());
    ASSERT_TRUE(cc.ok()) << cc.status();
    coordinator_client_ = *cc;
    for (auto& s : servers_) {
      auto bc = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", s->port());
      ASSERT_TRUE(bc.ok()) << bc.status();
      clients_.push_back(*bc);
    }
  }

  void TearDown() override {
    for (auto& c : clients_) c->Close();
    if (coordinator_client_) coordinator_client_->Close();
    for (size_t i = 0; i < brokers_.size(); ++i) {
      if (brokers_[i] == nullptr) continue;
      servers_[i]->Stop();
      EXPECT_TRUE(brokers_[i]->Stop().ok());
    }
    if (coordinator_server_) coordinator_server_->Stop();
    if (coordinator_) {
      EXPECT_TRUE(coordinator_->Close().ok());
    }
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    brokers_.clear();
    coordinator_.reset();
    fs::remove_all(dir_);
  }

  std::string BrokerDir(int id) const { return absl::StrCat(dir_, "/broker-", id); }

  void CreateTopic(const std::string& topic, int32_t min_isr, int32_t partitions = 1) {
    proto::CreateTopicRequest req;
    req.set_topic(topic);
    req.set_partitions(partitions);
    req.set_replication_factor(kBrokers);
    req.mutable_config()->set_min_insync_replicas(min_isr);
    proto::CreateTopicResponse resp;
    auto r = coordinator_client_->CallSync(proto::API_CREATE_TOPIC, 0, req, {}, &resp, 5s);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  proto::PartitionDescription Describe(const std::string& topic, int32_t partition = 0) {
    proto::DescribeTopicRequest req;
    req.set_topic(topic);
    proto::DescribeTopicResponse resp;
    auto r = coordinator_client_->CallSync(proto::API_DESCRIBE_TOPIC, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
    for (const auto& p : resp.topic().partitions()) {
      if (p.partition() == partition) return p;
    }
    return {};
  }

  proto::ProducePartitionResult Produce(int32_t broker, const std::string& topic, int records,
                                        int32_t timeout_ms = 5000, int32_t partition = 0) {
    proto::ProduceRequest req;
    req.set_acks(-1);
    req.set_timeout_ms(timeout_ms);
    std::vector<uint8_t> batch = Batch(records, topic);
    auto* pp = req.add_partitions();
    pp->set_topic(topic);
    pp->set_partition(partition);
    pp->set_size(static_cast<uint32_t>(batch.size()));
    proto::ProduceResponse resp;
    auto r = clients_[broker - 1]->CallSync(proto::API_PRODUCE, 0, req, batch, &resp, 10s);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || resp.partitions_size() != 1) return {};
    return resp.partitions(0);
  }

  // Produces acks=all until it succeeds on the current leader (replicas
  // take a moment to learn their roles and to fetch).
  int32_t ProduceUntilOk(const std::string& topic, int records) {
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      int32_t leader = Describe(topic).leader();
      if (leader >= 1 && brokers_[leader - 1] != nullptr) {
        auto res = Produce(leader, topic, records);
        if (res.error_code() == proto::NONE) return leader;
      }
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "no acks=all produce to " << topic << " succeeded";
    return -1;
  }

  proto::FetchPartitionResult ReplicaFetch(int32_t to, int32_t as, const std::string& topic,
                                           int64_t offset, int32_t epoch) {
    proto::FetchRequest req;
    req.set_replica_id(as);
    req.set_max_wait_ms(0);
    auto* fp = req.add_partitions();
    fp->set_topic(topic);
    fp->set_partition(0);
    fp->set_fetch_offset(offset);
    fp->set_max_bytes(1 << 20);
    fp->set_current_leader_epoch(epoch);
    proto::FetchResponse resp;
    auto r = clients_[to - 1]->CallSync(proto::API_FETCH, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || resp.partitions_size() != 1) return {};
    return resp.partitions(0);
  }

  // Waits until the segment files of `topic`-0 on every live broker in
  // `ids` equal the leader's, and returns their size.
  size_t ExpectIdenticalLogs(const std::string& topic, std::vector<int32_t> ids) {
    const std::string seg = absl::StrCat("/", topic, "-0/00000000000000000000.log");
    auto deadline = std::chrono::steady_clock::now() + 10s;
    std::vector<std::string> bytes;
    while (std::chrono::steady_clock::now() < deadline) {
      bytes.clear();
      for (int32_t id : ids) bytes.push_back(FileBytes(BrokerDir(id) + seg));
      if (!bytes[0].empty() &&
          std::all_of(bytes.begin(), bytes.end(), [&](const auto& b) { return b == bytes[0]; })) {
        return bytes[0].size();
      }
      std::this_thread::sleep_for(20ms);
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      ADD_FAILURE() << "broker " << ids[i] << " log has " << bytes[i].size() << " bytes";
    }
    return 0;
  }

  bool unreachable_broker1_ = false;
  std::string dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  std::unique_ptr<rpc::RpcServer> coordinator_server_;
  std::vector<std::unique_ptr<Broker>> brokers_;
  std::vector<std::unique_ptr<rpc::RpcServer>> servers_;
  rpc::IoThread client_io_;
  std::shared_ptr<rpc::RpcClient> coordinator_client_;
  std::vector<std::shared_ptr<rpc::RpcClient>> clients_;
};

TEST_F(ReplicationClusterTest, AcksAllReachesEveryReplicaAndLogsAreIdentical) {
  CreateTopic("r", /*min_isr=*/2);
  int32_t leader = ProduceUntilOk("r", 10);
  ASSERT_GE(leader, 1);
  int64_t last = -1;
  for (int i = 0; i < 20; ++i) {
    auto res = Produce(leader, "r", 5);
    ASSERT_EQ(res.error_code(), proto::NONE) << res.error_message();
    EXPECT_GT(res.base_offset(), last);
    last = res.base_offset();
  }
  // Every acknowledged offset is below the high watermark at once.
  auto desc = Describe("r");
  auto f = ReplicaFetch(leader, -1, "r", 0, desc.leader_epoch());
  ASSERT_EQ(f.error_code(), proto::NONE) << f.error_message();
  EXPECT_GE(f.high_watermark(), last + 5);
  EXPECT_EQ(f.log_end_offset(), last + 5);
  EXPECT_EQ(f.leader_epoch(), desc.leader_epoch());
  EXPECT_EQ(desc.isr_size(), kBrokers);
  EXPECT_GT(ExpectIdenticalLogs("r", {1, 2, 3}), 0u);
}

TEST_F(ReplicationClusterTest, FollowerFetchesAreCheckedAgainstTheLeaderEpoch) {
  CreateTopic("e", 1);
  int32_t leader = ProduceUntilOk("e", 3);
  ASSERT_GE(leader, 1);
  auto desc = Describe("e");
  const int32_t epoch = desc.leader_epoch();
  const int32_t follower = desc.replicas(0) == leader ? desc.replicas(1) : desc.replicas(0);
  if (epoch > 0) {
    EXPECT_EQ(ReplicaFetch(leader, follower, "e", 0, epoch - 1).error_code(),
              proto::FENCED_LEADER_EPOCH);
  }
  EXPECT_EQ(ReplicaFetch(leader, follower, "e", 0, epoch + 1).error_code(),
            proto::UNKNOWN_LEADER_EPOCH);
  auto ok = ReplicaFetch(leader, follower, "e", 0, epoch);
  EXPECT_EQ(ok.error_code(), proto::NONE) << ok.error_message();
  EXPECT_GT(ok.size(), 0u);
  // A follower is not the leader.
  EXPECT_EQ(ReplicaFetch(follower, leader, "e", 0, epoch).error_code(), proto::NOT_LEADER);

  proto::OffsetForLeaderEpochRequest req;
  req.set_replica_id(follower);
  auto* p = req.add_partitions();
  p->set_topic("e");
  p->set_partition(0);
  p->set_current_leader_epoch(epoch);
  p->set_leader_epoch(epoch);
  proto::OffsetForLeaderEpochResponse resp;
  auto r = clients_[leader - 1]->CallSync(proto::API_OFFSET_FOR_LEADER_EPOCH, 0, req, {}, &resp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(resp.partitions_size(), 1);
  EXPECT_EQ(resp.partitions(0).error_code(), proto::NONE);
  EXPECT_EQ(resp.partitions(0).leader_epoch(), epoch);
  EXPECT_EQ(resp.partitions(0).end_offset(), ok.log_end_offset());
  p->set_current_leader_epoch(epoch + 1);
  r = clients_[leader - 1]->CallSync(proto::API_OFFSET_FOR_LEADER_EPOCH, 0, req, {}, &resp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(resp.partitions(0).error_code(), proto::UNKNOWN_LEADER_EPOCH);
}

TEST_F(ReplicationClusterTest, StoppedFollowerLeavesTheInSyncSet) {
  CreateTopic("s", /*min_isr=*/3);
  int32_t leader = ProduceUntilOk("s", 4);
  ASSERT_GE(leader, 1);
  auto desc = Describe("s");
  const int32_t follower = desc.replicas(0) == leader ? desc.replicas(1) : desc.replicas(0);
  servers_[follower - 1]->Stop();
  ASSERT_TRUE(brokers_[follower - 1]->Stop().ok());
  brokers_[follower - 1] = nullptr;
  // The follower leaves the in-sync set (controlled shutdown, or its lease
  // lapsing, or the leader's AlterIsr after the lag time).
  auto deadline = std::chrono::steady_clock::now() + 15s;
  proto::ProducePartitionResult res;
  while (std::chrono::steady_clock::now() < deadline) {
    res = Produce(leader, "s", 2, /*timeout_ms=*/500);
    if (res.error_code() == proto::NOT_ENOUGH_REPLICAS) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(res.error_code(), proto::NOT_ENOUGH_REPLICAS) << res.error_message();
  EXPECT_EQ(Describe("s").isr_size(), kBrokers - 1);
}

TEST_F(ReplicationClusterTest, LeadershipMovesOnStopAndNoAcknowledgedRecordIsLost) {
  CreateTopic("m", /*min_isr=*/2);
  int32_t leader = ProduceUntilOk("m", 4);
  ASSERT_GE(leader, 1);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Produce(leader, "m", 3).error_code(), proto::NONE);
  const int32_t old_epoch = Describe("m").leader_epoch();
  servers_[leader - 1]->Stop();
  ASSERT_TRUE(brokers_[leader - 1]->Stop().ok());
  brokers_[leader - 1] = nullptr;
  int32_t next = ProduceUntilOk("m", 4);
  ASSERT_GE(next, 1);
  EXPECT_NE(next, leader);
  auto desc = Describe("m");
  EXPECT_GT(desc.leader_epoch(), old_epoch);
  // The new leader holds the 4 + 30 acknowledged records and the new ones.
  auto f = ReplicaFetch(next, -1, "m", 0, desc.leader_epoch());
  ASSERT_EQ(f.error_code(), proto::NONE) << f.error_message();
  EXPECT_EQ(f.log_end_offset(), 4 + 30 + 4);
  // A fetch in the old epoch is fenced; the old epoch ends where the new
  // leader's began.
  EXPECT_EQ(ReplicaFetch(next, -1, "m", 0, old_epoch).error_code(), proto::FENCED_LEADER_EPOCH);
  proto::OffsetForLeaderEpochRequest req;
  auto* p = req.add_partitions();
  p->set_topic("m");
  p->set_partition(0);
  p->set_current_leader_epoch(desc.leader_epoch());
  p->set_leader_epoch(old_epoch);
  proto::OffsetForLeaderEpochResponse resp;
  auto r = clients_[next - 1]->CallSync(proto::API_OFFSET_FOR_LEADER_EPOCH, 0, req, {}, &resp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(resp.partitions_size(), 1);
  EXPECT_EQ(resp.partitions(0).leader_epoch(), old_epoch);
  EXPECT_EQ(resp.partitions(0).end_offset(), 4 + 30);
  std::vector<int32_t> live;
  for (int id = 1; id <= kBrokers; ++id) {
    if (id != leader) live.push_back(id);
  }
  EXPECT_GT(ExpectIdenticalLogs("m", live), 0u);
}

TEST_F(ReplicationClusterTest, LeaderWithoutALeaseAcceptsNoWrites) {
  CreateTopic("f", /*min_isr=*/1);
  int32_t leader = ProduceUntilOk("f", 2);
  ASSERT_GE(leader, 1);
  // The coordinator becomes unreachable: heartbeats fail and the lease
  // (1500 ms from the send time of the last good heartbeat) lapses.
  coordinator_server_->Stop();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  proto::ProducePartitionResult res;
  while (std::chrono::steady_clock::now() < deadline) {
    res = Produce(leader, "f", 1, 500);
    if (res.error_code() != proto::NONE) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(res.error_code(), proto::NOT_LEADER) << res.error_message();
  EXPECT_EQ(res.leader_hint(), -1);
}

class UnreachableLeaderTest : public ReplicationClusterTest {
 protected:
  void SetUp() override {
    unreachable_broker1_ = true;
    ReplicationClusterTest::SetUp();
  }
};

// Followers cannot reach broker 1: acks=all on a partition it leads times
// out while the in-sync set still names them; after replica_lag_time_max_ms
// the leader has them dropped (AlterIsr) and acks=all succeeds with
// min.insync.replicas=1.
TEST_F(UnreachableLeaderTest, AcksAllTimesOutThenTheInSyncSetShrinks) {
  CreateTopic("u", /*min_isr=*/1, /*partitions=*/3);
  int32_t partition = -1;
  for (int32_t p = 0; p < 3; ++p) {
    if (Describe("u", p).leader() == 1) partition = p;
  }
  ASSERT_GE(partition, 0) << "no partition led by broker 1";
  proto::ProducePartitionResult res;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    res = Produce(1, "u", 2, /*timeout_ms=*/200, partition);
    // Until the assignment and roles have reached broker 1.
    if (res.error_code() != proto::NOT_LEADER &&
        res.error_code() != proto::UNKNOWN_TOPIC_OR_PARTITION) {
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(res.error_code(), proto::REQUEST_TIMED_OUT) << res.error_message();
  deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    res = Produce(1, "u", 2, /*timeout_ms=*/200, partition);
    if (res.error_code() == proto::NONE) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(res.error_code(), proto::NONE) << res.error_message();
  auto desc = Describe("u", partition);
  ASSERT_EQ(desc.isr_size(), 1);
  EXPECT_EQ(desc.isr(0), 1);
}

}  // namespace
}  // namespace brook::broker
