// Kill -9 the leader of a partition again and again (12 times; and, in a
// second test, stop it gracefully 4 times) while a
// Producer writes with acks=all (rf 3, min.insync.replicas 2) and a Consumer
// reads; each killed broker is restarted and the in-sync set refilled
// before the next kill. Afterwards: every acknowledged record is read back
// at its offset, acknowledgements of a partition came in offset order, no
// offset was read with two different records, and the replicas' logs are
// byte-identical up to the high watermark.
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kKills = 12;
constexpr int32_t kPartitions = 2;

// Moves the leadership of partition 0 `rounds` times by stopping its leader
// (SIGKILL, or SIGTERM when `graceful`: a controlled shutdown) under load,
// then checks what was acknowledged, read and stored.
void ChurnLeaders(const std::string& topic, int rounds, bool graceful) {
  ClusterOptions o;
  o.nameservers = 1;
  o.coordinators = 1;
  o.brokers = 3;
  o.config = FastFailoverConfig();
  Cluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  auto created = cluster.CreateTopic(topic, kPartitions, 3, 2);
  ASSERT_TRUE(created.ok()) << created.status() << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(topic).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForRoutes(topic, kPartitions).ok()) << cluster.LogTails();

  ProduceLoad::Options po;
  po.bootstrap = cluster.Bootstrap();
  po.topic = topic;
  po.partitions = kPartitions;
  po.acks = -1;
  po.max_outstanding = 50;
  po.pace = 500us;
  ProduceLoad producer(po);
  ASSERT_TRUE(producer.Start().ok());
  ConsumeLoad consumer(cluster.Bootstrap(), topic, kPartitions);
  ASSERT_TRUE(consumer.Start().ok());
  ASSERT_TRUE(producer.WaitForMoreAcks(200, 20s)) << "acked " << producer.acked() << " errors "
                                                  << absl::StrJoin(producer.errors(), "; ")
                                                  << cluster.LogTails();

  for (int kill = 0; kill < rounds; ++kill) {
    auto parts = cluster.DescribeTopic(topic);
    ASSERT_TRUE(parts.ok()) << parts.status();
    const PartitionState before = (*parts)[0];
    ASSERT_GE(before.leader, 1) << "kill " << kill;
    if (graceful) {
      EXPECT_EQ(cluster.Terminate(Role::kBroker, before.leader), 0) << cluster.LogTails();
    } else {
      cluster.Kill(Role::kBroker, before.leader);
    }
    auto after = cluster.WaitForLeader(topic, 0, before.leader, before.leader_epoch, 15s);
    ASSERT_TRUE(after.ok()) << "kill " << kill << ": " << after.status() << cluster.LogTails();
    std::printf("%s %d: leader %d (epoch %d) -> %d (epoch %d)\n", graceful ? "stop" : "kill",
                kill + 1, before.leader, before.leader_epoch, after->leader, after->leader_epoch);
    // Writes go on (through the new leader) before the old one returns.
    ASSERT_TRUE(producer.WaitForMoreAcks(50, 20s))
        << "kill " << kill << ": no acknowledgement after fail-over; errors "
        << absl::StrJoin(producer.errors(), "; ") << cluster.LogTails();
    ASSERT_TRUE(cluster.StartOne(Role::kBroker, before.leader).ok()) << cluster.LogTails();
    ASSERT_TRUE(cluster.WaitForFullIsr(topic, 30s).ok())
        << "kill " << kill << cluster.LogTails();
  }

  ASSERT_TRUE(producer.Stop(60s).ok()) << absl::StrJoin(producer.errors(), "; ");
  EXPECT_EQ(producer.failed(), 0) << absl::StrJoin(producer.errors(), "; ");
  consumer.Stop();
  EXPECT_TRUE(consumer.conflicts().empty()) << absl::StrJoin(consumer.conflicts(), "\n");
  EXPECT_GT(consumer.records(), 0);

  ASSERT_TRUE(cluster.WaitForFullIsr(topic, 30s).ok()) << cluster.LogTails();
  std::map<int32_t, std::map<int64_t, std::string>> read;
  std::map<int32_t, int64_t> hw;
  for (int32_t p = 0; p < kPartitions; ++p) {
    auto r = ReadPartition(cluster.Bootstrap(), topic, p, 30s, &hw[p]);
    ASSERT_TRUE(r.ok()) << r.status() << cluster.LogTails();
    read[p] = *std::move(r);
  }
  const auto acked = producer.Acked();
  int64_t total = 0;
  for (const auto& [p, records] : acked) total += static_cast<int64_t>(records.size());
  EXPECT_GT(total, rounds * 50);
  std::vector<std::string> problems = CheckAcked(acked, read);
  EXPECT_TRUE(problems.empty()) << absl::StrJoin(problems, "\n");
  // What the consumer read during the kills agrees with the final logs.
  for (const auto& [p, values] : consumer.Values()) {
    for (const auto& [offset, value] : values) {
      auto it = read[p].find(offset);
      if (it != read[p].end()) {
        EXPECT_EQ(it->second, value) << "partition " << p << " offset " << offset;
      }
    }
  }

  for (int b : cluster.ids(Role::kBroker)) cluster.Terminate(Role::kBroker, b);
  for (int32_t p = 0; p < kPartitions; ++p) {
    absl::Status same = CheckReplicasIdentical(cluster, topic, p, {1, 2, 3}, hw[p]);
    EXPECT_TRUE(same.ok()) << same;
  }
}

TEST(ClusterLeaderKillTest, AcknowledgedRecordsSurviveRepeatedLeaderKills) {
  ChurnLeaders("killed", kKills, /*graceful=*/false);
}

// Controlled shutdown moves leadership away first; the producer follows the
// NOT_LEADER answers (with their leader hints) without losing or reordering.
TEST(ClusterLeaderKillTest, AcknowledgedRecordsSurviveGracefulLeaderShutdowns) {
  ChurnLeaders("stopped", 4, /*graceful=*/true);
}

}  // namespace
}  // namespace brook::testing
