// The consumer group APIs of an in-process coordinator (real Raft storage,
// RpcServer and RpcClient on loopback), the group state in Raft snapshots,
// /admin/groups and the group metrics.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "common/http/admin_server.h"
#include "common/http/metrics.h"
#include "common/rpc/client.h"
#include "coordinator/coordinator.h"
#include "coordinator/group_service.h"
#include "coordinator/groups/group_coordinator.h"
#include "coordinator/metadata_log.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace brook::coordinator {
namespace {

using namespace std::chrono_literals;
using proto::ErrorCode;

constexpr auto kTimeout = 5000ms;

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
  boost::asio::read(socket, boost::asio::dynamic_buffer(response), ec);
  return response;
}

// One request; the response header parsed as Resp even when it carries an
// error code (an ErrorResponse parses as any response).
template <typename Resp>
absl::StatusOr<Resp> Call(rpc::RpcClient& client, proto::Api api,
                          const google::protobuf::Message& req) {
  std::promise<absl::StatusOr<rpc::Response>> done;
  auto future = done.get_future();
  client.Call(api, 0, req, {}, kTimeout,
              [&done](absl::StatusOr<rpc::Response> r) { done.set_value(std::move(r)); });
  absl::StatusOr<rpc::Response> r = future.get();
  if (!r.ok()) return r.status();
  Resp out;
  if (!out.ParseFromString(r->header)) return absl::DataLossError("unparsable response");
  return out;
}

std::string Assignment(const std::string& topic, std::vector<int32_t> partitions) {
  proto::ConsumerAssignment a;
  auto* tp = a.add_partitions();
  tp->set_topic(topic);
  for (int32_t p : partitions) tp->add_partitions(p);
  return a.SerializeAsString();
}

class CoordinatorGroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/coord-groups-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    options_.data_dir = dir_;
    options_.groups.initial_rebalance_delay_ms = 0;
    options_.groups.min_session_timeout_ms = 100;
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
    // The group coordinator is created on the group thread right after.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!coord_->serving_groups() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
    }
    ASSERT_TRUE(coord_->serving_groups());
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

  // Joins `group` as a new single member (KIP-394: twice) and syncs the
  // given assignment; returns the member id.
  std::string JoinAlone(const std::string& group, const std::string& assignment) {
    proto::JoinGroupRequest join;
    join.set_group_id(group);
    join.set_session_timeout_ms(10000);
    join.set_protocol_type("consumer");
    join.set_client_id("unit");
    auto* p = join.add_protocols();
    p->set_name("range");
    p->set_metadata("sub");
    auto first = Call<proto::JoinGroupResponse>(*client_, proto::API_JOIN_GROUP, join);
    EXPECT_TRUE(first.ok()) << first.status();
    if (!first.ok()) return "";
    EXPECT_EQ(first->error_code(), ErrorCode::MEMBER_ID_REQUIRED);
    join.set_member_id(first->member_id());
    auto joined = Call<proto::JoinGroupResponse>(*client_, proto::API_JOIN_GROUP, join);
    EXPECT_TRUE(joined.ok() && joined->error_code() == ErrorCode::NONE)
        << (joined.ok() ? joined->DebugString() : joined.status().ToString());
    proto::SyncGroupRequest sync;
    sync.set_group_id(group);
    sync.set_member_id(first->member_id());
    sync.set_generation_id(joined.ok() ? joined->generation_id() : -1);
    auto* a = sync.add_assignments();
    a->set_member_id(first->member_id());
    a->set_assignment(assignment);
    auto synced = Call<proto::SyncGroupResponse>(*client_, proto::API_SYNC_GROUP, sync);
    EXPECT_TRUE(synced.ok() && synced->error_code() == ErrorCode::NONE);
    if (synced.ok()) {
      EXPECT_EQ(synced->assignment(), assignment);
    }
    return first->member_id();
  }

  proto::OffsetCommitResponse Commit(const std::string& group, const std::string& member,
                                     int32_t generation, const std::string& topic,
                                     int32_t partition, int64_t offset) {
    proto::OffsetCommitRequest req;
    req.set_group_id(group);
    req.set_member_id(member);
    req.set_generation_id(generation);
    auto* p = req.add_partitions();
    p->set_topic(topic);
    p->set_partition(partition);
    p->set_offset(offset);
    p->set_leader_epoch(0);
    p->set_metadata("md");
    auto r = Call<proto::OffsetCommitResponse>(*client_, proto::API_OFFSET_COMMIT, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(proto::OffsetCommitResponse());
  }

  proto::OffsetFetchResponse FetchAll(const std::string& group) {
    proto::OffsetFetchRequest req;
    req.set_group_id(group);
    auto r = Call<proto::OffsetFetchResponse>(*client_, proto::API_OFFSET_FETCH, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(proto::OffsetFetchResponse());
  }

  proto::DescribeGroupsResponse Describe(std::vector<std::string> groups) {
    proto::DescribeGroupsRequest req;
    for (auto& g : groups) req.add_groups(g);
    auto r = Call<proto::DescribeGroupsResponse>(*client_, proto::API_DESCRIBE_GROUPS, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(proto::DescribeGroupsResponse());
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

TEST_F(CoordinatorGroupsTest, JoinSyncHeartbeatCommitFetchAdminAndMetrics) {
  Start();
  http::AdminServer admin(io_);
  coord_->RegisterAdmin(admin);
  ASSERT_TRUE(admin.Listen("127.0.0.1:0").ok());

  const std::string member = JoinAlone("orders-app", Assignment("orders", {0, 1}));
  ASSERT_FALSE(member.empty());
  proto::HeartbeatRequest hb;
  hb.set_group_id("orders-app");
  hb.set_member_id(member);
  hb.set_generation_id(1);
  auto beat = Call<proto::HeartbeatResponse>(*client_, proto::API_HEARTBEAT, hb);
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->error_code(), ErrorCode::NONE);

  EXPECT_EQ(Commit("orders-app", member, 1, "orders", 1, 42).partitions(0).error_code(),
            ErrorCode::NONE);
  const proto::OffsetFetchResponse fetched = FetchAll("orders-app");
  ASSERT_EQ(fetched.partitions_size(), 1);
  EXPECT_EQ(fetched.partitions(0).topic(), "orders");
  EXPECT_EQ(fetched.partitions(0).partition(), 1);
  EXPECT_EQ(fetched.partitions(0).offset(), 42);
  EXPECT_EQ(fetched.partitions(0).metadata(), "md");

  auto listed =
      Call<proto::ListGroupsResponse>(*client_, proto::API_LIST_GROUPS, proto::ListGroupsRequest());
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->groups_size(), 1);
  EXPECT_EQ(listed->groups(0).state(), "Stable");

  const std::string body = HttpGet(admin.port(), "/admin/groups");
  EXPECT_NE(body.find("200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find("\"group_id\":\"orders-app\""), std::string::npos) << body;
  EXPECT_NE(body.find("\"state\":\"Stable\""), std::string::npos) << body;
  EXPECT_NE(body.find("\"source\":\"active\""), std::string::npos) << body;
  EXPECT_NE(body.find("\"assignment\":[{"), std::string::npos) << body;
  EXPECT_NE(body.find("\"partitions\":[0,1]"), std::string::npos) << body;
  EXPECT_NE(body.find("\"offset\":42"), std::string::npos) << body;
  admin.Stop();

  // Metrics are refreshed by the group thread at least every 500 ms.
  std::this_thread::sleep_for(700ms);
  const std::string m = metrics::Registry::Global().RenderPrometheus();
  EXPECT_NE(m.find("brook_coordinator_groups{state=\"Stable\"} 1"), std::string::npos) << m;
  EXPECT_NE(m.find("brook_coordinator_group_members 1"), std::string::npos) << m;
  EXPECT_NE(m.find("brook_coordinator_group_rebalances_total 1"), std::string::npos) << m;
  EXPECT_NE(m.find("brook_coordinator_group_offset_commits_total 1"), std::string::npos) << m;
  EXPECT_NE(m.find("brook_coordinator_group_join_seconds_count"), std::string::npos) << m;
}

TEST_F(CoordinatorGroupsTest, SnapshotKeepsGroupsAndOffsetsAcrossRestart) {
  options_.raft_snapshot_entries = 3;
  Start();
  const std::string member = JoinAlone("g", Assignment("t", {0, 1, 2}));
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(Commit("g", member, 1, "t", i % 3, 100 + i).partitions(0).error_code(),
              ErrorCode::NONE);
  }
  ASSERT_EQ(Commit("standalone", "", -1, "u", 0, 7).partitions(0).error_code(), ErrorCode::NONE);
  const Offset offset = coord_->metadata_offset();
  const std::string described = Describe({"g", "standalone"}).SerializeAsString();
  const std::string offsets_g = FetchAll("g").SerializeAsString();
  const std::string offsets_s = FetchAll("standalone").SerializeAsString();
  Stop();
  ASSERT_TRUE(std::filesystem::exists(dir_ + "/raft/snapshot")) << "no snapshot was taken";

  Start();
  EXPECT_EQ(coord_->metadata_offset(), offset);
  EXPECT_EQ(Describe({"g", "standalone"}).SerializeAsString(), described);
  EXPECT_EQ(FetchAll("g").SerializeAsString(), offsets_g);
  EXPECT_EQ(FetchAll("standalone").SerializeAsString(), offsets_s);
  ASSERT_EQ(FetchAll("g").partitions_size(), 3);
  // The member survived too: its heartbeat of generation 1 is accepted.
  proto::HeartbeatRequest hb;
  hb.set_group_id("g");
  hb.set_member_id(member);
  hb.set_generation_id(1);
  auto beat = Call<proto::HeartbeatResponse>(*client_, proto::API_HEARTBEAT, hb);
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->error_code(), ErrorCode::NONE);
}

