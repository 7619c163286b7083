// Windowed bolts driven directly through the IBolt interface with a recording
// collector and an injected clock (deterministic, no sleeps), plus one
// LocalCluster run of a windowed top-N bolt.
#include "brook/streams/window.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "brook/streams/local_cluster.h"
#include "common/http/metrics.h"
#include "tests/unit/streams/test_components.h"

namespace brook::streams {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// Records emits, acks and fails; acking/failing moves the tuple's state as
// the runtime does, so repeats are ignored.
class TestCollector : public OutputCollector {
 public:
  struct Emitted {
    std::string stream;
    Values values;
    size_t anchors;
  };
  void emit(const std::string& stream, std::span<const Tuple> anchors, Values values) override {
    emitted.push_back({stream, std::move(values), anchors.size()});
  }
  void emit_direct(int, const std::string& stream, std::span<const Tuple> anchors,
                   Values values) override {
    emitted.push_back({stream, std::move(values), anchors.size()});
  }
  void ack(const Tuple& t) override {
    if (t.impl()->state != detail::TupleImpl::kPending) return;
    t.impl()->state = detail::TupleImpl::kAcked;
    acked.push_back(t.get(0).as_int64());
  }
  void fail(const Tuple& t) override {
    if (t.impl()->state != detail::TupleImpl::kPending) return;
    t.impl()->state = detail::TupleImpl::kFailed;
    failed.push_back(t.get(0).as_int64());
  }
  void post(std::function<void()> fn) override { fn(); }
  std::vector<Emitted> emitted;
  std::vector<int64_t> acked;  // field 0 of each acked tuple
  std::vector<int64_t> failed;
};

// One firing as seen by the window function: bounds, re-fire flag and the
// first field ("v") of each tuple.
struct Fired {
  int64_t start, end;
  bool refire;
  std::vector<int64_t> vs;
  bool operator==(const Fired&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Fired& f) {
  os << "[" << f.start << "," << f.end << ")" << (f.refire ? " refire" : "") << " {";
  for (auto v : f.vs) os << v << " ";
  return os << "}";
}

// A windowed bolt fed by hand. Input tuples have fields (v, ts); the window
// function records the firing and emits (window start, tuple count).
class Harness {
 public:
  explicit Harness(WindowOptions o, bool throw_in_fn = false) {
    o.output = Fields{"start", "n"};
    o.counters = counters;
    o.clock = [this] { return now; };
    auto fn = [this, throw_in_fn](const Window& w, WindowEmitter& out) {
      Fired f{w.start, w.end, w.refire, {}};
      for (const Tuple& t : w.tuples) f.vs.push_back(t.get_int64("v"));
      fired.push_back(f);
      if (throw_in_fn) throw std::runtime_error("boom");
      out.emit({Value(w.start), Value(static_cast<int64_t>(w.tuples.size()))});
    };
    EXPECT_TRUE(ValidateWindowOptions(o, fn).ok());
    bolt_ = WindowedBolt(std::move(o), fn)();
    context_ = std::make_unique<TopologyContext>(&config_, "w", 1, 0,
                                                 std::map<std::string, std::vector<int>>{});
    bolt_->prepare(*context_, &collector);
  }

  // Feeds (v, ts); ts defaults to v.
  void Feed(int64_t v, std::optional<int64_t> ts = std::nullopt) {
    auto impl = std::make_shared<detail::TupleImpl>();
    impl->values = {Value(v), Value(ts.value_or(v))};
    impl->stream = input_info_;
    bolt_->execute(Tuple(impl));
  }
  void Tick() {
    auto impl = std::make_shared<detail::TupleImpl>();
    impl->stream = tick_info_;
    bolt_->execute(Tuple(impl));
  }
  std::vector<Fired> TakeFired() { return std::exchange(fired, {}); }

  TestCollector collector;
  std::vector<Fired> fired;
  std::shared_ptr<WindowCounters> counters = std::make_shared<WindowCounters>();
  int64_t now = 1000;

