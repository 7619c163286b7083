// SegmentRaftLog, FileHardStateStore and FileSnapshotStore: the Raft storage
// interfaces on storage::PartitionLog and atomically replaced files.
#include "coordinator/raft/durable_storage.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/record_batch.h"

namespace brook::raft {
namespace {

using wire::GetBE32;
using wire::GetBE64;
using wire::PutBE32;
using wire::PutBE64;

constexpr uint32_t kHardStateMagic = 0x42524853;  // "BRHS"
constexpr uint32_t kSnapshotMagic = 0x4252534E;   // "BRSN"
constexpr uint32_t kLogMetaMagic = 0x42524C4D;    // "BRLM"
constexpr uint8_t kVersion = 1;
constexpr size_t kTermBytes = 8;  // each record value starts with the term

// Little helpers for the fixed big-endian layouts.
void Put32(std::vector<uint8_t>* out, uint32_t v) {
  size_t n = out->size();
  out->resize(n + 4);
  PutBE32(out->data() + n, v);
}
void Put64(std::vector<uint8_t>* out, uint64_t v) {
  size_t n = out->size();
  out->resize(n + 8);
  PutBE64(out->data() + n, v);
}
// Appends the CRC32C of everything so far.
void Seal(std::vector<uint8_t>* out) { Put32(out, Crc32c(out->data(), out->size())); }

// Checks length >= min, magic, version and the trailing CRC.
absl::Status CheckSealed(std::span<const uint8_t> b, uint32_t magic, size_t min_size,
                         const char* what) {
  if (b.size() < min_size) return absl::DataLossError(absl::StrCat(what, ": short file"));
  if (GetBE32(b.data()) != magic || b[4] != kVersion) {
    return absl::DataLossError(absl::StrCat(what, ": bad magic or version"));
  }
  const size_t body = b.size() - 4;
  if (Crc32c(b.data(), body) != GetBE32(b.data() + body)) {
    return absl::DataLossError(absl::StrCat(what, ": CRC mismatch"));
  }
  return absl::OkStatus();
}

// Log meta: magic, version, base index, base term, CRC (25 bytes).
std::vector<uint8_t> EncodeMeta(int64_t base, Term term) {
  std::vector<uint8_t> out;
  Put32(&out, kLogMetaMagic);
  out.push_back(kVersion);
  Put64(&out, static_cast<uint64_t>(base));
  Put64(&out, static_cast<uint64_t>(term.value()));
  Seal(&out);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- hard state

// magic u32, version u8, term i64, has_vote u8, voted_for i32, crc u32.
std::vector<uint8_t> EncodeHardState(const HardState& state) {
  std::vector<uint8_t> out;
  Put32(&out, kHardStateMagic);
  out.push_back(kVersion);
  Put64(&out, static_cast<uint64_t>(state.term.value()));
  out.push_back(state.voted_for ? 1 : 0);
  Put32(&out, static_cast<uint32_t>(state.voted_for ? state.voted_for->value() : 0));
  Seal(&out);
  return out;
}

absl::StatusOr<HardState> DecodeHardState(std::span<const uint8_t> b) {
  constexpr size_t kSize = 4 + 1 + 8 + 1 + 4 + 4;
  if (absl::Status s = CheckSealed(b, kHardStateMagic, kSize, "raft hard state"); !s.ok()) {
    return s;
  }
  if (b.size() != kSize || b[13] > 1) return absl::DataLossError("raft hard state: bad layout");
  HardState st;
  st.term = Term(static_cast<int64_t>(GetBE64(b.data() + 5)));
  if (b[13] == 1) st.voted_for = NodeId(static_cast<int32_t>(GetBE32(b.data() + 14)));
  return st;
}

absl::StatusOr<HardState> FileHardStateStore::Load() {
  auto bytes = storage::ReadWholeFile(fs_, path_);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) return HardState{};
    return bytes.status();
  }
  return DecodeHardState(*bytes);
}

absl::Status FileHardStateStore::Save(const HardState& state) {
  return storage::WriteFileAtomic(fs_, path_, EncodeHardState(state));
}

// ------------------------------------------------------------------ snapshot

// magic u32, version u8, index i64, term i64, data length u64, data, crc u32.
std::vector<uint8_t> EncodeSnapshot(const Snapshot& snapshot) {
  std::vector<uint8_t> out;
  out.reserve(33 + snapshot.data.size());
  Put32(&out, kSnapshotMagic);
  out.push_back(kVersion);
  Put64(&out, static_cast<uint64_t>(snapshot.index.value()));
  Put64(&out, static_cast<uint64_t>(snapshot.term.value()));
  Put64(&out, snapshot.data.size());
  out.insert(out.end(), snapshot.data.begin(), snapshot.data.end());
  Seal(&out);
  return out;
}

absl::StatusOr<Snapshot> DecodeSnapshot(std::span<const uint8_t> b) {
  constexpr size_t kFixed = 4 + 1 + 8 + 8 + 8 + 4;
  if (absl::Status s = CheckSealed(b, kSnapshotMagic, kFixed, "raft snapshot"); !s.ok()) return s;
  const uint64_t len = GetBE64(b.data() + 21);
  if (len != b.size() - kFixed) return absl::DataLossError("raft snapshot: bad data length");
  Snapshot snap;
  snap.index = LogIndex(static_cast<int64_t>(GetBE64(b.data() + 5)));
  snap.term = Term(static_cast<int64_t>(GetBE64(b.data() + 13)));
  snap.data.assign(reinterpret_cast<const char*>(b.data() + 29), len);
  return snap;
}

absl::StatusOr<std::optional<Snapshot>> FileSnapshotStore::Load() {
  auto bytes = storage::ReadWholeFile(fs_, path_);
  if (!bytes.ok()) {
    if (absl::IsNotFound(bytes.status())) return std::optional<Snapshot>();
    return bytes.status();
  }
  auto snap = DecodeSnapshot(*bytes);
  if (!snap.ok()) return snap.status();
  return std::optional<Snapshot>(std::move(*snap));
}

absl::Status FileSnapshotStore::Save(const Snapshot& snapshot) {
  return storage::WriteFileAtomic(fs_, path_, EncodeSnapshot(snapshot));
}

// ------------------------------------------------------------------------ log

absl::StatusOr<std::unique_ptr<SegmentRaftLog>> SegmentRaftLog::Open(storage::FileSystem* fs,
                                                                     std::string dir,
                                                                     Options options) {
  std::unique_ptr<SegmentRaftLog> log(new SegmentRaftLog(fs, std::move(dir), options));
  if (absl::Status s = log->Load(); !s.ok()) return s;
  return log;
}

SegmentRaftLog::~SegmentRaftLog() { (void)Close(); }

absl::Status SegmentRaftLog::Close() {
  if (!log_) return absl::OkStatus();
  absl::Status s = log_->Close();
  log_.reset();
  if (failed_.ok()) failed_ = absl::FailedPreconditionError("raft log closed");
  return s;
}

std::string SegmentRaftLog::GenerationDir(int64_t base) const {
  return absl::StrCat(dir_, "/log-", base);
}

storage::LogConfig SegmentRaftLog::MakeLogConfig() const {
  storage::LogConfig c;
  c.flush_policy = storage::FlushPolicy::kOs;  // Sync() fsyncs explicitly
  c.segment_bytes = options_.segment_bytes;
  c.segment_ms = 1LL << 50;  // never roll by age
  c.retention_ms = -1;
  c.retention_bytes = -1;
  return c;
}

absl::Status SegmentRaftLog::Fail(absl::Status s) {
  if (failed_.ok()) failed_ = s;
  return s;
}

absl::Status SegmentRaftLog::Load() {
  if (absl::Status s = fs_->CreateDirs(dir_); !s.ok()) return s;
  auto meta = storage::ReadWholeFile(fs_, dir_ + "/meta");
  if (meta.ok()) {
    if (absl::Status s = CheckSealed(*meta, kLogMetaMagic, 25, "raft log meta"); !s.ok()) {
      return s;
    }
    if (meta->size() != 25) return absl::DataLossError("raft log meta: bad layout");
    base_ = static_cast<int64_t>(GetBE64(meta->data() + 5));
    base_term_ = Term(static_cast<int64_t>(GetBE64(meta->data() + 13)));
  } else if (!absl::IsNotFound(meta.status())) {
    return meta.status();
  }
  // Leftovers of an interrupted rewrite.
  auto names = fs_->ListDir(dir_);
  if (!names.ok()) return names.status();
  const std::string current = absl::StrCat("log-", base_);
  for (const std::string& name : *names) {
    if (name.rfind("log-", 0) == 0 && name != current) {
      if (absl::Status s = fs_->RemoveAll(dir_ + "/" + name); !s.ok()) return s;
    }
  }
  auto log = storage::PartitionLog::Open(fs_, GenerationDir(base_), MakeLogConfig());
  if (!log.ok()) return log.status();
  log_ = std::move(*log);
  if (log_->log_start_offset().value() != 0) {
    return absl::DataLossError(absl::StrCat("raft log ", dir_, ": log starts at offset ",
                                            log_->log_start_offset().value()));
  }
  // Rebuild the index -> term cache.
  const int64_t end = log_->log_end_offset().value();
  terms_.clear();
  terms_.reserve(static_cast<size_t>(end));
  for (int64_t off = 0; off < end;) {
    auto bytes = log_->Read(Offset(off), 1 << 20, Offset(end));
    if (!bytes.ok()) return bytes.status();
    auto batches = SplitBatches(*bytes);
    if (!batches.ok()) return batches.status();
    if (batches->empty()) return absl::DataLossError("raft log: empty read");
    RecordReader reader;
    for (const RecordBatchView& b : *batches) {
      std::vector<RecordView> recs;
      if (absl::Status s = reader.Read(b, &recs); !s.ok()) return s;
      for (const RecordView& r : recs) {
        if (r.offset != off || !r.value || r.value->size() < kTermBytes) {
          return absl::DataLossError(absl::StrCat("raft log: bad record at offset ", r.offset));
        }
        terms_.push_back(Term(static_cast<int64_t>(
            GetBE64(reinterpret_cast<const uint8_t*>(r.value->data())))));
        ++off;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Term> SegmentRaftLog::TermAt(LogIndex index) const {
  const int64_t i = index.value();
  if (i == 0) return Term(0);
  if (i == base_) return base_term_;
  if (i < base_ || i > LastIndex().value()) {
    return absl::OutOfRangeError(absl::StrCat("raft log: no term for index ", i));
  }
  return terms_[static_cast<size_t>(i - base_ - 1)];
}

absl::StatusOr<std::vector<Entry>> SegmentRaftLog::Entries(LogIndex from, LogIndex to,
                                                           size_t max_entries) const {
  if (!failed_.ok()) return failed_;
  if (from < FirstIndex() || to.value() > LastIndex().value() + 1 || from > to) {
    return absl::OutOfRangeError(absl::StrCat("raft log: entries [", from.value(), ", ",
                                              to.value(), ") outside the log"));
  }
  std::vector<Entry> out;
  const int64_t limit = std::min<int64_t>(
      to.value(), from.value() + static_cast<int64_t>(std::max<size_t>(max_entries, 1)));
  int64_t next = from.value();
  while (next < limit) {
    auto bytes = log_->Read(Offset(next - base_ - 1), 1 << 20, Offset(limit - base_ - 1));
    if (!bytes.ok()) return bytes.status();
    auto batches = SplitBatches(*bytes);
    if (!batches.ok()) return batches.status();
    if (batches->empty()) return absl::DataLossError("raft log: empty read");
    const int64_t before = next;
    RecordReader reader;
    for (const RecordBatchView& b : *batches) {
      std::vector<RecordView> recs;
      if (absl::Status s = reader.Read(b, &recs); !s.ok()) return s;
      for (const RecordView& r : recs) {
        const int64_t idx = r.offset + base_ + 1;
        if (idx < next) continue;
        if (idx != next || idx >= limit) break;
        if (!r.value || r.value->size() < kTermBytes || !r.key || r.key->size() != 1) {
          return absl::DataLossError(absl::StrCat("raft log: bad record at index ", idx));
        }
        Entry e;
        e.index = LogIndex(idx);
        e.term =
            Term(static_cast<int64_t>(GetBE64(reinterpret_cast<const uint8_t*>(r.value->data()))));
        e.type = static_cast<EntryType>((*r.key)[0]);
        e.data.assign(r.value->substr(kTermBytes));
        out.push_back(std::move(e));
        ++next;
      }
    }
    if (next == before) {
      return absl::DataLossError(absl::StrCat("raft log: index ", next, " missing"));
    }
  }
  return out;
}

absl::Status SegmentRaftLog::AppendOne(const Entry& e) {
  RecordBatchBuilder::Options opts;
  opts.compression = Compression::kNone;
  RecordBatchBuilder builder(opts);
  const char key = static_cast<char>(e.type);
  std::string value(kTermBytes, '\0');
  PutBE64(reinterpret_cast<uint8_t*>(value.data()), static_cast<uint64_t>(e.term.value()));
  value += e.data;
  builder.Append(0, std::string_view(&key, 1), value);
  std::vector<uint8_t> batch = builder.Build();
  SetBaseOffset(batch, e.index.value() - base_ - 1);
  // Terms fitting int32 are mirrored into the leader epoch (informational);
  // the value's term prefix is authoritative.
  SetPartitionLeaderEpoch(batch, static_cast<int32_t>(std::min<int64_t>(e.term.value(), INT32_MAX)));
  auto r = log_->AppendReplicated(batch);
  if (!r.ok()) return Fail(r.status());
  terms_.push_back(e.term);
  return absl::OkStatus();
}

absl::Status SegmentRaftLog::Append(const std::vector<Entry>& entries) {
  if (!failed_.ok()) return failed_;
  for (const Entry& e : entries) {
    if (e.index.value() != LastIndex().value() + 1) {
      return absl::InvalidArgumentError(absl::StrCat("raft log: append of index ",
                                                     e.index.value(), " after ",
                                                     LastIndex().value()));
    }
    if (absl::Status s = AppendOne(e); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SegmentRaftLog::TruncateSuffix(LogIndex from) {
  if (!failed_.ok()) return failed_;
  if (from.value() > LastIndex().value()) return absl::OkStatus();
  if (from < FirstIndex()) {
    return absl::OutOfRangeError(absl::StrCat("raft log: truncate from ", from.value(),
                                              " below first index ", FirstIndex().value()));
  }
  const int64_t off = from.value() - base_ - 1;
  if (absl::Status s = log_->TruncateTo(Offset(off)); !s.ok()) return Fail(s);
  if (log_->log_end_offset().value() != off) {
    return Fail(absl::InternalError("raft log: truncation did not end at the entry boundary"));
  }
  terms_.resize(static_cast<size_t>(off));
  return absl::OkStatus();
}

absl::Status SegmentRaftLog::Rewrite(int64_t base, Term base_term,
                                     const std::vector<Entry>& keep) {
  const std::string new_dir = GenerationDir(base);
  if (base == base_) {
    return absl::InternalError("raft log: rewrite onto the current generation");
  }
  // A leftover of an earlier interrupted rewrite with the same base.
  if (fs_->Exists(new_dir)) {
    if (absl::Status s = fs_->RemoveAll(new_dir); !s.ok()) return Fail(s);
  }
  auto fresh = storage::PartitionLog::Open(fs_, new_dir, MakeLogConfig());
  if (!fresh.ok()) return Fail(fresh.status());
  std::unique_ptr<storage::PartitionLog> old = std::move(log_);
  const int64_t old_base = base_;
  std::vector<Term> old_terms = std::move(terms_);
  const Term old_base_term = base_term_;
  log_ = std::move(*fresh);
  base_ = base;
  base_term_ = base_term;
  terms_.clear();
  absl::Status s;
  for (const Entry& e : keep) {
    s = AppendOne(e);
    if (!s.ok()) break;
  }
  if (s.ok()) s = log_->Sync();
  // Commit point: the meta file names the new generation (WriteFileAtomic
  // fsyncs dir_, which also makes the new generation's directory entry durable).
  if (s.ok()) s = storage::WriteFileAtomic(fs_, dir_ + "/meta", EncodeMeta(base, base_term));
  if (!s.ok()) {
    (void)log_->Close();
    log_ = std::move(old);
    base_ = old_base;
    base_term_ = old_base_term;
    terms_ = std::move(old_terms);
    return Fail(s);
  }
  (void)old->Close();
  old.reset();
  // Best effort: a leftover is removed at the next Open.
  (void)fs_->RemoveAll(GenerationDir(old_base));
  return absl::OkStatus();
}

absl::Status SegmentRaftLog::CompactPrefix(LogIndex through) {
  if (!failed_.ok()) return failed_;
  if (through.value() <= base_) return absl::OkStatus();
  auto term = TermAt(through);
  if (!term.ok()) return term.status();
  std::vector<Entry> keep;
  if (through < LastIndex()) {
    auto rest = Entries(LogIndex(through.value() + 1), LogIndex(LastIndex().value() + 1),
                        terms_.size());
    if (!rest.ok()) return Fail(rest.status());
    keep = std::move(*rest);
  }
  return Rewrite(through.value(), *term, keep);
}

absl::Status SegmentRaftLog::ResetTo(LogIndex index, Term term) {
  if (!failed_.ok()) return failed_;
  if (index.value() == base_) {
    // Same base: empty the current generation instead (durable at once).
    if (absl::Status s = log_->TruncateTo(Offset(0)); !s.ok()) return Fail(s);
    terms_.clear();
    if (term == base_term_) return absl::OkStatus();
    if (absl::Status s = storage::WriteFileAtomic(fs_, dir_ + "/meta", EncodeMeta(base_, term));
        !s.ok()) {
      return Fail(s);
    }
    base_term_ = term;
    return absl::OkStatus();
  }
  return Rewrite(index.value(), term, {});
}

absl::Status SegmentRaftLog::Sync() {
  if (!failed_.ok()) return failed_;
  if (absl::Status s = log_->Sync(); !s.ok()) return Fail(s);
  return absl::OkStatus();
}

}  // namespace brook::raft
