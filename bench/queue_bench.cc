// brook-bench-queue: queue subscription benchmarks against a fresh
// brook-server (started here on loopback ports, data in a temp directory).
//
//   brook-bench-queue acks [RECORDS] [CONSUMERS]
//       RECORDS (default 1,000,000) records of 100 B on 4 partitions are
//       written first; then CONSUMERS (default 4) queue consumers of one
//       group receive and acknowledge each record individually (async Ack,
//       batched by the client). Prints acknowledgements per second, from the
//       first receive to the last acknowledgement answered.
//   brook-bench-queue delayed [RECORDS] [SPREAD_S] [CONSUMERS]
//       CONSUMERS (default 1) consumers of one group subscribe, then
//       RECORDS (default 1,000,000) records of 100 B are written with
//       deliver-at times spread over SPREAD_S seconds (default 20) starting
//       30 s after the run began, in random order within 5 s windows; the
//       consumers receive and acknowledge them as they fall due. Prints the broker's RSS while they are all
//       pending and at the end, and the delivery lateness (receive time -
//       deliver-at) p50 / p99 / max; no record may come early.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/producer.h"
#include "brook/queue.h"
#include "tests/integration/harness.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

void Die(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "%s: %s\n", what.c_str(), s.ToString().c_str());
  std::exit(1);
}

void CreateTopic(const std::string& ns, const std::string& topic, int partitions) {
  brook::client::AdminConfig ac;
  ac.nameservers = ns;
  auto admin = brook::client::Admin::Create(ac);
  if (!admin.ok()) Die("admin", admin.status());
  auto t = (*admin)->CreateTopic(brook::client::NewTopic{topic, partitions, 1, {}});
  if (!t.ok()) Die("create topic", t.status());
}

// Writes `n` records of 100 B; `decorate` may set headers.
template <typename F>
void Produce(const std::string& ns, const std::string& topic, int64_t n, F decorate) {
  brook::client::ProducerConfig pc;
  pc.nameservers = ns;
  pc.linger = 5ms;
  auto p = brook::client::Producer::Create(pc);
  if (!p.ok()) Die("producer", p.status());
  std::atomic<int64_t> failed{0};
  const std::string value(100, 'v');
  for (int64_t i = 0; i < n; ++i) {
    brook::client::ProducerRecord r;
    r.topic = topic;
    r.value = value;
    decorate(i, r);
    (*p)->Send(std::move(r), [&](const absl::StatusOr<brook::client::RecordMetadata>& md) {
      if (!md.ok()) ++failed;
    });
  }
  if (auto s = (*p)->Close(120s); !s.ok()) Die("produce", s);
  if (failed.load() > 0) Die("produce", absl::UnknownError(absl::StrCat(failed.load(), " failed")));
}

brook::client::QueueConfig Config(const std::string& ns, const std::string& topic) {
  brook::client::QueueConfig c;
  c.nameservers = ns;
  c.topic = topic;
  c.group = "bench";
  c.start = brook::client::QueueStart::kEarliest;
  c.ack_timeout = 60s;
  c.prefetch_limit = 2000;
  return c;
}

// Creates the group's subscription on every partition of `topic` (a receive
// with nothing to deliver), so that the measurement is of steady state.
void Subscribe(const std::string& ns, const std::string& topic) {
  auto q = brook::client::QueueConsumer::Create(Config(ns, topic));
  if (!q.ok()) Die("queue consumer", q.status());
  const auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    if (auto r = (*q)->Receive(1, 200ms); !r.ok()) Die("receive", r.status());
    auto d = (*q)->Describe();
    bool all = d.ok() && !d->empty();
    if (d.ok()) {
      for (const auto& s : *d) all = all && s.status.ok();
    }
    if (all) break;
  }
  (*q)->Close().IgnoreError();
}

int Acks(const std::string& ns, int64_t records, int consumers) {
  CreateTopic(ns, "bench-acks", 4);
  Subscribe(ns, "bench-acks");
  auto t0 = Clock::now();
  Produce(ns, "bench-acks", records, [](int64_t, brook::client::ProducerRecord&) {});
  std::printf("produced %lld records in %.1f s\n", static_cast<long long>(records),
              std::chrono::duration<double>(Clock::now() - t0).count());
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> errors{0};
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int i = 0; i < consumers; ++i) {
    threads.emplace_back([&] {
      auto q = brook::client::QueueConsumer::Create(Config(ns, "bench-acks"));
      if (!q.ok()) Die("queue consumer", q.status());
      while (received.load() < records) {
        auto got = (*q)->Receive(1000, 200ms);
        if (!got.ok()) Die("receive", got.status());
        for (const auto& m : *got) (*q)->Ack(m);
        received += static_cast<int64_t>(got->size());
      }
      if (auto s = (*q)->Flush(60s); !s.ok()) {
        std::fprintf(stderr, "flush: %s\n", s.ToString().c_str());
        ++errors;
      }
      (*q)->Close().IgnoreError();
    });
  }
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("acks: %lld records, %d consumers, %.2f s, %.0f acks/s%s\n",
              static_cast<long long>(received.load()), consumers, secs,
              static_cast<double>(received.load()) / secs, errors.load() ? " (ack errors)" : "");
  return errors.load() ? 1 : 0;
}