TEST_F(CoordinatorGroupsTest, GroupRecordsDoNotWakeParkedBrokerHeartbeats) {
  Start();
  proto::BrokerHeartbeatRequest reg;
  reg.mutable_broker()->set_broker_id(1);
  reg.mutable_broker()->set_host("127.0.0.1");
  reg.mutable_broker()->set_port(9001);
  reg.set_known_metadata_offset(-1);
  proto::BrokerHeartbeatResponse registered;
  ASSERT_TRUE(
      client_->CallSync(proto::API_BROKER_HEARTBEAT, 0, reg, {}, &registered, kTimeout).ok());
  reg.set_broker_epoch(registered.broker_epoch());
  reg.set_known_metadata_offset(registered.metadata_offset());
  reg.set_max_wait_ms(400);
  const auto start = std::chrono::steady_clock::now();
  std::promise<void> answered;
  client_->Call(proto::API_BROKER_HEARTBEAT, 0, reg, {}, kTimeout,
                [&answered](absl::StatusOr<rpc::Response>) { answered.set_value(); });
  std::this_thread::sleep_for(50ms);
  ASSERT_EQ(Commit("s", "", -1, "t", 0, 1).partitions(0).error_code(), ErrorCode::NONE);
  answered.get_future().wait();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 350ms)
      << "an offset commit woke a parked broker heartbeat";
  EXPECT_GT(coord_->metadata_offset().value(), registered.metadata_offset());
}

// JSON documents equal up to the order of object fields.
bool SameJson(const std::string& a, const std::string& b) {
  google::protobuf::Value va, vb;
  if (!google::protobuf::util::JsonStringToMessage(a, &va).ok() ||
      !google::protobuf::util::JsonStringToMessage(b, &vb).ok()) {
    return false;
  }
  return google::protobuf::util::MessageDifferencer::Equals(va, vb);
}

