// Coordinator APIs through a real RpcServer and RpcClient on a loopback port.
#include "coordinator/coordinator.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "boost/asio/connect.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/rpc/client.h"
#include "gtest/gtest.h"

namespace brook::coordinator {
namespace {

using namespace std::chrono_literals;
using proto::ErrorCode;

constexpr auto kTimeout = 5000ms;

// A blocking HTTP/1.0 GET against 127.0.0.1:port; returns the whole response.
std::string HttpGet(uint16_t port, const std::string& path) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return "connect failed: " + ec.message();
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  boost::asio::write(socket, boost::asio::buffer(request), ec);
  if (ec) return "write failed: " + ec.message();
  std::string response;
  boost::asio::read(socket, boost::asio::dynamic_buffer(response), ec);  // until EOF
  return response;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/coord-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    options_.data_dir = dir_;
    options_.default_partitions = 2;
    options_.broker_lease_ms = 10000;
  }

  void TearDown() override {
    Stop();
    work_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
    std::filesystem::remove_all(dir_);
  }

  void Start() {
    auto c = Coordinator::Open(storage::DefaultFileSystem(), nullptr, options_, io_);
    ASSERT_TRUE(c.ok()) << c.status();
    coord_ = std::move(*c);
    server_ = std::make_unique<rpc::RpcServer>(io_, "coordinator");
    coord_->RegisterApis(*server_);
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    coord_->SetAdvertisedAddress("127.0.0.1", server_->port());
    auto client = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", server_->port());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *client;
  }

  void Stop() {
    if (client_) client_->Close();
    client_.reset();
    if (server_) server_->Stop();
    if (coord_) {
      EXPECT_TRUE(coord_->Close().ok());
    }
    coord_.reset();
    server_.reset();
  }

  absl::StatusOr<proto::TopicDescription> Create(const std::string& name, int32_t partitions = 0,
                                                 int32_t rf = 0,
                                                 proto::TopicConfig config = {}) {
    proto::CreateTopicRequest req;
    req.set_topic(name);
    req.set_partitions(partitions);
    req.set_replication_factor(rf);
    *req.mutable_config() = config;
    proto::CreateTopicResponse resp;
    auto r = client_->CallSync(proto::API_CREATE_TOPIC, 0, req, {}, &resp, kTimeout);
    if (!r.ok()) return r.status();
    return resp.topic();
  }

  absl::StatusOr<proto::TopicDescription> Describe(const std::string& name) {
    proto::DescribeTopicRequest req;
    req.set_topic(name);
    proto::DescribeTopicResponse resp;
    auto r = client_->CallSync(proto::API_DESCRIBE_TOPIC, 0, req, {}, &resp, kTimeout);
    if (!r.ok()) return r.status();
    return resp.topic();
  }

  absl::Status Delete(const std::string& name) {
    proto::DeleteTopicRequest req;
    req.set_topic(name);
    proto::DeleteTopicResponse resp;
    return client_->CallSync(proto::API_DELETE_TOPIC, 0, req, {}, &resp, kTimeout).status();
  }

  std::vector<proto::TopicDescription> List() {
    proto::ListTopicsResponse resp;
    auto r = client_->CallSync(proto::API_LIST_TOPICS, 0, proto::ListTopicsRequest(), {}, &resp,
                               kTimeout);
    EXPECT_TRUE(r.ok()) << r.status();
    return {resp.topics().begin(), resp.topics().end()};
  }

  static proto::BrokerHeartbeatRequest HeartbeatReq(int32_t id, int64_t epoch, int32_t port = 0) {
    proto::BrokerHeartbeatRequest req;
    req.mutable_broker()->set_broker_id(id);
    req.mutable_broker()->set_host("127.0.0.1");
    req.mutable_broker()->set_port(port == 0 ? 9000 + id : port);
    req.set_broker_epoch(epoch);
    req.set_known_metadata_offset(-1);
    return req;
  }

  absl::StatusOr<proto::BrokerHeartbeatResponse> Heartbeat(const proto::BrokerHeartbeatRequest& req) {
    proto::BrokerHeartbeatResponse resp;
    auto r = client_->CallSync(proto::API_BROKER_HEARTBEAT, 0, req, {}, &resp, kTimeout);
    if (!r.ok()) return r.status();
    return resp;
  }

