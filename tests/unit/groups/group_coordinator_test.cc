// Tests of the consumer group state machine with fake time and an in-memory
// "log" standing in for the Raft metadata log.
#include "coordinator/groups/group_coordinator.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "gtest/gtest.h"

namespace brook::groups {
namespace {

using proto::ErrorCode;

// The durable log: appends records and confirms at once, or holds them until
// Release() (to see what waits on durability), or fails them.
class FakeLog {
 public:
  GroupCoordinator::PersistFn Fn() {
    return [this](std::vector<proto::MetadataRecord> records, GroupCoordinator::PersistDone done) {
      if (hold) {
        held_.push_back({std::move(records), std::move(done)});
        return;
      }
      Complete(std::move(records), std::move(done));
    };
  }
  void Release() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& [records, done] : held) Complete(std::move(records), std::move(done));
  }
  size_t held() const { return held_.size(); }

  bool hold = false;
  absl::Status fail;  // non-OK: the next writes fail (nothing appended)
  std::vector<proto::MetadataRecord> records;

 private:
  void Complete(std::vector<proto::MetadataRecord> recs, GroupCoordinator::PersistDone done) {
    if (fail.ok()) {
      for (auto& r : recs) records.push_back(std::move(r));
    }
    done(fail);
  }
  std::vector<std::pair<std::vector<proto::MetadataRecord>, GroupCoordinator::PersistDone>> held_;
};

GroupConfig TestConfig() {
  GroupConfig c;
  c.min_session_timeout_ms = 1000;
  c.max_session_timeout_ms = 60000;
  c.initial_rebalance_delay_ms = 0;
  c.max_group_size = 10;
  c.max_offset_metadata_bytes = 16;
  return c;
}

constexpr int32_t kSession = 10000;
constexpr int32_t kRebalance = 30000;

proto::JoinGroupRequest JoinReq(
    const std::string& group, const std::string& member_id,
    std::vector<std::pair<std::string, std::string>> protocols = {{"range", "sub"}},
    std::optional<std::string> instance = std::nullopt) {
  proto::JoinGroupRequest r;
  r.set_group_id(group);
  r.set_member_id(member_id);
  r.set_session_timeout_ms(kSession);
  r.set_rebalance_timeout_ms(kRebalance);
  r.set_protocol_type("consumer");
  r.set_client_id("client");
  if (instance) r.set_group_instance_id(*instance);
  for (auto& [name, md] : protocols) {
    auto* p = r.add_protocols();
    p->set_name(name);
    p->set_metadata(md);
  }
  return r;
}

template <typename T>
using Slot = std::shared_ptr<std::optional<T>>;

class GroupTest : public ::testing::Test {
 protected:
  GroupTest() : gc_(std::make_unique<GroupCoordinator>(TestConfig(), log_.Fn())) {}

  Slot<proto::JoinGroupResponse> Join(const proto::JoinGroupRequest& req) {
    auto slot = std::make_shared<std::optional<proto::JoinGroupResponse>>();
    gc_->JoinGroup(req, "10.0.0.1", now_, [slot](const proto::JoinGroupResponse& r) {
      ASSERT_FALSE(slot->has_value()) << "join callback called twice";
      *slot = r;
    });
    return slot;
  }
  // KIP-394 first step: returns the member id handed out.
  std::string NewMemberId(const std::string& group, const std::string& metadata = "sub") {
    auto r = Join(JoinReq(group, "", {{"range", metadata}}));
    EXPECT_TRUE(r->has_value());
    EXPECT_EQ((*r)->error_code(), ErrorCode::MEMBER_ID_REQUIRED);
    EXPECT_FALSE((*r)->member_id().empty());
    return (*r)->member_id();
  }
  Slot<proto::SyncGroupResponse> Sync(
      const std::string& group, const std::string& member, int32_t generation,
      std::vector<std::pair<std::string, std::string>> assignments = {},
      std::optional<std::string> instance = std::nullopt) {
    proto::SyncGroupRequest req;
    req.set_group_id(group);
    req.set_member_id(member);
    req.set_generation_id(generation);
    if (instance) req.set_group_instance_id(*instance);
    for (auto& [m, a] : assignments) {
      auto* out = req.add_assignments();
      out->set_member_id(m);
      out->set_assignment(a);
    }
    auto slot = std::make_shared<std::optional<proto::SyncGroupResponse>>();
    gc_->SyncGroup(req, now_, [slot](const proto::SyncGroupResponse& r) {
      ASSERT_FALSE(slot->has_value()) << "sync callback called twice";
      *slot = r;
    });
    return slot;
  }
  ErrorCode Heartbeat(const std::string& group, const std::string& member, int32_t generation,
                      std::optional<std::string> instance = std::nullopt) {
    proto::HeartbeatRequest req;
    req.set_group_id(group);
    req.set_member_id(member);
    req.set_generation_id(generation);
    if (instance) req.set_group_instance_id(*instance);
    return gc_->Heartbeat(req, now_).error_code();
  }
  proto::LeaveGroupResponse Leave(const std::string& group, const std::string& member) {
    proto::LeaveGroupRequest req;
    req.set_group_id(group);
    req.add_members()->set_member_id(member);
    return gc_->LeaveGroup(req, now_);
  }
  Slot<proto::OffsetCommitResponse> Commit(const std::string& group, const std::string& member,
                                           int32_t generation, const std::string& topic,
                                           int32_t partition, int64_t offset,
                                           const std::string& metadata = "") {
    proto::OffsetCommitRequest req;
    req.set_group_id(group);
    req.set_member_id(member);
    req.set_generation_id(generation);
    auto* p = req.add_partitions();
    p->set_topic(topic);
    p->set_partition(partition);
    p->set_offset(offset);
    p->set_leader_epoch(3);
    p->set_metadata(metadata);
    auto slot = std::make_shared<std::optional<proto::OffsetCommitResponse>>();
    gc_->OffsetCommit(req, now_, [slot](const proto::OffsetCommitResponse& r) {
      ASSERT_FALSE(slot->has_value()) << "commit callback called twice";
      *slot = r;
    });
    return slot;
  }
  int64_t Fetched(const std::string& group, const std::string& topic, int32_t partition,
                  std::string* metadata = nullptr) {
    proto::OffsetFetchRequest req;
    req.set_group_id(group);
    auto* p = req.add_partitions();
    p->set_topic(topic);
    p->set_partition(partition);
    auto r = gc_->OffsetFetch(req);
    EXPECT_EQ(r.partitions_size(), 1);
    if (metadata) *metadata = r.partitions(0).metadata();
    return r.partitions(0).offset();
  }
  proto::DeleteGroupsResponse Delete(const std::vector<std::string>& groups) {
    proto::DeleteGroupsRequest req;
    for (const auto& g : groups) req.add_groups(g);
    std::optional<proto::DeleteGroupsResponse> out;
    gc_->DeleteGroups(req, now_, [&](const proto::DeleteGroupsResponse& r) { out = r; });
    EXPECT_TRUE(out.has_value());
    return out.value_or(proto::DeleteGroupsResponse());
  }
  proto::DescribedGroup Describe(const std::string& group) {
    proto::DescribeGroupsRequest req;
    req.add_groups(group);
    return gc_->DescribeGroups(req).groups(0);
  }
  void Advance(int64_t ms) {
    now_ += ms;
    gc_->Tick(now_);
  }

