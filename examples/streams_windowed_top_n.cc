// Windowed top-N as a Brook streams topology, run in-process by LocalCluster:
// a generator spout of words with event times (slightly out of order) ->
// a sliding event-time window (1 s, every 500 ms) counting words and emitting
// the top 3 of each window -> a sink that collects them. With acking on, each
// word is acked once the last window containing it has fired.
//
//   example-streams-windowed-top-n [--words=N]
//       prints the top 3 of every window and checks them against an exact
//       computation (exit 1 if they differ)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "brook/streams/local_cluster.h"
#include "brook/streams/window.h"

namespace {

using namespace brook::streams;
using namespace std::chrono_literals;

constexpr int64_t kWindowMs = 1000;
constexpr int64_t kSlideMs = 500;
constexpr int64_t kTopN = 3;

struct Word {
  std::string word;
  int64_t ts;
};

// Word i has event time about i ms, up to 40 ms out of order; words follow a
// skewed distribution that changes every few seconds so the top 3 moves.
std::vector<Word> MakeWords(int n) {
  static const char* kVocab[] = {"brook", "stream", "river",  "topic", "spout",
                                 "bolt",  "tuple",  "window", "acker", "watermark"};
  constexpr int kVocabSize = sizeof(kVocab) / sizeof(kVocab[0]);
  std::vector<Word> out;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // Squaring a uniform index skews toward the first words; the rotation
    // every 3 s changes which words those are.
    int r = static_cast<int>(x % 1000);
    int idx = (r * r / 100000 + i / 3000) % kVocabSize;
    int64_t ts = std::max<int64_t>(0, i - static_cast<int64_t>((x >> 20) % 41));
    out.push_back({kVocab[idx], ts});
  }
  return out;
}

// Emits words[i] with message id i; re-emits failed ids.
class WordSpout : public ISpout {
 public:
  explicit WordSpout(std::shared_ptr<const std::vector<Word>> words) : words_(std::move(words)) {}
  void open(const TopologyContext&, SpoutOutputCollector* c) override { c_ = c; }
  void next_tuple() override {
    size_t id;
    if (!replay_.empty()) {
      id = replay_.back();
      replay_.pop_back();
    } else if (next_ < words_->size()) {
      id = next_++;
    } else {
      return;
    }
    const Word& w = (*words_)[id];
    c_->emit({Value(w.word), Value(w.ts)}, id);
  }
  void fail(MessageId id) override { replay_.push_back(id); }
  void declare_outputs(OutputDeclarer& d) override { d.declare(Fields{"word", "ts"}); }

 private:
  std::shared_ptr<const std::vector<Word>> words_;
  SpoutOutputCollector* c_ = nullptr;
  size_t next_ = 0;
  std::vector<size_t> replay_;
};

// Top entries of a window: (window start, rank) -> (word, count).
using Ranking = std::map<std::pair<int64_t, int64_t>, std::pair<std::string, int64_t>>;

void TopOf(int64_t start, const std::map<std::string, int64_t>& counts, Ranking* out) {
  std::vector<std::pair<int64_t, std::string>> v;
  for (const auto& [w, n] : counts) v.emplace_back(-n, w);
  std::sort(v.begin(), v.end());
  for (int64_t i = 0; i < kTopN && i < static_cast<int64_t>(v.size()); ++i) {
    (*out)[{start, i + 1}] = {v[i].second, -v[i].first};
  }
}

// The window function: count the window's words, emit (start, rank, word,
// count) for the top 3, anchored to the window's tuples.
void CountTop(const Window& w, WindowEmitter& out) {
  std::map<std::string, int64_t> counts;
  for (const Tuple& t : w.tuples) ++counts[t.get_string("word")];
  Ranking top;
  TopOf(w.start, counts, &top);
  for (const auto& [key, entry] : top) {
    out.emit({Value(key.first), Value(key.second), Value(entry.first), Value(entry.second)});
  }
}

class SinkBolt : public IBolt {
 public:
  SinkBolt(std::mutex* mu, Ranking* got) : mu_(mu), got_(got) {}
  void prepare(const TopologyContext&, OutputCollector* c) override { c_ = c; }
  void execute(const Tuple& t) override {
    {
      std::lock_guard<std::mutex> l(*mu_);
      (*got_)[{t.get_int64("start"), t.get_int64("rank")}] = {t.get_string("word"),
                                                              t.get_int64("count")};
    }
    c_->ack(t);
  }

