// Internal to brook::storage: record-level access to a stored RecordBatch v2
// for log compaction. Records are located in the (decompressed) records
// section without re-encoding them, so a rewritten batch keeps every kept
// record's bytes (offset delta, timestamp delta, key, value, headers) exactly.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/record_batch.h"

namespace brook::storage {

// One record of a batch: its encoded bytes (length varint included) and the
// fields the cleaner decides on. Views point into the section passed to
// ParseRawRecords.
struct RawRecord {
  std::span<const uint8_t> bytes;
  int32_t offset_delta = 0;
  std::optional<std::string_view> key;
  bool null_value = false;  // a tombstone
};

// The batch's records section, decompressed into `*buf` when the batch is
// zstd-compressed (a view of the batch otherwise). Unimplemented for codecs
// other than none and zstd.
absl::StatusOr<std::span<const uint8_t>> RecordsSection(const RecordBatchView& batch,
                                                        std::vector<uint8_t>* buf);

// Splits a records section into `count` records; DataLoss on malformed bytes.
absl::StatusOr<std::vector<RawRecord>> ParseRawRecords(std::span<const uint8_t> section,
                                                       int32_t count);

// A copy of `batch` holding only `kept` (records of that batch, in order):
// same base offset, last offset delta, timestamps, producer fields and
// attributes; the record count and CRC are recomputed and the records are
// recompressed with the batch's codec (stored uncompressed when `kept` is
// empty).
absl::StatusOr<std::vector<uint8_t>> RebuildBatch(const RecordBatchView& batch,
                                                  std::span<const RawRecord> kept);

// True when any record of `batch` (control batches excepted) has a null key.
absl::StatusOr<bool> HasKeylessRecord(const RecordBatchView& batch);

}  // namespace brook::storage
