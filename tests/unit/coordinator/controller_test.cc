// Controller decisions: placement, elections after broker loss, in-sync set
// changes, preferred-leader moves and controlled shutdown, on a MetadataState
// built from records (the records returned are applied back to check them).
#include "coordinator/controller.h"

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "gtest/gtest.h"

namespace brook::coordinator {
namespace {

using proto::ErrorCode;

struct PartitionSpec {
  PartitionSpec(std::vector<int32_t> r, std::vector<int32_t> i = {}, int32_t l = -2,
                int32_t e = 0)
      : replicas(std::move(r)), isr(std::move(i)), leader(l), epoch(e) {}
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;  // empty: all replicas
  int32_t leader;            // -2: the first replica
  int32_t epoch;
};

// Builds an image and applies controller output to it.
class Cluster {
 public:
  void Broker(int32_t id) {
    proto::MetadataRecord r;
    r.mutable_broker()->mutable_broker()->set_broker_id(id);
    r.mutable_broker()->mutable_broker()->set_host("127.0.0.1");
    r.mutable_broker()->mutable_broker()->set_port(9000 + id);
    Apply(r);
  }

  void Topic(const std::string& name, const std::vector<PartitionSpec>& parts,
             bool unclean = false) {
    proto::MetadataRecord r;
    proto::TopicDescription* t = r.mutable_topic()->mutable_topic();
    t->set_name(name);
    t->set_topic_id("id-" + name);
    if (unclean) t->mutable_config()->set_unclean_leader_election(true);
    for (size_t p = 0; p < parts.size(); ++p) {
      proto::PartitionDescription* d = t->add_partitions();
      d->set_partition(static_cast<int32_t>(p));
      for (int32_t b : parts[p].replicas) d->add_replicas(b);
      for (int32_t b : parts[p].isr.empty() ? parts[p].replicas : parts[p].isr) d->add_isr(b);
      d->set_leader(parts[p].leader == -2 ? parts[p].replicas[0] : parts[p].leader);
      d->set_leader_epoch(parts[p].epoch);
    }
    Apply(r);
  }

  void Apply(const proto::MetadataRecord& r) {
    ASSERT_TRUE(state.Apply(Offset(++offset_), r).ok()) << r.DebugString();
  }
  void ApplyAll(const std::vector<proto::MetadataRecord>& records) {
    for (const auto& r : records) Apply(r);
  }

  const proto::PartitionDescription& P(const std::string& topic, int32_t partition) const {
    return state.FindTopic(topic)->partitions(partition);
  }

  MetadataState state;