  // A Stable group of `n` dynamic members; returns their ids, leader first.
  std::vector<std::string> StableGroup(const std::string& group, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) ids.push_back(NewMemberId(group, "sub" + std::to_string(i)));
    std::vector<Slot<proto::JoinGroupResponse>> joins;
    for (int i = 0; i < n; ++i) {
      joins.push_back(Join(JoinReq(group, ids[i], {{"range", "sub" + std::to_string(i)}})));
    }
    for (auto& j : joins) EXPECT_TRUE(j->has_value());
    const std::string leader = (*joins[0])->leader();
    const int32_t gen = (*joins[0])->generation_id();
    std::vector<std::pair<std::string, std::string>> assignment;
    for (const auto& id : ids) assignment.push_back({id, "parts-of-" + id});
    std::vector<Slot<proto::SyncGroupResponse>> syncs;
    for (const auto& id : ids) {
      syncs.push_back(Sync(group, id, gen, id == leader ? assignment : decltype(assignment){}));
    }
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_TRUE(syncs[i]->has_value());
      EXPECT_EQ((*syncs[i])->assignment(), "parts-of-" + ids[i]);
    }
    EXPECT_EQ(gc_->GroupState(group), "Stable");
    // Leader first.
    std::stable_partition(ids.begin(), ids.end(),
                          [&](const std::string& id) { return id == leader; });
    return ids;
  }

  FakeLog log_;
  int64_t now_ = 1000;
  std::unique_ptr<GroupCoordinator> gc_;
};

TEST_F(GroupTest, SingleMemberJoinSyncHeartbeat) {
  const std::string id = NewMemberId("g");
  EXPECT_EQ(gc_->GroupState("g"), "Empty");
  auto join = Join(JoinReq("g", id));
  ASSERT_TRUE(join->has_value());
  EXPECT_EQ((*join)->error_code(), ErrorCode::NONE);
  EXPECT_EQ((*join)->generation_id(), 1);
  EXPECT_EQ((*join)->leader(), id);
  EXPECT_EQ((*join)->member_id(), id);
  EXPECT_EQ((*join)->protocol_name(), "range");
  ASSERT_EQ((*join)->members_size(), 1);
  EXPECT_EQ((*join)->members(0).metadata(), "sub");
  EXPECT_EQ(gc_->GroupState("g"), "CompletingRebalance");
  EXPECT_EQ(Heartbeat("g", id, 1), ErrorCode::NONE);

  auto sync = Sync("g", id, 1, {{id, "p0,p1"}});
  ASSERT_TRUE(sync->has_value());
  EXPECT_EQ((*sync)->error_code(), ErrorCode::NONE);
  EXPECT_EQ((*sync)->assignment(), "p0,p1");
  EXPECT_EQ(gc_->GroupState("g"), "Stable");
  EXPECT_EQ(Heartbeat("g", id, 1), ErrorCode::NONE);
  EXPECT_EQ(Heartbeat("g", id, 0), ErrorCode::ILLEGAL_GENERATION);
  EXPECT_EQ(Heartbeat("g", "nobody", 1), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(Heartbeat("other", id, 1), ErrorCode::UNKNOWN_MEMBER_ID);

  // The Stable group was made durable with its assignment.
  ASSERT_EQ(log_.records.size(), 1u);
  ASSERT_TRUE(log_.records[0].has_group());
  EXPECT_EQ(log_.records[0].group().generation(), 1);
  ASSERT_EQ(log_.records[0].group().members_size(), 1);
  EXPECT_EQ(log_.records[0].group().members(0).assignment(), "p0,p1");

  // A sync again in Stable returns the assignment at once.
  auto again = Sync("g", id, 1);
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->assignment(), "p0,p1");
}

TEST_F(GroupTest, SyncWaitsUntilAssignmentIsDurable) {
  const std::string id = NewMemberId("g");
  auto join = Join(JoinReq("g", id));
  ASSERT_TRUE(join->has_value());
  log_.hold = true;
  auto sync = Sync("g", id, 1, {{id, "a"}});
  EXPECT_FALSE(sync->has_value());
  EXPECT_EQ(gc_->GroupState("g"), "CompletingRebalance");
  log_.Release();
  ASSERT_TRUE(sync->has_value());
  EXPECT_EQ((*sync)->assignment(), "a");
  EXPECT_EQ(gc_->GroupState("g"), "Stable");
}

TEST_F(GroupTest, ThreeMembersLeaderAssignsFollowersReceive) {
  std::vector<std::string> ids = {NewMemberId("g", "m0"), NewMemberId("g", "m1"),
                                  NewMemberId("g", "m2")};
  auto j0 = Join(JoinReq("g", ids[0], {{"range", "m0"}}));
  EXPECT_FALSE(j0->has_value()) << "must wait for the other known members";
  auto j1 = Join(JoinReq("g", ids[1], {{"range", "m1"}}));
  EXPECT_FALSE(j1->has_value());
  auto j2 = Join(JoinReq("g", ids[2], {{"range", "m2"}}));
  ASSERT_TRUE(j0->has_value() && j1->has_value() && j2->has_value());
  const std::string leader = (*j0)->leader();
  EXPECT_EQ(leader, ids[0]);
  for (auto* j : {&j0, &j1, &j2}) {
    EXPECT_EQ((**j)->generation_id(), 1);
    EXPECT_EQ((**j)->leader(), leader);
    EXPECT_EQ((**j)->members_size(), (**j)->member_id() == leader ? 3 : 0);
  }
  // The leader sees every member's metadata.
  std::map<std::string, std::string> seen;
  for (const auto& m : (*j0)->members()) seen[m.member_id()] = m.metadata();
  EXPECT_EQ(seen,
            (std::map<std::string, std::string>{{ids[0], "m0"}, {ids[1], "m1"}, {ids[2], "m2"}}));

  // Followers sync first and wait for the leader.
  auto s1 = Sync("g", ids[1], 1);
  auto s2 = Sync("g", ids[2], 1);
  EXPECT_FALSE(s1->has_value());
  EXPECT_FALSE(s2->has_value());
  auto s0 = Sync("g", ids[0], 1, {{ids[0], "A"}, {ids[1], "B"}, {ids[2], "C"}, {"ghost", "X"}});
  ASSERT_TRUE(s0->has_value() && s1->has_value() && s2->has_value());
  EXPECT_EQ((*s0)->assignment(), "A");
  EXPECT_EQ((*s1)->assignment(), "B");
  EXPECT_EQ((*s2)->assignment(), "C");
  EXPECT_EQ((*s1)->protocol_name(), "range");
  EXPECT_EQ(gc_->GroupState("g"), "Stable");

  auto d = Describe("g");
  EXPECT_EQ(d.state(), "Stable");
  ASSERT_EQ(d.members_size(), 3);
  EXPECT_EQ(d.members(1).assignment(), "B");
  EXPECT_EQ(d.members(1).client_host(), "10.0.0.1");
}