 private:
  Config config_;
  std::unique_ptr<TopologyContext> context_;
  std::unique_ptr<IBolt> bolt_;
  std::shared_ptr<const detail::StreamInfo> input_info_ =
      std::make_shared<detail::StreamInfo>(detail::StreamInfo{"src", "default", Fields{"v", "ts"}});
  std::shared_ptr<const detail::StreamInfo> tick_info_ =
      std::make_shared<detail::StreamInfo>(detail::StreamInfo{"__system", "__tick", Fields{}});
};

WindowOptions EventTime(WindowSpec spec, std::chrono::milliseconds lag = 0ms,
                        std::chrono::milliseconds lateness = 0ms) {
  WindowOptions o;
  o.spec = spec;
  o.timestamp_field = "ts";
  o.lag = lag;
  o.allowed_lateness = lateness;
  return o;
}

TEST(WindowedBolt, CountTumbling) {
  WindowOptions o;
  o.spec = WindowSpec::TumblingCount(3);
  Harness h(o);
  for (int v = 0; v < 8; ++v) h.Feed(v);
  EXPECT_THAT(h.TakeFired(),
              ElementsAre(Fired{0, 3, false, {0, 1, 2}}, Fired{3, 6, false, {3, 4, 5}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(0, 1, 2, 3, 4, 5));  // 6, 7 still held
  ASSERT_EQ(h.collector.emitted.size(), 2u);
  EXPECT_EQ(h.collector.emitted[0].anchors, 3u);  // anchored to the window's tuples
  EXPECT_EQ(h.collector.emitted[1].values, (Values{Value(3), Value(3)}));
}

TEST(WindowedBolt, CountSliding) {
  WindowOptions o;
  o.spec = WindowSpec::SlidingCount(4, 2);
  Harness h(o);
  for (int v = 0; v < 6; ++v) h.Feed(v);
  EXPECT_THAT(h.TakeFired(),
              ElementsAre(Fired{0, 2, false, {0, 1}}, Fired{0, 4, false, {0, 1, 2, 3}},
                          Fired{2, 6, false, {2, 3, 4, 5}}));
  // The next window is [4, 8): 0..3 are in no further window.
  EXPECT_THAT(h.collector.acked, ElementsAre(0, 1, 2, 3));
  h.Feed(6);
  h.Feed(7);
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{4, 8, false, {4, 5, 6, 7}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(WindowedBolt, CountSlideLongerThanWindowAcksSkippedTuplesAtOnce) {
  WindowOptions o;
  o.spec = WindowSpec::SlidingCount(2, 3);  // windows [1,3), [4,6)
  Harness h(o);
  h.Feed(0);
  EXPECT_THAT(h.collector.acked, ElementsAre(0));
  for (int v = 1; v < 6; ++v) h.Feed(v);
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{1, 3, false, {1, 2}}, Fired{4, 6, false, {4, 5}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(0, 1, 2, 3, 4, 5));
}

TEST(WindowedBolt, EventTimeTumbling) {
  Harness h(EventTime(WindowSpec::Tumbling(10ms)));
  for (int v : {1, 5, 9}) h.Feed(v);
  EXPECT_THAT(h.fired, IsEmpty());
  EXPECT_THAT(h.collector.acked, IsEmpty());
  h.Feed(10);  // watermark 10 reaches the end of [0, 10)
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 10, false, {1, 5, 9}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(1, 5, 9));
  h.Feed(15);
  h.Feed(35);  // [10,20) fires; the empty [20,30) does not
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{10, 20, false, {10, 15}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(1, 5, 9, 10, 15));
  EXPECT_EQ(h.counters->fired.load(), 2u);
}

TEST(WindowedBolt, EventTimeSliding) {
  Harness h(EventTime(WindowSpec::Sliding(10ms, 5ms)));
  for (int v : {3, 7}) h.Feed(v);
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{-5, 5, false, {3}}));
  h.Feed(12);
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 10, false, {3, 7}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(3));
  h.Feed(20);
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{5, 15, false, {7, 12}}, Fired{10, 20, false, {12}}));
  // Each tuple is acked when its last window ([0,10) for 3, [5,15) for 7,
  // [10,20) for 12) has fired; 20 is still in open windows.
  EXPECT_THAT(h.collector.acked, ElementsAre(3, 7, 12));
}

TEST(WindowedBolt, EventTimeSlideLongerThanWindowAcksSkippedTuplesAtOnce) {
  Harness h(EventTime(WindowSpec::Sliding(5ms, 10ms)));  // [0,5), [10,15), ...
  h.Feed(3);
  h.Feed(7);  // in no window: acked at once; watermark 7 fires [0,5)
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 5, false, {3}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(7, 3));
}

TEST(WindowedBolt, OutOfOrderWithinLagLandsInTheRightWindows) {
  Harness h(EventTime(WindowSpec::Tumbling(10ms), /*lag=*/5ms));
  h.Feed(2);
  h.Feed(11);  // watermark 6
  h.Feed(8);
  h.Feed(14);  // watermark 9
  h.Feed(7);   // older than the newest by 7 ms, but [0,10) has not fired yet
  EXPECT_THAT(h.fired, IsEmpty());
  h.Feed(16);  // watermark 11
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 10, false, {2, 7, 8}}));
  h.Feed(25);  // watermark 20
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{10, 20, false, {11, 14, 16}}));
  EXPECT_EQ(h.counters->refired.load() + h.counters->late_dropped.load(), 0u);
}

