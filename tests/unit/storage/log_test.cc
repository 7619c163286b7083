// PartitionLog behaviour over real files: append/read, rolling, indexes,
// timestamps, truncation, retention, recovery, epochs, group commit.
#include "broker/storage/log.h"

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"
#include "tests/unit/storage/test_util.h"

namespace brook::storage::testing {
namespace {

using proto::ErrorCode;

LogConfig SmallConfig() {
  LogConfig c;
  c.flush_policy = FlushPolicy::kOs;
  c.segment_bytes = 4096;
  c.index_interval_bytes = 256;
  c.retention_ms = -1;
  return c;
}

std::unique_ptr<PartitionLog> OpenLog(const std::string& dir, LogConfig c,
                                      Flusher* flusher = nullptr) {
  auto log = PartitionLog::Open(DefaultFileSystem(), dir, std::move(c), flusher);
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? std::move(*log) : nullptr;
}

// Appends `n` batches of 1..5 records (timestamps 1000 * batch index) and
// returns the stored bytes of each batch keyed by base offset.
std::map<int64_t, std::vector<uint8_t>> AppendMany(PartitionLog& log, int n, int64_t ts0 = 0,
                                                   int32_t epoch = 1) {
  std::map<int64_t, std::vector<uint8_t>> out;
  for (int i = 0; i < n; ++i) {
    std::vector<uint8_t> b = MakeBatch(1 + i % 5, ts0 + 1000 * i, 30, static_cast<uint32_t>(i));
    auto r = log.Append(std::span<uint8_t>(b), LeaderEpoch(epoch));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) break;
    EXPECT_EQ(r->bytes, b.size());
    out[r->base_offset.value()] = b;
  }
  return out;
}

std::vector<uint8_t> Concat(const std::map<int64_t, std::vector<uint8_t>>& batches,
                            int64_t from = 0) {
  std::vector<uint8_t> all;
  for (const auto& [base, b] : batches) {
    if (base >= from) all.insert(all.end(), b.begin(), b.end());
  }
  return all;
}

TEST(PartitionLogTest, AppendAssignsOffsetsAndEpoch) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  std::vector<uint8_t> b1 = MakeBatch(3, 100);
  std::vector<uint8_t> b2 = MakeBatch(2, 200);
  auto r1 = log->Append(std::span<uint8_t>(b1), LeaderEpoch(7));
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->base_offset, Offset(0));
  EXPECT_EQ(r1->last_offset, Offset(2));
  EXPECT_EQ(r1->max_timestamp, 102);
  auto r2 = log->Append(std::span<uint8_t>(b2), LeaderEpoch(7));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->base_offset, Offset(3));
  EXPECT_EQ(log->log_end_offset(), Offset(5));
  auto v = RecordBatchView::Parse(std::span<const uint8_t>(b2));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->base_offset(), 3);
  EXPECT_EQ(v->partition_leader_epoch(), 7);
  EXPECT_TRUE(v->VerifyCrc().ok());
  EXPECT_EQ(log->size_bytes(), static_cast<int64_t>(b1.size() + b2.size()));
}

TEST(PartitionLogTest, MultiBatchAppendIsOneContiguousWrite) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  std::vector<uint8_t> all = MakeBatch(4, 10);
  std::vector<uint8_t> second = MakeBatch(6, 20);
  all.insert(all.end(), second.begin(), second.end());
  auto r = log->Append(std::span<uint8_t>(all), LeaderEpoch(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->base_offset, Offset(0));
  EXPECT_EQ(r->last_offset, Offset(9));
  EXPECT_EQ(BaseOffsets(ReadAll(*log, Offset(0))), (std::vector<int64_t>{0, 4}));
}