// The replica ("shadow") of the group state: records -> snapshot -> restore
// gives the same groups and offsets.
TEST(GroupServiceTest, ShadowSnapshotRoundTrip) {
  // Records as an active coordinator writes them.
  std::vector<proto::MetadataRecord> log;
  groups::GroupConfig config;
  config.initial_rebalance_delay_ms = 0;
  config.min_session_timeout_ms = 100;
  groups::GroupCoordinator gc(config, [&log](std::vector<proto::MetadataRecord> recs,
                                             groups::GroupCoordinator::PersistDone done) {
    for (auto& r : recs) log.push_back(r);
    done(absl::OkStatus());
  });
  proto::JoinGroupRequest join;
  join.set_group_id("g");
  join.set_session_timeout_ms(10000);
  join.set_protocol_type("consumer");
  join.set_group_instance_id("instance-1");
  auto* p = join.add_protocols();
  p->set_name("range");
  p->set_metadata("sub");
  std::string member;
  gc.JoinGroup(join, "10.0.0.1:5000", 1000,
               [&](const proto::JoinGroupResponse& r) { member = r.member_id(); });
  ASSERT_FALSE(member.empty());
  proto::SyncGroupRequest sync;
  sync.set_group_id("g");
  sync.set_member_id(member);
  sync.set_generation_id(1);
  auto* a = sync.add_assignments();
  a->set_member_id(member);
  a->set_assignment(Assignment("t", {0, 1}));
  gc.SyncGroup(sync, 1000, [](const proto::SyncGroupResponse&) {});
  for (int i = 0; i < 4; ++i) {
    proto::OffsetCommitRequest c;
    c.set_group_id(i < 2 ? "g" : "standalone");
    c.set_member_id(i < 2 ? member : "");
    c.set_generation_id(i < 2 ? 1 : -1);
    auto* part = c.add_partitions();
    part->set_topic("t");
    part->set_partition(i % 2);
    part->set_offset(10 * i);
    gc.OffsetCommit(c, 1000 + i, [](const proto::OffsetCommitResponse&) {});
  }
  ASSERT_GE(log.size(), 5u);

  GroupServiceOptions options;
  options.config = config;
  auto propose = [](std::vector<std::string>, std::function<void(absl::Status)> done) {
    done(absl::UnavailableError("not used"));
  };
  auto not_coordinator = [] { return std::string("not the leader"); };
  GroupService original(options, propose, not_coordinator);
  for (const auto& r : log) original.ApplyCommitted(r);

  proto::MetadataSnapshot snapshot;
  for (auto& r : original.SnapshotRecords()) *snapshot.add_group_records() = std::move(r);
  auto decoded = DecodeMetadataSnapshot(EncodeMetadataSnapshot(snapshot));
  ASSERT_TRUE(decoded.ok());
  GroupService restored(options, propose, not_coordinator);
  ASSERT_TRUE(restored.Restore(decoded->group_records()).ok());

  const std::string before = original.AdminGroups().body;
  const std::string after = restored.AdminGroups().body;
  EXPECT_TRUE(SameJson(before, after)) << before << "\n" << after;
  EXPECT_NE(after.find("\"source\":\"replica\""), std::string::npos) << after;
  EXPECT_NE(after.find("\"group_instance_id\":\"instance-1\""), std::string::npos) << after;
  EXPECT_NE(after.find("\"offset\":10"), std::string::npos) << after;
  EXPECT_NE(after.find("\"group_id\":\"standalone\""), std::string::npos) << after;
  EXPECT_NE(after.find("\"offset\":30"), std::string::npos) << after;

  // And the same through GroupCoordinators replaying both record sets.
  groups::GroupCoordinator from_log(config, nullptr), from_snapshot(config, nullptr);
  for (const auto& r : log) ASSERT_TRUE(from_log.Replay(r, 5000).ok());
  for (const auto& r : decoded->group_records()) ASSERT_TRUE(from_snapshot.Replay(r, 5000).ok());
  proto::DescribeGroupsRequest dreq;
  dreq.add_groups("g");
  dreq.add_groups("standalone");
  EXPECT_EQ(from_log.DescribeGroups(dreq).SerializeAsString(),
            from_snapshot.DescribeGroups(dreq).SerializeAsString());
  for (const char* g : {"g", "standalone"}) {
    proto::OffsetFetchRequest freq;
    freq.set_group_id(g);
    EXPECT_EQ(from_log.OffsetFetch(freq).SerializeAsString(),
              from_snapshot.OffsetFetch(freq).SerializeAsString());
  }

  // A snapshot holding another kind of record is refused.
  google::protobuf::RepeatedPtrField<proto::MetadataRecord> bad;
  bad.Add()->mutable_remove_topic()->set_name("t");
  EXPECT_FALSE(restored.Restore(bad).ok());
  EXPECT_TRUE(SameJson(restored.AdminGroups().body, after));
}

}  // namespace
}  // namespace brook::coordinator