TEST(WindowedBolt, LateWithinAllowedLatenessRefires) {
  Harness h(EventTime(WindowSpec::Tumbling(10ms), 0ms, /*lateness=*/5ms));
  h.Feed(1);
  h.Feed(12);  // watermark 12: [0,10) fires, kept until watermark 15
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 10, false, {1}}));
  EXPECT_THAT(h.collector.acked, IsEmpty());
  h.Feed(4);  // late, within lateness
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 10, true, {1, 4}}));
  EXPECT_EQ(h.counters->refired.load(), 1u);
  EXPECT_EQ(h.counters->late_accepted.load(), 1u);
  EXPECT_THAT(h.collector.acked, IsEmpty());
  h.Feed(15);  // watermark 15 = end + lateness: [0,10) is purged
  EXPECT_THAT(h.collector.acked, ElementsAre(1, 4));
  EXPECT_THAT(h.fired, IsEmpty());
  h.Feed(3);  // too late: no late stream, so dropped (and acked)
  EXPECT_THAT(h.fired, IsEmpty());
  EXPECT_EQ(h.counters->late_dropped.load(), 1u);
  EXPECT_THAT(h.collector.acked, ElementsAre(1, 4, 3));
  EXPECT_EQ(h.collector.emitted.size(), 2u);  // the two firings only
}

TEST(WindowedBolt, TooLateGoesToLateStream) {
  WindowOptions o = EventTime(WindowSpec::Tumbling(10ms), 0ms, 2ms);
  o.late_stream = "late";
  o.late_fields = Fields{"v", "ts"};
  Harness h(o);
  h.Feed(5);
  h.Feed(20);  // [0,10) fired and purged (20 >= 10 + 2)
  h.TakeFired();
  h.Feed(100, /*ts=*/9);
  EXPECT_THAT(h.fired, IsEmpty());
  ASSERT_EQ(h.collector.emitted.size(), 2u);
  EXPECT_EQ(h.collector.emitted[1].stream, "late");
  EXPECT_EQ(h.collector.emitted[1].values, (Values{Value(100), Value(9)}));
  EXPECT_EQ(h.collector.emitted[1].anchors, 1u);
  EXPECT_EQ(h.counters->late_emitted.load(), 1u);
  EXPECT_EQ(h.counters->late_dropped.load(), 0u);
  EXPECT_THAT(h.collector.acked, ElementsAre(5, 100));
}

TEST(WindowedBolt, PartlyLateTupleGoesToTheWindowsStillOpen) {
  // [0,10) and [5,15); ts 8 arrives at watermark 12: [0,10) is purged
  // (no lateness), [5,15) still open.
  Harness h(EventTime(WindowSpec::Sliding(10ms, 5ms)));
  h.Feed(6);
  h.Feed(12);
  h.TakeFired();
  h.Feed(8);
  EXPECT_EQ(h.counters->late_dropped.load(), 0u);
  EXPECT_EQ(h.counters->late_partial.load(), 1u);
  h.Feed(15);
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{5, 15, false, {6, 8, 12}}));
}

TEST(WindowedBolt, TicksAdvanceWatermarkWithoutNewTuples) {
  Harness h(EventTime(WindowSpec::Tumbling(10ms), /*lag=*/5ms));
  h.Feed(3);
  h.Feed(8);  // watermark 3
  h.now += 2;
  h.Tick();  // 8 + 2 - 5 = 5
  EXPECT_THAT(h.fired, IsEmpty());
  h.now += 5;
  h.Tick();  // 8 + 7 - 5 = 10
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 10, false, {3, 8}}));
  EXPECT_THAT(h.collector.acked, ElementsAre(3, 8));
}

TEST(WindowedBolt, TicksDoNotAdvanceWatermarkWhenDisabled) {
  WindowOptions o = EventTime(WindowSpec::Tumbling(10ms), 5ms);
  o.ticks_advance_watermark = false;
  Harness h(o);
  h.Feed(8);
  h.now += 1000;
  h.Tick();
  EXPECT_THAT(h.fired, IsEmpty());
  h.Feed(15);
  EXPECT_THAT(h.TakeFired(), ElementsAre(Fired{0, 10, false, {8}}));
}

