// The consumer side of the group protocol without a server: subscription and
// assignment bytes, the rebalance protocol a member follows, the leader's
// assignment step, and the cooperative revocation sets over two rounds
// (only moved partitions are revoked).
#include "consumer/group_protocol.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace brook::client {
void PrintTo(const TopicPartition& tp, std::ostream* os) { *os << tp.topic << "-" << tp.partition; }

namespace group {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Parts = std::vector<TopicPartition>;

TopicPartition TP(const std::string& t, int32_t p) { return TopicPartition{t, p}; }

proto::JoinGroupMember Member(const std::string& id, const std::vector<std::string>& topics,
                              const Parts& owned = {}, int32_t generation = -1) {
  proto::JoinGroupMember m;
  m.set_member_id(id);
  m.set_metadata(EncodeSubscription(topics, owned, generation, ""));
  return m;
}

TEST(ConsumerGroupProtocolTest, SubscriptionRoundTrip) {
  proto::JoinGroupMember m;
  m.set_member_id("m1");
  m.set_group_instance_id("static-1");
  m.set_metadata(EncodeSubscription({"b", "a", "b"}, {TP("b", 1), TP("a", 2), TP("a", 0)}, 7, "ud"));
  auto s = DecodeSubscription(m);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->member_id, "m1");
  EXPECT_EQ(s->group_instance_id, "static-1");
  EXPECT_THAT(s->topics, ElementsAre("a", "b"));
  EXPECT_THAT(s->owned_partitions, ElementsAre(TP("a", 0), TP("a", 2), TP("b", 1)));
  EXPECT_EQ(s->generation, 7);
  EXPECT_EQ(s->user_data, "ud");
}

TEST(ConsumerGroupProtocolTest, SubscriptionWithoutOwnershipHasNoGenerationAndIsStable) {
  // A restarted static member must send byte-identical metadata.
  const std::string a = EncodeSubscription({"t2", "t1"}, {}, 5, "");
  const std::string b = EncodeSubscription({"t1", "t2"}, {}, -1, "");
  EXPECT_EQ(a, b);
  proto::JoinGroupMember m;
  m.set_member_id("x");
  m.set_metadata(a);
  auto s = DecodeSubscription(m);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->generation, kNoGeneration);
  EXPECT_THAT(s->owned_partitions, IsEmpty());
}

TEST(ConsumerGroupProtocolTest, GarbageDoesNotParse) {
  proto::JoinGroupMember m;
  m.set_member_id("x");
  m.set_metadata(std::string("\xff\xff\xff\xff", 4));
  EXPECT_FALSE(DecodeSubscription(m).ok());
  EXPECT_FALSE(DecodeAssignment(std::string("\x0a\xff", 2)).ok());
}

TEST(ConsumerGroupProtocolTest, AssignmentRoundTripSortsAndDedups) {
  MemberAssignment a;
  a.partitions = {TP("t", 3), TP("s", 1), TP("t", 0), TP("t", 3)};
  a.user_data = "u";
  auto d = DecodeAssignment(EncodeAssignment(a));
  ASSERT_TRUE(d.ok());
  EXPECT_THAT(d->partitions, ElementsAre(TP("s", 1), TP("t", 0), TP("t", 3)));
  EXPECT_EQ(d->user_data, "u");
  auto empty = DecodeAssignment("");
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(empty->partitions, IsEmpty());
}

TEST(ConsumerGroupProtocolTest, ChooseProtocol) {
  auto mixed = ChooseProtocol({"range", "cooperative-sticky"});
  ASSERT_TRUE(mixed.ok());
  EXPECT_EQ(mixed->protocol, RebalanceProtocol::kEager);
  EXPECT_THAT(mixed->advertised, ElementsAre("range"));

  auto coop = ChooseProtocol({"cooperative-sticky"});
  ASSERT_TRUE(coop.ok());
  EXPECT_EQ(coop->protocol, RebalanceProtocol::kCooperative);
  EXPECT_THAT(coop->advertised, ElementsAre("cooperative-sticky"));

  auto eager = ChooseProtocol({"sticky", "roundrobin"});
  ASSERT_TRUE(eager.ok());
  EXPECT_EQ(eager->protocol, RebalanceProtocol::kEager);
  EXPECT_THAT(eager->advertised, ElementsAre("sticky", "roundrobin"));

  EXPECT_FALSE(ChooseProtocol({}).ok());
  EXPECT_FALSE(ChooseProtocol({"range", "range"}).ok());
  EXPECT_FALSE(ChooseProtocol({"nope"}).ok());
}

