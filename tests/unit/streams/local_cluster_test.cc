// LocalCluster end to end in one process: groupings, the acker over real
// tuple trees, timeouts and replay, backpressure, ticks, throwing bolts,
// graceful stop, metrics, and an exact word count.
#include "brook/streams/local_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include "absl/strings/str_split.h"
#include "brook/streams/helpers.h"
#include "common/http/metrics.h"
#include "tests/unit/streams/test_components.h"

namespace brook::streams {
namespace {

using namespace std::chrono_literals;
using testing::ListSpoutFactory;
using testing::ListState;
using testing::Recorder;
using testing::RecordingBoltFactory;
using testing::WaitFor;

std::shared_ptr<ListState> Items(int n, int keys = 0) {
  auto s = std::make_shared<ListState>();
  for (int i = 0; i < n; ++i) s->items.push_back({Value(keys ? i % keys : i)});
  return s;
}

std::vector<int> Tasks(const std::shared_ptr<Recorder>& r) {
  std::lock_guard<std::mutex> l(r->mu);
  std::vector<int> t;
  for (const auto& [task, v] : r->seen) t.push_back(task);
  return t;
}

TEST(LocalCluster, FieldsGroupingSendsEachKeyToOneTask) {
  auto spout = Items(2000, /*keys=*/50);
  auto rec = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("r", RecordingBoltFactory(rec), 4).fields_grouping("s", Fields{"v"});
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("fields", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 2000; }));
  ASSERT_TRUE(cluster.Stop().ok());
  std::map<int64_t, std::set<int>> tasks_of_key;
  std::set<int> used;
  for (const auto& [task, v] : rec->seen) {
    tasks_of_key[v[0].as_int64()].insert(task);
    used.insert(task);
  }
  EXPECT_EQ(rec->seen.size(), 2000u);
  EXPECT_EQ(tasks_of_key.size(), 50u);
  for (const auto& [key, tasks] : tasks_of_key) EXPECT_EQ(tasks.size(), 1u) << "key " << key;
  EXPECT_GE(used.size(), 3u);  // 50 keys over 4 tasks use more than one
}

TEST(LocalCluster, AllGroupingReachesEveryTask) {
  auto spout = Items(100);
  auto rec = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("r", RecordingBoltFactory(rec), 3).all_grouping("s");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("all", Config{}, b.build()).ok());
  // A spout tuple completes only when all three copies are acked.
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 100; }));
  ASSERT_TRUE(cluster.Stop().ok());
  std::map<int, int> per_task;
  for (int t : Tasks(rec)) ++per_task[t];
  ASSERT_EQ(per_task.size(), 3u);
  for (const auto& [t, n] : per_task) EXPECT_EQ(n, 100) << "task " << t;
  EXPECT_EQ(cluster.Stats("s").emitted, 300u);
}

TEST(LocalCluster, GlobalGroupingGoesToLowestTask) {
  auto spout = Items(200);
  auto rec = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout), 2);  // the two tasks share the list
  b.set_bolt("r", RecordingBoltFactory(rec), 3).global_grouping("s");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("global", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return rec->size() == 200; }));
  ASSERT_TRUE(cluster.Stop().ok());
  // Task ids: s = 0, 1; r = 2, 3, 4.
  for (int t : Tasks(rec)) EXPECT_EQ(t, 2);
}

// Emits (target, i) with emit_direct to target = tasks of "r"[i % 3]; every
// 10th tuple goes to a task that does not subscribe and must be dropped.
class DirectSpout : public ISpout {
 public:
  void open(const TopologyContext& ctx, SpoutOutputCollector* c) override {
    c_ = c;
    targets_ = ctx.component_tasks("r");
  }
  void next_tuple() override {
    if (i_ >= 300) return;
    int target = (i_ % 10 == 9) ? 0 /* the spout itself */ : targets_[i_ % 3];
    c_->emit_direct(target, "d", {Value(target), Value(i_)}, std::nullopt);
    ++i_;
  }
  void declare_outputs(OutputDeclarer& d) override {
    d.declare_stream("d", Fields{"target", "i"}, /*direct=*/true);
  }

