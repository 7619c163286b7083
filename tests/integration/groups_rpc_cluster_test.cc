// Consumer groups on a three-member coordinator quorum (real processes): a
// follower answers NOT_COORDINATOR naming the leader, a group formed on the
// leader is replicated, and after kill -9 of the coordinator leader the
// committed offsets survive on the new leader and the members carry on and
// rejoin there (NOT_COORDINATOR followed to the new leader); a leader that
// stops gracefully releases the joins waiting on it at once.
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/coordinator_client.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;
using proto::ErrorCode;

constexpr auto kCallTimeout = 5000ms;
constexpr int32_t kSessionMs = 10000;

// A name server and a 3-member coordinator quorum, no brokers, with fast
// fail-over timings and no initial rebalance delay.
ClusterOptions QuorumOnly() {
  ClusterOptions o;
  o.nameservers = 1;
  o.coordinators = 3;
  o.brokers = 0;
  o.config = FastFailoverConfig();
  o.coordinator_args = {"--group-initial-rebalance-delay-ms=0"};
  return o;
}

// One request; the response header parsed as Resp even when it carries an
// error code.
template <typename Resp>
absl::StatusOr<Resp> Call(rpc::RpcClient& client, proto::Api api,
                          const google::protobuf::Message& req) {
  return CallParsed<Resp>(client, api, req, kCallTimeout);
}

// Sends `req` to coordinator `*id` and follows NOT_COORDINATOR answers to
// the leader they name (by address), moving on to another running member
// when one is unreachable or names no leader, until `timeout`. `*id` is the
// member that answered; `*followed` counts the NOT_COORDINATOR redirects.
template <typename Resp>
absl::StatusOr<Resp> CallFollowing(Cluster& cluster, int* id, proto::Api api,
                                   const google::protobuf::Message& req, int* followed = nullptr,
                                   std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  absl::Status last = absl::UnavailableError("no attempt");
  auto next_member = [&] {
    std::vector<int> ids = cluster.ids(Role::kCoordinator);
    for (size_t i = 0; i < ids.size(); ++i) {
      int candidate = ids[(i + static_cast<size_t>(*id)) % ids.size()];
      if (candidate != *id && cluster.running(Role::kCoordinator, candidate)) return candidate;
    }
    return *id;
  };
  while (std::chrono::steady_clock::now() < deadline) {
    if (!cluster.running(Role::kCoordinator, *id)) {
      *id = next_member();
      continue;
    }
    auto conn = cluster.Connect(Role::kCoordinator, *id);
    if (!conn.ok()) {
      last = conn.status();
      *id = next_member();
      std::this_thread::sleep_for(50ms);
      continue;
    }
    auto r = Call<Resp>(**conn, api, req);
    if (!r.ok()) {
      last = r.status();
      (*conn)->Close();
      *id = next_member();
      std::this_thread::sleep_for(50ms);
      continue;
    }
    if (r->error_code() != ErrorCode::NOT_COORDINATOR) return r;
    last = absl::UnavailableError(absl::StrCat("coordinator ", *id, ": ", r->error_message()));
    auto leader = client::CoordinatorClient::LeaderFromMessage(r->error_message());
    int named = -1;
    if (leader) {
      for (int c : cluster.ids(Role::kCoordinator)) {
        if (cluster.CoordinatorAddress(c).port == leader->port) named = c;
      }
    }
    if (named > 0 && named != *id) {
      *id = named;
      if (followed != nullptr) ++*followed;
    } else {
      std::this_thread::sleep_for(50ms);  // an election is in progress
      if (!leader) *id = next_member();
    }
  }
  return last;
}

std::string Assignment(const std::string& topic, std::vector<int32_t> partitions) {
  proto::ConsumerAssignment a;
  auto* tp = a.add_partitions();
  tp->set_topic(topic);
  for (int32_t p : partitions) tp->add_partitions(p);
  return a.SerializeAsString();
}

proto::JoinGroupRequest JoinReq(const std::string& group, const std::string& member_id) {
  proto::JoinGroupRequest r;
  r.set_group_id(group);
  r.set_member_id(member_id);
  r.set_session_timeout_ms(kSessionMs);
  r.set_rebalance_timeout_ms(kSessionMs);
  r.set_protocol_type("consumer");
  r.set_client_id("cl");
  auto* p = r.add_protocols();
  p->set_name("range");
  p->set_metadata("subscription");
  return r;
}