  // Registers brokers 1..n.
  void RegisterBrokers(int n) {
    for (int i = 1; i <= n; ++i) {
      auto r = Heartbeat(HeartbeatReq(i, 0));
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }

  // Sends a heartbeat without waiting; the future gets the parsed response.
  std::future<absl::StatusOr<proto::BrokerHeartbeatResponse>> HeartbeatAsync(
      const proto::BrokerHeartbeatRequest& req, std::chrono::milliseconds timeout) {
    auto promise =
        std::make_shared<std::promise<absl::StatusOr<proto::BrokerHeartbeatResponse>>>();
    auto future = promise->get_future();
    client_->Call(proto::API_BROKER_HEARTBEAT, 0, req, {}, timeout,
                  [promise](absl::StatusOr<rpc::Response> r) {
                    if (!r.ok()) {
                      promise->set_value(r.status());
                      return;
                    }
                    if (absl::Status s = rpc::ResponseStatus(*r); !s.ok()) {
                      promise->set_value(s);
                      return;
                    }
                    proto::BrokerHeartbeatResponse resp;
                    if (!resp.ParseFromString(r->header)) {
                      promise->set_value(absl::InternalError("unparsable response"));
                      return;
                    }
                    promise->set_value(resp);
                  });
    return future;
  }

  absl::StatusOr<proto::AlterIsrResponse> AlterIsr(const proto::AlterIsrRequest& req) {
    proto::AlterIsrResponse resp;
    auto r = client_->CallSync(proto::API_ALTER_ISR, 0, req, {}, &resp, kTimeout);
    if (!r.ok()) return r.status();
    return resp;
  }

  absl::StatusOr<proto::BrokerShutdownResponse> Shutdown(int32_t id, int64_t epoch) {
    proto::BrokerShutdownRequest req;
    req.set_broker_id(id);
    req.set_broker_epoch(epoch);
    proto::BrokerShutdownResponse resp;
    auto r = client_->CallSync(proto::API_BROKER_SHUTDOWN, 0, req, {}, &resp, kTimeout);
    if (!r.ok()) return r.status();
    return resp;
  }

  absl::StatusOr<proto::DescribeClusterResponse> DescribeCluster() {
    proto::DescribeClusterResponse resp;
    auto r = client_->CallSync(proto::API_DESCRIBE_CLUSTER, 0, proto::DescribeClusterRequest(),
                               {}, &resp, kTimeout);
    if (!r.ok()) return r.status();
    return resp;
  }

  // Registers broker `id` and returns its epoch.
  int64_t Register(int32_t id) {
    auto r = Heartbeat(HeartbeatReq(id, 0));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->broker_epoch() : -1;
  }

  std::string dir_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
  rpc::IoThread client_io_;
  CoordinatorOptions options_;
  std::unique_ptr<Coordinator> coord_;
  std::unique_ptr<rpc::RpcServer> server_;
  std::shared_ptr<rpc::RpcClient> client_;
};

TEST_F(CoordinatorTest, CreateDescribeListDelete) {
  Start();
  RegisterBrokers(1);
  auto created = Create("orders", 3);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->name(), "orders");
  EXPECT_EQ(created->topic_id().size(), 32u);
  ASSERT_EQ(created->partitions_size(), 3);
  for (int p = 0; p < 3; ++p) {
    const auto& part = created->partitions(p);
    EXPECT_EQ(part.partition(), p);
    EXPECT_EQ(part.leader(), 1);
    EXPECT_EQ(part.leader_epoch(), 0);
    ASSERT_EQ(part.replicas_size(), 1);
    EXPECT_EQ(part.replicas(0), 1);
    ASSERT_EQ(part.isr_size(), 1);
  }
  auto described = Describe("orders");
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->SerializeAsString(), created->SerializeAsString());

  auto second = Create("payments");  // default partitions
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->partitions_size(), 2);
  EXPECT_NE(second->topic_id(), created->topic_id());
  auto list = List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name(), "orders");
  EXPECT_EQ(list[1].name(), "payments");

  ASSERT_TRUE(Delete("orders").ok());
  EXPECT_EQ(ToErrorCode(Describe("orders").status()), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(ToErrorCode(Delete("orders")), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(List().size(), 1u);

  // A re-created topic is a new incarnation.
  auto again = Create("orders", 1);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(again->topic_id(), created->topic_id());
}

TEST_F(CoordinatorTest, InvalidTopicNames) {
  Start();
  RegisterBrokers(1);
  for (const std::string& bad : {std::string(), std::string("."), std::string(".."),
                                 std::string("a b"), std::string("a/b"), std::string("é"),
                                 std::string(250, 'x')}) {
    EXPECT_EQ(ToErrorCode(Create(bad).status()), ErrorCode::INVALID_TOPIC) << bad;
  }
  EXPECT_TRUE(Create(std::string(249, 'x')).ok());
  EXPECT_TRUE(Create("Aa.b_c-9").ok());
  EXPECT_TRUE(Create("...").ok());
}

TEST_F(CoordinatorTest, InvalidPartitions) {
  Start();
  RegisterBrokers(1);
  EXPECT_EQ(ToErrorCode(Create("t", -1).status()), ErrorCode::INVALID_PARTITIONS);
  EXPECT_EQ(ToErrorCode(Create("t", 10001).status()), ErrorCode::INVALID_PARTITIONS);
  auto max = Create("t", 10000);
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(max->partitions_size(), 10000);
}

TEST_F(CoordinatorTest, NoLiveBrokersIsRetriable) {
  Start();
  auto r = Create("t");
  EXPECT_EQ(ToErrorCode(r.status()), ErrorCode::BROKER_NOT_AVAILABLE);
  EXPECT_TRUE(IsRetriable(ToErrorCode(r.status())));
  RegisterBrokers(1);
  EXPECT_TRUE(Create("t").ok());
}

TEST_F(CoordinatorTest, ReplicationFactorAboveLiveBrokers) {
  Start();
  RegisterBrokers(2);
  auto r = Create("t", 1, 3);
  EXPECT_EQ(ToErrorCode(r.status()), ErrorCode::INVALID_REPLICATION_FACTOR);
  EXPECT_NE(r.status().message().find("live"), absl::string_view::npos) << r.status();
  EXPECT_EQ(ToErrorCode(Create("t", 1, -1).status()), ErrorCode::INVALID_REPLICATION_FACTOR);
  EXPECT_TRUE(Create("t", 1, 2).ok());
}

TEST_F(CoordinatorTest, InvalidTopicConfig) {
  Start();
  RegisterBrokers(1);
  proto::TopicConfig c;
  c.set_segment_bytes(-1);
  EXPECT_EQ(ToErrorCode(Create("t", 1, 1, c).status()), ErrorCode::INVALID_CONFIG);
  c.Clear();
  c.set_retention_ms(-2);
  EXPECT_EQ(ToErrorCode(Create("t", 1, 1, c).status()), ErrorCode::INVALID_CONFIG);
  c.Clear();
  c.set_min_insync_replicas(2);
  EXPECT_EQ(ToErrorCode(Create("t", 1, 1, c).status()), ErrorCode::INVALID_CONFIG);
  c.Clear();
  c.set_max_message_bytes(0);
  EXPECT_EQ(ToErrorCode(Create("t", 1, 1, c).status()), ErrorCode::INVALID_CONFIG);
  c.Clear();
  c.set_retention_ms(-1);
  c.set_flush_policy(proto::FLUSH_OS);
  auto ok = Create("t", 1, 1, c);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->config().retention_ms(), -1);
  EXPECT_EQ(ok->config().flush_policy(), proto::FLUSH_OS);
}

