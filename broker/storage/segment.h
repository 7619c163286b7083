// Internal to brook::storage: one segment of a partition log (a .log file and
// its in-memory sparse indexes), the on-disk index codecs and the batch-header
// scanner shared by reads, truncation and recovery. Byte layouts are in
// docs/formats/segment.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/storage/fs.h"

namespace brook::storage {

// .index entry: the batch whose base offset is `base + rel` starts at `pos`.
struct IndexEntry {
  uint32_t rel;
  uint32_t pos;
};
inline constexpr size_t kIndexEntrySize = 8;

// .timeindex entry: every batch up to and including the one whose base offset
// is `base + rel` has max timestamp <= `ts` (and ts is reached by one of them).
struct TimeEntry {
  int64_t ts;
  uint32_t rel;
};
inline constexpr size_t kTimeEntrySize = 12;

// The fields of a batch header that the storage layer needs.
struct BatchHeader {
  int64_t base = 0;
  int64_t last = 0;
  int64_t max_ts = -1;
  uint64_t size = 0;  // whole batch, log overhead included
};

// Reads and sanity-checks (length bounds, magic) the header of the batch at
// `pos`, which must end at or before `limit`. Does not check the CRC.
// Malformed headers fail with CORRUPT_MESSAGE, I/O errors with the file's.
absl::StatusOr<BatchHeader> ReadBatchHeader(const File& file, uint64_t pos, uint64_t limit);

// "00000000000000000042"
std::string SegmentFileStem(int64_t base);
// Parses "<20 digits>.<ext>"; false for anything else.
bool ParseSegmentFileName(const std::string& name, int64_t* base, std::string* ext);

// A segment. Owned by the PartitionLog (shared with in-flight readers, which
// keep the file open even after the segment is deleted). Mutable fields are
// guarded by the owning log's mutex; `log` itself may be PRead and Synced
// without it.
struct Segment {
  int64_t base = 0;
  std::string stem;  // dir + "/" + SegmentFileStem(base)
  std::unique_ptr<File> log;
  uint64_t size = 0;          // bytes of whole valid batches
  int64_t next_offset = 0;    // last offset + 1; == base when empty
  int64_t last_batch_base = -1;
  int64_t max_ts = -1;        // over all batches
  int64_t created_ms = -1;    // clock time of the first append (segment_ms)
  std::vector<IndexEntry> index;
  std::vector<TimeEntry> time_index;
  uint64_t bytes_since_index = 0;
  bool sealed = false;

  std::string log_path() const { return stem + ".log"; }
  std::string index_path() const { return stem + ".index"; }
  std::string timeindex_path() const { return stem + ".timeindex"; }
  bool empty() const { return size == 0; }

  // Accounts for a batch that now occupies [pos, pos + h.size). The first
  // batch and then the first batch after every `interval` bytes are index
  // points: they get an offset-index entry, and a time-index entry if the
  // segment's max timestamp grew since the last one. Invariant: after an
  // index point for batch B, the last time entry's ts == max timestamp of
  // every batch up to and including B.
  void OnBatch(uint64_t pos, const BatchHeader& h, int32_t interval);

  // File position of the last index point at or before `offset` (0 if none).
  uint64_t LookupPos(int64_t offset) const;

  // Drops index state at or past file position `pos` (a batch boundary) and
  // recomputes max_ts, bytes_since_index and last_batch_base by scanning the
  // headers from the last remaining index point. Does not touch the file.
  absl::Status TrimIndexesTo(uint64_t pos, int64_t new_next_offset);

  // The time index to write when sealing: the in-memory one plus a final
  // entry for the segment's max timestamp.
  std::vector<TimeEntry> SealedTimeIndex() const;
};

std::vector<uint8_t> EncodeIndex(const std::vector<IndexEntry>& entries);
std::vector<uint8_t> EncodeTimeIndex(const std::vector<TimeEntry>& entries);

// Loads `seg`'s index files if both exist and are consistent with the log
// file (see docs/formats/segment.md); on success the segment's indexes hold
// every entry up to the last offset-index entry, and the caller resumes
// scanning at the returned position (the last index point). nullopt when the
// files are missing or invalid: rebuild from position 0.
std::optional<uint64_t> LoadIndexes(FileSystem* fs, Segment* seg);

// Scans batches from `pos` (a batch boundary with the segment state already
// accounting for everything before it) to the end of the file, checking
// length bounds, magic, CRC and increasing offsets (gaps are allowed: see
// PartitionLog::Compact), and records each valid
// batch with OnBatch. Returns the position after the last valid batch;
// `*reason` says why the scan stopped early (empty when it reached EOF).
absl::StatusOr<uint64_t> ScanAndIndex(Segment* seg, uint64_t pos, int32_t interval,
                                      std::string* reason);

}  // namespace brook::storage