 private:
  int64_t offset_ = -1;
};

std::vector<int32_t> Isr(const proto::PartitionDescription& p) {
  return {p.isr().begin(), p.isr().end()};
}

int CountFences(const std::vector<proto::MetadataRecord>& records) {
  int n = 0;
  for (const auto& r : records) n += r.has_fence_broker() ? 1 : 0;
  return n;
}

// ---- PlaceReplicas -----------------------------------------------------------

TEST(PlaceReplicasTest, EvenLeadersAndReplicas) {
  const auto placement = PlaceReplicas({1, 2, 3}, 12, 3, 0);
  ASSERT_EQ(placement.size(), 12u);
  std::map<int32_t, int> leads, hosts;
  for (const auto& replicas : placement) {
    ASSERT_EQ(replicas.size(), 3u);
    EXPECT_EQ(std::set<int32_t>(replicas.begin(), replicas.end()).size(), 3u);
    ++leads[replicas[0]];
    for (int32_t b : replicas) ++hosts[b];
  }
  for (int32_t b : {1, 2, 3}) {
    EXPECT_EQ(leads[b], 4) << b;
    EXPECT_EQ(hosts[b], 12) << b;
  }
  EXPECT_EQ(placement[0], (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(placement[1], (std::vector<int32_t>{2, 3, 1}));
}

TEST(PlaceReplicasTest, UnevenCountsDifferByAtMostOne) {
  const auto placement = PlaceReplicas({2, 5, 7, 9, 11}, 7, 2, 3);
  ASSERT_EQ(placement.size(), 7u);
  std::map<int32_t, int> leads, hosts;
  for (const auto& replicas : placement) {
    ASSERT_EQ(replicas.size(), 2u);
    EXPECT_NE(replicas[0], replicas[1]);
    ++leads[replicas[0]];
    for (int32_t b : replicas) ++hosts[b];
  }
  int min_lead = 100, max_lead = 0, min_host = 100, max_host = 0;
  for (int32_t b : {2, 5, 7, 9, 11}) {
    min_lead = std::min(min_lead, leads[b]);
    max_lead = std::max(max_lead, leads[b]);
    min_host = std::min(min_host, hosts[b]);
    max_host = std::max(max_host, hosts[b]);
  }
  // Leaders differ by at most one; a broker hosts the partitions starting at it
  // and at the rf-1 brokers before it, so hosting differs by at most rf.
  EXPECT_LE(max_lead - min_lead, 1);
  EXPECT_LE(max_host - min_host, 2);
  int total = 0;
  for (const auto& [b, n] : hosts) total += n;
  EXPECT_EQ(total, 14);
  EXPECT_EQ(placement[0][0], 9);  // rotation 3 starts at live[3]
}

TEST(PlaceReplicasTest, RotationShiftsStartAndSingleTopicsSpread) {
  std::map<int32_t, int> leads;
  for (uint64_t rotation = 0; rotation < 6; ++rotation) {
    const auto placement = PlaceReplicas({1, 2, 3}, 1, 1, rotation);
    ASSERT_EQ(placement.size(), 1u);
    ++leads[placement[0][0]];
  }
  EXPECT_EQ(leads[1], 2);
  EXPECT_EQ(leads[2], 2);
  EXPECT_EQ(leads[3], 2);
}

TEST(PlaceReplicasTest, InvalidInputPlacesNothing) {
  EXPECT_TRUE(PlaceReplicas({}, 3, 1, 0).empty());
  EXPECT_TRUE(PlaceReplicas({1, 2}, 3, 3, 0).empty());
  EXPECT_TRUE(PlaceReplicas({1, 2}, 0, 1, 0).empty());
  EXPECT_TRUE(PlaceReplicas({1, 2}, 3, 0, 0).empty());
}

// ---- OnBrokersLost / ElectLeaderless ------------------------------------------

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int32_t b : {1, 2, 3}) c.Broker(b);
  }
  Cluster c;
};

TEST_F(ControllerTest, LostLeaderMovesToNextInSyncReplica) {
  c.Topic("t", {{{1, 2, 3}, {}, -2, 4}, {{2, 3, 1}}});
  const auto records = OnBrokersLost(c.state, {1}, {2, 3});
  ASSERT_EQ(records.size(), 3u);  // fence 1, t-0 (leader), t-1 (isr)
  ASSERT_TRUE(records[0].has_fence_broker());
  EXPECT_EQ(records[0].fence_broker().broker_id(), 1);
  EXPECT_EQ(records[0].fence_broker().broker_epoch(), c.state.FindBroker(NodeId(1))->epoch);
  EXPECT_EQ(records[1].partition_change().partition(), 0);
  EXPECT_EQ(records[1].partition_change().topic_id(), "id-t");
  EXPECT_EQ(records[2].partition_change().partition(), 1);
  c.ApplyAll(records);

  EXPECT_TRUE(c.state.FindBroker(NodeId(1))->fenced);
  EXPECT_EQ(c.P("t", 0).leader(), 2);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 5);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{2, 3}));
  // A lost follower: the in-sync set shrinks, leader and epoch stay.
  EXPECT_EQ(c.P("t", 1).leader(), 2);
  EXPECT_EQ(c.P("t", 1).leader_epoch(), 0);
  EXPECT_EQ(Isr(c.P("t", 1)), (std::vector<int32_t>{2, 3}));
}