proto::SyncGroupRequest SyncReq(const std::string& group, const std::string& member,
                                int32_t generation,
                                std::vector<std::pair<std::string, std::string>> assignments = {}) {
  proto::SyncGroupRequest r;
  r.set_group_id(group);
  r.set_member_id(member);
  r.set_generation_id(generation);
  for (auto& [m, a] : assignments) {
    auto* out = r.add_assignments();
    out->set_member_id(m);
    out->set_assignment(a);
  }
  return r;
}

proto::HeartbeatRequest HeartbeatReq(const std::string& group, const std::string& member,
                                     int32_t generation) {
  proto::HeartbeatRequest r;
  r.set_group_id(group);
  r.set_member_id(member);
  r.set_generation_id(generation);
  return r;
}

proto::OffsetCommitRequest CommitReq(const std::string& group, const std::string& member,
                                     int32_t generation, int32_t partition, int64_t offset) {
  proto::OffsetCommitRequest r;
  r.set_group_id(group);
  r.set_member_id(member);
  r.set_generation_id(generation);
  auto* p = r.add_partitions();
  p->set_topic("t");
  p->set_partition(partition);
  p->set_offset(offset);
  return r;
}

proto::OffsetFetchRequest FetchReq(const std::string& group) {
  proto::OffsetFetchRequest r;
  r.set_group_id(group);
  return r;
}

std::map<int32_t, int64_t> Offsets(const proto::OffsetFetchResponse& r) {
  std::map<int32_t, int64_t> out;
  for (const auto& p : r.partitions()) out[p.partition()] = p.offset();
  return out;
}

