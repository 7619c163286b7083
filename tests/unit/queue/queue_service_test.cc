// QueueService without a broker: a fake QueueHost over a real partition log.
// Memory stays bounded with a large backlog (the window), and losing
// leadership drops the subscription and answers parked receives.
#include "broker/queue/queue_service.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "boost/asio/executor_work_guard.hpp"
#include "broker/storage/log.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "gtest/gtest.h"

namespace brook::queue {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A partition over a real log; the high watermark is the log end.
class FakePartition : public PartitionView {
 public:
  explicit FakePartition(std::unique_ptr<storage::PartitionLog> log) : log_(std::move(log)) {}
  std::string topic_id() const override { return "tid"; }
  int32_t leader_epoch() const override { return epoch_.load(); }
  int64_t log_start_offset() const override { return log_->log_start_offset().value(); }
  int64_t high_watermark() const override { return log_->log_end_offset().value(); }
  absl::StatusOr<std::vector<uint8_t>> Read(int64_t offset, size_t max_bytes) const override {
    return log_->Read(Offset(offset), max_bytes, log_->log_end_offset());
  }
  void AddWaiter(std::function<void()> waiter) override {
    absl::MutexLock l(&mu_);
    waiters_.push_back(std::move(waiter));
  }
  void Append(int n) {
    RecordBatchBuilder b(RecordBatchBuilder::Options{});
    const int64_t now = absl::ToUnixMillis(absl::Now());
    for (int i = 0; i < n; ++i) b.Append(now, absl::StrCat("k", i), std::string(20, 'v'));
    std::vector<uint8_t> batch = b.Build();
    ASSERT_TRUE(log_->Append(batch, LeaderEpoch(0)).ok());
    std::vector<std::function<void()>> w;
    {
      absl::MutexLock l(&mu_);
      w.swap(waiters_);
    }
    for (auto& f : w) f();
  }
  std::atomic<int32_t> epoch_{0};

 private:
  std::unique_ptr<storage::PartitionLog> log_;
  absl::Mutex mu_;
  std::vector<std::function<void()>> waiters_ ABSL_GUARDED_BY(mu_);
};

class FakeHost : public QueueHost {
 public:
  std::shared_ptr<PartitionView> Lead(const std::string& topic, int32_t partition,
                                      proto::ErrorCode* code, std::string* message) override {
    if (topic != "t" || partition != 0) {
      *code = proto::UNKNOWN_TOPIC_OR_PARTITION;
      *message = "unknown";
      return nullptr;
    }
    if (!leader.load()) {
      *code = proto::NOT_LEADER;
      *message = "not the leader";
      return nullptr;
    }
    return partition_;
  }
  std::vector<int32_t> LedPartitions(const std::string& topic) override {
    return topic == "t" && leader.load() ? std::vector<int32_t>{0} : std::vector<int32_t>{};
  }
  absl::Status CallCoordinator(proto::Api, const google::protobuf::Message&, google::protobuf::Message*,
                               std::chrono::milliseconds) override {
    return MakeError(proto::BROKER_NOT_AVAILABLE, "no coordinator in this test");
  }
  std::shared_ptr<FakePartition> partition_;
  std::atomic<bool> leader{true};
};

class QueueServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "brook-qservice-XXXXXX").string();
    dir_ = mkdtemp(t.data());
    storage::LogConfig lc;
    lc.flush_policy = storage::FlushPolicy::kOs;
    auto log = storage::PartitionLog::Open(storage::DefaultFileSystem(), dir_ + "/log", lc);
    ASSERT_TRUE(log.ok()) << log.status();
    host_.partition_ = std::make_shared<FakePartition>(*std::move(log));
    threads_.emplace_back([this] { io_.run(); });
    QueueServiceOptions o;
    o.dir = dir_ + "/queues";
    o.limits.max_window = 100;
    o.tick_ms = 20;
    service_ = std::make_unique<QueueService>(io_, storage::DefaultFileSystem(), &host_, nullptr, o);
    server_ = std::make_unique<rpc::RpcServer>(io_, "queue");
    service_->RegisterApis(*server_);
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    service_->Start();
    auto c = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", server_->port());
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *c;
  }
  void TearDown() override {
    client_->Close();
    server_->Stop();
    service_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    service_.reset();
    fs::remove_all(dir_);
  }

  proto::QueueReceiveRequest Req(int max_records, int max_wait_ms = 0) {
    proto::QueueReceiveRequest req;
    req.set_group("g");
    req.set_topic("t");
    req.set_consumer_id("c");
    req.add_partitions(0);
    req.set_max_records(max_records);
    req.set_max_wait_ms(max_wait_ms);
    req.mutable_config()->set_start_earliest(true);
    return req;
  }

  proto::QueuePartitionState Describe() {
    proto::QueueDescribeRequest req;
    req.set_group("g");
    req.set_topic("t");
    req.add_partitions(0);
    proto::QueueDescribeResponse resp;
    auto r = client_->CallSync(proto::API_QUEUE_DESCRIBE, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
    return resp.partitions_size() == 1 ? resp.partitions(0) : proto::QueuePartitionState();
  }

  std::string dir_;
  FakeHost host_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  std::unique_ptr<QueueService> service_;
  std::unique_ptr<rpc::RpcServer> server_;
  rpc::IoThread client_io_;
  std::shared_ptr<rpc::RpcClient> client_;
};

