// The queue subscription state machine with fake time: ack timeouts and
// back-off, delivery counts, dead-letter decisions, key-ordered delivery,
// tag filters (including invalid ones), delayed records, the window limit,
// ack error codes and journal events / restore.
#include "broker/queue/subscription.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/queue/filter.h"
#include "common/errors.h"
#include "gtest/gtest.h"

namespace brook::queue {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // fake wall clock (ms)

QueueConfig Config() {
  QueueConfig c;
  c.ack_timeout_ms = 1000;
  c.backoff_initial_ms = 100;
  c.backoff_max_ms = 400;
  c.dead_letter_topic = "g-dlq";
  return c;
}

Subscription Make(QueueConfig c = Config(), int64_t floor = 0, SubscriptionLimits limits = {}) {
  auto f = TagFilter::Parse(c.filter);
  EXPECT_TRUE(f.ok()) << f.status();
  return Subscription(c, *f, floor, limits);
}

// Stable storage for keys/tags the RecordInfo views point at.
struct Rec {
  int64_t offset;
  std::optional<std::string> key;
  std::optional<std::string> tags;
  int64_t deliver_at = 0;
};

void Add(Subscription& s, const Rec& r, int64_t now) {
  RecordInfo info;
  info.offset = r.offset;
  if (r.key) info.key = *r.key;
  if (r.tags) info.tags = *r.tags;
  info.deliver_at_ms = r.deliver_at;
  info.size = 100;
  s.AddRecord(info, now);
}

void AddN(Subscription& s, int64_t from, int64_t n, int64_t now) {
  for (int64_t o = from; o < from + n; ++o) Add(s, {o, std::nullopt, std::nullopt}, now);
}

std::vector<int64_t> Offsets(const std::vector<Delivery>& d) {
  std::vector<int64_t> out;
  for (const auto& x : d) out.push_back(x.offset);
  return out;
}

TEST(TagFilterTest, ParsesAndMatches) {
  for (std::string all : {"", "*", "  *  ", "   "}) {
    auto f = TagFilter::Parse(all);
    ASSERT_TRUE(f.ok()) << all;
    EXPECT_TRUE(f->matches_all());
    EXPECT_TRUE(f->Matches(std::nullopt));
    EXPECT_TRUE(f->Matches("x"));
  }
  auto f = TagFilter::Parse("red || blue");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Matches("red"));
  EXPECT_TRUE(f->Matches("green, blue"));
  EXPECT_TRUE(f->Matches(" blue ,x"));
  EXPECT_FALSE(f->Matches("green"));
  EXPECT_FALSE(f->Matches("redx"));
  EXPECT_FALSE(f->Matches(std::nullopt));
  EXPECT_FALSE(f->Matches(""));
  auto one = TagFilter::Parse("a");
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(one->Matches("a"));
}

TEST(TagFilterTest, RejectsInvalidExpressions) {
  for (std::string bad : {"a ||", "|| a", "a && b", "a | b", "a || || b", "a b", "(a)", "!a",
                          "a || *", "a,b"}) {
    auto f = TagFilter::Parse(bad);
    ASSERT_FALSE(f.ok()) << bad;
    EXPECT_EQ(ToErrorCode(f.status()), proto::INVALID_FILTER) << bad;
  }
}

TEST(QueueConfigTest, DefaultsApply) {
  proto::QueueSubscriptionConfig p;
  QueueConfig c = QueueConfig::FromProto(p, "orders");
  EXPECT_EQ(c.ack_timeout_ms, 30000);
  EXPECT_EQ(c.max_deliveries, 0);
  EXPECT_EQ(c.backoff_initial_ms, 1000);
  EXPECT_EQ(c.backoff_max_ms, 60000);
  EXPECT_EQ(c.dead_letter_topic, "orders-dlq");
  p.set_dead_letter_topic("dead");
  p.set_max_deliveries(-3);
  c = QueueConfig::FromProto(p, "orders");
  EXPECT_EQ(c.dead_letter_topic, "dead");
  EXPECT_EQ(c.max_deliveries, 0);
}