 private:
  SpoutOutputCollector* c_ = nullptr;
  std::vector<int> targets_;
  int i_ = 0;
};

TEST(LocalCluster, DirectGroupingGoesToTheChosenTask) {
  auto rec = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", [] { return std::make_unique<DirectSpout>(); });
  b.set_bolt("r", RecordingBoltFactory(rec), 3).direct_grouping("s", "d");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("direct", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return rec->size() == 270; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(rec->seen.size(), 270u);
  for (const auto& [task, v] : rec->seen) EXPECT_EQ(task, v[0].as_int64());
  EXPECT_EQ(cluster.Stats("s").dropped, 30u);
}

TEST(LocalCluster, ShuffleAndLocalOrShuffleSpreadEvenly) {
  auto spout = Items(3000);
  auto shuffled = std::make_shared<Recorder>();
  auto local = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("a", RecordingBoltFactory(shuffled), 3).shuffle_grouping("s");
  b.set_bolt("b", RecordingBoltFactory(local), 2).local_or_shuffle_grouping("s");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("shuffle", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 3000; }));
  ASSERT_TRUE(cluster.Stop().ok());
  std::map<int, int> a, l;
  for (int t : Tasks(shuffled)) ++a[t];
  for (int t : Tasks(local)) ++l[t];
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(l.size(), 2u);
  for (const auto& [t, n] : a) EXPECT_NEAR(n, 1000, 100) << "task " << t;
  for (const auto& [t, n] : l) EXPECT_NEAR(n, 1500, 150) << "task " << t;
}

// Splits "a b c" into anchored words; the sink acks them.
BoltFactory Splitter() {
  return FlatMapBolt(Fields{"word"}, [](const Tuple& t, const Emit& emit) {
    for (auto w : absl::StrSplit(t.get_string("v"), ' ', absl::SkipEmpty())) {
      emit({Value(std::string(w.data(), w.size()))});
    }
  });
}

TEST(LocalCluster, AckerCompletesFannedOutTreesOnlyWhenAllLeavesAreAcked) {
  auto spout = std::make_shared<ListState>();
  for (int i = 0; i < 50; ++i) spout->items.push_back({Value("x y z")});
  auto rec = std::make_shared<Recorder>();
  std::atomic<bool> release{false};
  // The sink holds every "z" until released, and acks the held ones on a tick.
  auto held = std::make_shared<std::vector<Tuple>>();
  auto hook = [&release, held](const Tuple& t, OutputCollector* c) {
    if (t.get_string("word") == "z" && !release.load()) {
      held->push_back(t);
      return false;
    }
    (void)c;
    return true;
  };
  class ReleasingBolt : public testing::RecordingBolt {
   public:
    ReleasingBolt(std::shared_ptr<Recorder> r, Hook h, std::atomic<bool>* release,
                  std::shared_ptr<std::vector<Tuple>> held)
        : RecordingBolt(std::move(r), std::move(h)), release_(release), held_(std::move(held)) {}
    void prepare(const TopologyContext& ctx, OutputCollector* c) override {
      c_ = c;
      RecordingBolt::prepare(ctx, c);
    }
    void execute(const Tuple& t) override {
      if (t.is_tick() && release_->load()) {
        for (const auto& h : *held_) c_->ack(h);
        held_->clear();
      }
      RecordingBolt::execute(t);
    }

   private:
    std::atomic<bool>* release_;
    std::shared_ptr<std::vector<Tuple>> held_;
    OutputCollector* c_ = nullptr;
  };
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("split", Splitter(), 2).shuffle_grouping("s");
  b.set_bolt("sink", [=, &release] {
     return std::make_unique<ReleasingBolt>(rec, hook, &release, held);
   }).shuffle_grouping("split");
  Config config;
  config.tick_intervals["sink"] = 5ms;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("trees", config, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return rec->size() == 100; }));  // every x and y
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(spout->num_acked(), 0u);  // every tree still misses its z
  EXPECT_EQ(cluster.PendingTrees(), 50u);
  release = true;
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 50; }));
  EXPECT_EQ(spout->num_failed(), 0u);
  EXPECT_EQ(cluster.PendingTrees(), 0u);
  ASSERT_TRUE(cluster.Stop().ok());
  std::set<MessageId> ids(spout->acked.begin(), spout->acked.end());
  EXPECT_EQ(ids.size(), 50u);
}

