// brook-bench-groups: consumer group benchmarks against a fresh brook-server
// (every role, started here on loopback ports, data in a temp directory).
//
//   brook-bench-groups [RECORDS] [RUNS]
//
// 1. Consume throughput: RECORDS (default 1,000,000) records of 100 B
//    (pseudo-random bytes) are written to a topic of 8 partitions; then 4
//    group consumers (cooperative-sticky, one group) read them all, and
//    separately 4 assign-mode consumers with 2 partitions each. Prints
//    records/s from the creation of the consumers to the last record (for
//    the group this includes joining it) and from the first record to the
//    last.
// 2. Rebalance time: 4 group consumers own the 8 partitions; one closes
//    (LeaveGroup). Prints the time from the start of Close to the moment the
//    3 others own all 8 partitions again, for cooperative-sticky and for
//    range (eager), RUNS (default 5) times each.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "tests/integration/harness.h"

namespace {

using brook::client::TopicPartition;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int32_t kPartitions = 8;
constexpr int kConsumers = 4;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

brook::client::ConsumerConfig BaseConfig(const std::string& ns) {
  brook::client::ConsumerConfig c;
  c.nameservers = ns;
  c.auto_offset_reset = brook::client::OffsetReset::kEarliest;
  c.heartbeat_interval = 300ms;
  c.session_timeout = 6s;
  c.metadata_max_age = 2s;
  return c;
}

struct ConsumeTimes {
  double total = 0;       // from creating the consumers
  double from_first = 0;  // from the first record returned
};

// Runs kConsumers consumers on threads until together they read `records`.
// `setup` assigns or subscribes consumer i.
ConsumeTimes ConsumeAll(const std::string& ns, const std::string& group, int64_t records,
                  const std::function<absl::Status(brook::client::Consumer&, int)>& setup) {
  std::atomic<int64_t> total{0};
  std::atomic<int64_t> first_ns{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < kConsumers; ++i) {
    threads.emplace_back([&, i] {
      auto config = BaseConfig(ns);
      config.group_id = group;
      config.assignors = {"cooperative-sticky"};
      auto c = brook::client::Consumer::Create(config);
      if (!c.ok() || !setup(**c, i).ok()) {
        std::fprintf(stderr, "consumer %d failed to start\n", i);
        std::exit(1);
      }
      const auto give_up = Clock::now() + 300s;
      while (total.load() < records && Clock::now() < give_up) {
        auto r = (*c)->Poll(100ms);
        if (!r.ok() || r->empty()) continue;
        int64_t expected = 0;
        first_ns.compare_exchange_strong(expected, Clock::now().time_since_epoch().count());
        total += static_cast<int64_t>(r->size());
      }
      (*c)->Close();
    });
  }
  while (total.load() < records) std::this_thread::sleep_for(1ms);
  const auto end = Clock::now();
  ConsumeTimes t;
  t.total = Seconds(end - start);
  t.from_first = Seconds(end - Clock::time_point(Clock::duration(first_ns.load())));
  for (auto& th : threads) th.join();
  return t;
}

// One rebalance-time measurement: 4 members settle, member 0 closes, the
// time until the other three own all partitions again.
double RebalanceTime(const std::string& ns, const std::string& topic, const std::string& group,
                     const std::string& assignor) {
  struct Member {
    std::unique_ptr<brook::client::Consumer> consumer;
    std::mutex mu;
    std::vector<TopicPartition> owned;
    std::atomic<bool> stop{false};
    std::thread thread;
  };
  std::vector<std::unique_ptr<Member>> members;
  for (int i = 0; i < kConsumers; ++i) {
    auto m = std::make_unique<Member>();
    auto config = BaseConfig(ns);
    config.group_id = group;
    config.assignors = {assignor};
    auto c = brook::client::Consumer::Create(config);
    if (!c.ok() || !(*c)->Subscribe({topic}).ok()) std::exit(1);
    m->consumer = std::move(*c);
    members.push_back(std::move(m));
  }
  for (auto& m : members) {
    Member* mp = m.get();
    mp->thread = std::thread([mp] {
      while (!mp->stop) {
        mp->consumer->Poll(20ms).IgnoreError();
        std::lock_guard<std::mutex> lock(mp->mu);
        mp->owned = mp->consumer->Assignment();
      }
    });
  }
  auto owned_by = [&](int from) {
    std::set<TopicPartition> all;
    size_t n = 0;
    for (int i = from; i < kConsumers; ++i) {
      std::lock_guard<std::mutex> lock(members[i]->mu);
      all.insert(members[i]->owned.begin(), members[i]->owned.end());
      n += members[i]->owned.size();
    }
    return n == all.size() ? all.size() : 0;  // 0 while two members claim one
  };
  const auto settle = Clock::now() + 60s;
  while (owned_by(0) != kPartitions && Clock::now() < settle) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(500ms);  // let the group be stable
  members[0]->stop = true;
  members[0]->thread.join();
  const auto start = Clock::now();
  members[0]->consumer->Close();  // LeaveGroup
  {
    std::lock_guard<std::mutex> lock(members[0]->mu);
    members[0]->owned.clear();
  }
  while (owned_by(1) != kPartitions && Clock::now() < start + 60s) std::this_thread::sleep_for(1ms);
  const double s = Seconds(Clock::now() - start);
  for (int i = 1; i < kConsumers; ++i) {
    members[i]->stop = true;
    members[i]->thread.join();
    members[i]->consumer->Close();
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t records = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  brook::testing::ServerProcess server({"--group-initial-rebalance-delay-ms=0"});
  if (auto s = server.Start(); !s.ok()) {
    std::fprintf(stderr, "server: %s\n%s\n", s.ToString().c_str(), server.LogTail().c_str());
    return 1;
  }
  const std::string ns = server.nameserver().ToString();
  brook::client::AdminConfig admin_config;
  admin_config.nameservers = ns;
  auto admin = brook::client::Admin::Create(admin_config);
  if (!admin.ok() || !(*admin)->CreateTopic(brook::client::NewTopic{"bench", kPartitions, 1, {}}).ok() ||
      !(*admin)->CreateTopic(brook::client::NewTopic{"rebalance", kPartitions, 1, {}}).ok()) {
    std::fprintf(stderr, "cannot create the topics\n");
    return 1;
  }
  {
    brook::client::ProducerConfig config;
    config.nameservers = ns;
    config.linger = 10ms;
    auto producer = brook::client::Producer::Create(config);
    if (!producer.ok()) return 1;
    // Pseudo-random values from a fixed seed: compression gains nothing.
    std::mt19937_64 rng(42);
    std::string pool(1 << 20, '\0');
    for (auto& ch : pool) ch = static_cast<char>(rng());
    for (int64_t i = 0; i < records; ++i) {
      brook::client::ProducerRecord r;
      r.topic = "bench";
      r.partition = static_cast<int32_t>(i % kPartitions);
      r.value = pool.substr(static_cast<size_t>(rng() % (pool.size() - 100)), 100);
      (*producer)->Send(std::move(r), nullptr);
    }
    if (!(*producer)->Flush(300s).ok()) return 1;
    (*producer)->Close().IgnoreError();
  }

  const ConsumeTimes group_t = ConsumeAll(ns, "bench-group", records, [](brook::client::Consumer& c, int) {
    return c.Subscribe({"bench"});
  });
  const ConsumeTimes assign_t = ConsumeAll(ns, "", records, [](brook::client::Consumer& c, int i) {
    return c.Assign({TopicPartition{"bench", 2 * i}, TopicPartition{"bench", 2 * i + 1}});
  });
  std::printf("{\"mode\":\"consume\",\"records\":%lld,\"record_size\":100,\"partitions\":%d,"
              "\"consumers\":%d,\"group_records_per_sec\":%.0f,\"group_seconds\":%.3f,"
              "\"group_records_per_sec_from_first\":%.0f,"
              "\"assign_records_per_sec\":%.0f,\"assign_seconds\":%.3f,"
              "\"assign_records_per_sec_from_first\":%.0f}\n",
              static_cast<long long>(records), kPartitions, kConsumers, records / group_t.total,
              group_t.total, records / group_t.from_first, records / assign_t.total, assign_t.total,
              records / assign_t.from_first);
  for (const std::string assignor : {"cooperative-sticky", "range"}) {
    std::vector<double> times;
    for (int run = 0; run < runs; ++run) {
      times.push_back(RebalanceTime(ns, "rebalance", absl::StrCat("rb-", assignor, "-", run), assignor));
    }
    std::sort(times.begin(), times.end());
    std::printf("{\"mode\":\"rebalance\",\"assignor\":\"%s\",\"runs\":%d,\"min_ms\":%.1f,"
                "\"median_ms\":%.1f,\"max_ms\":%.1f}\n",
                assignor.c_str(), runs, times.front() * 1000, times[times.size() / 2] * 1000,
                times.back() * 1000);
  }
  return 0;
}
