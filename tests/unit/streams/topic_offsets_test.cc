// The topic spout's offset bookkeeping without a server: only the contiguous
// fully acked prefix of a partition is committed, failures hold the commit
// point and are replayed, message ids pack (partition, offset).
#include "streams/topic_offsets.h"

#include <gtest/gtest.h>

#include "brook/streams/topic.h"

namespace brook::streams {
namespace {

using internal::PartitionOffsets;
using internal::SpoutLedger;

client::ConsumerRecord Rec(int32_t p, int64_t off, std::string value = "") {
  client::ConsumerRecord r;
  r.topic = "t";
  r.partition = p;
  r.offset = off;
  r.value = std::move(value);
  return r;
}

TEST(PartitionOffsets, CommitsOnlyTheContiguousAckedPrefix) {
  PartitionOffsets p(10);
  EXPECT_FALSE(p.NeedsCommit());
  for (int64_t o = 10; o < 15; ++o) p.Emitted(o);
  EXPECT_EQ(p.CommitPoint(), 10);
  EXPECT_FALSE(p.NeedsCommit());
  p.Done(11);
  p.Done(12);
  EXPECT_EQ(p.CommitPoint(), 10);  // 10 still unfinished
  p.Done(10);
  EXPECT_EQ(p.CommitPoint(), 13);
  EXPECT_TRUE(p.NeedsCommit());
  p.Committed(13);
  EXPECT_FALSE(p.NeedsCommit());
  p.Done(14);
  p.Done(13);
  EXPECT_EQ(p.CommitPoint(), 15);  // all done: the offset after the last emitted
  p.Committed(15);
  EXPECT_FALSE(p.NeedsCommit());
  EXPECT_EQ(p.committed(), 15);
}

TEST(PartitionOffsets, GapsInOffsetsAndUnknownAcks) {
  PartitionOffsets p(0);
  p.Emitted(0);
  p.Emitted(5);  // offsets 1..4 do not exist (e.g. a compacted or aborted range)
  p.Done(5);
  EXPECT_EQ(p.CommitPoint(), 0);
  p.Done(3);  // never emitted: ignored
  EXPECT_EQ(p.CommitPoint(), 0);
  p.Done(0);
  EXPECT_EQ(p.CommitPoint(), 6);
  p.Committed(4);  // an older commit landing late never moves back
  p.Committed(6);
  p.Committed(2);
  EXPECT_EQ(p.committed(), 6);
}

TEST(SpoutLedger, FailuresHoldTheCommitPointAndAreReplayed) {
  SpoutLedger l;
  l.AddPartition(0, 100);
  l.AddPartition(1, 7);
  for (int64_t o = 100; o < 104; ++o) l.Emitted(Rec(0, o, "v" + std::to_string(o)));
  l.Emitted(Rec(1, 7));
  l.Acked(0, 100);
  EXPECT_TRUE(l.Failed(0, 101, -1));
  l.Acked(0, 102);
  l.Acked(0, 103);
  l.Acked(1, 7);
  auto to_commit = l.ToCommit();
  ASSERT_EQ(to_commit.size(), 2u);
  EXPECT_EQ(to_commit[0], 101);  // stuck at the failed record
  EXPECT_EQ(to_commit[1], 8);
  l.Committed(to_commit);
  EXPECT_TRUE(l.ToCommit().empty());

  const client::ConsumerRecord* r = l.NextReplay();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->partition, 0);
  EXPECT_EQ(r->offset, 101);
  EXPECT_EQ(r->value, "v101");
  EXPECT_EQ(l.NextReplay(), nullptr);
  EXPECT_EQ(l.in_flight(), 1u);
  l.Acked(0, 101);  // the replay completes
  to_commit = l.ToCommit();
  ASSERT_EQ(to_commit.size(), 1u);
  EXPECT_EQ(to_commit[0], 104);
  EXPECT_EQ(l.in_flight(), 0u);
}

TEST(SpoutLedger, MaxReplaysGivesUpAndLetsTheOffsetMoveOn) {
  SpoutLedger l;
  l.AddPartition(3, 0);
  l.Emitted(Rec(3, 0));
  l.Emitted(Rec(3, 1));
  l.Acked(3, 1);
  EXPECT_TRUE(l.Failed(3, 0, 2));
  ASSERT_NE(l.NextReplay(), nullptr);
  EXPECT_TRUE(l.Failed(3, 0, 2));
  ASSERT_NE(l.NextReplay(), nullptr);
  EXPECT_EQ(l.ToCommit().count(3), 0u);
  EXPECT_FALSE(l.Failed(3, 0, 2));  // third failure: given up
  EXPECT_EQ(l.NextReplay(), nullptr);
  EXPECT_EQ(l.ToCommit().at(3), 2);
}

TEST(SpoutLedger, AReplayAckedBeforeItIsReEmittedIsNotEmittedAgain) {
  SpoutLedger l;
  l.AddPartition(0, 0);
  l.Emitted(Rec(0, 0));
  EXPECT_TRUE(l.Failed(0, 0, -1));
  l.Acked(0, 0);  // a late ack of the same id
  EXPECT_EQ(l.NextReplay(), nullptr);
  EXPECT_EQ(l.ToCommit().at(0), 1);
}

TEST(TopicMessageId, PacksPartitionAndOffset) {
  for (int32_t p : {0, 1, 77, 65535}) {
    for (int64_t o : {int64_t{0}, int64_t{1}, int64_t{123456789012}, (int64_t{1} << 48) - 1}) {
      uint64_t id = TopicMessageId(p, o);
      EXPECT_EQ(TopicMessagePartition(id), p);
      EXPECT_EQ(TopicMessageOffset(id), o);
    }
  }
  EXPECT_NE(TopicMessageId(1, 0), TopicMessageId(0, 1));
}

TEST(ValueToBytes, EveryType) {
  EXPECT_EQ(ValueToBytes(Value("abc")), "abc");
  EXPECT_EQ(ValueToBytes(Value(Bytes{std::string("a\0b", 3)})), std::string("a\0b", 3));
  EXPECT_EQ(ValueToBytes(Value(int64_t{-42})), "-42");
  EXPECT_EQ(ValueToBytes(Value(true)), "true");
  EXPECT_EQ(ValueToBytes(Value(0.5)), "0.5");
}

}  // namespace
}  // namespace brook::streams
