// Kill -9 the coordinator leader of a three-member quorum: another member
// takes over within seconds, the metadata (topics, their ids and
// assignments) is intact, topic creation works again, the Admin client and
// the `brook` tool's path (name servers -> any coordinator) find the new
// leader, and the killed member rejoins as a follower.
#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "brook/admin.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

TEST(ClusterCoordinatorFailoverTest, NewLeaderKeepsMetadataAndServesAdmin) {
  ClusterOptions o;
  o.nameservers = 1;
  o.coordinators = 3;
  o.brokers = 3;
  o.config = FastFailoverConfig();
  Cluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();

  auto before = cluster.CreateTopic("before", 3, 3, 2);
  ASSERT_TRUE(before.ok()) << before.status() << cluster.LogTails();

  for (int round = 0; round < 3; ++round) {
    auto old_leader = cluster.WaitForCoordinatorLeader(10s);
    ASSERT_TRUE(old_leader.ok()) << old_leader.status();
    auto described = cluster.DescribeCluster();
    ASSERT_TRUE(described.ok()) << described.status();
    EXPECT_EQ(described->coordinators_size(), 3);

    const auto killed_at = Cluster::Clock::now();
    cluster.Kill(Role::kCoordinator, *old_leader);
    auto new_leader = cluster.WaitForCoordinatorLeader(10s, *old_leader);
    ASSERT_TRUE(new_leader.ok()) << "round " << round << ": " << new_leader.status()
                                 << cluster.LogTails();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        Cluster::Clock::now() - killed_at);
    EXPECT_LT(took, 5s) << "round " << round;
    std::printf("round %d: coordinator %d killed, %d leads after %lld ms\n", round, *old_leader,
                *new_leader, static_cast<long long>(took.count()));

    // Metadata intact: the same topic (same id), all partitions led.
    auto parts = cluster.DescribeTopic("before");
    ASSERT_TRUE(parts.ok()) << parts.status();
    ASSERT_EQ(parts->size(), 3u);
    for (const auto& p : *parts) EXPECT_EQ(p.replicas.size(), 3u);
    proto::DescribeTopicRequest dreq;
    dreq.set_topic("before");
    proto::DescribeTopicResponse dresp;
    ASSERT_TRUE(cluster.CallCoordinator(proto::API_DESCRIBE_TOPIC, dreq, &dresp).ok());
    EXPECT_EQ(dresp.topic().topic_id(), before->topic_id());

    // Topic creation works again, through the Admin client too.
    auto created = cluster.CreateTopic(absl::StrCat("after-", round), 2, 3, 2);
    ASSERT_TRUE(created.ok()) << created.status() << cluster.LogTails();
    client::AdminConfig ac;
    ac.nameservers = cluster.Bootstrap();
    ac.request_timeout = 15s;
    auto admin = client::Admin::Create(ac);
    ASSERT_TRUE(admin.ok());
    auto topics = (*admin)->ListTopics();
    ASSERT_TRUE(topics.ok()) << topics.status() << cluster.LogTails();
    EXPECT_EQ(topics->size(), static_cast<size_t>(2 + 2 * round));  // before, after-*, admin-*
    auto via_admin = (*admin)->CreateTopic(
        client::NewTopic{absl::StrCat("admin-", round), 1, 3, {{"min.insync.replicas", "2"}}});
    ASSERT_TRUE(via_admin.ok()) << via_admin.status() << cluster.LogTails();
    auto info = (*admin)->DescribeCluster();
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->leader_id, *new_leader);
    EXPECT_EQ(info->answered_by, *new_leader);
    EXPECT_EQ(info->brokers.size(), 3u);

    // The killed member comes back as a follower.
    ASSERT_TRUE(cluster.StartOne(Role::kCoordinator, *old_leader).ok()) << cluster.LogTails();
    const auto deadline = Cluster::Clock::now() + 10s;
    bool rejoined = false;
    while (!rejoined && Cluster::Clock::now() < deadline) {
      auto d = cluster.DescribeClusterOf(*old_leader);
      rejoined = d.ok() && d->leader_id() >= 0 && d->leader_id() != *old_leader;
      if (!rejoined) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(rejoined) << "coordinator " << *old_leader << " did not rejoin"
                          << cluster.LogTails();
    ASSERT_TRUE(cluster.WaitForBrokersLive(15s).ok()) << cluster.LogTails();
  }
}

}  // namespace
}  // namespace brook::testing
