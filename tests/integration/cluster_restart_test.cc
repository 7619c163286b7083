// Restarting a whole cluster loses no acknowledged record: once with SIGTERM
// (graceful shutdown of every process) and once with SIGKILL of every
// process at the same moment (acks=all with the default flush policy
// fsyncs before acknowledging).
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

constexpr int32_t kPartitions = 3;

// Produces at least `n` acknowledged records (acks=all) and returns them.
std::map<int32_t, std::vector<AckedRecord>> ProduceSome(Cluster& cluster, const std::string& topic,
                                                       int64_t n) {
  ProduceLoad::Options po;
  po.bootstrap = cluster.Bootstrap();
  po.topic = topic;
  po.partitions = kPartitions;
  po.acks = -1;
  ProduceLoad load(po);
  EXPECT_TRUE(load.Start().ok());
  EXPECT_TRUE(load.WaitForMoreAcks(n, 30s)) << absl::StrJoin(load.errors(), "; ")
                                            << cluster.LogTails();
  EXPECT_TRUE(load.Stop(30s).ok());
  EXPECT_EQ(load.failed(), 0) << absl::StrJoin(load.errors(), "; ");
  return load.Acked();
}

void Merge(std::map<int32_t, std::vector<AckedRecord>>* into,
           const std::map<int32_t, std::vector<AckedRecord>>& more) {
  for (const auto& [p, records] : more) {
    (*into)[p].insert((*into)[p].end(), records.begin(), records.end());
  }
}

void CheckEverythingReadable(Cluster& cluster, const std::string& topic,
                             const std::map<int32_t, std::vector<AckedRecord>>& acked) {
  std::map<int32_t, std::map<int64_t, std::string>> read;
  for (int32_t p = 0; p < kPartitions; ++p) {
    auto r = ReadPartition(cluster.Bootstrap(), topic, p, 30s);
    ASSERT_TRUE(r.ok()) << r.status() << cluster.LogTails();
    read[p] = *std::move(r);
  }
  std::vector<std::string> problems = CheckAcked(acked, read);
  EXPECT_TRUE(problems.empty()) << absl::StrJoin(problems, "\n");
}

// Every process, in the given order.
std::vector<std::pair<Role, int>> All(Cluster& cluster, std::vector<Role> order) {
  std::vector<std::pair<Role, int>> out;
  for (Role r : order) {
    for (int id : cluster.ids(r)) out.push_back({r, id});
  }
  return out;
}

TEST(ClusterRestartTest, WholeClusterRestartsLoseNoAcknowledgedRecord) {
  ClusterOptions o;
  o.nameservers = 2;
  o.coordinators = 3;
  o.brokers = 3;
  o.config = FastFailoverConfig();
  Cluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  const std::string topic = "durable";
  ASSERT_TRUE(cluster.CreateTopic(topic, kPartitions, 3, 2).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(topic).ok()) << cluster.LogTails();

  std::map<int32_t, std::vector<AckedRecord>> acked;
  Merge(&acked, ProduceSome(cluster, topic, 3000));

  // Graceful: brokers, coordinators, name servers.
  for (auto [role, id] : All(cluster, {Role::kBroker, Role::kCoordinator, Role::kNameServer})) {
    EXPECT_EQ(cluster.Terminate(role, id), 0) << RoleName(role) << " " << id;
  }
  for (auto [role, id] : All(cluster, {Role::kNameServer, Role::kCoordinator, Role::kBroker})) {
    ASSERT_TRUE(cluster.StartOne(role, id).ok()) << cluster.LogTails();
  }
  ASSERT_TRUE(cluster.WaitForCoordinatorLeader(15s).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForBrokersLive(15s).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(topic, 30s).ok()) << cluster.LogTails();
  CheckEverythingReadable(cluster, topic, acked);

  Merge(&acked, ProduceSome(cluster, topic, 3000));

  // Abrupt: every process killed at once.
  for (auto [role, id] : All(cluster, {Role::kBroker, Role::kCoordinator, Role::kNameServer})) {
    cluster.Kill(role, id);
  }
  for (auto [role, id] : All(cluster, {Role::kNameServer, Role::kCoordinator, Role::kBroker})) {
    ASSERT_TRUE(cluster.StartOne(role, id).ok()) << cluster.LogTails();
  }
  ASSERT_TRUE(cluster.WaitForCoordinatorLeader(15s).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForBrokersLive(15s).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(topic, 30s).ok()) << cluster.LogTails();
  CheckEverythingReadable(cluster, topic, acked);
}

}  // namespace
}  // namespace brook::testing
