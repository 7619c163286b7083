// PartitionLog: one partition's log, a directory of segments
// (<base>.log, <base>.index, <base>.timeindex) plus a leader-epoch checkpoint
// and, for compacted topics, a cleaner checkpoint (docs/formats/segment.md).
// Batches are Kafka RecordBatch v2 bytes stored as received, with base offset
// and leader epoch patched in place.
//
// Thread-safety: every method is thread-safe (one internal mutex for writers;
// reads of sealed data do not block appends for long).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/storage/fs.h"
#include "common/types.h"

namespace brook::storage {

enum class FlushPolicy {
  kAlways,    // group-commit fsync before acknowledging (default)
  kInterval,  // fsync every flush_interval_ms by the Flusher
  kOs,        // never fsync explicitly (except on roll and close)
};

// What happens to old data (Kafka's cleanup.policy).
enum class CleanupPolicy {
  kDelete,         // ApplyRetention deletes whole segments by time/size
  kCompact,        // Compact keeps the latest record per key; no time/size retention
  kCompactDelete,  // both
};

struct LogConfig {
  FlushPolicy flush_policy = FlushPolicy::kAlways;
  int64_t flush_interval_ms = 1000;
  int64_t segment_bytes = 1LL << 30;
  int64_t segment_ms = 7LL * 24 * 3600 * 1000;
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;  // -1: forever
  int64_t retention_bytes = -1;                   // -1: no limit
  int32_t index_interval_bytes = 4096;
  int32_t max_batch_bytes = 8 * 1024 * 1024;  // RECORD_TOO_LARGE above this
  CleanupPolicy cleanup_policy = CleanupPolicy::kDelete;
  // Compaction (ignored under kDelete). A tombstone (null value) that is the
  // latest record of its key is removed by a cleaning once its batch's max
  // timestamp is older than delete_retention_ms.
  int64_t delete_retention_ms = 24LL * 3600 * 1000;
  // Cleaning is skipped while dirty bytes / cleanable bytes is below this.
  double min_cleanable_dirty_ratio = 0.5;
  // Sealed segments whose max timestamp is younger than this are not cleaned.
  int64_t min_compaction_lag_ms = 0;
  // Wall clock in ms for segment age (segment_ms); null: the system clock.
  // Tests inject a fake clock here.
  std::function<int64_t()> now_ms;
};

struct AppendResult {
  Offset base_offset;  // first offset of the first batch
  Offset last_offset;  // last offset of the last batch
  int64_t max_timestamp = -1;
  size_t bytes = 0;
};

// What one Compact call did.
struct CompactionStats {
  bool cleaned = false;       // false: skipped (see `skipped_reason`)
  std::string skipped_reason;
  double dirty_ratio = 0;     // dirty bytes / cleanable bytes when it ran or was checked
  int segments_rewritten = 0;
  int segments_deleted = 0;   // cleaned segments left empty and removed
  int64_t records_removed = 0;
  int64_t bytes_before = 0;   // of the cleanable segments
  int64_t bytes_removed = 0;
  Offset clean_offset{0};     // the cleaner checkpoint afterwards
};

class Flusher;

class PartitionLog {
 public:
  // Opens or creates the log in `dir`, recovering after a crash: the active
  // segment is scanned from its last index entry, each batch's length and CRC
  // checked, a torn or corrupt tail truncated, indexes rebuilt.
  // `flusher` (may be null: then WhenDurable syncs inline) must outlive the log.
  static absl::StatusOr<std::unique_ptr<PartitionLog>> Open(FileSystem* fs, std::string dir,
                                                            LogConfig config,
                                                            Flusher* flusher = nullptr);
  ~PartitionLog();

  // Leader append: validates each batch in `batches` (one or more concatenated;
  // CRC, sizes), assigns offsets from the log end and sets `epoch` in place
  // (the caller's buffer is modified), then writes them (buffered). Nothing is
  // written if any batch is invalid (CORRUPT_MESSAGE / RECORD_TOO_LARGE).
  // Rolls the segment by size or age first when due. Fails with STORAGE_FULL
  // on ENOSPC (nothing partial is left behind) and STORAGE_ERROR once the log
  // has failed. Under cleanup_policy kCompact a batch holding a record
  // without a key is refused (INVALID_RECORD) and nothing is written.
  absl::StatusOr<AppendResult> Append(std::span<uint8_t> batches, LeaderEpoch epoch);

  // Follower append: batches already carry offsets and epochs, which must
  // start at or after log_end_offset() and increase (a leader's compacted log
  // has gaps between batches).
  absl::StatusOr<AppendResult> AppendReplicated(std::span<const uint8_t> batches);

  // Calls `done` once every offset <= `offset` is durable under the log's flush
  // policy (kAlways: after a group-commit fsync that covers it; kInterval and
  // kOs: at once). `done` runs on the flusher thread or inline; it must not
  // block. A failed fsync fails `done` and every later write (STORAGE_ERROR).
  // `offset` should be below log_end_offset(): a waiter for an offset not yet
  // written stays queued until a later group commit (triggered by another
  // WhenDurable) covers it, or fails at Close; without a flusher it fails at
  // once with OutOfRange.
  void WhenDurable(Offset offset, std::function<void(absl::Status)> done);

  // Fsyncs everything written so far (blocking). Used on close and by tests.
  absl::Status Sync();

