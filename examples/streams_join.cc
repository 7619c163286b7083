// A windowed join of two topics by key: topic spouts read "impressions" and
// "clicks"; a windowed bolt (event-time tumbling windows on the records'
// timestamps, fields-grouped by key so both sides of a key meet in one task)
// pairs every impression with every click of the same key in the same
// window; a topic bolt writes the pairs to "joined" (key = the key, value =
// "<impression> + <click>").
//
//   example-streams-join [--nameservers=127.0.0.1:9876] [--records=300]
//       [--keys=20] [--window_ms=1000] [--seconds=3] [--timeout=60]
//
// It creates the topics if missing, starts the topology, then produces
// --records impressions and as many clicks over --seconds (timestamps = send
// time), computes the expected pairs of this run and follows the joined
// topic until it has exactly those, prints a few and exits (0 on success).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
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

struct Flags {
  std::string nameservers;
  std::string left = "impressions";
  std::string right = "clicks";
  std::string output = "joined";
  int records = 300;
  int keys = 20;
  int window_ms = 1000;
  int seconds = 3;
  int timeout_s = 60;
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Pairs each impression with each click of the same key in the window. Both
// input streams have the topic spout's fields; the side is the source
// component. Each pair is anchored to its two inputs.
void JoinWindow(const Window& w, WindowEmitter& out) {
  std::map<std::string, std::pair<std::vector<const Tuple*>, std::vector<const Tuple*>>> by_key;
  for (const Tuple& t : w.tuples) {
    auto& sides = by_key[t.get_string("key")];
    (t.source_component() == "impressions" ? sides.first : sides.second).push_back(&t);
  }
  for (const auto& [key, sides] : by_key) {
    for (const Tuple* l : sides.first) {
      for (const Tuple* r : sides.second) {
        const Tuple anchors[] = {*l, *r};
        out.collector()->emit(std::string(kDefaultStream), anchors,
                              {Value(key), l->get("value"), r->get("value"), Value(w.start)});
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  brook::examples::ExampleFlags flags(argc, argv);
  flags.String("nameservers", &f.nameservers);
  flags.Int("records", &f.records);
  flags.Int("keys", &f.keys, 1);
  flags.Int("window_ms", &f.window_ms, 1);
  flags.Int("seconds", &f.seconds);
  flags.Int("timeout", &f.timeout_s);
  if (!flags.Done("streams_join.cc")) return 2;
  if (f.nameservers.empty()) f.nameservers = client::DefaultNameservers();
  if (absl::Status s =
          brook::examples::EnsureTopics(f.nameservers, {{f.left, 4}, {f.right, 4}, {f.output, 4}});
      !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }

  TopicSpoutOptions left;
  left.topic = f.left;
  left.group_id = "streams-join";
  left.nameservers = f.nameservers;
  TopicSpoutOptions right = left;
  right.topic = f.right;

  WindowOptions wo;
  wo.spec = WindowSpec::Tumbling(std::chrono::milliseconds(f.window_ms));
  wo.timestamp_field = "timestamp";
  wo.lag = 1000ms;  // covers the skew between the two spouts
  wo.output = Fields{"key", "impression", "click", "window"};

  TopicBoltOptions bo;
  bo.topic = f.output;
  bo.nameservers = f.nameservers;
  bo.key_field = "key";
  bo.value_fn = [](const Tuple& t) {
    return std::optional<std::string>(t.get_string("impression") + " + " + t.get_string("click"));
  };

  TopologyBuilder b;
  b.set_spout("impressions", TopicSpout(left), 1);
  b.set_spout("clicks", TopicSpout(right), 1);
  b.set_bolt("join", WindowedBolt(wo, JoinWindow), 2)
      .fields_grouping("impressions", Fields{"key"})
      .fields_grouping("clicks", Fields{"key"});
  b.set_bolt("write", TopicBolt(bo), 1).shuffle_grouping("join");

  Config config;
  config.max_spout_pending = 20000;  // tuples wait in their window until it closes
  config.message_timeout = 60s;
  config.tick_intervals["join"] = 100ms;  // closes the last windows when input pauses
  LocalCluster cluster;
  absl::Status s = cluster.Submit("join", config, b.build());
  if (!s.ok()) {
    std::fprintf(stderr, "submit: %s\n", s.ToString().c_str());
    return 1;
  }

  // Produce this run's records (tagged with a run id) and work out the pairs
  // the join must find: per (window, key), impressions x clicks.
  const std::string run = std::to_string(NowMs());
  std::map<std::pair<int64_t, std::string>, std::pair<int, int>> cells;
  {
    auto producer = brook::examples::CountingProducer::Create(f.nameservers, 1ms);
    if (!producer.ok()) {
      std::fprintf(stderr, "producer: %s\n", producer.status().ToString().c_str());
      return 1;
    }
    const auto pause =
        std::chrono::microseconds(f.records > 0 ? f.seconds * 1000000LL / f.records : 0);
    for (int i = 0; i < f.records; ++i) {
      for (int side = 0; side < 2; ++side) {
        // Clicks are rarer and land on other keys than the impression just sent.
        const int key = side == 0 ? i % f.keys : (i * 7 + 3) % f.keys;
        if (side == 1 && i % 3 == 2) continue;
        client::ProducerRecord r;
        r.topic = side == 0 ? f.left : f.right;
        r.key = "user-" + std::to_string(key);
        r.value = (side == 0 ? "imp-" : "click-") + run + "-" + std::to_string(i);
        r.timestamp_ms = NowMs();
        const int64_t window = *r.timestamp_ms / f.window_ms * f.window_ms;
        auto& cell = cells[{window, *r.key}];
        (side == 0 ? cell.first : cell.second) += 1;
        (*producer)->Send(std::move(r));
      }
      std::this_thread::sleep_for(pause);
    }
    s = (*producer)->Close();
    if (!s.ok()) {
      std::fprintf(stderr, "producing: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  int64_t expected = 0;
  for (const auto& [k, c] : cells) expected += static_cast<int64_t>(c.first) * c.second;
  std::fprintf(stderr, "produced %d impressions and %d clicks over %d keys; expecting %lld pairs\n",
               f.records, f.records - f.records / 3, f.keys, static_cast<long long>(expected));

  // Follow the joined topic for this run's pairs.
  client::ConsumerConfig cc;
  cc.nameservers = f.nameservers;
  cc.enable_auto_commit = false;
  auto consumer = client::Consumer::Create(cc);
  int rc = 1;
  if (consumer.ok()) {
    std::vector<client::TopicPartition> tps;
    for (int32_t p = 0; p < 4; ++p) tps.push_back({f.output, p});
    (void)(*consumer)->Assign(tps);
    (void)(*consumer)->SeekToBeginning(tps);
    std::set<std::string> pairs;  // distinct pairs (a replay after a crash may repeat one)
    std::vector<std::string> sample;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(f.timeout_s);
    auto settle = std::chrono::steady_clock::time_point::max();
    while (std::chrono::steady_clock::now() < std::min(deadline, settle)) {
      auto records = (*consumer)->Poll(200ms);
      if (!records.ok()) continue;
      for (const auto& r : *records) {
        const std::string v = r.value.value_or("");
        if (v.find("imp-" + run) == std::string::npos) continue;
        if (pairs.insert(v).second && sample.size() < 5) sample.push_back(*r.key + ": " + v);
      }
      if (static_cast<int64_t>(pairs.size()) >= expected &&
          settle == std::chrono::steady_clock::time_point::max()) {
        settle = std::chrono::steady_clock::now() + 500ms;  // look for extra pairs a bit longer
      }
    }
    (*consumer)->Close();
    for (const auto& line : sample) std::printf("%s\n", line.c_str());
    if (static_cast<int64_t>(pairs.size()) == expected) {
      std::printf("OK: %zu joined pairs, as expected\n", pairs.size());
      rc = 0;
    } else {
      std::printf("FAILED: %zu joined pairs, expected %lld\n", pairs.size(),
                  static_cast<long long>(expected));
    }
  } else {
    std::fprintf(stderr, "consumer: %s\n", consumer.status().ToString().c_str());
  }
  s = cluster.Stop(10s);
  if (!s.ok()) std::fprintf(stderr, "stop: %s\n", s.ToString().c_str());
  return rc;
}
