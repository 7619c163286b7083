// Kafka RecordBatch v2 (magic 2): the one batch format from producer to disk
// to consumer. The byte layout is in docs/formats/record-batch.md. The broker
// validates batches and patches base offset and leader epoch in place; it never
// re-encodes them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace brook {

enum class Compression : uint8_t { kNone = 0, kGzip = 1, kSnappy = 2, kLz4 = 3, kZstd = 4 };

// Byte offsets of the v2 batch header fields (all big-endian).
namespace batch_layout {
inline constexpr size_t kBaseOffset = 0;            // int64
inline constexpr size_t kBatchLength = 8;           // int32: bytes after this field
inline constexpr size_t kPartitionLeaderEpoch = 12; // int32
inline constexpr size_t kMagic = 16;                // int8 == 2
inline constexpr size_t kCrc = 17;                  // uint32 CRC32C of [kAttributes, end)
inline constexpr size_t kAttributes = 21;           // int16
inline constexpr size_t kLastOffsetDelta = 23;      // int32
inline constexpr size_t kBaseTimestamp = 27;        // int64
inline constexpr size_t kMaxTimestamp = 35;         // int64
inline constexpr size_t kProducerId = 43;           // int64
inline constexpr size_t kProducerEpoch = 51;        // int16
inline constexpr size_t kBaseSequence = 53;         // int32
inline constexpr size_t kRecordCount = 57;          // int32
inline constexpr size_t kHeaderSize = 61;           // records start here
inline constexpr size_t kLogOverhead = 12;          // base offset + batch length
}  // namespace batch_layout

// Attribute bits.
inline constexpr uint16_t kCompressionMask = 0x07;
inline constexpr uint16_t kTimestampTypeLogAppend = 0x08;
inline constexpr uint16_t kTransactionalFlag = 0x10;
inline constexpr uint16_t kControlFlag = 0x20;

// A non-owning, read-only view of one whole batch. Valid while the bytes are.
class RecordBatchView {
 public:
  // Checks that `bytes` begins with one whole batch header of magic 2 whose
  // length fits in `bytes`; the view covers exactly that batch. Does not check
  // the CRC (see VerifyCrc).
  static absl::StatusOr<RecordBatchView> Parse(std::span<const uint8_t> bytes);

  std::span<const uint8_t> bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

  int64_t base_offset() const;
  int32_t batch_length() const;
  int32_t partition_leader_epoch() const;
  uint32_t crc() const;
  uint16_t attributes() const;
  Compression compression() const;
  bool is_transactional() const;
  bool is_control() const;
  int32_t last_offset_delta() const;
  int64_t last_offset() const { return base_offset() + last_offset_delta(); }
  int64_t base_timestamp() const;
  int64_t max_timestamp() const;
  int64_t producer_id() const;
  int16_t producer_epoch() const;
  int32_t base_sequence() const;
  int32_t record_count() const;

  // Recomputes CRC32C over [attributes, end) and compares with the stored one.
  absl::Status VerifyCrc() const;

  // Full validation of a batch arriving from a producer: CRC, a record count
  // that agrees with last_offset_delta, and (for uncompressed batches) records
  // that decode within the batch.
  absl::Status Validate() const;

 private:
  explicit RecordBatchView(std::span<const uint8_t> b) : bytes_(b) {}
  std::span<const uint8_t> bytes_;
};

// Splits `bytes` into whole batches. Fails on any trailing partial batch
// unless `allow_partial_tail` (then the partial tail is ignored: fetch
// responses may end in a cut batch).
absl::StatusOr<std::vector<RecordBatchView>> SplitBatches(std::span<const uint8_t> bytes,
                                                          bool allow_partial_tail = false);

