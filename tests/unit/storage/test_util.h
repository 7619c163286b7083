// Helpers shared by the storage tests: a self-deleting temp directory and
// record-batch construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "broker/storage/log.h"
#include "common/errors.h"

namespace brook::storage::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An uncompressed batch of `records` records with timestamps ts, ts+1, ...
// and values of `value_bytes` bytes derived from `seed`.
std::vector<uint8_t> MakeBatch(int records, int64_t ts, size_t value_bytes = 20,
                               uint32_t seed = 0);

// Reads every batch in [from, log_end) with repeated Reads.
std::vector<uint8_t> ReadAll(const PartitionLog& log, Offset from, size_t chunk = 1 << 20);

// Base offsets of the concatenated batches in `bytes` (which must be whole).
std::vector<int64_t> BaseOffsets(const std::vector<uint8_t>& bytes);

std::vector<uint8_t> ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes);
uint64_t FileSize(const std::string& path);

inline proto::ErrorCode CodeOf(const absl::Status& s) { return ToErrorCode(s); }

}  // namespace brook::storage::testing