TEST(SubscriptionTest, DeliversAcksAndAdvancesFloor) {
  Subscription s = Make();
  AddN(s, 0, 5, kT0);
  auto d = s.Deliver("c1", 3, 1 << 20, kT0);
  ASSERT_EQ(Offsets(d), (std::vector<int64_t>{0, 1, 2}));
  for (const auto& x : d) EXPECT_EQ(x.delivery_count, 1);
  auto d2 = s.Deliver("c2", 10, 1 << 20, kT0);
  EXPECT_EQ(Offsets(d2), (std::vector<int64_t>{3, 4}));
  EXPECT_TRUE(s.Deliver("c3", 10, 1 << 20, kT0).empty());

  // Ack out of order: the floor moves only over a contiguous prefix.
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0 + 10), proto::NONE);
  EXPECT_EQ(s.floor(), 0);
  EXPECT_EQ(s.Ack(0, 1, proto::QUEUE_ACK, 0, kT0 + 10), proto::NONE);
  EXPECT_EQ(s.floor(), 2);
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0 + 10), proto::QUEUE_ALREADY_ACKED);
  EXPECT_EQ(s.Ack(4, 1, proto::QUEUE_ACK, 0, kT0 + 10), proto::NONE);
  EXPECT_EQ(s.Ack(4, 1, proto::QUEUE_ACK, 0, kT0 + 10), proto::QUEUE_ALREADY_ACKED);
  EXPECT_EQ(s.floor(), 2);
  EXPECT_EQ(s.stats().acked, 3);
  // Never read / never delivered.
  EXPECT_EQ(s.Ack(99, 1, proto::QUEUE_ACK, 0, kT0), proto::QUEUE_NOT_DELIVERED);
  // Wrong delivery count.
  EXPECT_EQ(s.Ack(2, 2, proto::QUEUE_ACK, 0, kT0), proto::QUEUE_DELIVERY_EXPIRED);
  EXPECT_EQ(s.Ack(2, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  EXPECT_EQ(s.Ack(3, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  EXPECT_EQ(s.floor(), 5);

  proto::QueuePartitionState st;
  s.Describe(kT0, &st);
  EXPECT_EQ(st.ack_floor(), 5);
  EXPECT_EQ(st.read_offset(), 5);
  EXPECT_EQ(st.acked(), 5);
  EXPECT_EQ(st.in_flight(), 0);
  EXPECT_EQ(st.consumers(), 0);  // SeeConsumer not called
}

TEST(SubscriptionTest, NeverDeliveredRecordIsNotDelivered) {
  Subscription s = Make();
  AddN(s, 0, 2, kT0);
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0), proto::QUEUE_NOT_DELIVERED);
  EXPECT_EQ(s.Ack(1, 0, proto::QUEUE_ACK, 0, kT0), proto::QUEUE_NOT_DELIVERED);
}

TEST(SubscriptionTest, TimeoutRedeliversWithExponentialBackoff) {
  Subscription s = Make();
  AddN(s, 0, 1, kT0);
  int64_t now = kT0;
  // Delivery n times out at +1000, then waits backoff(n) = 100, 200, 400, 400.
  const int64_t expected_backoff[] = {100, 200, 400, 400};
  for (int n = 1; n <= 4; ++n) {
    auto d = s.Deliver("c", 10, 1 << 20, now);
    ASSERT_EQ(d.size(), 1u) << n;
    EXPECT_EQ(d[0].delivery_count, n);
    now += 999;
    s.Tick(now);
    EXPECT_TRUE(s.Deliver("c", 10, 1 << 20, now).empty()) << "still in flight";
    now += 1;
    s.Tick(now);  // expired
    EXPECT_EQ(s.Ack(0, n, proto::QUEUE_ACK, 0, now), proto::QUEUE_DELIVERY_EXPIRED);
    EXPECT_EQ(s.NextDue(), now + expected_backoff[n - 1]);
    now += expected_backoff[n - 1] - 1;
    s.Tick(now);
    EXPECT_TRUE(s.Deliver("c", 10, 1 << 20, now).empty()) << "backing off";
    now += 1;
    s.Tick(now);
  }
  EXPECT_EQ(s.stats().redeliveries, 3);
  auto d = s.Deliver("c", 10, 1 << 20, now);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].delivery_count, 5);
  EXPECT_EQ(s.Ack(0, 5, proto::QUEUE_ACK, 0, now), proto::NONE);
  EXPECT_EQ(s.floor(), 1);
}