TEST(PartitionLogTest, RoundTripAcrossRolledSegments) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  auto batches = AppendMany(*log, 200);
  EXPECT_GT(log->segment_count(), 3);
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
  EXPECT_EQ(ReadAll(*log, Offset(0), 1), Concat(batches));  // one batch per read
  // Every offset reads back the batch that contains it, byte for byte.
  for (auto it = batches.begin(); it != batches.end(); ++it) {
    auto v = RecordBatchView::Parse(std::span<const uint8_t>(it->second));
    ASSERT_TRUE(v.ok());
    for (int64_t o = v->base_offset(); o <= v->last_offset(); ++o) {
      auto r = log->Read(Offset(o), 1, Offset(1LL << 40));
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(*r, it->second) << "offset " << o;
    }
  }
  // A sealed segment has its index files on disk, named by base offset.
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/00000000000000000000.log"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/00000000000000000000.index"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/00000000000000000000.timeindex"));
  EXPECT_EQ(FileSize(dir.path() + "/00000000000000000000.index") % 8, 0u);
  EXPECT_EQ(FileSize(dir.path() + "/00000000000000000000.timeindex") % 12, 0u);
}

TEST(PartitionLogTest, ReadFromTheMiddleOfABatchAndLimits) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  std::vector<uint8_t> b0 = MakeBatch(10, 0);
  std::vector<uint8_t> b1 = MakeBatch(10, 0);
  std::vector<uint8_t> b2 = MakeBatch(10, 0);
  ASSERT_TRUE(log->Append(std::span<uint8_t>(b0), LeaderEpoch(1)).ok());
  ASSERT_TRUE(log->Append(std::span<uint8_t>(b1), LeaderEpoch(1)).ok());
  ASSERT_TRUE(log->Append(std::span<uint8_t>(b2), LeaderEpoch(1)).ok());
  auto r = log->Read(Offset(15), 1, Offset(100));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, b1);  // the whole batch holding 15, though over max_bytes
  r = log->Read(Offset(15), b1.size() + b2.size(), Offset(100));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(BaseOffsets(*r), (std::vector<int64_t>{10, 20}));
  r = log->Read(Offset(15), 1 << 20, Offset(20));  // max_offset excludes batch 20
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(BaseOffsets(*r), (std::vector<int64_t>{10}));
  r = log->Read(Offset(15), 1 << 20, Offset(15));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  r = log->Read(Offset(30), 1 << 20, Offset(100));  // the log end: nothing yet
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  r = log->Read(Offset(31), 1 << 20, Offset(100));
  EXPECT_EQ(CodeOf(r.status()), ErrorCode::OFFSET_OUT_OF_RANGE);
  r = log->Read(Offset(-1), 1 << 20, Offset(100));
  EXPECT_EQ(CodeOf(r.status()), ErrorCode::OFFSET_OUT_OF_RANGE);
}

TEST(PartitionLogTest, OffsetForTimestamp) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  auto batches = AppendMany(*log, 100, /*ts0=*/10000);  // batch i: ts 10000 + 1000 i ...
  ASSERT_GT(log->segment_count(), 2);
  int64_t i = 0;
  for (const auto& [base, b] : batches) {
    int64_t first_ts = 10000 + 1000 * i;
    auto v = RecordBatchView::Parse(std::span<const uint8_t>(b));
    ASSERT_TRUE(v.ok());
    // Exactly the batch's first and max timestamp, and just after the previous.
    EXPECT_EQ(log->OffsetForTimestamp(first_ts).value(), Offset(base)) << i;
    EXPECT_EQ(log->OffsetForTimestamp(v->max_timestamp()).value(), Offset(base)) << i;
    EXPECT_EQ(log->OffsetForTimestamp(first_ts - 500).value(), Offset(base)) << i;
    ++i;
  }
  EXPECT_EQ(log->OffsetForTimestamp(0).value(), Offset(0));
  EXPECT_EQ(log->OffsetForTimestamp(1LL << 50).value(), log->log_end_offset());
}

