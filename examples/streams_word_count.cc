// Word count as a Brook streams topology, run in-process by LocalCluster:
// an in-memory sentence spout -> split (flat-map) -> count (keyed count,
// fields-grouped by word).
//
//   streams_word_count                      count 10,000 sentences, print the
//                                           counts, check them (exit 1 if wrong)
//   streams_word_count --bench [--acking=on|off] [--seconds=N] [--threads=N]
//                      [--split=N] [--count=N] [--max-pending=N]
//                                           micro-benchmark: tuples/s arriving
//                                           at the count bolt, and its execute
//                                           latency percentiles
//   streams_word_count --bench --source=topic [--nameservers=H:P]
//                      [--sentences=1000000] [--partitions=4] [--spouts=N] ...
//                                           the same with a topic spout: first
//                                           produces the sentences to a new
//                                           topic of a running server, then
//                                           measures the topology reading it
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "brook/streams/helpers.h"
#include "brook/streams/local_cluster.h"
#include "brook/streams/topic.h"
#include "brook/streams/topology.h"
#include "common/http/metrics.h"
#include "examples/example_flags.h"
#include "examples/example_sentences.h"
#include "examples/example_topics.h"

namespace {

using namespace brook::streams;

// Emits sentences[i % n] with message id i (when tracking), `limit` in all
// (0: forever). Failed ids are re-emitted.
class SentenceSpout : public ISpout {
 public:
  SentenceSpout(std::shared_ptr<const std::vector<std::string>> sentences, uint64_t limit,
                bool track)
      : sentences_(std::move(sentences)), limit_(limit), track_(track) {}
  void open(const TopologyContext& ctx, SpoutOutputCollector* c) override {
    c_ = c;
    next_ = static_cast<uint64_t>(ctx.task_index());
    step_ = ctx.component_tasks(ctx.component()).size();
  }
  void next_tuple() override {
    uint64_t id;
    if (!replay_.empty()) {
      id = replay_.back();
      replay_.pop_back();
    } else if (limit_ == 0 || next_ < limit_) {
      id = next_;
      next_ += step_;
    } else {
      return;
    }
    Values v{Value((*sentences_)[id % sentences_->size()])};
    if (track_) {
      c_->emit(std::move(v), id);
    } else {
      c_->emit(std::move(v));
    }
  }
  void fail(MessageId id) override { replay_.push_back(id); }
  void declare_outputs(OutputDeclarer& d) override { d.declare(Fields{"sentence"}); }

 private:
  std::shared_ptr<const std::vector<std::string>> sentences_;
  uint64_t limit_;
  bool track_;
  SpoutOutputCollector* c_ = nullptr;
  uint64_t next_ = 0;
  uint64_t step_ = 1;
  std::vector<uint64_t> replay_;
};

// Splits the sentence in input field `field` (an index: the in-memory spout's
// sentence is field 0, a topic spout's value field 1) into words.
BoltFactory Split(size_t field = 0) {
  return FlatMapBolt(Fields{"word"}, [field](const Tuple& t, const Emit& emit) {
    const std::string& s = t.get(field).as_string();
    size_t i = 0;
    while (i < s.size()) {
      size_t j = s.find(' ', i);
      if (j == std::string::npos) j = s.size();
      if (j > i) emit({Value(std::string_view(s.data() + i, j - i))});
      i = j + 1;
    }
  });
}

double Quantile(const brook::metrics::Histogram& h, double q) {
  std::vector<uint64_t> buckets;
  double sum;
  uint64_t count;
  h.Snapshot(&buckets, &sum, &count);
  if (count == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count));
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    seen += buckets[i];
    if (seen > rank) return i < h.bounds().size() ? h.bounds()[i] : INFINITY;
  }
  return INFINITY;
}

int RunCount() {
  auto sentences = std::make_shared<const std::vector<std::string>>(
      brook::examples::MakeSentences(100, 0, /*pad=*/true));
  const uint64_t kSentences = 10000;
  std::map<std::string, int64_t> expected;
  for (uint64_t i = 0; i < kSentences; ++i) {
    const std::string& s = (*sentences)[i % sentences->size()];
    size_t p = 0;
    while (p < s.size()) {
      size_t q = s.find(' ', p);
      if (q == std::string::npos) q = s.size();
      if (q > p) ++expected[s.substr(p, q - p)];
      p = q + 1;
    }
  }
  std::mutex mu;
  std::map<std::string, int64_t> counts;
  TopologyBuilder b;
  b.set_spout("sentences", [=] {
    return std::make_unique<SentenceSpout>(sentences, kSentences, /*track=*/true);
  });
  b.set_bolt("split", Split(), 2).shuffle_grouping("sentences");
  b.set_bolt("count",
             KeyedCountBolt({"word"}, /*emit_updates=*/false,
                            [&](const Values& k, const Value& v) {
                              std::lock_guard<std::mutex> l(mu);
                              counts[k[0].as_string()] = v.as_int64();
                            }),
             2)
      .fields_grouping("split", Fields{"word"});
  LocalCluster cluster;
  absl::Status s = cluster.Submit("word-count", Config{}, b.build());
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.ToString().c_str());
    return 1;
  }
  while (cluster.Stats("sentences").acked < kSentences) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s = cluster.Stop();
  if (!s.ok()) {
    std::fprintf(stderr, "stop: %s\n", s.ToString().c_str());
    return 1;
  }
  for (const auto& [w, n] : counts)
    std::printf("%-8s %lld\n", w.c_str(), static_cast<long long>(n));
  if (counts != expected) {
    std::fprintf(stderr, "counts differ from the expected counts\n");
    return 1;
  }
  std::printf("ok: %zu words, counts exact\n", counts.size());
  return 0;
}

