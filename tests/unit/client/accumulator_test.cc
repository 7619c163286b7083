// RecordAccumulator: partition choice (murmur2 by key, sticky for null keys),
// batching by linger and batch_bytes, back-off, expiry, flush marks and the
// bytes of built batches.
#include "producer/accumulator.h"

#include <set>

#include "common/errors.h"
#include "common/murmur2.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"

namespace brook::client {
namespace {

using std::chrono::milliseconds;
using Clock = ProducerClock;

AccumulatorConfig TestConfig() {
  AccumulatorConfig c;
  c.batch_bytes = 1000;
  c.linger = milliseconds(50);
  c.buffer_memory = 1 << 20;
  c.max_block = milliseconds(0);
  c.retry_backoff = milliseconds(100);
  c.retry_backoff_max = milliseconds(400);
  c.delivery_timeout = milliseconds(1000);
  c.builder_options.compression = Compression::kNone;
  return c;
}

ProducerRecord Rec(std::string topic, std::optional<std::string> key, size_t value_bytes = 100) {
  ProducerRecord r;
  r.topic = std::move(topic);
  r.key = std::move(key);
  r.value = std::string(value_bytes, 'v');
  return r;
}

int32_t Append(RecordAccumulator& acc, const ProducerRecord& r, Clock::time_point now,
               Producer::Callback cb = nullptr) {
  auto p = acc.Append(r, 1000, cb, now);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : -1;
}

TEST(PartitionerTest, KeyedRecordsUseKafkaMurmur2) {
  RecordAccumulator acc(TestConfig());
  acc.SetPartitionCount("t", 7);
  const auto now = Clock::now();
  for (int i = 0; i < 200; ++i) {
    const std::string key = "key-" + std::to_string(i);
    EXPECT_EQ(Append(acc, Rec("t", key, 10), now), PartitionForKey(key, 7)) << key;
  }
}

TEST(PartitionerTest, UnknownPartitionCountIsReported) {
  RecordAccumulator acc(TestConfig());
  Producer::Callback cb = [](const absl::StatusOr<RecordMetadata>&) {};
  auto p = acc.Append(Rec("unknown", "k"), 1, cb, Clock::now());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(ToErrorCode(p.status()), proto::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_TRUE(cb) << "the callback must stay with the caller on failure";
  // An explicit partition needs no count.
  ProducerRecord r = Rec("unknown", "k");
  r.partition = 3;
  EXPECT_EQ(Append(acc, r, Clock::now()), 3);
}

TEST(PartitionerTest, ExplicitPartitionOutOfRangeFails) {
  RecordAccumulator acc(TestConfig());
  acc.SetPartitionCount("t", 2);
  ProducerRecord r = Rec("t", "k");
  r.partition = 2;
  Producer::Callback cb;
  auto p = acc.Append(r, 1, cb, Clock::now());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PartitionerTest, StickyPartitionSwitchesOnlyWhenItsBatchCloses) {
  RecordAccumulator acc(TestConfig(), /*seed=*/42);
  acc.SetPartitionCount("t", 5);
  const auto now = Clock::now();
  // 100-byte values: a 1000-byte batch closes after a handful of records.
  int32_t current = Append(acc, Rec("t", std::nullopt), now);
  int switches = 0;
  bool closed = false;  // the current sticky partition's batch closed
  Clock::time_point next;
  for (int i = 0; i < 100; ++i) {
    const int32_t p = Append(acc, Rec("t", std::nullopt), now);
    const auto ready = acc.Ready(now, &next);
    if (p != current) {
      ++switches;
      EXPECT_TRUE(closed || !ready.empty()) << "switched at record " << i << " without a close";
      current = p;
      closed = false;
    } else {
      EXPECT_FALSE(closed) << "kept partition " << p << " after its batch closed";
    }
    for (const auto& tp : ready) {
      if (tp.partition == current) closed = true;
      auto taken = acc.Take(tp, 1 << 20);
      acc.Complete(tp, taken);
    }
  }
  EXPECT_GT(switches, 5);
  EXPECT_LT(switches, 30);  // ~8 records per batch: ~12 closes in 100 records
}

TEST(PartitionerTest, StickySwitchesAfterLingerCloses) {
  RecordAccumulator acc(TestConfig(), /*seed=*/7);
  acc.SetPartitionCount("t", 3);
  const auto t0 = Clock::now();
  const int32_t first = Append(acc, Rec("t", std::nullopt, 10), t0);
  EXPECT_EQ(Append(acc, Rec("t", std::nullopt, 10), t0), first);
  Clock::time_point next;
  // Linger passes: the batch closes and the next null-key record moves on.
  auto ready = acc.Ready(t0 + milliseconds(60), &next);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].partition, first);
  EXPECT_NE(Append(acc, Rec("t", std::nullopt, 10), t0 + milliseconds(60)), first);
}

TEST(AccumulatorTest, LingerClosesBatch) {
  RecordAccumulator acc(TestConfig());
  const auto t0 = Clock::now();
  ProducerRecord r = Rec("t", "k", 10);
  r.partition = 0;
  Append(acc, r, t0);
  Clock::time_point next;
  EXPECT_TRUE(acc.Ready(t0 + milliseconds(10), &next).empty());
  EXPECT_EQ(next, t0 + milliseconds(50));
  auto ready = acc.Ready(t0 + milliseconds(50), &next);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0], (TopicPartition{"t", 0}));
}

