// Queue subscriptions inside a real broker (with the real coordinator and a
// name server in process, over loopback RPC): receive / ack / nack /
// release / describe, long-poll woken by appends and by delays, tag filters,
// dead-lettering through the producer, bad input, and a broker restart that
// does not redeliver acknowledged records.
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio/executor_work_guard.hpp"
#include "broker/broker.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"
#include "nameserver/nameserver.h"

namespace brook::broker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct TestRecord {
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

std::vector<uint8_t> Batch(const std::vector<TestRecord>& records) {
  RecordBatchBuilder b(RecordBatchBuilder::Options{});
  const int64_t now = absl::ToUnixMillis(absl::Now());
  for (const auto& r : records) {
    std::vector<HeaderView> hs;
    for (const auto& [k, v] : r.headers) hs.push_back(HeaderView{k, v});
    b.Append(now, r.key, r.value, hs);
  }
  return b.Build();
}

struct Received {
  int64_t offset;
  int32_t count;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
};

class QueueBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "brook-queue-XXXXXX").string();
    dir_ = mkdtemp(t.data());
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });

    nameserver_ = std::make_unique<nameserver::NameServer>(nameserver::NameServerOptions{});
    ns_server_ = std::make_unique<rpc::RpcServer>(io_, "nameserver");
    nameserver_->RegisterApis(*ns_server_);
    ASSERT_TRUE(ns_server_->Listen("127.0.0.1:0").ok());

    coordinator::CoordinatorOptions co;
    co.data_dir = dir_ + "/coordinator";
    auto c = coordinator::Coordinator::Open(storage::DefaultFileSystem(), &flusher_, co, io_);
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *std::move(c);
    coordinator_server_ = std::make_unique<rpc::RpcServer>(io_, "coordinator");
    coordinator_->RegisterApis(*coordinator_server_);
    ASSERT_TRUE(coordinator_server_->Listen("127.0.0.1:0").ok());
    coordinator_->SetAdvertisedAddress("127.0.0.1", coordinator_server_->port());

    auto cc = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", coordinator_server_->port());
    ASSERT_TRUE(cc.ok()) << cc.status();
    coordinator_client_ = *cc;
    StartBroker();
  }

  void StartBroker() {
    BrokerOptions bo;
    bo.data_dir = dir_ + "/broker";
    bo.coordinators = {absl::StrCat("127.0.0.1:", coordinator_server_->port())};
    bo.nameservers = {absl::StrCat("127.0.0.1:", ns_server_->port())};
    bo.coordinator_heartbeat_ms = 500;
    bo.nameserver_heartbeat_ms = 200;
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
    auto bc = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", broker_server_->port());
    ASSERT_TRUE(bc.ok()) << bc.status();
    broker_client_ = *bc;
  }

  void StopBroker() {
    if (broker_client_) broker_client_->Close();
    broker_client_.reset();
    if (broker_server_) broker_server_->Stop();
    if (broker_) {
      EXPECT_TRUE(broker_->Stop().ok());
    }
    broker_.reset();
    broker_server_.reset();
  }

  void TearDown() override {
    StopBroker();
    if (coordinator_client_) coordinator_client_->Close();
    if (coordinator_server_) coordinator_server_->Stop();
    if (coordinator_) {
      EXPECT_TRUE(coordinator_->Close().ok());
    }
    if (ns_server_) ns_server_->Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    coordinator_.reset();
    fs::remove_all(dir_);
  }

  void CreateTopic(const std::string& topic, int32_t partitions) {
    proto::CreateTopicRequest req;
    req.set_topic(topic);
    req.set_partitions(partitions);
    proto::CreateTopicResponse resp;
    auto r = coordinator_client_->CallSync(proto::API_CREATE_TOPIC, 0, req, {}, &resp, 5s);
    ASSERT_TRUE(r.ok()) << r.status();
    WaitHosted(topic, partitions);
  }

  void WaitHosted(const std::string& topic, int32_t partitions) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    proto::MetadataResponse mresp;
    while (std::chrono::steady_clock::now() < deadline) {
      proto::MetadataRequest mreq;
      mreq.add_topics(topic);
      auto m = broker_client_->CallSync(proto::API_METADATA, 0, mreq, {}, &mresp, 5s);
      ASSERT_TRUE(m.ok()) << m.status();
      if (mresp.topics_size() == 1 && mresp.topics(0).error_code() == proto::NONE &&
          mresp.topics(0).partitions_size() == partitions) {
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "broker never hosted " << topic << ": " << mresp.DebugString();
  }

  void Produce(const std::string& topic, int32_t partition, const std::vector<TestRecord>& records) {
    std::vector<uint8_t> b = Batch(records);
    proto::ProduceRequest req;
    req.set_acks(1);
    auto* p = req.add_partitions();
    p->set_topic(topic);
    p->set_partition(partition);
    p->set_size(static_cast<uint32_t>(b.size()));
    proto::ProduceResponse resp;
    auto r = broker_client_->CallSync(proto::API_PRODUCE, 0, req, b, &resp, 5s);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(resp.partitions(0).error_code(), proto::NONE) << resp.partitions(0).error_message();
  }

  void ProduceN(const std::string& topic, int n, const std::string& prefix = "v") {
    std::vector<TestRecord> records;
    for (int i = 0; i < n; ++i) records.push_back({absl::StrCat("k", i), absl::StrCat(prefix, i), {}});
    Produce(topic, 0, records);
  }

  proto::QueueReceiveRequest ReceiveReq(const std::string& topic, const std::string& consumer,
                                        int max_records = 100, int max_wait_ms = 0) {
    proto::QueueReceiveRequest req;
    req.set_group("g");
    req.set_topic(topic);
    req.set_consumer_id(consumer);
    req.add_partitions(0);
    req.set_max_records(max_records);
    req.set_max_wait_ms(max_wait_ms);
    req.mutable_config()->set_start_earliest(true);
    req.mutable_config()->set_ack_timeout_ms(ack_timeout_ms_);
    req.mutable_config()->set_backoff_initial_ms(50);
    req.mutable_config()->set_backoff_max_ms(100);
    return req;
  }

  // Decodes a receive response's payload; checks it against `deliveries`.
  std::vector<Received> Decode(const proto::QueueReceiveResponse& resp,
                               const std::vector<uint8_t>& payload) {
    std::vector<Received> out;
    size_t pos = 0;
    RecordReader reader;
    for (const auto& qb : resp.batches()) {
      EXPECT_LE(pos + qb.bytes(), payload.size());
      auto view = RecordBatchView::Parse(std::span<const uint8_t>(payload).subspan(pos, qb.bytes()));
      EXPECT_TRUE(view.ok());
      if (!view.ok()) return out;
      EXPECT_TRUE(view->VerifyCrc().ok());
      std::vector<RecordView> records;
      EXPECT_TRUE(reader.Read(*view, &records).ok());
      for (const auto& rv : records) {
        Received r;
        r.offset = rv.offset;
        r.count = 0;
        r.key = rv.key ? std::string(*rv.key) : "";
        r.value = rv.value ? std::string(*rv.value) : "";
        for (const auto& h : rv.headers) {
          r.headers.emplace_back(std::string(h.key), h.value ? std::string(*h.value) : "");
        }
        out.push_back(r);
      }
      pos += qb.bytes();
    }
    EXPECT_EQ(pos, payload.size());
    EXPECT_EQ(static_cast<int>(out.size()), resp.deliveries_size());
    for (size_t i = 0; i < out.size() && static_cast<int>(i) < resp.deliveries_size(); ++i) {
      EXPECT_EQ(out[i].offset, resp.deliveries(i).offset());
      out[i].count = resp.deliveries(i).delivery_count();
    }
    return out;
  }

  std::vector<Received> Receive(const proto::QueueReceiveRequest& req,
                                proto::QueueReceiveResponse* resp_out = nullptr) {
    proto::QueueReceiveResponse resp;
    auto r = broker_client_->CallSync(proto::API_QUEUE_RECEIVE, 0, req, {}, &resp, 10s);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    EXPECT_EQ(resp.partition_errors_size(), 0) << resp.DebugString();
    if (resp_out != nullptr) *resp_out = resp;
    return Decode(resp, *r);
  }

  std::vector<proto::ErrorCode> Ack(const std::string& topic,
                                    const std::vector<std::tuple<int64_t, int32_t, proto::QueueAckType, int64_t>>& entries) {
    proto::QueueAckRequest req;
    req.set_group("g");
    req.set_topic(topic);
    req.set_consumer_id("c");
    for (const auto& [offset, count, type, delay] : entries) {
      auto* e = req.add_entries();
      e->set_partition(0);
      e->set_offset(offset);
      e->set_delivery_count(count);
      e->set_type(type);
      e->set_delay_ms(delay);
    }
    proto::QueueAckResponse resp;
    auto r = broker_client_->CallSync(proto::API_QUEUE_ACK, 0, req, {}, &resp, 10s);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<proto::ErrorCode> out;
    for (const auto& res : resp.results()) out.push_back(res.error_code());
    return out;
  }

  proto::QueuePartitionState Describe(const std::string& topic) {
    proto::QueueDescribeRequest req;
    req.set_group("g");
    req.set_topic(topic);
    proto::QueueDescribeResponse resp;
    auto r = broker_client_->CallSync(proto::API_QUEUE_DESCRIBE, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(resp.partitions_size(), 1);
    return resp.partitions_size() == 1 ? resp.partitions(0) : proto::QueuePartitionState();
  }

  std::string dir_;
  int32_t ack_timeout_ms_ = 30000;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  storage::Flusher flusher_;
  std::unique_ptr<nameserver::NameServer> nameserver_;
  std::unique_ptr<rpc::RpcServer> ns_server_;
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  std::unique_ptr<rpc::RpcServer> coordinator_server_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<rpc::RpcServer> broker_server_;
  rpc::IoThread client_io_;
  std::shared_ptr<rpc::RpcClient> coordinator_client_;
  std::shared_ptr<rpc::RpcClient> broker_client_;
};

using Ack4 = std::tuple<int64_t, int32_t, proto::QueueAckType, int64_t>;

TEST_F(QueueBrokerTest, ReceiveAckNackReleaseDescribe) {
  CreateTopic("q", 1);
  Produce("q", 0, {{"k0", "v0", {{"h", "x"}}}, {"k1", "v1", {}}, {"k2", "v2", {}}});
  ProduceN("q", 2, "w");  // offsets 3, 4

  auto a = Receive(ReceiveReq("q", "c1", 3));
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].offset, 0);
  EXPECT_EQ(a[0].key, "k0");
  EXPECT_EQ(a[0].value, "v0");
  ASSERT_EQ(a[0].headers.size(), 1u);
  EXPECT_EQ(a[0].headers[0].first, "h");
  EXPECT_EQ(a[2].offset, 2);
  for (const auto& r : a) EXPECT_EQ(r.count, 1);
  auto b = Receive(ReceiveReq("q", "c2"));
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].offset, 3);
  EXPECT_EQ(b[0].value, "w0");
  EXPECT_TRUE(Receive(ReceiveReq("q", "c3")).empty());

  auto codes = Ack("q", {Ack4{0, 1, proto::QUEUE_ACK, 0}, Ack4{1, 1, proto::QUEUE_ACK, 0},
                         Ack4{0, 1, proto::QUEUE_ACK, 0}, Ack4{2, 2, proto::QUEUE_ACK, 0},
                         Ack4{2, 1, proto::QUEUE_NACK, 0}, Ack4{3, 1, proto::QUEUE_RELEASE, 0},
                         Ack4{77, 1, proto::QUEUE_ACK, 0}});
  EXPECT_EQ(codes, (std::vector<proto::ErrorCode>{proto::NONE, proto::NONE, proto::QUEUE_ALREADY_ACKED,
                                                  proto::QUEUE_DELIVERY_EXPIRED, proto::NONE, proto::NONE,
                                                  proto::QUEUE_NOT_DELIVERED}));
  auto c = Receive(ReceiveReq("q", "c1"));
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].offset, 2);
  EXPECT_EQ(c[0].count, 2);  // nacked: a redelivery
  EXPECT_EQ(c[1].offset, 3);
  EXPECT_EQ(c[1].count, 1);  // released: not counted

  proto::QueuePartitionState st = Describe("q");
  EXPECT_EQ(st.error_code(), proto::NONE) << st.error_message();
  EXPECT_EQ(st.ack_floor(), 2);
  EXPECT_EQ(st.read_offset(), 5);
  EXPECT_EQ(st.high_watermark(), 5);
  EXPECT_EQ(st.in_flight(), 3);
  EXPECT_EQ(st.backlog(), 3);
  EXPECT_EQ(st.acked(), 2);
  EXPECT_EQ(st.redeliveries(), 1);
  EXPECT_EQ(st.consumers(), 3);

  EXPECT_EQ(Ack("q", {Ack4{2, 2, proto::QUEUE_ACK, 0}, Ack4{3, 1, proto::QUEUE_ACK, 0},
                      Ack4{4, 1, proto::QUEUE_ACK, 0}}),
            (std::vector<proto::ErrorCode>{proto::NONE, proto::NONE, proto::NONE}));
  st = Describe("q");
  EXPECT_EQ(st.ack_floor(), 5);
  EXPECT_EQ(st.backlog(), 0);
}

