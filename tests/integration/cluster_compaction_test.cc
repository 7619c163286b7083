// Log compaction on a replicated topic (rf 3, acks=all): every replica
// cleans its own copy; after a kill -9 of the leader, and again after the
// killed broker has caught up (its replica fetched from a compacted leader
// log, gaps and all) and taken over, a consumer reading from offset 0 sees
// exactly the latest value of every key at increasing offsets.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "gtest/gtest.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kTopic[] = "compacted-rf3";
constexpr int kKeys = 100;
constexpr int kRounds = 30;

// The replica's cleaner checkpoint (-1 while it has none).
int64_t CleanOffset(const std::string& broker_data_dir) {
  std::ifstream in(broker_data_dir + "/broker/" + kTopic + "-0/cleaner-checkpoint");
  int version = -1;
  int64_t offset = -1;
  if (!(in >> version >> offset) || version != 0) return -1;
  return offset;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// The log cleaner's lines of every broker's log, for failure messages.
std::string CleanerLines(Cluster& cluster) {
  std::string out;
  for (int id : cluster.ids(Role::kBroker)) {
    std::ifstream in(cluster.process(Role::kBroker, id).log_path());
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("cleaner") != std::string::npos) out += absl::StrCat("broker ", id, ": ", line, "\n");
    }
  }
  return out;
}

std::string ValueOf(int key, int round) {
  // 200 bytes that zstd cannot shrink much, so segments roll.
  std::string v = absl::StrCat("k", key, "-r", round, "-");
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(key * 1000 + round + 1);
  while (v.size() < 200) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v.push_back(static_cast<char>('a' + x % 26));
  }
  return v;
}

// Reads partition 0 from offset 0 until every key has its round
// `kRounds - 1` value (or `timeout`); returns key -> last value seen and
// whether the offsets increased throughout.
struct ReadBack {
  std::map<std::string, std::string> latest;
  int64_t records = 0;
  bool offsets_increase = true;
};
ReadBack ReadAll(const std::string& bootstrap, std::chrono::milliseconds timeout) {
  ReadBack out;
  client::ConsumerConfig cc;
  cc.nameservers = bootstrap;
  cc.enable_auto_commit = false;
  auto consumer = client::Consumer::Create(cc);
  EXPECT_TRUE(consumer.ok()) << consumer.status();
  if (!consumer.ok()) return out;
  const std::vector<client::TopicPartition> tps = {{kTopic, 0}};
  EXPECT_TRUE((*consumer)->Assign(tps).ok());
  EXPECT_TRUE((*consumer)->SeekToBeginning(tps).ok());
  int64_t last = -1;
  auto complete = [&] {
    if (static_cast<int>(out.latest.size()) != kKeys) return false;
    for (const auto& [k, v] : out.latest) {
      if (v.find(absl::StrCat("-r", kRounds - 1, "-")) == std::string::npos) return false;
    }
    return true;
  };
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!complete() && std::chrono::steady_clock::now() < end) {
    auto records = (*consumer)->Poll(200ms);
    if (!records.ok()) continue;
    for (const auto& r : *records) {
      if (r.offset <= last) out.offsets_increase = false;
      last = r.offset;
      ++out.records;
      out.latest[r.key.value_or("")] = r.value.value_or("");
    }
  }
  (*consumer)->Close();
  return out;
}

