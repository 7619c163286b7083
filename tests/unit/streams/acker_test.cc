// The XOR acker on its own: completion at zero, failure, timeout, and that a
// partial tree never completes.
#include "streams/acker.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace brook::streams::internal {
namespace {

using Clock = Acker::Clock;

struct Sink {
  std::vector<Acker::Completion> got;
  Acker::Sink fn() {
    return [this](const Acker::Completion& c) { got.push_back(c); };
  }
};

TEST(Acker, TreeCompletesOnlyWhenEveryEdgeIsAcked) {
  Sink sink;
  Acker acker(sink.fn());
  auto far = Clock::now() + std::chrono::hours(1);
  const uint64_t root = NextTupleId();
  // Spout emits two tuples a, b; a's processing emits c and d anchored to it.
  uint64_t a = NextTupleId(), b = NextTupleId(), c = NextTupleId(), d = NextTupleId();
  acker.Init(root, a ^ b, /*spout_task=*/3, /*id=*/77, far);
  EXPECT_EQ(acker.size(), 1u);
  acker.Ack(root, a ^ c ^ d);  // a acked with its children c, d
  EXPECT_TRUE(sink.got.empty());
  acker.Ack(root, c);
  acker.Ack(root, b);
  EXPECT_TRUE(sink.got.empty());
  acker.Ack(root, d);
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_TRUE(sink.got[0].ok);
  EXPECT_EQ(sink.got[0].spout_task, 3);
  EXPECT_EQ(sink.got[0].message_id, 77u);
  EXPECT_EQ(acker.size(), 0u);
  acker.Ack(root, d);  // late ack of an unknown root is ignored
  EXPECT_EQ(sink.got.size(), 1u);
}

TEST(Acker, FailCompletesOnceWithFailure) {
  Sink sink;
  Acker acker(sink.fn());
  const uint64_t root = NextTupleId(), a = NextTupleId();
  acker.Init(root, a, 0, 5, Clock::now() + std::chrono::hours(1));
  acker.Fail(root);
  acker.Ack(root, a);
  acker.Fail(root);
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_FALSE(sink.got[0].ok);
  EXPECT_EQ(sink.got[0].message_id, 5u);
}

TEST(Acker, ExpireFailsOnlyOverdueTrees) {
  Sink sink;
  Acker acker(sink.fn());
  auto now = Clock::now();
  acker.Init(NextTupleId(), 1, 0, 1, now - std::chrono::milliseconds(1));
  acker.Init(NextTupleId(), 1, 0, 2, now + std::chrono::hours(1));
  EXPECT_EQ(acker.Expire(now), 1u);
  ASSERT_EQ(sink.got.size(), 1u);
  EXPECT_EQ(sink.got[0].message_id, 1u);
  EXPECT_FALSE(sink.got[0].ok);
  EXPECT_EQ(acker.size(), 1u);
  acker.Clear();
  EXPECT_EQ(acker.size(), 0u);
}

TEST(Acker, IdsAreNonZeroAndDistinct) {
  std::set<uint64_t> ids;
  for (int i = 0; i < 10000; ++i) {
    uint64_t id = NextTupleId();
    EXPECT_NE(id, 0u);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 10000u);
}

}  // namespace
}  // namespace brook::streams::internal