TEST(SubscriptionTest, AckAtDeadlineIsExpired) {
  Subscription s = Make();
  AddN(s, 0, 1, kT0);
  ASSERT_EQ(s.Deliver("c", 1, 1 << 20, kT0).size(), 1u);
  // Tick not yet called, but the lease has passed.
  EXPECT_EQ(s.Ack(0, 1, proto::QUEUE_ACK, 0, kT0 + 1000), proto::QUEUE_DELIVERY_EXPIRED);
}

TEST(SubscriptionTest, NackWithExplicitDelayWinsAndReleaseDoesNotCount) {
  Subscription s = Make();
  AddN(s, 0, 2, kT0);
  auto d = s.Deliver("c", 2, 1 << 20, kT0);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(s.Ack(0, 1, proto::QUEUE_NACK, 5000, kT0), proto::NONE);
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_RELEASE, 0, kT0), proto::NONE);
  // Released: at once, same count.
  d = s.Deliver("c", 10, 1 << 20, kT0);
  ASSERT_EQ(Offsets(d), (std::vector<int64_t>{1}));
  EXPECT_EQ(d[0].delivery_count, 1);
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  // Nacked: not before +5000.
  s.Tick(kT0 + 4999);
  EXPECT_TRUE(s.Deliver("c", 10, 1 << 20, kT0 + 4999).empty());
  s.Tick(kT0 + 5000);
  d = s.Deliver("c", 10, 1 << 20, kT0 + 5000);
  ASSERT_EQ(Offsets(d), (std::vector<int64_t>{0}));
  EXPECT_EQ(d[0].delivery_count, 2);
  // Nack with delay < 0 takes the back-off for count 2 (200 ms).
  EXPECT_EQ(s.Ack(0, 2, proto::QUEUE_NACK, -1, kT0 + 5000), proto::NONE);
  EXPECT_EQ(s.NextDue(), kT0 + 5200);
  // A nacked delivery can no longer be acked.
  EXPECT_EQ(s.Ack(0, 2, proto::QUEUE_ACK, 0, kT0 + 5001), proto::QUEUE_DELIVERY_EXPIRED);
}

TEST(SubscriptionTest, MaxDeliveriesDeadLettersOnTimeoutAndNack) {
  QueueConfig c = Config();
  c.max_deliveries = 2;
  Subscription s = Make(c);
  AddN(s, 0, 2, kT0);
  int64_t now = kT0;
  ASSERT_EQ(s.Deliver("c", 2, 1 << 20, now).size(), 2u);
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_NACK, 0, now), proto::NONE);  // count 1 < 2: redeliver
  auto d = s.Deliver("c", 2, 1 << 20, now);
  ASSERT_EQ(Offsets(d), (std::vector<int64_t>{1}));
  EXPECT_EQ(d[0].delivery_count, 2);
  EXPECT_EQ(s.Ack(1, 2, proto::QUEUE_NACK, 0, now), proto::NONE);  // count 2: dead-letter
  // Offset 0 times out, backs off, is delivered a second time, times out.
  now += 1000;
  s.Tick(now);
  now += 100;
  s.Tick(now);
  d = s.Deliver("c", 2, 1 << 20, now);
  ASSERT_EQ(Offsets(d), (std::vector<int64_t>{0}));
  EXPECT_EQ(d[0].delivery_count, 2);
  now += 1000;
  s.Tick(now);
  auto dl = s.TakeDeadLetters();
  ASSERT_EQ(dl.size(), 2u);
  EXPECT_EQ(dl[0].offset, 0);
  EXPECT_EQ(dl[0].reason, "ack timeout");
  EXPECT_EQ(dl[0].delivery_count, 2);
  EXPECT_EQ(dl[1].offset, 1);
  EXPECT_EQ(dl[1].reason, "nacked");
  EXPECT_TRUE(s.TakeDeadLetters().empty()) << "in progress";
  EXPECT_TRUE(s.Deliver("c", 2, 1 << 20, now).empty());
  // Not handled until the write is acknowledged; a failed write is retried.
  EXPECT_EQ(s.floor(), 0);
  s.DeadLetterDone(1, true, now);
  s.DeadLetterDone(0, false, now, 500);
  EXPECT_EQ(s.floor(), 0);
  s.Tick(now + 499);
  EXPECT_TRUE(s.TakeDeadLetters().empty());
  s.Tick(now + 500);
  dl = s.TakeDeadLetters();
  ASSERT_EQ(dl.size(), 1u);
  s.DeadLetterDone(0, true, now + 500);
  EXPECT_EQ(s.floor(), 2);
  EXPECT_EQ(s.stats().dead_lettered, 2);
  EXPECT_EQ(s.Ack(0, 2, proto::QUEUE_ACK, 0, now), proto::QUEUE_ALREADY_ACKED);
}