TEST(PartitionLogTest, TruncateThenAppendContinues) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  auto batches = AppendMany(*log, 120);
  const int segments_before = log->segment_count();
  // Pick a batch in the middle with several records and cut inside it.
  auto it = batches.begin();
  std::advance(it, 60);
  while (RecordBatchView::Parse(std::span<const uint8_t>(it->second))->record_count() < 3) ++it;
  const int64_t cut_base = it->first;
  ASSERT_TRUE(log->TruncateTo(Offset(cut_base + 1)).ok());
  // The straddling batch goes entirely.
  EXPECT_EQ(log->log_end_offset(), Offset(cut_base));
  EXPECT_LT(log->segment_count(), segments_before);
  batches.erase(batches.find(cut_base), batches.end());
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
  // Appends continue at the new end and read back.
  auto more = AppendMany(*log, 30, 500000);
  EXPECT_EQ(more.begin()->first, cut_base);
  batches.insert(more.begin(), more.end());
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
  EXPECT_EQ(log->OffsetForTimestamp(500000).value(), Offset(cut_base));
  // No-op past the end.
  const Offset end = log->log_end_offset();
  ASSERT_TRUE(log->TruncateTo(end + 5).ok());
  EXPECT_EQ(log->log_end_offset(), end);
  ASSERT_TRUE(log->Close().ok());
  // The truncation survives a reopen.
  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->log_end_offset(), end);
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
}

TEST(PartitionLogTest, TruncateToSegmentBaseAndToZero) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  auto batches = AppendMany(*log, 80);
  ASSERT_GT(log->segment_count(), 2);
  // The base of the second segment: the first file name after 0.
  std::vector<std::string> logs;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().extension() == ".log") logs.push_back(e.path().filename().string());
  }
  std::sort(logs.begin(), logs.end());
  const int64_t second = std::stoll(logs[1].substr(0, 20));
  ASSERT_TRUE(log->TruncateTo(Offset(second)).ok());
  EXPECT_EQ(log->log_end_offset(), Offset(second));
  batches.erase(batches.find(second), batches.end());
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
  ASSERT_TRUE(log->TruncateTo(Offset(0)).ok());
  EXPECT_EQ(log->log_end_offset(), Offset(0));
  EXPECT_EQ(log->size_bytes(), 0);
  EXPECT_EQ(log->segment_count(), 1);
  auto again = AppendMany(*log, 3);
  EXPECT_EQ(again.begin()->first, 0);
}

TEST(PartitionLogTest, RollsBySegmentAge) {
  TempDir dir;
  int64_t now = 1'000'000;
  LogConfig c = SmallConfig();
  c.segment_bytes = 1 << 20;
  c.segment_ms = 100;
  c.now_ms = [&now] { return now; };
  auto log = OpenLog(dir.path(), c);
  AppendMany(*log, 3);
  EXPECT_EQ(log->segment_count(), 1);
  now += 99;
  AppendMany(*log, 1);
  EXPECT_EQ(log->segment_count(), 1);
  now += 1;
  AppendMany(*log, 1);
  EXPECT_EQ(log->segment_count(), 2);
  now += 50;
  AppendMany(*log, 1);
  EXPECT_EQ(log->segment_count(), 2);
}