TEST(ClusterCompactionTest, EveryReplicaCompactsAndFailoverKeepsTheLatestValues) {
  ClusterOptions o;
  o.brokers = 3;
  o.config = FastFailoverConfig();
  o.broker_args = {"--log-cleaner-interval-ms=300"};
  Cluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << cluster.LogTails();
  proto::TopicConfig config;
  config.set_cleanup_policy(proto::CLEANUP_COMPACT);
  config.set_segment_bytes(32 * 1024);
  config.set_min_cleanable_dirty_ratio(0);
  ASSERT_TRUE(cluster.CreateTopic(kTopic, 1, 3, 2, config).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(kTopic).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForRoutes(kTopic, 1).ok()) << cluster.LogTails();

  // kRounds updates of every key, acknowledged by all in-sync replicas.
  {
    client::ProducerConfig pc;
    pc.nameservers = cluster.Bootstrap();
    pc.acks = -1;
    // Batches well below segment.bytes, so the log has many sealed segments
    // however the sends happen to be batched.
    pc.batch_bytes = 8 * 1024;
    auto producer = client::Producer::Create(pc);
    ASSERT_TRUE(producer.ok()) << producer.status();
    std::atomic<int> failed{0};
    for (int round = 0; round < kRounds; ++round) {
      for (int key = 0; key < kKeys; ++key) {
        client::ProducerRecord r;
        r.topic = kTopic;
        r.partition = 0;
        r.key = absl::StrCat("key-", key);
        r.value = ValueOf(key, round);
        (*producer)->Send(std::move(r), [&](const absl::StatusOr<client::RecordMetadata>& m) {
          if (!m.ok()) ++failed;
        });
      }
    }
    ASSERT_TRUE((*producer)->Close().ok());
    ASSERT_EQ(failed.load(), 0);
  }
  const int64_t produced = int64_t{kKeys} * kRounds;

  // Each replica cleans its own copy.
  for (int id : cluster.ids(Role::kBroker)) {
    const std::string dir = cluster.process(Role::kBroker, id).data_dir();
    EXPECT_TRUE(WaitFor([&] { return CleanOffset(dir) > 0; }, 30s))
        << "broker " << id << " never cleaned" << cluster.LogTails();
  }

  auto parts = cluster.DescribeTopic(kTopic);
  ASSERT_TRUE(parts.ok()) << parts.status();
  const PartitionState first = (*parts)[0];
  cluster.Kill(Role::kBroker, first.leader);
  auto second = cluster.WaitForLeader(kTopic, 0, first.leader, first.leader_epoch, 15s);
  ASSERT_TRUE(second.ok()) << second.status() << cluster.LogTails();

  ReadBack after_kill = ReadAll(cluster.Bootstrap(), 30s);
  ASSERT_EQ(static_cast<int>(after_kill.latest.size()), kKeys);
  for (const auto& [k, v] : after_kill.latest) {
    EXPECT_NE(v.find(absl::StrCat("-r", kRounds - 1, "-")), std::string::npos) << k << ": " << v;
  }
  EXPECT_TRUE(after_kill.offsets_increase);
  EXPECT_LT(after_kill.records, produced)
      << "the new leader's copy was not compacted\n" << CleanerLines(cluster);

  // The killed broker comes back and catches up from the compacted leader;
  // then the current leader goes, so a replica that fetched across gaps may
  // lead.
  ASSERT_TRUE(cluster.StartOne(Role::kBroker, first.leader).ok()) << cluster.LogTails();
  ASSERT_TRUE(cluster.WaitForFullIsr(kTopic, 30s).ok()) << cluster.LogTails();
  cluster.Kill(Role::kBroker, second->leader);
  auto third = cluster.WaitForLeader(kTopic, 0, second->leader, second->leader_epoch, 15s);
  ASSERT_TRUE(third.ok()) << third.status() << cluster.LogTails();
  ReadBack after_second = ReadAll(cluster.Bootstrap(), 30s);
  std::printf("produced %lld; read %lld after the first kill (leader %d), %lld after the second "
              "(leader %d, the restarted broker was %d)\n",
              static_cast<long long>(produced), static_cast<long long>(after_kill.records),
              second->leader, static_cast<long long>(after_second.records), third->leader,
              first.leader);
  EXPECT_EQ(after_second.latest, after_kill.latest);
  EXPECT_TRUE(after_second.offsets_increase);
}

}  // namespace
}  // namespace brook::testing
