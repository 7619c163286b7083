// NameServer: registration, expiry, route merging, directly and over RPC.
#include "nameserver/nameserver.h"

#include <atomic>
#include <chrono>
#include <thread>

#include "boost/asio/connect.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "common/errors.h"
#include "common/rpc/client.h"
#include "gtest/gtest.h"

namespace brook::nameserver {
namespace {

using namespace std::chrono_literals;
using proto::ErrorCode;
using Clock = std::chrono::steady_clock;

// A manually advanced clock.
class FakeClock {
 public:
  Clock::time_point Now() const { return Clock::time_point(std::chrono::milliseconds(ms_.load())); }
  void Advance(int64_t ms) { ms_ += ms; }

 private:
  std::atomic<int64_t> ms_{1000000};
};

struct PartitionSpec {
  int32_t partition;
  int32_t leader;
  int32_t epoch;
};

proto::RegisterBrokerRequest Registration(
    int32_t id, int64_t metadata_offset,
    const std::vector<std::pair<std::string, std::vector<PartitionSpec>>>& routes) {
  proto::RegisterBrokerRequest req;
  req.mutable_broker()->set_broker_id(id);
  req.mutable_broker()->set_host("10.0.0." + std::to_string(id));
  req.mutable_broker()->set_port(9092);
  req.set_metadata_offset(metadata_offset);
  for (const auto& [topic, parts] : routes) {
    proto::TopicRoute* r = req.add_routes();
    r->set_topic(topic);
    for (const PartitionSpec& p : parts) {
      proto::PartitionRoute* pr = r->add_partitions();
      pr->set_partition(p.partition);
      pr->set_leader(p.leader);
      pr->set_leader_epoch(p.epoch);
      pr->add_replicas(p.leader);
      pr->add_isr(p.leader);
    }
  }
  proto::CoordinatorInfo* c = req.add_coordinators();
  c->set_coordinator_id(1);
  c->set_host("10.0.1.1");
  c->set_port(9093);
  c->set_leader(true);
  return req;
}

proto::MetadataRequest Topics(std::vector<std::string> names) {
  proto::MetadataRequest req;
  for (auto& n : names) req.add_topics(n);
  return req;
}

class NameServerTest : public ::testing::Test {
 protected:
  NameServerTest() : ns_(Options()) {}
  NameServerOptions Options() {
    NameServerOptions o;
    o.broker_expiry_ms = 1000;
    o.clock = [this] { return clock_.Now(); };
    return o;
  }
  FakeClock clock_;
  NameServer ns_;
};

TEST_F(NameServerTest, RegistrationAndExpiry) {
  auto resp = ns_.RegisterBroker(Registration(1, 5, {{"t", {{0, 1, 0}}}}));
  EXPECT_EQ(resp.error_code(), ErrorCode::NONE);
  EXPECT_EQ(resp.expiry_ms(), 1000);
  ASSERT_EQ(ns_.RegisterBroker(Registration(2, 5, {})).error_code(), ErrorCode::NONE);

  auto md = ns_.Metadata({});
  ASSERT_EQ(md.brokers_size(), 2);
  EXPECT_EQ(md.brokers(0).broker_id(), 1);
  EXPECT_EQ(md.brokers(0).host(), "10.0.0.1");
  ASSERT_EQ(md.coordinators_size(), 1);
  EXPECT_EQ(md.coordinators(0).port(), 9093);
  ASSERT_EQ(md.topics_size(), 1);
  EXPECT_EQ(md.topics(0).topic(), "t");

  clock_.Advance(600);
  ASSERT_EQ(ns_.RegisterBroker(Registration(2, 6, {})).error_code(), ErrorCode::NONE);
  clock_.Advance(600);  // broker 1 last registered 1200 ms ago; broker 2 600 ms ago
  md = ns_.Metadata({});
  ASSERT_EQ(md.brokers_size(), 1);
  EXPECT_EQ(md.brokers(0).broker_id(), 2);
  EXPECT_EQ(md.topics_size(), 0);  // only broker 1 hosted t
  md = ns_.Metadata(Topics({"t"}));
  ASSERT_EQ(md.topics_size(), 1);
  EXPECT_EQ(md.topics(0).error_code(), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);

  clock_.Advance(1000);
  EXPECT_EQ(ns_.Metadata({}).brokers_size(), 0);
  EXPECT_EQ(ns_.Metadata({}).coordinators_size(), 0);
}

TEST_F(NameServerTest, RejectsInvalidBroker) {
  auto req = Registration(1, 0, {});
  req.mutable_broker()->set_host("");
  EXPECT_EQ(ns_.RegisterBroker(req).error_code(), ErrorCode::INVALID_REQUEST);
  req = Registration(-1, 0, {});
  EXPECT_EQ(ns_.RegisterBroker(req).error_code(), ErrorCode::INVALID_REQUEST);
  req = Registration(1, 0, {});
  req.mutable_broker()->set_port(70000);
  EXPECT_EQ(ns_.RegisterBroker(req).error_code(), ErrorCode::INVALID_REQUEST);
  EXPECT_EQ(ns_.Metadata({}).brokers_size(), 0);
}

TEST_F(NameServerTest, MergeByLeaderEpochThenMetadataOffset) {
  // Broker 1 still believes it leads partition 0 at epoch 3; broker 2 reports
  // the newer epoch 4 in which it leads.
  ns_.RegisterBroker(Registration(1, 50, {{"t", {{0, 1, 3}, {1, 1, 7}}}}));
  ns_.RegisterBroker(Registration(2, 40, {{"t", {{0, 2, 4}, {1, 2, 7}}}}));
  auto md = ns_.Metadata(Topics({"t"}));
  ASSERT_EQ(md.topics_size(), 1);
  const auto& t = md.topics(0);
  EXPECT_EQ(t.error_code(), ErrorCode::NONE);
  ASSERT_EQ(t.partitions_size(), 2);
  EXPECT_EQ(t.partitions(0).partition(), 0);
  EXPECT_EQ(t.partitions(0).leader(), 2);
  EXPECT_EQ(t.partitions(0).leader_epoch(), 4);
  // Same epoch: the report from the higher metadata offset wins.
  EXPECT_EQ(t.partitions(1).partition(), 1);
  EXPECT_EQ(t.partitions(1).leader(), 1);

  // Broker 2 catches up to a newer metadata offset: now it wins the tie.
  ns_.RegisterBroker(Registration(2, 60, {{"t", {{0, 2, 4}, {1, 2, 7}}}}));
  md = ns_.Metadata(Topics({"t"}));
  EXPECT_EQ(md.topics(0).partitions(1).leader(), 2);
}

TEST_F(NameServerTest, UnknownAndRequestedTopics) {
  ns_.RegisterBroker(Registration(1, 1, {{"a", {{0, 1, 0}}}, {"b", {{0, 1, 0}, {1, 1, 0}}}}));
  auto md = ns_.Metadata(Topics({"b", "nope"}));
  ASSERT_EQ(md.topics_size(), 2);
  EXPECT_EQ(md.topics(0).topic(), "b");
  EXPECT_EQ(md.topics(0).partitions_size(), 2);
  EXPECT_EQ(md.topics(1).topic(), "nope");
  EXPECT_EQ(md.topics(1).error_code(), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(md.topics(1).partitions_size(), 0);
  md = ns_.Metadata({});
  ASSERT_EQ(md.topics_size(), 2);
  EXPECT_EQ(md.topics(0).topic(), "a");
  EXPECT_EQ(md.topics(1).topic(), "b");
}

TEST_F(NameServerTest, LaterRegistrationReplacesRoutes) {
  ns_.RegisterBroker(Registration(1, 1, {{"a", {{0, 1, 0}}}, {"deleted", {{0, 1, 0}}}}));
  ASSERT_EQ(ns_.Metadata({}).topics_size(), 2);
  ns_.RegisterBroker(Registration(1, 2, {{"a", {{0, 1, 0}}}}));
  auto md = ns_.Metadata(Topics({"deleted"}));
  EXPECT_EQ(md.topics(0).error_code(), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(ns_.Metadata({}).topics_size(), 1);
}

TEST_F(NameServerTest, CoordinatorsAsLastReported) {
  auto r1 = Registration(1, 1, {});
  ns_.RegisterBroker(r1);
  clock_.Advance(10);
  auto r2 = Registration(2, 1, {});
  r2.mutable_coordinators(0)->set_leader(false);
  auto* c2 = r2.add_coordinators();
  c2->set_coordinator_id(2);
  c2->set_host("10.0.1.2");
  c2->set_port(9093);
  c2->set_leader(true);
  ns_.RegisterBroker(r2);
  auto md = ns_.Metadata({});
  ASSERT_EQ(md.coordinators_size(), 2);
  EXPECT_EQ(md.coordinators(0).coordinator_id(), 1);
  EXPECT_FALSE(md.coordinators(0).leader());
  EXPECT_TRUE(md.coordinators(1).leader());
}

TEST(NameServerRpcTest, OverRealServer) {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread runner([&io] { io.run(); });
  {
    NameServer ns(NameServerOptions{});
    rpc::RpcServer server(io, "nameserver");
    ns.RegisterApis(server);
    ASSERT_TRUE(server.Listen("127.0.0.1:0").ok());
    rpc::IoThread client_io;
    auto client = rpc::RpcClient::Connect(client_io.io(), "127.0.0.1", server.port());
    ASSERT_TRUE(client.ok()) << client.status();

    proto::RegisterBrokerResponse reg;
    auto r = (*client)->CallSync(proto::API_REGISTER_BROKER, 0,
                                 Registration(3, 9, {{"orders", {{0, 3, 2}}}}), {}, &reg, 5000ms);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(reg.expiry_ms(), 30000);

    proto::MetadataResponse md;
    r = (*client)->CallSync(proto::API_METADATA, 0, Topics({"orders", "missing"}), {}, &md,
                            5000ms);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(md.brokers_size(), 1);
    EXPECT_EQ(md.brokers(0).broker_id(), 3);
    ASSERT_EQ(md.topics_size(), 2);
    ASSERT_EQ(md.topics(0).partitions_size(), 1);
    EXPECT_EQ(md.topics(0).partitions(0).leader(), 3);
    EXPECT_EQ(md.topics(0).partitions(0).leader_epoch(), 2);
    EXPECT_EQ(md.topics(1).error_code(), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);

    auto bad = Registration(3, 9, {});
    bad.mutable_broker()->set_host("");
    r = (*client)->CallSync(proto::API_REGISTER_BROKER, 0, bad, {}, &reg, 5000ms);
    EXPECT_EQ(ToErrorCode(r.status()), ErrorCode::INVALID_REQUEST);

    // The same routes as JSON on the admin port.
    http::AdminServer admin(io);
    ns.RegisterAdmin(admin);
    ASSERT_TRUE(admin.Listen("127.0.0.1:0").ok());
    boost::asio::io_context http_io;
    boost::asio::ip::tcp::socket socket(http_io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), admin.port()});
    boost::asio::write(socket,
                       boost::asio::buffer(std::string("GET /admin/routes HTTP/1.0\r\n\r\n")));
    std::string http;
    boost::system::error_code ec;
    boost::asio::read(socket, boost::asio::dynamic_buffer(http), ec);
    EXPECT_NE(http.find("200 OK"), std::string::npos) << http;
    EXPECT_NE(http.find("\"topic\":\"orders\""), std::string::npos) << http;
    EXPECT_NE(http.find("\"leader_epoch\":2"), std::string::npos) << http;
    admin.Stop();

    (*client)->Close();
    server.Stop();
  }
  work.reset();
  io.stop();
  runner.join();
}

}  // namespace
}  // namespace brook::nameserver