int Delayed(const std::string& ns, pid_t server_pid, int64_t records, int spread_s,
            int consumers) {
  CreateTopic(ns, "bench-delayed", 4);
  const int64_t base = NowMs() + 30000;
  Subscribe(ns, "bench-delayed");
  auto q = brook::client::QueueConsumer::Create(Config(ns, "bench-delayed"));
  if (!q.ok()) Die("queue consumer", q.status());
  std::mt19937_64 rng(7);
  const int64_t spread_ms = static_cast<int64_t>(spread_s) * 1000;
  auto t0 = Clock::now();
  Produce(ns, "bench-delayed", records, [&](int64_t i, brook::client::ProducerRecord& r) {
    int64_t at = base + spread_ms * i / records + static_cast<int64_t>(rng() % 5000);
    brook::client::SetDeliverAt(r, std::min(at, base + spread_ms));
  });
  std::printf("produced %lld delayed records in %.1f s (first due in %.1f s)\n",
              static_cast<long long>(records),
              std::chrono::duration<double>(Clock::now() - t0).count(),
              static_cast<double>(base - NowMs()) / 1000);
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(0, base - NowMs() - 2000)));
  const long rss_pending = RssKb(server_pid);
  auto d = (*q)->Describe();
  int64_t delayed = 0;
  if (d.ok()) {
    for (const auto& s : *d) delayed += s.delayed;
  }
  std::printf("pending: broker RSS %ld MiB, %lld records in the delayed index\n", rss_pending / 1024,
              static_cast<long long>(delayed));
  std::vector<int64_t> lateness;
  lateness.reserve(static_cast<size_t>(records));
  std::mutex mu;  // guards lateness
  std::atomic<int64_t> early{0};
  std::atomic<int64_t> received{0};
  std::atomic<long> rss_max{rss_pending};
  const auto deadline = Clock::now() + std::chrono::seconds(spread_s + 60);
  // The first consumer is `q`; the others are created here. Each receives,
  // records the lateness of what it got and acknowledges it.
  std::vector<std::unique_ptr<brook::client::QueueConsumer>> extra;
  for (int i = 1; i < consumers; ++i) {
    auto c = brook::client::QueueConsumer::Create(Config(ns, "bench-delayed"));
    if (!c.ok()) Die("queue consumer", c.status());
    extra.push_back(*std::move(c));
  }
  auto drain = [&](brook::client::QueueConsumer* c, bool sample_rss) {
    std::vector<int64_t> mine;
    while (received.load() < records && Clock::now() < deadline) {
      auto got = c->Receive(2000, 200ms);
      if (!got.ok()) Die("receive", got.status());
      const int64_t now = NowMs();
      for (const auto& m : *got) {
        int64_t at = 0;
        for (const auto& h : m.record.headers) {
          if (h.key == "brook-deliver-at" && h.value) (void)absl::SimpleAtoi(*h.value, &at);
        }
        if (now < at) ++early;
        mine.push_back(now - at);
        c->Ack(m);
      }
      received += static_cast<int64_t>(got->size());
      if (sample_rss) rss_max = std::max(rss_max.load(), RssKb(server_pid));
    }
    c->Flush(60s).IgnoreError();
    std::lock_guard<std::mutex> lock(mu);
    lateness.insert(lateness.end(), mine.begin(), mine.end());
  };
  std::vector<std::thread> threads;
  for (auto& c : extra) threads.emplace_back(drain, c.get(), false);
  drain(q->get(), true);
  for (auto& t : threads) t.join();
  for (auto& c : extra) c->Close().IgnoreError();
  std::sort(lateness.begin(), lateness.end());
  auto pct = [&](double p) {
    return lateness.empty() ? -1
                            : lateness[std::min(lateness.size() - 1,
                                                static_cast<size_t>(p * static_cast<double>(lateness.size())))];
  };
  std::printf("delivered %zu/%lld, early %lld; lateness ms p50 %lld p99 %lld max %lld; "
              "broker RSS max %ld MiB\n",
              lateness.size(), static_cast<long long>(records), static_cast<long long>(early.load()),
              static_cast<long long>(pct(0.5)), static_cast<long long>(pct(0.99)),
              static_cast<long long>(lateness.empty() ? -1 : lateness.back()), rss_max.load() / 1024);
  (*q)->Close().IgnoreError();
  return early.load() == 0 && static_cast<int64_t>(lateness.size()) == records ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "acks" && mode != "delayed") {
    std::fprintf(stderr, "usage: %s acks [RECORDS] [CONSUMERS] | delayed [RECORDS] [SPREAD_S] [CONSUMERS]\n",
                 argv[0]);
    return 2;
  }
  const int64_t records = argc > 2 ? std::atoll(argv[2]) : 1000000;
  const int third = argc > 3 ? std::atoi(argv[3]) : (mode == "acks" ? 4 : 20);
  if (records <= 0 || third <= 0) return 2;
  brook::testing::ServerProcess server;
  if (auto s = server.Start(); !s.ok()) Die("server", s);
  const std::string ns = server.nameserver().ToString();
  std::printf("brook-server pid %d, name server %s\n", server.pid(), ns.c_str());
  const int consumers = argc > 4 ? std::atoi(argv[4]) : 1;
  if (consumers <= 0) return 2;
  return mode == "acks" ? Acks(ns, records, third)
                        : Delayed(ns, server.pid(), records, third, consumers);
}