TEST(PartitionLogTest, RetentionByTime) {
  TempDir dir;
  LogConfig c = SmallConfig();
  c.retention_ms = 10'000;
  auto log = OpenLog(dir.path(), c);
  auto batches = AppendMany(*log, 100, /*ts0=*/0);  // timestamps 0 .. ~99'004
  const int before = log->segment_count();
  ASSERT_GT(before, 3);
  // Nothing is older than now - retention when now is early.
  EXPECT_EQ(log->ApplyRetention(0).value(), 0);
  // Now 60'000: every segment whose newest batch is older than 50'000 goes.
  auto deleted = log->ApplyRetention(60'000);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_GT(*deleted, 0);
  EXPECT_EQ(log->segment_count(), before - *deleted);
  const Offset start = log->log_start_offset();
  EXPECT_GT(start, Offset(0));
  // The new start is a batch boundary and the batch before it is too old.
  ASSERT_TRUE(batches.count(start.value()));
  auto prev = std::prev(batches.find(start.value()));
  EXPECT_LT(RecordBatchView::Parse(std::span<const uint8_t>(prev->second))->max_timestamp(),
            50'000);
  EXPECT_EQ(CodeOf(log->Read(Offset(0), 100, Offset(1 << 30)).status()),
            ErrorCode::OFFSET_OUT_OF_RANGE);
  EXPECT_EQ(ReadAll(*log, start), Concat(batches, start.value()));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/00000000000000000000.log"));
  // Everything too old, the active segment included: it is rolled and only
  // an empty active segment remains.
  deleted = log->ApplyRetention(1'000'000);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(log->segment_count(), 1);
  EXPECT_EQ(log->log_start_offset(), log->log_end_offset());
  EXPECT_EQ(log->size_bytes(), 0);
  ASSERT_TRUE(log->Close().ok());
  log = OpenLog(dir.path(), c);
  EXPECT_EQ(log->log_start_offset(), log->log_end_offset());
}

TEST(PartitionLogTest, RetentionBySize) {
  TempDir dir;
  LogConfig c = SmallConfig();
  c.retention_bytes = 10'000;
  auto log = OpenLog(dir.path(), c);
  auto batches = AppendMany(*log, 150);
  ASSERT_GT(log->size_bytes(), 20'000);
  auto deleted = log->ApplyRetention(0);
  ASSERT_TRUE(deleted.ok());
  EXPECT_GT(*deleted, 0);
  EXPECT_LE(log->size_bytes(), 10'000);
  EXPECT_GT(log->size_bytes(), 10'000 - 4096);  // only whole oldest segments went
  EXPECT_EQ(ReadAll(*log, log->log_start_offset()),
            Concat(batches, log->log_start_offset().value()));
}

TEST(PartitionLogTest, RejectsCorruptAndOversizedBatches) {
  TempDir dir;
  LogConfig c = SmallConfig();
  c.max_batch_bytes = 2000;
  auto log = OpenLog(dir.path(), c);
  AppendMany(*log, 2);
  const int64_t size = log->size_bytes();
  const Offset end = log->log_end_offset();

  std::vector<uint8_t> good = MakeBatch(2, 5);
  std::vector<uint8_t> bad = MakeBatch(2, 5);
  bad[bad.size() - 3] ^= 0x40;  // flips a value byte: CRC mismatch
  std::vector<uint8_t> both = good;
  both.insert(both.end(), bad.begin(), bad.end());
  auto r = log->Append(std::span<uint8_t>(both), LeaderEpoch(1));
  EXPECT_EQ(CodeOf(r.status()), ErrorCode::CORRUPT_MESSAGE) << r.status();

  std::vector<uint8_t> partial = MakeBatch(2, 5);
  partial.resize(partial.size() - 1);
  r = log->Append(std::span<uint8_t>(partial), LeaderEpoch(1));
  EXPECT_EQ(CodeOf(r.status()), ErrorCode::CORRUPT_MESSAGE) << r.status();

  std::vector<uint8_t> huge = MakeBatch(1, 5, 3000);
  r = log->Append(std::span<uint8_t>(huge), LeaderEpoch(1));
  EXPECT_EQ(CodeOf(r.status()), ErrorCode::RECORD_TOO_LARGE) << r.status();

  EXPECT_EQ(log->size_bytes(), size);
  EXPECT_EQ(log->log_end_offset(), end);
  EXPECT_FALSE(log->failed());
  ASSERT_TRUE(log->Append(std::span<uint8_t>(good), LeaderEpoch(1)).ok());
  EXPECT_EQ(log->log_end_offset(), end + 2);
}

std::string ActiveLogPath(const std::string& dir) {
  std::string last;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".log" && e.path().string() > last) last = e.path().string();
  }
  return last;
}

TEST(PartitionLogTest, RecoveryTruncatesTornTail) {
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    TempDir dir;
    auto log = OpenLog(dir.path(), SmallConfig());
    auto batches = AppendMany(*log, 50);
    const Offset end = log->log_end_offset();
    ASSERT_TRUE(log->Close().ok());
    const std::string active = ActiveLogPath(dir.path());
    std::vector<uint8_t> bytes = ReadFileBytes(active);
    const std::vector<uint8_t> valid = bytes;
    if (variant == 0) {
      // A torn write: the first 40 bytes of another batch.
      std::vector<uint8_t> extra = MakeBatch(3, 1);
      SetBaseOffset(std::span<uint8_t>(extra), end.value());
      bytes.insert(bytes.end(), extra.begin(), extra.begin() + 40);
    } else if (variant == 1) {
      // Garbage.
      for (int i = 0; i < 300; ++i) bytes.push_back(static_cast<uint8_t>(i * 37));
    } else {
      // A whole next batch whose payload is corrupt (CRC mismatch).
      std::vector<uint8_t> extra = MakeBatch(3, 1);
      SetBaseOffset(std::span<uint8_t>(extra), end.value());
      extra[extra.size() - 2] ^= 1;
      bytes.insert(bytes.end(), extra.begin(), extra.end());
    }
    WriteFileBytes(active, bytes);
    log = OpenLog(dir.path(), SmallConfig());
    EXPECT_EQ(log->log_end_offset(), end);
    EXPECT_EQ(ReadFileBytes(active), valid);
    EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
    auto more = AppendMany(*log, 2);
    EXPECT_EQ(more.begin()->first, end.value());
  }
}

TEST(PartitionLogTest, RecoveryDropsCorruptBatchInTheMiddleOfTheActiveSegment) {
  TempDir dir;
  LogConfig c = SmallConfig();
  c.segment_bytes = 1 << 20;
  auto log = OpenLog(dir.path(), c);
  auto batches = AppendMany(*log, 20);
  ASSERT_TRUE(log->Close().ok());
  // Corrupt batch #10's payload: it and everything after it go.
  auto it = batches.begin();
  std::advance(it, 10);
  uint64_t pos = 0;
  for (auto j = batches.begin(); j != it; ++j) pos += j->second.size();
  const std::string active = ActiveLogPath(dir.path());
  std::vector<uint8_t> bytes = ReadFileBytes(active);
  bytes[pos + it->second.size() - 1] ^= 0xff;
  WriteFileBytes(active, bytes);
  // As after a crash (the active segment's index files are written only at
  // Close, and recovery trusts the prefix they cover): no index, full scan.
  const std::string stem = active.substr(0, active.size() - 4);
  std::filesystem::remove(stem + ".index");
  std::filesystem::remove(stem + ".timeindex");
  log = OpenLog(dir.path(), c);
  EXPECT_EQ(log->log_end_offset(), Offset(it->first));
  batches.erase(it, batches.end());
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
}

TEST(PartitionLogTest, RecoveryRebuildsMissingAndCorruptIndexes) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  auto batches = AppendMany(*log, 150, 10000);
  const Offset end = log->log_end_offset();
  const int segments = log->segment_count();
  ASSERT_TRUE(log->Close().ok());
  std::vector<std::string> indexes;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().extension() != ".log") indexes.push_back(e.path().string());
  }
  ASSERT_GT(indexes.size(), 4u);
  std::map<std::string, std::vector<uint8_t>> originals;
  for (const std::string& p : indexes) originals[p] = ReadFileBytes(p);
  // Delete some index files, corrupt another, and leave stray files behind.
  std::filesystem::remove(indexes[0]);
  std::filesystem::remove(indexes[1]);
  std::vector<uint8_t> junk = {1, 2, 3};
  WriteFileBytes(indexes[2], junk);
  WriteFileBytes(dir.path() + "/00000000000000000000.index.tmp", junk);
  WriteFileBytes(dir.path() + "/00000000000000999999.index", junk);  // no .log
  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->log_end_offset(), end);
  EXPECT_EQ(log->segment_count(), segments);
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
  EXPECT_EQ(ReadAll(*log, Offset(0), 1), Concat(batches));
  int i = 0;
  for (const auto& [base, b] : batches) {
    EXPECT_EQ(log->OffsetForTimestamp(10000 + 1000 * i++).value(), Offset(base));
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/00000000000000000000.index.tmp"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/00000000000000999999.index"));
  ASSERT_TRUE(log->Close().ok());
  // Rebuilt index files are identical to the ones written at roll and close.
  for (const auto& [p, bytes] : originals) EXPECT_EQ(ReadFileBytes(p), bytes) << p;
}

