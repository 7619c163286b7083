// Partition assignors (brook/assignor.h): Kafka's documented examples for
// range, round-robin and sticky, ownership conflicts across generations, the
// two cooperative rounds of KIP-429, and seeded random cases checking the
// invariants every assignment must satisfy.
#include "brook/assignor.h"

#include <algorithm>
#include <map>
#include <ostream>
#include <random>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace brook::client {

// Readable failure messages for partition lists.
void PrintTo(const TopicPartition& tp, std::ostream* os) { *os << tp.topic << "-" << tp.partition; }

namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

using Parts = std::vector<TopicPartition>;

TopicPartition TP(std::string topic, int32_t p) { return TopicPartition{std::move(topic), p}; }

MemberSubscription Member(std::string id, std::vector<std::string> topics, Parts owned = {},
                          int32_t generation = kNoGeneration,
                          std::optional<std::string> instance = std::nullopt) {
  MemberSubscription m;
  m.member_id = std::move(id);
  m.group_instance_id = std::move(instance);
  m.topics = std::move(topics);
  m.owned_partitions = std::move(owned);
  m.generation = generation;
  return m;
}

ClusterView Cluster(std::map<std::string, int32_t> counts) {
  return ClusterView{std::move(counts)};
}

GroupAssignment MustAssign(const PartitionAssignor& a, const ClusterView& c,
                           const std::vector<MemberSubscription>& m) {
  absl::StatusOr<GroupAssignment> r = a.Assign(c, m);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : GroupAssignment{};
}

const Parts& Of(const GroupAssignment& a, const std::string& member) {
  static const Parts kNone;
  auto it = a.members.find(member);
  return it == a.members.end() ? kNone : it->second.partitions;
}

// The ownership that results when every member applies `a` in `generation`.
std::vector<MemberSubscription> Apply(std::vector<MemberSubscription> members,
                                      const GroupAssignment& a, int32_t generation) {
  for (MemberSubscription& m : members) {
    m.owned_partitions = Of(a, m.member_id);
    m.generation = generation;
  }
  return members;
}

size_t Kept(const std::vector<MemberSubscription>& before, const GroupAssignment& after) {
  size_t kept = 0;
  for (const MemberSubscription& m : before) {
    const Parts& now = Of(after, m.member_id);
    for (const TopicPartition& tp : m.owned_partitions) {
      kept += std::count(now.begin(), now.end(), tp);
    }
  }
  return kept;
}

TEST(AssignorTest, NamesProtocolsAndLookup) {
  EXPECT_EQ(MakeRangeAssignor()->Name(), "range");
  EXPECT_EQ(MakeRoundRobinAssignor()->Name(), "roundrobin");
  EXPECT_EQ(MakeStickyAssignor()->Name(), "sticky");
  EXPECT_EQ(MakeCooperativeStickyAssignor()->Name(), "cooperative-sticky");
  EXPECT_THAT(MakeStickyAssignor()->SupportedProtocols(), ElementsAre(RebalanceProtocol::kEager));
  EXPECT_THAT(MakeCooperativeStickyAssignor()->SupportedProtocols(),
              ElementsAre(RebalanceProtocol::kCooperative));
  for (std::string name : {"range", "roundrobin", "sticky", "cooperative-sticky"}) {
    absl::StatusOr<std::unique_ptr<PartitionAssignor>> a = MakeAssignor(name);
    ASSERT_TRUE(a.ok()) << name;
    EXPECT_EQ((*a)->Name(), name);
    EXPECT_EQ((*a)->SubscriptionUserData({"t0"}), "");
  }
  EXPECT_EQ(MakeAssignor("uniform").status().code(), absl::StatusCode::kNotFound);
}

TEST(RangeAssignorTest, KafkaExampleTwoMembersTwoTopics) {
  GroupAssignment a = MustAssign(*MakeRangeAssignor(), Cluster({{"t0", 3}, {"t1", 3}}),
                                 {Member("C1", {"t1", "t0"}), Member("C0", {"t0", "t1"})});
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0), TP("t0", 1), TP("t1", 0), TP("t1", 1)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t0", 2), TP("t1", 2)));
}