TEST_F(QueueBrokerTest, LongPollWokenByAppendAndByDelay) {
  CreateTopic("lp", 1);
  EXPECT_TRUE(Receive(ReceiveReq("lp", "c")).empty());  // creates the subscription at the end
  std::promise<absl::StatusOr<rpc::Response>> done;
  auto start = std::chrono::steady_clock::now();
  broker_client_->Call(proto::API_QUEUE_RECEIVE, 0, ReceiveReq("lp", "c", 10, 8000), {}, 15s,
                       [&done](absl::StatusOr<rpc::Response> r) { done.set_value(std::move(r)); });
  std::this_thread::sleep_for(200ms);
  auto f = done.get_future();
  EXPECT_EQ(f.wait_for(0ms), std::future_status::timeout);
  ProduceN("lp", 1);
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  auto r = f.get();
  ASSERT_TRUE(r.ok()) << r.status();
  proto::QueueReceiveResponse resp;
  ASSERT_TRUE(resp.ParseFromString(r->header));
  auto got = Decode(resp, r->payload);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].offset, 0);

  // A record delayed by 400 ms: a parked receive gets it when it is due.
  const int64_t at = absl::ToUnixMillis(absl::Now()) + 400;
  Produce("lp", 0, {{"d", "delayed", {{"brook-deliver-at", std::to_string(at)}}}});
  start = std::chrono::steady_clock::now();
  auto delayed = Receive(ReceiveReq("lp", "c", 10, 5000));
  ASSERT_EQ(delayed.size(), 1u);
  EXPECT_EQ(delayed[0].value, "delayed");
  EXPECT_GE(absl::ToUnixMillis(absl::Now()), at);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(QueueBrokerTest, TagFilterAndInvalidFilter) {
  CreateTopic("tags", 1);
  Produce("tags", 0, {{"a", "1", {{"brook-tags", "red"}}},
                      {"b", "2", {{"brook-tags", "green"}}},
                      {"c", "3", {}},
                      {"d", "4", {{"brook-tags", "x, blue"}}}});
  auto req = ReceiveReq("tags", "c");
  req.mutable_config()->set_filter("red || blue");
  auto got = Receive(req);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].offset, 0);
  EXPECT_EQ(got[1].offset, 3);
  EXPECT_EQ(Describe("tags").filtered(), 2);

  req.mutable_config()->set_filter("red &&");
  proto::QueueReceiveResponse resp;
  auto r = broker_client_->CallSync(proto::API_QUEUE_RECEIVE, 0, req, {}, &resp, 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToErrorCode(r.status()), proto::INVALID_FILTER);
}