TEST_F(ControllerTest, OutputOrderIsFencesThenTopicsByNameAndPartitions) {
  c.Topic("b", {{{1, 2}}, {{2, 1}}});
  c.Topic("a", {{{2, 1}}, {{1, 2}}});
  const auto records = OnBrokersLost(c.state, {2, 1}, {3});
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[0].fence_broker().broker_id(), 1);
  EXPECT_EQ(records[1].fence_broker().broker_id(), 2);
  std::vector<std::string> order;
  for (size_t i = 2; i < records.size(); ++i) {
    order.push_back(records[i].partition_change().topic() + "-" +
                    std::to_string(records[i].partition_change().partition()));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a-0", "a-1", "b-0", "b-1"}));
  c.ApplyAll(records);
  for (const char* t : {"a", "b"}) {
    for (int32_t p : {0, 1}) {
      EXPECT_EQ(c.P(t, p).leader(), -1);
      EXPECT_EQ(c.P(t, p).leader_epoch(), 1);
      // The former leader is kept as the last in-sync member.
      EXPECT_EQ(Isr(c.P(t, p)), (std::vector<int32_t>{c.P(t, p).replicas(0)}));
    }
  }
  // A leaderless partition answers AlterIsr from anyone with NOT_LEADER.
  proto::AlterIsrPartition req;
  req.set_topic("a");
  req.set_partition(0);
  req.set_leader_epoch(1);
  req.add_new_isr(2);
  auto r = AlterIsr(c.state, 2, req, {2});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToErrorCode(r.status()), ErrorCode::NOT_LEADER);
}

TEST_F(ControllerTest, ElectionSkipsOutOfSyncReplicas) {
  // Replica 2 is not in sync: 3 must be chosen although 2 comes first.
  c.Topic("t", {{{1, 2, 3}, {1, 3}, -2, 7}});
  c.ApplyAll(OnBrokersLost(c.state, {1}, {2, 3}));
  EXPECT_EQ(c.P("t", 0).leader(), 3);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 8);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{3}));
}

TEST_F(ControllerTest, UnaffectedPartitionsGetNoRecord) {
  c.Topic("a", {{{2, 3}}});
  c.Topic("b", {{{1, 2}}, {{3, 2}}});
  const auto records = OnBrokersLost(c.state, {1}, {2, 3});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_TRUE(records[0].has_fence_broker());
  EXPECT_EQ(records[1].partition_change().topic(), "b");
  EXPECT_EQ(records[1].partition_change().partition(), 0);
}

TEST_F(ControllerTest, AllInSyncLostGoesOfflineThenElectsReturningMember) {
  c.Topic("t", {{{1, 2, 3}, {}, -2, 2}});
  c.ApplyAll(OnBrokersLost(c.state, {2, 3}, {1}));
  EXPECT_EQ(c.P("t", 0).leader(), 1);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 2);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{1}));

  const auto lost = OnBrokersLost(c.state, {1}, {});
  EXPECT_EQ(CountFences(lost), 1);
  c.ApplyAll(lost);
  EXPECT_EQ(c.P("t", 0).leader(), -1);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 3);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{1}));  // never empty

  // Brokers 2 and 3 return: they were not in sync, so no clean election.
  c.Broker(2);
  c.Broker(3);
  EXPECT_TRUE(ElectLeaderless(c.state, {2, 3}).empty());

  // Broker 1 (the last in-sync member) re-registers and comes back.
  c.Broker(1);
  const auto elected = ElectLeaderless(c.state, {1, 2, 3});
  ASSERT_EQ(elected.size(), 1u);
  c.ApplyAll(elected);
  EXPECT_EQ(c.P("t", 0).leader(), 1);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 4);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{1}));
  EXPECT_TRUE(ElectLeaderless(c.state, {1, 2, 3}).empty());
}

TEST_F(ControllerTest, SimultaneousLossKeepsLeaderAsLastMember) {
  c.Topic("t", {{{1, 2, 3}, {}, 2, 0}});
  c.ApplyAll(OnBrokersLost(c.state, {1, 2, 3}, {}));
  EXPECT_EQ(c.P("t", 0).leader(), -1);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 1);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{2}));
}

TEST_F(ControllerTest, FencedBrokerIsNotElectedUntilItReregisters) {
  c.Topic("t", {{{1, 2}}});
  c.ApplyAll(OnBrokersLost(c.state, {1, 2}, {}));
  ASSERT_EQ(c.P("t", 0).leader(), -1);
  // Broker 1 holds a lease again but its re-registration is not applied yet.
  EXPECT_TRUE(ElectLeaderless(c.state, {1}).empty());
  c.Broker(1);
  EXPECT_EQ(ElectLeaderless(c.state, {1}).size(), 1u);
}