std::vector<std::string> SegmentLogs(const std::string& dir) {
  std::vector<std::string> logs;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".log") logs.push_back(e.path().string());
  }
  std::sort(logs.begin(), logs.end());
  return logs;
}

TEST(PartitionLogTest, RecoveryEndsTheLogAtAMissingSegment) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  auto batches = AppendMany(*log, 120);
  ASSERT_TRUE(log->Close().ok());
  std::vector<std::string> logs = SegmentLogs(dir.path());
  ASSERT_GT(logs.size(), 3u);
  // Lose the second segment: offsets would jump, so the log ends before it.
  std::filesystem::remove(logs[1]);
  const int64_t second = std::stoll(std::filesystem::path(logs[1]).filename().string());
  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->log_end_offset(), Offset(second));
  EXPECT_EQ(log->segment_count(), 1);
  batches.erase(batches.find(second), batches.end());
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
  EXPECT_EQ(SegmentLogs(dir.path()).size(), 1u);
  auto more = AppendMany(*log, 2);
  EXPECT_EQ(more.begin()->first, second);
}

TEST(PartitionLogTest, RecoveryCutsACorruptSealedSegmentAndWhatFollows) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  auto batches = AppendMany(*log, 120);
  ASSERT_TRUE(log->Close().ok());
  std::vector<std::string> logs = SegmentLogs(dir.path());
  ASSERT_GT(logs.size(), 3u);
  // Corrupt the last byte of the first sealed segment (its last batch) and
  // drop its index files so the whole segment is checked.
  std::vector<uint8_t> bytes = ReadFileBytes(logs[0]);
  bytes.back() ^= 0x5a;
  WriteFileBytes(logs[0], bytes);
  const std::string stem = logs[0].substr(0, logs[0].size() - 4);
  std::filesystem::remove(stem + ".index");
  std::filesystem::remove(stem + ".timeindex");
  const int64_t second = std::stoll(std::filesystem::path(logs[1]).filename().string());
  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->segment_count(), 1);
  // The corrupt batch is the last one before the second segment.
  const int64_t corrupt_base = std::prev(batches.find(second))->first;
  EXPECT_EQ(log->log_end_offset(), Offset(corrupt_base));
  batches.erase(batches.find(corrupt_base), batches.end());
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
}