TEST(AccumulatorTest, BatchBytesClosesBatchBeforeLinger) {
  RecordAccumulator acc(TestConfig());
  const auto t0 = Clock::now();
  ProducerRecord r = Rec("t", "k", 100);
  r.partition = 1;
  Clock::time_point next;
  int appended = 0;
  while (acc.Ready(t0, &next).empty()) {
    Append(acc, r, t0);
    ASSERT_LT(++appended, 20);
  }
  auto batches = acc.Take(TopicPartition{"t", 1}, 1 << 20);
  ASSERT_EQ(batches.size(), 1u);
  // The batch closed when the next record no longer fit (that record
  // started a new batch) or when it reached batch_bytes exactly.
  const size_t record_bytes = batches[0]->size_bytes() / batches[0]->record_count();
  EXPECT_GE(batches[0]->record_count(), appended - 1);
  EXPECT_LE(batches[0]->size_bytes(), 1000u + record_bytes);
  EXPECT_GT(batches[0]->size_bytes() + record_bytes, 1000u);
}

TEST(AccumulatorTest, BuiltBatchDecodesInOrderWithCallbacksKept) {
  RecordAccumulator acc(TestConfig());
  const auto t0 = Clock::now();
  std::vector<int> called;
  for (int i = 0; i < 5; ++i) {
    ProducerRecord r = Rec("t", "k" + std::to_string(i), 10);
    r.partition = 0;
    r.headers.push_back(Header{"h", std::to_string(i)});
    Append(acc, r, t0, [&called, i](const absl::StatusOr<RecordMetadata>&) { called.push_back(i); });
  }
  acc.BeginFlush();
  Clock::time_point next;
  ASSERT_EQ(acc.Ready(t0, &next).size(), 1u);
  auto batches = acc.Take(TopicPartition{"t", 0}, 1 << 20);
  ASSERT_EQ(batches.size(), 1u);
  batches[0]->Build();
  auto view = RecordBatchView::Parse(batches[0]->bytes);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_TRUE(view->VerifyCrc().ok());
  RecordReader reader;
  std::vector<RecordView> records;
  ASSERT_TRUE(reader.Read(*view, &records).ok());
  ASSERT_EQ(records.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(records[i].offset, i);
    EXPECT_EQ(*records[i].key, "k" + std::to_string(i));
    ASSERT_EQ(records[i].headers.size(), 1u);
    EXPECT_EQ(*records[i].headers[0].value, std::to_string(i));
    batches[0]->entries[i].callback(RecordMetadata{});
  }
  EXPECT_EQ(called, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(AccumulatorTest, OneRequestInFlightPerPartitionAndBackoffOnRequeue) {
  RecordAccumulator acc(TestConfig());
  const auto t0 = Clock::now();
  ProducerRecord r = Rec("t", "k", 10);
  r.partition = 0;
  Append(acc, r, t0);
  Clock::time_point next;
  ASSERT_EQ(acc.Ready(t0 + milliseconds(50), &next).size(), 1u);
  auto taken = acc.Take(TopicPartition{"t", 0}, 1 << 20);
  ASSERT_EQ(taken.size(), 1u);
  // A second batch waits while the first is in flight.
  Append(acc, r, t0 + milliseconds(50));
  EXPECT_TRUE(acc.Ready(t0 + milliseconds(200), &next).empty());
  // Retriable failure: back in front, sendable after retry_backoff.
  const auto t1 = t0 + milliseconds(200);
  acc.Requeue(TopicPartition{"t", 0}, std::move(taken), t1, absl::UnavailableError("x"));
  EXPECT_TRUE(acc.Ready(t1 + milliseconds(50), &next).empty());
  EXPECT_EQ(acc.Ready(t1 + milliseconds(100), &next).size(), 1u);
  // Both batches go together, the retried one first.
  auto again = acc.Take(TopicPartition{"t", 0}, 1 << 20);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0]->attempts, 1);
  EXPECT_LT(again[0]->id, again[1]->id);
  acc.Complete(TopicPartition{"t", 0}, again);
  EXPECT_EQ(acc.buffered_bytes(), 0u);
  EXPECT_TRUE(acc.empty());
}

