// Kafka RecordBatch v2: header accessors, validation, record decoding (with
// zstd), the producer-side builder, and the big-endian / zigzag varint helpers.
// Every decoder here treats its input as untrusted: lengths are checked against
// the bytes that remain before use, and no allocation is sized from a field
// beyond what the input can actually back (or a fixed cap for decompression).
#include "common/record_batch.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/check.h"
#include "common/crc32c.h"
#include "common/errors.h"

namespace brook {

namespace bl = batch_layout;

namespace {

// Largest records section a reader will decompress one batch into. A batch on
// the wire is bounded by the frame limit (64 MiB); this cap bounds a
// decompression bomb to the same size.
constexpr size_t kMaxDecompressedBytes = 64 * 1024 * 1024;

// Smallest encoding of a record: length, attributes, timestamp delta, offset
// delta, key length, value length, header count, one byte each.
constexpr size_t kMinRecordBytes = 7;

absl::Status Corrupt(std::string_view msg) {
  return WithErrorCode(absl::DataLossError(absl::StrCat("record batch: ", std::string(msg))),
                       proto::ErrorCode::CORRUPT_MESSAGE);
}

const char* CodecName(uint16_t codec) {
  switch (codec) {
    case 0: return "none";
    case 1: return "gzip";
    case 2: return "snappy";
    case 3: return "lz4";
    case 4: return "zstd";
    default: return "invalid";
  }
}

// A bounds-checked cursor over one record's bytes.
struct Cursor {
  const uint8_t* p;
  const uint8_t* end;
  size_t remaining() const { return static_cast<size_t>(end - p); }
};

// Reads a varint length that is -1 (null) or in [0, remaining]; sets *out to
// the view (nullopt for null) and advances past the bytes.
bool ReadNullableBytes(Cursor* c, std::optional<std::string_view>* out) {
  int32_t len;
  if (!wire::ReadVarint(&c->p, c->end, &len)) return false;
  if (len == -1) {
    *out = std::nullopt;
    return true;
  }
  if (len < 0 || static_cast<size_t>(len) > c->remaining()) return false;
  *out = std::string_view(reinterpret_cast<const char*>(c->p), static_cast<size_t>(len));
  c->p += len;
  return true;
}

// Decodes `count` records from [p, end), which they must fill exactly. With
// `out` null it only checks the encoding. `log_append_time` >= 0 overrides
// every record's timestamp (Kafka's LogAppendTime semantics).
absl::Status DecodeRecords(const uint8_t* p, const uint8_t* end, int32_t count,
                           int64_t base_offset, int64_t base_timestamp,
                           std::optional<int64_t> log_append_time, std::vector<RecordView>* out) {
  if (count < 0) return Corrupt("negative record count");
  const size_t section = static_cast<size_t>(end - p);
  if (static_cast<size_t>(count) > section / kMinRecordBytes) {
    return Corrupt(absl::StrCat("record count ", count, " cannot fit in ", section, " bytes"));
  }
  if (out != nullptr) out->reserve(out->size() + static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    int32_t length;
    if (!wire::ReadVarint(&p, end, &length)) return Corrupt("truncated record length");
    if (length < 0 || static_cast<size_t>(length) > static_cast<size_t>(end - p)) {
      return Corrupt(absl::StrCat("record ", i, " length ", length, " overruns the batch"));
    }
    Cursor c{p, p + length};
    if (c.remaining() < 1) return Corrupt("truncated record attributes");
    ++c.p;  // record attributes: unused in v2
    int64_t ts_delta;
    int32_t offset_delta;
    if (!wire::ReadVarlong(&c.p, c.end, &ts_delta)) return Corrupt("bad timestamp delta");
    if (!wire::ReadVarint(&c.p, c.end, &offset_delta)) return Corrupt("bad offset delta");
    RecordView rec;
    if (!ReadNullableBytes(&c, &rec.key)) return Corrupt("bad record key");
    if (!ReadNullableBytes(&c, &rec.value)) return Corrupt("bad record value");
    int32_t header_count;
    if (!wire::ReadVarint(&c.p, c.end, &header_count)) return Corrupt("bad header count");
    // Each header takes at least two bytes (two length varints).
    if (header_count < 0 || static_cast<size_t>(header_count) > c.remaining() / 2) {
      return Corrupt(absl::StrCat("header count ", header_count, " overruns the record"));
    }
    if (out != nullptr) rec.headers.reserve(static_cast<size_t>(header_count));
    for (int32_t h = 0; h < header_count; ++h) {
      std::optional<std::string_view> key, value;
      if (!ReadNullableBytes(&c, &key) || !key.has_value()) return Corrupt("bad header key");
      if (!ReadNullableBytes(&c, &value)) return Corrupt("bad header value");
      if (out != nullptr) rec.headers.push_back(HeaderView{*key, value});
    }
    if (c.p != c.end) return Corrupt(absl::StrCat("record ", i, " has trailing bytes"));
    p = c.end;
    if (out != nullptr) {
      // Unsigned sums: a hostile delta wraps instead of overflowing.
      rec.offset = static_cast<int64_t>(static_cast<uint64_t>(base_offset) +
                                        static_cast<uint64_t>(static_cast<int64_t>(offset_delta)));
      rec.timestamp = log_append_time.has_value()
                          ? *log_append_time
                          : static_cast<int64_t>(static_cast<uint64_t>(base_timestamp) +
                                                 static_cast<uint64_t>(ts_delta));
      out->push_back(std::move(rec));
    }
  }
  if (p != end) return Corrupt("bytes after the last record");
  return absl::OkStatus();
}

size_t VarintSize(uint64_t zigzagged) {
  size_t n = 1;
  while (zigzagged >= 0x80) {
    zigzagged >>= 7;
    ++n;
  }
  return n;
}
size_t VarintSize32(int32_t v) {
  return VarintSize((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31));
}
size_t VarlongSize(int64_t v) {
  return VarintSize((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
size_t NullableSize(const std::optional<std::string_view>& s) {
  return s.has_value() ? VarintSize32(static_cast<int32_t>(s->size())) + s->size()
                       : VarintSize32(-1);
}
}  // namespace

// ---- wire helpers ----------------------------------------------------------

namespace wire {

void PutBE16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void PutBE32(uint8_t* p, uint32_t v) {
  for (int i = 3; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
void PutBE64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
uint16_t GetBE16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t GetBE32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | static_cast<uint32_t>(p[3]);
}
uint64_t GetBE64(const uint8_t* p) {
  return static_cast<uint64_t>(GetBE32(p)) << 32 | GetBE32(p + 4);
}

void AppendVarint(std::vector<uint8_t>* out, int32_t v) {
  uint32_t z = (static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31);
  while (z >= 0x80) {
    out->push_back(static_cast<uint8_t>(z | 0x80));
    z >>= 7;
  }
  out->push_back(static_cast<uint8_t>(z));
}

void AppendVarlong(std::vector<uint8_t>* out, int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (z >= 0x80) {
    out->push_back(static_cast<uint8_t>(z | 0x80));
    z >>= 7;
  }
  out->push_back(static_cast<uint8_t>(z));
}

// As Kafka's ByteUtils: at most 5 bytes for a varint, 10 for a varlong; bits
// beyond the width in the last byte are dropped.
bool ReadVarint(const uint8_t** p, const uint8_t* end, int32_t* v) {
  uint32_t raw = 0;
  const uint8_t* q = *p;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (q >= end) return false;
    const uint8_t b = *q++;
    raw |= static_cast<uint32_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) {
      *v = static_cast<int32_t>((raw >> 1) ^ (0u - (raw & 1)));
      *p = q;
      return true;
    }
  }
  return false;
}

bool ReadVarlong(const uint8_t** p, const uint8_t* end, int64_t* v) {
  uint64_t raw = 0;
  const uint8_t* q = *p;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (q >= end) return false;
    const uint8_t b = *q++;
    raw |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) {
      *v = static_cast<int64_t>((raw >> 1) ^ (0ull - (raw & 1)));
      *p = q;
      return true;
    }
  }
  return false;
}

}  // namespace wire

// ---- RecordBatchView -------------------------------------------------------

absl::StatusOr<RecordBatchView> RecordBatchView::Parse(std::span<const uint8_t> bytes) {
  if (bytes.size() < bl::kHeaderSize) {
    return Corrupt(absl::StrCat("need ", bl::kHeaderSize, " header bytes, have ", bytes.size()));
  }
  const int32_t length = static_cast<int32_t>(wire::GetBE32(bytes.data() + bl::kBatchLength));
  if (length < static_cast<int32_t>(bl::kHeaderSize - bl::kLogOverhead)) {
    return Corrupt(absl::StrCat("batch length ", length, " is below the header size"));
  }
  const size_t total = bl::kLogOverhead + static_cast<size_t>(length);
  if (total > bytes.size()) {
    return Corrupt(absl::StrCat("batch of ", total, " bytes is cut at ", bytes.size()));
  }
  const int8_t magic = static_cast<int8_t>(bytes[bl::kMagic]);
  if (magic != 2) return Corrupt(absl::StrCat("unsupported magic ", magic));
  return RecordBatchView(bytes.first(total));
}

int64_t RecordBatchView::base_offset() const {
  return static_cast<int64_t>(wire::GetBE64(bytes_.data() + bl::kBaseOffset));
}
int32_t RecordBatchView::batch_length() const {
  return static_cast<int32_t>(wire::GetBE32(bytes_.data() + bl::kBatchLength));
}
int32_t RecordBatchView::partition_leader_epoch() const {
  return static_cast<int32_t>(wire::GetBE32(bytes_.data() + bl::kPartitionLeaderEpoch));
}
uint32_t RecordBatchView::crc() const { return wire::GetBE32(bytes_.data() + bl::kCrc); }
uint16_t RecordBatchView::attributes() const {
  return wire::GetBE16(bytes_.data() + bl::kAttributes);
}
Compression RecordBatchView::compression() const {
  return static_cast<Compression>(attributes() & kCompressionMask);
}
bool RecordBatchView::is_transactional() const {
  return (attributes() & kTransactionalFlag) != 0;
}
bool RecordBatchView::is_control() const { return (attributes() & kControlFlag) != 0; }
int32_t RecordBatchView::last_offset_delta() const {
  return static_cast<int32_t>(wire::GetBE32(bytes_.data() + bl::kLastOffsetDelta));
}
int64_t RecordBatchView::base_timestamp() const {
  return static_cast<int64_t>(wire::GetBE64(bytes_.data() + bl::kBaseTimestamp));
}
int64_t RecordBatchView::max_timestamp() const {
  return static_cast<int64_t>(wire::GetBE64(bytes_.data() + bl::kMaxTimestamp));
}
int64_t RecordBatchView::producer_id() const {
  return static_cast<int64_t>(wire::GetBE64(bytes_.data() + bl::kProducerId));
}
int16_t RecordBatchView::producer_epoch() const {
  return static_cast<int16_t>(wire::GetBE16(bytes_.data() + bl::kProducerEpoch));
}
int32_t RecordBatchView::base_sequence() const {
  return static_cast<int32_t>(wire::GetBE32(bytes_.data() + bl::kBaseSequence));
}
int32_t RecordBatchView::record_count() const {
  return static_cast<int32_t>(wire::GetBE32(bytes_.data() + bl::kRecordCount));
}

absl::Status RecordBatchView::VerifyCrc() const {
  const uint32_t computed =
      Crc32c(bytes_.data() + bl::kAttributes, bytes_.size() - bl::kAttributes);
  if (computed != crc()) {
    return Corrupt(absl::StrCat("CRC mismatch: stored ", crc(), ", computed ", computed));
  }
  return absl::OkStatus();
}

absl::Status RecordBatchView::Validate() const {
  if (absl::Status s = VerifyCrc(); !s.ok()) return s;
  const int32_t count = record_count();
  if (count < 0) return Corrupt(absl::StrCat("negative record count ", count));
  if (!is_control() && count > 0 && last_offset_delta() != count - 1) {
    return Corrupt(absl::StrCat("last offset delta ", last_offset_delta(), " disagrees with ",
                                count, " records"));
  }
  const uint16_t codec = attributes() & kCompressionMask;
  if (codec > static_cast<uint16_t>(Compression::kZstd)) {
    return Corrupt(absl::StrCat("unknown compression codec ", codec));
  }
  if (codec == static_cast<uint16_t>(Compression::kNone)) {
    return DecodeRecords(bytes_.data() + bl::kHeaderSize, bytes_.data() + bytes_.size(), count,
                         0, 0, std::nullopt, nullptr);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RecordBatchView>> SplitBatches(std::span<const uint8_t> bytes,
                                                          bool allow_partial_tail) {
  std::vector<RecordBatchView> batches;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t rem = bytes.size() - pos;
    bool partial = rem < bl::kLogOverhead;
    if (!partial) {
      const int32_t length =
          static_cast<int32_t>(wire::GetBE32(bytes.data() + pos + bl::kBatchLength));
      if (length < static_cast<int32_t>(bl::kHeaderSize - bl::kLogOverhead)) {
        return Corrupt(absl::StrCat("batch at byte ", pos, " has length ", length,
                                    ", below the header size"));
      }
      partial = bl::kLogOverhead + static_cast<size_t>(length) > rem;
    }
    if (partial) {
      if (allow_partial_tail) break;
      return Corrupt(absl::StrCat("partial batch of ", rem, " bytes at byte ", pos));
    }
    absl::StatusOr<RecordBatchView> view = RecordBatchView::Parse(bytes.subspan(pos));
    if (!view.ok()) return view.status();
    pos += view->size();
    batches.push_back(*view);
  }
  return batches;
}

// ---- in-place patches ------------------------------------------------------

void SetBaseOffset(std::span<uint8_t> batch, int64_t base_offset) {
  BROOK_CHECK(batch.size() >= bl::kHeaderSize);
  wire::PutBE64(batch.data() + bl::kBaseOffset, static_cast<uint64_t>(base_offset));
}

void SetPartitionLeaderEpoch(std::span<uint8_t> batch, int32_t epoch) {
  BROOK_CHECK(batch.size() >= bl::kHeaderSize);
  wire::PutBE32(batch.data() + bl::kPartitionLeaderEpoch, static_cast<uint32_t>(epoch));
}

void SetLogAppendTime(std::span<uint8_t> batch, int64_t ts) {
  BROOK_CHECK(batch.size() >= bl::kHeaderSize);
  uint8_t* p = batch.data();
  wire::PutBE64(p + bl::kMaxTimestamp, static_cast<uint64_t>(ts));
  wire::PutBE16(p + bl::kAttributes, wire::GetBE16(p + bl::kAttributes) | kTimestampTypeLogAppend);
  wire::PutBE32(p + bl::kCrc, Crc32c(p + bl::kAttributes, batch.size() - bl::kAttributes));
}

// ---- zstd contexts and buffers ---------------------------------------------

namespace {

// One compression and one decompression context per thread, reused across
// batches: creating a context (and its tables) per batch costs more than
// compressing a small batch.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> ctx(ZSTD_createCCtx(),
                                                                       &ZSTD_freeCCtx);
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(),
                                                                       &ZSTD_freeDCtx);
  return ctx.get();
}

