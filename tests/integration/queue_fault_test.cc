// The queue fault test: five consumer processes (queue_fault_worker) that
// randomly ack, nack and let ack timeouts lapse are kill -9'ed and restarted
// while a producer writes N records. At the end every record was
// acknowledged exactly once (one successful ack in the workers' logs, or an
// ack cut short by a kill that the broker's counters confirm) or sits in the
// dead-letter topic after max_deliveries, never both.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "brook/queue.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;
using Offset = std::pair<int32_t, int64_t>;  // partition, offset

constexpr char kTopic[] = "work";
constexpr char kGroup[] = "fault";
constexpr char kDlq[] = "fault-dlq";
constexpr int kRecords = 2000;
constexpr int kPoisonEvery = 200;
constexpr int kWorkers = 5;

class Worker {
 public:
  Worker(std::string nameservers, std::string log) : ns_(std::move(nameservers)), log_(std::move(log)) {}
  ~Worker() { Kill(); }
  void Start(unsigned seed) {
    pid_ = fork();
    if (pid_ == 0) {
      const std::string s = std::to_string(seed);
      execl(QUEUE_FAULT_WORKER_BIN, QUEUE_FAULT_WORKER_BIN, ns_.c_str(), kTopic, kGroup,
            log_.c_str(), s.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // False once the process exited (then reaped).
  bool Alive() {
    if (pid_ <= 0) return false;
    if (waitpid(pid_, nullptr, WNOHANG) == 0) return true;
    pid_ = -1;
    return false;
  }
  const std::string& log() const { return log_; }

 private:
  std::string ns_, log_;
  pid_t pid_ = -1;
};

TEST(QueueFaultTest, EveryRecordIsAckedOnceOrDeadLetteredDespiteKilledConsumers) {
  ServerProcess server;
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  const std::string ns = server.nameserver().ToString();
  {
    client::AdminConfig ac;
    ac.nameservers = ns;
    auto admin = client::Admin::Create(ac);
    ASSERT_TRUE(admin.ok()) << admin.status();
    ASSERT_TRUE((*admin)->CreateTopic(client::NewTopic{kTopic, 3, 1, {}}).ok());
    ASSERT_TRUE((*admin)->CreateTopic(client::NewTopic{kDlq, 1, 1, {}}).ok());
  }
  const std::string dir = server.data_dir() + "/../workers";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::vector<std::unique_ptr<Worker>> workers;
  std::mt19937 rng(20261124);
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(std::make_unique<Worker>(ns, absl::StrCat(dir, "/worker-", i, ".log")));
    workers.back()->Start(rng());
  }

  // The producer writes while the chaos below runs.
  std::map<Offset, std::string> produced;  // -> value
  std::set<Offset> poison;
  std::thread producer([&] {
    client::ProducerConfig pc;
    pc.nameservers = ns;
    pc.linger = 2ms;
    pc.delivery_timeout = 20s;
    auto p = client::Producer::Create(pc);
    ASSERT_TRUE(p.ok()) << p.status();
    std::vector<std::pair<std::string, std::future<absl::StatusOr<client::RecordMetadata>>>> fs;
    for (int i = 0; i < kRecords; ++i) {
      client::ProducerRecord r;
      r.topic = kTopic;
      r.key = absl::StrCat("k", i);
      r.value = absl::StrCat(i % kPoisonEvery == 0 ? "poison-" : "job-", i);
      fs.emplace_back(*r.value, (*p)->Send(r));
      if (i % 100 == 99) std::this_thread::sleep_for(300ms);
    }
    ASSERT_TRUE((*p)->Flush(20s).ok());
    for (auto& [v, f] : fs) {
      auto md = f.get();
      ASSERT_TRUE(md.ok()) << md.status();
      produced[{md->partition, md->offset}] = v;
      if (v.rfind("poison", 0) == 0) poison.insert({md->partition, md->offset});
    }
    (*p)->Close(5s).IgnoreError();
  });

  // Chaos: kill -9 a random worker every 0.5-1.5 s for 12 s and restart it.
  const auto chaos_end = std::chrono::steady_clock::now() + 12s;
  int kills = 0;
  while (std::chrono::steady_clock::now() < chaos_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + rng() % 1000));
    Worker& w = *workers[rng() % kWorkers];
    w.Kill();
    ++kills;
    w.Start(rng());
  }
  producer.join();
  ASSERT_EQ(produced.size(), static_cast<size_t>(kRecords));