TEST(SubscriptionTest, KeyOrderedDeliversOnePerKeyInOffsetOrder) {
  QueueConfig c = Config();
  c.key_ordered = true;
  Subscription s = Make(c);
  // offsets: 0:a 1:a 2:b 3:null 4:b 5:a
  const char* keys[] = {"a", "a", "b", nullptr, "b", "a"};
  for (int i = 0; i < 6; ++i) {
    Add(s, {i, keys[i] ? std::optional<std::string>(keys[i]) : std::nullopt, std::nullopt}, kT0);
  }
  auto d1 = s.Deliver("c1", 10, 1 << 20, kT0);
  EXPECT_EQ(Offsets(d1), (std::vector<int64_t>{0, 2, 3}));
  // A second consumer gets nothing of keys a and b while they are in flight.
  EXPECT_TRUE(s.Deliver("c2", 10, 1 << 20, kT0).empty());
  EXPECT_EQ(s.Ack(2, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  auto d2 = s.Deliver("c2", 10, 1 << 20, kT0);
  EXPECT_EQ(Offsets(d2), (std::vector<int64_t>{4}));
  // A nacked head keeps its key blocked until it is redelivered and acked.
  EXPECT_EQ(s.Ack(0, 1, proto::QUEUE_NACK, 100, kT0), proto::NONE);
  EXPECT_TRUE(s.Deliver("c2", 10, 1 << 20, kT0).empty());
  s.Tick(kT0 + 100);
  auto d3 = s.Deliver("c2", 10, 1 << 20, kT0 + 100);
  ASSERT_EQ(Offsets(d3), (std::vector<int64_t>{0}));
  EXPECT_EQ(s.Ack(0, 2, proto::QUEUE_ACK, 0, kT0 + 100), proto::NONE);
  EXPECT_EQ(Offsets(s.Deliver("c1", 10, 1 << 20, kT0 + 100)), (std::vector<int64_t>{1}));
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0 + 100), proto::NONE);
  EXPECT_EQ(Offsets(s.Deliver("c1", 10, 1 << 20, kT0 + 100)), (std::vector<int64_t>{5}));
}

TEST(SubscriptionTest, WithoutKeyOrderSameKeyGoesInParallel) {
  Subscription s = Make();
  for (int i = 0; i < 3; ++i) Add(s, {i, std::string("k"), std::nullopt}, kT0);
  EXPECT_EQ(s.Deliver("c", 10, 1 << 20, kT0).size(), 3u);
}

