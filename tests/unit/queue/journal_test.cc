// The subscription journal over real files with real fsync: round trips,
// reopening without a clean close, torn and corrupt tails, compaction, the
// group-commit syncer; and over the fault-injecting file system: failed
// fsyncs and writes, and crashes that drop (part of) what was never synced.
#include "broker/queue/journal.h"

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>

#include "common/errors.h"
#include "gtest/gtest.h"
#include "tests/unit/storage/fault_fs.h"

namespace brook::queue {
namespace {

namespace fs = std::filesystem;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = (fs::temp_directory_path() / "brook-qjournal-XXXXXX").string();
    dir_ = mkdtemp(t.data());
    path_ = dir_ + "/g.journal";
    config_.ack_timeout_ms = 5000;
    config_.max_deliveries = 3;
    config_.filter = "a || b";
    config_.key_ordered = true;
    config_.dead_letter_topic = "g-dlq";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::vector<JournalEvent> SomeEvents() {
    std::vector<JournalEvent> ev;
    JournalEvent h;
    h.type = JournalEvent::Type::kHandled;
    h.kind = HandledKind::kAcked;
    h.offset = 10;
    h.end = 12;
    ev.push_back(h);
    JournalEvent d;
    d.type = JournalEvent::Type::kDelivery;
    d.offset = 12;
    d.count = 2;
    d.not_before_ms = 123456;
    ev.push_back(d);
    h.kind = HandledKind::kFiltered;
    h.offset = 14;
    h.end = 20;
    ev.push_back(h);
    return ev;
  }

  storage::FileSystem* fsys() { return storage::DefaultFileSystem(); }

  std::string dir_;
  std::string path_;
  QueueConfig config_;
};

TEST_F(JournalTest, SnapshotAndEventsRoundTrip) {
  SubscriptionSnapshot snap;
  snap.floor = 10;
  snap.handled = {{13, 14}, {30, 40}};
  snap.counts = {{11, 1, 0}, {12, 4, 99}};
  snap.stats = {5, 6, 7, 8};
  {
    auto j = Journal::Create(fsys(), path_, "topic-id-1", config_, snap);
    ASSERT_TRUE(j.ok()) << j.status();
    ASSERT_TRUE((*j)->Append(SomeEvents()).ok());
    QueueConfig changed = config_;
    changed.filter = "*";
    ASSERT_TRUE((*j)->AppendConfig(changed).ok());
    ASSERT_TRUE((*j)->Sync().ok());
  }
  JournalContents c;
  auto j = Journal::Open(fsys(), path_, &c);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_FALSE(c.truncated_tail);
  EXPECT_EQ(c.topic_id, "topic-id-1");
  EXPECT_EQ(c.config.filter, "*");
  EXPECT_EQ(c.config.max_deliveries, 3);
  EXPECT_TRUE(c.config.key_ordered);
  EXPECT_EQ(c.snapshot.floor, 10);
  EXPECT_EQ(c.snapshot.handled, snap.handled);
  ASSERT_EQ(c.snapshot.counts.size(), 2u);
  EXPECT_EQ(c.snapshot.counts[1].count, 4);
  EXPECT_EQ(c.snapshot.counts[1].not_before_ms, 99);
  EXPECT_EQ(c.snapshot.stats, snap.stats);
  EXPECT_EQ(c.events, SomeEvents());
}

TEST_F(JournalTest, ReopenWithoutCloseKeepsSyncedEvents) {
  // The first journal is never closed (a crashed process): its file handle
  // leaks on purpose until the end of the test.
  auto j = Journal::Create(fsys(), path_, "t", config_, SubscriptionSnapshot{});
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->Append(SomeEvents()).ok());
  ASSERT_TRUE((*j)->Sync().ok());
  JournalContents c;
  auto reopened = Journal::Open(fsys(), path_, &c);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(c.events, SomeEvents());
  // Appends continue after the replayed records.
  JournalEvent more;
  more.type = JournalEvent::Type::kHandled;
  more.offset = 50;
  more.end = 51;
  ASSERT_TRUE((*reopened)->Append({more}).ok());
  ASSERT_TRUE((*reopened)->Sync().ok());
  reopened->reset();
  JournalContents c2;
  ASSERT_TRUE(Journal::Open(fsys(), path_, &c2).ok());
  ASSERT_EQ(c2.events.size(), 4u);
  EXPECT_EQ(c2.events.back(), more);
}

