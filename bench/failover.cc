// brook-bench-failover: fail-over time on a local cluster of separate
// brook-server processes (1 name server, 3 coordinators, 3 brokers, via the
// integration-test cluster harness).
//
//  partition leader: a Producer writes to one partition (rf 3,
//    min.insync.replicas 2, acks=all) all the time; the partition's leader
//    is killed with SIGKILL; the time from the kill to the first
//    acknowledgement received afterwards (necessarily from the new leader)
//    is one sample. The killed broker is restarted and the in-sync set
//    refilled before the next kill.
//  coordinator leader: the Raft leader of the coordinator quorum is killed;
//    the time from the kill to the first successful topic creation (a
//    committed metadata write) is one sample.
//
// Usage: brook-bench-failover [--kills N] [--coordinator-kills N]
//                             [--config FILE] [--json]
// --config: a ServerConfig (text format) for every process; default: the
// servers' built-in timings (broker lease 1500 ms, Raft election 500 ms).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/integration/cluster.h"

namespace brook::testing {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Stats {
  std::vector<double> ms;
  double Percentile(double q) const {
    if (ms.empty()) return -1;
    std::vector<double> s = ms;
    std::sort(s.begin(), s.end());
    size_t i = static_cast<size_t>(q * static_cast<double>(s.size() - 1) + 0.5);
    return s[std::min(i, s.size() - 1)];
  }
  double Max() const { return ms.empty() ? -1 : *std::max_element(ms.begin(), ms.end()); }
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int Fail(const std::string& what, const absl::Status& s, Cluster& cluster) {
  std::fprintf(stderr, "failover bench: %s: %s\n%s\n", what.c_str(), s.ToString().c_str(),
               cluster.LogTails(1500).c_str());
  return 1;
}

int Run(int kills, int coordinator_kills, const std::string& config, bool json) {
  ClusterOptions o;
  o.nameservers = 1;
  o.coordinators = 3;
  o.brokers = 3;
  o.config = config;
  Cluster cluster(o);
  if (auto s = cluster.Start(); !s.ok()) return Fail("start", s, cluster);
  const std::string topic = "failover";
  if (auto t = cluster.CreateTopic(topic, 1, 3, 2); !t.ok()) return Fail("create", t.status(), cluster);
  if (auto s = cluster.WaitForFullIsr(topic, 30s); !s.ok()) return Fail("isr", s, cluster);
  if (auto s = cluster.WaitForRoutes(topic, 1); !s.ok()) return Fail("routes", s, cluster);

  ProduceLoad::Options po;
  po.bootstrap = cluster.Bootstrap();
  po.topic = topic;
  po.partitions = 1;
  po.acks = -1;
  po.max_outstanding = 20;
  po.pace = 1ms;
  po.linger = 0ms;
  po.retry_backoff = 20ms;
  po.retry_backoff_max = 100ms;
  ProduceLoad load(po);
  if (auto s = load.Start(); !s.ok()) return Fail("producer", s, cluster);
  if (!load.WaitForMoreAcks(100, 20s)) return Fail("first acks", absl::DeadlineExceededError(""), cluster);

  Stats partition;
  for (int i = 0; i < kills; ++i) {
    auto parts = cluster.DescribeTopic(topic);
    if (!parts.ok()) return Fail("describe", parts.status(), cluster);
    const int32_t leader = (*parts)[0].leader;
    cluster.Kill(Role::kBroker, leader);
    const auto killed = Clock::now();
    // Responses read before the kill may still be delivered for a few
    // microseconds; none can come from a dead process later than this.
    auto first = load.FirstAckAfter(0, killed + 2ms, 60s);
    if (!first) return Fail("no acknowledgement after kill", absl::DeadlineExceededError(""), cluster);
    partition.ms.push_back(Ms(*first - killed));
    std::fprintf(stderr, "partition kill %d: broker %d, first ack after %.0f ms\n", i + 1, leader,
                 partition.ms.back());
    if (auto s = cluster.StartOne(Role::kBroker, leader); !s.ok()) return Fail("restart", s, cluster);
    if (auto s = cluster.WaitForFullIsr(topic, 60s); !s.ok()) return Fail("isr", s, cluster);
  }
  if (auto s = load.Stop(30s); !s.ok()) std::fprintf(stderr, "producer stop: %s\n", s.ToString().c_str());

  Stats coordinator;
  for (int i = 0; i < coordinator_kills; ++i) {
    auto leader = cluster.WaitForCoordinatorLeader(15s);
    if (!leader.ok()) return Fail("coordinator leader", leader.status(), cluster);
    cluster.Kill(Role::kCoordinator, *leader);
    const auto killed = Clock::now();
    absl::Status s = absl::DeadlineExceededError("not tried");
    while (!s.ok() && Clock::now() - killed < 60s) {
      proto::CreateTopicRequest req;
      req.set_topic(absl::StrCat("probe-", i));
      req.set_partitions(1);
      req.set_replication_factor(1);
      proto::CreateTopicResponse resp;
      s = cluster.CallCoordinator(proto::API_CREATE_TOPIC, req, &resp, 2s);
      if (!s.ok()) std::this_thread::sleep_for(5ms);
    }
    if (!s.ok()) return Fail("no topic creation after coordinator kill", s, cluster);
    coordinator.ms.push_back(Ms(Clock::now() - killed));
    std::fprintf(stderr, "coordinator kill %d: coordinator %d, first create after %.0f ms\n", i + 1,
                 *leader, coordinator.ms.back());
    if (auto r = cluster.StartOne(Role::kCoordinator, *leader); !r.ok()) {
      return Fail("restart coordinator", r, cluster);
    }
    // Wait until the restarted member follows a leader again.
    const auto deadline = Clock::now() + 15s;
    while (Clock::now() < deadline) {
      auto d = cluster.DescribeClusterOf(*leader);
      if (d.ok() && d->leader_id() >= 0) break;
      std::this_thread::sleep_for(20ms);
    }
  }

  if (json) {
    std::printf(
        "{\"partition_kills\":%zu,\"partition_p50_ms\":%.0f,\"partition_p99_ms\":%.0f,"
        "\"partition_max_ms\":%.0f,\"coordinator_kills\":%zu,\"coordinator_p50_ms\":%.0f,"
        "\"coordinator_p99_ms\":%.0f,\"coordinator_max_ms\":%.0f,\"acked\":%lld,\"failed\":%lld}\n",
        partition.ms.size(), partition.Percentile(0.5), partition.Percentile(0.99), partition.Max(),
        coordinator.ms.size(), coordinator.Percentile(0.5), coordinator.Percentile(0.99),
        coordinator.Max(), static_cast<long long>(load.acked()),
        static_cast<long long>(load.failed()));
  } else {
    std::printf("partition leader kill -> first acknowledged write (%zu kills): p50 %.0f ms, "
                "p99 %.0f ms, max %.0f ms\n",
                partition.ms.size(), partition.Percentile(0.5), partition.Percentile(0.99),
                partition.Max());
    std::printf("coordinator leader kill -> first topic creation (%zu kills): p50 %.0f ms, "
                "p99 %.0f ms, max %.0f ms\n",
                coordinator.ms.size(), coordinator.Percentile(0.5), coordinator.Percentile(0.99),
                coordinator.Max());
    std::printf("records acknowledged %lld, failed %lld\n", static_cast<long long>(load.acked()),
                static_cast<long long>(load.failed()));
  }
  return 0;
}

}  // namespace
}  // namespace brook::testing

int main(int argc, char** argv) {
  int kills = 20;
  int coordinator_kills = 20;
  std::string config;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--kills") {
      kills = std::atoi(value("--kills").c_str());
    } else if (a == "--coordinator-kills") {
      coordinator_kills = std::atoi(value("--coordinator-kills").c_str());
    } else if (a == "--config") {
      std::ifstream in(value("--config"));
      std::stringstream ss;
      ss << in.rdbuf();
      config = ss.str();
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr,
                   "usage: brook-bench-failover [--kills N] [--coordinator-kills N] "
                   "[--config FILE] [--json]\n");
      return 2;
    }
  }
  return brook::testing::Run(kills, coordinator_kills, config, json);
}