TEST_F(ControllerTest, UncleanElectionTakesFirstLiveReplica) {
  c.Topic("clean", {{{1, 2, 3}, {1}}});
  c.Topic("dirty", {{{1, 2, 3}, {1}}}, /*unclean=*/true);
  c.ApplyAll(OnBrokersLost(c.state, {1}, {2, 3}));
  EXPECT_EQ(c.P("clean", 0).leader(), -1);
  EXPECT_EQ(Isr(c.P("clean", 0)), (std::vector<int32_t>{1}));
  EXPECT_EQ(c.P("dirty", 0).leader(), 2);
  EXPECT_EQ(c.P("dirty", 0).leader_epoch(), 1);
  EXPECT_EQ(Isr(c.P("dirty", 0)), (std::vector<int32_t>{2}));
}

TEST_F(ControllerTest, UncleanElectionOfLeaderlessPartition) {
  c.Topic("dirty", {{{1, 2, 3}, {1}}}, /*unclean=*/true);
  c.ApplyAll(OnBrokersLost(c.state, {1, 2, 3}, {}));
  ASSERT_EQ(c.P("dirty", 0).leader(), -1);
  c.Broker(3);
  c.ApplyAll(ElectLeaderless(c.state, {3}));
  EXPECT_EQ(c.P("dirty", 0).leader(), 3);
  EXPECT_EQ(c.P("dirty", 0).leader_epoch(), 2);
  EXPECT_EQ(Isr(c.P("dirty", 0)), (std::vector<int32_t>{3}));
}

TEST_F(ControllerTest, FenceRecordsAreIdempotent) {
  c.Topic("t", {{{1, 2}}});
  const auto first = OnBrokersLost(c.state, {1}, {2, 3});
  EXPECT_EQ(CountFences(first), 1);
  c.ApplyAll(first);
  // Losing an already fenced broker again proposes nothing.
  EXPECT_TRUE(OnBrokersLost(c.state, {1}, {2, 3}).empty());
  // Applying the same fence twice is harmless; a stale fence (old epoch) is ignored.
  c.Apply(first[0]);
  EXPECT_TRUE(c.state.FindBroker(NodeId(1))->fenced);
  c.Broker(1);
  EXPECT_FALSE(c.state.FindBroker(NodeId(1))->fenced);
  c.Apply(first[0]);
  EXPECT_FALSE(c.state.FindBroker(NodeId(1))->fenced);
  // An unregistered broker gets no fence record.
  EXPECT_EQ(CountFences(OnBrokersLost(c.state, {42}, {1, 2, 3})), 0);
}

// ---- AlterIsr -------------------------------------------------------------------

proto::AlterIsrPartition Req(const std::string& topic, int32_t partition, int32_t epoch,
                             const std::vector<int32_t>& isr) {
  proto::AlterIsrPartition r;
  r.set_topic(topic);
  r.set_partition(partition);
  r.set_leader_epoch(epoch);
  for (int32_t b : isr) r.add_new_isr(b);
  return r;
}

TEST_F(ControllerTest, AlterIsrShrinksAndExpands) {
  c.Topic("t", {{{1, 2, 3}, {}, -2, 3}});
  auto shrink = AlterIsr(c.state, 1, Req("t", 0, 3, {1, 3}), {1, 2, 3});
  ASSERT_TRUE(shrink.ok()) << shrink.status();
  EXPECT_EQ(shrink->partition_change().leader(), 1);
  EXPECT_EQ(shrink->partition_change().leader_epoch(), 3);
  c.Apply(*shrink);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 3);

  auto expand = AlterIsr(c.state, 1, Req("t", 0, 3, {1, 3, 2}), {1, 2, 3});
  ASSERT_TRUE(expand.ok()) << expand.status();
  c.Apply(*expand);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{1, 3, 2}));

  // No change at all is still a valid record.
  EXPECT_TRUE(AlterIsr(c.state, 1, Req("t", 0, 3, {1, 3, 2}), {1, 2, 3}).ok());
}