TEST(PartitionLogTest, LeaderEpochCache) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  EXPECT_FALSE(log->latest_epoch().has_value());
  AppendMany(*log, 5, 0, /*epoch=*/1);   // offsets 0..14
  AppendMany(*log, 5, 0, /*epoch=*/3);   // 15..29
  AppendMany(*log, 5, 0, /*epoch=*/3);   // 30..44
  AppendMany(*log, 5, 0, /*epoch=*/6);   // 45..59
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch(6));
  using P = std::pair<LeaderEpoch, Offset>;
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(1)), P(LeaderEpoch(1), Offset(15)));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(2)), P(LeaderEpoch(1), Offset(15)));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(3)), P(LeaderEpoch(3), Offset(45)));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(6)), P(LeaderEpoch(6), Offset(60)));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(9)), P(LeaderEpoch(6), Offset(60)));
  EXPECT_FALSE(log->EndOffsetForEpoch(LeaderEpoch(0)).has_value());
  ASSERT_TRUE(log->Close().ok());
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/leader-epoch-checkpoint"));

  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(3)), P(LeaderEpoch(3), Offset(45)));
  ASSERT_TRUE(log->TruncateTo(Offset(40)).ok());  // inside epoch 3, before 6
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch(3));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(3)), P(LeaderEpoch(3), Offset(40)));
  ASSERT_TRUE(log->Close().ok());
  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch(3));
}

