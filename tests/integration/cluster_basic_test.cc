// Cluster basics on separate processes: the harness starts name servers, a
// coordinator quorum and brokers; topics are placed across brokers; clients
// produce and consume through any live name server and fail over when one
// dies; the Admin client finds the active coordinator.
#include <stdio.h>

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

ClusterOptions Options(int nameservers, int coordinators, int brokers) {
  ClusterOptions o;
  o.nameservers = nameservers;
  o.coordinators = coordinators;
  o.brokers = brokers;
  o.config = FastFailoverConfig();
  return o;
}

// Produces `n` records to every partition with acks=all and returns the
// acknowledged offsets per partition.
std::map<int32_t, std::vector<int64_t>> ProduceAll(const std::string& bootstrap,
                                                  const std::string& topic, int32_t partitions,
                                                  int n) {
  client::ProducerConfig pc;
  pc.nameservers = bootstrap;
  pc.acks = -1;
  pc.linger = 1ms;
  pc.delivery_timeout = 30s;
  pc.request_timeout = 5s;
  auto producer = client::Producer::Create(pc);
  EXPECT_TRUE(producer.ok()) << producer.status();
  std::map<int32_t, std::vector<int64_t>> acked;
  if (!producer.ok()) return acked;
  std::vector<std::future<absl::StatusOr<client::RecordMetadata>>> futures;
  for (int i = 0; i < n; ++i) {
    for (int32_t p = 0; p < partitions; ++p) {
      client::ProducerRecord r;
      r.topic = topic;
      r.partition = p;
      r.value = absl::StrCat("p", p, "-", i);
      futures.push_back((*producer)->Send(std::move(r)));
    }
  }
  EXPECT_TRUE((*producer)->Flush(30s).ok());
  for (auto& f : futures) {
    auto md = f.get();
    EXPECT_TRUE(md.ok()) << md.status();
    if (md.ok()) acked[md->partition].push_back(md->offset);
  }
  EXPECT_TRUE((*producer)->Close(5s).ok());
  return acked;
}

// Reads every partition from the beginning until `n` records each arrived;
// returns values per partition in offset order.
std::map<int32_t, std::vector<std::string>> ConsumeAll(const std::string& bootstrap,
                                                      const std::string& topic,
                                                      int32_t partitions, int n) {
  client::ConsumerConfig cc;
  cc.nameservers = bootstrap;
  cc.auto_offset_reset = client::OffsetReset::kEarliest;
  cc.fetch_max_wait = 100ms;
  cc.request_timeout = 5s;
  auto consumer = client::Consumer::Create(cc);
  EXPECT_TRUE(consumer.ok()) << consumer.status();
  std::map<int32_t, std::vector<std::string>> out;
  if (!consumer.ok()) return out;
  std::vector<client::TopicPartition> tps;
  for (int32_t p = 0; p < partitions; ++p) tps.push_back({topic, p});
  EXPECT_TRUE((*consumer)->Assign(tps).ok());
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  size_t total = 0;
  while (total < static_cast<size_t>(n * partitions) &&
         std::chrono::steady_clock::now() < deadline) {
    auto recs = (*consumer)->Poll(200ms);
    if (!recs.ok()) continue;  // retriable hiccups during fail-over
    for (auto& r : *recs) {
      out[r.partition].push_back(r.value.value_or(""));
      ++total;
    }
  }
  (*consumer)->Close();
  return out;
}

TEST(ClusterBasicTest, StartsEveryRoleAsItsOwnProcess) {
  Cluster cluster(Options(2, 1, 3));
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  std::set<pid_t> pids;
  for (Role role : {Role::kNameServer, Role::kCoordinator, Role::kBroker}) {
    for (int id : cluster.ids(role)) {
      ASSERT_TRUE(cluster.running(role, id));
      pids.insert(cluster.process(role, id).pid());
    }
  }
  EXPECT_EQ(pids.size(), 6u);
  auto leader = cluster.WaitForCoordinatorLeader(5s);
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(*leader, 1);
  EXPECT_EQ(cluster.Quorum(), absl::StrCat("1@", cluster.CoordinatorAddress(1).ToString()));
}

TEST(ClusterBasicTest, TopicsSpreadOverBrokersAndClientsUseThem) {
  Cluster cluster(Options(2, 1, 3));
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  const std::string topic = "spread";
  auto created = cluster.CreateTopic(topic, 6, 1);
  ASSERT_TRUE(created.ok()) << created.status() << cluster.LogTails();
  auto parts = cluster.DescribeTopic(topic);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 6u);
  std::set<int32_t> leaders;
  for (const auto& p : *parts) leaders.insert(p.leader);
  EXPECT_EQ(leaders.size(), 3u) << "6 partitions should be led by all 3 brokers";
  ASSERT_TRUE(cluster.WaitForRoutes(topic, 6).ok()) << cluster.LogTails();

  auto acked = ProduceAll(cluster.Bootstrap(), topic, 6, 50);
  ASSERT_EQ(acked.size(), 6u);
  for (const auto& [p, offsets] : acked) {
    ASSERT_EQ(offsets.size(), 50u);
    for (size_t i = 0; i < offsets.size(); ++i) EXPECT_EQ(offsets[i], static_cast<int64_t>(i));
  }
  auto read = ConsumeAll(cluster.Bootstrap(), topic, 6, 50);
  for (int32_t p = 0; p < 6; ++p) {
    ASSERT_EQ(read[p].size(), 50u) << "partition " << p;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(read[p][i], absl::StrCat("p", p, "-", i));
  }
}