 private:
  std::mutex* mu_;
  Ranking* got_;
  OutputCollector* c_ = nullptr;
};

int IntFlag(int argc, char** argv, const char* name, int def) {
  size_t len = std::strlen(name);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], name, len) == 0 && argv[i][len] == '=') {
      return std::atoi(argv[i] + len + 1);
    }
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = IntFlag(argc, argv, "--words", 10000);
  auto words = std::make_shared<const std::vector<Word>>(MakeWords(n));

  // The exact answer: every sliding window [k*500, k*500 + 1000) with words.
  std::map<int64_t, std::map<std::string, int64_t>> per_window;
  for (const Word& w : *words) {
    for (int64_t s = (w.ts / kSlideMs) * kSlideMs; s > w.ts - kWindowMs; s -= kSlideMs) {
      ++per_window[s][w.word];
    }
  }
  Ranking expected;
  for (const auto& [start, counts] : per_window) TopOf(start, counts, &expected);

  WindowOptions options;
  options.spec = WindowSpec::Sliding(std::chrono::milliseconds(kWindowMs),
                                     std::chrono::milliseconds(kSlideMs));
  options.timestamp_field = "ts";
  options.lag = 50ms;  // words arrive up to 40 ms out of order
  options.output = Fields{"start", "rank", "word", "count"};
  auto counters = std::make_shared<WindowCounters>();
  options.counters = counters;

  std::mutex mu;
  Ranking got;
  TopologyBuilder b;
  b.set_spout("words", [words] { return std::make_unique<WordSpout>(words); });
  b.set_bolt("top", WindowedBolt(options, CountTop)).global_grouping("words");
  b.set_bolt("sink", [&] { return std::make_unique<SinkBolt>(&mu, &got); }).global_grouping("top");
  Config config;
  // A word stays pending until its last window fires: up to about
  // (window + slide + lag) ms of words, ~1,550 here. max_spout_pending must
  // be above that, or the spout stalls until ticks push the watermark past
  // words that have not arrived yet (which then come late).
  config.max_spout_pending = 4000;
  // Ticks advance the watermark once the spout runs dry, closing the last
  // windows.
  config.tick_intervals["top"] = 20ms;
  LocalCluster cluster;
  absl::Status s = cluster.Submit("windowed-top-n", config, b.build());
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.ToString().c_str());
    return 1;
  }
  while (cluster.Stats("words").acked < static_cast<uint64_t>(n)) {
    std::this_thread::sleep_for(5ms);
  }
  s = cluster.Stop();
  if (!s.ok()) {
    std::fprintf(stderr, "stop: %s\n", s.ToString().c_str());
    return 1;
  }
  int64_t last = -1;
  for (const auto& [key, entry] : got) {
    if (key.first != last) {
      std::printf("%s[%6lld, %6lld) ms:", last == -1 ? "" : "\n", static_cast<long long>(key.first),
                  static_cast<long long>(key.first + kWindowMs));
      last = key.first;
    }
    std::printf("  %lld. %-10s %4lld", static_cast<long long>(key.second), entry.first.c_str(),
                static_cast<long long>(entry.second));
  }
  std::printf("\n");
  if (got != expected) {
    for (const auto& [key, entry] : expected) {
      auto it = got.find(key);
      if (it == got.end() || it->second != entry) {
        std::fprintf(stderr, "window %lld rank %lld: expected %s %lld, got %s\n",
                     static_cast<long long>(key.first), static_cast<long long>(key.second),
                     entry.first.c_str(), static_cast<long long>(entry.second),
                     it == got.end()
                         ? "nothing"
                         : (it->second.first + " " + std::to_string(it->second.second)).c_str());
      }
    }
    std::fprintf(stderr, "late: %llu dropped, %llu partly; ",
                 static_cast<unsigned long long>(counters->late_dropped.load()),
                 static_cast<unsigned long long>(counters->late_partial.load()));
    std::fprintf(stderr, "top %lld differ from the exact computation\n",
                 static_cast<long long>(kTopN));
    return 1;
  }
  std::printf("ok: %zu windows, %llu firings, %llu late words dropped\n", per_window.size(),
              static_cast<unsigned long long>(counters->fired.load()),
              static_cast<unsigned long long>(counters->late_dropped.load()));
  return 0;
}
