// Topology validation: every invalid graph is refused with an error that
// names the problem; a valid one passes.
#include "brook/streams/topology.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "brook/streams/helpers.h"
#include "brook/streams/local_cluster.h"
#include "tests/unit/streams/test_components.h"

namespace brook::streams {
namespace {

using ::testing::HasSubstr;
using testing::ListSpoutFactory;
using testing::ListState;
using testing::Recorder;
using testing::RecordingBoltFactory;

// A spout declaring the default stream (word, n) and a direct stream "d".
class TwoStreamSpout : public ISpout {
 public:
  void open(const TopologyContext&, SpoutOutputCollector*) override {}
  void next_tuple() override {}
  void declare_outputs(OutputDeclarer& d) override {
    d.declare(Fields{"word", "n"});
    d.declare_stream("d", Fields{"x"}, /*direct=*/true);
  }
};

SpoutFactory Spout() {
  return [] { return std::make_unique<TwoStreamSpout>(); };
}
BoltFactory Pass() {
  return MapBolt(Fields{"word"}, [](const Tuple& t) { return t.values(); });
}

absl::Status Check(const TopologyBuilder& b) { return b.build().Validate(); }

TEST(TopologyValidate, AcceptsValidTopology) {
  TopologyBuilder b;
  b.set_spout("s", Spout(), 2);
  b.set_bolt("a", Pass(), 2).fields_grouping("s", Fields{"word"}).direct_grouping("s", "d");
  b.set_bolt("b", Pass()).shuffle_grouping("a").all_grouping("s");
  EXPECT_TRUE(Check(b).ok()) << Check(b);
}

TEST(TopologyValidate, UnknownSourceComponent) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass()).shuffle_grouping("nope");
  auto s = Check(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown source component 'nope'"));
}

TEST(TopologyValidate, UnknownStream) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass()).shuffle_grouping("s", "other");
  auto s = Check(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("declares no stream 'other'"));
}

TEST(TopologyValidate, Cycle) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass()).shuffle_grouping("s").shuffle_grouping("c");
  b.set_bolt("b", Pass()).shuffle_grouping("a");
  b.set_bolt("c", Pass()).shuffle_grouping("b");
  auto s = Check(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("cycle"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("a"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("c"));
}

TEST(TopologyValidate, SelfLoopIsACycle) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass()).shuffle_grouping("s").shuffle_grouping("a");
  EXPECT_THAT(std::string(Check(b).message()), HasSubstr("cycle: a -> a"));
}

TEST(TopologyValidate, FieldsGroupingOnUndeclaredField) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass()).fields_grouping("s", Fields{"word", "colour"});
  auto s = Check(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("field 'colour' is not declared"));
}

TEST(TopologyValidate, DuplicateNames) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("s", Pass()).shuffle_grouping("s");
  EXPECT_THAT(std::string(Check(b).message()), HasSubstr("duplicate component name 's'"));
}

TEST(TopologyValidate, ParallelismBelowOne) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass(), 0).shuffle_grouping("s");
  EXPECT_THAT(std::string(Check(b).message()), HasSubstr("'a' has parallelism 0"));
}

TEST(TopologyValidate, DirectGroupingNeedsDirectStream) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass()).direct_grouping("s");
  EXPECT_THAT(std::string(Check(b).message()), HasSubstr("needs a stream declared direct"));
  TopologyBuilder c;
  c.set_spout("s", Spout());
  c.set_bolt("a", Pass()).shuffle_grouping("s", "d");
  EXPECT_THAT(std::string(Check(c).message()), HasSubstr("the stream is direct"));
}

TEST(TopologyValidate, NoSpoutAndReservedNames) {
  TopologyBuilder none;
  EXPECT_FALSE(Check(none).ok());
  TopologyBuilder b;
  b.set_spout("__system", Spout());
  EXPECT_THAT(std::string(Check(b).message()), HasSubstr("reserved"));
  TopologyBuilder c;
  c.set_spout("s", Spout());
  c.set_bolt("a", Pass());
  EXPECT_THAT(std::string(Check(c).message()), HasSubstr("subscribes to no stream"));
}

TEST(TopologyValidate, SubmitRefusesInvalidTopologyAndConfig) {
  TopologyBuilder b;
  b.set_spout("s", Spout());
  b.set_bolt("a", Pass()).shuffle_grouping("missing");
  LocalCluster cluster(LocalClusterOptions{.threads = 1});
  auto s = cluster.Submit("t", Config{}, b.build());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(cluster.running());

  TopologyBuilder ok;
  ok.set_spout("s", Spout());
  ok.set_bolt("a", Pass()).shuffle_grouping("s");
  Config config;
  config.tick_intervals["s"] = std::chrono::milliseconds(10);
  s = cluster.Submit("t", config, ok.build());
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a bolt"));
  config.tick_intervals.clear();
  config.queue_capacity = 0;
  EXPECT_FALSE(cluster.Submit("t", config, ok.build()).ok());
}

TEST(Values, TypesAndStableHash) {
  Value i = 42;
  Value d = 1.5;
  Value s = "abc";
  Value b = Bytes{"abc"};
  Value t = true;
  EXPECT_TRUE(i.is_int64());
  EXPECT_EQ(i.as_int64(), 42);
  EXPECT_TRUE(d.is_double());
  EXPECT_TRUE(s.is_string());
  EXPECT_TRUE(b.is_bytes());
  EXPECT_TRUE(t.is_bool());
  EXPECT_THROW(s.as_int64(), std::bad_variant_access);
  // Same value, same hash; string and bytes of the same content differ.
  EXPECT_EQ(Value("abc").StableHash(), s.StableHash());
  EXPECT_NE(s.StableHash(), b.StableHash());
  EXPECT_EQ(Value(0.0).StableHash(), Value(-0.0).StableHash());
  // Pinned (computed independently from the documented definition): the
  // hash must not change between builds, since fields grouping and, later,
  // distributed workers depend on it.
  EXPECT_EQ(Value(int64_t{1}).StableHash(), 0xf8c97ee8ae260daaull);
  EXPECT_EQ(Value("abc").StableHash(), 0x75f621e17571402cull);
  EXPECT_NE(Value(int64_t{1}).StableHash(), Value(int64_t{2}).StableHash());
}

}  // namespace
}  // namespace brook::streams