TEST(GroupsRpcClusterTest, OffsetsAndMembersSurviveCoordinatorLeaderKill) {
  Cluster cluster(QuorumOnly());
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  auto leader = cluster.WaitForCoordinatorLeader(10s);
  ASSERT_TRUE(leader.ok()) << leader.status();

  // A follower names the leader; the request is then served there.
  int at = *leader % 3 + 1;  // a follower
  int followed = 0;
  auto first = CallFollowing<proto::JoinGroupResponse>(cluster, &at, proto::API_JOIN_GROUP,
                                                       JoinReq("g", ""), &followed);
  ASSERT_TRUE(first.ok()) << first.status() << cluster.LogTails();
  ASSERT_EQ(first->error_code(), ErrorCode::MEMBER_ID_REQUIRED);
  EXPECT_EQ(at, *leader);
  EXPECT_GE(followed, 1) << "the follower did not name the leader";
  const std::string a = first->member_id();
  EXPECT_NE(a.find(absl::StrCat("-c", *leader, "t")), std::string::npos) << a;

  // One member forms the group with partitions 0..1; offsets committed.
  auto ja =
      CallFollowing<proto::JoinGroupResponse>(cluster, &at, proto::API_JOIN_GROUP, JoinReq("g", a));
  ASSERT_TRUE(ja.ok());
  ASSERT_EQ(ja->error_code(), ErrorCode::NONE) << ja->error_message();
  const int32_t gen = ja->generation_id();
  auto sa = CallFollowing<proto::SyncGroupResponse>(
      cluster, &at, proto::API_SYNC_GROUP, SyncReq("g", a, gen, {{a, Assignment("t", {0, 1})}}));
  ASSERT_TRUE(sa.ok());
  ASSERT_EQ(sa->error_code(), ErrorCode::NONE);
  for (int32_t p : {0, 1}) {
    auto c = CallFollowing<proto::OffsetCommitResponse>(cluster, &at, proto::API_OFFSET_COMMIT,
                                                        CommitReq("g", a, gen, p, 1000 + p));
    ASSERT_TRUE(c.ok());
    ASSERT_EQ(c->partitions(0).error_code(), ErrorCode::NONE);
  }
  auto standalone = CallFollowing<proto::OffsetCommitResponse>(
      cluster, &at, proto::API_OFFSET_COMMIT, CommitReq("standalone", "", -1, 4, 44));
  ASSERT_TRUE(standalone.ok());
  ASSERT_EQ(standalone->partitions(0).error_code(), ErrorCode::NONE);

  // Every follower holds the group state as a replica (/admin/groups).
  for (int c : cluster.ids(Role::kCoordinator)) {
    if (c == *leader) continue;
    std::string page;
    const auto until = std::chrono::steady_clock::now() + 5s;
    do {
      page = HttpGet(cluster.process(Role::kCoordinator, c).admin().port, "/admin/groups");
      if (page.find("\"offset\":44") != std::string::npos) break;
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < until);
    EXPECT_NE(page.find("\"source\":\"replica\""), std::string::npos) << page;
    EXPECT_NE(page.find("\"offset\":1001"), std::string::npos) << page;
    EXPECT_NE(page.find("\"offset\":44"), std::string::npos) << page;
  }
  const auto killed_at = std::chrono::steady_clock::now();
  cluster.Kill(Role::kCoordinator, *leader);
  auto new_leader = cluster.WaitForCoordinatorLeader(10s, *leader);
  ASSERT_TRUE(new_leader.ok()) << new_leader.status() << cluster.LogTails();

  // Committed offsets survive on the new leader; the request sent to the
  // dead leader's address first moves on and follows to the new one.
  at = *leader;
  auto fetched = CallFollowing<proto::OffsetFetchResponse>(cluster, &at, proto::API_OFFSET_FETCH,
                                                           FetchReq("g"));
  ASSERT_TRUE(fetched.ok()) << fetched.status() << cluster.LogTails();
  EXPECT_EQ(at, *new_leader);
  EXPECT_EQ(Offsets(*fetched), (std::map<int32_t, int64_t>{{0, 1000}, {1, 1001}}));
  auto fetched_s = CallFollowing<proto::OffsetFetchResponse>(cluster, &at, proto::API_OFFSET_FETCH,
                                                             FetchReq("standalone"));
  ASSERT_TRUE(fetched_s.ok());
  EXPECT_EQ(Offsets(*fetched_s), (std::map<int32_t, int64_t>{{4, 44}}));
  std::printf("coordinator %d killed; %d serves the group after %lld ms\n", *leader, *new_leader,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - killed_at)
                                         .count()));

  // The member carries on in its generation (the group was Stable) ...
  auto beat = CallFollowing<proto::HeartbeatResponse>(cluster, &at, proto::API_HEARTBEAT,
                                                      HeartbeatReq("g", a, gen));
  ASSERT_TRUE(beat.ok());
  EXPECT_EQ(beat->error_code(), ErrorCode::NONE) << beat->error_message();
  auto c2 = CallFollowing<proto::OffsetCommitResponse>(cluster, &at, proto::API_OFFSET_COMMIT,
                                                       CommitReq("g", a, gen, 1, 1500));
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->partitions(0).error_code(), ErrorCode::NONE);

  // ... and a second member joins on the new leader: member ids of the new
  // incarnation name it; the old member rejoins with its id.
  at = 6 - *leader - *new_leader;  // the remaining follower
  auto second = CallFollowing<proto::JoinGroupResponse>(cluster, &at, proto::API_JOIN_GROUP,
                                                        JoinReq("g", ""));
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->error_code(), ErrorCode::MEMBER_ID_REQUIRED);
  const std::string b = second->member_id();
  EXPECT_NE(b.find(absl::StrCat("-c", *new_leader, "t")), std::string::npos) << b;
  ASSERT_EQ(at, *new_leader);
  auto leader_conn = cluster.Connect(Role::kCoordinator, *new_leader);
  ASSERT_TRUE(leader_conn.ok());
  std::shared_ptr<rpc::RpcClient> lc = *leader_conn;
  auto jb = std::async(std::launch::async, [lc, b] {
    return Call<proto::JoinGroupResponse>(*lc, proto::API_JOIN_GROUP, JoinReq("g", b));
  });
  // The old member learns of the rebalance from its heartbeat and rejoins.
  ErrorCode code = ErrorCode::NONE;
  for (int i = 0; i < 100 && code != ErrorCode::REBALANCE_IN_PROGRESS; ++i) {
    auto hb = CallFollowing<proto::HeartbeatResponse>(cluster, &at, proto::API_HEARTBEAT,
                                                      HeartbeatReq("g", a, gen));
    ASSERT_TRUE(hb.ok());
    code = hb->error_code();
    if (code != ErrorCode::REBALANCE_IN_PROGRESS) std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(code, ErrorCode::REBALANCE_IN_PROGRESS);
  auto ra =
      CallFollowing<proto::JoinGroupResponse>(cluster, &at, proto::API_JOIN_GROUP, JoinReq("g", a));
  auto rb = jb.get();
  ASSERT_TRUE(ra.ok() && rb.ok());
  ASSERT_EQ(ra->error_code(), ErrorCode::NONE) << ra->error_message();
  ASSERT_EQ(rb->error_code(), ErrorCode::NONE) << rb->error_message();
  EXPECT_EQ(ra->generation_id(), gen + 1);
  EXPECT_EQ(rb->generation_id(), gen + 1);
  const std::string group_leader = ra->leader();
  EXPECT_EQ(group_leader, a);
  auto sb = std::async(std::launch::async, [lc, b, g = gen + 1] {
    return Call<proto::SyncGroupResponse>(*lc, proto::API_SYNC_GROUP, SyncReq("g", b, g));
  });
  auto sa2 = CallFollowing<proto::SyncGroupResponse>(
      cluster, &at, proto::API_SYNC_GROUP,
      SyncReq("g", a, gen + 1, {{a, Assignment("t", {0})}, {b, Assignment("t", {1})}}));
  auto sb_r = sb.get();
  ASSERT_TRUE(sa2.ok() && sb_r.ok());
  EXPECT_EQ(sa2->error_code(), ErrorCode::NONE);
  EXPECT_EQ(sb_r->error_code(), ErrorCode::NONE);
  EXPECT_EQ(sb_r->assignment(), Assignment("t", {1}));
  auto c3 = CallFollowing<proto::OffsetCommitResponse>(cluster, &at, proto::API_OFFSET_COMMIT,
                                                       CommitReq("g", b, gen + 1, 1, 2000));
  ASSERT_TRUE(c3.ok());
  EXPECT_EQ(c3->partitions(0).error_code(), ErrorCode::NONE);
  auto c4 = CallFollowing<proto::OffsetCommitResponse>(cluster, &at, proto::API_OFFSET_COMMIT,
                                                       CommitReq("g", a, gen + 1, 1, 2001));
  ASSERT_TRUE(c4.ok());
  EXPECT_EQ(c4->partitions(0).error_code(), ErrorCode::PARTITION_NOT_OWNED);
  fetched = CallFollowing<proto::OffsetFetchResponse>(cluster, &at, proto::API_OFFSET_FETCH,
                                                      FetchReq("g"));
  ASSERT_TRUE(fetched.ok());
  EXPECT_EQ(Offsets(*fetched), (std::map<int32_t, int64_t>{{0, 1000}, {1, 2000}}));

  // The killed member comes back as a follower and catches up: it answers
  // NOT_COORDINATOR naming the new leader.
  ASSERT_TRUE(cluster.StartOne(Role::kCoordinator, *leader).ok()) << cluster.LogTails();
  auto conn = cluster.Connect(Role::kCoordinator, *leader);
  ASSERT_TRUE(conn.ok());
  absl::StatusOr<proto::OffsetFetchResponse> r;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    r = Call<proto::OffsetFetchResponse>(**conn, proto::API_OFFSET_FETCH, FetchReq("g"));
    if (r.ok() && r->error_code() == ErrorCode::NOT_COORDINATOR &&
        client::CoordinatorClient::LeaderFromMessage(r->error_message()).has_value()) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->error_code(), ErrorCode::NOT_COORDINATOR);
  auto named = client::CoordinatorClient::LeaderFromMessage(r->error_message());
  ASSERT_TRUE(named.has_value()) << r->error_message();
  EXPECT_EQ(named->port, cluster.CoordinatorAddress(*new_leader).port);
}