TEST(LocalCluster, FailOfAnyTupleFailsTheSpoutTuple) {
  auto spout = std::make_shared<ListState>();
  for (int i = 0; i < 100; ++i) spout->items.push_back({Value(i % 2 ? "ok bad" : "ok ok")});
  auto rec = std::make_shared<Recorder>();
  auto hook = [](const Tuple& t, OutputCollector* c) {
    if (t.get_string("word") == "bad") {
      c->fail(t);
      return false;
    }
    return true;
  };
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("split", Splitter(), 2).shuffle_grouping("s");
  b.set_bolt("sink", RecordingBoltFactory(rec, hook), 2).shuffle_grouping("split");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("fail", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() + spout->num_failed() == 100; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(spout->acked.size(), 50u);
  EXPECT_EQ(spout->failed.size(), 50u);
  for (MessageId id : spout->failed) EXPECT_EQ(id % 2, 1u);
  for (MessageId id : spout->acked) EXPECT_EQ(id % 2, 0u);
  EXPECT_EQ(cluster.Stats("sink").failed, 50u);
  EXPECT_EQ(cluster.Stats("s").failed, 50u);
}

TEST(LocalCluster, TimeoutFailsAndTheSpoutReplays) {
  auto spout = Items(20);
  spout->replay = true;
  auto rec = std::make_shared<Recorder>();
  // The first delivery of every value is dropped without an ack.
  auto seen = std::make_shared<std::set<int64_t>>();
  auto hook = [seen](const Tuple& t, OutputCollector*) {
    return !seen->insert(t.get(0).as_int64()).second;
  };
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("sink", RecordingBoltFactory(rec, hook)).shuffle_grouping("s");
  Config config;
  config.message_timeout = 100ms;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("timeout", config, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 20; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(spout->failed.size(), 20u);  // each timed out once, then was replayed
  EXPECT_EQ(rec->seen.size(), 20u);
  std::set<MessageId> ids(spout->acked.begin(), spout->acked.end());
  EXPECT_EQ(ids.size(), 20u);
}

TEST(LocalCluster, ThrowingBoltFailsItsTupleAndKeepsRunning) {
  auto spout = Items(200);
  auto rec = std::make_shared<Recorder>();
  auto hook = [](const Tuple& t, OutputCollector*) -> bool {
    if (t.get(0).as_int64() % 10 == 3) throw std::runtime_error("bad input");
    if (t.get(0).as_int64() % 10 == 7) (void)t.get(0).as_string();  // wrong type: throws
    return true;
  };
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("sink", RecordingBoltFactory(rec, hook), 2).shuffle_grouping("s");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("throw", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() + spout->num_failed() == 200; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(spout->failed.size(), 40u);
  EXPECT_EQ(spout->acked.size(), 160u);
  EXPECT_EQ(cluster.Stats("sink").exceptions, 40u);
  EXPECT_EQ(rec->seen.size(), 160u);
}

TEST(LocalCluster, SlowBoltBoundsQueueDepthAndInFlightTuples) {
  auto spout = Items(10);
  spout->unbounded = true;
  spout->with_ids = false;  // untracked: only the queues hold the spout back
  auto rec = std::make_shared<Recorder>();
  auto hook = [](const Tuple&, OutputCollector*) {
    std::this_thread::sleep_for(200us);
    return true;
  };
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("slow", RecordingBoltFactory(rec, hook)).shuffle_grouping("s");
  Config config;
  config.queue_capacity = 16;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("backpressure", config, b.build()).ok());
  uint64_t max_depth = 0;
  for (int i = 0; i < 150; ++i) {
    max_depth = std::max(max_depth, cluster.Stats("slow").queue_depth);
    std::this_thread::sleep_for(2ms);
  }
  auto slow = cluster.Stats("slow");
  auto s = cluster.Stats("s");  // read second: emitted only grows
  EXPECT_GT(slow.executed, 100u);
  // capacity + one emitter buffer (64) may sit in the queue; one more buffer
  // and one executing batch are in flight. Without backpressure the spout
  // would be hundreds of thousands ahead.
  EXPECT_LE(max_depth, 16u + 64u);
  EXPECT_LE(static_cast<int64_t>(s.emitted) - static_cast<int64_t>(slow.executed),
            16 + 64 + 64 + 256);
  ASSERT_TRUE(cluster.Stop(2s).ok());
}

TEST(LocalCluster, MaxSpoutPendingBoundsUnackedTuples) {
  auto spout = Items(10);
  spout->unbounded = true;
  auto rec = std::make_shared<Recorder>();
  auto hook = [](const Tuple&, OutputCollector*) {
    std::this_thread::sleep_for(100us);
    return true;
  };
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("slow", RecordingBoltFactory(rec, hook)).shuffle_grouping("s");
  Config config;
  config.max_spout_pending = 7;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("pending", config, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() > 200; }));
  ASSERT_TRUE(cluster.Stop().ok());
  std::lock_guard<std::mutex> l(spout->mu);
  EXPECT_LE(spout->max_pending_seen, 7);
  EXPECT_GE(spout->max_pending_seen, 1);
  EXPECT_EQ(spout->pending(), 0);  // graceful stop drained every tree
}