TEST_F(QueueBrokerTest, MaxDeliveriesDeadLettersToTopic) {
  CreateTopic("work", 1);
  Produce("work", 0, {{"key-1", "payload", {{"orig", "yes"}}}, {"key-2", "fine", {}}});
  auto req = ReceiveReq("work", "c");
  req.mutable_config()->set_max_deliveries(1);
  auto got = Receive(req);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(Ack("work", {Ack4{0, 1, proto::QUEUE_NACK, 0}, Ack4{1, 1, proto::QUEUE_ACK, 0}}),
            (std::vector<proto::ErrorCode>{proto::NONE, proto::NONE}));
  // The worker writes it to g-dlq (created on the fly) and only then counts
  // it as handled.
  proto::QueuePartitionState st;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    st = Describe("work");
    if (st.dead_lettered() == 1) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(st.dead_lettered(), 1) << st.DebugString();
  EXPECT_EQ(st.ack_floor(), 2);
  EXPECT_TRUE(Receive(req).empty());

  WaitHosted("g-dlq", 1);
  proto::FetchRequest freq;
  freq.set_max_bytes(1 << 20);
  freq.set_replica_id(-1);
  auto* fp = freq.add_partitions();
  fp->set_topic("g-dlq");
  fp->set_partition(0);
  fp->set_fetch_offset(0);
  fp->set_max_bytes(1 << 20);
  proto::FetchResponse fresp;
  auto f = broker_client_->CallSync(proto::API_FETCH, 0, freq, {}, &fresp, 5s);
  ASSERT_TRUE(f.ok()) << f.status();
  auto batches = SplitBatches(*f);
  ASSERT_TRUE(batches.ok());
  ASSERT_EQ(batches->size(), 1u);
  RecordReader reader;
  std::vector<RecordView> records;
  ASSERT_TRUE(reader.Read((*batches)[0], &records).ok());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].key, "key-1");
  EXPECT_EQ(records[0].value, "payload");
  std::map<std::string, std::string> h;
  for (const auto& hv : records[0].headers) h[std::string(hv.key)] = std::string(hv.value.value_or(""));
  EXPECT_EQ(h["orig"], "yes");
  EXPECT_EQ(h["brook-dlq-topic"], "work");
  EXPECT_EQ(h["brook-dlq-partition"], "0");
  EXPECT_EQ(h["brook-dlq-offset"], "0");
  EXPECT_EQ(h["brook-dlq-group"], "g");
  EXPECT_EQ(h["brook-dlq-reason"], "nacked");
  EXPECT_EQ(h["brook-dlq-delivery-count"], "1");
}