TEST(RangeAssignorTest, PerTopicSubscribersAndUnknownTopicSkipped) {
  // t0 (5 partitions) over C0,C1,C2: 2,2,1. t1 (2 partitions) only C2.
  GroupAssignment a = MustAssign(*MakeRangeAssignor(), Cluster({{"t0", 5}, {"t1", 2}}),
                                 {Member("C0", {"t0", "nope"}), Member("C1", {"t0"}),
                                  Member("C2", {"t0", "t1"}), Member("C3", {"nope"})});
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0), TP("t0", 1)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t0", 2), TP("t0", 3)));
  EXPECT_THAT(Of(a, "C2"), ElementsAre(TP("t0", 4), TP("t1", 0), TP("t1", 1)));
  ASSERT_TRUE(a.members.contains("C3"));
  EXPECT_THAT(Of(a, "C3"), IsEmpty());
}

TEST(RangeAssignorTest, StaticMembersOrderedByInstanceIdAndKeepPartitionsAcrossRestart) {
  auto cluster = Cluster({{"t0", 4}});
  // Static members come first, by instance id; then dynamic ones by member id.
  GroupAssignment a =
      MustAssign(*MakeRangeAssignor(), cluster,
                 {Member("a-dynamic", {"t0"}), Member("z1", {"t0"}, {}, kNoGeneration, "i2"),
                  Member("z2", {"t0"}, {}, kNoGeneration, "i1")});
  EXPECT_THAT(Of(a, "z2"), ElementsAre(TP("t0", 0), TP("t0", 1)));
  EXPECT_THAT(Of(a, "z1"), ElementsAre(TP("t0", 2)));
  EXPECT_THAT(Of(a, "a-dynamic"), ElementsAre(TP("t0", 3)));
  // The static member i1 restarts and gets a new member id: same partitions.
  GroupAssignment b =
      MustAssign(*MakeRangeAssignor(), cluster,
                 {Member("a-dynamic", {"t0"}), Member("z1", {"t0"}, {}, kNoGeneration, "i2"),
                  Member("zz-new", {"t0"}, {}, kNoGeneration, "i1")});
  EXPECT_EQ(Of(b, "zz-new"), Of(a, "z2"));
  EXPECT_EQ(Of(b, "z1"), Of(a, "z1"));
}

TEST(RoundRobinAssignorTest, KafkaExampleSameSubscription) {
  GroupAssignment a = MustAssign(*MakeRoundRobinAssignor(), Cluster({{"t0", 3}, {"t1", 3}}),
                                 {Member("C0", {"t0", "t1"}), Member("C1", {"t0", "t1"})});
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0), TP("t0", 2), TP("t1", 1)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t0", 1), TP("t1", 0), TP("t1", 2)));
}

TEST(RoundRobinAssignorTest, KafkaExampleUnevenSubscriptions) {
  // Kafka's RoundRobinAssignor documentation: C0 on t0, C1 on t0,t1, C2 on
  // t0,t1,t2; t0, t1, t2 have 1, 2, 3 partitions.
  GroupAssignment a = MustAssign(
      *MakeRoundRobinAssignor(), Cluster({{"t0", 1}, {"t1", 2}, {"t2", 3}}),
      {Member("C0", {"t0"}), Member("C1", {"t0", "t1"}), Member("C2", {"t0", "t1", "t2"})});
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t1", 0)));
  EXPECT_THAT(Of(a, "C2"), ElementsAre(TP("t1", 1), TP("t2", 0), TP("t2", 1), TP("t2", 2)));
}