TEST_F(JournalTest, TornTailIsIgnoredAndCut) {
  {
    auto j = Journal::Create(fsys(), path_, "t", config_, SubscriptionSnapshot{});
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append(SomeEvents()).ok());
    ASSERT_TRUE((*j)->Sync().ok());
  }
  const auto good_size = fs::file_size(path_);
  // Half of a further record: a write cut by a crash.
  std::vector<uint8_t> rec;
  AppendEventRecord(SomeEvents()[1], &rec);
  {
    std::ofstream out(path_, std::ios::binary | std::ios::app);
    out.write(reinterpret_cast<const char*>(rec.data()), static_cast<std::streamsize>(rec.size() / 2));
  }
  ASSERT_GT(fs::file_size(path_), good_size);
  JournalContents c;
  auto j = Journal::Open(fsys(), path_, &c);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE(c.truncated_tail);
  EXPECT_EQ(c.events, SomeEvents());
  EXPECT_EQ(fs::file_size(path_), good_size);
  // New appends after the cut are readable.
  ASSERT_TRUE((*j)->Append({SomeEvents()[0]}).ok());
  ASSERT_TRUE((*j)->Sync().ok());
  j->reset();
  JournalContents c2;
  ASSERT_TRUE(Journal::Open(fsys(), path_, &c2).ok());
  EXPECT_FALSE(c2.truncated_tail);
  EXPECT_EQ(c2.events.size(), 4u);
}

TEST_F(JournalTest, CorruptRecordEndsReplay) {
  {
    auto j = Journal::Create(fsys(), path_, "t", config_, SubscriptionSnapshot{});
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append(SomeEvents()).ok());
    ASSERT_TRUE((*j)->Sync().ok());
  }
  // Flip the last byte (inside the last record's body): its CRC fails.
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(-1, std::ios::end);
    char b;
    f.read(&b, 1);
    f.seekp(-1, std::ios::end);
    b = static_cast<char>(b ^ 0x5a);
    f.write(&b, 1);
  }
  JournalContents c;
  ASSERT_TRUE(Journal::Open(fsys(), path_, &c).ok());
  EXPECT_TRUE(c.truncated_tail);
  ASSERT_EQ(c.events.size(), 2u);
  EXPECT_EQ(c.events[1], SomeEvents()[1]);
}

TEST_F(JournalTest, UnreadableSnapshotIsDataLoss) {
  std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  EXPECT_TRUE(absl::IsDataLoss(ParseJournal(junk).status()));
  EXPECT_TRUE(absl::IsDataLoss(ParseJournal({}).status()));
  // Events without a snapshot first are not a journal either.
  std::vector<uint8_t> events;
  AppendEventRecord(SomeEvents()[0], &events);
  EXPECT_TRUE(absl::IsDataLoss(ParseJournal(events).status()));
  JournalContents c;
  EXPECT_TRUE(absl::IsNotFound(Journal::Open(fsys(), dir_ + "/missing", &c).status()));
  // A file without a readable snapshot: the service deletes it and starts over.
  ASSERT_TRUE(storage::WriteFileAtomic(fsys(), path_, junk).ok());
  auto bad = Journal::Open(fsys(), path_, &c);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(ToErrorCode(bad.status()), proto::CORRUPT_MESSAGE);
}

TEST_F(JournalTest, CompactionReplacesEventsBySnapshot) {
  auto j = Journal::Create(fsys(), path_, "t", config_, SubscriptionSnapshot{});
  ASSERT_TRUE(j.ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*j)->Append(SomeEvents()).ok());
  const uint64_t big = (*j)->size();
  SubscriptionSnapshot snap;
  snap.floor = 1000;
  snap.counts = {{1001, 2, 0}};
  ASSERT_TRUE((*j)->Compact("t", config_, snap).ok());
  EXPECT_LT((*j)->size(), big / 10);
  ASSERT_TRUE((*j)->Append({SomeEvents()[1]}).ok());
  ASSERT_TRUE((*j)->Sync().ok());
  j->reset();
  JournalContents c;
  ASSERT_TRUE(Journal::Open(fsys(), path_, &c).ok());
  EXPECT_EQ(c.snapshot.floor, 1000);
  ASSERT_EQ(c.snapshot.counts.size(), 1u);
  EXPECT_EQ(c.events.size(), 1u);
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
}