TEST(AccumulatorTest, ExpiredBatchesAreRemovedInOrder) {
  RecordAccumulator acc(TestConfig());
  const auto t0 = Clock::now();
  ProducerRecord r = Rec("t", "k", 10);
  r.partition = 0;
  Append(acc, r, t0);
  acc.BeginFlush();
  EXPECT_TRUE(acc.Expired(t0 + milliseconds(999)).empty());
  auto expired = acc.Expired(t0 + milliseconds(1000));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_GT(acc.buffered_bytes(), 0u);
  acc.Release(expired);
  EXPECT_EQ(acc.buffered_bytes(), 0u);
}

TEST(AccumulatorTest, FlushWaitsForEarlierBatchesOnly) {
  RecordAccumulator acc(TestConfig());
  const auto t0 = Clock::now();
  ProducerRecord r = Rec("t", "k", 10);
  r.partition = 0;
  Append(acc, r, t0);
  const uint64_t mark = acc.BeginFlush();
  Append(acc, r, t0);  // after the flush began: not waited for
  EXPECT_FALSE(acc.WaitFlushed(mark, Clock::now() + milliseconds(20)));
  Clock::time_point next;
  ASSERT_EQ(acc.Ready(t0, &next).size(), 1u);
  auto taken = acc.Take(TopicPartition{"t", 0}, 1 << 20);
  ASSERT_EQ(taken.size(), 1u);
  acc.Complete(TopicPartition{"t", 0}, taken);
  EXPECT_TRUE(acc.WaitFlushed(mark, Clock::now() + milliseconds(20)));
  EXPECT_FALSE(acc.empty());
}

TEST(AccumulatorTest, MemoryBoundFailsAfterMaxBlock) {
  AccumulatorConfig c = TestConfig();
  c.buffer_memory = 3 * (100 + 1 + kRecordOverheadBytes);
  c.max_block = milliseconds(100);
  RecordAccumulator acc(c);
  ProducerRecord r = Rec("t", "k", 100);
  r.partition = 0;
  for (int i = 0; i < 3; ++i) Append(acc, r, Clock::now());
  Producer::Callback cb = [](const absl::StatusOr<RecordMetadata>&) {};
  const auto start = Clock::now();
  auto p = acc.Append(r, 1, cb, Clock::now());
  EXPECT_GE(Clock::now() - start, milliseconds(90));
  EXPECT_EQ(p.status().code(), absl::StatusCode::kResourceExhausted) << p.status();
  // A record larger than the whole buffer fails at once.
  ProducerRecord big = Rec("t", "k", 1000);
  big.partition = 0;
  EXPECT_EQ(acc.Append(big, 1, cb, Clock::now()).status().code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace brook::client
