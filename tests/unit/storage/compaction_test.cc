// PartitionLog::Compact over real files: latest value per key with original
// offsets, reads and timestamp look-ups across gaps, tombstones, keyless
// records, compaction lag and dirty ratio, compressed batches, idempotence,
// keyless produce refusal, replication of a compacted log, crashes at every
// step of a compaction (fault file system), and reads during compaction.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "broker/storage/log.h"
#include "broker/storage/log_cleaner.h"
#include "common/crc32c.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"
#include "tests/unit/storage/fault_fs.h"
#include "tests/unit/storage/test_util.h"

namespace brook::storage::testing {
namespace {

using proto::ErrorCode;

struct Rec {
  std::optional<std::string> key;
  std::optional<std::string> value;
};

struct Stored {
  int64_t offset;
  int64_t timestamp;
  std::optional<std::string> key;
  std::optional<std::string> value;
};

LogConfig CompactConfig() {
  LogConfig c;
  c.flush_policy = FlushPolicy::kOs;
  c.segment_bytes = 1024;
  c.index_interval_bytes = 128;
  c.retention_ms = -1;
  c.cleanup_policy = CleanupPolicy::kCompact;
  c.min_cleanable_dirty_ratio = 0;
  c.delete_retention_ms = 1000;
  return c;
}

std::unique_ptr<PartitionLog> OpenLog(FileSystem* fs, const std::string& dir, LogConfig c) {
  auto log = PartitionLog::Open(fs, dir, std::move(c));
  EXPECT_TRUE(log.ok()) << log.status();
  return log.ok() ? std::move(*log) : nullptr;
}

std::vector<uint8_t> Batch(const std::vector<Rec>& recs, int64_t ts,
                           Compression codec = Compression::kNone) {
  RecordBatchBuilder::Options o;
  o.compression = codec;
  RecordBatchBuilder b(o);
  for (const Rec& r : recs) {
    std::optional<std::string_view> k, v;
    if (r.key) k = *r.key;
    if (r.value) v = *r.value;
    b.Append(ts, k, v);
  }
  return b.Build();
}

int64_t AppendRecs(PartitionLog& log, const std::vector<Rec>& recs, int64_t ts,
                   Compression codec = Compression::kNone) {
  std::vector<uint8_t> b = Batch(recs, ts, codec);
  auto r = log.Append(std::span<uint8_t>(b), LeaderEpoch(1));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->base_offset.value() : -1;
}

// Every record in the log, decoded, checking each batch's CRC and that
// offsets strictly increase.
std::vector<Stored> Records(const PartitionLog& log) {
  std::vector<uint8_t> bytes = ReadAll(log, log.log_start_offset());
  auto views = SplitBatches(std::span<const uint8_t>(bytes));
  EXPECT_TRUE(views.ok()) << views.status();
  std::vector<Stored> out;
  if (!views.ok()) return out;
  RecordReader reader;
  int64_t prev_last = -1;
  for (const RecordBatchView& v : *views) {
    EXPECT_TRUE(v.VerifyCrc().ok()) << "batch at " << v.base_offset();
    EXPECT_GT(v.base_offset(), prev_last);
    prev_last = v.last_offset();
    std::vector<RecordView> recs;
    absl::Status s = reader.Read(v, &recs);
    EXPECT_TRUE(s.ok()) << s;
    for (const RecordView& r : recs) {
      Stored st{r.offset, r.timestamp, std::nullopt, std::nullopt};
      if (r.key) st.key = std::string(*r.key);
      if (r.value) st.value = std::string(*r.value);
      EXPECT_TRUE(out.empty() || st.offset > out.back().offset) << st.offset;
      out.push_back(std::move(st));
    }
  }
  return out;
}

std::vector<std::string> SegmentLogs(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".log") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int64_t ActiveBase(const std::string& dir) {
  return std::stoll(std::filesystem::path(SegmentLogs(dir).back()).filename().string());
}

bool HasFileEndingIn(const std::string& dir, const std::string& suffix) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

std::string Key(int i) { return "key-" + std::to_string(i); }
std::string Value(int i) { return "value-" + std::to_string(i) + "-padding-padding"; }

// Appends `n` single-record batches over `keys` keys (timestamp = 1000 + i);
// returns offset -> (key, value).
std::map<int64_t, std::pair<std::string, std::string>> Updates(PartitionLog& log, int n, int keys,
                                                               int first = 0) {
  std::map<int64_t, std::pair<std::string, std::string>> out;
  for (int i = first; i < first + n; ++i) {
    int64_t off = AppendRecs(log, {{Key(i % keys), Value(i)}}, 1000 + i);
    out[off] = {Key(i % keys), Value(i)};
  }
  return out;
}

// What a compaction must leave: the latest record per key below the active
// segment, plus everything in the active segment.
std::map<int64_t, std::string> Expected(
    const std::map<int64_t, std::pair<std::string, std::string>>& all, int64_t active_base) {
  std::map<std::string, int64_t> latest;
  for (const auto& [off, kv] : all) latest[kv.first] = off;
  std::map<int64_t, std::string> out;
  for (const auto& [off, kv] : all) {
    if (off >= active_base || latest[kv.first] == off) out[off] = kv.second;
  }
  return out;
}

std::map<int64_t, std::string> AsMap(const std::vector<Stored>& recs) {
  std::map<int64_t, std::string> out;
  for (const Stored& s : recs) out[s.offset] = s.value.value_or("<null>");
  return out;
}

TEST(CompactionTest, KeepsTheLatestValuePerKeyAtItsOriginalOffset) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  auto all = Updates(*log, 300, 7);
  ASSERT_GT(log->segment_count(), 3);
  const int64_t size_before = log->size_bytes();
  const Offset end = log->log_end_offset();
  const int64_t active = ActiveBase(dir.path());