// A decompressed section: `size` bytes at `data`, allocated uninitialized.
struct RawBuffer {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
};

std::unique_ptr<uint8_t[]> AllocateUninitialized(size_t n) {
  return std::unique_ptr<uint8_t[]>(new uint8_t[n]);  // default-init: no zero fill
}

// Decompresses one or more concatenated zstd frames from `in`, producing at
// most `max_output` bytes. When the (first) frame declares its content size
// and it is within the cap, the output is allocated at exactly that size and
// decoded in one call; otherwise (unknown size, several frames) the output
// grows geometrically as bytes actually come out.
absl::StatusOr<RawBuffer> DecompressRaw(std::span<const uint8_t> in, size_t max_output) {
  if (in.empty()) return absl::DataLossError("zstd: empty input");
  ZSTD_DCtx* dctx = ThreadDCtx();
  if (dctx == nullptr) return absl::ResourceExhaustedError("zstd: cannot create context");
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);

  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
      declared > max_output) {
    return absl::DataLossError(
        absl::StrCat("zstd: output exceeds the limit of ", max_output, " bytes"));
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
      ZSTD_findFrameCompressedSize(in.data(), in.size()) == in.size()) {
    // A single frame of declared size: decode straight into an exact buffer.
    // zstd checks the decoded size against the declared one.
    RawBuffer out{AllocateUninitialized(std::max<size_t>(1, declared)), 0};
    const size_t n = ZSTD_decompressDCtx(dctx, out.data.get(), declared, in.data(), in.size());
    if (ZSTD_isError(n)) {
      return absl::DataLossError(absl::StrCat("zstd: ", ZSTD_getErrorName(n)));
    }
    if (n != declared) return absl::DataLossError("zstd: frame size disagrees with its header");
    out.size = n;
    return out;
  }

  // One byte past the cap is room enough to detect an overflow.
  const size_t limit = max_output == std::numeric_limits<size_t>::max() ? max_output
                                                                         : max_output + 1;
  size_t capacity = std::min(limit, std::max<size_t>(4096, in.size() * 4));
  RawBuffer out{AllocateUninitialized(capacity), 0};
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  for (;;) {
    ZSTD_outBuffer output{out.data.get() + out.size, capacity - out.size, 0};
    const size_t ret = ZSTD_decompressStream(dctx, &output, &input);
    if (ZSTD_isError(ret)) {
      return absl::DataLossError(absl::StrCat("zstd: ", ZSTD_getErrorName(ret)));
    }
    out.size += output.pos;
    if (out.size > max_output) {
      return absl::DataLossError(
          absl::StrCat("zstd: output exceeds the limit of ", max_output, " bytes"));
    }
    // 0: the current frame is decoded and flushed; with no input left, done.
    if (ret == 0 && input.pos == input.size) break;
    const bool out_full = out.size == capacity;
    if (input.pos == input.size && !out_full) return absl::DataLossError("zstd: truncated frame");
    if (out_full) {
      if (capacity >= limit) {
        return absl::DataLossError(
            absl::StrCat("zstd: output exceeds the limit of ", max_output, " bytes"));
      }
      const size_t grown = std::min(limit, capacity * 2);
      std::unique_ptr<uint8_t[]> bigger = AllocateUninitialized(grown);
      std::memcpy(bigger.get(), out.data.get(), out.size);
      out.data = std::move(bigger);
      capacity = grown;
    }
  }
  return out;
}