TEST_F(CoordinatorTest, DefaultConfigIsMergedUnderRequest) {
  options_.default_topic_config.set_segment_bytes(1 << 20);
  options_.default_topic_config.set_retention_ms(5000);
  Start();
  RegisterBrokers(1);
  proto::TopicConfig c;
  c.set_retention_ms(7000);
  auto t = Create("t", 1, 1, c);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->config().segment_bytes(), 1 << 20);
  EXPECT_EQ(t->config().retention_ms(), 7000);
}

TEST_F(CoordinatorTest, TopicAlreadyExists) {
  Start();
  RegisterBrokers(1);
  ASSERT_TRUE(Create("t").ok());
  EXPECT_EQ(ToErrorCode(Create("t").status()), ErrorCode::TOPIC_ALREADY_EXISTS);
}

TEST_F(CoordinatorTest, PlacementSpreadsReplicasAndLeaders) {
  Start();
  RegisterBrokers(3);
  auto t = Create("t", 6, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  std::map<int32_t, int> leaders;
  std::map<int32_t, int> replicas;
  for (const auto& p : t->partitions()) {
    ASSERT_EQ(p.replicas_size(), 2);
    EXPECT_NE(p.replicas(0), p.replicas(1));
    EXPECT_EQ(p.leader(), p.replicas(0));
    EXPECT_EQ(p.isr_size(), 2);
    ++leaders[p.leader()];
    for (int32_t r : p.replicas()) ++replicas[r];
  }
  EXPECT_EQ(leaders, (std::map<int32_t, int>{{1, 2}, {2, 2}, {3, 2}}));
  EXPECT_EQ(replicas, (std::map<int32_t, int>{{1, 4}, {2, 4}, {3, 4}}));
  // The starting broker rotates between topics.
  auto u = Create("u", 1, 1);
  auto v = Create("v", 1, 1);
  ASSERT_TRUE(u.ok() && v.ok());
  EXPECT_NE(u->partitions(0).leader(), v->partitions(0).leader());
}

TEST_F(CoordinatorTest, HeartbeatRegistersAndReturnsAssignments) {
  Start();
  auto first = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GT(first->broker_epoch(), 0);
  EXPECT_EQ(first->lease_ms(), 10000);
  EXPECT_TRUE(first->assignments().empty());
  ASSERT_EQ(first->brokers_size(), 1);
  EXPECT_EQ(first->brokers(0).broker_id(), 1);
  ASSERT_EQ(first->coordinators_size(), 1);
  EXPECT_EQ(first->coordinators(0).coordinator_id(), 1);
  EXPECT_EQ(first->coordinators(0).port(), server_->port());
  EXPECT_TRUE(first->coordinators(0).leader());
  RegisterBrokers(2);  // broker 1 re-registers with epoch 0, broker 2 joins

  proto::TopicConfig c;
  c.set_retention_ms(60000);
  ASSERT_TRUE(Create("t", 2, 2, c).ok());
  ASSERT_TRUE(Create("solo", 4, 1).ok());

  auto b1 = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(b1.ok());
  const int64_t epoch = b1->broker_epoch();
  EXPECT_GT(epoch, first->broker_epoch());
  // Same epoch and address: a renewal, not a new registration.
  auto renewed = Heartbeat(HeartbeatReq(1, epoch));
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->broker_epoch(), epoch);
  EXPECT_EQ(renewed->metadata_offset(), b1->metadata_offset());
  EXPECT_EQ(renewed->metadata_offset(), coord_->metadata_offset().value());
  int t_count = 0, solo_count = 0;
  for (const auto& a : renewed->assignments()) {
    EXPECT_NE(std::find(a.replicas().begin(), a.replicas().end(), 1), a.replicas().end());
    EXPECT_EQ(a.topic_id().size(), 32u);
    if (a.topic() == "t") {
      ++t_count;
      EXPECT_EQ(a.config().retention_ms(), 60000);
      EXPECT_EQ(a.replicas_size(), 2);
    } else {
      ++solo_count;
    }
  }
  EXPECT_EQ(t_count, 2);
  EXPECT_EQ(solo_count, 2);  // 4 partitions over 2 brokers

  // A changed address is a new registration.
  auto moved = Heartbeat(HeartbeatReq(1, epoch, 9999));
  ASSERT_TRUE(moved.ok());
  EXPECT_GT(moved->broker_epoch(), epoch);
  EXPECT_GT(moved->metadata_offset(), renewed->metadata_offset());
}

