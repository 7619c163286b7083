// A network partition isolating a partition leader: broker 1 reaches the
// coordinator and is reached by the other brokers only through test-only
// TCP proxies (it advertises its proxy; its quorum names the coordinator's
// proxy). Blocking both proxies cuts it off from the majority while a client
// on its side still talks to it directly: with acks=all it acknowledges
// nothing, the majority elects a new leader that does acknowledge, and after
// the partition heals none of the minority's writes is in the log.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

TEST(ClusterNetworkPartitionTest, IsolatedLeaderAcknowledgesNothingWithAcksAll) {
  ClusterOptions o;
  o.nameservers = 1;
  o.coordinators = 1;
  o.brokers = 3;
  o.config = FastFailoverConfig();
  Cluster cluster(o);
  TcpProxy broker_proxy, coordinator_proxy;
  ASSERT_TRUE(broker_proxy.Listen().ok());
  ASSERT_TRUE(coordinator_proxy.Listen().ok());
  coordinator_proxy.SetTarget(cluster.CoordinatorAddress(1));
  cluster.SetProcessArgs(Role::kBroker, 1,
                         {"--broker-advertised=" + broker_proxy.address().ToString(),
                          "--coordinator-quorum=1@" + coordinator_proxy.address().ToString()});
  for (Role role : {Role::kNameServer, Role::kCoordinator, Role::kBroker}) {
    for (int id : cluster.ids(role)) ASSERT_TRUE(cluster.StartOne(role, id).ok()) << cluster.LogTails();
  }
  broker_proxy.SetTarget(cluster.BrokerAddress(1));
  ASSERT_TRUE(cluster.WaitForBrokersLive(15s).ok()) << cluster.LogTails();

  const std::string topic = "split";
  ASSERT_TRUE(cluster.CreateTopic(topic, 3, 3, 2).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(topic).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForRoutes(topic, 3).ok()) << cluster.LogTails();
  auto parts = cluster.DescribeTopic(topic);
  ASSERT_TRUE(parts.ok());
  int32_t partition = -1;
  int32_t epoch = -1;
  for (const auto& p : *parts) {
    if (p.leader == 1) {
      partition = p.partition;
      epoch = p.leader_epoch;
    }
  }
  ASSERT_GE(partition, 0) << "broker 1 leads no partition";

  // A client on the minority side: broker 1's real port, no proxy.
  auto minority = cluster.Connect(Role::kBroker, 1);
  ASSERT_TRUE(minority.ok());
  std::string why;
  bool pre = false;
  for (int i = 0; i < 50 && !pre; ++i) {
    pre = Acknowledged(ProduceRecordAsync(**minority, topic, partition, "pre", -1, 4000).get(), &why);
    if (!pre) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(pre) << why << cluster.LogTails();

  broker_proxy.SetBlocked(true);
  coordinator_proxy.SetBlocked(true);
  const auto cut = Cluster::Clock::now();
  std::vector<std::future<absl::StatusOr<proto::ProduceResponse>>> minority_writes;
  for (int i = 0; Cluster::Clock::now() - cut < 4s; ++i) {
    minority_writes.push_back(
        ProduceRecordAsync(**minority, topic, partition, absl::StrCat("minority-", i), -1, 4000));
    std::this_thread::sleep_for(250ms);
  }
  // The majority elects another leader, which acknowledges acks=all writes.
  auto successor = cluster.WaitForLeader(topic, partition, 1, epoch, 15s);
  ASSERT_TRUE(successor.ok()) << successor.status() << cluster.LogTails();
  auto majority = cluster.Connect(Role::kBroker, successor->leader);
  ASSERT_TRUE(majority.ok());
  bool majority_acked = false;
  for (int i = 0; i < 100 && !majority_acked; ++i) {
    majority_acked = Acknowledged(ProduceRecordAsync(**majority, topic, partition, "majority", -1, 4000).get(), &why);
    if (!majority_acked) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(majority_acked) << why << cluster.LogTails();
  int refused = 0;
  for (auto& f : minority_writes) {
    EXPECT_FALSE(Acknowledged(f.get(), &why)) << "the isolated leader acknowledged a write";
    ++refused;
  }
  std::printf("%d writes to the isolated leader, none acknowledged; last answer: %s\n", refused,
              why.c_str());

  // Heal: broker 1 rejoins as a follower and drops what it alone had.
  broker_proxy.SetBlocked(false);
  coordinator_proxy.SetBlocked(false);
  ASSERT_TRUE(cluster.WaitForFullIsr(topic, 30s).ok()) << cluster.LogTails();
  int64_t hw = -1;
  auto read = ReadPartition(cluster.Bootstrap(), topic, partition, 30s, &hw);
  ASSERT_TRUE(read.ok()) << read.status() << cluster.LogTails();
  bool saw_pre = false, saw_majority = false;
  for (const auto& [offset, value] : *read) {
    EXPECT_FALSE(absl::StartsWith(value, "minority")) << "offset " << offset << ": " << value;
    saw_pre |= value == "pre";
    saw_majority |= value == "majority";
  }
  EXPECT_TRUE(saw_pre);
  EXPECT_EQ(saw_majority, majority_acked);
  // The replicas agree up to the high watermark.
  for (int b : cluster.ids(Role::kBroker)) cluster.Terminate(Role::kBroker, b);
  absl::Status same = CheckReplicasIdentical(cluster, topic, partition, {1, 2, 3}, hw);
  EXPECT_TRUE(same.ok()) << same;
}

}  // namespace
}  // namespace brook::testing