TEST(ConsumerGroupProtocolTest, DiffAssignmentEagerAndCooperative) {
  const Parts owned = {TP("t", 0), TP("t", 1), TP("t", 2)};
  const Parts assigned = {TP("t", 2), TP("t", 1), TP("t", 4)};
  auto coop = DiffAssignment(owned, assigned, RebalanceProtocol::kCooperative);
  EXPECT_THAT(coop.revoked, ElementsAre(TP("t", 0)));
  EXPECT_THAT(coop.added, ElementsAre(TP("t", 4)));
  EXPECT_THAT(coop.kept, ElementsAre(TP("t", 1), TP("t", 2)));
  EXPECT_TRUE(coop.rejoin);

  auto coop_grow = DiffAssignment({TP("t", 1)}, {TP("t", 1), TP("t", 0)}, RebalanceProtocol::kCooperative);
  EXPECT_THAT(coop_grow.revoked, IsEmpty());
  EXPECT_FALSE(coop_grow.rejoin);

  // Eager members own nothing when the assignment arrives.
  auto eager = DiffAssignment({}, assigned, RebalanceProtocol::kEager);
  EXPECT_THAT(eager.added, ElementsAre(TP("t", 1), TP("t", 2), TP("t", 4)));
  EXPECT_FALSE(eager.rejoin);
  // Even if something were still owned, eager never asks for a second round.
  EXPECT_FALSE(DiffAssignment(owned, assigned, RebalanceProtocol::kEager).rejoin);
}

TEST(ConsumerGroupProtocolTest, LeaderAssignRangeGivesDisjointCover) {
  auto range = MakeAssignor("range");
  ASSERT_TRUE(range.ok());
  std::vector<proto::JoinGroupMember> members = {Member("a", {"t"}), Member("b", {"t"}),
                                                 Member("c", {"t", "absent"})};
  EXPECT_THAT(SubscribedTopics(members), ElementsAre("absent", "t"));
  ClusterView cluster;
  cluster.partition_counts["t"] = 6;
  auto out = LeaderAssign(**range, members, cluster);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 3u);
  std::set<TopicPartition> all;
  for (const auto& [id, bytes] : *out) {
    auto a = DecodeAssignment(bytes);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->partitions.size(), 2u) << id;
    for (const auto& tp : a->partitions) EXPECT_TRUE(all.insert(tp).second) << tp.partition;
  }
  EXPECT_EQ(all.size(), 6u);
}

TEST(ConsumerGroupProtocolTest, LeaderAssignRejectsBadMetadata) {
  auto range = MakeAssignor("range");
  ASSERT_TRUE(range.ok());
  proto::JoinGroupMember bad;
  bad.set_member_id("bad");
  bad.set_metadata(std::string("\xff\xff", 2));
  EXPECT_FALSE(LeaderAssign(**range, {Member("a", {"t"}), bad}, ClusterView{}).ok());
}

