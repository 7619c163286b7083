// Fault test of group consumers: three consumer processes
// (groups_client_worker) share a topic while a producer writes to it; every
// ~2.5 s one of them is killed with SIGKILL and restarted. Checks: every
// acknowledged record was processed, a record processed twice was in the
// uncommitted tail of a killed (or failed-commit) incarnation, and committed
// offsets sampled throughout never move backwards.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using client::TopicPartition;
using namespace std::chrono_literals;

constexpr int32_t kPartitions = 6;

pid_t Spawn(const std::vector<std::string>& args) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

void KillAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

struct Occurrence {
  int incarnation;       // index of the process start (per file order)
  bool committed_after;  // the incarnation later committed past this offset
};

class GroupsClientFaultTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GroupsClientFaultTest, KilledConsumersLoseNothingAndDuplicateOnlyTheTail) {
  ServerProcess server({"--group-initial-rebalance-delay-ms=0", "--group-min-session-timeout-ms=1000"});
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  const std::string ns = server.nameserver().ToString();
  const std::string topic = "fault";
  const std::string group = "g-fault-" + GetParam();
  {
    client::AdminConfig config;
    config.nameservers = ns;
    auto admin = client::Admin::Create(config);
    ASSERT_TRUE(admin.ok());
    ASSERT_TRUE((*admin)->CreateTopic(client::NewTopic{topic, kPartitions, 1, {}}).ok());
  }
  const auto dir = std::filesystem::temp_directory_path() /
                   absl::StrCat("brook-groups-fault-", ::getpid(), "-", GetParam());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto worker_args = [&](int slot) {
    return std::vector<std::string>{BROOK_GROUPS_WORKER_BIN, ns, group, topic,
                                    (dir / absl::StrCat("worker-", slot, ".log")).string(),
                                    GetParam()};
  };
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i) pids.push_back(Spawn(worker_args(i)));

  // Producer: records to every partition, remembering what was acknowledged.
  std::mutex mu;
  std::set<std::pair<int32_t, int64_t>> acked;
  std::atomic<bool> producing{true};
  std::thread producer([&] {
    client::ProducerConfig config;
    config.nameservers = ns;
    config.linger = 2ms;
    auto p = client::Producer::Create(config);
    ASSERT_TRUE(p.ok());
    const auto end = std::chrono::steady_clock::now() + 14s;
    for (int i = 0; std::chrono::steady_clock::now() < end; ++i) {
      client::ProducerRecord r;
      r.topic = topic;
      r.partition = i % kPartitions;
      r.value = absl::StrCat("v", i);
      (*p)->Send(std::move(r), [&](const absl::StatusOr<client::RecordMetadata>& m) {
        if (!m.ok()) return;
        std::lock_guard<std::mutex> lock(mu);
        acked.insert({m->partition, m->offset});
      });
      if (i % 50 == 49) std::this_thread::sleep_for(50ms);  // ~1000 records/s
    }
    EXPECT_TRUE((*p)->Flush(30s).ok());
    (*p)->Close(30s).IgnoreError();
    producing = false;
  });

  // Sampler: committed offsets never move backwards.
  std::atomic<bool> sampling{true};
  std::map<int32_t, int64_t> last_committed;
  std::mutex sample_mu;
  int backwards = 0;
  int samples = 0;
  std::thread sampler([&] {
    client::ConsumerConfig config;
    config.nameservers = ns;
    config.group_id = group;
    auto c = client::Consumer::Create(config);
    ASSERT_TRUE(c.ok());
    std::vector<TopicPartition> tps;
    for (int32_t p = 0; p < kPartitions; ++p) tps.push_back(TopicPartition{topic, p});
    while (sampling) {
      auto committed = (*c)->Committed(tps);
      if (committed.ok()) {
        std::lock_guard<std::mutex> lock(sample_mu);
        ++samples;
        for (const auto& [tp, om] : *committed) {
          auto& last = last_committed[tp.partition];
          if (om.offset < last) ++backwards;
          last = std::max(last, om.offset);
        }
      }
      std::this_thread::sleep_for(100ms);
    }
  });

  // Kill -9 one worker every ~2.5 s and restart it at once.
  int kills = 0;
  for (int round = 0; producing && round < 6; ++round) {
    std::this_thread::sleep_for(2500ms);
    const int slot = round % 3;
    KillAndReap(pids[slot]);
    pids[slot] = Spawn(worker_args(slot));
    ++kills;
  }
  producer.join();
  EXPECT_GE(kills, 4);

  // Wait until the group has processed and committed everything.
  std::map<int32_t, int64_t> end_offsets;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [p, o] : acked) end_offsets[p] = std::max(end_offsets[p], o + 1);
  }
  const auto drained = [&] {
    std::lock_guard<std::mutex> lock(sample_mu);
    for (const auto& [p, end] : end_offsets) {
      if (last_committed[p] < end) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!drained() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(drained()) << "the group did not commit every produced record in time";
  sampling = false;
  sampler.join();
  for (pid_t pid : pids) KillAndReap(pid);

  // Read what the incarnations processed and committed.
  std::map<std::pair<int32_t, int64_t>, std::vector<Occurrence>> processed;
  int incarnation = -1;
  int incarnations = 0;
  for (int slot = 0; slot < 3; ++slot) {
    std::ifstream in(dir / absl::StrCat("worker-", slot, ".log"));
    std::string line;
    // Per incarnation: where each processed record is, and the highest
    // commit per partition, resolved when the incarnation ends.
    std::vector<std::pair<int32_t, int64_t>> records;
    std::map<int32_t, int64_t> commits;
    auto finish = [&] {
      for (const auto& rec : records) {
        auto it = commits.find(rec.first);
        processed[rec].push_back(Occurrence{incarnation, it != commits.end() && it->second > rec.second});
      }
      records.clear();
      commits.clear();
    };
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      char kind = 0;
      ls >> kind;
      if (kind == 'S') {
        finish();
        incarnation = incarnations++;
      } else if (kind == 'R' || kind == 'C') {
        int32_t p = 0;
        int64_t o = 0;
        if (!(ls >> p >> o)) continue;  // a line torn by the kill
        if (kind == 'R') {
          records.push_back({p, o});
        } else {
          commits[p] = std::max(commits[p], o);
        }
      }
    }
    finish();
  }
  // A worker killed before it got going leaves no trace; most restarts ran.
  EXPECT_GE(incarnations, 3 + kills / 2);

  std::set<std::pair<int32_t, int64_t>> all_acked;
  {
    std::lock_guard<std::mutex> lock(mu);
    all_acked = acked;
  }
  ASSERT_FALSE(all_acked.empty());
  int missing = 0;
  for (const auto& rec : all_acked) {
    if (!processed.contains(rec)) ++missing;
  }
  EXPECT_EQ(missing, 0) << "of " << all_acked.size() << " acknowledged records";
  int duplicates = 0;
  int bad_duplicates = 0;
  for (const auto& [rec, occ] : processed) {
    if (occ.size() < 2) continue;
    ++duplicates;
    // Once an incarnation committed past a record, no other may process it
    // again: at most one occurrence is followed by a commit of its own; the
    // others were in the uncommitted tail of an incarnation that was killed
    // (or whose commit failed).
    int committed = 0;
    for (const auto& o : occ) committed += o.committed_after ? 1 : 0;
    if (committed > 1) ++bad_duplicates;
  }
  EXPECT_EQ(bad_duplicates, 0) << "records processed again after being committed";
  {
    std::lock_guard<std::mutex> lock(sample_mu);
    EXPECT_EQ(backwards, 0) << "committed offsets moved backwards";
    EXPECT_GT(samples, 20);
  }
  std::printf("records=%zu duplicates=%d kills=%d incarnations=%d\n", all_acked.size(), duplicates,
              kills, incarnations);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Assignors, GroupsClientFaultTest,
                         ::testing::Values("range", "cooperative-sticky"));

}  // namespace
}  // namespace brook::testing