TEST_F(CoordinatorTest, HeartbeatRejectsBadBroker) {
  Start();
  auto req = HeartbeatReq(1, 0);
  req.mutable_broker()->set_host("");
  EXPECT_EQ(ToErrorCode(Heartbeat(req).status()), ErrorCode::INVALID_REQUEST);
  req = HeartbeatReq(-1, 0);
  EXPECT_EQ(ToErrorCode(Heartbeat(req).status()), ErrorCode::INVALID_REQUEST);
}

TEST_F(CoordinatorTest, LongPollHeartbeatWakesOnTopicCreation) {
  Start();
  auto reg = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(reg.ok());
  auto req = HeartbeatReq(1, reg->broker_epoch());
  req.set_known_metadata_offset(reg->metadata_offset());
  req.set_max_wait_ms(20000);
  const auto start = std::chrono::steady_clock::now();
  auto pending = HeartbeatAsync(req, 30000ms);
  EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);  // parked
  ASSERT_TRUE(Create("t", 1, 1).ok());
  ASSERT_EQ(pending.wait_for(5000ms), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  auto resp = pending.get();
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_GT(resp->metadata_offset(), reg->metadata_offset());
  ASSERT_EQ(resp->assignments_size(), 1);
  EXPECT_EQ(resp->assignments(0).topic(), "t");
}

