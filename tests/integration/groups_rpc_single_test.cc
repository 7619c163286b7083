// Consumer group APIs 50..58 end to end on one real brook-server process
// (every role), over the raw RPC client: two members join, sync and
// heartbeat a group, commit and fetch offsets; the errors for unknown
// members, stale generations, unowned partitions and deleting a non-empty
// group; /admin/groups; the group with its offsets surviving kill -9; and
// consumer lag (high watermarks from the broker's heartbeat) on
// /admin/groups and /metrics.
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/record_batch.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;
using proto::ErrorCode;

constexpr auto kCallTimeout = 10000ms;
constexpr int32_t kSessionMs = 10000;

// One request; the response header parsed as Resp even when it carries an
// error code.
template <typename Resp>
absl::StatusOr<Resp> Call(rpc::RpcClient& client, proto::Api api,
                          const google::protobuf::Message& req) {
  return CallParsed<Resp>(client, api, req, kCallTimeout);
}

template <typename Resp>
std::future<absl::StatusOr<Resp>> CallAsync(std::shared_ptr<rpc::RpcClient> client, proto::Api api,
                                            std::shared_ptr<google::protobuf::Message> req) {
  return std::async(std::launch::async,
                    [client, api, req] { return Call<Resp>(*client, api, *req); });
}

std::string Assignment(const std::string& topic, std::vector<int32_t> partitions) {
  proto::ConsumerAssignment a;
  auto* tp = a.add_partitions();
  tp->set_topic(topic);
  for (int32_t p : partitions) tp->add_partitions(p);
  return a.SerializeAsString();
}

std::shared_ptr<proto::JoinGroupRequest> JoinReq(const std::string& group,
                                                 const std::string& member_id,
                                                 const std::string& client_id) {
  auto r = std::make_shared<proto::JoinGroupRequest>();
  r->set_group_id(group);
  r->set_member_id(member_id);
  r->set_session_timeout_ms(kSessionMs);
  r->set_rebalance_timeout_ms(kSessionMs);
  r->set_protocol_type("consumer");
  r->set_client_id(client_id);
  proto::ConsumerSubscription sub;
  sub.add_topics("t");
  auto* p = r->add_protocols();
  p->set_name("range");
  p->set_metadata(sub.SerializeAsString());
  return r;
}

std::shared_ptr<proto::SyncGroupRequest> SyncReq(
    const std::string& group, const std::string& member, int32_t generation,
    std::vector<std::pair<std::string, std::string>> assignments = {}) {
  auto r = std::make_shared<proto::SyncGroupRequest>();
  r->set_group_id(group);
  r->set_member_id(member);
  r->set_generation_id(generation);
  for (auto& [m, a] : assignments) {
    auto* out = r->add_assignments();
    out->set_member_id(m);
    out->set_assignment(a);
  }
  return r;
}

ErrorCode Heartbeat(rpc::RpcClient& c, const std::string& group, const std::string& member,
                    int32_t generation) {
  proto::HeartbeatRequest req;
  req.set_group_id(group);
  req.set_member_id(member);
  req.set_generation_id(generation);
  auto r = Call<proto::HeartbeatResponse>(c, proto::API_HEARTBEAT, req);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->error_code() : ErrorCode::UNKNOWN;
}

// Commits offset `offset` for each of `partitions` of topic t; the response.
proto::OffsetCommitResponse Commit(rpc::RpcClient& c, const std::string& group,
                                   const std::string& member, int32_t generation,
                                   std::vector<int32_t> partitions, int64_t offset) {
  proto::OffsetCommitRequest req;
  req.set_group_id(group);
  req.set_member_id(member);
  req.set_generation_id(generation);
  for (int32_t p : partitions) {
    auto* part = req.add_partitions();
    part->set_topic("t");
    part->set_partition(p);
    part->set_offset(offset);
    part->set_leader_epoch(0);
    part->set_metadata(absl::StrCat("by ", member.empty() ? "standalone" : member));
  }
  auto r = Call<proto::OffsetCommitResponse>(c, proto::API_OFFSET_COMMIT, req);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.value_or(proto::OffsetCommitResponse());
}

