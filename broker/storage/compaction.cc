// Record-level batch rewriting for log compaction (see compaction.h).
#include "broker/storage/compaction.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"

namespace brook::storage {

namespace bl = batch_layout;

namespace {

// Upper bound of a decompressed records section (a batch is at most
// max_batch_bytes compressed; this bounds a hostile compression ratio).
constexpr size_t kMaxSectionBytes = 256u << 20;

absl::Status Malformed(const std::string& what) {
  return absl::DataLossError(absl::StrCat("compaction: malformed record: ", what));
}

bool SkipNullable(const uint8_t** p, const uint8_t* end, std::optional<std::string_view>* out) {
  int32_t len;
  if (!wire::ReadVarint(p, end, &len)) return false;
  if (len == -1) {
    if (out != nullptr) *out = std::nullopt;
    return true;
  }
  if (len < 0 || static_cast<size_t>(len) > static_cast<size_t>(end - *p)) return false;
  if (out != nullptr) *out = std::string_view(reinterpret_cast<const char*>(*p), len);
  *p += len;
  return true;
}

}  // namespace

absl::StatusOr<std::span<const uint8_t>> RecordsSection(const RecordBatchView& batch,
                                                        std::vector<uint8_t>* buf) {
  std::span<const uint8_t> section = batch.bytes().subspan(bl::kHeaderSize);
  switch (batch.compression()) {
    case Compression::kNone:
      return section;
    case Compression::kZstd: {
      auto plain = ZstdDecompress(section, kMaxSectionBytes);
      if (!plain.ok()) return plain.status();
      *buf = std::move(*plain);
      return std::span<const uint8_t>(*buf);
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("compaction: codec ", static_cast<int>(batch.compression()),
                       " is not supported"));
  }
}

absl::StatusOr<std::vector<RawRecord>> ParseRawRecords(std::span<const uint8_t> section,
                                                       int32_t count) {
  if (count < 0) return Malformed("negative record count");
  std::vector<RawRecord> out;
  out.reserve(static_cast<size_t>(std::min<int32_t>(count, 1 << 16)));
  const uint8_t* p = section.data();
  const uint8_t* const end = p + section.size();
  for (int32_t i = 0; i < count; ++i) {
    const uint8_t* start = p;
    int32_t length;
    if (!wire::ReadVarint(&p, end, &length) || length < 1 ||
        static_cast<size_t>(length) > static_cast<size_t>(end - p)) {
      return Malformed("bad record length");
    }
    const uint8_t* body_end = p + length;
    ++p;  // attributes
    int64_t ts_delta;
    RawRecord r;
    if (!wire::ReadVarlong(&p, body_end, &ts_delta) ||
        !wire::ReadVarint(&p, body_end, &r.offset_delta) || !SkipNullable(&p, body_end, &r.key)) {
      return Malformed("bad record header");
    }
    std::optional<std::string_view> value;
    if (!SkipNullable(&p, body_end, &value)) return Malformed("bad record value");
    r.null_value = !value.has_value();
    r.bytes = std::span<const uint8_t>(start, static_cast<size_t>(body_end - start));
    p = body_end;
    out.push_back(r);
  }
  if (p != end) return Malformed("bytes after the last record");
  return out;
}

absl::StatusOr<std::vector<uint8_t>> RebuildBatch(const RecordBatchView& batch,
                                                  std::span<const RawRecord> kept) {
  std::vector<uint8_t> plain;
  for (const RawRecord& r : kept) plain.insert(plain.end(), r.bytes.begin(), r.bytes.end());
  uint16_t attributes = batch.attributes();
  std::vector<uint8_t> records;
  if (kept.empty()) {
    attributes = static_cast<uint16_t>(attributes & ~kCompressionMask);
  } else if (batch.compression() == Compression::kZstd) {
    auto z = ZstdCompress(plain, 1);
    if (!z.ok()) return z.status();
    records = std::move(*z);
  } else if (batch.compression() == Compression::kNone) {
    records = std::move(plain);
  } else {
    return absl::UnimplementedError("compaction: unsupported codec");
  }
  std::vector<uint8_t> out(bl::kHeaderSize + records.size());
  std::memcpy(out.data(), batch.bytes().data(), bl::kHeaderSize);
  if (!records.empty()) std::memcpy(out.data() + bl::kHeaderSize, records.data(), records.size());
  uint8_t* p = out.data();
  wire::PutBE32(p + bl::kBatchLength, static_cast<uint32_t>(out.size() - bl::kLogOverhead));
  wire::PutBE16(p + bl::kAttributes, attributes);
  wire::PutBE32(p + bl::kRecordCount, static_cast<uint32_t>(kept.size()));
  wire::PutBE32(p + bl::kCrc, Crc32c(p + bl::kAttributes, out.size() - bl::kAttributes));
  return out;
}

absl::StatusOr<bool> HasKeylessRecord(const RecordBatchView& batch) {
  if (batch.is_control()) return false;
  std::vector<uint8_t> buf;
  auto section = RecordsSection(batch, &buf);
  if (!section.ok()) return section.status();
  auto records = ParseRawRecords(*section, batch.record_count());
  if (!records.ok()) return records.status();
  for (const RawRecord& r : *records) {
    if (!r.key.has_value()) return true;
  }
  return false;
}

}  // namespace brook::storage