// In-place patches of a batch header. The CRC does not cover these fields.
void SetBaseOffset(std::span<uint8_t> batch, int64_t base_offset);
void SetPartitionLeaderEpoch(std::span<uint8_t> batch, int32_t epoch);
// Sets max_timestamp to `ts` and the log-append-time attribute bit, then
// recomputes the CRC (used for topics with log-append time).
void SetLogAppendTime(std::span<uint8_t> batch, int64_t ts);

struct HeaderView {
  std::string_view key;
  std::optional<std::string_view> value;
};

// One decoded record. Views point into the batch (uncompressed) or into the
// RecordReader's decompression buffer; valid while those live.
struct RecordView {
  int64_t offset = 0;
  int64_t timestamp = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
  std::vector<HeaderView> headers;
};

// Decodes the records of one batch, decompressing if needed. Not thread-safe.
class RecordReader {
 public:
  // Decodes every record of `batch` into `out` (appended). Fails with
  // DataLoss on malformed bytes.
  absl::Status Read(const RecordBatchView& batch, std::vector<RecordView>* out);

  // Frees the decompression buffers; every RecordView read so far from a
  // compressed batch is invalid afterwards.
  void Clear() { buffers_.clear(); }

 private:
  // Decompressed record sections, allocated without zero-filling.
  std::vector<std::unique_ptr<uint8_t[]>> buffers_;
};

// Builds one batch on the producer side. Not thread-safe.
class RecordBatchBuilder {
 public:
  struct Options {
    Compression compression = Compression::kZstd;
    int zstd_level = 1;
    int64_t producer_id = -1;
    int16_t producer_epoch = -1;
    int32_t base_sequence = -1;
    bool transactional = false;
    // Bytes reserved for the batch when its first record arrives (a hint
    // that saves regrowing the buffer; 0: grow as records arrive).
    size_t initial_capacity = 0;
  };
  explicit RecordBatchBuilder(Options options);

  void Append(int64_t timestamp, std::optional<std::string_view> key,
              std::optional<std::string_view> value, std::span<const HeaderView> headers = {});

  int record_count() const { return count_; }
  // Uncompressed size of the batch built so far (an upper bound of the result).
  size_t size_bytes() const {
    return records_.empty() ? batch_layout::kHeaderSize : records_.size();
  }
  bool empty() const { return count_ == 0; }

  // Finishes the batch: base offset 0, leader epoch -1, CRC set. The builder
  // is empty afterwards and may be reused. With zstd, a batch whose records
  // do not compress usefully is emitted uncompressed (see record_batch.cc).
  std::vector<uint8_t> Build();

 private:
  Options options_;
  // Header room (kHeaderSize bytes, filled by Build) followed by the encoded
  // records; empty until the first Append.
  std::vector<uint8_t> records_;
  int count_ = 0;
  int64_t base_timestamp_ = 0;
  int64_t max_timestamp_ = 0;
};

// zstd helpers shared by the codec and tests.
absl::StatusOr<std::vector<uint8_t>> ZstdCompress(std::span<const uint8_t> in, int level);
absl::StatusOr<std::vector<uint8_t>> ZstdDecompress(std::span<const uint8_t> in,
                                                   size_t max_output);

// Big-endian and varint helpers (Kafka's zigzag varints).
namespace wire {
void PutBE16(uint8_t* p, uint16_t v);
void PutBE32(uint8_t* p, uint32_t v);
void PutBE64(uint8_t* p, uint64_t v);
uint16_t GetBE16(const uint8_t* p);
uint32_t GetBE32(const uint8_t* p);
uint64_t GetBE64(const uint8_t* p);
void AppendVarint(std::vector<uint8_t>* out, int32_t v);  // zigzag
void AppendVarlong(std::vector<uint8_t>* out, int64_t v);  // zigzag
// Read a zigzag varint from [*p, end); advances *p. Returns false on overrun.
bool ReadVarint(const uint8_t** p, const uint8_t* end, int32_t* v);
bool ReadVarlong(const uint8_t** p, const uint8_t* end, int64_t* v);
}  // namespace wire

}  // namespace brook