TEST(StickyAssignorTest, KafkaExampleMemberLeavesKeepsEveryOwnedPartition) {
  // KIP-54: C0..C2 on t0..t3 with 2 partitions each.
  auto cluster = Cluster({{"t0", 2}, {"t1", 2}, {"t2", 2}, {"t3", 2}});
  std::vector<std::string> all = {"t0", "t1", "t2", "t3"};
  std::vector<MemberSubscription> members = {Member("C0", all), Member("C1", all),
                                             Member("C2", all)};
  GroupAssignment a = MustAssign(*MakeStickyAssignor(), cluster, members);
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0), TP("t1", 1), TP("t3", 0)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t0", 1), TP("t2", 0), TP("t3", 1)));
  EXPECT_THAT(Of(a, "C2"), ElementsAre(TP("t1", 0), TP("t2", 1)));

  // C1 leaves: C0 and C2 keep all they had and split C1's three partitions.
  members = Apply(members, a, 1);
  members.erase(members.begin() + 1);
  GroupAssignment b = MustAssign(*MakeStickyAssignor(), cluster, members);
  EXPECT_THAT(Of(b, "C0"), ElementsAre(TP("t0", 0), TP("t1", 1), TP("t2", 0), TP("t3", 0)));
  EXPECT_THAT(Of(b, "C2"), ElementsAre(TP("t0", 1), TP("t1", 0), TP("t2", 1), TP("t3", 1)));
  EXPECT_EQ(Kept(members, b), 5u);
  EXPECT_FALSE(b.members.contains("C1"));
}

TEST(StickyAssignorTest, KafkaExampleUnevenSubscriptions) {
  // KIP-54: round-robin would give C2 four partitions and C1 one; sticky
  // balances to 1, 2, 3. Then C0 leaves and only t0p0 moves.
  auto cluster = Cluster({{"t0", 1}, {"t1", 2}, {"t2", 3}});
  std::vector<MemberSubscription> members = {Member("C0", {"t0"}), Member("C1", {"t0", "t1"}),
                                             Member("C2", {"t0", "t1", "t2"})};
  GroupAssignment a = MustAssign(*MakeStickyAssignor(), cluster, members);
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t1", 0), TP("t1", 1)));
  EXPECT_THAT(Of(a, "C2"), ElementsAre(TP("t2", 0), TP("t2", 1), TP("t2", 2)));

  members = Apply(members, a, 1);
  members.erase(members.begin());
  GroupAssignment b = MustAssign(*MakeStickyAssignor(), cluster, members);
  EXPECT_THAT(Of(b, "C1"), ElementsAre(TP("t0", 0), TP("t1", 0), TP("t1", 1)));
  EXPECT_THAT(Of(b, "C2"), ElementsAre(TP("t2", 0), TP("t2", 1), TP("t2", 2)));
}

TEST(StickyAssignorTest, MemberJoinsAndOnlyNecessaryPartitionsMove) {
  auto cluster = Cluster({{"t0", 6}});
  std::vector<MemberSubscription> members = {
      Member("C0", {"t0"}, {TP("t0", 0), TP("t0", 1), TP("t0", 2)}, 3),
      Member("C1", {"t0"}, {TP("t0", 3), TP("t0", 4), TP("t0", 5)}, 3), Member("C2", {"t0"})};
  GroupAssignment a = MustAssign(*MakeStickyAssignor(), cluster, members);
  EXPECT_EQ(Of(a, "C0").size(), 2u);
  EXPECT_EQ(Of(a, "C1").size(), 2u);
  EXPECT_EQ(Of(a, "C2").size(), 2u);
  EXPECT_EQ(Kept(members, a), 4u);  // exactly two partitions move, one from each
  // Running again on the result changes nothing.
  members = Apply(members, a, 4);
  GroupAssignment b = MustAssign(*MakeStickyAssignor(), cluster, members);
  EXPECT_EQ(Kept(members, b), 6u);
}

TEST(StickyAssignorTest, NewerGenerationClaimWins) {
  auto cluster = Cluster({{"t0", 4}});
  // C1's claim on p0 is from generation 5, C0's from 3: C1 keeps p0.
  GroupAssignment a = MustAssign(*MakeStickyAssignor(), cluster,
                                 {Member("C0", {"t0"}, {TP("t0", 0), TP("t0", 1)}, 3),
                                  Member("C1", {"t0"}, {TP("t0", 0), TP("t0", 2)}, 5)});
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t0", 0), TP("t0", 2)));
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 1), TP("t0", 3)));
  // The same claims with the generations swapped: C0 keeps p0.
  GroupAssignment b = MustAssign(*MakeStickyAssignor(), cluster,
                                 {Member("C0", {"t0"}, {TP("t0", 0), TP("t0", 1)}, 5),
                                  Member("C1", {"t0"}, {TP("t0", 0), TP("t0", 2)}, 3)});
  EXPECT_THAT(Of(b, "C0"), ElementsAre(TP("t0", 0), TP("t0", 1)));
  EXPECT_THAT(Of(b, "C1"), ElementsAre(TP("t0", 2), TP("t0", 3)));
}

