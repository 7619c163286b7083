// SIGSTOP the leader of a partition past its lease, let a successor take
// over, then SIGCONT it: the old leader acknowledges no write from then on,
// neither requests that queued while it was stopped nor new ones, with
// acks=1 or acks=all, and none of them reaches the partition's log.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

TEST(ClusterStoppedLeaderTest, ResumedOldLeaderAcknowledgesNoWrite) {
  ClusterOptions o;
  o.nameservers = 1;
  o.coordinators = 1;
  o.brokers = 3;
  o.config = FastFailoverConfig();
  Cluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  const std::string topic = "zombie";
  ASSERT_TRUE(cluster.CreateTopic(topic, 1, 3, 2).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(topic).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForRoutes(topic, 1).ok()) << cluster.LogTails();
  auto parts = cluster.DescribeTopic(topic);
  ASSERT_TRUE(parts.ok());
  const PartitionState before = (*parts)[0];

  auto old_conn = cluster.Connect(Role::kBroker, before.leader);
  ASSERT_TRUE(old_conn.ok()) << old_conn.status();
  std::string why;
  bool first_acked = false;
  for (int i = 0; i < 50 && !first_acked; ++i) {
    first_acked = Acknowledged(ProduceRecordAsync(**old_conn, topic, 0, "before-stop", -1).get(), &why);
    if (!first_acked) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(first_acked) << why << cluster.LogTails();

  cluster.Stop(Role::kBroker, before.leader);
  auto successor = cluster.WaitForLeader(topic, 0, before.leader, before.leader_epoch, 15s);
  ASSERT_TRUE(successor.ok()) << successor.status() << cluster.LogTails();
  ASSERT_NE(successor->leader, before.leader);

  // The successor takes acks=all writes (once the stopped broker left the ISR).
  auto new_conn = cluster.Connect(Role::kBroker, successor->leader);
  ASSERT_TRUE(new_conn.ok());
  bool successor_acked = false;
  const auto deadline = Cluster::Clock::now() + 15s;
  while (!successor_acked && Cluster::Clock::now() < deadline) {
    successor_acked =
        Acknowledged(ProduceRecordAsync(**new_conn, topic, 0, "on-successor", -1).get(), &why);
    if (!successor_acked) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(successor_acked) << why << cluster.LogTails();

  // Requests that queue on the stopped leader's socket, answered after SIGCONT.
  std::vector<std::future<absl::StatusOr<proto::ProduceResponse>>> queued;
  queued.push_back(ProduceRecordAsync(**old_conn, topic, 0, "zombie-queued-acks1", 1));
  queued.push_back(ProduceRecordAsync(**old_conn, topic, 0, "zombie-queued-acksall", -1));
  std::this_thread::sleep_for(100ms);
  cluster.Cont(Role::kBroker, before.leader);
  for (auto& f : queued) {
    EXPECT_FALSE(Acknowledged(f.get(), &why)) << "the resumed old leader acknowledged a write";
    std::printf("queued produce on the old leader: %s\n", why.c_str());
  }
  // New requests after it resumed, for a few seconds.
  const auto until = Cluster::Clock::now() + 3s;
  int attempts = 0;
  while (Cluster::Clock::now() < until) {
    auto conn = cluster.Connect(Role::kBroker, before.leader);
    ASSERT_TRUE(conn.ok()) << conn.status();
    for (int acks : {1, -1}) {
      auto r = ProduceRecordAsync(**conn, topic, 0, absl::StrCat("zombie-new-", attempts++), acks).get();
      EXPECT_FALSE(Acknowledged(r, &why)) << "acks=" << acks << ": the old leader acknowledged";
    }
    std::this_thread::sleep_for(200ms);
  }
  std::printf("last answer of the old leader: %s\n", why.c_str());

  // None of the refused writes is in the log; the acknowledged ones are.
  int64_t hw = -1;
  auto read = ReadPartition(cluster.Bootstrap(), topic, 0, 30s, &hw);
  ASSERT_TRUE(read.ok()) << read.status() << cluster.LogTails();
  bool saw_before = false, saw_successor = false;
  for (const auto& [offset, value] : *read) {
    EXPECT_FALSE(absl::StartsWith(value, "zombie")) << "offset " << offset << " holds " << value;
    saw_before |= value == "before-stop";
    saw_successor |= value == "on-successor";
  }
  EXPECT_TRUE(saw_before);
  EXPECT_TRUE(saw_successor);
  // The old leader rejoins as a follower.
  EXPECT_TRUE(cluster.WaitForFullIsr(topic, 30s).ok()) << cluster.LogTails();
}

}  // namespace
}  // namespace brook::testing