TEST(ClusterBasicTest, ClientsFailOverToAnotherNameServer) {
  Cluster cluster(Options(2, 1, 2));
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  const std::string topic = "nsfail";
  ASSERT_TRUE(cluster.CreateTopic(topic, 2, 1).ok());
  ASSERT_TRUE(cluster.WaitForRoutes(topic, 2).ok()) << cluster.LogTails();
  const std::string bootstrap = cluster.Bootstrap();  // both name servers
  cluster.Kill(Role::kNameServer, 0);

  client::AdminConfig ac;
  ac.nameservers = bootstrap;
  ac.request_timeout = 10s;
  auto admin = client::Admin::Create(ac);
  ASSERT_TRUE(admin.ok());
  auto topics = (*admin)->ListTopics();
  ASSERT_TRUE(topics.ok()) << topics.status();
  ASSERT_EQ(topics->size(), 1u);

  auto acked = ProduceAll(bootstrap, topic, 2, 20);
  ASSERT_EQ(acked.size(), 2u);
  auto read = ConsumeAll(bootstrap, topic, 2, 20);
  EXPECT_EQ(read[0].size(), 20u);
  EXPECT_EQ(read[1].size(), 20u);

  // The dead name server comes back on the same port; the brokers register
  // with it again and it routes the topic.
  ASSERT_TRUE(cluster.StartOne(Role::kNameServer, 0).ok());
  EXPECT_EQ(cluster.Bootstrap(), bootstrap);
  EXPECT_TRUE(cluster.WaitForRoutes(topic, 2).ok()) << cluster.LogTails();
}

TEST(ClusterBasicTest, CoordinatorRestartKeepsTopicsAndBrokersReturn) {
  Cluster cluster(Options(1, 1, 2));
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.CreateTopic("keep", 2, 1).ok());
  ASSERT_TRUE(cluster.Restart(Role::kCoordinator, 1).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForCoordinatorLeader(10s).ok());
  auto parts = cluster.DescribeTopic("keep");
  ASSERT_TRUE(parts.ok()) << parts.status();
  EXPECT_EQ(parts->size(), 2u);
  EXPECT_TRUE(cluster.WaitForBrokersLive(10s).ok()) << cluster.LogTails();
  // A broker restarted on the same port registers again.
  ASSERT_TRUE(cluster.Restart(Role::kBroker, 2).ok()) << cluster.LogTails();
  EXPECT_TRUE(cluster.WaitForBrokersLive(10s).ok()) << cluster.LogTails();
}

// Runs the brook CLI with `args`; returns its stdout (stderr goes to the
// test's stderr) and sets *code to the exit code.
std::string RunCli(const std::string& args, int* code) {
  const std::string cmd = std::string(BROOK_CLI_BIN) + " " + args;
  FILE* f = popen(cmd.c_str(), "r");
  std::string out;
  if (f == nullptr) {
    *code = -1;
    return out;
  }
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  const int status = pclose(f);
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(ClusterBasicTest, CliDescribesTheClusterAndReplicatedTopics) {
  Cluster cluster(Options(1, 1, 3));
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  const std::string ns = "--nameserver " + cluster.Bootstrap() + " ";
  int code = -1;
  std::string out = RunCli(ns + "cluster describe --json", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "\"leader_id\":1,")) << out;
  EXPECT_TRUE(absl::StrContains(out, "\"role\":\"leader\"")) << out;
  for (int b = 1; b <= 3; ++b) {
    EXPECT_TRUE(absl::StrContains(out, absl::StrCat("{\"id\":", b, ",\"address\":\"",
                                                    cluster.BrokerAddress(b).ToString(), "\"")))
        << out;
  }
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(out, "\"live\":true")).size(), 4u) << out;
  out = RunCli(ns + "cluster describe", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "Coordinator leader: 1")) << out;
  EXPECT_TRUE(absl::StrContains(out, "BROKER")) << out;

  out = RunCli(ns + "topic create replicated --partitions 2 --replication-factor 3 "
                    "--config min.insync.replicas=2",
               &code);
  ASSERT_EQ(code, 0) << out;
  ASSERT_TRUE(cluster.WaitForFullIsr("replicated").ok()) << cluster.LogTails();
  out = RunCli(ns + "topic describe replicated", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "min.insync.replicas=2")) << out;
  auto parts = cluster.DescribeTopic("replicated");
  ASSERT_TRUE(parts.ok());
  for (const auto& p : *parts) {
    // PARTITION LEADER EPOCH REPLICAS ISR columns, as the coordinator says.
    bool found = false;
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      std::vector<absl::string_view> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (cols.size() < 5 || cols[0] != absl::StrCat(p.partition)) continue;
      found = true;
      EXPECT_EQ(cols[1], absl::StrCat(p.leader)) << line;
      EXPECT_EQ(cols[2], absl::StrCat(p.leader_epoch)) << line;
      EXPECT_EQ(cols[3], absl::StrJoin(p.replicas, ",")) << line;
      EXPECT_EQ(cols[4].size(), 5u) << "three in-sync replicas: " << line;
    }
    EXPECT_TRUE(found) << out;
  }
}

}  // namespace
}  // namespace brook::testing