// Produces `n` of `sentences` (round robin) to a new topic of `partitions`
// partitions; returns its name.
absl::StatusOr<std::string> FillTopic(const std::string& nameservers, int partitions, int n,
                                      const std::vector<std::string>& sentences) {
  namespace client = brook::client;
  const std::string topic =
      "bench-sentences-" + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  absl::Status s = brook::examples::EnsureTopics(nameservers, {{topic, partitions}});
  if (!s.ok()) return s;
  auto producer = brook::examples::CountingProducer::Create(nameservers);
  if (!producer.ok()) return producer.status();
  for (int i = 0; i < n; ++i) {
    client::ProducerRecord r;
    r.topic = topic;
    r.partition = i % partitions;
    r.value = sentences[static_cast<size_t>(i) % sentences.size()];
    (*producer)->Send(std::move(r));
  }
  s = (*producer)->Close();
  if (!s.ok()) return s;
  return topic;
}

int RunBench(int argc, char** argv) {
  std::string acking_flag = "on", source = "memory", nameservers;
  int seconds = 5, threads = 0, split = 1, count = 1, pending = 5000;
  int spouts = 1, partitions = 4, topic_sentences = 1000000;
  bool bench = false;
  brook::examples::ExampleFlags flags(argc, argv);
  flags.Switch("bench", &bench);
  flags.String("acking", &acking_flag);
  flags.String("source", &source);
  flags.String("nameservers", &nameservers);
  flags.Int("seconds", &seconds, 1);
  flags.Int("threads", &threads);
  flags.Int("split", &split, 1);
  flags.Int("count", &count, 1);
  flags.Int("max-pending", &pending, 1);
  flags.Int("spouts", &spouts, 1);
  flags.Int("partitions", &partitions, 1);
  flags.Int("sentences", &topic_sentences, 1);
  if (!flags.Done("streams_word_count.cc")) return 2;
  if (source != "memory" && source != "topic") {
    std::fprintf(stderr, "--source is memory or topic, not %s\n", source.c_str());
    return 2;
  }
  const bool acking = acking_flag != "off";
  auto sentences = std::make_shared<const std::vector<std::string>>(
      brook::examples::MakeSentences(1000, 0, /*pad=*/true));
  double words = 0;
  for (const auto& x : *sentences) {
    for (size_t i = 0; i < x.size(); ++i) words += (x[i] != ' ' && (i == 0 || x[i - 1] == ' '));
  }
  const double words_per_sentence = words / static_cast<double>(sentences->size());

  TopologyBuilder b;
  size_t sentence_field = 0;
  if (source == "topic") {
    // The sentences are produced first; the topology then reads the backlog.
    if (nameservers.empty()) nameservers = brook::client::DefaultNameservers();
    auto start = std::chrono::steady_clock::now();
    auto topic = FillTopic(nameservers, partitions, topic_sentences, *sentences);
    if (!topic.ok()) {
      std::fprintf(stderr, "filling the topic: %s\n", topic.status().ToString().c_str());
      return 1;
    }
    std::printf("produced %d sentences to %s in %.1f s\n", topic_sentences, topic->c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    TopicSpoutOptions o;
    o.topic = *topic;
    o.group_id = *topic + "-bench";
    o.nameservers = nameservers;
    b.set_spout("sentences", TopicSpout(o), spouts);
    sentence_field = 1;  // value
  } else {
    b.set_spout("sentences",
                [=] { return std::make_unique<SentenceSpout>(sentences, 0, /*track=*/acking); });
  }
  b.set_bolt("split", Split(sentence_field), split).local_or_shuffle_grouping("sentences");
  b.set_bolt("count", KeyedCountBolt({"word"}, /*emit_updates=*/false), count)
      .fields_grouping("split", Fields{"word"});
  Config config;
  config.acking = acking;
  config.max_spout_pending = pending;
  LocalCluster cluster(LocalClusterOptions{.threads = threads});
  const std::string name = acking ? "word-count-bench-acking" : "word-count-bench";
  absl::Status s = cluster.Submit(name, config, b.build());
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.ToString().c_str());
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // warm-up
  uint64_t start_count = cluster.Stats("count").executed;
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  uint64_t end_count = cluster.Stats("count").executed;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto spout = cluster.Stats("sentences");
  if (source == "topic" && spout.emitted >= static_cast<uint64_t>(topic_sentences)) {
    std::fprintf(stderr,
                 "warning: the spout read the whole topic during the measurement; the rate is "
                 "understated (use more --sentences)\n");
  }
  s = cluster.Stop(std::chrono::seconds(30));
  auto* latency = brook::metrics::Registry::Global().GetHistogram(
      "brook_streams_execute_latency_seconds", {{"topology", name}, {"component", "count"}}, "");
  std::printf(
      "source=%s acking=%s threads=%d spouts=%d split=%d count=%d: %.0f tuples/s at the count "
      "bolt (%.0f sentences/s); count execute p50 <= %.2f us, p99 <= %.2f us; "
      "spout acked %llu failed %llu; stop: %s\n",
      source.c_str(), acking ? "on" : "off", threads, spouts, split, count,
      static_cast<double>(end_count - start_count) / elapsed,
      static_cast<double>(end_count - start_count) / elapsed / words_per_sentence,
      Quantile(*latency, 0.5) * 1e6, Quantile(*latency, 0.99) * 1e6,
      static_cast<unsigned long long>(spout.acked), static_cast<unsigned long long>(spout.failed),
      s.ToString().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = false;
  brook::examples::ExampleFlags flags(argc, argv);
  flags.Switch("bench", &bench);
  if (bench) return RunBench(argc, argv);
  if (!flags.Done("streams_word_count.cc")) return 2;
  return RunCount();
}
