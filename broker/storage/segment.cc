// Segment bookkeeping: sparse offset/time indexes, their file codecs, and the
// batch-header scanner used by reads, truncation and crash recovery.
#include "broker/storage/segment.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/errors.h"
#include "common/record_batch.h"

namespace brook::storage {

namespace {

// Malformed bytes (as opposed to an I/O error) are tagged CORRUPT_MESSAGE.
absl::Status HeaderError(const File& /*file*/, uint64_t pos, const std::string& what) {
  return MakeError(proto::ErrorCode::CORRUPT_MESSAGE,
                   absl::StrCat("bad batch header at position ", pos, ": ", what));
}

}  // namespace

absl::StatusOr<BatchHeader> ReadBatchHeader(const File& file, uint64_t pos, uint64_t limit) {
  constexpr size_t kNeed = batch_layout::kProducerId;  // through max timestamp
  if (pos > limit || limit - pos < batch_layout::kHeaderSize) {
    return HeaderError(file, pos, "truncated header");
  }
  uint8_t buf[kNeed];
  auto n = file.PRead(pos, std::span<uint8_t>(buf, kNeed));
  if (!n.ok()) return n.status();
  if (*n < kNeed) return HeaderError(file, pos, "short read");
  int32_t length = static_cast<int32_t>(wire::GetBE32(buf + batch_layout::kBatchLength));
  if (length < static_cast<int32_t>(batch_layout::kHeaderSize - batch_layout::kLogOverhead)) {
    return HeaderError(file, pos, absl::StrCat("batch length ", length, " too small"));
  }
  BatchHeader h;
  h.size = batch_layout::kLogOverhead + static_cast<uint64_t>(length);
  if (h.size > limit - pos) {
    return HeaderError(file, pos, absl::StrCat("batch of ", h.size, " bytes runs past the end"));
  }
  if (buf[batch_layout::kMagic] != 2) {
    return HeaderError(file, pos, absl::StrCat("magic ", int{buf[batch_layout::kMagic]}));
  }
  h.base = static_cast<int64_t>(wire::GetBE64(buf + batch_layout::kBaseOffset));
  int32_t delta = static_cast<int32_t>(wire::GetBE32(buf + batch_layout::kLastOffsetDelta));
  if (delta < 0 || h.base < 0) return HeaderError(file, pos, "negative offset");
  h.last = h.base + delta;
  h.max_ts = static_cast<int64_t>(wire::GetBE64(buf + batch_layout::kMaxTimestamp));
  return h;
}

std::string SegmentFileStem(int64_t base) { return absl::StrFormat("%020d", base); }

bool ParseSegmentFileName(const std::string& name, int64_t* base, std::string* ext) {
  if (name.size() < 22 || name[20] != '.') return false;
  int64_t v = 0;
  for (size_t i = 0; i < 20; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return false;
    if (v > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10) return false;
    v = v * 10 + (c - '0');
  }
  *base = v;
  *ext = name.substr(21);
  return true;
}

void Segment::OnBatch(uint64_t pos, const BatchHeader& h, int32_t interval) {
  max_ts = std::max(max_ts, h.max_ts);
  if (index.empty() || bytes_since_index >= static_cast<uint64_t>(interval)) {
    uint32_t rel = static_cast<uint32_t>(h.base - base);
    index.push_back({rel, static_cast<uint32_t>(pos)});
    if (time_index.empty() || max_ts > time_index.back().ts) time_index.push_back({max_ts, rel});
    bytes_since_index = 0;
  }
  bytes_since_index += h.size;
  size = pos + h.size;
  next_offset = h.last + 1;
  last_batch_base = h.base;
}

uint64_t Segment::LookupPos(int64_t offset) const {
  if (offset <= base || index.empty()) return 0;
  uint64_t rel = static_cast<uint64_t>(offset - base);
  auto it = std::upper_bound(index.begin(), index.end(), rel,
                             [](uint64_t r, const IndexEntry& e) { return r < e.rel; });
  if (it == index.begin()) return 0;
  return std::prev(it)->pos;
}

absl::Status Segment::TrimIndexesTo(uint64_t pos, int64_t new_next_offset) {
  while (!index.empty() && index.back().pos >= pos) index.pop_back();
  const int64_t rel_end = new_next_offset - base;
  while (!time_index.empty() && static_cast<int64_t>(time_index.back().rel) >= rel_end) {
    time_index.pop_back();
  }
  max_ts = time_index.empty() ? -1 : time_index.back().ts;
  uint64_t p = index.empty() ? 0 : index.back().pos;
  last_batch_base = -1;
  while (p < pos) {
    auto h = ReadBatchHeader(*log, p, pos);
    if (!h.ok()) return h.status();
    max_ts = std::max(max_ts, h->max_ts);
    last_batch_base = h->base;
    p += h->size;
  }
  bytes_since_index = index.empty() ? 0 : pos - index.back().pos;
  size = pos;
  next_offset = new_next_offset;
  return absl::OkStatus();
}

std::vector<TimeEntry> Segment::SealedTimeIndex() const {
  std::vector<TimeEntry> out = time_index;
  if (last_batch_base >= 0 && (out.empty() || max_ts > out.back().ts)) {
    out.push_back({max_ts, static_cast<uint32_t>(last_batch_base - base)});
  }
  return out;
}

std::vector<uint8_t> EncodeIndex(const std::vector<IndexEntry>& entries) {
  std::vector<uint8_t> out(entries.size() * kIndexEntrySize);
  uint8_t* p = out.data();
  for (const IndexEntry& e : entries) {
    wire::PutBE32(p, e.rel);
    wire::PutBE32(p + 4, e.pos);
    p += kIndexEntrySize;
  }
  return out;
}

std::vector<uint8_t> EncodeTimeIndex(const std::vector<TimeEntry>& entries) {
  std::vector<uint8_t> out(entries.size() * kTimeEntrySize);
  uint8_t* p = out.data();
  for (const TimeEntry& e : entries) {
    wire::PutBE64(p, static_cast<uint64_t>(e.ts));
    wire::PutBE32(p + 8, e.rel);
    p += kTimeEntrySize;
  }
  return out;
}

std::optional<uint64_t> LoadIndexes(FileSystem* fs, Segment* seg) {
  if (!fs->Exists(seg->index_path()) || !fs->Exists(seg->timeindex_path())) return std::nullopt;
  auto idx_bytes = ReadWholeFile(fs, seg->index_path());
  auto time_bytes = ReadWholeFile(fs, seg->timeindex_path());
  if (!idx_bytes.ok() || !time_bytes.ok()) return std::nullopt;
  if (idx_bytes->empty() || idx_bytes->size() % kIndexEntrySize != 0 ||
      time_bytes->size() % kTimeEntrySize != 0) {
    return std::nullopt;
  }
  const uint64_t file_size = seg->log->Size();
  std::vector<IndexEntry> index(idx_bytes->size() / kIndexEntrySize);
  for (size_t i = 0; i < index.size(); ++i) {
    const uint8_t* p = idx_bytes->data() + i * kIndexEntrySize;
    index[i] = {wire::GetBE32(p), wire::GetBE32(p + 4)};
    // A compacted segment's first batch may start past its base offset.
    if (i == 0 ? index[0].pos != 0
               : (index[i].rel <= index[i - 1].rel || index[i].pos <= index[i - 1].pos)) {
      return std::nullopt;
    }
  }
  const IndexEntry last = index.back();
  if (last.pos >= file_size) return std::nullopt;
  std::vector<TimeEntry> time_index;
  for (size_t i = 0; i < time_bytes->size() / kTimeEntrySize; ++i) {
    const uint8_t* p = time_bytes->data() + i * kTimeEntrySize;
    TimeEntry e{static_cast<int64_t>(wire::GetBE64(p)), wire::GetBE32(p + 8)};
    if (!time_index.empty() && (e.ts <= time_index.back().ts || e.rel <= time_index.back().rel)) {
      return std::nullopt;
    }
    if (e.rel <= last.rel) time_index.push_back(e);
  }
  auto h = ReadBatchHeader(*seg->log, last.pos, file_size);
  if (!h.ok() || h->base != seg->base + static_cast<int64_t>(last.rel)) return std::nullopt;

  seg->index = std::move(index);
  seg->time_index = std::move(time_index);
  seg->max_ts = seg->time_index.empty() ? -1 : seg->time_index.back().ts;
  seg->size = last.pos;
  seg->next_offset = h->base;
  seg->bytes_since_index = 0;
  seg->last_batch_base = -1;
  return last.pos;
}

absl::StatusOr<uint64_t> ScanAndIndex(Segment* seg, uint64_t pos, int32_t interval,
                                      std::string* reason) {
  const uint64_t file_size = seg->log->Size();
  std::vector<uint8_t> buf;
  reason->clear();
  while (pos < file_size) {
    auto h = ReadBatchHeader(*seg->log, pos, file_size);
    if (!h.ok()) {
      if (ToErrorCode(h.status()) == proto::ErrorCode::CORRUPT_MESSAGE) {
        *reason = std::string(h.status().message());
        break;
      }
      return h.status();  // an I/O error, not a torn batch
    }
    // Offsets increase; compaction leaves gaps between batches.
    if (h->base < seg->next_offset) {
      *reason = absl::StrCat("batch at position ", pos, " has base offset ", h->base,
                             ", expected at least ", seg->next_offset);
      break;
    }
    if (h->last - seg->base > std::numeric_limits<uint32_t>::max() ||
        pos + h->size > std::numeric_limits<uint32_t>::max()) {
      *reason = absl::StrCat("batch at position ", pos, " exceeds the segment's 32-bit range");
      break;
    }
    buf.resize(h->size);
    auto n = seg->log->PRead(pos, std::span<uint8_t>(buf));
    if (!n.ok()) return n.status();
    if (*n != buf.size()) {
      *reason = absl::StrCat("short read of batch at position ", pos);
      break;
    }
    auto view = RecordBatchView::Parse(std::span<const uint8_t>(buf));
    absl::Status crc = view.ok() ? view->VerifyCrc() : view.status();
    if (!crc.ok()) {
      *reason = absl::StrCat("batch at position ", pos, ": ", crc.message());
      break;
    }
    seg->OnBatch(pos, *h, interval);
    pos += h->size;
  }
  return pos;
}

}  // namespace brook::storage