TEST_F(ControllerTest, AlterIsrErrors) {
  c.Topic("t", {{{1, 2, 3}, {1, 2}, -2, 3}});
  std::set<int32_t> live = {1, 2};  // broker 3 holds no lease
  auto code = [&](int32_t broker, const proto::AlterIsrPartition& req) {
    auto r = AlterIsr(c.state, broker, req, live);
    EXPECT_FALSE(r.ok());
    return r.ok() ? ErrorCode::NONE : ToErrorCode(r.status());
  };
  EXPECT_EQ(code(1, Req("nope", 0, 3, {1})), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(code(1, Req("t", 5, 3, {1})), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(code(2, Req("t", 0, 3, {2})), ErrorCode::NOT_LEADER);
  EXPECT_EQ(code(1, Req("t", 0, 2, {1})), ErrorCode::FENCED_LEADER_EPOCH);
  EXPECT_EQ(code(1, Req("t", 0, 4, {1})), ErrorCode::UNKNOWN_LEADER_EPOCH);
  EXPECT_EQ(code(1, Req("t", 0, 3, {})), ErrorCode::INVALID_REQUEST);        // empty
  EXPECT_EQ(code(1, Req("t", 0, 3, {1, 2, 1})), ErrorCode::INVALID_REQUEST); // duplicate
  EXPECT_EQ(code(1, Req("t", 0, 3, {1, 4})), ErrorCode::INVALID_REQUEST);    // not a replica
  EXPECT_EQ(code(1, Req("t", 0, 3, {2})), ErrorCode::INVALID_REQUEST);       // without leader
  EXPECT_EQ(code(1, Req("t", 0, 3, {1, 2, 3})), ErrorCode::INVALID_REQUEST); // 3 not live

  // A broker holding a lease but fenced cannot join either.
  proto::MetadataRecord fence;
  fence.mutable_fence_broker()->set_broker_id(3);
  fence.mutable_fence_broker()->set_broker_epoch(c.state.FindBroker(NodeId(3))->epoch);
  c.Apply(fence);
  live.insert(3);
  EXPECT_EQ(code(1, Req("t", 0, 3, {1, 2, 3})), ErrorCode::INVALID_REQUEST);
  // Once it re-registers it may join.
  c.Broker(3);
  EXPECT_TRUE(AlterIsr(c.state, 1, Req("t", 0, 3, {1, 2, 3}), live).ok());
  // Members already in sync may stay even when not live (the leader drops
  // them when they fall behind).
  live.erase(2);
  EXPECT_TRUE(AlterIsr(c.state, 1, Req("t", 0, 3, {1, 2}), live).ok());
}

// ---- PreferredLeaderMoves --------------------------------------------------------

TEST_F(ControllerTest, PreferredLeaderMovesBackWhenInSync) {
  c.Topic("t", {{{1, 2, 3}, {}, -2, 0}, {{2, 3, 1}}, {{3, 1, 2}, {1, 2}, 1, 4}});
  c.ApplyAll(OnBrokersLost(c.state, {1}, {2, 3}));
  ASSERT_EQ(c.P("t", 0).leader(), 2);
  ASSERT_EQ(c.P("t", 0).leader_epoch(), 1);
  ASSERT_EQ(c.P("t", 2).leader(), 2);
  c.Broker(1);
  // Broker 1 is live again but not yet back in sync: no move for t-0.
  auto moves = PreferredLeaderMoves(c.state, {1, 2, 3});
  // t-2: preferred 3 is not in sync either.
  EXPECT_TRUE(moves.empty());

  c.Apply(*AlterIsr(c.state, 2, Req("t", 0, 1, {2, 3, 1}), {1, 2, 3}));
  c.Apply(*AlterIsr(c.state, 2, Req("t", 2, 5, {2, 3}), {1, 2, 3}));
  moves = PreferredLeaderMoves(c.state, {1, 2, 3});
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[0].partition_change().partition(), 0);
  EXPECT_EQ(moves[1].partition_change().partition(), 2);
  c.ApplyAll(moves);
  EXPECT_EQ(c.P("t", 0).leader(), 1);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 2);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{2, 3, 1}));
  EXPECT_EQ(c.P("t", 2).leader(), 3);
  EXPECT_EQ(c.P("t", 2).leader_epoch(), 6);
  EXPECT_TRUE(PreferredLeaderMoves(c.state, {1, 2, 3}).empty());
  // A preferred replica without a lease is not chosen.
  c.Topic("u", {{{1, 2}, {}, 2, 0}});
  EXPECT_TRUE(PreferredLeaderMoves(c.state, {2, 3}).empty());
}

