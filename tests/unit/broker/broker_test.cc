// Broker with the real Coordinator in process, over loopback RPC: assignments
// reach the broker through its heartbeat, produce/fetch over several
// partitions, response size limits, topic deletion, and Stop answering
// parked fetches.
#include "broker/broker.h"

#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio/executor_work_guard.hpp"
#include "broker/storage/log.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"

namespace brook::broker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Current timestamps: the retention timer runs every 50 ms in these tests
// and deletes data older than the default retention (7 days).
std::vector<uint8_t> Batch(int records, const std::string& tag) {
  RecordBatchBuilder b(RecordBatchBuilder::Options{});
  const int64_t now = absl::ToUnixMillis(absl::Now());
  for (int i = 0; i < records; ++i) b.Append(now + i, absl::StrCat(tag, i), std::string(100, 'v'));
  return b.Build();
}

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "brook-broker-XXXXXX").string();
    dir_ = mkdtemp(t.data());
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });

    coordinator::CoordinatorOptions co;
    co.data_dir = dir_ + "/coordinator";
    auto c = coordinator::Coordinator::Open(storage::DefaultFileSystem(), &flusher_, co, io_);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *std::move(c);
    coordinator_server_ = std::make_unique<rpc::RpcServer>(io_, "coordinator");
    coordinator_->RegisterApis(*coordinator_server_);
    ASSERT_TRUE(coordinator_server_->Listen("127.0.0.1:0").ok());
    coordinator_->SetAdvertisedAddress("127.0.0.1", coordinator_server_->port());

    BrokerOptions bo;
    bo.data_dir = dir_ + "/broker";
    bo.coordinators = {absl::StrCat("127.0.0.1:", coordinator_server_->port())};
    bo.coordinator_heartbeat_ms = 500;
    bo.max_parked_fetches = 20;
    bo.retention_check_ms = 50;
    auto b = Broker::Open(storage::DefaultFileSystem(), bo, io_);
    ASSERT_TRUE(b.ok()) << b.status();
    broker_ = *std::move(b);
    broker_server_ = std::make_unique<rpc::RpcServer>(io_, "broker");
    broker_->RegisterApis(*broker_server_);
    ASSERT_TRUE(broker_server_->Listen("127.0.0.1:0").ok());
    broker_->SetAdvertisedAddress("127.0.0.1", broker_server_->port());
    broker_->Start();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!broker_->registered() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_TRUE(broker_->registered());

    auto cc = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", coordinator_server_->port());
    ASSERT_TRUE(cc.ok()) << cc.status();
    coordinator_client_ = *cc;
    auto bc = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", broker_server_->port());
    ASSERT_TRUE(bc.ok()) << bc.status();
    broker_client_ = *bc;
  }

  void TearDown() override {
    if (broker_client_) broker_client_->Close();
    if (coordinator_client_) coordinator_client_->Close();
    if (broker_server_) broker_server_->Stop();
    if (broker_) {
      EXPECT_TRUE(broker_->Stop().ok());
    }
    if (coordinator_server_) coordinator_server_->Stop();
    if (coordinator_) {
      EXPECT_TRUE(coordinator_->Close().ok());
    }
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    broker_.reset();
    coordinator_.reset();
    fs::remove_all(dir_);
  }

  void CreateTopic(const std::string& topic, int32_t partitions, proto::TopicConfig config = {}) {
    proto::CreateTopicRequest req;
    req.set_topic(topic);
    req.set_partitions(partitions);
    *req.mutable_config() = config;
    proto::CreateTopicResponse resp;
    auto r = coordinator_client_->CallSync(proto::API_CREATE_TOPIC, 0, req, {}, &resp, 5s);
    ASSERT_TRUE(r.ok()) << r.status();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      proto::MetadataRequest mreq;
      mreq.add_topics(topic);
      proto::MetadataResponse mresp;
      auto m = broker_client_->CallSync(proto::API_METADATA, 0, mreq, {}, &mresp, 5s);
      ASSERT_TRUE(m.ok()) << m.status();
      if (mresp.topics_size() == 1 && mresp.topics(0).error_code() == proto::NONE &&
          mresp.topics(0).partitions_size() == partitions) {
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "broker never hosted " << topic;
  }

  proto::FetchRequest FetchReq(const std::string& topic, std::vector<int32_t> partitions,
                               int32_t max_bytes = 1 << 20) {
    proto::FetchRequest req;
    req.set_max_bytes(max_bytes);
    req.set_replica_id(-1);
    for (int32_t p : partitions) {
      auto* fp = req.add_partitions();
      fp->set_topic(topic);
      fp->set_partition(p);
      fp->set_fetch_offset(0);
      fp->set_max_bytes(1 << 20);
    }
    return req;
  }

  std::string dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  storage::Flusher flusher_;
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  std::unique_ptr<rpc::RpcServer> coordinator_server_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<rpc::RpcServer> broker_server_;
  rpc::IoThread client_io_;
  std::shared_ptr<rpc::RpcClient> coordinator_client_;
  std::shared_ptr<rpc::RpcClient> broker_client_;
};

