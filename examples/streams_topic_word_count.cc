// Word count over Brook topics: a topic spout reads sentences -> split ->
// count (keyed state, checkpointed to a changelog topic) -> a topic bolt
// writes (word, count) to the counts topic. Acking is on: a sentence's
// offset is committed only once its words are counted durably and their
// counts written, so a crash loses nothing (counts may only run ahead).
//
//   example-streams-topic-word-count [--nameservers=127.0.0.1:9876]
//       [--sentences=2000] [--input=sentences] [--output=word-counts]
//       [--group=streams-word-count] [--name=word-count] [--partitions=4]
//       [--parallelism=2] [--timeout=60] [--admin=HOST:PORT] [--forever]
//
// By default it creates the topics if missing, produces --sentences
// sentences, runs the topology until the counts topic holds, for every word,
// the number of times it occurs in the whole sentences topic, prints the top
// words and exits (0 if every count was reached in time). Run it again: the
// state and the committed offsets carry over, so the counts keep growing
// with the topic. --forever runs the topology until SIGINT / SIGTERM
// (graceful stop) instead. --admin serves /metrics for the topology.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)
#include <vector>

#include "boost/asio/io_context.hpp"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "brook/streams/helpers.h"
#include "brook/streams/local_cluster.h"
#include "brook/streams/state.h"
#include "brook/streams/topic.h"
#include "common/http/admin_server.h"
#include "examples/example_flags.h"
#include "examples/example_sentences.h"
#include "examples/example_topics.h"

namespace {

using namespace brook::streams;
using namespace std::chrono_literals;
namespace client = brook::client;

struct Flags {
  std::string nameservers;
  std::string input = "sentences";
  std::string output = "word-counts";
  std::string group = "streams-word-count";
  std::string name = "word-count";
  std::string admin;
  int sentences = 2000;
  int partitions = 4;
  int parallelism = 2;
  int timeout_s = 60;
  bool forever = false;
};

void SplitWords(const Tuple& t, const Emit& emit) {
  const std::string& s = t.get_string("value");
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) emit({Value(s.substr(i, j - i))});
    i = j;
  }
}

// Counts words in keyed state (changelog "<name>-count-changelog") and emits
// (word, count) after each update. The input is acked only once the update
// is durable in the changelog.
class CountBolt : public IBolt {
 public:
  void prepare(const TopologyContext& context, OutputCollector* collector) override {
    collector_ = collector;
    auto state = KeyValueState::Open(context, collector);
    if (!state.ok()) throw std::runtime_error(state.status().ToString());
    state_ = std::move(*state);
    std::fprintf(stderr, "count task %d: restored %zu words from %llu changelog records\n",
                 context.task_index(), state_->size(),
                 static_cast<unsigned long long>(state_->restored_updates()));
  }
  void execute(const Tuple& input) override {
    const std::string& word = input.get_string("word");
    int64_t n = state_->Increment(word);
    collector_->emit(input, {Value(word), Value(n)});
    state_->Ack(input);
  }
  void cleanup() override { (void)state_->Flush(); }
  void declare_outputs(OutputDeclarer& d) override { d.declare(Fields{"word", "count"}); }

 private:
  OutputCollector* collector_ = nullptr;
  std::unique_ptr<KeyValueState> state_;
};