// partition -> committed offset of topic t.
std::map<int32_t, int64_t> Fetch(rpc::RpcClient& c, const std::string& group) {
  proto::OffsetFetchRequest req;
  req.set_group_id(group);
  auto r = Call<proto::OffsetFetchResponse>(c, proto::API_OFFSET_FETCH, req);
  EXPECT_TRUE(r.ok()) << r.status();
  std::map<int32_t, int64_t> out;
  if (r.ok()) {
    EXPECT_EQ(r->error_code(), ErrorCode::NONE);
    for (const auto& p : r->partitions()) {
      EXPECT_EQ(p.topic(), "t");
      out[p.partition()] = p.offset();
    }
  }
  return out;
}

proto::DescribedGroup Describe(rpc::RpcClient& c, const std::string& group) {
  proto::DescribeGroupsRequest req;
  req.add_groups(group);
  auto r = Call<proto::DescribeGroupsResponse>(c, proto::API_DESCRIBE_GROUPS, req);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok() || r->groups_size() != 1) return proto::DescribedGroup();
  return r->groups(0);
}

// KIP-394: the first join hands out the member id.
std::string NewMemberId(rpc::RpcClient& c, const std::string& group, const std::string& client) {
  auto r = Call<proto::JoinGroupResponse>(c, proto::API_JOIN_GROUP, *JoinReq(group, "", client));
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return "";
  EXPECT_EQ(r->error_code(), ErrorCode::MEMBER_ID_REQUIRED);
  return r->member_id();
}

class GroupsRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--group-initial-rebalance-delay-ms=0"});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    Reconnect();
  }

  void Reconnect() {
    auto c = Connect(io_, server_->coordinator());
    ASSERT_TRUE(c.ok()) << c.status();
    coord_ = *c;
  }

  // One member alone in `group`, Stable with partitions 0..2 of t; returns
  // its id (generation 1).
  std::string StableAlone(const std::string& group) {
    const std::string id = NewMemberId(*coord_, group, "solo");
    auto joined =
        Call<proto::JoinGroupResponse>(*coord_, proto::API_JOIN_GROUP, *JoinReq(group, id, "solo"));
    EXPECT_TRUE(joined.ok() && joined->error_code() == ErrorCode::NONE);
    auto synced = Call<proto::SyncGroupResponse>(
        *coord_, proto::API_SYNC_GROUP, *SyncReq(group, id, 1, {{id, Assignment("t", {0, 1, 2})}}));
    EXPECT_TRUE(synced.ok() && synced->error_code() == ErrorCode::NONE);
    return id;
  }

  rpc::IoThread io_;
  std::unique_ptr<ServerProcess> server_;
  std::shared_ptr<rpc::RpcClient> coord_;
};

