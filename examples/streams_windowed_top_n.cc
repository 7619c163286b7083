// Windowed top-N over Brook topics, in two stages as Storm's rolling top
// words does:
//   words topic -> topic spout
//     -> count: sliding event-time windows (1 s, every 500 ms) on the record
//        timestamps, fields-grouped by word over 2 tasks; each task emits its
//        own top 3 per window (one tuple: start, "word=count ...")
//     -> rank: tumbling 500 ms windows on the partial rankings' window start
//        (global grouping), merging every count task's latest partial into
//        the window's top 3
//     -> topic bolt: top-words topic, key = window start (ms), value =
//        "word=count word=count word=count".
// A count task's top 3 is enough: fields grouping puts each word in exactly
// one task, so every word of the overall top 3 is in its task's top 3. When
// a partial arrives after its window was ranked (a count task running
// behind), the window is ranked again and written again: readers take the
// last record of each window key.
//
//   example-streams-windowed-top-n [--nameservers=127.0.0.1:9876]
//       [--words=6000] [--seconds=3] [--timeout=60]
//
// It creates the topics if missing, starts the topology, produces --words
// words over --seconds (timestamps = send time less up to 200 ms, so they
// arrive out of order), works out the exact top 3 of every window of this
// run and follows top-words until each of those windows' last ranking is
// exact (exit 0), or prints the differences at --timeout (exit 1).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "brook/streams/local_cluster.h"
#include "brook/streams/topic.h"
#include "brook/streams/window.h"
#include "examples/example_flags.h"
#include "examples/example_topics.h"