// Calls fn(record) for every record of `topic` up to its end at the call.
absl::Status ReadWholeTopic(const std::string& nameservers, const std::string& topic,
                            const std::function<void(const client::ConsumerRecord&)>& fn) {
  client::ConsumerConfig c;
  c.nameservers = nameservers;
  c.auto_offset_reset = client::OffsetReset::kEarliest;
  c.enable_auto_commit = false;
  auto consumer = client::Consumer::Create(c);
  if (!consumer.ok()) return consumer.status();
  auto n = (*consumer)->PartitionCount(topic);
  if (!n.ok()) return n.status();
  std::vector<client::TopicPartition> tps;
  for (int32_t p = 0; p < *n; ++p) tps.push_back({topic, p});
  absl::Status s = (*consumer)->Assign(tps);
  if (s.ok()) s = (*consumer)->SeekToEnd(tps);
  if (!s.ok()) return s;
  std::map<int32_t, int64_t> end;
  for (const auto& tp : tps) {
    auto pos = (*consumer)->Position(tp);
    if (!pos.ok()) return pos.status();
    end[tp.partition] = *pos;
  }
  s = (*consumer)->SeekToBeginning(tps);
  if (!s.ok()) return s;
  auto done = [&]() -> bool {
    for (const auto& tp : tps) {
      auto pos = (*consumer)->Position(tp);
      if (!pos.ok() || *pos < end[tp.partition]) return false;
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError("reading " + topic + " took too long");
    }
    auto records = (*consumer)->Poll(200ms);
    if (!records.ok()) return records.status();
    for (const auto& r : *records) {
      if (r.offset < end[r.partition]) fn(r);
    }
  }
  (*consumer)->Close();
  return absl::OkStatus();
}

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  brook::examples::ExampleFlags flags(argc, argv);
  for (auto [name, out] : {std::pair{"nameservers", &f.nameservers}, {"input", &f.input},
                           {"output", &f.output}, {"group", &f.group}, {"name", &f.name},
                           {"admin", &f.admin}}) {
    flags.String(name, out);
  }
  flags.Int("sentences", &f.sentences);
  flags.Int("partitions", &f.partitions);
  flags.Int("parallelism", &f.parallelism, 1);
  flags.Int("timeout", &f.timeout_s);
  flags.Switch("forever", &f.forever);
  if (!flags.Done("streams_topic_word_count.cc")) return 2;
  if (f.nameservers.empty()) f.nameservers = client::DefaultNameservers();

  if (absl::Status s = brook::examples::EnsureTopics(
          f.nameservers, {{f.input, f.partitions}, {f.output, f.partitions}});
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }

  if (f.sentences > 0) {
    auto producer = brook::examples::CountingProducer::Create(f.nameservers);
    if (!producer.ok()) {
      std::fprintf(stderr, "producer: %s\n", producer.status().ToString().c_str());
      return 1;
    }
    uint64_t seed =
        static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    for (auto& s : brook::examples::MakeSentences(f.sentences, seed)) {
      client::ProducerRecord r;
      r.topic = f.input;
      r.value = std::move(s);
      (*producer)->Send(std::move(r));
    }
    absl::Status s = (*producer)->Close();
    if (!s.ok()) {
      std::fprintf(stderr, "producing sentences: %s\n", s.ToString().c_str());
      return 1;
    }
    std::fprintf(stderr, "produced %d sentences to %s\n", f.sentences, f.input.c_str());
  }

  // Optional admin server for /metrics.
  boost::asio::io_context io;
  std::unique_ptr<brook::http::AdminServer> admin_server;
  std::thread io_thread;
  auto work = boost::asio::make_work_guard(io);
  if (!f.admin.empty()) {
    admin_server = std::make_unique<brook::http::AdminServer>(io);
    absl::Status s = admin_server->Listen(f.admin);
    if (!s.ok()) {
      std::fprintf(stderr, "admin server: %s\n", s.ToString().c_str());
      return 1;
    }
    std::fprintf(stderr, "metrics at http://%s/metrics (port %u)\n", f.admin.c_str(),
                 admin_server->port());
    io_thread = std::thread([&io] { io.run(); });
  }

  TopicSpoutOptions so;
  so.topic = f.input;
  so.group_id = f.group;
  so.nameservers = f.nameservers;
  TopicBoltOptions bo;
  bo.topic = f.output;
  bo.nameservers = f.nameservers;
  bo.key_field = "word";
  bo.value_field = "count";
  TopicStateOptions state;
  state.nameservers = f.nameservers;

  TopologyBuilder b;
  b.set_spout("sentences", TopicSpout(so), f.parallelism);
  b.set_bolt("split", FlatMapBolt(Fields{"word"}, SplitWords), f.parallelism)
      .shuffle_grouping("sentences");
  b.set_bolt(
       "count", [] { return std::make_unique<CountBolt>(); }, f.parallelism)
      .fields_grouping("split", Fields{"word"});
  // Fields grouping keeps each word's counts in order on one producer.
  b.set_bolt("write", TopicBolt(bo), f.parallelism).fields_grouping("count", Fields{"word"});

  Config config;
  config.acking = true;
  config.max_spout_pending = 500;
  config.message_timeout = 30s;
  config.state_backend = TopicStateBackend(state);

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  LocalCluster cluster;
  absl::Status s = cluster.Submit(f.name, config, b.build());
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "topology %s running: %s -> split -> count -> %s\n", f.name.c_str(),
               f.input.c_str(), f.output.c_str());

  int rc = 0;
  if (f.forever) {
    while (!g_stop) std::this_thread::sleep_for(50ms);
  } else {
    // What the counts must reach: every word of the whole input topic.
    std::map<std::string, int64_t> expected;
    s = ReadWholeTopic(f.nameservers, f.input, [&](const client::ConsumerRecord& r) {
      std::string v = r.value.value_or("");
      size_t i = 0;
      while (i < v.size()) {
        while (i < v.size() && v[i] == ' ') ++i;
        size_t j = i;
        while (j < v.size() && v[j] != ' ') ++j;
        if (j > i) ++expected[v.substr(i, j - i)];
        i = j;
      }
    });
    if (!s.ok()) {
      std::fprintf(stderr, "reading %s: %s\n", f.input.c_str(), s.ToString().c_str());
      rc = 1;
    }
    // Follow the counts topic until every word got there.
    client::ConsumerConfig cc;
    cc.nameservers = f.nameservers;
    cc.auto_offset_reset = client::OffsetReset::kEarliest;
    cc.enable_auto_commit = false;
    auto consumer = client::Consumer::Create(cc);
    absl::StatusOr<int32_t> n = consumer.ok() ? (*consumer)->PartitionCount(f.output)
                                              : absl::StatusOr<int32_t>(consumer.status());
    if (rc == 0 && n.ok()) {
      std::vector<client::TopicPartition> tps;
      for (int32_t p = 0; p < *n; ++p) tps.push_back({f.output, p});
      (void)(*consumer)->Assign(tps);
      (void)(*consumer)->SeekToBeginning(tps);
      std::map<std::string, int64_t> counts;
      auto reached = [&] {
        for (const auto& [w, c] : expected) {
          auto it = counts.find(w);
          if (it == counts.end() || it->second < c) return false;
        }
        return true;
      };
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f.timeout_s);
      while (!reached() && !g_stop && std::chrono::steady_clock::now() < deadline) {
        auto records = (*consumer)->Poll(200ms);
        if (!records.ok()) continue;
        for (const auto& r : *records) {
          int64_t c = std::atoll(r.value.value_or("0").c_str());
          int64_t& m = counts[r.key.value_or("")];
          m = std::max(m, c);
        }
      }
      (*consumer)->Close();
      bool exact = true;
      std::vector<std::pair<int64_t, std::string>> top;
      for (const auto& [w, c] : expected) {
        top.emplace_back(counts[w], w);
        if (counts[w] != c) exact = false;
      }
      std::sort(top.rbegin(), top.rend());
      for (size_t i = 0; i < top.size() && i < 10; ++i) {
        std::printf("%-10s %lld (expected %lld)\n", top[i].second.c_str(),
                    static_cast<long long>(top[i].first),
                    static_cast<long long>(expected[top[i].second]));
      }
      if (!reached()) {
        std::printf("FAILED: the counts did not reach the expected values within %d s\n",
                    f.timeout_s);
        rc = 1;
      } else {
        std::printf("OK: %zu words counted %s\n", expected.size(),
                    exact ? "exactly" : "at least (records replayed after a crash count twice)");
      }
    } else if (rc == 0) {
      std::fprintf(stderr, "reading %s: %s\n", f.output.c_str(), n.status().ToString().c_str());
      rc = 1;
    }
  }
  s = cluster.Stop(30s);
  if (!s.ok()) std::fprintf(stderr, "stop: %s\n", s.ToString().c_str());
  ComponentStats st = cluster.Stats("count");
  std::fprintf(stderr, "count bolt: executed %llu, acked %llu, failed %llu\n",
               static_cast<unsigned long long>(st.executed),
               static_cast<unsigned long long>(st.acked),
               static_cast<unsigned long long>(st.failed));
  if (admin_server) {
    admin_server->Stop();
    work.reset();
    io.stop();
    io_thread.join();
  }
  return rc;
}