TEST(StickyAssignorTest, BalancingMovesPartitionsBackToOlderClaimants) {
  // C0's generation-4 claims win all of p0..p4; C1 keeps p5. Balance moves
  // two partitions to C1, first the one C1 claimed in generation 3.
  GroupAssignment a = MustAssign(
      *MakeStickyAssignor(), Cluster({{"t0", 6}}),
      {Member("C0", {"t0"}, {TP("t0", 0), TP("t0", 1), TP("t0", 2), TP("t0", 3), TP("t0", 4)}, 4),
       Member("C1", {"t0"}, {TP("t0", 4), TP("t0", 5)}, 3)});
  EXPECT_EQ(Of(a, "C0").size(), 3u);
  EXPECT_THAT(Of(a, "C1"), ::testing::Contains(TP("t0", 4)));
  EXPECT_THAT(Of(a, "C1"), ::testing::Contains(TP("t0", 5)));
  EXPECT_EQ(Of(a, "C1").size(), 3u);
}

TEST(StickyAssignorTest, BalancingMovesNewlyDealtPartitionsBeforeOwnedOnes) {
  // Unowned partitions are dealt first (t0p3 and t1p5..7 all land on A); the
  // balancing move to B then takes t0p3, not A's own t0p0: every claim is kept.
  std::vector<MemberSubscription> members = {
      Member("A", {"t0", "t1"}, {TP("t0", 0)}, 2),
      Member("B", {"t0"}, {TP("t0", 1), TP("t0", 2)}, 2),
      Member("C", {"t1"}, {TP("t1", 0), TP("t1", 1), TP("t1", 2), TP("t1", 3), TP("t1", 4)}, 2)};
  GroupAssignment a = MustAssign(*MakeStickyAssignor(), Cluster({{"t0", 4}, {"t1", 8}}), members);
  EXPECT_THAT(Of(a, "A"), ElementsAre(TP("t0", 0), TP("t1", 5), TP("t1", 6), TP("t1", 7)));
  EXPECT_THAT(Of(a, "B"), ElementsAre(TP("t0", 1), TP("t0", 2), TP("t0", 3)));
  EXPECT_EQ(Of(a, "C").size(), 5u);
  EXPECT_EQ(Kept(members, a), 8u);
}

TEST(StickyAssignorTest, SameGenerationDoubleClaimGoesToOneMember) {
  auto cluster = Cluster({{"t0", 4}});
  GroupAssignment a = MustAssign(*MakeStickyAssignor(), cluster,
                                 {Member("C0", {"t0"}, {TP("t0", 0), TP("t0", 1)}, 4),
                                  Member("C1", {"t0"}, {TP("t0", 1), TP("t0", 2)}, 4)});
  // Uncontested claims are kept; p1 and the unowned p3 are dealt to one each.
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0), TP("t0", 1)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t0", 2), TP("t0", 3)));
}

TEST(StickyAssignorTest, IgnoresClaimsOnUnsubscribedOrMissingPartitions) {
  GroupAssignment a =
      MustAssign(*MakeStickyAssignor(), Cluster({{"t0", 2}, {"t1", 2}}),
                 {Member("C0", {"t0"}, {TP("t1", 0), TP("t0", 7), TP("gone", 0), TP("t0", 0)}, 2),
                  Member("C1", {"t0", "t1"})});
  // C0 keeps only its valid claim t0p0; t1 can only go to C1, so t0p1 goes
  // to C0 for balance.
  EXPECT_THAT(Of(a, "C0"), ElementsAre(TP("t0", 0), TP("t0", 1)));
  EXPECT_THAT(Of(a, "C1"), ElementsAre(TP("t1", 0), TP("t1", 1)));
}