TEST_F(GroupsRpcTest, TwoMembersJoinSyncHeartbeatCommitAndFetch) {
  const std::string g = "billing";
  // The first member forms generation 1 alone.
  const std::string a = NewMemberId(*coord_, g, "client-a");
  auto ja =
      Call<proto::JoinGroupResponse>(*coord_, proto::API_JOIN_GROUP, *JoinReq(g, a, "client-a"));
  ASSERT_TRUE(ja.ok());
  ASSERT_EQ(ja->error_code(), ErrorCode::NONE) << ja->error_message();
  EXPECT_EQ(ja->generation_id(), 1);
  EXPECT_EQ(ja->leader(), a);
  auto sa = Call<proto::SyncGroupResponse>(*coord_, proto::API_SYNC_GROUP,
                                           *SyncReq(g, a, 1, {{a, Assignment("t", {0, 1, 2, 3})}}));
  ASSERT_TRUE(sa.ok());
  ASSERT_EQ(sa->error_code(), ErrorCode::NONE);
  EXPECT_EQ(Heartbeat(*coord_, g, a, 1), ErrorCode::NONE);

  // The second member joins: the group rebalances and the first member
  // learns of it through its heartbeat, then rejoins.
  const std::string b = NewMemberId(*coord_, g, "client-b");
  ASSERT_NE(a, b);
  auto jb =
      CallAsync<proto::JoinGroupResponse>(coord_, proto::API_JOIN_GROUP, JoinReq(g, b, "client-b"));
  ErrorCode beat = ErrorCode::NONE;
  for (int i = 0; i < 100 && beat != ErrorCode::REBALANCE_IN_PROGRESS; ++i) {
    beat = Heartbeat(*coord_, g, a, 1);
    if (beat != ErrorCode::REBALANCE_IN_PROGRESS) std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(beat, ErrorCode::REBALANCE_IN_PROGRESS);
  // The ending generation may still commit its own partitions.
  EXPECT_EQ(Commit(*coord_, g, a, 1, {3}, 5).partitions(0).error_code(), ErrorCode::NONE);
  auto ja2 =
      CallAsync<proto::JoinGroupResponse>(coord_, proto::API_JOIN_GROUP, JoinReq(g, a, "client-a"));
  auto rb = jb.get();
  auto ra = ja2.get();
  ASSERT_TRUE(ra.ok() && rb.ok());
  ASSERT_EQ(ra->error_code(), ErrorCode::NONE) << ra->error_message();
  ASSERT_EQ(rb->error_code(), ErrorCode::NONE) << rb->error_message();
  EXPECT_EQ(ra->generation_id(), 2);
  EXPECT_EQ(rb->generation_id(), 2);
  EXPECT_EQ(ra->leader(), a);
  EXPECT_EQ(rb->leader(), a);
  EXPECT_EQ(ra->protocol_name(), "range");
  EXPECT_EQ(ra->members_size(), 2) << "the leader gets every member's subscription";
  EXPECT_EQ(rb->members_size(), 0);
  for (const auto& m : ra->members()) {
    proto::ConsumerSubscription sub;
    ASSERT_TRUE(sub.ParseFromString(m.metadata()));
    ASSERT_EQ(sub.topics_size(), 1);
    EXPECT_EQ(sub.topics(0), "t");
  }

  // The follower waits in SyncGroup until the leader's assignment is durable.
  auto sb = CallAsync<proto::SyncGroupResponse>(coord_, proto::API_SYNC_GROUP, SyncReq(g, b, 2));
  std::this_thread::sleep_for(100ms);
  auto sa2 = Call<proto::SyncGroupResponse>(
      *coord_, proto::API_SYNC_GROUP,
      *SyncReq(g, a, 2, {{a, Assignment("t", {0, 1})}, {b, Assignment("t", {2, 3})}}));
  ASSERT_TRUE(sa2.ok());
  ASSERT_EQ(sa2->error_code(), ErrorCode::NONE);
  EXPECT_EQ(sa2->assignment(), Assignment("t", {0, 1}));
  auto sb_r = sb.get();
  ASSERT_TRUE(sb_r.ok());
  ASSERT_EQ(sb_r->error_code(), ErrorCode::NONE);
  EXPECT_EQ(sb_r->assignment(), Assignment("t", {2, 3}));
  EXPECT_EQ(Heartbeat(*coord_, g, a, 2), ErrorCode::NONE);
  EXPECT_EQ(Heartbeat(*coord_, g, b, 2), ErrorCode::NONE);

  // Commits of owned partitions, then fetch.
  auto ca = Commit(*coord_, g, a, 2, {0, 1}, 100);
  ASSERT_EQ(ca.partitions_size(), 2);
  EXPECT_EQ(ca.partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(ca.partitions(1).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Commit(*coord_, g, b, 2, {2}, 200).partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Fetch(*coord_, g), (std::map<int32_t, int64_t>{{0, 100}, {1, 100}, {2, 200}, {3, 5}}));

  // Errors.
  EXPECT_EQ(Heartbeat(*coord_, g, "nobody", 2), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(Heartbeat(*coord_, g, a, 1), ErrorCode::ILLEGAL_GENERATION);
  EXPECT_EQ(Commit(*coord_, g, "nobody", 2, {0}, 1).partitions(0).error_code(),
            ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(Commit(*coord_, g, a, 1, {0}, 1).partitions(0).error_code(),
            ErrorCode::ILLEGAL_GENERATION);
  auto unowned = Commit(*coord_, g, a, 2, {0, 2}, 1);
  EXPECT_EQ(unowned.partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(unowned.partitions(1).error_code(), ErrorCode::PARTITION_NOT_OWNED);
  EXPECT_EQ(Commit(*coord_, g, "", -1, {0}, 1).partitions(0).error_code(),
            ErrorCode::UNKNOWN_MEMBER_ID)
      << "standalone commits are refused while the group has members";
  EXPECT_EQ(Fetch(*coord_, g), (std::map<int32_t, int64_t>{{0, 1}, {1, 100}, {2, 200}, {3, 5}}));
  auto sync_unknown =
      Call<proto::SyncGroupResponse>(*coord_, proto::API_SYNC_GROUP, *SyncReq(g, "nobody", 2));
  ASSERT_TRUE(sync_unknown.ok());
  EXPECT_EQ(sync_unknown->error_code(), ErrorCode::UNKNOWN_MEMBER_ID);

  proto::DeleteGroupsRequest del;
  del.add_groups(g);
  auto deleted = Call<proto::DeleteGroupsResponse>(*coord_, proto::API_DELETE_GROUPS, del);
  ASSERT_TRUE(deleted.ok());
  ASSERT_EQ(deleted->groups_size(), 1);
  EXPECT_EQ(deleted->groups(0).error_code(), ErrorCode::NON_EMPTY_GROUP);

  // Describe, list and the admin page.
  const proto::DescribedGroup d = Describe(*coord_, g);
  EXPECT_EQ(d.state(), "Stable");
  EXPECT_EQ(d.generation_id(), 2);
  EXPECT_EQ(d.protocol_name(), "range");
  EXPECT_EQ(d.leader(), a);
  ASSERT_EQ(d.members_size(), 2);
  for (const auto& m : d.members()) {
    EXPECT_EQ(m.client_host().rfind("127.0.0.1:", 0), 0u) << m.client_host();
    EXPECT_FALSE(m.assignment().empty());
  }
  auto listed =
      Call<proto::ListGroupsResponse>(*coord_, proto::API_LIST_GROUPS, proto::ListGroupsRequest());
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->groups_size(), 1);
  EXPECT_EQ(listed->groups(0).group_id(), g);
  EXPECT_EQ(listed->groups(0).protocol_type(), "consumer");
  const std::string page = HttpGet(server_->admin().port, "/admin/groups");
  EXPECT_NE(page.find("\"group_id\":\"billing\""), std::string::npos) << page;
  EXPECT_NE(page.find("\"client_id\":\"client-b\""), std::string::npos) << page;
  EXPECT_NE(page.find("\"partitions\":[2,3]"), std::string::npos) << page;
  EXPECT_NE(page.find("\"offset\":200"), std::string::npos) << page;
  const std::string metrics = HttpGet(server_->admin().port, "/metrics");
  EXPECT_NE(metrics.find("brook_coordinator_group_rebalances_total"), std::string::npos);
  EXPECT_NE(metrics.find("brook_coordinator_groups{state=\"Stable\"}"), std::string::npos);

  // Both leave: the group is Empty and may be deleted with its offsets.
  proto::LeaveGroupRequest leave;
  leave.set_group_id(g);
  leave.add_members()->set_member_id(b);
  leave.add_members()->set_member_id(a);
  auto left = Call<proto::LeaveGroupResponse>(*coord_, proto::API_LEAVE_GROUP, leave);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->members_size(), 2);
  EXPECT_EQ(left->members(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(left->members(1).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Describe(*coord_, g).state(), "Empty");
  deleted = Call<proto::DeleteGroupsResponse>(*coord_, proto::API_DELETE_GROUPS, del);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->groups(0).error_code(), ErrorCode::NONE);
  EXPECT_TRUE(Fetch(*coord_, g).empty());
  EXPECT_EQ(Describe(*coord_, g).error_code(), ErrorCode::GROUP_ID_NOT_FOUND);
}

TEST_F(GroupsRpcTest, GroupAndOffsetsSurviveKill9) {
  const std::string member = StableAlone("app");
  ASSERT_FALSE(member.empty());
  ASSERT_EQ(Commit(*coord_, "app", member, 1, {0, 1, 2}, 77).partitions(2).error_code(),
            ErrorCode::NONE);
  ASSERT_EQ(Commit(*coord_, "assign-mode", "", -1, {5}, 9).partitions(0).error_code(),
            ErrorCode::NONE);
  const proto::DescribedGroup before = Describe(*coord_, "app");
  ASSERT_EQ(before.state(), "Stable");

  coord_->Close();
  ASSERT_TRUE(server_->Restart().ok()) << server_->LogTail();  // SIGKILL, start again
  Reconnect();

  EXPECT_EQ(Fetch(*coord_, "app"), (std::map<int32_t, int64_t>{{0, 77}, {1, 77}, {2, 77}}));
  EXPECT_EQ(Fetch(*coord_, "assign-mode"), (std::map<int32_t, int64_t>{{5, 9}}));
  const proto::DescribedGroup after = Describe(*coord_, "app");
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString())
      << before.DebugString() << " vs " << after.DebugString();
  // The member carries on in its generation after the restart.
  EXPECT_EQ(Heartbeat(*coord_, "app", member, 1), ErrorCode::NONE);
  EXPECT_EQ(Commit(*coord_, "app", member, 1, {1}, 78).partitions(0).error_code(), ErrorCode::NONE);

  // The member rejoins (as the group's leader: a new generation).
  auto rejoin = Call<proto::JoinGroupResponse>(*coord_, proto::API_JOIN_GROUP,
                                               *JoinReq("app", member, "solo"));
  ASSERT_TRUE(rejoin.ok());
  EXPECT_EQ(rejoin->error_code(), ErrorCode::NONE) << rejoin->error_message();
  EXPECT_EQ(rejoin->generation_id(), 2);
}

// The body of an HTTP response ("" without one).
std::string Body(const std::string& response) {
  const size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

// Field `name` of a JSON object value (a null Value when absent).
const google::protobuf::Value& Field(const google::protobuf::Value& v, const std::string& name) {
  static const google::protobuf::Value kNull;
  const auto& fields = v.struct_value().fields();
  auto it = fields.find(name);
  return it == fields.end() ? kNull : it->second;
}

TEST_F(GroupsRpcTest, LagFromBrokerHighWatermarksOnAdminAndMetrics) {
  ASSERT_TRUE(CreateTopic(*coord_, "lag", 2).ok());
  auto broker = Connect(io_, server_->broker());
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE(WaitForTopic(**broker, "lag", 2).ok());
  // N = 10 records in partition 0, 4 in partition 1.
  for (auto [partition, records] : {std::pair<int32_t, int>{0, 10}, {1, 4}}) {
    RecordBatchBuilder b(RecordBatchBuilder::Options{});
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    for (int i = 0; i < records; ++i) b.Append(now, std::string("k"), std::string("v"));
    auto produced = Produce(**broker, "lag", partition, b.Build());
    ASSERT_TRUE(produced.ok()) << produced.status();
  }
  // M = 3 committed in partition 0 (lag 7), all 4 in partition 1 (lag 0).
  proto::OffsetCommitRequest commit;
  commit.set_group_id("lagging");
  commit.set_generation_id(-1);
  for (auto [partition, offset] : {std::pair<int32_t, int64_t>{0, 3}, {1, 4}}) {
    auto* part = commit.add_partitions();
    part->set_topic("lag");
    part->set_partition(partition);
    part->set_offset(offset);
    part->set_leader_epoch(-1);
  }
  auto committed = Call<proto::OffsetCommitResponse>(*coord_, proto::API_OFFSET_COMMIT, commit);
  ASSERT_TRUE(committed.ok()) << committed.status();
  ASSERT_EQ(committed->partitions_size(), 2);
  ASSERT_EQ(committed->partitions(0).error_code(), ErrorCode::NONE);
  ASSERT_EQ(committed->partitions(1).error_code(), ErrorCode::NONE);

  // Both pages show the lag once the broker's next heartbeat carried the
  // high watermarks (the heartbeat long-polls at most a third of the lease).
  const std::string lag0 = "brook_group_lag{group=\"lagging\",topic=\"lag\",partition=\"0\"} 7\n";
  const std::string lag1 = "brook_group_lag{group=\"lagging\",topic=\"lag\",partition=\"1\"} 0\n";
  const std::string total = "brook_group_lag_total{group=\"lagging\"} 7\n";
  std::string page, metrics;
  google::protobuf::Value group;
  bool admin_ok = false, metrics_ok = false;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!(admin_ok && metrics_ok) && std::chrono::steady_clock::now() < deadline) {
    page = Body(HttpGet(server_->admin().port, "/admin/groups"));
    google::protobuf::Value root;
    admin_ok = false;
    if (google::protobuf::util::JsonStringToMessage(page, &root).ok()) {
      for (const auto& g : Field(root, "groups").list_value().values()) {
        if (Field(g, "group_id").string_value() == "lagging") group = g;
      }
      admin_ok = Field(group, "lag").number_value() == 7;
    }
    metrics = Body(HttpGet(server_->admin().port, "/metrics"));
    metrics_ok = metrics.find(lag0) != std::string::npos &&
                 metrics.find(lag1) != std::string::npos &&
                 metrics.find(total) != std::string::npos;
    if (!(admin_ok && metrics_ok)) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(admin_ok) << page;
  EXPECT_TRUE(metrics_ok) << metrics;
  const auto& offsets = Field(group, "offsets").list_value().values();
  ASSERT_EQ(offsets.size(), 2) << page;
  for (const auto& o : offsets) {
    const int partition = static_cast<int>(Field(o, "partition").number_value());
    EXPECT_EQ(Field(o, "topic").string_value(), "lag");
    EXPECT_EQ(Field(o, "offset").number_value(), partition == 0 ? 3 : 4) << page;
    EXPECT_EQ(Field(o, "log_end_offset").number_value(), partition == 0 ? 10 : 4) << page;
    EXPECT_EQ(Field(o, "lag").number_value(), partition == 0 ? 7 : 0) << page;
  }

  // A group of a partition whose high watermark nobody reported: unknown
  // (-1) in the JSON, no lag series.
  commit.set_group_id("elsewhere");
  commit.clear_partitions();
  auto* part = commit.add_partitions();
  part->set_topic("no-such-topic");
  part->set_partition(0);
  part->set_offset(1);
  committed = Call<proto::OffsetCommitResponse>(*coord_, proto::API_OFFSET_COMMIT, commit);
  ASSERT_TRUE(committed.ok()) << committed.status();
  ASSERT_EQ(committed->partitions(0).error_code(), ErrorCode::NONE);
  google::protobuf::Value root;
  page = Body(HttpGet(server_->admin().port, "/admin/groups"));
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(page, &root).ok()) << page;
  bool found = false;
  for (const auto& g : Field(root, "groups").list_value().values()) {
    if (Field(g, "group_id").string_value() != "elsewhere") continue;
    found = true;
    EXPECT_EQ(Field(g, "lag").number_value(), -1) << page;
    ASSERT_EQ(Field(g, "offsets").list_value().values_size(), 1) << page;
    const auto& o = Field(g, "offsets").list_value().values(0);
    EXPECT_EQ(Field(o, "log_end_offset").number_value(), -1) << page;
    EXPECT_EQ(Field(o, "lag").number_value(), -1) << page;
  }
  EXPECT_TRUE(found) << page;
  std::this_thread::sleep_for(700ms);  // a metrics refresh of the group thread
  metrics = Body(HttpGet(server_->admin().port, "/metrics"));
  EXPECT_EQ(metrics.find("group=\"elsewhere\""), std::string::npos) << metrics;
  EXPECT_NE(metrics.find(total), std::string::npos) << metrics;
}

}  // namespace
}  // namespace brook::testing