// Compresses `in` into [dst, dst + capacity) with this thread's context.
absl::StatusOr<size_t> CompressInto(std::span<const uint8_t> in, int level, uint8_t* dst,
                                    size_t capacity) {
  ZSTD_CCtx* cctx = ThreadCCtx();
  if (cctx == nullptr) return absl::ResourceExhaustedError("zstd: cannot create context");
  const size_t n = ZSTD_compressCCtx(cctx, dst, capacity, in.data(), in.size(), level);
  if (ZSTD_isError(n)) {
    return absl::InternalError(absl::StrCat("zstd compress: ", ZSTD_getErrorName(n)));
  }
  return n;
}

// Build() first compresses a prefix of this many bytes of a larger records
// section: when that prefix does not shrink by at least 1/kMinSavingsDivisor,
// the batch goes uncompressed without compressing the rest. Random or
// already-compressed payloads (which zstd shrinks by a few percent at most,
// from the record framing) then cost ~kSampleBytes of compression work per
// batch instead of the whole batch, and consumers skip decompressing them;
// compressible data (text, JSON: savings far above 10%) is unaffected.
constexpr size_t kSampleBytes = 16 * 1024;
constexpr size_t kMinSavingsDivisor = 10;  // 10%

// Scratch output for compression, reused by every Build on this thread.
std::vector<uint8_t>& ThreadScratch(size_t size) {
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < size) scratch.resize(size);
  return scratch;
}

}  // namespace