TEST_F(CoordinatorTest, LongPollHeartbeatAnswersAfterMaxWait) {
  Start();
  auto reg = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(reg.ok());
  auto req = HeartbeatReq(1, reg->broker_epoch());
  req.set_known_metadata_offset(reg->metadata_offset());
  req.set_max_wait_ms(300);
  const auto start = std::chrono::steady_clock::now();
  auto resp = HeartbeatAsync(req, 5000ms).get();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_GE(elapsed, 290ms);
  EXPECT_LT(elapsed, 3000ms);
  EXPECT_EQ(resp->metadata_offset(), reg->metadata_offset());
  EXPECT_EQ(resp->broker_epoch(), reg->broker_epoch());

  // An older known offset is answered at once.
  req.set_known_metadata_offset(reg->metadata_offset() - 1);
  req.set_max_wait_ms(20000);
  auto quick = HeartbeatAsync(req, 5000ms);
  ASSERT_EQ(quick.wait_for(2000ms), std::future_status::ready);
  EXPECT_TRUE(quick.get().ok());
}

TEST_F(CoordinatorTest, LongPollIsCappedAtAThirdOfTheLease) {
  options_.broker_lease_ms = 600;
  Start();
  auto reg = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(reg.ok());
  auto req = HeartbeatReq(1, reg->broker_epoch());
  req.set_known_metadata_offset(reg->metadata_offset());
  req.set_max_wait_ms(20000);
  const auto start = std::chrono::steady_clock::now();
  auto pending = HeartbeatAsync(req, 30000ms);
  ASSERT_EQ(pending.wait_for(3000ms), std::future_status::ready);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 190ms);
  EXPECT_LT(elapsed, 400ms);
  auto resp = pending.get();
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->metadata_offset(), reg->metadata_offset());
}

TEST_F(CoordinatorTest, CloseFailsParkedHeartbeats) {
  Start();
  auto reg = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(reg.ok());
  auto req = HeartbeatReq(1, reg->broker_epoch());
  req.set_known_metadata_offset(reg->metadata_offset());
  req.set_max_wait_ms(20000);
  auto pending = HeartbeatAsync(req, 30000ms);
  EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);
  ASSERT_TRUE(coord_->Close().ok());
  ASSERT_EQ(pending.wait_for(5000ms), std::future_status::ready);
  EXPECT_EQ(ToErrorCode(pending.get().status()), ErrorCode::SHUTTING_DOWN);
  EXPECT_EQ(ToErrorCode(Create("t").status()), ErrorCode::SHUTTING_DOWN);
}

TEST_F(CoordinatorTest, RestartKeepsTopicsAndBrokers) {
  Start();
  auto reg = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(reg.ok());
  auto created = Create("kept", 3);
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE(Create("gone", 1).ok());
  ASSERT_TRUE(Delete("gone").ok());
  const Offset offset = coord_->metadata_offset();
  Stop();

  Start();
  EXPECT_EQ(coord_->metadata_offset(), offset);
  auto described = Describe("kept");
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->SerializeAsString(), created->SerializeAsString());
  EXPECT_EQ(ToErrorCode(Describe("gone").status()), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  // A new leader gives every registered, unfenced broker a fresh lease.
  auto renewed = Heartbeat(HeartbeatReq(1, reg->broker_epoch()));
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->broker_epoch(), reg->broker_epoch());
  EXPECT_EQ(renewed->metadata_offset(), offset.value());
  EXPECT_EQ(renewed->assignments_size(), 3);
  EXPECT_TRUE(Create("new").ok());
}

TEST_F(CoordinatorTest, LapsedLeaseMakesBrokerUnavailableForPlacement) {
  options_.broker_lease_ms = 150;
  Start();
  RegisterBrokers(1);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(ToErrorCode(Create("t").status()), ErrorCode::BROKER_NOT_AVAILABLE);
  RegisterBrokers(1);
  EXPECT_TRUE(Create("t").ok());
}