TEST(PartitionLogTest, AssignEpochStartBeforeTheFirstAppendOfTheEpoch) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  AppendMany(*log, 5, 0, /*epoch=*/1);  // offsets 0..14
  using P = std::pair<LeaderEpoch, Offset>;
  // Before: epoch 1 extends to the log end.
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(1)), P(LeaderEpoch(1), Offset(15)));
  ASSERT_TRUE(log->AssignEpochStart(LeaderEpoch(4)).ok());
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch(4));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(1)), P(LeaderEpoch(1), Offset(15)));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(4)), P(LeaderEpoch(4), Offset(15)));
  // Older or equal epochs are ignored.
  ASSERT_TRUE(log->AssignEpochStart(LeaderEpoch(2)).ok());
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch(4));
  // Appends in that epoch extend it; the start stays where it was assigned.
  AppendMany(*log, 2, 0, /*epoch=*/4);  // 15..17
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(3)), P(LeaderEpoch(1), Offset(15)));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(4)), P(LeaderEpoch(4), Offset(18)));
  ASSERT_TRUE(log->Close().ok());
  // Persisted, and an epoch starting exactly at the log end survives reopen.
  log = OpenLog(dir.path(), SmallConfig());
  ASSERT_TRUE(log->AssignEpochStart(LeaderEpoch(7)).ok());
  ASSERT_TRUE(log->Close().ok());
  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch(7));
  EXPECT_EQ(log->EndOffsetForEpoch(LeaderEpoch(6)), P(LeaderEpoch(4), Offset(18)));
}

TEST(PartitionLogTest, TruncateFullyAndStartAtMayMovePastTheEnd) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  AppendMany(*log, 5, 0, /*epoch=*/1);  // offsets 0..14
  ASSERT_TRUE(log->TruncateFullyAndStartAt(Offset(100)).ok());
  EXPECT_EQ(log->log_start_offset(), Offset(100));
  EXPECT_EQ(log->log_end_offset(), Offset(100));
  EXPECT_EQ(log->durable_offset(), Offset(100));
  EXPECT_FALSE(log->latest_epoch().has_value());
  auto r = log->Read(Offset(100), 1 << 20, Offset(1 << 30));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  AppendMany(*log, 1, 0, /*epoch=*/2);
  EXPECT_EQ(log->log_end_offset(), Offset(101));
  ASSERT_TRUE(log->Close().ok());
  log = OpenLog(dir.path(), SmallConfig());
  EXPECT_EQ(log->log_start_offset(), Offset(100));
  EXPECT_EQ(log->log_end_offset(), Offset(101));
}

TEST(PartitionLogTest, AppendReplicatedCopiesTheLeadersBytes) {
  TempDir leader_dir, follower_dir;
  auto leader = OpenLog(leader_dir.path(), SmallConfig());
  auto follower = OpenLog(follower_dir.path(), SmallConfig());
  AppendMany(*leader, 30, 0, 2);
  AppendMany(*leader, 30, 0, 4);
  Offset next(0);
  while (next < leader->log_end_offset()) {
    auto chunk = leader->Read(next, 1500, leader->log_end_offset());
    ASSERT_TRUE(chunk.ok());
    auto r = follower->AppendReplicated(std::span<const uint8_t>(*chunk));
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->last_offset + 1;
  }
  EXPECT_EQ(ReadAll(*follower, Offset(0)), ReadAll(*leader, Offset(0)));
  EXPECT_EQ(follower->EndOffsetForEpoch(LeaderEpoch(2)), leader->EndOffsetForEpoch(LeaderEpoch(2)));
  EXPECT_EQ(follower->latest_epoch(), LeaderEpoch(4));
  // A gap is refused.
  auto first = leader->Read(Offset(0), 1, Offset(1 << 30));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(follower->AppendReplicated(std::span<const uint8_t>(*first)).ok());
}