TEST_F(BrokerTest, ProduceToSeveralPartitionsAndFetchWithinLimits) {
  CreateTopic("multi", 2);
  std::vector<uint8_t> b0 = Batch(3, "p0-");
  std::vector<uint8_t> b1 = Batch(2, "p1-");
  proto::ProduceRequest req;
  req.set_acks(-1);
  auto* p0 = req.add_partitions();
  p0->set_topic("multi");
  p0->set_partition(0);
  p0->set_size(static_cast<uint32_t>(b0.size()));
  auto* p1 = req.add_partitions();
  p1->set_topic("multi");
  p1->set_partition(1);
  p1->set_size(static_cast<uint32_t>(b1.size()));
  std::vector<uint8_t> payload = b0;
  payload.insert(payload.end(), b1.begin(), b1.end());
  proto::ProduceResponse resp;
  auto r = broker_client_->CallSync(proto::API_PRODUCE, 0, req, payload, &resp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(resp.partitions_size(), 2);
  for (const auto& pr : resp.partitions()) {
    EXPECT_EQ(pr.error_code(), proto::NONE) << pr.error_message();
    EXPECT_EQ(pr.base_offset(), 0);
  }
  // A second batch on partition 0.
  std::vector<uint8_t> b0b = Batch(4, "p0b-");
  req.mutable_partitions()->RemoveLast();
  req.mutable_partitions(0)->set_size(static_cast<uint32_t>(b0b.size()));
  r = broker_client_->CallSync(proto::API_PRODUCE, 0, req, b0b, &resp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(resp.partitions(0).base_offset(), 3);

  // Everything fits.
  proto::FetchResponse fresp;
  auto f = broker_client_->CallSync(proto::API_FETCH, 0, FetchReq("multi", {0, 1}), {}, &fresp, 5s);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(fresp.partitions_size(), 2);
  EXPECT_EQ(fresp.partitions(0).size(), b0.size() + b0b.size()) << fresp.DebugString();
  EXPECT_EQ(fresp.partitions(1).size(), b1.size());
  EXPECT_EQ(fresp.partitions(0).high_watermark(), 7);
  EXPECT_EQ(fresp.partitions(1).high_watermark(), 2);
  EXPECT_EQ(f->size(), b0.size() + b0b.size() + b1.size());
  auto batches = SplitBatches(*f);
  ASSERT_TRUE(batches.ok());
  ASSERT_EQ(batches->size(), 3u);
  EXPECT_EQ((*batches)[1].base_offset(), 3);
  EXPECT_EQ((*batches)[2].base_offset(), 0);

  // A 1-byte response limit still returns one whole batch of the first
  // partition, and nothing of the second.
  f = broker_client_->CallSync(proto::API_FETCH, 0, FetchReq("multi", {0, 1}, 1), {}, &fresp, 5s);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(fresp.partitions(0).size(), b0.size());
  EXPECT_EQ(fresp.partitions(1).size(), 0u);
  EXPECT_EQ(fresp.partitions(1).error_code(), proto::NONE);
  EXPECT_EQ(f->size(), b0.size());
}

TEST_F(BrokerTest, DeletedTopicDirectoryIsRemoved) {
  CreateTopic("doomed", 1);
  ASSERT_TRUE(fs::exists(dir_ + "/broker/doomed-0"));
  proto::DeleteTopicRequest req;
  req.set_topic("doomed");
  proto::DeleteTopicResponse resp;
  ASSERT_TRUE(coordinator_client_->CallSync(proto::API_DELETE_TOPIC, 0, req, {}, &resp, 5s).ok());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (fs::exists(dir_ + "/broker/doomed-0") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_FALSE(fs::exists(dir_ + "/broker/doomed-0"));
  std::vector<uint8_t> b = Batch(1, "x");
  proto::ProduceRequest preq;
  preq.set_acks(1);
  auto* p = preq.add_partitions();
  p->set_topic("doomed");
  p->set_partition(0);
  p->set_size(static_cast<uint32_t>(b.size()));
  proto::ProduceResponse presp;
  ASSERT_TRUE(broker_client_->CallSync(proto::API_PRODUCE, 0, preq, b, &presp, 5s).ok());
  EXPECT_EQ(presp.partitions(0).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
}

TEST_F(BrokerTest, ParkedFetchesWakeOnAnyOfTheirPartitionsAndAreBounded) {
  CreateTopic("wake", 2);
  proto::FetchRequest req = FetchReq("wake", {0, 1});
  req.set_max_wait_ms(20000);
  req.set_min_bytes(1);
  constexpr int kParked = 20;  // == max_parked_fetches
  std::vector<std::promise<absl::StatusOr<rpc::Response>>> done(kParked + 1);
  for (int i = 0; i < kParked; ++i) {
    broker_client_->Call(proto::API_FETCH, 0, req, {}, 30s,
                         [&done, i](absl::StatusOr<rpc::Response> r) { done[i].set_value(r); });
  }
  // Let every one of them park, then one more: beyond the bound it is
  // answered at once, empty.
  auto parked_deadline = std::chrono::steady_clock::now() + 2s;
  std::this_thread::sleep_for(200ms);
  auto start = std::chrono::steady_clock::now();
  broker_client_->Call(proto::API_FETCH, 0, req, {}, 30s,
                       [&done](absl::StatusOr<rpc::Response> r) { done[kParked].set_value(r); });
  auto extra = done[kParked].get_future();
  ASSERT_EQ(extra.wait_until(parked_deadline + 3s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  auto extra_r = extra.get();
  ASSERT_TRUE(extra_r.ok());
  EXPECT_TRUE(extra_r->payload.empty());

  std::vector<std::future<absl::StatusOr<rpc::Response>>> futures;
  for (int i = 0; i < kParked; ++i) futures.push_back(done[i].get_future());
  for (auto& f : futures) EXPECT_EQ(f.wait_for(0ms), std::future_status::timeout);

  std::vector<uint8_t> b = Batch(2, "w");
  proto::ProduceRequest preq;
  preq.set_acks(1);
  auto* p = preq.add_partitions();
  p->set_topic("wake");
  p->set_partition(1);
  p->set_size(static_cast<uint32_t>(b.size()));
  proto::ProduceResponse presp;
  ASSERT_TRUE(broker_client_->CallSync(proto::API_PRODUCE, 0, preq, b, &presp, 5s).ok());
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.status();
    proto::FetchResponse fr;
    ASSERT_TRUE(fr.ParseFromString(r->header));
    ASSERT_EQ(fr.partitions_size(), 2);
    EXPECT_EQ(fr.partitions(0).size(), 0u);
    EXPECT_EQ(fr.partitions(1).size(), b.size());
    EXPECT_EQ(r->payload.size(), b.size());
  }
}

TEST_F(BrokerTest, RetentionTimerDeletesOldSegments) {
  proto::TopicConfig config;
  config.set_flush_policy(proto::FLUSH_OS);
  config.set_segment_bytes(1024);
  config.set_retention_bytes(2048);
  CreateTopic("retained", 1, config);
  std::vector<uint8_t> b = Batch(3, "r");  // ~ 300 bytes each
  proto::ProduceRequest req;
  req.set_acks(1);
  auto* p = req.add_partitions();
  p->set_topic("retained");
  p->set_partition(0);
  p->set_size(static_cast<uint32_t>(b.size()));
  for (int i = 0; i < 40; ++i) {
    proto::ProduceResponse resp;
    ASSERT_TRUE(broker_client_->CallSync(proto::API_PRODUCE, 0, req, b, &resp, 5s).ok());
    ASSERT_EQ(resp.partitions(0).error_code(), proto::NONE) << resp.partitions(0).error_message();
  }
  // The retention timer (every 50 ms here) moves the log start forward.
  proto::ListOffsetsRequest lreq;
  auto* lp = lreq.add_partitions();
  lp->set_topic("retained");
  lp->set_partition(0);
  lp->set_timestamp(-2);
  int64_t earliest = 0;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (earliest == 0 && std::chrono::steady_clock::now() < deadline) {
    proto::ListOffsetsResponse lresp;
    ASSERT_TRUE(broker_client_->CallSync(proto::API_LIST_OFFSETS, 0, lreq, {}, &lresp, 5s).ok());
    earliest = lresp.partitions(0).offset();
    if (earliest == 0) std::this_thread::sleep_for(20ms);
  }
  EXPECT_GT(earliest, 0);
  // Fetching below the new start is out of range.
  proto::FetchResponse fresp;
  auto f = broker_client_->CallSync(proto::API_FETCH, 0, FetchReq("retained", {0}), {}, &fresp, 5s);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(fresp.partitions(0).error_code(), proto::OFFSET_OUT_OF_RANGE);
  EXPECT_EQ(fresp.partitions(0).log_start_offset(), earliest);
}

TEST_F(BrokerTest, StopAnswersParkedFetches) {
  CreateTopic("parked", 1);
  proto::FetchRequest req = FetchReq("parked", {0});
  req.set_max_wait_ms(30000);
  req.set_min_bytes(1);
  std::promise<absl::Status> done;
  broker_client_->Call(proto::API_FETCH, 0, req, {}, 60s,
                       [&done](absl::StatusOr<rpc::Response> r) {
                         done.set_value(r.ok() ? rpc::ResponseStatus(*r) : r.status());
                       });
  auto fut = done.get_future();
  EXPECT_EQ(fut.wait_for(300ms), std::future_status::timeout);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(broker_->Stop().ok());
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(ToErrorCode(fut.get()), proto::SHUTTING_DOWN);
}

}  // namespace
}  // namespace brook::broker