TEST(SubscriptionTest, TagFilterSkipsNonMatchingRecordsAsHandled) {
  QueueConfig c = Config();
  c.filter = "red || blue";
  Subscription s = Make(c);
  Add(s, {0, std::nullopt, std::string("green")}, kT0);
  Add(s, {1, std::nullopt, std::string("red")}, kT0);
  Add(s, {2, std::nullopt, std::nullopt}, kT0);
  Add(s, {3, std::nullopt, std::string("x,blue")}, kT0);
  Add(s, {4, std::nullopt, std::string("green")}, kT0);
  EXPECT_EQ(s.floor(), 1);
  EXPECT_EQ(s.stats().filtered, 3);
  EXPECT_EQ(Offsets(s.Deliver("c", 10, 1 << 20, kT0)), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(s.Ack(0, 1, proto::QUEUE_ACK, 0, kT0), proto::QUEUE_ALREADY_ACKED);
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  EXPECT_EQ(s.floor(), 3);
  EXPECT_EQ(s.Ack(3, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  EXPECT_EQ(s.floor(), 5);
  // Filtered runs are journaled as ranges.
  auto events = s.DrainEvents();
  int filtered_events = 0;
  for (const auto& e : events) {
    if (e.type == JournalEvent::Type::kHandled && e.kind == HandledKind::kFiltered) filtered_events++;
  }
  EXPECT_EQ(filtered_events, 3);  // [0,1), [2,3), [4,5): not adjacent
}

TEST(SubscriptionTest, DelayedRecordsWaitForTheirTime) {
  Subscription s = Make();
  const int64_t in_31_days = kT0 + 31LL * 24 * 3600 * 1000;
  Add(s, {0, std::nullopt, std::nullopt, in_31_days}, kT0);
  Add(s, {1, std::nullopt, std::nullopt, kT0 + 1000}, kT0);
  Add(s, {2, std::nullopt, std::nullopt, kT0 - 5}, kT0);  // already due
  EXPECT_EQ(s.delayed_size(), 2u);
  EXPECT_EQ(Offsets(s.Deliver("c", 10, 1 << 20, kT0)), (std::vector<int64_t>{2}));
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0), proto::QUEUE_NOT_DELIVERED);
  EXPECT_EQ(s.Ack(2, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  EXPECT_EQ(s.NextDue(), kT0 + 1000);
  s.Tick(kT0 + 999);
  EXPECT_TRUE(s.Deliver("c", 10, 1 << 20, kT0 + 999).empty());
  s.Tick(kT0 + 1000);
  EXPECT_EQ(Offsets(s.Deliver("c", 10, 1 << 20, kT0 + 1000)), (std::vector<int64_t>{1}));
  EXPECT_EQ(s.Ack(1, 1, proto::QUEUE_ACK, 0, kT0 + 1000), proto::NONE);
  // The 31-day record holds the floor.
  EXPECT_EQ(s.floor(), 0);
  proto::QueuePartitionState st;
  s.Describe(kT0, &st);
  EXPECT_EQ(st.delayed(), 1);
  s.Tick(in_31_days - 1000);
  EXPECT_TRUE(s.Deliver("c", 10, 1 << 20, in_31_days - 1000).empty());
  s.Tick(in_31_days);
  auto d = s.Deliver("c", 10, 1 << 20, in_31_days);
  ASSERT_EQ(Offsets(d), (std::vector<int64_t>{0}));
  EXPECT_EQ(s.Ack(0, 1, proto::QUEUE_ACK, 0, in_31_days), proto::NONE);
  EXPECT_EQ(s.floor(), 3);
}

TEST(SubscriptionTest, WindowBoundsReadingAndBytesBoundDelivery) {
  SubscriptionLimits limits;
  limits.max_window = 4;
  limits.max_delayed = 2;
  Subscription s = Make(Config(), 0, limits);
  int64_t o = 0;
  while (s.WantsRecords()) Add(s, {o++, std::nullopt, std::nullopt}, kT0);
  EXPECT_EQ(o, 4);
  EXPECT_EQ(s.read_offset(), 4);
  // max_bytes: records are 100 bytes; at least one is always returned.
  EXPECT_EQ(s.Deliver("c", 10, 1, kT0).size(), 1u);
  EXPECT_EQ(s.Deliver("c", 10, 250, kT0).size(), 2u);
  EXPECT_EQ(s.Ack(0, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  EXPECT_TRUE(s.WantsRecords());
  // Delayed records fill their own index.
  Add(s, {4, std::nullopt, std::nullopt, kT0 + 100}, kT0);
  Add(s, {5, std::nullopt, std::nullopt, kT0 + 100}, kT0);
  EXPECT_FALSE(s.WantsRecords());
}

TEST(SubscriptionTest, SkipsGapsAndTruncatedLog) {
  Subscription s = Make(Config(), 10);
  Add(s, {12, std::nullopt, std::nullopt}, kT0);  // 10, 11 compacted away
  EXPECT_EQ(s.floor(), 12);
  Add(s, {13, std::nullopt, std::nullopt}, kT0);
  ASSERT_EQ(s.Deliver("c", 1, 1 << 20, kT0).size(), 1u);
  s.TruncateBelow(14);  // retention removed 12 and 13
  EXPECT_EQ(s.floor(), 14);
  EXPECT_EQ(s.read_offset(), 14);
  EXPECT_EQ(s.window_size(), 0u);
}

TEST(SubscriptionTest, RestoreFromEventsRebuildsState) {
  QueueConfig c = Config();
  Subscription s = Make(c);
  AddN(s, 0, 6, kT0);
  ASSERT_EQ(s.Deliver("c", 6, 1 << 20, kT0).size(), 6u);
  ASSERT_EQ(s.Ack(0, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  ASSERT_EQ(s.Ack(2, 1, proto::QUEUE_ACK, 0, kT0), proto::NONE);
  ASSERT_EQ(s.Ack(3, 1, proto::QUEUE_NACK, 10'000, kT0), proto::NONE);
  ASSERT_EQ(s.Ack(4, 1, proto::QUEUE_RELEASE, 0, kT0), proto::NONE);
  const SubscriptionSnapshot base;  // floor 0
  const auto events = s.DrainEvents();

  for (bool via_snapshot : {false, true}) {
    SCOPED_TRACE(via_snapshot ? "snapshot" : "events");
    Subscription r = Make(c);
    if (via_snapshot) {
      r.Restore(s.Snapshot());
    } else {
      r.Restore(base);
      for (const auto& e : events) r.RestoreEvent(e);
    }
    EXPECT_EQ(r.floor(), 1);
    EXPECT_EQ(r.stats().acked, 2);
    // Re-reading the log skips acked offsets and keeps delivery counts.
    const int64_t now = kT0 + 100;
    ASSERT_EQ(r.read_offset(), 1);
    AddN(r, r.read_offset(), 5, now);
    EXPECT_EQ(r.read_offset(), 6);
    EXPECT_EQ(r.Ack(2, 1, proto::QUEUE_ACK, 0, now), proto::QUEUE_ALREADY_ACKED);
    // 1 and 5 were in flight: still ackable with their count.
    EXPECT_EQ(r.Ack(1, 1, proto::QUEUE_ACK, 0, now), proto::NONE);
    // 4 was released: deliverable now with count 1 next.
    auto d = r.Deliver("c", 10, 1 << 20, now);
    ASSERT_EQ(Offsets(d), (std::vector<int64_t>{4}));
    EXPECT_EQ(d[0].delivery_count, 1);
    EXPECT_EQ(r.Ack(5, 1, proto::QUEUE_ACK, 0, now), proto::NONE);
    // 3 was nacked until kT0 + 10000.
    r.Tick(kT0 + 10'000);
    d = r.Deliver("c", 10, 1 << 20, kT0 + 10'000);
    ASSERT_EQ(Offsets(d), (std::vector<int64_t>{3}));
    EXPECT_EQ(d[0].delivery_count, 2);
  }
}

TEST(SubscriptionTest, ConsumersCountedWithinAckTimeout) {
  Subscription s = Make();
  s.SeeConsumer("a", kT0);
  s.SeeConsumer("b", kT0 + 500);
  proto::QueuePartitionState st;
  s.Describe(kT0 + 900, &st);
  EXPECT_EQ(st.consumers(), 2);
  s.Describe(kT0 + 1200, &st);
  EXPECT_EQ(st.consumers(), 1);
}

}  // namespace
}  // namespace brook::queue