TEST(LocalCluster, TickTuplesArriveAtTheConfiguredInterval) {
  auto spout = Items(1);
  auto rec = std::make_shared<Recorder>();
  auto quiet = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("ticked", RecordingBoltFactory(rec), 2).shuffle_grouping("s");
  b.set_bolt("quiet", RecordingBoltFactory(quiet)).shuffle_grouping("s");
  Config config;
  config.tick_intervals["ticked"] = 20ms;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("ticks", config, b.build()).ok());
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(cluster.Stop().ok());
  double elapsed =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  // Two tasks, one tick each per 20 ms: at most elapsed/20 + 1 each.
  EXPECT_LE(rec->ticks, 2 * (static_cast<int>(elapsed / 20) + 1));
  EXPECT_GE(rec->ticks, 2 * 5);
  EXPECT_EQ(quiet->ticks, 0);
  EXPECT_EQ(rec->seen.size(), 1u);
}

TEST(LocalCluster, GracefulStopDrainsAndClosesEverything) {
  auto spout = std::make_shared<ListState>();
  for (int i = 0; i < 2000; ++i) spout->items.push_back({Value("a b c d")});
  auto rec = std::make_shared<Recorder>();
  auto hook = [](const Tuple&, OutputCollector*) {
    std::this_thread::sleep_for(5us);
    return true;
  };
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("split", Splitter(), 2).shuffle_grouping("s");
  b.set_bolt("sink", RecordingBoltFactory(rec, hook), 2).shuffle_grouping("split");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("drain", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return rec->size() > 100; }));
  ASSERT_TRUE(cluster.Stop(10s).ok());
  EXPECT_FALSE(cluster.running());
  std::lock_guard<std::mutex> l(spout->mu);
  EXPECT_TRUE(spout->opened);
  EXPECT_TRUE(spout->closed);
  EXPECT_TRUE(rec->cleaned_up);
  EXPECT_EQ(spout->pending(), 0);  // every emitted tree was acked before close
  EXPECT_EQ(static_cast<int>(spout->acked.size()), spout->emitted);
  EXPECT_EQ(rec->seen.size(), 4 * spout->acked.size());
}