  // Reads whole batches, starting with the batch that contains `offset`, until
  // `max_bytes` (but at least one whole batch) and excluding batches whose
  // base offset is >= `max_offset`. Empty when offset >= max_offset.
  // OFFSET_OUT_OF_RANGE if offset < log_start_offset() or > log_end_offset().
  absl::StatusOr<std::vector<uint8_t>> Read(Offset offset, size_t max_bytes,
                                            Offset max_offset) const;

  // The first offset whose batch max timestamp is >= `timestamp_ms` (the
  // batch's base offset; consumers skip earlier records), or log_end_offset()
  // when there is none.
  absl::StatusOr<Offset> OffsetForTimestamp(int64_t timestamp_ms) const;

  // Removes every offset >= `offset` (replication seam). No-op past the end.
  // Batches are never split: a batch that straddles `offset` is removed
  // entirely, so the log may end below `offset` (check log_end_offset()).
  // Below log_start_offset() the log is emptied and restarts at `offset`.
  // Durable: the cut segment is fsynced before this returns.
  absl::Status TruncateTo(Offset offset);
  // Empties the log and restarts it at `offset`, which may be past the log
  // end (a follower whose fetch offset fell below the leader's log start).
  // The leader-epoch cache is cleared. Durable like TruncateTo.
  absl::Status TruncateFullyAndStartAt(Offset offset);

  // Deletes whole sealed segments past retention_ms (by their max timestamp)
  // or beyond retention_bytes; returns how many were deleted. The active
  // segment is never deleted, but is rolled first if it alone is too old.
  // Under cleanup_policy kCompact nothing is deleted (returns 0).
  absl::StatusOr<int> ApplyRetention(int64_t now_ms);

  // Log compaction (cleanup_policy kCompact / kCompactDelete; a no-op that
  // reports "not compacted" under kDelete). Cleans the cleanable prefix of
  // sealed segments: those entirely below `limit` (the caller passes the high
  // watermark so records that may still be truncated never decide what is
  // removed; nullopt: the log end) whose max timestamp is at least
  // min_compaction_lag_ms before `now_ms`. The active segment is never
  // rewritten. Skipped when no cleanable bytes were written since the last
  // cleaning point or the dirty ratio is below min_cleanable_dirty_ratio.
  //
  // Keeps, per key, only the record with the highest offset below `limit`
  // (over the whole log; the map of every distinct key is held in memory
  // during the call); keyless records, control batches, transactional
  // batches and batches of codecs other than none/zstd are kept whole. A
  // tombstone that is the latest of its key goes once its batch's max
  // timestamp is older than delete_retention_ms. Rewritten
  // batches keep their base offset, offset deltas, last offset delta, max
  // timestamp and codec (fresh CRC); batches left empty are dropped, except
  // the log's last batch when nothing follows it. Offsets are never
  // reassigned, so the log has gaps: Read of a removed offset returns the
  // next batch after it. log_start_offset() is unchanged (an emptied first
  // segment stays as an empty file; later emptied segments are deleted).
  //
  // Crash safety: each segment is rewritten to <base>.log.cleaned, fsynced,
  // then swapped in by one rename (docs/formats/segment.md); a crash leaves
  // either the old or the new segment. Readers keep the file they opened.
  // The cleaner checkpoint is advanced (durably) before the first swap. Runs
  // without the log mutex except for each swap (appends then wait for two
  // directory fsyncs); calls on one log are serialized. Meant for one
  // background cleaner thread (LogCleaner). A failed pass leaves the log
  // usable and unchanged apart from segments already swapped.
  absl::StatusOr<CompactionStats> Compact(int64_t now_ms,
                                          std::optional<Offset> limit = std::nullopt);
  // The cleaner checkpoint: segments below it have been cleaned.
  Offset clean_offset() const;

  // Leader-epoch cache (KIP-101 seam): the first offset of each epoch.
  // Returns the end offset of `epoch` (start of the next higher epoch, or the
  // log end) and the largest epoch <= `epoch`, as Kafka's
  // OffsetsForLeaderEpoch does; nullopt when no such epoch is known.
  std::optional<std::pair<LeaderEpoch, Offset>> EndOffsetForEpoch(LeaderEpoch epoch) const;
  std::optional<LeaderEpoch> latest_epoch() const;
  // Records that `epoch` starts at the current log end (a new partition leader
  // does this on election, before its first append, so followers asking for
  // an older epoch learn where it ended). No-op when `epoch` is not newer than
  // latest_epoch(). Persisted before it returns.
  absl::Status AssignEpochStart(LeaderEpoch epoch);

  Offset log_start_offset() const;
  Offset log_end_offset() const;   // the next offset to assign
  Offset durable_offset() const;   // every offset < this has been fsynced
  int64_t size_bytes() const;
  int segment_count() const;
  const std::string& dir() const;
  const LogConfig& config() const;
  // True after a write or fsync failure; the log then refuses writes.
  bool failed() const;

  // Flushes and closes files. Further calls fail.
  absl::Status Close();

  struct Impl;

 private:
  explicit PartitionLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One background thread that performs group-commit fsyncs for every log that
// has waiters (kAlways) and periodic fsyncs (kInterval). Thread-safe.
class Flusher {
 public:
  Flusher();
  ~Flusher();  // stops and joins; logs must be closed first
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  // Internal to PartitionLog: schedule `log` for an fsync soon.
  void Schedule(PartitionLog::Impl* log);
  void Register(PartitionLog::Impl* log);
  void Unregister(PartitionLog::Impl* log);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace brook::storage