namespace {

using namespace brook::streams;
using namespace std::chrono_literals;
namespace client = brook::client;

constexpr int64_t kWindowMs = 1000;
constexpr int64_t kSlideMs = 500;
constexpr size_t kTopN = 3;
constexpr int kCountTasks = 2;

struct Flags {
  std::string nameservers;
  std::string input = "words";
  std::string output = "top-words";
  int words = 6000;
  int seconds = 3;
  int timeout_s = 60;
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// HH:MM:SS.mmm (UTC) of a time in ms since the epoch.
std::string Clock(int64_t ms) {
  const int64_t day_ms = ms % 86400000;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03d", static_cast<int>(day_ms / 3600000),
                static_cast<int>(day_ms / 60000 % 60), static_cast<int>(day_ms / 1000 % 60),
                static_cast<int>(day_ms % 1000));
  return buf;
}

using Counts = std::map<std::string, int64_t>;

// "word=count ..." of the top kTopN of `counts`: by count, then by word.
std::string Top(const Counts& counts) {
  std::vector<std::pair<int64_t, std::string>> v;
  for (const auto& [w, n] : counts) v.emplace_back(-n, w);
  std::sort(v.begin(), v.end());
  std::string out;
  for (size_t i = 0; i < kTopN && i < v.size(); ++i) {
    if (!out.empty()) out += ' ';
    out += v[i].second + "=" + std::to_string(-v[i].first);
  }
  return out;
}

// Parses what Top wrote into `counts` (adding to it).
void ParseTop(const std::string& s, Counts* counts) {
  size_t i = 0;
  while (i < s.size()) {
    size_t end = s.find(' ', i);
    if (end == std::string::npos) end = s.size();
    const size_t eq = s.find('=', i);
    if (eq != std::string::npos && eq < end) {
      (*counts)[s.substr(i, eq - i)] = std::atoll(s.substr(eq + 1, end - eq - 1).c_str());
    }
    i = end + 1;
  }
}

// Stage 1, per count task and window: its words' top 3.
void CountWindow(const Window& w, WindowEmitter& out) {
  Counts counts;
  for (const Tuple& t : w.tuples) ++counts[t.get_string("value")];
  out.emit({Value(w.start), Value(Top(counts))});
}

// Stage 2, per window start: merge each count task's latest partial (a
// re-fired count window sends a newer one) and rank.
void RankWindow(const Window& w, WindowEmitter& out) {
  std::map<int, const Tuple*> latest;  // by count task; tuples are in arrival order
  for (const Tuple& t : w.tuples) latest[t.source_task()] = &t;
  Counts merged;
  for (const auto& [task, t] : latest) ParseTop(t->get_string("top"), &merged);
  out.emit({Value(w.start), Value(Top(merged))});
}

// Word i of a run: skewed toward a few words, which change every second so
// the top 3 moves.
std::string WordAt(uint64_t* x, int64_t ts) {
  static const char* kVocab[] = {"brook", "stream", "river",  "topic", "spout",
                                 "bolt",  "tuple",  "window", "acker", "watermark"};
  constexpr int kVocabSize = sizeof(kVocab) / sizeof(kVocab[0]);
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  const int r = static_cast<int>(*x % 1000);
  return kVocab[(r * r / 100000 + ts / 1000) % kVocabSize];
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  brook::examples::ExampleFlags flags(argc, argv);
  flags.String("nameservers", &f.nameservers);
  flags.Int("words", &f.words);
  flags.Int("seconds", &f.seconds);
  flags.Int("timeout", &f.timeout_s, 1);
  if (!flags.Done("streams_windowed_top_n.cc")) return 2;
  if (f.nameservers.empty()) f.nameservers = client::DefaultNameservers();

  if (absl::Status s = brook::examples::EnsureTopics(f.nameservers, {{f.input, 4}, {f.output, 1}});
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }

  TopicSpoutOptions spout;
  spout.topic = f.input;
  spout.group_id = "streams-top-n";
  spout.nameservers = f.nameservers;

  WindowOptions count;
  count.spec = WindowSpec::Sliding(std::chrono::milliseconds(kWindowMs),
                                   std::chrono::milliseconds(kSlideMs));
  count.timestamp_field = "timestamp";
  count.lag = 1000ms;               // covers the 200 ms disorder and the spread of partitions
  count.allowed_lateness = 1000ms;  // a word later than that re-fires its windows
  count.output = Fields{"start", "top"};

  WindowOptions rank;
  rank.spec = WindowSpec::Tumbling(std::chrono::milliseconds(kSlideMs));
  rank.timestamp_field = "start";
  rank.lag = 1500ms;                // count tasks may be up to 3 windows apart
  rank.allowed_lateness = 3000ms;  // later partials re-rank the window
  rank.output = Fields{"start", "top"};

  TopicBoltOptions sink;
  sink.topic = f.output;
  sink.nameservers = f.nameservers;
  sink.key_field = "start";
  sink.value_field = "top";

  TopologyBuilder b;
  b.set_spout("words", TopicSpout(spout), 1);
  b.set_bolt("count", WindowedBolt(count, CountWindow), kCountTasks)
      .fields_grouping("words", Fields{"value"});
  b.set_bolt("rank", WindowedBolt(rank, RankWindow), 1).global_grouping("count");
  b.set_bolt("write", TopicBolt(sink), 1).shuffle_grouping("rank");

  Config config;
  // A word is acked once the rank window holding its partials passed its
  // lateness, ~8 s after it arrived: the spout may have that many pending.
  config.max_spout_pending = 100000;
  config.message_timeout = 60s;
  // Ticks move the watermarks on when input pauses, closing the last windows.
  config.tick_intervals["count"] = 100ms;
  config.tick_intervals["rank"] = 100ms;
  LocalCluster cluster;
  absl::Status s = cluster.Submit("windowed-top-n", config, b.build());
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.ToString().c_str());
    return 1;
  }

  // Produce this run's words and the exact counts of every window holding one.
  std::map<int64_t, Counts> per_window;
  {
    auto producer = brook::examples::CountingProducer::Create(f.nameservers, 1ms);
    if (!producer.ok()) {
      std::fprintf(stderr, "producer: %s\n", producer.status().ToString().c_str());
      return 1;
    }
    const auto pause =
        std::chrono::microseconds(f.words > 0 ? f.seconds * 1000000LL / f.words : 0);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(NowMs());
    for (int i = 0; i < f.words; ++i) {
      const int64_t ts = NowMs() - static_cast<int64_t>((x >> 20) % 201);
      client::ProducerRecord r;
      r.topic = f.input;
      r.value = WordAt(&x, ts);
      r.key = r.value;
      r.timestamp_ms = ts;
      for (int64_t start = ts / kSlideMs * kSlideMs; start > ts - kWindowMs; start -= kSlideMs) {
        ++per_window[start][*r.value];
      }
      (*producer)->Send(std::move(r));
      std::this_thread::sleep_for(pause);
    }
    s = (*producer)->Close();
    if (!s.ok()) {
      std::fprintf(stderr, "producing: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::map<int64_t, std::string> expected;
  for (const auto& [start, counts] : per_window) expected[start] = Top(counts);
  std::fprintf(stderr, "produced %d words; expecting the top %zu of %zu windows\n", f.words, kTopN,
               expected.size());

  // Follow top-words: the last ranking of each of this run's windows.
  client::ConsumerConfig cc;
  cc.nameservers = f.nameservers;
  cc.enable_auto_commit = false;
  auto consumer = client::Consumer::Create(cc);
  if (!consumer.ok()) {
    std::fprintf(stderr, "consumer: %s\n", consumer.status().ToString().c_str());
    return 1;
  }
  const std::vector<client::TopicPartition> tps = {{f.output, 0}};
  (void)(*consumer)->Assign(tps);
  (void)(*consumer)->SeekToBeginning(tps);
  std::map<int64_t, std::string> got;
  int64_t rerankings = 0;
  auto matches = [&] {
    for (const auto& [start, top] : expected) {
      auto it = got.find(start);
      if (it == got.end() || it->second != top) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f.timeout_s);
  while (!matches() && std::chrono::steady_clock::now() < deadline) {
    auto records = (*consumer)->Poll(200ms);
    if (!records.ok()) continue;
    for (const auto& r : *records) {
      const int64_t start = std::atoll(r.key.value_or("").c_str());
      if (expected.count(start) == 0) continue;  // another run's window
      if (got.count(start) > 0) ++rerankings;
      got[start] = r.value.value_or("");
    }
  }
  (*consumer)->Close();
  s = cluster.Stop(30s);  // the last windows close as ticks move the watermarks
  if (!s.ok()) std::fprintf(stderr, "stop: %s\n", s.ToString().c_str());

  int wrong = 0;
  for (const auto& [start, top] : expected) {
    auto it = got.find(start);
    const bool ok = it != got.end() && it->second == top;
    if (!ok) ++wrong;
    std::printf("[%s, %s) %s%s%s\n", Clock(start).c_str(), Clock(start + kWindowMs).c_str(),
                top.c_str(), ok ? "" : "   GOT ",
                ok ? "" : (it == got.end() ? "nothing" : it->second.c_str()));
  }
  if (wrong > 0) {
    std::printf("FAILED: %d of %zu windows differ from the exact top %zu\n", wrong,
                expected.size(), kTopN);
    return 1;
  }
  std::printf("OK: the top %zu of %zu windows are exact (%lld re-rankings)\n", kTopN,
              expected.size(), static_cast<long long>(rerankings));
  return 0;
}