TEST(AssignorTest, ValidationErrors) {
  auto cluster = Cluster({{"t0", 2}});
  for (std::string name : {"range", "roundrobin", "sticky", "cooperative-sticky"}) {
    SCOPED_TRACE(name);
    auto a = *MakeAssignor(name);
    EXPECT_EQ(a->Assign(cluster, {Member("C0", {"t0"}), Member("C0", {"t0"})}).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(a->Assign(cluster, {Member("", {"t0"})}).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(a->Assign(cluster, {Member("C0", {"t0"}, {}, kNoGeneration, "i"),
                                  Member("C1", {"t0"}, {}, kNoGeneration, "i")})
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(a->Assign(Cluster({{"t0", -1}}), {Member("C0", {"t0"})}).status().code(),
              absl::StatusCode::kInvalidArgument);
    absl::StatusOr<GroupAssignment> empty = a->Assign(cluster, {});
    ASSERT_TRUE(empty.ok());
    EXPECT_THAT(empty->members, IsEmpty());
    // A topic with no partitions and an unknown topic are fine.
    GroupAssignment b =
        MustAssign(*a, Cluster({{"t0", 2}, {"e", 0}}), {Member("C0", {"e", "unknown", "t0"})});
    EXPECT_THAT(Of(b, "C0"), ElementsAre(TP("t0", 0), TP("t0", 1)));
  }
}

TEST(CooperativeTest, PlanWithholdsMovingPartitionsAndListsRevocations) {
  std::vector<MemberSubscription> members = {
      Member("A", {"t"}, {TP("t", 0), TP("t", 1)}, 7), Member("B", {"t"}, {TP("t", 2)}, 7),
      Member("C", {"t"}, {TP("t", 3)}, 2),  // stale claim on p3
      Member("D", {"t"}, {TP("t", 3)}, 7)};
  GroupAssignment target;
  target.members["A"].partitions = {TP("t", 0)};
  target.members["B"].partitions = {TP("t", 1), TP("t", 2), TP("t", 4)};  // p1 moves A->B
  target.members["C"].partitions = {TP("t", 3)};                          // C claims p3 too
  absl::StatusOr<CooperativeRound> r = PlanCooperativeRound(members, target);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Of(r->assignment, "A"), ElementsAre(TP("t", 0)));
  EXPECT_THAT(Of(r->assignment, "B"), ElementsAre(TP("t", 2), TP("t", 4)));
  EXPECT_THAT(Of(r->assignment, "C"), ElementsAre(TP("t", 3)));
  EXPECT_THAT(Of(r->assignment, "D"), IsEmpty());
  EXPECT_THAT(r->withheld, ElementsAre(TP("t", 1)));
  EXPECT_EQ(r->revoked.size(), 2u);
  EXPECT_THAT(r->revoked["A"], ElementsAre(TP("t", 1)));
  EXPECT_THAT(r->revoked["D"], ElementsAre(TP("t", 3)));

  // A stale claim still blocks handing the partition to a third member.
  target.members["C"].partitions.clear();
  target.members["D"].partitions.clear();
  target.members["B"].partitions = {TP("t", 2), TP("t", 3)};
  r = PlanCooperativeRound(members, target);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->withheld, ElementsAre(TP("t", 3)));
  EXPECT_THAT(r->revoked["C"], ElementsAre(TP("t", 3)));
  EXPECT_THAT(r->revoked["D"], ElementsAre(TP("t", 3)));
}

TEST(CooperativeTest, PlanRejectsBadTargets) {
  std::vector<MemberSubscription> members = {Member("A", {"t"}), Member("B", {"t"})};
  GroupAssignment twice;
  twice.members["A"].partitions = {TP("t", 0)};
  twice.members["B"].partitions = {TP("t", 0)};
  EXPECT_EQ(PlanCooperativeRound(members, twice).status().code(),
            absl::StatusCode::kInvalidArgument);
  GroupAssignment stranger;
  stranger.members["Z"].partitions = {TP("t", 0)};
  EXPECT_EQ(PlanCooperativeRound(members, stranger).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanCooperativeRound({Member("A", {"t"}), Member("A", {"t"})}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The handover of a cooperative round is safe: a member only starts on a
// partition no other member holds (claims) while the round is applied, so no
// partition is ever consumed by two members; once applied, ownership is
// exactly the round's assignment.
void ExpectSafeHandover(const std::vector<MemberSubscription>& before,
                        const GroupAssignment& round) {
  for (const MemberSubscription& m : before) {
    for (const TopicPartition& tp : Of(round, m.member_id)) {
      if (std::count(m.owned_partitions.begin(), m.owned_partitions.end(), tp) > 0) continue;
      for (const MemberSubscription& other : before) {
        EXPECT_EQ(std::count(other.owned_partitions.begin(), other.owned_partitions.end(), tp), 0)
            << m.member_id << " gets " << tp.topic << "-" << tp.partition << " still held by "
            << other.member_id;
      }
    }
  }
}

TEST(CooperativeTest, MemberJoinsTwoRounds) {
  auto cluster = Cluster({{"t0", 6}});
  auto coop = MakeCooperativeStickyAssignor();
  std::vector<MemberSubscription> members = {
      Member("C0", {"t0"}, {TP("t0", 0), TP("t0", 1), TP("t0", 2)}, 1),
      Member("C1", {"t0"}, {TP("t0", 3), TP("t0", 4), TP("t0", 5)}, 1), Member("C2", {"t0"})};
  GroupAssignment target = MustAssign(*MakeStickyAssignor(), cluster, members);

  // Round 1: C0 and C1 each give up one partition; C2 gets nothing yet.
  GroupAssignment r1 = MustAssign(*coop, cluster, members);
  absl::StatusOr<CooperativeRound> plan = PlanCooperativeRound(members, target);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->assignment.members.at("C0").partitions, Of(r1, "C0"));
  EXPECT_EQ(Of(r1, "C0").size(), 2u);
  EXPECT_EQ(Of(r1, "C1").size(), 2u);
  EXPECT_THAT(Of(r1, "C2"), IsEmpty());
  EXPECT_EQ(plan->withheld.size(), 2u);
  EXPECT_EQ(plan->revoked.at("C0").size(), 1u);
  EXPECT_EQ(plan->revoked.at("C1").size(), 1u);
  ExpectSafeHandover(members, r1);
  members = Apply(members, r1, 2);

  // Round 2: the withheld partitions reach C2; nothing else moves.
  GroupAssignment r2 = MustAssign(*coop, cluster, members);
  for (const auto& [id, a] : target.members) EXPECT_EQ(Of(r2, id), a.partitions) << id;
  plan = PlanCooperativeRound(members, r2);
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(plan->withheld, IsEmpty());
  EXPECT_THAT(plan->revoked, IsEmpty());
}

TEST(CooperativeTest, MemberLeavesNeedsOneRound) {
  auto cluster = Cluster({{"t0", 4}, {"t1", 2}});
  auto coop = MakeCooperativeStickyAssignor();
  std::vector<MemberSubscription> members = {Member("C0", {"t0", "t1"}), Member("C1", {"t0", "t1"}),
                                             Member("C2", {"t0", "t1"})};
  members = Apply(members, MustAssign(*coop, cluster, members), 1);
  members.pop_back();
  GroupAssignment r = MustAssign(*coop, cluster, members);
  EXPECT_EQ(Kept(members, r), 4u);
  EXPECT_EQ(Of(r, "C0").size(), 3u);
  EXPECT_EQ(Of(r, "C1").size(), 3u);
  absl::StatusOr<CooperativeRound> plan = PlanCooperativeRound(members, r);
  ASSERT_TRUE(plan.ok());
  EXPECT_THAT(plan->revoked, IsEmpty());
}

TEST(StickyAssignorTest, LargeGroupMemberLeavesAndRejoins) {
  // 2,000 partitions over 100 members: one leaves, its 20 partitions spread
  // over the others; it comes back and takes 20 partitions, one from each of
  // 20 members. Nothing else moves.
  ClusterView cluster;
  std::vector<std::string> topics;
  for (int t = 0; t < 50; ++t) {
    topics.push_back("topic-" + std::to_string(t));
    cluster.partition_counts[topics.back()] = 40;
  }
  std::vector<MemberSubscription> members;
  for (int i = 0; i < 100; ++i) members.push_back(Member("member-" + std::to_string(i), topics));
  auto sticky = MakeStickyAssignor();
  GroupAssignment a = MustAssign(*sticky, cluster, members);
  for (const auto& [id, m] : a.members) ASSERT_EQ(m.partitions.size(), 20u) << id;
  members = Apply(members, a, 1);
  MemberSubscription leaver = members.back();
  members.pop_back();
  GroupAssignment b = MustAssign(*sticky, cluster, members);
  EXPECT_EQ(Kept(members, b), 1980u);
  members = Apply(members, b, 2);
  leaver.owned_partitions.clear();
  leaver.generation = kNoGeneration;
  members.push_back(leaver);
  GroupAssignment c = MustAssign(*sticky, cluster, members);
  for (const auto& [id, m] : c.members) ASSERT_EQ(m.partitions.size(), 20u) << id;
  EXPECT_EQ(Kept(members, c), 1980u);
}

// Seeded random groups: invariants of every assignor, balance and optimal
// stickiness of sticky, and cooperative convergence.
struct RandomCase {
  ClusterView cluster;
  std::vector<MemberSubscription> members;
  bool same_subscription = false;
  bool disjoint_claims = false;  // at most one claim per partition, all valid
};

RandomCase MakeCase(uint32_t seed) {
  std::mt19937 rng(seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  RandomCase c;
  const int topics = uniform(1, 4);
  std::vector<std::string> names;
  for (int t = 0; t < topics; ++t) {
    names.push_back("t" + std::to_string(t));
    c.cluster.partition_counts[names.back()] = uniform(0, 9);
  }
  c.same_subscription = uniform(0, 2) == 0;
  c.disjoint_claims = uniform(0, 1) == 0;
  const int n = uniform(1, 7);
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);  // input order must not matter
  for (int i : order) {
    MemberSubscription m;
    m.member_id = "m" + std::to_string(i);
    if (uniform(0, 3) == 0) m.group_instance_id = "i" + std::to_string(n - i);
    if (c.same_subscription) {
      m.topics = names;
    } else {
      for (const std::string& t : names) {
        if (uniform(0, 1) == 0) m.topics.push_back(t);
      }
      if (uniform(0, 4) == 0) m.topics.push_back("unknown");
    }
    m.generation = c.disjoint_claims ? 10 : uniform(1, 4);
    c.members.push_back(std::move(m));
  }
  // Claims: each partition claimed by zero, one or (unless disjoint) more.
  for (const auto& [topic, count] : c.cluster.partition_counts) {
    for (int32_t p = 0; p < count; ++p) {
      const int claimants = c.disjoint_claims ? uniform(0, 1) : uniform(0, 2);
      for (int k = 0; k < claimants; ++k) {
        MemberSubscription& m = c.members[uniform(0, n - 1)];
        if (c.disjoint_claims &&
            std::find(m.topics.begin(), m.topics.end(), topic) == m.topics.end()) {
          continue;
        }
        m.owned_partitions.push_back(TP(topic, p));
      }
    }
  }
  if (!c.disjoint_claims && uniform(0, 1) == 0) {
    c.members[0].owned_partitions.push_back(TP("t0", 42));  // beyond the count
  }
  return c;
}

// Every partition of a subscribed topic assigned exactly once, to a
// subscriber; one sorted entry per member.
void CheckValid(const RandomCase& c, const GroupAssignment& a) {
  ASSERT_EQ(a.members.size(), c.members.size());
  std::map<TopicPartition, int> times;
  for (const MemberSubscription& m : c.members) {
    ASSERT_TRUE(a.members.contains(m.member_id));
    const Parts& parts = Of(a, m.member_id);
    EXPECT_TRUE(std::is_sorted(parts.begin(), parts.end()));
    for (const TopicPartition& tp : parts) {
      ++times[tp];
      EXPECT_NE(std::find(m.topics.begin(), m.topics.end(), tp.topic), m.topics.end())
          << m.member_id << " got unsubscribed " << tp.topic;
    }
  }
  for (const auto& [topic, count] : c.cluster.partition_counts) {
    bool subscribed = false;
    for (const MemberSubscription& m : c.members) {
      subscribed |= std::find(m.topics.begin(), m.topics.end(), topic) != m.topics.end();
    }
    for (int32_t p = 0; p < count; ++p) {
      EXPECT_EQ(times[TP(topic, p)], subscribed ? 1 : 0) << topic << "-" << p;
    }
  }
}

// Sticky's balance: a member two or more behind another subscribes to none of
// that member's topics.
void CheckBalanced(const RandomCase& c, const GroupAssignment& a) {
  for (const MemberSubscription& x : c.members) {
    for (const MemberSubscription& y : c.members) {
      if (Of(a, x.member_id).size() < Of(a, y.member_id).size() + 2) continue;
      for (const TopicPartition& tp : Of(a, x.member_id)) {
        EXPECT_EQ(std::find(y.topics.begin(), y.topics.end(), tp.topic), y.topics.end())
            << y.member_id << " could take " << tp.topic << "-" << tp.partition << " from "
            << x.member_id;
      }
    }
  }
}

// The most valid claims a balanced assignment can keep when all members
// subscribe to the same topics and claims are disjoint.
size_t OptimalKept(const RandomCase& c) {
  size_t total = 0;
  for (const auto& [t, count] : c.cluster.partition_counts) total += count;
  const size_t n = c.members.size();
  std::vector<size_t> owned;
  for (const MemberSubscription& m : c.members) owned.push_back(m.owned_partitions.size());
  std::sort(owned.rbegin(), owned.rend());
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t quota = total / n + (i < total % n ? 1 : 0);
    kept += std::min(owned[i], quota);
  }
  return kept;
}

TEST(AssignorPropertyTest, RandomGroups) {
  auto range = MakeRangeAssignor();
  auto rr = MakeRoundRobinAssignor();
  auto sticky = MakeStickyAssignor();
  auto coop = MakeCooperativeStickyAssignor();
  for (uint32_t seed = 1; seed <= 400; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    RandomCase c = MakeCase(seed);
    for (const PartitionAssignor* a : {range.get(), rr.get(), sticky.get()}) {
      SCOPED_TRACE(std::string(a->Name()));
      GroupAssignment out = MustAssign(*a, c.cluster, c.members);
      CheckValid(c, out);
      // Deterministic whatever the input order.
      std::vector<MemberSubscription> reversed(c.members.rbegin(), c.members.rend());
      GroupAssignment again = MustAssign(*a, c.cluster, reversed);
      for (const MemberSubscription& m : c.members) {
        EXPECT_EQ(Of(out, m.member_id), Of(again, m.member_id));
      }
    }
    GroupAssignment target = MustAssign(*sticky, c.cluster, c.members);
    CheckBalanced(c, target);
    if (c.same_subscription && c.disjoint_claims) {
      EXPECT_EQ(Kept(c.members, target), OptimalKept(c));
    }

    // Cooperative: no round hands a claimed partition to a new owner; rounds
    // converge to a valid, balanced assignment with nothing left to withhold.
    std::vector<MemberSubscription> members = c.members;
    int32_t generation = 10;
    bool converged = false;
    for (int round = 0; round < 4 && !converged; ++round) {
      GroupAssignment r = MustAssign(*coop, c.cluster, members);
      absl::StatusOr<CooperativeRound> plan =
          PlanCooperativeRound(members, MustAssign(*sticky, c.cluster, members));
      ASSERT_TRUE(plan.ok());
      for (const MemberSubscription& m : members) {
        ASSERT_EQ(Of(r, m.member_id), Of(plan->assignment, m.member_id));
      }
      converged = plan->withheld.empty();
      ExpectSafeHandover(members, r);
      members = Apply(members, r, ++generation);
      if (converged) {
        CheckValid(c, r);
        RandomCase now = c;
        now.members = members;
        CheckBalanced(now, r);
      }
      // With identical subscriptions, the second round is the last.
      if (c.same_subscription && round == 1) {
        EXPECT_TRUE(converged);
      }
    }
    EXPECT_TRUE(converged);
  }
}

}  // namespace
}  // namespace brook::client