// ---- RecordReader ----------------------------------------------------------

absl::Status RecordReader::Read(const RecordBatchView& batch, std::vector<RecordView>* out) {
  const std::span<const uint8_t> bytes = batch.bytes();
  std::span<const uint8_t> section = bytes.subspan(bl::kHeaderSize);
  const uint16_t codec = batch.attributes() & kCompressionMask;
  switch (codec) {
    case static_cast<uint16_t>(Compression::kNone):
      break;
    case static_cast<uint16_t>(Compression::kZstd): {
      absl::StatusOr<RawBuffer> plain = DecompressRaw(section, kMaxDecompressedBytes);
      if (!plain.ok()) return Corrupt(std::string(plain.status().message()));
      section = std::span<const uint8_t>(plain->data.get(), plain->size);
      buffers_.push_back(std::move(plain->data));
      break;
    }
    case static_cast<uint16_t>(Compression::kGzip):
    case static_cast<uint16_t>(Compression::kSnappy):
    case static_cast<uint16_t>(Compression::kLz4):
      return absl::UnimplementedError(absl::StrCat("record batch: compression codec ",
                                                   CodecName(codec),
                                                   " is not supported (only none and zstd)"));
    default:
      return Corrupt(absl::StrCat("unknown compression codec ", codec));
  }
  std::optional<int64_t> log_append_time;
  if ((batch.attributes() & kTimestampTypeLogAppend) != 0) {
    log_append_time = batch.max_timestamp();
  }
  // On failure, drop whatever this call appended so `out` holds only whole
  // batches' records.
  const size_t before = out->size();
  absl::Status s = DecodeRecords(section.data(), section.data() + section.size(),
                                 batch.record_count(), batch.base_offset(),
                                 batch.base_timestamp(), log_append_time, out);
  if (!s.ok()) out->resize(before);
  return s;
}