// A leader that stops gracefully (SIGTERM) hands leadership over and answers
// the joins waiting on it at once (NOT_COORDINATOR, or the connection
// closes), rather than holding them to the rebalance timeout; the members
// then form the next generation on the new leader.
TEST(GroupsRpcClusterTest, GracefulLeaderStopReleasesWaitingJoins) {
  Cluster cluster(QuorumOnly());
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  auto leader = cluster.WaitForCoordinatorLeader(10s);
  ASSERT_TRUE(leader.ok()) << leader.status();
  int at = *leader;
  auto first = CallFollowing<proto::JoinGroupResponse>(cluster, &at, proto::API_JOIN_GROUP,
                                                       JoinReq("g", ""));
  ASSERT_TRUE(first.ok());
  const std::string a = first->member_id();
  auto ja =
      CallFollowing<proto::JoinGroupResponse>(cluster, &at, proto::API_JOIN_GROUP, JoinReq("g", a));
  ASSERT_TRUE(ja.ok());
  ASSERT_EQ(ja->error_code(), ErrorCode::NONE);
  auto sa = CallFollowing<proto::SyncGroupResponse>(
      cluster, &at, proto::API_SYNC_GROUP, SyncReq("g", a, 1, {{a, Assignment("t", {0})}}));
  ASSERT_TRUE(sa.ok());
  ASSERT_EQ(sa->error_code(), ErrorCode::NONE);
  auto second = CallFollowing<proto::JoinGroupResponse>(cluster, &at, proto::API_JOIN_GROUP,
                                                        JoinReq("g", ""));
  ASSERT_TRUE(second.ok());
  const std::string b = second->member_id();

  // b's join waits for a to rejoin (up to the 10 s rebalance timeout).
  auto conn = cluster.Connect(Role::kCoordinator, *leader);
  ASSERT_TRUE(conn.ok());
  std::shared_ptr<rpc::RpcClient> lc = *conn;
  auto waiting = std::async(std::launch::async, [lc, b] {
    return Call<proto::JoinGroupResponse>(*lc, proto::API_JOIN_GROUP, JoinReq("g", b));
  });
  std::this_thread::sleep_for(200ms);
  ASSERT_EQ(waiting.wait_for(0ms), std::future_status::timeout) << "the join did not wait";
  const auto stopped_at = std::chrono::steady_clock::now();
  EXPECT_EQ(cluster.Terminate(Role::kCoordinator, *leader), 0);
  ASSERT_EQ(waiting.wait_for(3s), std::future_status::ready) << "the waiting join was held";
  auto released = waiting.get();
  if (released.ok()) {
    EXPECT_EQ(released->error_code(), ErrorCode::NOT_COORDINATOR) << released->DebugString();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, 3s);

  // On the new leader the group is at its last durable state: a (Stable,
  // generation 1) is known, b's id (handed out for the rebalance that was in
  // progress) is not: b joins afresh and gets an id naming the new leader.
  auto new_leader = cluster.WaitForCoordinatorLeader(10s, *leader);
  ASSERT_TRUE(new_leader.ok()) << new_leader.status();
  auto nc = cluster.Connect(Role::kCoordinator, *new_leader);
  ASSERT_TRUE(nc.ok());
  std::shared_ptr<rpc::RpcClient> nlc = *nc;
  // (The new leader may not serve groups yet: CallFollowing retries.)
  int at2 = *new_leader;
  auto stale = CallFollowing<proto::JoinGroupResponse>(cluster, &at2, proto::API_JOIN_GROUP,
                                                       JoinReq("g", b));
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->error_code(), ErrorCode::UNKNOWN_MEMBER_ID);
  ASSERT_EQ(at2, *new_leader);
  auto fresh = Call<proto::JoinGroupResponse>(*nlc, proto::API_JOIN_GROUP, JoinReq("g", ""));
  ASSERT_TRUE(fresh.ok());
  ASSERT_EQ(fresh->error_code(), ErrorCode::MEMBER_ID_REQUIRED);
  const std::string b2 = fresh->member_id();
  EXPECT_NE(b2.find(absl::StrCat("-c", *new_leader, "t")), std::string::npos) << b2;
  auto jb = std::async(std::launch::async, [nlc, b2] {
    return Call<proto::JoinGroupResponse>(*nlc, proto::API_JOIN_GROUP, JoinReq("g", b2));
  });
  std::this_thread::sleep_for(100ms);
  auto ra = Call<proto::JoinGroupResponse>(*nlc, proto::API_JOIN_GROUP, JoinReq("g", a));
  auto rb = jb.get();
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->error_code(), ErrorCode::NONE) << ra->error_message();
  EXPECT_EQ(rb->error_code(), ErrorCode::NONE) << rb->error_message();
  EXPECT_EQ(ra->generation_id(), 2);
  EXPECT_EQ(rb->generation_id(), 2);
}

}  // namespace
}  // namespace brook::testing