  auto stats = log->Compact(1'000'000);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(stats->cleaned) << stats->skipped_reason;
  EXPECT_GT(stats->records_removed, 200);
  EXPECT_GT(stats->bytes_removed, 0);
  EXPECT_EQ(stats->clean_offset, Offset(active));
  EXPECT_EQ(log->clean_offset(), Offset(active));
  EXPECT_EQ(log->size_bytes(), size_before - stats->bytes_removed);
  EXPECT_EQ(log->log_start_offset(), Offset(0));
  EXPECT_EQ(log->log_end_offset(), end);

  const auto expected = Expected(all, active);
  EXPECT_EQ(AsMap(Records(*log)), expected);

  // Recovery accepts the gaps and sees the same records; appends continue.
  ASSERT_TRUE(log->Close().ok());
  log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  EXPECT_EQ(log->log_end_offset(), end);
  EXPECT_EQ(log->clean_offset(), Offset(active));
  EXPECT_EQ(AsMap(Records(*log)), expected);
  EXPECT_EQ(AppendRecs(*log, {{Key(1), "new"}}, 5000), end.value());
}

TEST(CompactionTest, ReadOfARemovedOffsetReturnsTheNextBatch) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  auto all = Updates(*log, 200, 3);
  ASSERT_TRUE(log->Compact(1'000'000).ok());
  const auto kept = AsMap(Records(*log));
  int checked = 0;
  for (const auto& [off, kv] : all) {
    if (kept.count(off) != 0) continue;
    auto r = log->Read(Offset(off), 1, log->log_end_offset());
    ASSERT_TRUE(r.ok()) << r.status();
    auto views = SplitBatches(std::span<const uint8_t>(*r));
    ASSERT_TRUE(views.ok());
    ASSERT_FALSE(views->empty()) << "offset " << off;
    const int64_t next = kept.upper_bound(off)->first;
    EXPECT_EQ(views->front().base_offset(), next) << "offset " << off;
    // Timestamp = 1000 + index = 1000 + offset here (one record per batch).
    auto t = log->OffsetForTimestamp(1000 + off);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->value(), next) << "timestamp of offset " << off;
    ++checked;
  }
  EXPECT_GT(checked, 100);
  // Below the log start is still out of range.
  EXPECT_EQ(CodeOf(log->Read(Offset(-1), 1, Offset(1000)).status()), ErrorCode::OFFSET_OUT_OF_RANGE);
}