// ---- RecordBatchBuilder ----------------------------------------------------

namespace {

uint8_t* PutVarint(uint8_t* p, uint64_t zigzagged) {
  while (zigzagged >= 0x80) {
    *p++ = static_cast<uint8_t>(zigzagged | 0x80);
    zigzagged >>= 7;
  }
  *p++ = static_cast<uint8_t>(zigzagged);
  return p;
}
uint8_t* PutVarint32(uint8_t* p, int32_t v) {
  return PutVarint(p, (static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31));
}
uint8_t* PutVarlong(uint8_t* p, int64_t v) {
  return PutVarint(p, (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
}
uint8_t* PutNullable(uint8_t* p, const std::optional<std::string_view>& s) {
  if (!s.has_value()) return PutVarint32(p, -1);
  p = PutVarint32(p, static_cast<int32_t>(s->size()));
  if (!s->empty()) std::memcpy(p, s->data(), s->size());
  return p + s->size();
}

}  // namespace

RecordBatchBuilder::RecordBatchBuilder(Options options) : options_(options) {}

void RecordBatchBuilder::Append(int64_t timestamp, std::optional<std::string_view> key,
                                std::optional<std::string_view> value,
                                std::span<const HeaderView> headers) {
  if (count_ == 0) {
    base_timestamp_ = timestamp;
    max_timestamp_ = timestamp;
  }
  max_timestamp_ = std::max(max_timestamp_, timestamp);
  const int64_t ts_delta = static_cast<int64_t>(static_cast<uint64_t>(timestamp) -
                                                static_cast<uint64_t>(base_timestamp_));
  const int32_t offset_delta = count_;

  size_t body = 1 + VarlongSize(ts_delta) + VarintSize32(offset_delta) + NullableSize(key) +
                NullableSize(value) + VarintSize32(static_cast<int32_t>(headers.size()));
  for (const HeaderView& h : headers) {
    body += NullableSize(h.key) + NullableSize(h.value);
  }
  BROOK_CHECK(body <= static_cast<size_t>(std::numeric_limits<int32_t>::max()));

  // Encoded in place: grow once, then write through a pointer.
  if (records_.empty()) {
    records_.reserve(std::max(options_.initial_capacity, bl::kHeaderSize));
    records_.resize(bl::kHeaderSize);
  }
  const size_t start = records_.size();
  const size_t total = VarintSize32(static_cast<int32_t>(body)) + body;
  records_.resize(start + total);
  uint8_t* p = records_.data() + start;
  p = PutVarint32(p, static_cast<int32_t>(body));
  uint8_t* const body_start = p;
  *p++ = 0;  // record attributes
  p = PutVarlong(p, ts_delta);
  p = PutVarint32(p, offset_delta);
  p = PutNullable(p, key);
  p = PutNullable(p, value);
  p = PutVarint32(p, static_cast<int32_t>(headers.size()));
  for (const HeaderView& h : headers) {
    p = PutNullable(p, h.key);
    p = PutNullable(p, h.value);
  }
  BROOK_CHECK(static_cast<size_t>(p - body_start) == body);
  ++count_;
}

std::vector<uint8_t> RecordBatchBuilder::Build() {
  // Only zstd is compressed here; other codecs, and a zstd result that is no
  // smaller than the input (or a sample of the input that zstd barely
  // shrinks, see kSampleBytes), fall back to an uncompressed batch, which
  // every reader accepts.
  if (records_.empty()) records_.resize(bl::kHeaderSize);
  const std::span<const uint8_t> plain(records_.data() + bl::kHeaderSize,
                                       records_.size() - bl::kHeaderSize);
  uint16_t codec = 0;
  if (options_.compression == Compression::kZstd && !plain.empty()) {
    bool worth_it = true;
    if (plain.size() > 2 * kSampleBytes) {
      std::vector<uint8_t>& scratch = ThreadScratch(ZSTD_compressBound(kSampleBytes));
      absl::StatusOr<size_t> n = CompressInto(plain.first(kSampleBytes), options_.zstd_level,
                                              scratch.data(), scratch.size());
      worth_it = n.ok() && *n <= kSampleBytes - kSampleBytes / kMinSavingsDivisor;
    }
    if (worth_it) {
      // Compressed into scratch, then copied over the plain records (it is
      // smaller), so the batch reuses the records' buffer.
      std::vector<uint8_t>& scratch = ThreadScratch(ZSTD_compressBound(plain.size()));
      absl::StatusOr<size_t> n =
          CompressInto(plain, options_.zstd_level, scratch.data(), scratch.size());
      if (n.ok() && *n < plain.size()) {
        std::memcpy(records_.data() + bl::kHeaderSize, scratch.data(), *n);
        records_.resize(bl::kHeaderSize + *n);
        codec = static_cast<uint16_t>(Compression::kZstd);
      }
    }
  }
  std::vector<uint8_t> out = std::move(records_);  // header room + section: no copy
  // A batch is kept until acknowledged: give back a mostly unused
  // reservation (initial_capacity, or the space compression freed).
  if (out.capacity() > 2 * out.size() + 4096) out.shrink_to_fit();

  uint8_t* p = out.data();
  const uint16_t attributes = codec | (options_.transactional ? kTransactionalFlag : 0);
  const int64_t base_ts = count_ > 0 ? base_timestamp_ : -1;
  const int64_t max_ts = count_ > 0 ? max_timestamp_ : -1;
  wire::PutBE64(p + bl::kBaseOffset, 0);
  wire::PutBE32(p + bl::kBatchLength, static_cast<uint32_t>(out.size() - bl::kLogOverhead));
  wire::PutBE32(p + bl::kPartitionLeaderEpoch, static_cast<uint32_t>(-1));
  p[bl::kMagic] = 2;
  wire::PutBE16(p + bl::kAttributes, attributes);
  wire::PutBE32(p + bl::kLastOffsetDelta, static_cast<uint32_t>(count_ - 1));
  wire::PutBE64(p + bl::kBaseTimestamp, static_cast<uint64_t>(base_ts));
  wire::PutBE64(p + bl::kMaxTimestamp, static_cast<uint64_t>(max_ts));
  wire::PutBE64(p + bl::kProducerId, static_cast<uint64_t>(options_.producer_id));
  wire::PutBE16(p + bl::kProducerEpoch, static_cast<uint16_t>(options_.producer_epoch));
  wire::PutBE32(p + bl::kBaseSequence, static_cast<uint32_t>(options_.base_sequence));
  wire::PutBE32(p + bl::kRecordCount, static_cast<uint32_t>(count_));
  wire::PutBE32(p + bl::kCrc, Crc32c(p + bl::kAttributes, out.size() - bl::kAttributes));

  records_ = std::vector<uint8_t>();  // moved from
  count_ = 0;
  base_timestamp_ = 0;
  max_timestamp_ = 0;
  return out;
}

// ---- zstd ------------------------------------------------------------------

absl::StatusOr<std::vector<uint8_t>> ZstdCompress(std::span<const uint8_t> in, int level) {
  std::vector<uint8_t> out(ZSTD_compressBound(in.size()));
  absl::StatusOr<size_t> n = CompressInto(in, level, out.data(), out.size());
  if (!n.ok()) return n.status();
  out.resize(*n);
  return out;
}

absl::StatusOr<std::vector<uint8_t>> ZstdDecompress(std::span<const uint8_t> in,
                                                   size_t max_output) {
  absl::StatusOr<RawBuffer> raw = DecompressRaw(in, max_output);
  if (!raw.ok()) return raw.status();
  return std::vector<uint8_t>(raw->data.get(), raw->data.get() + raw->size);
}

}  // namespace brook