TEST(LocalCluster, AckingOffAcksAtEmitAndStillDelivers) {
  auto spout = Items(500);
  auto rec = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("r",
             RecordingBoltFactory(rec,
                                  [](const Tuple& t, OutputCollector*) {
                                    EXPECT_FALSE(t.tracked());
                                    return true;
                                  }),
             2)
      .shuffle_grouping("s");
  Config config;
  config.acking = false;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("noack", config, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return rec->size() == 500; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(spout->acked.size(), 500u);
  EXPECT_EQ(cluster.PendingTrees(), 0u);
}

TEST(LocalCluster, WordCountIsExactWithAckingAndNoFaults) {
  const std::vector<std::string> sentences = {
      "the cow jumped over the moon", "an apple a day keeps the doctor away",
      "four score and seven years ago", "snow white and the seven dwarfs",
      "i am at two with nature"};
  auto spout = std::make_shared<ListState>();
  std::map<std::string, int64_t> expected;
  for (int i = 0; i < 1000; ++i) {
    const auto& s = sentences[i % sentences.size()];
    spout->items.push_back({Value(s)});
    for (auto w : absl::StrSplit(s, ' ')) ++expected[std::string(w.data(), w.size())];
  }
  auto counts = std::make_shared<std::map<std::string, int64_t>>();
  auto mu = std::make_shared<std::mutex>();
  TopologyBuilder b;
  b.set_spout("sentences", ListSpoutFactory(spout));
  b.set_bolt("split", Splitter(), 2).shuffle_grouping("sentences");
  b.set_bolt("count",
             KeyedCountBolt({"word"}, /*emit_updates=*/true,
                            [counts, mu](const Values& k, const Value& v) {
                              std::lock_guard<std::mutex> l(*mu);
                              EXPECT_EQ(counts->count(k[0].as_string()), 0u);
                              (*counts)[k[0].as_string()] = v.as_int64();
                            }),
             3)
      .fields_grouping("split", Fields{"word"});
  auto rec = std::make_shared<Recorder>();
  b.set_bolt("updates", RecordingBoltFactory(rec)).shuffle_grouping("count");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("wordcount", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 1000; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(spout->failed.size(), 0u);
  EXPECT_EQ(*counts, expected);
  int64_t words = 0;
  for (const auto& [w, n] : expected) words += n;
  EXPECT_EQ(cluster.Stats("count").executed, static_cast<uint64_t>(words));
  EXPECT_EQ(rec->seen.size(), static_cast<size_t>(words));  // one update per word

  // The metrics reach the process registry that /metrics renders.
  std::string text = metrics::Registry::Global().RenderPrometheus();
  EXPECT_THAT(text,
              ::testing::HasSubstr(
                  "brook_streams_executed_total{topology=\"wordcount\",component=\"count\"}"));
  EXPECT_THAT(text, ::testing::HasSubstr("brook_streams_execute_latency_seconds_bucket"));
  EXPECT_THAT(text, ::testing::HasSubstr("brook_streams_queue_depth"));
}

TEST(LocalCluster, FilterAndMapHelpers) {
  auto spout = Items(100);
  auto rec = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout));
  b.set_bolt("even",
             FilterBolt(Fields{"v"}, [](const Tuple& t) { return t.get_int64("v") % 2 == 0; }))
      .shuffle_grouping("s");
  b.set_bolt("square", MapBolt(Fields{"v", "sq"},
                               [](const Tuple& t) -> Values {
                                 int64_t v = t.get_int64("v");
                                 return {Value(v), Value(v * v)};
                               }))
      .shuffle_grouping("even");
  b.set_bolt("r", RecordingBoltFactory(rec)).shuffle_grouping("square");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("helpers", Config{}, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 100; }));
  ASSERT_TRUE(cluster.Stop().ok());
  ASSERT_EQ(rec->seen.size(), 50u);
  for (const auto& [task, v] : rec->seen) {
    EXPECT_EQ(v[0].as_int64() % 2, 0);
    EXPECT_EQ(v[1].as_int64(), v[0].as_int64() * v[0].as_int64());
  }
}