TEST(CompactionTest, TombstonesStayForDeleteRetentionThenGo) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  AppendRecs(*log, {{"gone", "v1"}}, 100);
  AppendRecs(*log, {{"gone", "v2"}}, 200);
  const int64_t tomb = AppendRecs(*log, {{"gone", std::nullopt}}, 300);
  Updates(*log, 80, 4);  // timestamps 1000.., rolls several segments

  auto stats = log->Compact(300 + 500);  // the tombstone is younger than 1000 ms
  ASSERT_TRUE(stats.ok() && stats->cleaned) << stats.status();
  auto recs = Records(*log);
  std::vector<Stored> gone;
  for (const Stored& s : recs) {
    if (s.key == "gone") gone.push_back(s);
  }
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].offset, tomb);
  EXPECT_FALSE(gone[0].value.has_value());

  // New writes make the log dirty again; now the tombstone has expired.
  Updates(*log, 40, 4, 80);
  stats = log->Compact(300 + 1000 + 1);
  ASSERT_TRUE(stats.ok() && stats->cleaned) << stats.status();
  for (const Stored& s : Records(*log)) EXPECT_NE(s.key, std::optional<std::string>("gone"));
}

TEST(CompactionTest, KeylessRecordsAreKept) {
  TempDir dir;
  LogConfig c = CompactConfig();
  c.cleanup_policy = CleanupPolicy::kCompactDelete;  // keyless records are accepted
  auto log = OpenLog(DefaultFileSystem(), dir.path(), c);
  std::set<int64_t> keyless;
  for (int i = 0; i < 100; ++i) {
    if (i % 10 == 0) {
      keyless.insert(AppendRecs(*log, {{std::nullopt, "no-key-" + std::to_string(i)}}, 1000 + i));
    } else {
      AppendRecs(*log, {{Key(i % 2), Value(i)}}, 1000 + i);
    }
  }
  ASSERT_TRUE(log->Compact(1'000'000).ok());
  std::set<int64_t> seen;
  for (const Stored& s : Records(*log)) {
    if (!s.key.has_value()) seen.insert(s.offset);
  }
  EXPECT_EQ(seen, keyless);
}

TEST(CompactionTest, CompactOnlyTopicRefusesKeylessRecords) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  std::vector<uint8_t> b = Batch({{"k", "v"}, {std::nullopt, "v"}}, 1);
  auto r = log->Append(std::span<uint8_t>(b), LeaderEpoch(1));
  EXPECT_EQ(CodeOf(r.status()), ErrorCode::INVALID_RECORD) << r.status();
  EXPECT_EQ(log->log_end_offset(), Offset(0));
  std::vector<uint8_t> z = Batch({{std::nullopt, std::string(500, 'x')}}, 1, Compression::kZstd);
  EXPECT_EQ(CodeOf(log->Append(std::span<uint8_t>(z), LeaderEpoch(1)).status()),
            ErrorCode::INVALID_RECORD);
  EXPECT_EQ(AppendRecs(*log, {{"k", "v"}}, 1), 0);
  // A codec compaction cannot read (gzip here) is refused as such, not as
  // corruption: the batch below is marked gzip with a valid CRC.
  std::vector<uint8_t> g = Batch({{"k", "v"}}, 1);
  uint16_t attributes = wire::GetBE16(g.data() + batch_layout::kAttributes);
  attributes = static_cast<uint16_t>((attributes & ~kCompressionMask) |
                                     static_cast<uint16_t>(Compression::kGzip));
  wire::PutBE16(g.data() + batch_layout::kAttributes, attributes);
  wire::PutBE32(g.data() + batch_layout::kCrc,
                Crc32c(g.data() + batch_layout::kAttributes, g.size() - batch_layout::kAttributes));
  auto gz = log->Append(std::span<uint8_t>(g), LeaderEpoch(1));
  EXPECT_EQ(CodeOf(gz.status()), ErrorCode::INVALID_RECORD) << gz.status();
  EXPECT_NE(gz.status().message().find("zstd"), std::string::npos) << gz.status();
  EXPECT_EQ(log->log_end_offset(), Offset(1));
}