TEST_F(JournalTest, SyncerAnswersEveryWaiter) {
  auto j = Journal::Create(fsys(), path_, "t", config_, SubscriptionSnapshot{});
  ASSERT_TRUE(j.ok());
  std::shared_ptr<Journal> journal(std::move(*j));
  std::atomic<int> done{0};
  std::promise<void> all;
  {
    JournalSyncer syncer;
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(journal->Append(SomeEvents()).ok());
      syncer.WhenDurable(journal, [&](absl::Status s) {
        EXPECT_TRUE(s.ok()) << s;
        if (done.fetch_add(1) == 49) all.set_value();
      });
    }
    all.get_future().wait();
  }
  EXPECT_EQ(done.load(), 50);
}

JournalEvent Delivery(int64_t offset) {
  JournalEvent e;
  e.type = JournalEvent::Type::kDelivery;
  e.offset = offset;
  e.count = 1;
  return e;
}

TEST_F(JournalTest, FailedFsyncIsPermanent) {
  storage::testing::FaultInjectionFileSystem faults;
  auto j = Journal::Create(&faults, path_, "t", config_, SubscriptionSnapshot{});
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_TRUE((*j)->Append({Delivery(1)}).ok());
  faults.FailNextSync();
  EXPECT_FALSE((*j)->Sync().ok());
  // Never retried as if nothing happened.
  EXPECT_FALSE((*j)->Append({Delivery(2)}).ok());
  EXPECT_FALSE((*j)->Sync().ok());
}

TEST_F(JournalTest, FailedWriteLeavesNoPartialRecord) {
  storage::testing::FaultInjectionFileSystem faults;
  auto j = Journal::Create(&faults, path_, "t", config_, SubscriptionSnapshot{});
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_TRUE((*j)->Append({Delivery(1)}).ok());
  faults.FailNextWrites(1);
  EXPECT_FALSE((*j)->Append({Delivery(2)}).ok());
  ASSERT_TRUE((*j)->Append({Delivery(3)}).ok());
  ASSERT_TRUE((*j)->Sync().ok());
  j->reset();
  JournalContents c;
  ASSERT_TRUE(Journal::Open(&faults, path_, &c).ok());
  EXPECT_FALSE(c.truncated_tail);
  EXPECT_EQ(c.events, (std::vector<JournalEvent>{Delivery(1), Delivery(3)}));
}

TEST_F(JournalTest, CrashKeepsEverySyncedEventAndAPrefixOfTheRest) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    SCOPED_TRACE(seed);
    storage::testing::FaultInjectionFileSystem faults;
    fs::remove(path_);
    auto j = Journal::Create(&faults, path_, "t", config_, SubscriptionSnapshot{});
    ASSERT_TRUE(j.ok()) << j.status();
    std::vector<JournalEvent> all;
    for (int i = 0; i < 30; ++i) {
      all.push_back(Delivery(i));
      ASSERT_TRUE((*j)->Append({all.back()}).ok());
      if (i == 19) {
        ASSERT_TRUE((*j)->Sync().ok());
      }
    }
    faults.Crash(seed);
    j->reset();
    faults.Restart();
    JournalContents c;
    auto reopened = Journal::Open(&faults, path_, &c);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    ASSERT_GE(c.events.size(), 20u);
    ASSERT_LE(c.events.size(), all.size());
    EXPECT_TRUE(std::equal(c.events.begin(), c.events.end(), all.begin()));
  }
}

TEST_F(JournalTest, CorruptedBytesNeverCrashTheParser) {
  SubscriptionSnapshot snap;
  snap.floor = 5;
  snap.handled = {{7, 9}};
  snap.counts = {{6, 2, 0}};
  std::vector<uint8_t> bytes = EncodeSnapshotRecord("t", config_, snap);
  for (const auto& e : SomeEvents()) AppendEventRecord(e, &bytes);
  AppendConfigRecord(config_, &bytes);
  std::mt19937 rng(42);
  for (int round = 0; round < 2000; ++round) {
    std::vector<uint8_t> b = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) b[rng() % b.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    if (rng() % 2) b.resize(rng() % (b.size() + 1));
    auto c = ParseJournal(b);
    if (!c.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(c.status()));
      continue;
    }
    // Whatever survives is a prefix of what was written.
    ASSERT_LE(c->events.size(), SomeEvents().size());
    const auto expected = SomeEvents();
    EXPECT_TRUE(std::equal(c->events.begin(), c->events.end(), expected.begin()));
    EXPECT_LE(c->valid_bytes, b.size());
  }
}

}  // namespace
}  // namespace brook::queue