// Emits i on stream "evens" or "odds"; tracked with id i.
class TwoStreamSpout : public ISpout {
 public:
  void open(const TopologyContext&, SpoutOutputCollector* c) override { c_ = c; }
  void next_tuple() override {
    if (i_ >= 100) return;
    c_->emit(i_ % 2 ? "odds" : "evens", {Value(i_)}, static_cast<MessageId>(i_));
    ++i_;
  }
  void declare_outputs(OutputDeclarer& d) override {
    d.declare_stream("evens", Fields{"n"});
    d.declare_stream("odds", Fields{"n"});
  }

 private:
  SpoutOutputCollector* c_ = nullptr;
  int i_ = 0;
};

TEST(LocalCluster, NamedStreamsReachOnlyTheirSubscribers) {
  auto evens = std::make_shared<Recorder>();
  auto both = std::make_shared<Recorder>();
  auto bad = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", [] { return std::make_unique<TwoStreamSpout>(); });
  b.set_bolt("evens", RecordingBoltFactory(evens)).shuffle_grouping("s", "evens");
  b.set_bolt("both", RecordingBoltFactory(both), 2)
      .fields_grouping("s", "evens", Fields{"n"})
      .shuffle_grouping("s", "odds");
  // Emits on a stream it never declared: every input fails, nothing is lost.
  b.set_bolt("bad", RecordingBoltFactory(bad,
                                         [](const Tuple& t, OutputCollector* c) {
                                           c->emit_to("nowhere", t, {Value(1)});
                                           return true;
                                         }))
      .shuffle_grouping("s", "odds");
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("streams", Config{}, b.build()).ok());
  EXPECT_EQ(cluster.Submit("again", Config{}, b.build()).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(WaitFor([&] { return cluster.Stats("s").acked + cluster.Stats("s").failed == 100; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(evens->seen.size(), 50u);
  for (const auto& [task, v] : evens->seen) EXPECT_EQ(v[0].as_int64() % 2, 0);
  EXPECT_EQ(both->seen.size(), 100u);
  EXPECT_EQ(bad->seen.size(), 0u);
  EXPECT_EQ(cluster.Stats("bad").exceptions, 50u);
  EXPECT_EQ(cluster.Stats("s").acked, 50u);   // the evens trees
  EXPECT_EQ(cluster.Stats("s").failed, 50u);  // every odd tree failed in "bad"
  // A new topology may run once the first has stopped.
  auto spout = Items(10);
  TopologyBuilder c;
  c.set_spout("s", ListSpoutFactory(spout));
  c.set_bolt("r", RecordingBoltFactory(std::make_shared<Recorder>())).shuffle_grouping("s");
  ASSERT_TRUE(cluster.Submit("second", Config{}, c.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 10; }));
  EXPECT_EQ(cluster.Stats("s").acked, 10u);
}

TEST(LocalCluster, OneThreadCannotDeadlockUnderBackpressure) {
  auto spout = std::make_shared<ListState>();
  for (int i = 0; i < 3000; ++i) spout->items.push_back({Value("a b c d e f g h")});
  auto rec = std::make_shared<Recorder>();
  TopologyBuilder b;
  b.set_spout("s", ListSpoutFactory(spout), 2);
  b.set_bolt("split", Splitter(), 2).shuffle_grouping("s");
  b.set_bolt("sink", RecordingBoltFactory(rec), 1).shuffle_grouping("split");
  Config config;
  config.queue_capacity = 1;
  config.max_spout_pending = 0;
  LocalCluster cluster(LocalClusterOptions{.threads = 1});
  ASSERT_TRUE(cluster.Submit("tiny", config, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 3000; }, 30s));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(rec->seen.size(), 3000u * 8u);  // the two spout tasks share the list
}

}  // namespace
}  // namespace brook::streams
