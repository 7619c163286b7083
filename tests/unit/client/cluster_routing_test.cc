// Client-side cluster routing against in-process servers on loopback port 0:
// MetadataCache name-server fail-over, leader hints that stale name servers
// cannot undo, the coordinator list; Admin rotating through the quorum on
// NOT_COORDINATOR (following the leader it names) and on dead members.
#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "brook/admin.h"
#include "client/connection_pool.h"
#include "client/metadata_cache.h"
#include "common/rpc/client.h"
#include "common/rpc/server.h"
#include "gtest/gtest.h"
#include "nameserver/nameserver.h"
#include "proto/brook.pb.h"

namespace brook::client {
namespace {

using namespace std::chrono_literals;

// An io_context run by one thread, with servers on it.
class Servers {
 public:
  Servers() : work_(boost::asio::make_work_guard(io_)), runner_([this] { io_.run(); }) {}
  ~Servers() {
    for (auto& s : servers_) s->Stop();
    work_.reset();
    io_.stop();
    runner_.join();
  }
  rpc::RpcServer& Add(const std::string& name) {
    servers_.push_back(std::make_unique<rpc::RpcServer>(io_, name));
    return *servers_.back();
  }
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::unique_ptr<rpc::RpcServer>> servers_;
  std::thread runner_;
};

proto::RegisterBrokerRequest Registration(int32_t broker, uint16_t port, const std::string& topic,
                                          int32_t leader, int32_t epoch,
                                          const std::vector<std::pair<int32_t, uint16_t>>& coords,
                                          int32_t coordinator_leader) {
  proto::RegisterBrokerRequest req;
  req.mutable_broker()->set_broker_id(broker);
  req.mutable_broker()->set_host("127.0.0.1");
  req.mutable_broker()->set_port(port);
  req.set_metadata_offset(epoch);
  auto* r = req.add_routes();
  r->set_topic(topic);
  auto* p = r->add_partitions();
  p->set_partition(0);
  p->set_leader(leader);
  p->set_leader_epoch(epoch);
  for (auto [id, cport] : coords) {
    auto* c = req.add_coordinators();
    c->set_coordinator_id(id);
    c->set_host("127.0.0.1");
    c->set_port(cport);
    c->set_leader(id == coordinator_leader);
  }
  return req;
}

// A closed loopback port (nothing listens there).
uint16_t DeadPort() {
  Servers s;
  rpc::RpcServer& srv = s.Add("dead");
  EXPECT_TRUE(srv.Listen("127.0.0.1:0").ok());
  uint16_t port = srv.port();
  srv.Stop();
  return port;
}

TEST(ClusterRoutingTest, MetadataCacheFailsOverAndKeepsLeaderHints) {
  const uint16_t dead = DeadPort();
  Servers servers;
  nameserver::NameServer ns(nameserver::NameServerOptions{});
  rpc::RpcServer& ns_server = servers.Add("nameserver");
  ns.RegisterApis(ns_server);
  ASSERT_TRUE(ns_server.Listen("127.0.0.1:0").ok());
  // Brokers 1..3 at fake ports 1001..1003; broker 1 leads t-0 in epoch 3.
  for (int32_t b = 1; b <= 3; ++b) {
    ns.RegisterBroker(Registration(b, static_cast<uint16_t>(1000 + b), "t", 1, 3,
                                   {{1, 2001}, {2, 2002}, {3, 2003}}, 2));
  }

  rpc::IoThread io;
  ConnectionPool pool(io.io(), rpc::ClientOptions{});
  // The first name server is dead: the cache moves on to the live one.
  MetadataCache cache(&pool, {HostPort{"127.0.0.1", dead}, HostPort{"127.0.0.1", ns_server.port()}},
                      2s);
  ASSERT_TRUE(cache.Refresh({"t"}).ok());
  int32_t leader = -1;
  auto addr = cache.Leader("t", 0, &leader);
  ASSERT_TRUE(addr.ok()) << addr.status();
  EXPECT_EQ(leader, 1);
  EXPECT_EQ(addr->port, 1001);

  auto coords = cache.Coordinators();
  ASSERT_EQ(coords.size(), 3u);
  EXPECT_EQ(coords[0].id, 2);  // the leader first
  EXPECT_TRUE(coords[0].leader);
  EXPECT_EQ(coords[0].address.port, 2002);

  // NOT_LEADER named broker 2: routed there at once, and a refresh from a
  // name server still at epoch 3 does not undo it.
  cache.SetLeaderHint("t", 0, 2);
  ASSERT_TRUE(cache.Leader("t", 0, &leader).ok());
  EXPECT_EQ(leader, 2);
  ASSERT_TRUE(cache.Refresh().ok());
  ASSERT_TRUE(cache.Leader("t", 0, &leader).ok());
  EXPECT_EQ(leader, 2);
  // A newer epoch from the name servers wins over the hint.
  ns.RegisterBroker(Registration(3, 1003, "t", 3, 4, {{1, 2001}, {2, 2002}, {3, 2003}}, 2));
  ASSERT_TRUE(cache.Refresh().ok());
  ASSERT_TRUE(cache.Leader("t", 0, &leader).ok());
  EXPECT_EQ(leader, 3);
  // And later routes of that epoch are not overridden by the old hint.
  ASSERT_TRUE(cache.Refresh().ok());
  ASSERT_TRUE(cache.Leader("t", 0, &leader).ok());
  EXPECT_EQ(leader, 3);
  // A hint for an unknown partition or a negative id changes nothing.
  cache.SetLeaderHint("t", 7, 1);
  cache.SetLeaderHint("t", 0, -1);
  ASSERT_TRUE(cache.Leader("t", 0, &leader).ok());
  EXPECT_EQ(leader, 3);
  pool.CloseAll();
}

TEST(ClusterRoutingTest, AdminFindsTheActiveCoordinator) {
  const uint16_t dead = DeadPort();
  Servers servers;
  // Coordinator 3 is the real leader; coordinator 2 is a follower that names
  // it; coordinator 1 (which the name servers still call leader) is dead.
  rpc::RpcServer& leader = servers.Add("coordinator-3");
  std::atomic<int> leader_calls{0}, follower_calls{0};
  leader.Register(proto::API_LIST_TOPICS, 0, [&](rpc::Request req) {
    ++leader_calls;
    proto::ListTopicsResponse resp;
    resp.add_topics()->set_name("alpha");
    req.Respond(resp);
  });
  ASSERT_TRUE(leader.Listen("127.0.0.1:0").ok());
  rpc::RpcServer& follower = servers.Add("coordinator-2");
  const std::string hint = absl::StrCat("leader is coordinator 3 at 127.0.0.1:", leader.port());
  follower.Register(proto::API_LIST_TOPICS, 0, [&](rpc::Request req) {
    ++follower_calls;
    req.RespondError(proto::NOT_COORDINATOR, hint);
  });
  ASSERT_TRUE(follower.Listen("127.0.0.1:0").ok());

  nameserver::NameServer ns(nameserver::NameServerOptions{});
  rpc::RpcServer& ns_server = servers.Add("nameserver");
  ns.RegisterApis(ns_server);
  ASSERT_TRUE(ns_server.Listen("127.0.0.1:0").ok());
  // The name servers list coordinators 1 (stale leader flag, dead) and 2 only:
  // coordinator 3 is found through coordinator 2's NOT_COORDINATOR answer.
  ns.RegisterBroker(Registration(1, 1001, "t", 1, 1, {{1, dead}, {2, follower.port()}}, 1));

  AdminConfig config;
  config.nameservers = absl::StrCat("127.0.0.1:", ns_server.port());
  config.request_timeout = 10s;
  auto admin = Admin::Create(config);
  ASSERT_TRUE(admin.ok());
  auto topics = (*admin)->ListTopics();
  ASSERT_TRUE(topics.ok()) << topics.status();
  ASSERT_EQ(topics->size(), 1u);
  EXPECT_EQ((*topics)[0].name, "alpha");
  EXPECT_EQ(follower_calls.load(), 1);
  EXPECT_EQ(leader_calls.load(), 1);
  // The coordinator that answered is asked first from then on.
  ASSERT_TRUE((*admin)->ListTopics().ok());
  EXPECT_EQ(follower_calls.load(), 1);
  EXPECT_EQ(leader_calls.load(), 2);
}

TEST(ClusterRoutingTest, AdminGivesUpOnANonRetriableAnswer) {
  Servers servers;
  rpc::RpcServer& coordinator = servers.Add("coordinator");
  coordinator.Register(proto::API_DELETE_TOPIC, 0, [&](rpc::Request req) {
    req.RespondError(proto::UNKNOWN_TOPIC_OR_PARTITION, "no such topic");
  });
  coordinator.Register(proto::API_CREATE_TOPIC, 0, [&](rpc::Request req) {
    req.RespondError(proto::INVALID_REPLICATION_FACTOR, "3 replicas, 1 broker");
  });
  ASSERT_TRUE(coordinator.Listen("127.0.0.1:0").ok());
  nameserver::NameServer ns(nameserver::NameServerOptions{});
  rpc::RpcServer& ns_server = servers.Add("nameserver");
  ns.RegisterApis(ns_server);
  ASSERT_TRUE(ns_server.Listen("127.0.0.1:0").ok());
  ns.RegisterBroker(Registration(1, 1001, "t", 1, 1, {{1, coordinator.port()}}, 1));
  AdminConfig config;
  config.nameservers = absl::StrCat("127.0.0.1:", ns_server.port());
  config.request_timeout = 10s;
  auto admin = Admin::Create(config);
  ASSERT_TRUE(admin.ok());
  const auto start = std::chrono::steady_clock::now();
  auto created = (*admin)->CreateTopic(NewTopic{"x", 1, 3, {}});
  EXPECT_FALSE(created.ok());
  EXPECT_NE(std::string(created.status().message()).find("INVALID_REPLICATION_FACTOR"),
            std::string::npos)
      << created.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

}  // namespace
}  // namespace brook::client