TEST(WindowedBolt, AckOnlyAfterLastContainingWindowClosed) {
  // ts 7 is in [0,10) and [5,15); with lateness 3 its state lives until the
  // watermark reaches 18.
  Harness h(EventTime(WindowSpec::Sliding(10ms, 5ms), 0ms, 3ms));
  h.Feed(7);
  h.Feed(10);  // fires [0,10)
  h.Feed(13);  // [0,10) purged, 7 still in [5,15)
  EXPECT_THAT(h.collector.acked, IsEmpty());
  h.Feed(15);  // fires [5,15)
  h.Feed(17);
  EXPECT_THAT(h.collector.acked, IsEmpty());
  h.Feed(18);
  EXPECT_THAT(h.collector.acked, ElementsAre(7));
  EXPECT_THAT(h.TakeFired(),
              ElementsAre(Fired{0, 10, false, {7}}, Fired{5, 15, false, {7, 10, 13}}));
}

TEST(WindowedBolt, ThrowingFunctionFailsTheWindowsTuples) {
  WindowOptions o;
  o.spec = WindowSpec::TumblingCount(2);
  Harness h(o, /*throw_in_fn=*/true);
  for (int v = 0; v < 4; ++v) h.Feed(v);
  EXPECT_EQ(h.fired.size(), 2u);
  EXPECT_THAT(h.collector.failed, ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(h.collector.acked, IsEmpty());  // acks after a fail are ignored
  EXPECT_EQ(h.counters->errors.load(), 2u);
}

TEST(WindowedBolt, TupleWithoutTimestampThrowsSoTheRuntimeFailsIt) {
  WindowOptions o = EventTime(WindowSpec::Tumbling(10ms));
  o.timestamp_field = "event_time";  // not a field of the input
  Harness h(o);
  EXPECT_THROW(h.Feed(1), std::out_of_range);
  EXPECT_THAT(h.fired, IsEmpty());
}

TEST(WindowedBolt, InvalidOptionsAreRefused) {
  WindowFunction fn = [](const Window&, WindowEmitter&) {};
  WindowOptions o;
  o.spec = WindowSpec::TumblingCount(0);
  EXPECT_FALSE(ValidateWindowOptions(o, fn).ok());
  o.spec = WindowSpec::Tumbling(10ms);
  o.lag = -1ms;
  EXPECT_FALSE(ValidateWindowOptions(o, fn).ok());
  o.lag = 0ms;
  o.late_stream = "late";
  EXPECT_FALSE(ValidateWindowOptions(o, fn).ok());  // no late fields
  o.late_fields = Fields{"v"};
  EXPECT_TRUE(ValidateWindowOptions(o, fn).ok());
  EXPECT_FALSE(ValidateWindowOptions(o, nullptr).ok());

  // And through Submit: prepare refuses them.
  auto spout = std::make_shared<testing::ListState>();
  TopologyBuilder b;
  b.set_spout("s", testing::ListSpoutFactory(spout));
  o.lag = -1ms;
  b.set_bolt("w", WindowedBolt(o, fn)).shuffle_grouping("s");
  LocalCluster cluster(LocalClusterOptions{.threads = 1});
  absl::Status s = cluster.Submit("bad-window", Config{}, b.build());
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("lag"));
}

// A graceful stop while an event-time window still holds tuples: ticks go on
// during the drain, move the watermark past them, the window fires and its
// tuples are acked, so Stop returns OK with nothing left pending.
TEST(WindowedBolt, StopDrainsTuplesHeldInWindows) {
  auto spout = std::make_shared<testing::ListState>();
  spout->fields = Fields{"word", "ts"};
  for (int i = 0; i < 50; ++i) spout->items.push_back({Value("w"), Value(int64_t{i})});
  auto rec = std::make_shared<testing::Recorder>();
  WindowOptions o;
  o.spec = WindowSpec::Tumbling(1000ms);  // every tuple is in window [0, 1000)
  o.timestamp_field = "ts";
  o.lag = 100ms;
  o.output = Fields{"start", "count"};
  TopologyBuilder b;
  b.set_spout("words", testing::ListSpoutFactory(spout));
  b.set_bolt("count", WindowedBolt(o, [](const Window& w, WindowEmitter& out) {
              out.emit({Value(w.start), Value(static_cast<int64_t>(w.tuples.size()))});
            })).global_grouping("words");
  b.set_bolt("sink", testing::RecordingBoltFactory(rec)).shuffle_grouping("count");
  Config config;
  config.tick_intervals["count"] = 10ms;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("drain-windows", config, b.build()).ok());
  ASSERT_TRUE(testing::WaitFor([&] {
    std::lock_guard<std::mutex> l(spout->mu);
    return spout->emitted == 50;
  }));
  EXPECT_EQ(spout->num_acked(), 0u);  // held by the open window
  ASSERT_TRUE(cluster.Stop(std::chrono::seconds(10)).ok());
  EXPECT_EQ(spout->num_acked(), 50u);
  ASSERT_EQ(rec->seen.size(), 1u);
  EXPECT_EQ(rec->seen[0].second[1].as_int64(), 50);
}