  // Drain: wait until the subscription has handled every record.
  client::QueueConfig qc;
  qc.nameservers = ns;
  qc.topic = kTopic;
  qc.group = kGroup;
  qc.request_timeout = 5s;
  auto describer = client::QueueConsumer::Create(qc);
  ASSERT_TRUE(describer.ok());
  std::vector<client::QueuePartitionState> states;
  const auto drain_end = std::chrono::steady_clock::now() + 30s;
  bool drained = false;
  while (!drained && std::chrono::steady_clock::now() < drain_end) {
    std::this_thread::sleep_for(500ms);
    auto s = (*describer)->Describe();
    if (!s.ok()) continue;
    states = *s;
    drained = true;
    for (const auto& st : states) {
      drained = drained && st.status.ok() && st.backlog == 0 && st.ack_floor == st.high_watermark;
    }
  }
  for (auto& w : workers) {
    EXPECT_TRUE(w->Alive()) << "a worker exited on its own";
    w->Kill();
  }
  ASSERT_TRUE(drained) << "the subscription did not drain";
  (*describer)->Close().IgnoreError();
  int64_t broker_acked = 0, broker_dead = 0, high = 0;
  for (const auto& st : states) {
    broker_acked += st.acked;
    broker_dead += st.dead_lettered;
    high += st.high_watermark;
  }
  EXPECT_EQ(high, kRecords);

  // The workers' logs: successful acks, and acks cut short by a kill.
  std::map<Offset, int> acks;
  std::set<Offset> ambiguous;
  for (auto& w : workers) {
    std::ifstream in(w->log());
    std::string line;
    std::set<std::string> open;  // "P O D" with an I and no outcome yet
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string kind;
      int32_t p = 0;
      int64_t o = 0;
      int32_t d = 0;
      ls >> kind >> p >> o >> d;
      const std::string id = absl::StrCat(p, " ", o, " ", d);
      if (kind == "I") {
        open.insert(id);
      } else {
        open.erase(id);
        if (kind == "A") ++acks[{p, o}];
      }
    }
    for (const std::string& id : open) {
      std::istringstream ls(id);
      int32_t p = 0;
      int64_t o = 0;
      ls >> p >> o;
      ambiguous.insert({p, o});
    }
  }

  // The dead-letter topic.
  std::map<Offset, int> dead;
  {
    client::ConsumerConfig cc;
    cc.nameservers = ns;
    cc.auto_offset_reset = client::OffsetReset::kEarliest;
    cc.fetch_max_wait = 100ms;
    auto consumer = client::Consumer::Create(cc);
    ASSERT_TRUE(consumer.ok());
    ASSERT_TRUE((*consumer)->Assign({{kDlq, 0}}).ok());
    const auto end = std::chrono::steady_clock::now() + 5s;
    int64_t got = 0;
    while (got < broker_dead && std::chrono::steady_clock::now() < end) {
      auto recs = (*consumer)->Poll(200ms);
      ASSERT_TRUE(recs.ok()) << recs.status();
      for (const auto& r : *recs) {
        ++got;
        std::map<std::string, std::string> h;
        for (const auto& hh : r.headers) h[hh.key] = hh.value.value_or("");
        EXPECT_EQ(h["brook-dlq-topic"], kTopic);
        EXPECT_EQ(h["brook-dlq-group"], kGroup);
        EXPECT_EQ(h["brook-dlq-delivery-count"], "4");
        int32_t p = -1;
        int64_t o = -1;
        EXPECT_TRUE(absl::SimpleAtoi(h["brook-dlq-partition"], &p));
        EXPECT_TRUE(absl::SimpleAtoi(h["brook-dlq-offset"], &o));
        ++dead[{p, o}];
        auto it = produced.find({p, o});
        ASSERT_NE(it, produced.end()) << p << ":" << o;
        EXPECT_EQ(r.value, it->second);
      }
    }
    (*consumer)->Close();
  }

  int acked_once = 0, via_kill = 0;
  for (const auto& [po, value] : produced) {
    const int a = acks.count(po) ? acks[po] : 0;
    const int d = dead.count(po) ? dead[po] : 0;
    EXPECT_LE(a, 1) << value << " acknowledged " << a << " times";
    EXPECT_LE(d, 1) << value << " dead-lettered " << d << " times";
    EXPECT_FALSE(a > 0 && d > 0) << value << " both acknowledged and dead-lettered";
    if (poison.count(po)) {
      EXPECT_EQ(d, 1) << value << " is not in the dead-letter topic";
    }
    if (a == 1) {
      ++acked_once;
    } else if (d == 0) {
      EXPECT_TRUE(ambiguous.count(po)) << value << " neither acknowledged nor dead-lettered";
      ++via_kill;
    }
  }
  // The broker's counters agree: records acked by a killed worker count
  // once, and nothing was acknowledged twice.
  EXPECT_EQ(broker_acked + broker_dead, kRecords);
  EXPECT_EQ(broker_acked, acked_once + via_kill);
  EXPECT_EQ(broker_dead, static_cast<int64_t>(dead.size()));
  std::printf("kills=%d acked=%d acked-by-killed-worker=%d dead-lettered=%zu\n", kills,
              acked_once, via_kill, dead.size());
}

}  // namespace
}  // namespace brook::testing