TEST_F(QueueBrokerTest, BadInputIsRefusedAndServerKeepsServing) {
  CreateTopic("bad", 1);
  proto::QueueReceiveResponse resp;
  // Unparsable header.
  proto::MetadataRequest not_a_receive;
  not_a_receive.add_topics(std::string(100, '\xff'));
  auto r = broker_client_->CallSync(proto::API_QUEUE_RECEIVE, 0, not_a_receive, {}, &resp, 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToErrorCode(r.status()), proto::INVALID_REQUEST);
  // Empty group.
  auto req = ReceiveReq("bad", "c");
  req.set_group("");
  r = broker_client_->CallSync(proto::API_QUEUE_RECEIVE, 0, req, {}, &resp, 5s);
  EXPECT_EQ(ToErrorCode(r.status()), proto::INVALID_REQUEST);
  // No partitions.
  req = ReceiveReq("bad", "c");
  req.clear_partitions();
  r = broker_client_->CallSync(proto::API_QUEUE_RECEIVE, 0, req, {}, &resp, 5s);
  EXPECT_EQ(ToErrorCode(r.status()), proto::INVALID_REQUEST);
  // A partition that does not exist: a per-partition error.
  req = ReceiveReq("bad", "c");
  req.add_partitions(7);
  r = broker_client_->CallSync(proto::API_QUEUE_RECEIVE, 0, req, {}, &resp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(resp.partition_errors_size(), 1);
  EXPECT_EQ(resp.partition_errors(0).partition(), 7);
  EXPECT_EQ(resp.partition_errors(0).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
  // Too many ack entries.
  proto::QueueAckRequest ack;
  ack.set_group("g");
  ack.set_topic("bad");
  for (int i = 0; i < 10001; ++i) ack.add_entries()->set_offset(i);
  proto::QueueAckResponse aresp;
  r = broker_client_->CallSync(proto::API_QUEUE_ACK, 0, ack, {}, &aresp, 5s);
  EXPECT_EQ(ToErrorCode(r.status()), proto::INVALID_REQUEST);
  // Acks of an unknown subscription.
  ack.clear_entries();
  ack.set_group("nobody");
  ack.add_entries()->set_offset(0);
  r = broker_client_->CallSync(proto::API_QUEUE_ACK, 0, ack, {}, &aresp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(aresp.results_size(), 1);
  EXPECT_EQ(aresp.results(0).error_code(), proto::QUEUE_NOT_DELIVERED);
  // Describe of an unknown subscription.
  proto::QueueDescribeRequest dreq;
  dreq.set_group("nobody");
  dreq.set_topic("bad");
  proto::QueueDescribeResponse dresp;
  ASSERT_TRUE(broker_client_->CallSync(proto::API_QUEUE_DESCRIBE, 0, dreq, {}, &dresp, 5s).ok());
  ASSERT_EQ(dresp.partitions_size(), 1);
  EXPECT_EQ(dresp.partitions(0).error_code(), proto::GROUP_ID_NOT_FOUND);
  // Still serving.
  ProduceN("bad", 1);
  EXPECT_EQ(Receive(ReceiveReq("bad", "c")).size(), 1u);
}

TEST_F(QueueBrokerTest, RestartDoesNotRedeliverAckedRecords) {
  ack_timeout_ms_ = 500;
  CreateTopic("dur", 1);
  ProduceN("dur", 10);
  auto got = Receive(ReceiveReq("dur", "c"));
  ASSERT_EQ(got.size(), 10u);
  std::vector<Ack4> acks;
  for (int64_t o = 0; o < 10; o += 2) acks.emplace_back(o, 1, proto::QUEUE_ACK, 0);
  ASSERT_EQ(Ack("dur", acks), std::vector<proto::ErrorCode>(5, proto::NONE));

  StopBroker();
  StartBroker();
  WaitHosted("dur", 1);
  // A delivery made before the restart can still be acked (count 1), and an
  // acked one is still acked.
  EXPECT_EQ(Ack("dur", {Ack4{9, 1, proto::QUEUE_ACK, 0}, Ack4{8, 1, proto::QUEUE_ACK, 0}}),
            (std::vector<proto::ErrorCode>{proto::NONE, proto::QUEUE_ALREADY_ACKED}));

  // The odd records were in flight: after their ack timeout they come back
  // (count 2); the acked ones never do.
  std::set<int64_t> seen;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (seen.size() < 4 && std::chrono::steady_clock::now() < deadline) {
    for (const auto& r : Receive(ReceiveReq("dur", "c2", 100, 1000))) {
      EXPECT_EQ(r.offset % 2, 1) << "acked record " << r.offset << " redelivered";
      EXPECT_EQ(r.count, 2);
      seen.insert(r.offset);
    }
  }
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3, 5, 7}));
  proto::QueuePartitionState st = Describe("dur");
  EXPECT_EQ(st.acked(), 6);
  EXPECT_EQ(st.ack_floor(), 1);
}

}  // namespace
}  // namespace brook::broker