TEST(CompactionTest, RespectsCompactionLagAndDirtyRatio) {
  TempDir dir;
  LogConfig c = CompactConfig();
  c.min_compaction_lag_ms = 10'000;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), c);
  Updates(*log, 200, 100);  // timestamps 1000..1199
  // Every sealed segment is younger than the lag.
  auto stats = log->Compact(1199 + 5000);
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->cleaned);
  EXPECT_EQ(stats->records_removed, 0);
  // Late enough: everything sealed is cleanable.
  stats = log->Compact(1199 + 10'000);
  ASSERT_TRUE(stats.ok());
  EXPECT_TRUE(stats->cleaned) << stats->skipped_reason;
  EXPECT_GT(stats->records_removed, 0);
  ASSERT_TRUE(log->Close().ok());

  // A little new data against a large clean part: below a 0.9 ratio.
  c.min_compaction_lag_ms = 0;
  c.min_cleanable_dirty_ratio = 0.5;
  log = OpenLog(DefaultFileSystem(), dir.path(), c);
  Updates(*log, 30, 100, 200);
  stats = log->Compact(1'000'000);
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->cleaned);
  EXPECT_GT(stats->dirty_ratio, 0.0);
  EXPECT_LT(stats->dirty_ratio, 0.5);
  // Plenty of new data passes it.
  Updates(*log, 400, 100, 230);
  stats = log->Compact(1'000'000);
  ASSERT_TRUE(stats.ok());
  EXPECT_TRUE(stats->cleaned) << stats->skipped_reason << " " << stats->dirty_ratio;
}

TEST(CompactionTest, CompressedBatchesArePartlyKeptAndStayCompressed) {
  TempDir dir;
  LogConfig c = CompactConfig();
  c.segment_bytes = 2048;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), c);
  std::map<int64_t, std::pair<std::string, std::string>> all;
  for (int b = 0; b < 40; ++b) {
    std::vector<Rec> recs;
    for (int i = 0; i < 10; ++i) {
      // Half the keys of a batch are unique, half repeat in every batch.
      const int k = i < 5 ? 100 + b * 10 + i : i;
      recs.push_back({Key(k), Value(b * 10 + i) + std::string(100, 'z')});
    }
    int64_t base = AppendRecs(*log, recs, 1000 + b, Compression::kZstd);
    for (int i = 0; i < 10; ++i) all[base + i] = {*recs[i].key, *recs[i].value};
  }
  ASSERT_GT(log->segment_count(), 2);
  const int64_t active = ActiveBase(dir.path());
  auto stats = log->Compact(1'000'000);
  ASSERT_TRUE(stats.ok() && stats->cleaned) << stats.status();
  EXPECT_EQ(AsMap(Records(*log)), Expected(all, active));
  // The rewritten batches are still zstd (and their CRCs checked in Records).
  std::vector<uint8_t> bytes = ReadAll(*log, Offset(0));
  auto views = SplitBatches(std::span<const uint8_t>(bytes));
  ASSERT_TRUE(views.ok());
  int partial = 0;
  for (const RecordBatchView& v : *views) {
    EXPECT_EQ(v.compression(), Compression::kZstd);
    EXPECT_EQ(v.last_offset_delta(), 9);  // offsets preserved
    if (v.record_count() < 10) ++partial;
  }
  EXPECT_GT(partial, 0);
}

TEST(CompactionTest, SecondCompactionWithoutWritesChangesNothing) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  Updates(*log, 200, 5);
  ASSERT_TRUE(log->Compact(1'000'000).ok());
  const std::vector<uint8_t> before = ReadAll(*log, Offset(0));
  auto stats = log->Compact(1'000'000);
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->cleaned);
  EXPECT_EQ(stats->records_removed, 0);
  EXPECT_EQ(ReadAll(*log, Offset(0)), before);
  // Also after a restart (the checkpoint is durable).
  ASSERT_TRUE(log->Close().ok());
  log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  stats = log->Compact(1'000'000);
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->cleaned);
  EXPECT_EQ(ReadAll(*log, Offset(0)), before);
}