TEST_F(QueueServiceTest, LargeBacklogReadsOnlyAWindowAhead) {
  for (int i = 0; i < 50; ++i) host_.partition_->Append(1000);  // 50 000 records
  proto::QueueReceiveResponse resp;
  auto r = client_->CallSync(proto::API_QUEUE_RECEIVE, 0, Req(10), {}, &resp, 10s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(resp.deliveries_size(), 10);
  proto::QueuePartitionState st = Describe();
  EXPECT_EQ(st.ack_floor(), 0);
  EXPECT_LE(st.read_offset(), 100);  // the window, not the backlog
  EXPECT_EQ(st.backlog(), 50000);
  // Acks let the reader move on, still bounded.
  proto::QueueAckRequest ack;
  ack.set_group("g");
  ack.set_topic("t");
  for (const auto& d : resp.deliveries()) {
    auto* e = ack.add_entries();
    e->set_partition(0);
    e->set_offset(d.offset());
    e->set_delivery_count(d.delivery_count());
  }
  proto::QueueAckResponse aresp;
  ASSERT_TRUE(client_->CallSync(proto::API_QUEUE_ACK, 0, ack, {}, &aresp, 5s).ok());
  for (const auto& res : aresp.results()) EXPECT_EQ(res.error_code(), proto::NONE);
  ASSERT_TRUE(client_->CallSync(proto::API_QUEUE_RECEIVE, 0, Req(1000), {}, &resp, 10s).ok());
  EXPECT_EQ(resp.deliveries_size(), 100);
  EXPECT_EQ(resp.deliveries(0).offset(), 10);
  st = Describe();
  EXPECT_EQ(st.ack_floor(), 10);
  EXPECT_LE(st.read_offset(), 110);
  EXPECT_EQ(st.in_flight(), 100);
}

TEST_F(QueueServiceTest, LosingLeadershipAnswersParkedReceivesAndDropsState) {
  proto::QueueReceiveResponse resp;
  ASSERT_TRUE(client_->CallSync(proto::API_QUEUE_RECEIVE, 0, Req(10), {}, &resp, 10s).ok());
  EXPECT_EQ(service_->subscription_count(), 1u);
  std::promise<absl::StatusOr<rpc::Response>> done;
  client_->Call(proto::API_QUEUE_RECEIVE, 0, Req(10, 20000), {}, 30s,
                [&done](absl::StatusOr<rpc::Response> r) { done.set_value(std::move(r)); });
  std::this_thread::sleep_for(200ms);
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(0ms), std::future_status::timeout);
  host_.leader.store(false);
  service_->CheckLeadership();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto r = f.get();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(resp.ParseFromString(r->header));
  ASSERT_EQ(resp.partition_errors_size(), 1);
  EXPECT_EQ(resp.partition_errors(0).error_code(), proto::NOT_LEADER);
  EXPECT_EQ(service_->subscription_count(), 0u);
  // The journal stays: back as leader, the subscription reloads from it.
  host_.leader.store(true);
  host_.partition_->Append(3);
  ASSERT_TRUE(client_->CallSync(proto::API_QUEUE_RECEIVE, 0, Req(10), {}, &resp, 10s).ok());
  EXPECT_EQ(resp.deliveries_size(), 3);
  EXPECT_EQ(service_->subscription_count(), 1u);
  // A new leader epoch reloads it as well.
  host_.partition_->epoch_.store(1);
  EXPECT_EQ(Describe().in_flight(), 3);
}

}  // namespace
}  // namespace brook::queue