TEST_F(CoordinatorTest, ConcurrentCreatesOfOneNameYieldOneTopic) {
  Start();
  RegisterBrokers(1);
  std::vector<std::future<absl::StatusOr<proto::TopicDescription>>> results;
  for (int i = 0; i < 8; ++i) {
    results.push_back(std::async(std::launch::async, [this] { return Create("race", 1); }));
  }
  int ok = 0, exists = 0;
  for (auto& f : results) {
    auto r = f.get();
    if (r.ok()) ++ok;
    if (ToErrorCode(r.status()) == ErrorCode::TOPIC_ALREADY_EXISTS) ++exists;
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(exists, 7);
}

TEST_F(CoordinatorTest, AdminRoutesServeJson) {
  Start();
  http::AdminServer admin(io_);
  coord_->RegisterAdmin(admin);
  ASSERT_TRUE(admin.Listen("127.0.0.1:0").ok());
  RegisterBrokers(2);
  ASSERT_TRUE(Create("audit-log", 2, 2).ok());

  const std::string topics = HttpGet(admin.port(), "/admin/topics");
  EXPECT_NE(topics.find("200 OK"), std::string::npos) << topics;
  EXPECT_NE(topics.find("application/json"), std::string::npos) << topics;
  EXPECT_NE(topics.find("\"name\":\"audit-log\""), std::string::npos) << topics;
  EXPECT_NE(topics.find("\"replicas\":[1,2]"), std::string::npos) << topics;

  const std::string brokers = HttpGet(admin.port(), "/admin/brokers");
  EXPECT_NE(brokers.find("200 OK"), std::string::npos) << brokers;
  EXPECT_NE(brokers.find("\"broker_id\":2"), std::string::npos) << brokers;
  EXPECT_NE(brokers.find("\"live\":true"), std::string::npos) << brokers;
  admin.Stop();
}


TEST_F(CoordinatorTest, AlterIsrChecksBrokerEpochAndCommits) {
  Start();
  const int64_t e1 = Register(1);
  const int64_t e2 = Register(2);
  auto t = Create("t", 1, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  const int32_t leader = t->partitions(0).leader();
  const int32_t other = leader == 1 ? 2 : 1;
  const int64_t leader_epoch_of_broker = leader == 1 ? e1 : e2;

  proto::AlterIsrRequest req;
  req.set_broker_id(leader);
  req.set_broker_epoch(leader_epoch_of_broker + 100);
  proto::AlterIsrPartition* p = req.add_partitions();
  p->set_topic("t");
  p->set_partition(0);
  p->set_leader_epoch(0);
  p->add_new_isr(leader);
  EXPECT_EQ(ToErrorCode(AlterIsr(req).status()), ErrorCode::STALE_BROKER_EPOCH);

  // The follower may not change the leader's partition.
  proto::AlterIsrRequest wrong = req;
  wrong.set_broker_id(other);
  wrong.set_broker_epoch(leader == 1 ? e2 : e1);
  auto refused = AlterIsr(wrong);
  ASSERT_TRUE(refused.ok()) << refused.status();
  ASSERT_EQ(refused->partitions_size(), 1);
  EXPECT_NE(refused->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(refused->partitions(0).isr_size(), 2);

  req.set_broker_epoch(leader_epoch_of_broker);
  const Offset before = coord_->metadata_offset();
  auto shrunk = AlterIsr(req);
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();
  ASSERT_EQ(shrunk->partitions_size(), 1);
  EXPECT_EQ(shrunk->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(shrunk->partitions(0).leader(), leader);
  EXPECT_EQ(shrunk->partitions(0).leader_epoch(), 0);
  EXPECT_EQ(std::vector<int32_t>(shrunk->partitions(0).isr().begin(),
                                 shrunk->partitions(0).isr().end()),
            std::vector<int32_t>{leader});
  EXPECT_GT(coord_->metadata_offset(), before);
  auto described = Describe("t");
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(described->partitions(0).isr_size(), 1);
}

TEST_F(CoordinatorTest, ControlledShutdownMovesLeadershipAndFences) {
  Start();
  const int64_t e1 = Register(1);
  Register(2);
  ASSERT_TRUE(Create("t", 4, 2).ok());
  EXPECT_EQ(ToErrorCode(Shutdown(1, e1 + 7).status()), ErrorCode::STALE_BROKER_EPOCH);
  auto r = Shutdown(1, e1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->remaining_leaders(), 0);
  auto t = Describe("t");
  ASSERT_TRUE(t.ok());
  for (const auto& p : t->partitions()) {
    EXPECT_EQ(p.leader(), 2);
    EXPECT_EQ(std::vector<int32_t>(p.isr().begin(), p.isr().end()), std::vector<int32_t>{2});
  }
  auto cluster = DescribeCluster();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_EQ(cluster->brokers_size(), 2);
  EXPECT_TRUE(cluster->brokers(0).fenced());
  EXPECT_FALSE(cluster->brokers(0).live());
  EXPECT_FALSE(cluster->brokers(1).fenced());
  EXPECT_EQ(cluster->brokers(1).leader_count(), 4);
  // A heartbeat still in flight from the exiting process does not register
  // it again (it would be handed leadership as it exits)...
  auto late = Heartbeat(HeartbeatReq(1, e1));
  EXPECT_EQ(ToErrorCode(late.status()), ErrorCode::SHUTTING_DOWN);
  auto after = Describe("t");
  ASSERT_TRUE(after.ok());
  for (const auto& p : after->partitions()) EXPECT_EQ(p.leader(), 2);
  // ...but the restarted broker (epoch 0) registers with a new epoch.
  auto back = Heartbeat(HeartbeatReq(1, 0));
  ASSERT_TRUE(back.ok());
  EXPECT_GT(back->broker_epoch(), e1);
}

TEST_F(CoordinatorTest, LostBrokerIsFencedAndLeadershipMoves) {
  options_.broker_lease_ms = 300;
  Start();
  const int64_t e1 = Register(1);
  const int64_t e2 = Register(2);
  auto t = Create("t", 2, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  // Broker 2 keeps its lease; broker 1 goes silent.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  bool moved = false;
  while (!moved && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(Heartbeat(HeartbeatReq(2, e2)).ok());
    auto d = Describe("t");
    ASSERT_TRUE(d.ok());
    moved = true;
    for (const auto& p : d->partitions()) moved = moved && p.leader() == 2;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(moved);
  auto d = Describe("t");
  ASSERT_TRUE(d.ok());
  for (const auto& p : d->partitions()) {
    EXPECT_EQ(std::vector<int32_t>(p.isr().begin(), p.isr().end()), std::vector<int32_t>{2});
    // Partitions broker 1 led got a new leader epoch.
    const auto& before = t->partitions(p.partition());
    EXPECT_EQ(p.leader_epoch(), before.leader() == 1 ? 1 : 0);
  }
  auto cluster = DescribeCluster();
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(cluster->brokers_size(), 2);
  EXPECT_TRUE(cluster->brokers(0).fenced());
  EXPECT_EQ(cluster->brokers(0).broker_epoch(), e1);
  auto back = Heartbeat(HeartbeatReq(1, e1));
  ASSERT_TRUE(back.ok());
  EXPECT_GT(back->broker_epoch(), e1);
}

TEST_F(CoordinatorTest, DescribeClusterAndAdminCluster) {
  Start();
  http::AdminServer admin(io_);
  coord_->RegisterAdmin(admin);
  ASSERT_TRUE(admin.Listen("127.0.0.1:0").ok());
  Register(1);
  ASSERT_TRUE(Create("t", 3, 1).ok());
  auto c = DescribeCluster();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->answered_by(), 1);
  EXPECT_EQ(c->leader_id(), 1);
  EXPECT_GE(c->term(), 1);
  EXPECT_EQ(c->metadata_offset(), coord_->metadata_offset().value());
  EXPECT_GE(c->commit_index(), c->metadata_offset());
  ASSERT_EQ(c->coordinators_size(), 1);
  EXPECT_EQ(c->coordinators(0).role(), "leader");
  EXPECT_EQ(c->coordinators(0).port(), server_->port());
  ASSERT_EQ(c->brokers_size(), 1);
  EXPECT_TRUE(c->brokers(0).live());
  EXPECT_GT(c->brokers(0).lease_remaining_ms(), 0);
  EXPECT_EQ(c->brokers(0).leader_count(), 3);
  EXPECT_EQ(c->brokers(0).replica_count(), 3);
  const std::string json = HttpGet(admin.port(), "/admin/cluster");
  EXPECT_NE(json.find("200 OK"), std::string::npos) << json;
  EXPECT_NE(json.find("\"leader_id\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"leader_count\":3"), std::string::npos) << json;
  admin.Stop();
}

// A data directory from before the Raft quorum (coordinator/metadata, no
// coordinator/raft) is refused with a clear error: opening it with an empty
// log would make the broker delete the partitions it holds.
TEST_F(CoordinatorTest, PreRaftMetadataDirectoryIsRefused) {
  ASSERT_TRUE(std::filesystem::create_directories(dir_ + "/metadata"));
  auto c = Coordinator::Open(storage::DefaultFileSystem(), nullptr, options_, io_);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("not migrated"), absl::string_view::npos) << c.status();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/raft"));
}

TEST_F(CoordinatorTest, SnapshotsKeepTheImageAcrossRestart) {
  options_.raft_snapshot_entries = 3;
  Start();
  Register(1);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(Create(absl::StrCat("t", i), 1).ok());
  ASSERT_TRUE(Delete("t3").ok());
  const Offset offset = coord_->metadata_offset();
  Stop();
  Start();
  EXPECT_EQ(coord_->metadata_offset(), offset);
  EXPECT_EQ(List().size(), 7u);
  EXPECT_EQ(ToErrorCode(Describe("t3").status()), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
}

// Reserves a free loopback port (bound and released; the coordinators bind it
// again right after).
uint16_t FreePort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

TEST_F(CoordinatorTest, ThreeMembersElectServeAndFailOver) {
  struct Member {
    std::unique_ptr<Coordinator> coord;
    std::unique_ptr<rpc::RpcServer> server;
  };
  std::vector<CoordinatorMember> quorum;
  for (int i = 1; i <= 3; ++i) quorum.push_back({NodeId(i), "127.0.0.1", FreePort()});
  std::vector<Member> members(3);
  for (int i = 0; i < 3; ++i) {
    CoordinatorOptions o = options_;
    o.data_dir = absl::StrCat(dir_, "/m", i + 1);
    o.id = NodeId(i + 1);
    o.quorum = quorum;
    o.raft_election_timeout_ms = 150;
    o.raft_heartbeat_ms = 30;
    auto c = Coordinator::Open(storage::DefaultFileSystem(), nullptr, o, io_);
    ASSERT_TRUE(c.ok()) << c.status();
    members[i].coord = *std::move(c);
    members[i].server = std::make_unique<rpc::RpcServer>(io_, "coordinator");
    members[i].coord->RegisterApis(*members[i].server);
    ASSERT_TRUE(members[i].server->Listen(absl::StrCat("127.0.0.1:", quorum[i].port)).ok());
  }
  auto wait_leader = [&](int skip) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      for (int i = 0; i < 3; ++i) {
        if (i != skip && members[i].coord->serving()) return i;
      }
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  };
  auto connect = [&](int i) {
    auto c = rpc::RpcClient::Connect(client_io_.io(), "127.0.0.1", quorum[i].port);
    EXPECT_TRUE(c.ok()) << c.status();
    client_ = *c;
  };
  const int leader = wait_leader(-1);
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;

  // A follower names the leader.
  connect(follower);
  auto refused = Heartbeat(HeartbeatReq(1, 0));
  EXPECT_EQ(ToErrorCode(refused.status()), ErrorCode::NOT_COORDINATOR);
  EXPECT_NE(refused.status().message().find(absl::StrCat("leader is coordinator ", leader + 1,
                                                         " at 127.0.0.1:", quorum[leader].port)),
            absl::string_view::npos)
      << refused.status();
  auto view = DescribeCluster();  // any member answers
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->answered_by(), follower + 1);
  EXPECT_EQ(view->brokers_size(), 0);

  connect(leader);
  const int64_t epoch = Register(1);
  auto created = Create("before", 2);
  ASSERT_TRUE(created.ok()) << created.status();
  auto hb = Heartbeat(HeartbeatReq(1, epoch));
  ASSERT_TRUE(hb.ok());
  ASSERT_EQ(hb->coordinators_size(), 3);
  for (const auto& c : hb->coordinators()) EXPECT_EQ(c.leader(), c.coordinator_id() == leader + 1);
  auto cluster = DescribeCluster();
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(cluster->coordinators_size(), 3);
  for (const auto& c : cluster->coordinators()) {
    EXPECT_EQ(c.role(), c.coordinator_id() == leader + 1 ? "leader" : "follower");
  }

  // The leader goes away; another takes over with the metadata intact.
  client_->Close();
  ASSERT_TRUE(members[leader].coord->Close().ok());
  members[leader].server->Stop();
  const int next = wait_leader(leader);
  ASSERT_GE(next, 0);
  connect(next);
  auto kept = Describe("before");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->SerializeAsString(), created->SerializeAsString());
  // The broker kept its registration and got a fresh lease from the new leader.
  auto renewed = Heartbeat(HeartbeatReq(1, epoch));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->broker_epoch(), epoch);
  ASSERT_TRUE(Create("after", 1).ok());
  client_->Close();
  client_.reset();
  for (auto& m : members) {
    EXPECT_TRUE(m.coord->Close().ok());
    m.server->Stop();
  }
}
}  // namespace
}  // namespace brook::coordinator