namespace brook::broker {
namespace {

TEST_F(QueueBrokerTest, AckFloorIsCommittedAndSeedsNewSubscriptions) {
  CreateTopic("commit", 1);
  ProduceN("commit", 6);
  auto got = Receive(ReceiveReq("commit", "c"));
  ASSERT_EQ(got.size(), 6u);
  ASSERT_EQ(Ack("commit", {Ack4{0, 1, proto::QUEUE_ACK, 0}, Ack4{1, 1, proto::QUEUE_ACK, 0},
                           Ack4{2, 1, proto::QUEUE_ACK, 0}, Ack4{4, 1, proto::QUEUE_ACK, 0}}),
            std::vector<proto::ErrorCode>(4, proto::NONE));
  // Within about a second the floor (3) is the group's committed offset.
  proto::OffsetFetchRequest freq;
  freq.set_group_id("g");
  auto* fp = freq.add_partitions();
  fp->set_topic("commit");
  fp->set_partition(0);
  int64_t committed = -1;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (committed != 3 && std::chrono::steady_clock::now() < deadline) {
    proto::OffsetFetchResponse fresp;
    auto r = coordinator_client_->CallSync(proto::API_OFFSET_FETCH, 0, freq, {}, &fresp, 5s);
    if (r.ok() && fresp.partitions_size() == 1) committed = fresp.partitions(0).offset();
    if (committed != 3) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(committed, 3);

  // A group with a committed offset and no journal starts there.
  proto::OffsetCommitRequest creq;
  creq.set_group_id("fresh");
  creq.set_generation_id(-1);
  auto* cp = creq.add_partitions();
  cp->set_topic("commit");
  cp->set_partition(0);
  cp->set_offset(4);
  cp->set_leader_epoch(-1);
  proto::OffsetCommitResponse cresp;
  auto r = coordinator_client_->CallSync(proto::API_OFFSET_COMMIT, 0, creq, {}, &cresp, 5s);
  ASSERT_TRUE(r.ok()) << r.status();
  auto req = ReceiveReq("commit", "c");
  req.set_group("fresh");
  got = Receive(req);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].offset, 4);
}

}  // namespace
}  // namespace brook::broker

namespace brook::broker {
namespace {

// Regression: a receive naming several new subscriptions used to deliver
// from the ones created first and then drop the response while waiting for
// the others, leaving those records in flight until their ack timeout.
TEST_F(QueueBrokerTest, FirstReceiveOverSeveralNewSubscriptionsLosesNoDeliveries) {
  CreateTopic("multi", 3);
  for (int32_t p = 0; p < 3; ++p) {
    Produce("multi", p, {{"a", absl::StrCat("p", p, "-0"), {}}, {"b", absl::StrCat("p", p, "-1"), {}}});
  }
  auto req = ReceiveReq("multi", "c", 100, 200);
  req.add_partitions(1);
  req.add_partitions(2);
  std::set<std::string> values;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (values.size() < 6 && std::chrono::steady_clock::now() < deadline) {
    proto::QueueReceiveResponse resp;
    auto r = broker_client_->CallSync(proto::API_QUEUE_RECEIVE, 0, req, {}, &resp, 10s);
    ASSERT_TRUE(r.ok()) << r.status();
    for (const auto& got : Decode(resp, *r)) values.insert(got.value);
  }
  EXPECT_EQ(values.size(), 6u);
}

}  // namespace
}  // namespace brook::broker