// End to end: words with event times -> a 100 ms tumbling window counting
// words -> top 2 per window, with acking on. Ticks close the last window once
// the spout goes quiet; every spout tuple is acked only after its window.
TEST(WindowedBolt, TopNInLocalCluster) {
  auto spout = std::make_shared<testing::ListState>();
  spout->fields = Fields{"word", "ts"};
  std::map<int64_t, std::map<std::string, int64_t>> expected;
  const char* words[] = {"a", "b", "b", "c", "c", "c", "d"};
  for (int i = 0; i < 700; ++i) {
    // Event time 0..699 ms, slightly out of order within a 20 ms lag.
    int64_t ts = i + ((i % 3 == 0) ? -10 : 0);
    if (ts < 0) ts = 0;
    std::string w = words[(i / 100 + i) % 7];
    spout->items.push_back({Value(w), Value(ts)});
    ++expected[ts / 100 * 100][w];
  }
  auto rec = std::make_shared<testing::Recorder>();
  WindowOptions o;
  o.spec = WindowSpec::Tumbling(100ms);
  o.timestamp_field = "ts";
  o.lag = 20ms;
  o.output = Fields{"start", "word", "count"};
  auto counters = std::make_shared<WindowCounters>();
  o.counters = counters;
  auto top2 = [](const Window& w, WindowEmitter& out) {
    std::map<std::string, int64_t> counts;
    for (const Tuple& t : w.tuples) ++counts[t.get_string("word")];
    std::vector<std::pair<int64_t, std::string>> v;
    for (const auto& [word, n] : counts) v.emplace_back(-n, word);
    std::sort(v.begin(), v.end());
    for (size_t i = 0; i < v.size() && i < 2; ++i) {
      out.emit({Value(w.start), Value(v[i].second), Value(-v[i].first)});
    }
  };
  TopologyBuilder b;
  b.set_spout("words", testing::ListSpoutFactory(spout));
  b.set_bolt("top", WindowedBolt(o, top2)).global_grouping("words");
  b.set_bolt("sink", testing::RecordingBoltFactory(rec)).shuffle_grouping("top");
  Config config;
  config.tick_intervals["top"] = 5ms;
  LocalCluster cluster(LocalClusterOptions{.threads = 2});
  ASSERT_TRUE(cluster.Submit("top-n", config, b.build()).ok());
  ASSERT_TRUE(testing::WaitFor([&] { return spout->num_acked() == 700; }));
  ASSERT_TRUE(cluster.Stop().ok());
  EXPECT_EQ(spout->num_failed(), 0u);
  EXPECT_EQ(counters->fired.load(), 7u);
  EXPECT_EQ(counters->late_dropped.load(), 0u);
  // The same totals are on /metrics, labelled with topology and component.
  const metrics::Labels labels{{"topology", "top-n"}, {"component", "top"}};
  auto& reg = metrics::Registry::Global();
  EXPECT_EQ(reg.GetCounter("brook_streams_window_fired_total", labels, "")->value(), 7);
  EXPECT_EQ(reg.GetCounter("brook_streams_window_late_dropped_total", labels, "")->value(), 0);
  EXPECT_NE(reg.RenderPrometheus().find(
                "brook_streams_window_fired_total{topology=\"top-n\",component=\"top\"} 7"),
            std::string::npos);

  std::map<int64_t, std::vector<std::pair<std::string, int64_t>>> got;
  for (const auto& [task, v] : rec->seen) {
    got[v[0].as_int64()].emplace_back(v[1].as_string(), v[2].as_int64());
  }
  ASSERT_EQ(got.size(), 7u);
  for (const auto& [start, top] : got) {
    const auto& counts = expected[start];
    std::vector<std::pair<int64_t, std::string>> want;
    for (const auto& [word, n] : counts) want.emplace_back(-n, word);
    std::sort(want.begin(), want.end());
    ASSERT_EQ(top.size(), 2u) << start;
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(top[i].first, want[i].second) << "window " << start << " rank " << i;
      EXPECT_EQ(top[i].second, -want[i].first) << "window " << start << " rank " << i;
    }
  }
}

}  // namespace
}  // namespace brook::streams