// ---- ControlledShutdown ----------------------------------------------------------

TEST_F(ControllerTest, ControlledShutdownMovesLeadershipAndFences) {
  c.Topic("t", {{{1, 2, 3}}, {{2, 1, 3}}, {{3, 2}}});
  int32_t remaining = -1;
  const auto records = ControlledShutdown(c.state, 1, {1, 2, 3}, &remaining);
  EXPECT_EQ(remaining, 0);
  EXPECT_EQ(CountFences(records), 1);
  ASSERT_FALSE(records.empty());
  EXPECT_TRUE(records[0].has_fence_broker());
  EXPECT_TRUE(records[0].fence_broker().controlled_shutdown());
  c.ApplyAll(records);
  EXPECT_TRUE(c.state.FindBroker(NodeId(1))->fenced);
  EXPECT_TRUE(c.state.FindBroker(NodeId(1))->shut_down);
  EXPECT_EQ(c.P("t", 0).leader(), 2);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 1);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(c.P("t", 1).leader(), 2);
  EXPECT_EQ(c.P("t", 1).leader_epoch(), 0);
  EXPECT_EQ(Isr(c.P("t", 1)), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(c.P("t", 2).leader(), 3);
  EXPECT_EQ(Isr(c.P("t", 2)), (std::vector<int32_t>{3, 2}));
}

TEST_F(ControllerTest, ControlledShutdownKeepsPartitionsWithoutOtherLiveInSyncReplica) {
  // t-0: the only other in-sync member (2) is not live. t-1: no other member.
  // t-2: 3 is in sync and live, so it moves.
  c.Topic("t", {{{1, 2}}, {{1, 3}, {1}}, {{1, 3}}});
  int32_t remaining = -1;
  auto records = ControlledShutdown(c.state, 1, {1, 3}, &remaining);
  EXPECT_EQ(remaining, 2);
  EXPECT_EQ(CountFences(records), 0);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].partition_change().partition(), 2);
  c.ApplyAll(records);
  EXPECT_EQ(c.P("t", 0).leader(), 1);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(c.P("t", 1).leader(), 1);
  EXPECT_EQ(Isr(c.P("t", 1)), (std::vector<int32_t>{1}));
  EXPECT_EQ(c.P("t", 2).leader(), 3);
  EXPECT_FALSE(c.state.FindBroker(NodeId(1))->fenced);

  // Broker 2 comes back; asking again moves t-0 but t-1 still stays.
  records = ControlledShutdown(c.state, 1, {1, 2, 3}, &remaining);
  EXPECT_EQ(remaining, 1);
  EXPECT_EQ(CountFences(records), 0);
  c.ApplyAll(records);
  EXPECT_EQ(c.P("t", 0).leader(), 2);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 1);
  EXPECT_EQ(c.P("t", 1).leader(), 1);
}

TEST_F(ControllerTest, ControlledShutdownOfFollowerOnly) {
  c.Topic("t", {{{2, 1}}});
  int32_t remaining = -1;
  const auto records = ControlledShutdown(c.state, 1, {1, 2, 3}, &remaining);
  EXPECT_EQ(remaining, 0);
  ASSERT_EQ(records.size(), 2u);
  c.ApplyAll(records);
  EXPECT_EQ(c.P("t", 0).leader(), 2);
  EXPECT_EQ(c.P("t", 0).leader_epoch(), 0);
  EXPECT_EQ(Isr(c.P("t", 0)), (std::vector<int32_t>{2}));
  // Asking again after being fenced proposes nothing.
  EXPECT_TRUE(ControlledShutdown(c.state, 1, {2, 3}, &remaining).empty());
  EXPECT_EQ(remaining, 0);
}

}  // namespace
}  // namespace brook::coordinator