TEST(CompactionTest, DeletePolicyDoesNotCompactAndCompactPolicyKeepsOldSegments) {
  TempDir a, b;
  LogConfig del = CompactConfig();
  del.cleanup_policy = CleanupPolicy::kDelete;
  auto log = OpenLog(DefaultFileSystem(), a.path(), del);
  Updates(*log, 100, 2);
  auto stats = log->Compact(1'000'000);
  ASSERT_TRUE(stats.ok());
  EXPECT_FALSE(stats->cleaned);
  EXPECT_EQ(Records(*log).size(), 100u);

  LogConfig compact = CompactConfig();
  compact.retention_ms = 1;
  compact.retention_bytes = 1;
  log = OpenLog(DefaultFileSystem(), b.path(), compact);
  Updates(*log, 100, 2);
  auto deleted = log->ApplyRetention(1'000'000);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 0);
  EXPECT_EQ(log->log_start_offset(), Offset(0));
}

TEST(CompactionTest, TheLastBatchOfTheLogStaysReachable) {
  TempDir dir;
  LogConfig c = CompactConfig();
  c.cleanup_policy = CleanupPolicy::kCompactDelete;
  c.segment_bytes = 100;  // one batch per segment
  c.retention_ms = 1000;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), c);
  const int64_t t = 1'000'000'000;
  for (int i = 0; i < 10; ++i) AppendRecs(*log, {{Key(0), Value(i)}}, t + i);
  // The log ends with an old tombstone; retention rolls its segment (too
  // old) but deletes nothing (the first segment is new), so nothing follows.
  const int64_t tomb = AppendRecs(*log, {{Key(0), std::nullopt}}, 0);
  auto deleted = log->ApplyRetention(t);
  ASSERT_TRUE(deleted.ok());
  ASSERT_EQ(*deleted, 0);
  const Offset end = log->log_end_offset();
  ASSERT_EQ(end, Offset(tomb + 1));
  auto stats = log->Compact(t + 100);
  ASSERT_TRUE(stats.ok() && stats->cleaned) << stats.status();
  EXPECT_EQ(stats->records_removed, 11);  // 10 old values and the expired tombstone
  // The emptied batch stays, so reads at the tombstone's offset still reach
  // the log end instead of finding nothing below it.
  auto r = log->Read(Offset(tomb), 1 << 20, end);
  ASSERT_TRUE(r.ok());
  auto views = SplitBatches(std::span<const uint8_t>(*r));
  ASSERT_TRUE(views.ok());
  ASSERT_EQ(views->size(), 1u);
  EXPECT_EQ(views->back().last_offset(), end.value() - 1);
  EXPECT_EQ(views->back().record_count(), 0);
  EXPECT_TRUE(views->back().VerifyCrc().ok());
  EXPECT_TRUE(Records(*log).empty());
  EXPECT_EQ(log->log_start_offset(), Offset(0));
}

TEST(CompactionTest, AFollowerReplicatesACompactedLog) {
  TempDir leader_dir, follower_dir;
  auto leader = OpenLog(DefaultFileSystem(), leader_dir.path(), CompactConfig());
  auto all = Updates(*leader, 200, 4);
  ASSERT_TRUE(leader->Compact(1'000'000).ok());
  auto follower = OpenLog(DefaultFileSystem(), follower_dir.path(), CompactConfig());
  Offset next(0);
  while (next < leader->log_end_offset()) {
    // Fetch from the follower's log end, which may fall in a gap.
    auto chunk = leader->Read(follower->log_end_offset(), 700, leader->log_end_offset());
    ASSERT_TRUE(chunk.ok());
    ASSERT_FALSE(chunk->empty());
    auto r = follower->AppendReplicated(std::span<const uint8_t>(*chunk));
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->last_offset + 1;
    EXPECT_EQ(follower->log_end_offset(), next);
  }
  EXPECT_EQ(ReadAll(*follower, Offset(0)), ReadAll(*leader, Offset(0)));
  // Leader-epoch truncation on the follower still works with gaps, and the
  // follower survives a restart.
  const auto recs = Records(*follower);
  const int64_t cut = recs[recs.size() / 2].offset + 1;  // inside a gap or a batch
  ASSERT_TRUE(follower->TruncateTo(Offset(cut)).ok());
  EXPECT_LE(follower->log_end_offset(), Offset(cut));
  ASSERT_TRUE(follower->Close().ok());
  follower = OpenLog(DefaultFileSystem(), follower_dir.path(), CompactConfig());
  for (const Stored& s : Records(*follower)) EXPECT_LT(s.offset, cut);
  EXPECT_EQ(Records(*follower).size(), static_cast<size_t>(std::count_if(
                                           recs.begin(), recs.end(),
                                           [&](const Stored& s) { return s.offset < cut; })));
  // It can compact its own replica independently.
  auto stats = follower->Compact(1'000'000);
  ASSERT_TRUE(stats.ok()) << stats.status();
}