TEST_F(GroupTest, MemberLeavesTriggersRebalance) {
  auto ids = StableGroup("g", 3);
  const std::string gone = ids[2];
  auto resp = Leave("g", gone);
  ASSERT_EQ(resp.members_size(), 1);
  EXPECT_EQ(resp.members(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(gc_->GroupState("g"), "PreparingRebalance");
  EXPECT_EQ(Heartbeat("g", ids[0], 1), ErrorCode::REBALANCE_IN_PROGRESS);
  EXPECT_EQ(Heartbeat("g", gone, 1), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(Leave("g", gone).members(0).error_code(), ErrorCode::UNKNOWN_MEMBER_ID);

  auto j0 = Join(JoinReq("g", ids[0]));
  EXPECT_FALSE(j0->has_value());
  auto j1 = Join(JoinReq("g", ids[1]));
  ASSERT_TRUE(j0->has_value() && j1->has_value());
  EXPECT_EQ((*j0)->generation_id(), 2);
  EXPECT_EQ((*j0)->leader(), ids[0]);
  EXPECT_EQ((*j0)->members_size(), 2);

  // The leader leaving hands leadership to a remaining member.
  Sync("g", ids[0], 2, {{ids[0], "x"}, {ids[1], "y"}});
  auto s1 = Sync("g", ids[1], 2);
  ASSERT_TRUE(s1->has_value());
  EXPECT_EQ((*s1)->assignment(), "y");
  Leave("g", ids[0]);
  auto j = Join(JoinReq("g", ids[1]));
  ASSERT_TRUE(j->has_value());
  EXPECT_EQ((*j)->generation_id(), 3);
  EXPECT_EQ((*j)->leader(), ids[1]);

  // The last member leaving makes the group Empty (durably).
  Leave("g", ids[1]);
  EXPECT_EQ(gc_->GroupState("g"), "Empty");
  EXPECT_EQ(gc_->GroupGeneration("g"), 4);
  ASSERT_TRUE(log_.records.back().has_group());
  EXPECT_EQ(log_.records.back().group().members_size(), 0);
}

TEST_F(GroupTest, SessionTimeoutRemovesMember) {
  auto ids = StableGroup("g", 2);
  for (int i = 0; i < 3; ++i) {
    Advance(kSession / 4);
    EXPECT_EQ(Heartbeat("g", ids[0], 1), ErrorCode::NONE);
  }
  EXPECT_EQ(gc_->GroupState("g"), "Stable");
  Advance(kSession / 4);  // ids[1] has now been silent for a whole session
  EXPECT_EQ(gc_->GroupState("g"), "PreparingRebalance");
  EXPECT_EQ(Heartbeat("g", ids[1], 1), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(Heartbeat("g", ids[0], 1), ErrorCode::REBALANCE_IN_PROGRESS);
  auto j = Join(JoinReq("g", ids[0]));
  ASSERT_TRUE(j->has_value());
  EXPECT_EQ((*j)->generation_id(), 2);
  EXPECT_EQ((*j)->members_size(), 1);
  EXPECT_EQ(Describe("g").members_size(), 1);
}

TEST_F(GroupTest, RebalanceTimeoutDropsLaggingMember) {
  auto ids = StableGroup("g", 2);
  const auto deadline = now_ + kRebalance;
  auto j0 = Join(JoinReq("g", ids[0]));  // the leader rejoining starts a rebalance
  EXPECT_FALSE(j0->has_value());
  // The lagging member keeps heartbeating but never rejoins.
  while (now_ + 2000 < deadline) {
    Advance(2000);
    EXPECT_EQ(Heartbeat("g", ids[1], 1), ErrorCode::REBALANCE_IN_PROGRESS);
    EXPECT_FALSE(j0->has_value());
  }
  Advance(deadline - now_);
  ASSERT_TRUE(j0->has_value());
  EXPECT_EQ((*j0)->error_code(), ErrorCode::NONE);
  EXPECT_EQ((*j0)->generation_id(), 2);
  ASSERT_EQ((*j0)->members_size(), 1);
  EXPECT_EQ((*j0)->members(0).member_id(), ids[0]);
  EXPECT_EQ(Heartbeat("g", ids[1], 1), ErrorCode::UNKNOWN_MEMBER_ID);
  // Its late rejoin with the old id is refused; it must start over.
  auto late = Join(JoinReq("g", ids[1]));
  ASSERT_TRUE(late->has_value());
  EXPECT_EQ((*late)->error_code(), ErrorCode::UNKNOWN_MEMBER_ID);
}

TEST_F(GroupTest, SyncTimeoutRemovesLeaderThatNeverAssigns) {
  std::vector<std::string> ids = {NewMemberId("g"), NewMemberId("g")};
  auto j0 = Join(JoinReq("g", ids[0]));
  auto j1 = Join(JoinReq("g", ids[1]));
  ASSERT_TRUE(j1->has_value());
  const std::string leader = (*j1)->leader();
  const std::string follower = leader == ids[0] ? ids[1] : ids[0];
  auto s = Sync("g", follower, 1);
  const int64_t deadline = now_ + kRebalance;
  while (now_ + 5000 < deadline) {  // the leader stays alive but never assigns
    Advance(5000);
    EXPECT_EQ(Heartbeat("g", leader, 1), ErrorCode::NONE);
  }
  Advance(deadline - now_ - 1);
  EXPECT_FALSE(s->has_value());
  Advance(1);
  ASSERT_TRUE(s->has_value());
  EXPECT_EQ((*s)->error_code(), ErrorCode::REBALANCE_IN_PROGRESS);
  EXPECT_EQ(Heartbeat("g", leader, 1), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(gc_->GroupState("g"), "PreparingRebalance");
}

TEST_F(GroupTest, StaticMemberRestartsWithoutRebalanceAndOldIdIsFenced) {
  auto a = Join(JoinReq("g", "", {{"range", "sa"}}, "inst-a"));
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->error_code(), ErrorCode::NONE) << "static members need no MEMBER_ID_REQUIRED";
  const std::string a_id = (*a)->member_id();
  auto b = Join(JoinReq("g", "", {{"range", "sb"}}, "inst-b"));
  EXPECT_FALSE(b->has_value());
  EXPECT_EQ(Heartbeat("g", a_id, 1, "inst-a"), ErrorCode::REBALANCE_IN_PROGRESS);
  auto a2 = Join(JoinReq("g", a_id, {{"range", "sa"}}, "inst-a"));
  ASSERT_TRUE(a2->has_value() && b->has_value());
  const std::string b_id = (*b)->member_id();
  ASSERT_EQ((*a2)->leader(), a_id);
  ASSERT_EQ((*b)->generation_id(), 2);
  auto sb = Sync("g", b_id, 2, {}, "inst-b");
  Sync("g", a_id, 2, {{a_id, "PA"}, {b_id, "PB"}}, "inst-a");
  ASSERT_TRUE(sb->has_value());
  EXPECT_EQ((*sb)->assignment(), "PB");
  const size_t records_before = log_.records.size();

  // inst-b restarts: same instance id and metadata, no member id.
  auto b2 = Join(JoinReq("g", "", {{"range", "sb"}}, "inst-b"));
  ASSERT_TRUE(b2->has_value());
  EXPECT_EQ((*b2)->error_code(), ErrorCode::NONE);
  const std::string b2_id = (*b2)->member_id();
  EXPECT_NE(b2_id, b_id);
  EXPECT_EQ((*b2)->generation_id(), 2);
  EXPECT_EQ((*b2)->leader(), a_id);
  EXPECT_EQ((*b2)->members_size(), 0);
  EXPECT_EQ(gc_->GroupState("g"), "Stable");
  EXPECT_EQ(gc_->GroupGeneration("g"), 2);
  // The replacement is durable.
  ASSERT_EQ(log_.records.size(), records_before + 1);
  EXPECT_EQ(log_.records.back().group().members(1).member_id(), b2_id);

  auto sb2 = Sync("g", b2_id, 2, {}, "inst-b");
  ASSERT_TRUE(sb2->has_value());
  EXPECT_EQ((*sb2)->assignment(), "PB");
  EXPECT_EQ(Heartbeat("g", b2_id, 2, "inst-b"), ErrorCode::NONE);
  EXPECT_EQ(Heartbeat("g", a_id, 2, "inst-a"), ErrorCode::NONE);

  // The old incarnation is fenced everywhere.
  EXPECT_EQ(Heartbeat("g", b_id, 2, "inst-b"), ErrorCode::FENCED_INSTANCE_ID);
  auto old_sync = Sync("g", b_id, 2, {}, "inst-b");
  EXPECT_EQ((*old_sync)->error_code(), ErrorCode::FENCED_INSTANCE_ID);
  auto old_join = Join(JoinReq("g", b_id, {{"range", "sb"}}, "inst-b"));
  EXPECT_EQ((*old_join)->error_code(), ErrorCode::FENCED_INSTANCE_ID);
  proto::OffsetCommitRequest oc;
  oc.set_group_id("g");
  oc.set_member_id(b_id);
  oc.set_group_instance_id("inst-b");
  oc.set_generation_id(2);
  auto* p = oc.add_partitions();
  p->set_topic("t");
  p->set_offset(5);
  std::optional<proto::OffsetCommitResponse> ocr;
  gc_->OffsetCommit(oc, now_, [&](const proto::OffsetCommitResponse& r) { ocr = r; });
  ASSERT_TRUE(ocr.has_value());
  EXPECT_EQ(ocr->partitions(0).error_code(), ErrorCode::FENCED_INSTANCE_ID);
  EXPECT_EQ(gc_->GroupState("g"), "Stable");
}

TEST_F(GroupTest, StaticMemberWithChangedMetadataRebalances) {
  auto a = Join(JoinReq("g", "", {{"range", "sa"}}, "inst-a"));
  ASSERT_TRUE(a->has_value());
  const std::string a_id = (*a)->member_id();
  Sync("g", a_id, 1, {{a_id, "PA"}}, "inst-a");
  ASSERT_EQ(gc_->GroupState("g"), "Stable");
  auto a2 = Join(JoinReq("g", "", {{"range", "sa-more-topics"}}, "inst-a"));
  // The only member rejoined, so the rebalance completes at once.
  ASSERT_TRUE(a2->has_value());
  EXPECT_EQ((*a2)->generation_id(), 2);
  EXPECT_EQ((*a2)->leader(), (*a2)->member_id());
  ASSERT_EQ((*a2)->members_size(), 1);
  EXPECT_EQ((*a2)->members(0).metadata(), "sa-more-topics");
}

TEST_F(GroupTest, OffsetCommitValidationAndFetch) {
  auto ids = StableGroup("g", 2);
  auto ok = Commit("g", ids[0], 1, "t", 0, 42, "md");
  ASSERT_TRUE(ok->has_value());
  EXPECT_EQ((*ok)->partitions(0).error_code(), ErrorCode::NONE);
  std::string md;
  EXPECT_EQ(Fetched("g", "t", 0, &md), 42);
  EXPECT_EQ(md, "md");
  EXPECT_EQ(Fetched("g", "t", 1), -1);
  EXPECT_EQ(Fetched("nogroup", "t", 0), -1);

  auto stale = Commit("g", ids[0], 0, "t", 0, 50);
  EXPECT_EQ((*stale)->partitions(0).error_code(), ErrorCode::ILLEGAL_GENERATION);
  auto unknown = Commit("g", "stranger", 1, "t", 0, 50);
  EXPECT_EQ((*unknown)->partitions(0).error_code(), ErrorCode::UNKNOWN_MEMBER_ID);
  auto simple = Commit("g", "", -1, "t", 0, 50);
  EXPECT_EQ((*simple)->partitions(0).error_code(), ErrorCode::UNKNOWN_MEMBER_ID)
      << "a group with members refuses commits from outside it";
  auto big = Commit("g", ids[0], 1, "t", 0, 50, std::string(17, 'x'));
  EXPECT_EQ((*big)->partitions(0).error_code(), ErrorCode::OFFSET_METADATA_TOO_LARGE);
  auto negative = Commit("g", ids[0], 1, "t", 0, -5);
  EXPECT_EQ((*negative)->partitions(0).error_code(), ErrorCode::INVALID_REQUEST);
  EXPECT_EQ(Fetched("g", "t", 0), 42);

  // Answered, and visible, only once durable.
  log_.hold = true;
  auto held = Commit("g", ids[1], 1, "t", 1, 7);
  EXPECT_FALSE(held->has_value());
  EXPECT_EQ(Fetched("g", "t", 1), -1);
  log_.hold = false;
  log_.Release();
  ASSERT_TRUE(held->has_value());
  EXPECT_EQ((*held)->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Fetched("g", "t", 1), 7);

  // A failed write is reported and changes nothing.
  log_.fail = MakeError(ErrorCode::NOT_COORDINATOR, "lost leadership");
  auto failed = Commit("g", ids[1], 1, "t", 1, 9);
  EXPECT_EQ((*failed)->partitions(0).error_code(), ErrorCode::NOT_COORDINATOR);
  EXPECT_EQ(Fetched("g", "t", 1), 7);
  log_.fail = absl::OkStatus();

  // PreparingRebalance: commits of the ending generation are accepted.
  auto j0 = Join(JoinReq("g", ids[0]));
  ASSERT_EQ(gc_->GroupState("g"), "PreparingRebalance");
  auto during_prepare = Commit("g", ids[1], 1, "t", 1, 8);
  EXPECT_EQ((*during_prepare)->partitions(0).error_code(), ErrorCode::NONE);
  // CompletingRebalance: REBALANCE_IN_PROGRESS.
  auto j1 = Join(JoinReq("g", ids[1]));
  ASSERT_EQ(gc_->GroupState("g"), "CompletingRebalance");
  auto during = Commit("g", ids[1], 2, "t", 1, 9);
  EXPECT_EQ((*during)->partitions(0).error_code(), ErrorCode::REBALANCE_IN_PROGRESS);
  auto old_gen = Commit("g", ids[1], 1, "t", 1, 9);
  EXPECT_EQ((*old_gen)->partitions(0).error_code(), ErrorCode::ILLEGAL_GENERATION);
  EXPECT_EQ(Fetched("g", "t", 1), 8);

  // A group that only stores offsets (generation -1).
  auto standalone = Commit("simple", "", -1, "t", 3, 100);
  EXPECT_EQ((*standalone)->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Fetched("simple", "t", 3), 100);
  EXPECT_EQ(gc_->GroupState("simple"), "Empty");
  auto unknown_group = Commit("nogroup", "m", 1, "t", 0, 1);
  EXPECT_EQ((*unknown_group)->partitions(0).error_code(), ErrorCode::ILLEGAL_GENERATION);

  // Fetch of everything committed.
  proto::OffsetFetchRequest all;
  all.set_group_id("g");
  auto r = gc_->OffsetFetch(all);
  ASSERT_EQ(r.partitions_size(), 2);
  EXPECT_EQ(r.partitions(0).offset(), 42);
  EXPECT_EQ(r.partitions(0).leader_epoch(), 3);
  EXPECT_EQ(r.partitions(1).offset(), 8);
}

TEST_F(GroupTest, DeleteOnlyEmptyGroups) {
  auto ids = StableGroup("g", 1);
  Commit("g", ids[0], 1, "t", 0, 10);
  auto r = Delete({"g", "missing", ""});
  ASSERT_EQ(r.groups_size(), 3);
  EXPECT_EQ(r.groups(0).error_code(), ErrorCode::NON_EMPTY_GROUP);
  EXPECT_EQ(r.groups(1).error_code(), ErrorCode::GROUP_ID_NOT_FOUND);
  EXPECT_EQ(r.groups(2).error_code(), ErrorCode::INVALID_GROUP_ID);
  EXPECT_EQ(Fetched("g", "t", 0), 10);

  Leave("g", ids[0]);
  ASSERT_EQ(gc_->GroupState("g"), "Empty");
  log_.hold = true;
  std::optional<proto::DeleteGroupsResponse> out;
  proto::DeleteGroupsRequest req;
  req.add_groups("g");
  gc_->DeleteGroups(req, now_, [&](const proto::DeleteGroupsResponse& d) { out = d; });
  EXPECT_FALSE(out.has_value());
  // While the deletion is in flight, the group takes no new members.
  auto j = Join(JoinReq("g", ""));
  EXPECT_EQ((*j)->error_code(), ErrorCode::NOT_COORDINATOR);
  log_.hold = false;
  log_.Release();
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->groups(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(gc_->GroupState("g"), "Dead");
  EXPECT_EQ(Fetched("g", "t", 0), -1);
  ASSERT_TRUE(log_.records.back().has_remove_group());
  EXPECT_EQ(Describe("g").error_code(), ErrorCode::GROUP_ID_NOT_FOUND);
  EXPECT_EQ(Delete({"g"}).groups(0).error_code(), ErrorCode::GROUP_ID_NOT_FOUND);
}

// Compares everything a client or admin can observe of `groups`.
void ExpectSameView(GroupCoordinator& a, GroupCoordinator& b,
                    const std::vector<std::string>& groups) {
  proto::ListGroupsRequest list;
  EXPECT_EQ(a.ListGroups(list).SerializeAsString(), b.ListGroups(list).SerializeAsString());
  proto::DescribeGroupsRequest describe;
  for (const auto& g : groups) describe.add_groups(g);
  EXPECT_EQ(a.DescribeGroups(describe).DebugString(), b.DescribeGroups(describe).DebugString());
  for (const auto& g : groups) {
    proto::OffsetFetchRequest fetch;
    fetch.set_group_id(g);
    EXPECT_EQ(a.OffsetFetch(fetch).DebugString(), b.OffsetFetch(fetch).DebugString()) << g;
  }
}

TEST_F(GroupTest, ReplayOfEmittedRecordsRebuildsGroupsAndOffsets) {
  auto ids = StableGroup("g", 3);
  Commit("g", ids[0], 1, "t", 0, 10, "m0");
  Commit("g", ids[1], 1, "t", 1, 20);
  Commit("g", ids[1], 1, "t", 1, 25);
  // A static group with a restarted member.
  auto s = Join(JoinReq("s", "", {{"range", "x"}}, "inst"));
  ASSERT_TRUE(s->has_value());
  Sync("s", (*s)->member_id(), 1, {{(*s)->member_id(), "all"}}, "inst");
  auto s2 = Join(JoinReq("s", "", {{"range", "x"}}, "inst"));
  ASSERT_EQ((*s2)->error_code(), ErrorCode::NONE);
  // An Empty group with offsets, and a deleted one.
  Commit("simple", "", -1, "u", 0, 5);
  Commit("deleted", "", -1, "u", 0, 6);
  EXPECT_EQ(Delete({"deleted"}).groups(0).error_code(), ErrorCode::NONE);
  // A group that emptied out.
  auto e = StableGroup("e", 1);
  Commit("e", e[0], 1, "t", 0, 1);
  Leave("e", e[0]);
  // An in-progress rebalance is not durable: replay shows the last Stable.
  Join(JoinReq("g", ids[0]));
  ASSERT_EQ(gc_->GroupState("g"), "PreparingRebalance");

  GroupCoordinator replayed(TestConfig(), log_.Fn());
  for (const auto& r : log_.records) ASSERT_TRUE(replayed.Replay(r, now_).ok());
  EXPECT_EQ(replayed.GroupState("g"), "Stable");
  EXPECT_EQ(replayed.GroupState("s"), "Stable");
  EXPECT_EQ(replayed.GroupState("simple"), "Empty");
  EXPECT_EQ(replayed.GroupState("deleted"), "Dead");
  EXPECT_EQ(replayed.GroupState("e"), "Empty");
  EXPECT_EQ(replayed.GroupGeneration("e"), 2);

  // The live coordinator's snapshot (its durable state) replays to the same view.
  GroupCoordinator reference(TestConfig(), log_.Fn());
  for (const auto& r : gc_->SnapshotRecords()) ASSERT_TRUE(reference.Replay(r, now_).ok());
  const std::vector<std::string> groups = {"g", "s", "simple", "deleted", "e"};
  ExpectSameView(replayed, reference, groups);
  auto d = replayed.DescribeGroups([] {
    proto::DescribeGroupsRequest r;
    r.add_groups("g");
    return r;
  }());
  ASSERT_EQ(d.groups(0).members_size(), 3);
  EXPECT_EQ(d.groups(0).generation_id(), 1);
  EXPECT_EQ(d.groups(0).leader(), ids[0]);
  std::map<std::string, std::string> assignment;
  for (const auto& m : d.groups(0).members()) assignment[m.member_id()] = m.assignment();
  for (const auto& id : ids) EXPECT_EQ(assignment[id], "parts-of-" + id);

  // The replayed coordinator serves the members where they left off.
  proto::HeartbeatRequest hb;
  hb.set_group_id("g");
  hb.set_member_id(ids[2]);
  hb.set_generation_id(1);
  EXPECT_EQ(replayed.Heartbeat(hb, now_).error_code(), ErrorCode::NONE);
  proto::OffsetFetchRequest f;
  f.set_group_id("g");
  auto fr = replayed.OffsetFetch(f);
  ASSERT_EQ(fr.partitions_size(), 2);
  EXPECT_EQ(fr.partitions(0).offset(), 10);
  EXPECT_EQ(fr.partitions(0).metadata(), "m0");
  EXPECT_EQ(fr.partitions(1).offset(), 25);
  hb.set_member_id((*s)->member_id());
  hb.set_group_id("s");
  hb.set_group_instance_id("inst");
  EXPECT_EQ(replayed.Heartbeat(hb, now_).error_code(), ErrorCode::FENCED_INSTANCE_ID);
}

TEST_F(GroupTest, ReplayedStateMatchesLiveStateWhenQuiescent) {
  auto ids = StableGroup("g", 2);
  Commit("g", ids[1], 1, "t", 4, 44, "x");
  Commit("simple", "", -1, "u", 0, 5);
  GroupCoordinator replayed(TestConfig(), log_.Fn());
  for (const auto& r : log_.records) ASSERT_TRUE(replayed.Replay(r, now_).ok());
  ExpectSameView(*gc_, replayed, {"g", "simple"});
}

TEST_F(GroupTest, ReplayRejectsMalformedRecords) {
  proto::MetadataRecord r;
  r.mutable_group()->set_generation(1);
  EXPECT_EQ(gc_->Replay(r, now_).code(), absl::StatusCode::kInvalidArgument);
  r.mutable_group()->set_group_id("g");
  r.mutable_group()->add_members()->set_member_id("a");
  r.mutable_group()->add_members()->set_member_id("a");
  r.mutable_group()->set_leader("a");
  EXPECT_EQ(gc_->Replay(r, now_).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gc_->GroupState("g"), "Dead");
  proto::MetadataRecord other;
  other.mutable_topic()->mutable_topic()->set_name("t");
  EXPECT_FALSE(GroupCoordinator::IsGroupRecord(other));
  EXPECT_TRUE(gc_->Replay(other, now_).ok());
}

TEST_F(GroupTest, BadInputsGiveSpecificErrors) {
  auto code = [&](proto::JoinGroupRequest req) {
    auto r = Join(req);
    EXPECT_TRUE(r->has_value());
    return (*r)->error_code();
  };
  EXPECT_EQ(code(JoinReq("", "")), ErrorCode::INVALID_GROUP_ID);
  auto short_session = JoinReq("g", "");
  short_session.set_session_timeout_ms(999);
  EXPECT_EQ(code(short_session), ErrorCode::INVALID_SESSION_TIMEOUT);
  auto long_session = JoinReq("g", "");
  long_session.set_session_timeout_ms(60001);
  EXPECT_EQ(code(long_session), ErrorCode::INVALID_SESSION_TIMEOUT);
  EXPECT_EQ(code(JoinReq("g", "", {})), ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
  auto no_type = JoinReq("g", "");
  no_type.clear_protocol_type();
  EXPECT_EQ(code(no_type), ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
  EXPECT_EQ(code(JoinReq("g", "made-up-id")), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(gc_->GroupState("g"), "Dead") << "failed joins create nothing";

  auto ids = StableGroup("g", 1);
  EXPECT_EQ(code(JoinReq("g", "", {{"roundrobin", ""}})), ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
  auto other_type = JoinReq("g", "", {{"range", ""}});
  other_type.set_protocol_type("connect");
  EXPECT_EQ(code(other_type), ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
  EXPECT_EQ(code(JoinReq("g", "made-up-id")), ErrorCode::UNKNOWN_MEMBER_ID);

  EXPECT_EQ((*Sync("", "m", 1))->error_code(), ErrorCode::INVALID_GROUP_ID);
  EXPECT_EQ((*Sync("nope", "m", 1))->error_code(), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ((*Sync("g", ids[0], 7))->error_code(), ErrorCode::ILLEGAL_GENERATION);
  EXPECT_EQ(Heartbeat("", "m", 1), ErrorCode::INVALID_GROUP_ID);
  EXPECT_EQ(Leave("", "m").error_code(), ErrorCode::INVALID_GROUP_ID);
  EXPECT_EQ((*Commit("", "m", 1, "t", 0, 1))->partitions(0).error_code(),
            ErrorCode::INVALID_GROUP_ID);
  EXPECT_EQ((*Commit("g", ids[0], 1, "", 0, 1))->partitions(0).error_code(),
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  proto::OffsetFetchRequest f;
  EXPECT_EQ(gc_->OffsetFetch(f).error_code(), ErrorCode::INVALID_GROUP_ID);
  EXPECT_EQ(Describe("").error_code(), ErrorCode::INVALID_GROUP_ID);
  EXPECT_EQ(Describe("nope").error_code(), ErrorCode::GROUP_ID_NOT_FOUND);
  EXPECT_EQ(gc_->GroupState("g"), "Stable") << "bad requests change nothing";
  EXPECT_EQ(gc_->GroupGeneration("g"), 1);

  // The wire codes map to statuses and retriability.
  EXPECT_TRUE(IsRetriable(ErrorCode::REBALANCE_IN_PROGRESS));
  EXPECT_FALSE(IsRetriable(ErrorCode::FENCED_INSTANCE_ID));
  EXPECT_EQ(ToErrorCode(MakeError(ErrorCode::MEMBER_ID_REQUIRED, "x")),
            ErrorCode::MEMBER_ID_REQUIRED);
  EXPECT_EQ(MakeError(ErrorCode::INVALID_SESSION_TIMEOUT, "x").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(GroupTest, LeaveByInstanceIdRemovesStaticMember) {
  auto a = Join(JoinReq("g", "", {{"range", "sa"}}, "inst-a"));
  ASSERT_TRUE(a->has_value());
  Sync("g", (*a)->member_id(), 1, {{(*a)->member_id(), "PA"}}, "inst-a");
  proto::LeaveGroupRequest req;
  req.set_group_id("g");
  auto* unknown = req.add_members();
  unknown->set_group_instance_id("inst-zzz");
  auto* m = req.add_members();
  m->set_group_instance_id("inst-a");
  auto r = gc_->LeaveGroup(req, now_);
  ASSERT_EQ(r.members_size(), 2);
  EXPECT_EQ(r.members(0).error_code(), ErrorCode::UNKNOWN_MEMBER_ID);
  EXPECT_EQ(r.members(1).error_code(), ErrorCode::NONE);
  EXPECT_EQ(gc_->GroupState("g"), "Empty");
  EXPECT_EQ(Heartbeat("g", (*a)->member_id(), 1, "inst-a"), ErrorCode::UNKNOWN_MEMBER_ID);
}

TEST_F(GroupTest, OutstandingMemberIdHoldsTheJoinUntilUsedOrExpired) {
  const std::string a = NewMemberId("g");
  const std::string b = NewMemberId("g");
  auto ja = Join(JoinReq("g", a));
  EXPECT_FALSE(ja->has_value()) << "b's id is outstanding";
  Advance(kSession - 1);
  EXPECT_FALSE(ja->has_value());
  Advance(1);  // b never came back
  ASSERT_TRUE(ja->has_value());
  EXPECT_EQ((*ja)->members_size(), 1);
  auto late = Join(JoinReq("g", b));
  EXPECT_EQ((*late)->error_code(), ErrorCode::UNKNOWN_MEMBER_ID);
}

TEST_F(GroupTest, GroupMaxSize) {
  for (int i = 0; i < 10; ++i) NewMemberId("g");
  auto r = Join(JoinReq("g", ""));
  EXPECT_EQ((*r)->error_code(), ErrorCode::GROUP_MAX_SIZE_REACHED);
  // Pending ids that never come back expire after a session.
  Advance(kSession);
  EXPECT_EQ(gc_->GroupState("g"), "Dead") << "an unused Empty group is forgotten";
  NewMemberId("g");
}

TEST_F(GroupTest, ProtocolChosenByVote) {
  std::vector<std::string> ids = {NewMemberId("g"), NewMemberId("g"), NewMemberId("g")};
  auto j0 = Join(JoinReq("g", ids[0], {{"range", ""}, {"roundrobin", ""}, {"sticky", ""}}));
  auto j1 = Join(JoinReq("g", ids[1], {{"roundrobin", ""}, {"range", ""}}));
  auto j2 = Join(JoinReq("g", ids[2], {{"roundrobin", ""}, {"range", ""}, {"sticky", ""}}));
  ASSERT_TRUE(j2->has_value());
  EXPECT_EQ((*j0)->protocol_name(), "roundrobin");
  EXPECT_EQ((*j2)->protocol_name(), "roundrobin");
}

TEST_F(GroupTest, InitialRebalanceDelayWaitsForMoreMembers) {
  GroupConfig config = TestConfig();
  config.initial_rebalance_delay_ms = 3000;
  gc_ = std::make_unique<GroupCoordinator>(config, log_.Fn());
  const std::string a = NewMemberId("g");
  auto ja = Join(JoinReq("g", a));
  EXPECT_FALSE(ja->has_value());
  Advance(2000);
  const std::string b = NewMemberId("g");
  auto jb = Join(JoinReq("g", b));
  Advance(2000);  // b extended the delay to 5000 after the start
  EXPECT_FALSE(ja->has_value());
  Advance(1000);
  ASSERT_TRUE(ja->has_value() && jb->has_value());
  EXPECT_EQ((*ja)->generation_id(), 1);
  EXPECT_EQ((*ja)->members_size(), 2);
}

TEST_F(GroupTest, UnloadFailsWaitersAndLateDurabilityChangesNothing) {
  auto ids = StableGroup("g", 2);
  auto j = Join(JoinReq("g", ids[0]));
  EXPECT_FALSE(j->has_value());
  log_.hold = true;
  auto c = Commit("g", ids[1], 1, "t", 0, 3);
  gc_->Unload();
  ASSERT_TRUE(j->has_value());
  EXPECT_EQ((*j)->error_code(), ErrorCode::NOT_COORDINATOR);
  EXPECT_EQ(gc_->GroupState("g"), "Dead");
  log_.Release();
  ASSERT_TRUE(c->has_value());  // answered with the write's outcome
  EXPECT_EQ(gc_->GroupState("g"), "Dead");
  EXPECT_FALSE(gc_->NextDeadline().has_value());
}

TEST_F(GroupTest, NextDeadlineTracksSessions) {
  auto ids = StableGroup("g", 1);
  ASSERT_TRUE(gc_->NextDeadline().has_value());
  EXPECT_EQ(*gc_->NextDeadline(), now_ + kSession);
  Advance(*gc_->NextDeadline() - now_ - 1);
  EXPECT_EQ(gc_->GroupState("g"), "Stable");
  Advance(1);
  EXPECT_EQ(gc_->GroupState("g"), "Empty");
}

// Encoded proto::ConsumerAssignment of one topic's partitions.
std::string ConsumerAssignmentOf(const std::string& topic, std::vector<int32_t> partitions) {
  proto::ConsumerAssignment a;
  auto* tp = a.add_partitions();
  tp->set_topic(topic);
  for (int32_t p : partitions) tp->add_partitions(p);
  return a.SerializeAsString();
}

TEST_F(GroupTest, CommitOfUnownedPartitionIsRefused) {
  const std::string a = NewMemberId("g", "sa");
  const std::string b = NewMemberId("g", "sb");
  auto ja = Join(JoinReq("g", a, {{"range", "sa"}}));
  auto jb = Join(JoinReq("g", b, {{"range", "sb"}}));
  ASSERT_TRUE(ja->has_value() && jb->has_value());
  ASSERT_EQ((*ja)->leader(), a);
  auto sb = Sync("g", b, 1);
  auto sa = Sync("g", a, 1,
                 {{a, ConsumerAssignmentOf("t", {0, 2})}, {b, ConsumerAssignmentOf("t", {1})}});
  ASSERT_TRUE(sa->has_value() && sb->has_value());
  ASSERT_EQ(gc_->GroupState("g"), "Stable");

  EXPECT_EQ((*Commit("g", a, 1, "t", 0, 10))->partitions(0).error_code(), ErrorCode::NONE);
  auto not_owned = Commit("g", a, 1, "t", 1, 11);
  EXPECT_EQ((*not_owned)->partitions(0).error_code(), ErrorCode::PARTITION_NOT_OWNED);
  EXPECT_EQ((*not_owned)->error_code(), ErrorCode::NONE) << "a per-partition error only";
  // A partition nobody is assigned (e.g. one given up in a cooperative
  // rebalance) may be committed: no owner's progress is overwritten.
  EXPECT_EQ((*Commit("g", a, 1, "u", 0, 11))->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Fetched("g", "t", 1), -1);
  EXPECT_EQ((*Commit("g", b, 1, "t", 1, 12))->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Fetched("g", "t", 1), 12);

  // Mixed: owned partitions are committed, the others refused.
  proto::OffsetCommitRequest req;
  req.set_group_id("g");
  req.set_member_id(a);
  req.set_generation_id(1);
  for (int32_t p : {0, 1, 2}) {
    auto* part = req.add_partitions();
    part->set_topic("t");
    part->set_partition(p);
    part->set_offset(100 + p);
  }
  std::optional<proto::OffsetCommitResponse> mixed;
  gc_->OffsetCommit(req, now_, [&](const proto::OffsetCommitResponse& r) { mixed = r; });
  ASSERT_TRUE(mixed.has_value());
  EXPECT_EQ(mixed->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(mixed->partitions(1).error_code(), ErrorCode::PARTITION_NOT_OWNED);
  EXPECT_EQ(mixed->partitions(2).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Fetched("g", "t", 0), 100);
  EXPECT_EQ(Fetched("g", "t", 1), 12);
  EXPECT_EQ(Fetched("g", "t", 2), 102);

  // PreparingRebalance: the ending generation's assignment still applies.
  auto rejoin = Join(JoinReq("g", a, {{"range", "sa"}}));
  ASSERT_EQ(gc_->GroupState("g"), "PreparingRebalance");
  EXPECT_EQ((*Commit("g", b, 1, "t", 1, 13))->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ((*Commit("g", b, 1, "t", 0, 13))->partitions(0).error_code(),
            ErrorCode::PARTITION_NOT_OWNED);

  // Once every member left, standalone commits of any partition are accepted.
  Leave("g", a);
  Leave("g", b);
  ASSERT_EQ(gc_->GroupState("g"), "Empty");
  EXPECT_EQ((*Commit("g", "", -1, "t", 1, 20))->partitions(0).error_code(), ErrorCode::NONE);
  EXPECT_EQ(Fetched("g", "t", 1), 20);
}

TEST_F(GroupTest, OwnershipIsNotCheckedForOpaqueAssignments) {
  // An assignment that does not parse as ConsumerAssignment is not checked.
  const std::string a = NewMemberId("g", "sa");
  ASSERT_TRUE(Join(JoinReq("g", a))->has_value());
  ASSERT_TRUE(Sync("g", a, 1, {{a, std::string("\xff", 1)}})->has_value());
  EXPECT_EQ((*Commit("g", a, 1, "t", 7, 1))->partitions(0).error_code(), ErrorCode::NONE);

  // Neither is any assignment of another protocol type.
  auto req = JoinReq("h", "");
  req.set_protocol_type("connect");
  auto first = Join(req);
  ASSERT_EQ((*first)->error_code(), ErrorCode::MEMBER_ID_REQUIRED);
  req.set_member_id((*first)->member_id());
  ASSERT_TRUE(Join(req)->has_value());
  const std::string h = (*first)->member_id();
  ASSERT_TRUE(Sync("h", h, 1, {{h, ConsumerAssignmentOf("t", {0})}})->has_value());
  ASSERT_EQ(gc_->GroupState("h"), "Stable");
  EXPECT_EQ((*Commit("h", h, 1, "t", 5, 1))->partitions(0).error_code(), ErrorCode::NONE);
}

TEST_F(GroupTest, StatsCountStatesMembersAndRebalances) {
  StableGroup("g", 2);
  Commit("simple", "", -1, "t", 0, 1);
  auto stats = gc_->GetStats();
  EXPECT_EQ(stats.groups_by_state["Stable"], 1);
  EXPECT_EQ(stats.groups_by_state["Empty"], 1);
  EXPECT_EQ(stats.groups_by_state["PreparingRebalance"], 0);
  EXPECT_EQ(stats.members, 2);
  EXPECT_EQ(stats.rebalances_completed, 1);
}

}  // namespace
}  // namespace brook::groups