TEST(PartitionLogTest, GroupCommitCompletesEveryWaiter) {
  TempDir dir;
  Flusher flusher;
  LogConfig c = SmallConfig();
  c.flush_policy = FlushPolicy::kAlways;
  c.segment_bytes = 64 * 1024;
  auto log = OpenLog(dir.path(), c, &flusher);
  constexpr int kThreads = 6;
  constexpr int kPerThread = 150;
  std::atomic<int> ok{0}, failed{0};
  std::atomic<int64_t> violations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::vector<uint8_t> b = MakeBatch(1 + (i % 4), i, 50, static_cast<uint32_t>(t));
        auto r = log->Append(std::span<uint8_t>(b), LeaderEpoch(1));
        if (!r.ok()) {
          failed++;
          continue;
        }
        const int64_t last = r->last_offset.value();
        PartitionLog* lp = log.get();
        log->WhenDurable(r->last_offset, [&, last, lp](absl::Status s) {
          if (!s.ok()) {
            failed++;
            return;
          }
          if (lp->durable_offset().value() <= last) violations++;
          ok++;
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 1000 && ok.load() + failed.load() < kThreads * kPerThread; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(log->durable_offset(), log->log_end_offset());
  EXPECT_EQ(BaseOffsets(ReadAll(*log, Offset(0))).size(),
            static_cast<size_t>(kThreads * kPerThread));
  ASSERT_TRUE(log->Close().ok());
}

TEST(PartitionLogTest, WhenDurableWithoutFlusherSyncsInline) {
  TempDir dir;
  LogConfig c = SmallConfig();
  c.flush_policy = FlushPolicy::kAlways;
  auto log = OpenLog(dir.path(), c);
  auto batches = AppendMany(*log, 3);
  EXPECT_LT(log->durable_offset(), log->log_end_offset());
  absl::Status got = absl::UnknownError("not called");
  log->WhenDurable(log->log_end_offset() - 1, [&](absl::Status s) { got = s; });
  EXPECT_TRUE(got.ok()) << got;
  EXPECT_EQ(log->durable_offset(), log->log_end_offset());
}

TEST(PartitionLogTest, IntervalPolicyFlushesInTheBackground) {
  TempDir dir;
  Flusher flusher;
  LogConfig c = SmallConfig();
  c.flush_policy = FlushPolicy::kInterval;
  c.flush_interval_ms = 20;
  auto log = OpenLog(dir.path(), c, &flusher);
  AppendMany(*log, 5);
  bool called = false;
  log->WhenDurable(log->log_end_offset() - 1, [&](absl::Status s) {
    EXPECT_TRUE(s.ok());
    called = true;
  });
  EXPECT_TRUE(called);  // at once under kInterval
  for (int i = 0; i < 300 && log->durable_offset() < log->log_end_offset(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(log->durable_offset(), log->log_end_offset());
  ASSERT_TRUE(log->Close().ok());
}

TEST(PartitionLogTest, ReadsRunConcurrentlyWithAppendsAndRolls) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, bad{0};
  std::thread reader([&] {
    while (!stop.load()) {
      const Offset end = log->log_end_offset();
      Offset next(0);
      while (next < end) {
        auto r = log->Read(next, 700, end);
        if (!r.ok() || r->empty()) {
          bad++;
          break;
        }
        auto views = SplitBatches(std::span<const uint8_t>(*r));
        if (!views.ok() || views->front().base_offset() > next.value()) {
          bad++;
          break;
        }
        for (const RecordBatchView& v : *views) {
          if (!v.VerifyCrc().ok()) bad++;
        }
        next = Offset(views->back().last_offset() + 1);
        reads++;
      }
    }
  });
  auto batches = AppendMany(*log, 300);
  stop.store(true);
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(ReadAll(*log, Offset(0)), Concat(batches));
}

TEST(PartitionLogTest, ClosedLogRefusesCalls) {
  TempDir dir;
  auto log = OpenLog(dir.path(), SmallConfig());
  AppendMany(*log, 2);
  ASSERT_TRUE(log->Close().ok());
  std::vector<uint8_t> b = MakeBatch(1, 0);
  EXPECT_FALSE(log->Append(std::span<uint8_t>(b), LeaderEpoch(1)).ok());
  EXPECT_FALSE(log->Read(Offset(0), 100, Offset(10)).ok());
  EXPECT_FALSE(log->Close().ok());
}

}  // namespace
}  // namespace brook::storage::testing