TEST(CompactionTest, ALimitKeepsRecordsAtOrAboveItFromDecidingAnything) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  Updates(*log, 100, 2);
  const Offset hw = log->log_end_offset();
  Updates(*log, 100, 2, 100);  // above the "high watermark"
  auto stats = log->Compact(1'000'000, hw);
  ASSERT_TRUE(stats.ok());
  ASSERT_TRUE(stats->cleaned) << stats->skipped_reason;
  EXPECT_LE(stats->clean_offset, hw);
  // Per key, the latest record below hw survives.
  std::map<std::string, int64_t> latest_below;
  for (const Stored& s : Records(*log)) {
    if (s.offset < hw.value()) latest_below[*s.key] = std::max(latest_below[*s.key], s.offset);
  }
  EXPECT_EQ(latest_below[Key(0)], 98);
  EXPECT_EQ(latest_below[Key(1)], 99);
}

// A snapshot of what a reader sees: offset -> value for every record.
void ExpectLatestValuesAndNoDuplicates(const PartitionLog& log,
                                       const std::map<std::string, std::string>& latest) {
  std::map<std::string, std::string> seen;
  std::set<int64_t> offsets;
  for (const Stored& s : Records(log)) {
    EXPECT_TRUE(offsets.insert(s.offset).second) << "duplicate offset " << s.offset;
    seen[*s.key] = s.value.value_or("<null>");
  }
  EXPECT_EQ(seen, latest);
}

TEST(CompactionTest, FailedFsyncWriteOrRenameLeavesTheLogIntact) {
  for (int fault = 0; fault < 3; ++fault) {
    SCOPED_TRACE(fault);
    TempDir dir;
    FaultInjectionFileSystem fs;
    auto log = OpenLog(&fs, dir.path(), CompactConfig());
    Updates(*log, 200, 5);
    const std::vector<uint8_t> before = ReadAll(*log, Offset(0));
    if (fault == 0) fs.FailNextSync();
    if (fault == 1) fs.FailNextWrites(1);
    if (fault == 2) fs.FailNextRename();
    auto stats = log->Compact(1'000'000);
    EXPECT_FALSE(stats.ok());
    EXPECT_FALSE(log->failed());
    EXPECT_EQ(ReadAll(*log, Offset(0)), before);
    EXPECT_FALSE(HasFileEndingIn(dir.path(), ".cleaned"));
    // The next attempt succeeds.
    stats = log->Compact(1'000'000);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_GT(stats->records_removed, 0);
  }
}