// Three members own six partitions; a fourth joins. With cooperative-sticky
// the first round revokes only the partitions that move to the newcomer (it
// gets nothing yet) and the revokers rejoin; the second round hands the
// revoked partitions over without revoking anything else.
TEST(ConsumerGroupProtocolTest, CooperativeRoundsRevokeOnlyMovedPartitions) {
  auto coop = MakeAssignor("cooperative-sticky");
  ASSERT_TRUE(coop.ok());
  ClusterView cluster;
  cluster.partition_counts["t"] = 6;
  std::map<std::string, Parts> owned = {{"m1", {TP("t", 0), TP("t", 1)}},
                                        {"m2", {TP("t", 2), TP("t", 3)}},
                                        {"m3", {TP("t", 4), TP("t", 5)}},
                                        {"m4", {}}};
  auto round = [&](int32_t generation, std::map<std::string, AssignmentChange>* changes) {
    std::vector<proto::JoinGroupMember> members;
    for (const auto& [id, parts] : owned) members.push_back(Member(id, {"t"}, parts, generation));
    auto out = LeaderAssign(**coop, members, cluster);
    ASSERT_TRUE(out.ok()) << out.status();
    for (const auto& [id, bytes] : *out) {
      auto a = DecodeAssignment(bytes);
      ASSERT_TRUE(a.ok());
      (*changes)[id] = DiffAssignment(owned[id], a->partitions, RebalanceProtocol::kCooperative);
      Parts next = (*changes)[id].kept;
      next.insert(next.end(), (*changes)[id].added.begin(), (*changes)[id].added.end());
      std::sort(next.begin(), next.end());
      owned[id] = next;
    }
  };
  std::map<std::string, AssignmentChange> first;
  round(1, &first);
  Parts revoked;
  bool any_rejoin = false;
  for (const auto& [id, c] : first) {
    revoked.insert(revoked.end(), c.revoked.begin(), c.revoked.end());
    any_rejoin = any_rejoin || c.rejoin;
    EXPECT_EQ(c.rejoin, !c.revoked.empty());
  }
  EXPECT_THAT(first["m4"].added, IsEmpty()) << "moved partitions are withheld in round one";
  EXPECT_FALSE(revoked.empty());
  EXPECT_LE(revoked.size(), 2u) << "balance needs at most two moves";
  EXPECT_TRUE(any_rejoin);
  // Partitions nobody revoked stayed with their owner.
  size_t kept = 0;
  for (const auto& [id, c] : first) kept += c.kept.size();
  EXPECT_EQ(kept + revoked.size(), 6u);

  std::map<std::string, AssignmentChange> second;
  round(2, &second);
  for (const auto& [id, c] : second) {
    EXPECT_THAT(c.revoked, IsEmpty()) << id;
    EXPECT_FALSE(c.rejoin) << id;
  }
  std::sort(revoked.begin(), revoked.end());
  EXPECT_EQ(second["m4"].added, revoked);
  size_t total = 0;
  for (const auto& [id, parts] : owned) {
    EXPECT_GE(parts.size(), 1u);
    EXPECT_LE(parts.size(), 2u);
    total += parts.size();
  }
  EXPECT_EQ(total, 6u);
}

TEST(ConsumerGroupProtocolTest, ClassifyGroupError) {
  EXPECT_EQ(ClassifyGroupError(proto::NONE), ErrorAction::kNone);
  EXPECT_EQ(ClassifyGroupError(proto::REBALANCE_IN_PROGRESS), ErrorAction::kRejoin);
  EXPECT_EQ(ClassifyGroupError(proto::ILLEGAL_GENERATION), ErrorAction::kLostRejoin);
  EXPECT_EQ(ClassifyGroupError(proto::UNKNOWN_MEMBER_ID), ErrorAction::kLostReset);
  EXPECT_EQ(ClassifyGroupError(proto::FENCED_INSTANCE_ID), ErrorAction::kLostReset);
  EXPECT_EQ(ClassifyGroupError(proto::NOT_COORDINATOR), ErrorAction::kRetry);
  EXPECT_EQ(ClassifyGroupError(proto::INCONSISTENT_GROUP_PROTOCOL), ErrorAction::kFatal);
  EXPECT_EQ(ClassifyGroupError(proto::INVALID_SESSION_TIMEOUT), ErrorAction::kFatal);
}

TEST(ConsumerGroupProtocolTest, MatchTopicsWholeName) {
  std::regex re("orders-.*");
  EXPECT_THAT(MatchTopics(re, {"orders-b", "x-orders-a", "orders-a", "orders"}),
              ElementsAre("orders-a", "orders-b"));
}

}  // namespace
}  // namespace group
}  // namespace brook::client