TEST(CompactionTest, CrashAtEveryStepRecoversOldOrNewButNeverLosesOrDuplicates) {
  // One closed (synced) log, copied for every crash point; the fault file
  // system counts a copied file as synced at the size it is first opened at.
  TempDir model;
  std::map<std::string, std::string> latest;
  {
    auto log = OpenLog(DefaultFileSystem(), model.path(), CompactConfig());
    for (int i = 0; i < 50; ++i) {
      AppendRecs(*log, {{Key(i % 5), Value(i)}}, 1000 + i);
      latest[Key(i % 5)] = Value(i);
    }
    ASSERT_TRUE(log->Close().ok());
  }
  int crash_point = 0;
  bool finished = false;
  while (!finished && crash_point < 400) {
    SCOPED_TRACE(crash_point);
    TempDir dir;
    std::filesystem::copy(model.path(), dir.path(),
                          std::filesystem::copy_options::recursive |
                              std::filesystem::copy_options::overwrite_existing);
    FaultInjectionFileSystem fs;
    {
      auto log = OpenLog(&fs, dir.path(), CompactConfig());
      ASSERT_NE(log, nullptr);
      // The crash hits the (crash_point + 1)-th mutating file operation.
      fs.CrashAfterOps(crash_point);
      auto stats = log->Compact(1'000'000);
      finished = stats.ok();
      if (finished) fs.CrashAfterOps(-1);
      fs.Crash();
      log.reset();  // Close fails against the crashed file system
    }
    fs.Restart();
    auto log = OpenLog(&fs, dir.path(), CompactConfig());
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->log_end_offset(), Offset(50));
    EXPECT_EQ(log->log_start_offset(), Offset(0));
    ExpectLatestValuesAndNoDuplicates(*log, latest);
    EXPECT_FALSE(HasFileEndingIn(dir.path(), ".cleaned"));
    // And a compaction after recovery completes.
    auto stats = log->Compact(1'000'000);
    ASSERT_TRUE(stats.ok()) << stats.status();
    ExpectLatestValuesAndNoDuplicates(*log, latest);
    ++crash_point;
  }
  EXPECT_TRUE(finished);
  EXPECT_GT(crash_point, 10);  // the compaction really had many steps
  RecordProperty("crash_points", crash_point);
}

TEST(CompactionTest, LeftoverCleanedFileIsDiscardedOnOpen) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  Updates(*log, 100, 3);
  const std::vector<uint8_t> before = ReadAll(*log, Offset(0));
  ASSERT_TRUE(log->Close().ok());
  const std::string first = SegmentLogs(dir.path()).front();
  std::vector<uint8_t> half = ReadFileBytes(first);
  half.resize(half.size() / 2);
  WriteFileBytes(first + ".cleaned", half);
  log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  EXPECT_FALSE(HasFileEndingIn(dir.path(), ".cleaned"));
  EXPECT_EQ(ReadAll(*log, Offset(0)), before);
}

TEST(CompactionTest, ReadersDuringCompactionSeeWholeConsistentLogs) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  std::map<std::string, std::string> latest;
  for (int i = 0; i < 600; ++i) {
    AppendRecs(*log, {{Key(i % 8), Value(i)}}, 1000 + i);
    latest[Key(i % 8)] = Value(i);
  }
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop.load()) {
      // Every full read sees each key's latest value (the active segment
      // holds some; the rest are never removed) and no duplicate offsets.
      ExpectLatestValuesAndNoDuplicates(*log, latest);
      reads.fetch_add(1);
    }
  });
  std::thread writer([&] {
    for (int i = 0; i < 3; ++i) {
      auto stats = log->Compact(1'000'000);
      EXPECT_TRUE(stats.ok()) << stats.status();
    }
  });
  writer.join();
  while (reads.load() < 3) std::this_thread::yield();
  stop.store(true);
  reader.join();
  ExpectLatestValuesAndNoDuplicates(*log, latest);
}

TEST(CompactionTest, LogCleanerRunsCompactOnItsThread) {
  TempDir dir;
  auto log = OpenLog(DefaultFileSystem(), dir.path(), CompactConfig());
  Updates(*log, 200, 2);
  std::atomic<int> results{0};
  std::atomic<int64_t> removed{0};
  LogCleaner::Options o;
  o.interval_ms = 10;
  o.targets = [&] {
    return std::vector<LogCleaner::Target>{{"p0", nullptr, log.get(), std::nullopt}};
  };
  o.on_result = [&](const LogCleaner::Target&, const CompactionStats& s) {
    removed.fetch_add(s.records_removed);
    results.fetch_add(1);
  };
  LogCleaner cleaner(o);
  cleaner.Start();
  for (int i = 0; i < 500 && results.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  cleaner.Stop();
  EXPECT_GE(results.load(), 2);
  EXPECT_GT(removed.load(), 150);
}

}  // namespace
}  // namespace brook::storage::testing
