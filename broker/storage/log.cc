// PartitionLog (segments, appends, reads, truncation, retention, recovery,
// leader-epoch cache) and the group-commit Flusher.
#include "broker/storage/log.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "broker/storage/compaction.h"
#include "broker/storage/segment.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "spdlog/spdlog.h"

namespace brook::storage {

namespace {

constexpr char kEpochCheckpointName[] = "leader-epoch-checkpoint";
constexpr char kCleanerCheckpointName[] = "cleaner-checkpoint";
constexpr char kCleanedSuffix[] = ".cleaned";

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

absl::Status Corrupt(const std::string& msg) {
  return MakeError(proto::ErrorCode::CORRUPT_MESSAGE, msg);
}

// A WhenDurable callback waiting for a group commit.
struct Waiter {
  int64_t offset;
  std::function<void(absl::Status)> done;
};

}  // namespace

struct PartitionLog::Impl {
  FileSystem* fs = nullptr;
  std::string dir;
  LogConfig config;
  Flusher* flusher = nullptr;

  mutable absl::Mutex mu;
  // Sorted by base offset; back() is the active segment. Never empty while open.
  std::vector<std::shared_ptr<Segment>> segments ABSL_GUARDED_BY(mu);
  int64_t log_start ABSL_GUARDED_BY(mu) = 0;
  int64_t log_end ABSL_GUARDED_BY(mu) = 0;
  int64_t total_bytes ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::pair<int32_t, int64_t>> epochs ABSL_GUARDED_BY(mu);  // (epoch, start)
  uint64_t truncate_gen ABSL_GUARDED_BY(mu) = 0;  // bumped by TruncateTo
  // Cleaner checkpoint: every segment whose base is below it has been
  // compacted (docs/formats/segment.md, cleaner-checkpoint).
  int64_t clean_offset ABSL_GUARDED_BY(mu) = 0;
  // Serializes Compact calls (taken before mu).
  absl::Mutex compact_mu;
  bool closed ABSL_GUARDED_BY(mu) = false;
  absl::Status failed_status ABSL_GUARDED_BY(mu);
  std::atomic<bool> failed{false};
  std::atomic<int64_t> durable{0};

  // Serializes fsyncs of the active segment (taken before mu, never inside it).
  absl::Mutex sync_mu;

  absl::Mutex waiters_mu;
  std::vector<Waiter> waiters ABSL_GUARDED_BY(waiters_mu);
  bool waiters_closed ABSL_GUARDED_BY(waiters_mu) = false;

  std::atomic<bool> close_started{false};

  int64_t Now() const { return config.now_ms ? config.now_ms() : SystemNowMs(); }

  absl::Status ClosedError() const { return absl::FailedPreconditionError("log is closed: " + dir); }

  // Puts the log into the permanent failed state. Returns the status every
  // later write gets.
  absl::Status MarkFailedLocked(const absl::Status& cause) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!failed.load()) {
      spdlog::error("storage: log {} failed: {}", dir, cause.ToString());
      failed_status = MakeError(proto::ErrorCode::STORAGE_ERROR,
                                absl::StrCat("log ", dir, " failed: ", cause.message()));
      failed.store(true);
    }
    return failed_status;
  }

  // TruncateTo's work (`offset` < log_end, or `fully`: drop everything and
  // restart empty at `offset`).
  absl::Status TruncateLocked(int64_t offset, bool fully) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  absl::Status CheckWritableLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
    if (closed) return ClosedError();
    if (failed.load()) return failed_status;
    return absl::OkStatus();
  }

  std::string EpochCheckpointPath() const { return dir + "/" + kEpochCheckpointName; }
  std::string CleanerCheckpointPath() const { return dir + "/" + kCleanerCheckpointName; }

  absl::Status PersistCleanOffset(int64_t offset) {
    std::string text = absl::StrCat("0\n", offset, "\n");
    return WriteFileAtomic(fs, CleanerCheckpointPath(),
                           std::span<const uint8_t>(
                               reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }

  // The persisted cleaner checkpoint; 0 when missing or malformed.
  int64_t ReadCleanOffset() {
    if (!fs->Exists(CleanerCheckpointPath())) return 0;
    auto bytes = ReadWholeFile(fs, CleanerCheckpointPath());
    if (!bytes.ok()) return 0;
    std::vector<std::string> lines =
        absl::StrSplit(std::string(bytes->begin(), bytes->end()), '\n', absl::SkipEmpty());
    int64_t v;
    if (lines.size() == 2 && lines[0] == "0" && absl::SimpleAtoi(lines[1], &v) && v >= 0) {
      return v;
    }
    spdlog::warn("storage: ignoring malformed {}", CleanerCheckpointPath());
    return 0;
  }

  absl::Status PersistEpochsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::string text = absl::StrCat("0\n", epochs.size(), "\n");
    for (const auto& [e, start] : epochs) absl::StrAppend(&text, e, " ", start, "\n");
    return WriteFileAtomic(fs, EpochCheckpointPath(),
                           std::span<const uint8_t>(
                               reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }

  absl::Status LoadEpochs() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    epochs.clear();
    if (!fs->Exists(EpochCheckpointPath())) return absl::OkStatus();
    auto bytes = ReadWholeFile(fs, EpochCheckpointPath());
    if (!bytes.ok()) return bytes.status();
    std::string text(bytes->begin(), bytes->end());
    std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
    auto bad = [&] {
      return MakeError(proto::ErrorCode::STORAGE_ERROR,
                       "malformed leader-epoch checkpoint " + EpochCheckpointPath());
    };
    size_t count = 0;
    if (lines.size() < 2 || lines[0] != "0" || !absl::SimpleAtoi(lines[1], &count) ||
        lines.size() != count + 2) {
      return bad();
    }
    for (size_t i = 0; i < count; ++i) {
      std::vector<std::string> parts = absl::StrSplit(lines[i + 2], ' ');
      int32_t e;
      int64_t start;
      if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &e) ||
          !absl::SimpleAtoi(parts[1], &start)) {
        return bad();
      }
      if (!epochs.empty() && (e <= epochs.back().first || start < epochs.back().second)) {
        return bad();
      }
      epochs.emplace_back(e, start);
    }
    return absl::OkStatus();
  }

  // Drops epoch entries starting at or past `end` (Kafka truncateFromEnd).
  bool TrimEpochsFromEndLocked(int64_t end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    size_t n = epochs.size();
    while (!epochs.empty() && epochs.back().second >= end) epochs.pop_back();
    return epochs.size() != n;
  }

  // Entries before `start` collapse into one starting at `start` (Kafka
  // truncateFromStart).
  bool TrimEpochsFromStartLocked(int64_t start) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    size_t first_kept = 0;
    while (first_kept + 1 < epochs.size() && epochs[first_kept + 1].second <= start) ++first_kept;
    bool changed = first_kept > 0;
    epochs.erase(epochs.begin(), epochs.begin() + static_cast<std::ptrdiff_t>(first_kept));
    if (!epochs.empty() && epochs.front().second < start) {
      epochs.front().second = start;
      changed = true;
    }
    return changed;
  }

  // Records `epoch` starting at `start` if it is newer than the latest and
  // persists the checkpoint; on failure the cache is unchanged.
  absl::Status MaybeAddEpochLocked(int32_t epoch, int64_t start) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (epoch < 0 || (!epochs.empty() && epoch <= epochs.back().first)) return absl::OkStatus();
    epochs.emplace_back(epoch, start);
    absl::Status s = PersistEpochsLocked();
    if (!s.ok()) epochs.pop_back();
    return s;
  }

  absl::StatusOr<std::shared_ptr<Segment>> OpenSegmentFile(int64_t base) {
    auto seg = std::make_shared<Segment>();
    seg->base = base;
    seg->next_offset = base;
    seg->stem = dir + "/" + SegmentFileStem(base);
    auto file = fs->Open(seg->log_path());
    if (!file.ok()) return file.status();
    seg->log = std::move(*file);
    return seg;
  }

  absl::Status WriteIndexFiles(const Segment& seg, bool sealed) {
    std::vector<uint8_t> idx = EncodeIndex(seg.index);
    std::vector<uint8_t> tidx = EncodeTimeIndex(sealed ? seg.SealedTimeIndex() : seg.time_index);
    absl::Status s = WriteFileAtomic(fs, seg.index_path(), idx);
    if (s.ok()) s = WriteFileAtomic(fs, seg.timeindex_path(), tidx);
    return s;
  }

  void RemoveIndexFiles(const Segment& seg) {
    for (const std::string& p : {seg.index_path(), seg.timeindex_path()}) {
      if (fs->Exists(p)) {
        absl::Status s = fs->Remove(p);
        if (!s.ok()) spdlog::warn("storage: cannot remove {}: {}", p, s.ToString());
      }
    }
  }

  absl::Status RemoveSegmentFiles(const Segment& seg) {
    if (fs->Exists(seg.log_path())) {
      absl::Status s = fs->Remove(seg.log_path());
      if (!s.ok()) return s;
    }
    RemoveIndexFiles(seg);
    return absl::OkStatus();
  }

  // Seals the active segment (fsync, index files) and starts a new one at the
  // log end. A failed fsync fails the log; other errors leave it unchanged.
  absl::Status RollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::shared_ptr<Segment> active = segments.back();
    if (active->empty()) return absl::OkStatus();
    absl::Status s = active->log->Sync();
    if (!s.ok()) return MarkFailedLocked(s);
    s = WriteIndexFiles(*active, /*sealed=*/true);
    if (!s.ok()) return s;
    auto next = OpenSegmentFile(log_end);
    if (!next.ok()) return next.status();
    if ((*next)->log->Size() != 0) {
      s = (*next)->log->Truncate(0);
      if (!s.ok()) return s;
    }
    s = fs->SyncDir(dir);
    if (!s.ok()) return s;
    active->time_index = active->SealedTimeIndex();
    active->sealed = true;
    segments.push_back(std::move(*next));
    if (durable.load() < active->next_offset) durable.store(active->next_offset);
    spdlog::debug("storage: {} rolled to segment {}", dir, log_end);
    return absl::OkStatus();
  }

  absl::Status MaybeRollLocked(uint64_t incoming_bytes, int64_t incoming_last)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const Segment& a = *segments.back();
    if (a.empty()) return absl::OkStatus();
    bool due = a.size + incoming_bytes > static_cast<uint64_t>(config.segment_bytes) ||
               (a.created_ms >= 0 && Now() - a.created_ms >= config.segment_ms) ||
               incoming_last - a.base > static_cast<int64_t>(std::numeric_limits<uint32_t>::max());
    return due ? RollLocked() : absl::OkStatus();
  }

  // Writes `bytes` (whole batches described by `headers`) to the active
  // segment with one Append. On failure the file is cut back to its previous
  // size; ENOSPC leaves the log usable, anything else fails it.
  absl::StatusOr<AppendResult> WriteLocked(std::span<const uint8_t> bytes,
                                           const std::vector<BatchHeader>& headers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Segment& seg = *segments.back();
    const uint64_t prev = seg.size;
    absl::Status s = seg.log->Append(bytes);
    if (!s.ok()) {
      absl::Status t = seg.log->Truncate(prev);
      if (absl::IsResourceExhausted(s) && t.ok()) return s;
      return MarkFailedLocked(t.ok() ? s : t);
    }
    if (seg.created_ms < 0) seg.created_ms = Now();
    AppendResult r;
    r.base_offset = Offset(headers.front().base);
    r.last_offset = Offset(headers.back().last);
    r.bytes = bytes.size();
    uint64_t pos = prev;
    for (const BatchHeader& h : headers) {
      seg.OnBatch(pos, h, config.index_interval_bytes);
      pos += h.size;
      r.max_timestamp = std::max(r.max_timestamp, h.max_ts);
    }
    log_end = seg.next_offset;
    total_bytes += static_cast<int64_t>(bytes.size());
    return r;
  }

  static BatchHeader HeaderOf(const RecordBatchView& v) {
    BatchHeader h;
    h.base = v.base_offset();
    h.last = v.last_offset();
    h.max_ts = v.max_timestamp();
    h.size = v.size();
    return h;
  }

  // fsyncs the active segment if anything is unsynced and publishes the new
  // durable offset. Blocks on the fsync without holding `mu`.
  absl::Status SyncInternal() {
    absl::MutexLock sl(&sync_mu);
    std::shared_ptr<Segment> seg;
    int64_t target;
    uint64_t gen;
    {
      absl::ReaderMutexLock l(&mu);
      if (failed.load()) return failed_status;
      if (closed) return ClosedError();
      target = log_end;
      if (durable.load() >= target) return absl::OkStatus();
      seg = segments.back();
      gen = truncate_gen;
    }
    absl::Status s = seg->log->Sync();
    absl::MutexLock l(&mu);
    if (!s.ok()) return MarkFailedLocked(s);
    if (gen == truncate_gen && durable.load() < target) durable.store(target);
    return absl::OkStatus();
  }

  // Completes `taken` after a sync that returned `s`; waiters not yet covered
  // go back to the queue.
  void CompleteWaiters(std::vector<Waiter> taken, const absl::Status& s) {
    std::vector<Waiter> keep;
    std::vector<std::pair<std::function<void(absl::Status)>, absl::Status>> calls;
    if (!s.ok()) {
      absl::MutexLock l(&waiters_mu);
      for (Waiter& w : waiters) taken.push_back(std::move(w));
      waiters.clear();
    }
    const int64_t d = durable.load();
    for (Waiter& w : taken) {
      if (!s.ok()) {
        calls.emplace_back(std::move(w.done), s);
      } else if (w.offset < d) {
        calls.emplace_back(std::move(w.done), absl::OkStatus());
      } else {
        keep.push_back(std::move(w));
      }
    }
    if (!keep.empty()) {
      absl::MutexLock l(&waiters_mu);
      for (Waiter& w : keep) waiters.push_back(std::move(w));
    }
    for (auto& [done, status] : calls) done(status);
  }

  // Flusher thread: one fsync for every waiter queued so far.
  void GroupCommit() {
    std::vector<Waiter> taken;
    {
      absl::MutexLock l(&waiters_mu);
      taken.swap(waiters);
    }
    if (taken.empty()) return;
    absl::Status s = SyncInternal();
    CompleteWaiters(std::move(taken), s);
  }

  // Flusher thread, kInterval.
  void PeriodicSync() {
    absl::Status s = SyncInternal();
    if (!s.ok() && !absl::IsFailedPrecondition(s)) {
      spdlog::error("storage: periodic fsync of {} failed: {}", dir, s.ToString());
    }
  }

  absl::Status DeleteOldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::shared_ptr<Segment> seg = segments.front();
    absl::Status s = RemoveSegmentFiles(*seg);
    if (!s.ok()) return s;
    segments.erase(segments.begin());
    total_bytes -= static_cast<int64_t>(seg->size);
    log_start = segments.front()->base;
    spdlog::info("storage: {} deleted segment {} (retention); log start now {}", dir, seg->base,
                 log_start);
    return absl::OkStatus();
  }

  absl::Status Recover();
};

// ---------------------------------------------------------------------------
// Open and recovery.

absl::Status PartitionLog::Impl::Recover() {
  absl::MutexLock l(&mu);
  absl::Status s = fs->CreateDirs(dir);
  if (!s.ok()) return s;
  auto names = fs->ListDir(dir);
  if (!names.ok()) return names.status();

  std::vector<int64_t> bases;
  absl::flat_hash_set<int64_t> with_log;
  std::vector<std::string> index_files;
  for (const std::string& name : *names) {
    int64_t base;
    std::string ext;
    if (ParseSegmentFileName(name, &base, &ext) && ext == "log") {
      bases.push_back(base);
      with_log.insert(base);
    } else if (ParseSegmentFileName(name, &base, &ext) &&
               (ext == "index" || ext == "timeindex")) {
      index_files.push_back(name);
    } else if (EndsWith(name, ".tmp") || EndsWith(name, ".deleted") ||
               EndsWith(name, kCleanedSuffix)) {
      // A .cleaned file is a compaction that did not reach its swap rename:
      // the original segment is intact.
      spdlog::info("storage: removing stray file {}/{}", dir, name);
      s = fs->Remove(dir + "/" + name);
      if (!s.ok()) return s;
    }
  }
  for (const std::string& name : index_files) {
    int64_t base;
    std::string ext;
    ParseSegmentFileName(name, &base, &ext);
    if (!with_log.contains(base)) {
      spdlog::info("storage: removing orphan index {}/{}", dir, name);
      s = fs->Remove(dir + "/" + name);
      if (!s.ok()) return s;
    }
  }
  std::sort(bases.begin(), bases.end());
  // Segments below the cleaner checkpoint may have been compacted: a gap
  // after one of them is expected. Any other gap means a lost segment.
  const int64_t persisted_clean = ReadCleanOffset();

  for (size_t i = 0; i < bases.size(); ++i) {
    auto seg_or = OpenSegmentFile(bases[i]);
    if (!seg_or.ok()) return seg_or.status();
    std::shared_ptr<Segment> seg = std::move(*seg_or);
    if (!segments.empty() &&
        (seg->base < segments.back()->next_offset ||
         (seg->base > segments.back()->next_offset &&
          segments.back()->base >= persisted_clean))) {
      spdlog::error("storage: {}: segment {} does not continue offset {}; dropping it and later ones",
                    dir, seg->base, segments.back()->next_offset);
      for (size_t j = i; j < bases.size(); ++j) {
        Segment gone;
        gone.stem = dir + "/" + SegmentFileStem(bases[j]);
        s = RemoveSegmentFiles(gone);
        if (!s.ok()) return s;
      }
      break;
    }
    std::optional<uint64_t> resume = LoadIndexes(fs, seg.get());
    std::string reason;
    auto end = ScanAndIndex(seg.get(), resume.value_or(0), config.index_interval_bytes, &reason);
    if (!end.ok()) return end.status();
    const bool last = i + 1 == bases.size();
    if (*end < seg->log->Size()) {
      spdlog::warn("storage: {}: truncating segment {} from {} to {} bytes: {}", dir, seg->base,
                   seg->log->Size(), *end, reason);
      s = seg->log->Truncate(*end);
      if (s.ok()) s = seg->log->Sync();
      if (!s.ok()) return s;
      RemoveIndexFiles(*seg);
      resume.reset();
      if (!last) {
        spdlog::error("storage: {}: dropping {} segment(s) after the corrupt one", dir,
                      bases.size() - i - 1);
        for (size_t j = i + 1; j < bases.size(); ++j) {
          Segment gone;
          gone.stem = dir + "/" + SegmentFileStem(bases[j]);
          s = RemoveSegmentFiles(gone);
          if (!s.ok()) return s;
        }
      }
      seg->created_ms = seg->empty() ? -1 : Now();
      segments.push_back(std::move(seg));
      break;
    }
    seg->created_ms = seg->empty() ? -1 : Now();
    if (!last) {
      if (!resume.has_value()) {
        s = WriteIndexFiles(*seg, /*sealed=*/true);
        if (!s.ok()) return s;
      }
      seg->time_index = seg->SealedTimeIndex();
      seg->sealed = true;
    }
    segments.push_back(std::move(seg));
  }
  // An empty sealed segment could only come from a crash in the middle of a
  // roll; the active segment is simply the last one.
  if (!segments.empty() && segments.back()->sealed) segments.back()->sealed = false;

  if (segments.empty()) {
    auto seg = OpenSegmentFile(0);
    if (!seg.ok()) return seg.status();
    segments.push_back(std::move(*seg));
  }
  s = fs->SyncDir(dir);
  if (!s.ok()) return s;
  // Everything that survived recovery is made durable before it counts as such.
  s = segments.back()->log->Sync();
  if (!s.ok()) return s;

  log_start = segments.front()->base;
  log_end = segments.back()->next_offset;
  total_bytes = 0;
  for (const auto& seg : segments) total_bytes += static_cast<int64_t>(seg->size);
  durable.store(log_end);

  clean_offset = std::clamp(persisted_clean, log_start, log_end);
  s = LoadEpochs();
  if (!s.ok()) return s;
  // Entries past the end (epoch recorded, data lost in the crash) go; one
  // starting exactly at the end is kept (its epoch began with no data yet).
  bool changed = TrimEpochsFromEndLocked(log_end + 1);
  changed |= TrimEpochsFromStartLocked(log_start);
  if (changed) return PersistEpochsLocked();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PartitionLog>> PartitionLog::Open(FileSystem* fs, std::string dir,
                                                                 LogConfig config,
                                                                 Flusher* flusher) {
  if (config.segment_bytes <= 0 ||
      config.segment_bytes > static_cast<int64_t>(std::numeric_limits<int32_t>::max()) ||
      config.index_interval_bytes <= 0 || config.max_batch_bytes <= 0 ||
      config.segment_ms <= 0 || config.flush_interval_ms <= 0) {
    return MakeError(proto::ErrorCode::INVALID_CONFIG,
                     "log config: segment_bytes must be in (0, 2^31), and index_interval_bytes, "
                     "max_batch_bytes, segment_ms, flush_interval_ms positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->fs = fs;
  impl->dir = std::move(dir);
  impl->config = std::move(config);
  impl->flusher = flusher;
  absl::Status s = impl->Recover();
  if (!s.ok()) return s;
  Impl* raw = impl.get();
  std::unique_ptr<PartitionLog> log(new PartitionLog(std::move(impl)));
  if (flusher != nullptr) flusher->Register(raw);
  return log;
}

PartitionLog::PartitionLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PartitionLog::~PartitionLog() {
  if (impl_ && !impl_->close_started.load()) Close().IgnoreError();
}

// ---------------------------------------------------------------------------
// Writes.

absl::StatusOr<AppendResult> PartitionLog::Append(std::span<uint8_t> batches, LeaderEpoch epoch) {
  Impl& m = *impl_;
  auto views = SplitBatches(std::span<const uint8_t>(batches.data(), batches.size()));
  if (!views.ok()) return Corrupt(std::string(views.status().message()));
  if (views->empty()) return MakeError(proto::ErrorCode::INVALID_REQUEST, "no batches to append");
  std::vector<BatchHeader> headers;
  headers.reserve(views->size());
  int64_t count = 0;
  for (const RecordBatchView& v : *views) {
    if (v.size() > static_cast<size_t>(m.config.max_batch_bytes)) {
      return MakeError(proto::ErrorCode::RECORD_TOO_LARGE,
                       absl::StrCat("batch of ", v.size(), " bytes exceeds max_batch_bytes ",
                                    m.config.max_batch_bytes));
    }
    absl::Status s = v.Validate();
    if (!s.ok()) return Corrupt(std::string(s.message()));
    if (v.last_offset_delta() < 0) return Corrupt("negative last offset delta");
    count += int64_t{v.last_offset_delta()} + 1;
    if (m.config.cleanup_policy == CleanupPolicy::kCompact) {
      auto keyless = HasKeylessRecord(v);
      if (absl::IsUnimplemented(keyless.status())) {
        return MakeError(proto::ErrorCode::INVALID_RECORD,
                         "compacted topic: batches must be uncompressed or zstd");
      }
      if (!keyless.ok()) return Corrupt(std::string(keyless.status().message()));
      if (*keyless) {
        return MakeError(proto::ErrorCode::INVALID_RECORD,
                         "compacted topic: every record needs a key");
      }
    }
  }

  absl::MutexLock l(&m.mu);
  absl::Status s = m.CheckWritableLocked();
  if (!s.ok()) return s;
  s = m.MaybeRollLocked(batches.size(), m.log_end + count - 1);
  if (!s.ok()) return s;
  int64_t next = m.log_end;
  for (const RecordBatchView& v : *views) {
    // The view's span aliases `batches`; patch through the mutable buffer.
    size_t at = static_cast<size_t>(v.bytes().data() - batches.data());
    std::span<uint8_t> b = batches.subspan(at, v.size());
    SetBaseOffset(b, next);
    SetPartitionLeaderEpoch(b, epoch.value());
    headers.push_back(Impl::HeaderOf(v));
    next = headers.back().last + 1;
  }
  s = m.MaybeAddEpochLocked(epoch.value(), m.log_end);
  if (!s.ok()) return s;
  return m.WriteLocked(batches, headers);
}

absl::StatusOr<AppendResult> PartitionLog::AppendReplicated(std::span<const uint8_t> batches) {
  Impl& m = *impl_;
  auto views = SplitBatches(batches);
  if (!views.ok()) return Corrupt(std::string(views.status().message()));
  if (views->empty()) return MakeError(proto::ErrorCode::INVALID_REQUEST, "no batches to append");
  std::vector<BatchHeader> headers;
  headers.reserve(views->size());
  for (const RecordBatchView& v : *views) {
    absl::Status s = v.VerifyCrc();
    if (!s.ok()) return Corrupt(std::string(s.message()));
    if (v.last_offset_delta() < 0) return Corrupt("negative last offset delta");
    headers.push_back(Impl::HeaderOf(v));
    if (headers.size() > 1 && headers.back().base <= headers[headers.size() - 2].last) {
      return MakeError(proto::ErrorCode::INVALID_REQUEST,
                       absl::StrCat("replicated batches not contiguous at offset ",
                                    headers.back().base));
    }
  }
  absl::MutexLock l(&m.mu);
  absl::Status s = m.CheckWritableLocked();
  if (!s.ok()) return s;
  // A compacted leader log has gaps: the first batch may start past our end.
  if (headers.front().base < m.log_end) {
    return MakeError(proto::ErrorCode::INVALID_REQUEST,
                     absl::StrCat("replicated batch starts at ", headers.front().base,
                                  " but the log ends at ", m.log_end));
  }
  s = m.MaybeRollLocked(batches.size(), headers.back().last);
  if (!s.ok()) return s;
  // Epoch changes inside the request: persist them all before the data.
  const auto saved_epochs = m.epochs;
  bool epochs_changed = false;
  for (const RecordBatchView& v : *views) {
    int32_t e = v.partition_leader_epoch();
    if (e >= 0 && (m.epochs.empty() || e > m.epochs.back().first)) {
      m.epochs.emplace_back(e, v.base_offset());
      epochs_changed = true;
    }
  }
  if (epochs_changed) {
    s = m.PersistEpochsLocked();
    if (!s.ok()) {
      m.epochs = saved_epochs;
      return s;
    }
  }
  return m.WriteLocked(batches, headers);
}

void PartitionLog::WhenDurable(Offset offset, std::function<void(absl::Status)> done) {
  Impl& m = *impl_;
  if (m.failed.load()) {
    absl::Status s;
    {
      absl::ReaderMutexLock l(&m.mu);
      s = m.failed_status;
    }
    done(s);
    return;
  }
  if (m.config.flush_policy != FlushPolicy::kAlways || offset.value() < m.durable.load()) {
    done(absl::OkStatus());
    return;
  }
  if (m.flusher == nullptr) {
    absl::Status s = m.SyncInternal();
    if (s.ok() && offset.value() >= m.durable.load()) {
      s = absl::OutOfRangeError(absl::StrCat("offset ", offset.value(), " is past the log end"));
    }
    done(s);
    return;
  }
  bool closed;
  {
    absl::MutexLock l(&m.waiters_mu);
    closed = m.waiters_closed;
    if (!closed) {
      m.waiters.push_back({offset.value(), std::move(done)});
      // Scheduling under waiters_mu keeps Close (which sets waiters_closed
      // first) from racing with a Schedule of a log about to be destroyed.
      m.flusher->Schedule(&m);
    }
  }
  if (closed) done(m.ClosedError());
}

absl::Status PartitionLog::Sync() { return impl_->SyncInternal(); }

absl::Status PartitionLog::TruncateTo(Offset offset_in) {
  Impl& m = *impl_;
  const int64_t offset = offset_in.value();
  absl::MutexLock l(&m.mu);
  absl::Status s = m.CheckWritableLocked();
  if (!s.ok()) return s;
  if (offset >= m.log_end) return absl::OkStatus();
  return m.TruncateLocked(offset, /*fully=*/false);
}

absl::Status PartitionLog::TruncateFullyAndStartAt(Offset offset) {
  Impl& m = *impl_;
  absl::MutexLock l(&m.mu);
  absl::Status s = m.CheckWritableLocked();
  if (!s.ok()) return s;
  return m.TruncateLocked(offset.value(), /*fully=*/true);
}

absl::Status PartitionLog::Impl::TruncateLocked(int64_t offset, bool fully) {
  Impl& m = *this;
  absl::Status s;
  ++m.truncate_gen;
  if (fully || offset < m.log_start) {
    m.clean_offset = offset;
  } else if (m.clean_offset > offset) {
    // The cut segment becomes active again: it is dirty from its base on.
    auto c = std::upper_bound(m.segments.begin(), m.segments.end(), offset,
                              [](int64_t o, const std::shared_ptr<Segment>& sg) {
                                return o < sg->base;
                              });
    m.clean_offset = (*std::prev(c))->base;
  }

  if (fully || offset < m.log_start) {
    // Everything goes; the log restarts empty at `offset`.
    for (const auto& seg : m.segments) {
      s = m.RemoveSegmentFiles(*seg);
      if (!s.ok()) return m.MarkFailedLocked(s);
    }
    m.segments.clear();
    auto seg = m.OpenSegmentFile(offset);
    if (!seg.ok()) return m.MarkFailedLocked(seg.status());
    s = (*seg)->log->Truncate(0);
    if (!s.ok()) return m.MarkFailedLocked(s);
    m.segments.push_back(std::move(*seg));
    m.log_start = m.log_end = offset;
    m.total_bytes = 0;
  } else {
    // The containing segment: the last whose base is <= offset.
    auto it = std::upper_bound(m.segments.begin(), m.segments.end(), offset,
                               [](int64_t o, const std::shared_ptr<Segment>& sg) {
                                 return o < sg->base;
                               });
    size_t idx = static_cast<size_t>(std::prev(it) - m.segments.begin());
    while (m.segments.size() > idx + 1) {
      s = m.RemoveSegmentFiles(*m.segments.back());
      if (!s.ok()) return m.MarkFailedLocked(s);
      m.segments.pop_back();
    }
    Segment& seg = *m.segments.back();
    // Cut before the first batch whose last offset is >= offset: a batch that
    // straddles `offset` goes entirely, so the log may end below `offset`.
    uint64_t pos = seg.LookupPos(offset);
    int64_t new_end = seg.next_offset;
    while (pos < seg.size) {
      auto h = ReadBatchHeader(*seg.log, pos, seg.size);
      if (!h.ok()) return m.MarkFailedLocked(h.status());
      if (h->last >= offset) {
        new_end = h->base;
        break;
      }
      pos += h->size;
    }
    s = seg.log->Truncate(pos);
    if (s.ok()) s = seg.log->Sync();
    if (!s.ok()) return m.MarkFailedLocked(s);
    m.RemoveIndexFiles(seg);
    s = seg.TrimIndexesTo(pos, new_end);
    if (!s.ok()) return m.MarkFailedLocked(s);
    if (seg.sealed) {
      seg.sealed = false;
      seg.created_ms = seg.empty() ? -1 : m.Now();
    }
    if (seg.empty()) seg.created_ms = -1;
    m.log_end = new_end;
    m.total_bytes = 0;
    for (const auto& sg : m.segments) m.total_bytes += static_cast<int64_t>(sg->size);
  }
  s = m.fs->SyncDir(m.dir);
  if (!s.ok()) return m.MarkFailedLocked(s);
  if (m.durable.load() > m.log_end || fully) m.durable.store(m.log_end);
  bool epochs_changed = m.TrimEpochsFromEndLocked(m.log_end);
  if (fully && !m.epochs.empty()) {
    m.epochs.clear();
    epochs_changed = true;
  }
  if (epochs_changed) {
    s = m.PersistEpochsLocked();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> PartitionLog::ApplyRetention(int64_t now_ms) {
  Impl& m = *impl_;
  absl::MutexLock l(&m.mu);
  absl::Status s = m.CheckWritableLocked();
  if (!s.ok()) return s;
  int deleted = 0;
  if (m.config.cleanup_policy == CleanupPolicy::kCompact) return deleted;
  if (m.config.retention_ms >= 0) {
    const int64_t cutoff = now_ms - m.config.retention_ms;
    const Segment& active = *m.segments.back();
    if (!active.empty() && active.max_ts < cutoff) {
      s = m.RollLocked();
      if (!s.ok()) return s;
    }
    while (m.segments.size() > 1 && m.segments.front()->max_ts < cutoff) {
      s = m.DeleteOldestLocked();
      if (!s.ok()) return s;
      ++deleted;
    }
  }
  if (m.config.retention_bytes >= 0) {
    while (m.segments.size() > 1 && m.total_bytes > m.config.retention_bytes) {
      s = m.DeleteOldestLocked();
      if (!s.ok()) return s;
      ++deleted;
    }
  }
  if (deleted > 0) {
    s = m.fs->SyncDir(m.dir);
    if (!s.ok()) return s;
    if (m.TrimEpochsFromStartLocked(m.log_start)) {
      s = m.PersistEpochsLocked();
      if (!s.ok()) return s;
    }
  }
  return deleted;
}

absl::Status PartitionLog::Close() {
  Impl& m = *impl_;
  if (m.close_started.exchange(true)) return m.ClosedError();
  {
    // From here on WhenDurable neither queues nor schedules.
    absl::MutexLock wl(&m.waiters_mu);
    m.waiters_closed = true;
  }
  if (m.flusher != nullptr) m.flusher->Unregister(&m);
  absl::Status result = m.failed.load() ? absl::OkStatus() : m.SyncInternal();
  std::vector<Waiter> left;
  {
    absl::MutexLock wl(&m.waiters_mu);
    left.swap(m.waiters);
  }
  {
    absl::MutexLock l(&m.mu);
    if (result.ok() && !m.failed.load() && !m.segments.back()->empty()) {
      // Index files of the active segment let the next Open resume its scan
      // at the last index point instead of the segment's start.
      result = m.WriteIndexFiles(*m.segments.back(), /*sealed=*/false);
    }
    if (m.failed.load() && result.ok()) result = m.failed_status;
    m.closed = true;
    m.segments.clear();
  }
  const int64_t d = m.durable.load();
  for (Waiter& w : left) {
    w.done(w.offset < d ? absl::OkStatus() : m.ClosedError());
  }
  return result;
}

// ---------------------------------------------------------------------------
// Reads.

absl::StatusOr<std::vector<uint8_t>> PartitionLog::Read(Offset offset_in, size_t max_bytes,
                                                        Offset max_offset) const {
  const Impl& m = *impl_;
  const int64_t offset = offset_in.value();
  struct Ref {
    std::shared_ptr<Segment> seg;
    uint64_t start;
    uint64_t limit;
  };
  std::vector<Ref> refs;
  {
    absl::ReaderMutexLock l(&m.mu);
    if (m.closed) return m.ClosedError();
    if (offset < m.log_start || offset > m.log_end) {
      return MakeError(proto::ErrorCode::OFFSET_OUT_OF_RANGE,
                       absl::StrCat("offset ", offset, " outside [", m.log_start, ", ", m.log_end,
                                    "] of ", m.dir));
    }
    if (offset >= max_offset.value() || offset == m.log_end) return std::vector<uint8_t>{};
    auto it = std::upper_bound(m.segments.begin(), m.segments.end(), offset,
                               [](int64_t o, const std::shared_ptr<Segment>& sg) {
                                 return o < sg->base;
                               });
    uint64_t want = 0;
    auto first = std::prev(it);
    // Past the last batch of a compacted segment: the next batch is later.
    while (std::next(first) != m.segments.end() && (*first)->next_offset <= offset) ++first;
    for (auto i = first; i != m.segments.end(); ++i) {
      const Segment& seg = **i;
      uint64_t start = refs.empty() ? seg.LookupPos(offset) : 0;
      refs.push_back({*i, start, seg.size});
      want += seg.size - start;
      if (want >= max_bytes || seg.next_offset >= max_offset.value()) break;
    }
  }

  std::vector<uint8_t> out;
  for (size_t r = 0; r < refs.size(); ++r) {
    const Ref& ref = refs[r];
    const File& file = *ref.seg->log;
    uint64_t pos = ref.start;
    uint64_t first_size = 0;
    if (r == 0) {
      // Walk the headers from the index point to the batch holding `offset`.
      while (true) {
        if (pos >= ref.limit) return std::vector<uint8_t>{};
        auto h = ReadBatchHeader(file, pos, ref.limit);
        if (!h.ok()) return h.status();
        if (h->last >= offset) {
          first_size = h->size;
          break;
        }
        pos += h->size;
      }
    }
    const uint64_t budget = max_bytes > out.size() ? max_bytes - out.size() : 0;
    const uint64_t to_read = std::min(ref.limit - pos, std::max(budget, first_size));
    if (to_read == 0) break;
    const size_t old = out.size();
    out.resize(old + to_read);
    auto n = file.PRead(pos, std::span<uint8_t>(out.data() + old, to_read));
    if (!n.ok()) return n.status();
    const size_t end = old + *n;
    // Keep whole batches within the budget (the very first always) and below
    // max_offset; go on to the next segment only if this one was used up.
    size_t p = old;
    bool hit_max = false;
    while (end - p >= batch_layout::kHeaderSize) {
      const uint64_t bsize =
          batch_layout::kLogOverhead +
          uint64_t{wire::GetBE32(out.data() + p + batch_layout::kBatchLength)};
      const int64_t base = static_cast<int64_t>(wire::GetBE64(out.data() + p));
      if (base >= max_offset.value()) {
        hit_max = true;
        break;
      }
      if (bsize < batch_layout::kHeaderSize || bsize > end - p) break;
      if (p != 0 && p + bsize > max_bytes) break;
      p += bsize;
    }
    out.resize(p);
    if (hit_max || p - old != ref.limit - pos) break;
  }
  return out;
}

absl::StatusOr<Offset> PartitionLog::OffsetForTimestamp(int64_t timestamp_ms) const {
  const Impl& m = *impl_;
  struct Ref {
    std::shared_ptr<Segment> seg;
    uint64_t start;
    uint64_t limit;
  };
  std::vector<Ref> refs;
  int64_t end;
  {
    absl::ReaderMutexLock l(&m.mu);
    if (m.closed) return m.ClosedError();
    end = m.log_end;
    size_t i = 0;
    while (i < m.segments.size() && m.segments[i]->max_ts < timestamp_ms) ++i;
    for (size_t j = i; j < m.segments.size(); ++j) {
      const Segment& seg = *m.segments[j];
      uint64_t start = 0;
      if (j == i) {
        // The last time entry below the target: every batch up to it is older.
        auto t = std::lower_bound(seg.time_index.begin(), seg.time_index.end(), timestamp_ms,
                                  [](const TimeEntry& e, int64_t ts) { return e.ts < ts; });
        if (t != seg.time_index.begin()) {
          start = seg.LookupPos(seg.base + std::prev(t)->rel);
        }
      }
      refs.push_back({m.segments[j], start, seg.size});
      if (j > i + 1) break;
    }
  }
  for (const Ref& ref : refs) {
    uint64_t pos = ref.start;
    while (pos < ref.limit) {
      auto h = ReadBatchHeader(*ref.seg->log, pos, ref.limit);
      if (!h.ok()) return h.status();
      if (h->max_ts >= timestamp_ms) return Offset(h->base);
      pos += h->size;
    }
  }
  return Offset(end);
}

// ---------------------------------------------------------------------------
// Compaction.

namespace {

// Calls `fn(view, pos)` for every batch in [0, limit) of `file`, reading in
// chunks of about 1 MiB.
absl::Status ForEachBatch(const File& file, uint64_t limit,
                          const std::function<absl::Status(const RecordBatchView&, uint64_t)>& fn) {
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<uint8_t> buf;
  uint64_t pos = 0;
  while (pos < limit) {
    auto h = ReadBatchHeader(file, pos, limit);
    if (!h.ok()) return h.status();
    const uint64_t want = std::min(limit - pos, std::max(kChunk, h->size));
    buf.resize(want);
    auto n = file.PRead(pos, std::span<uint8_t>(buf));
    if (!n.ok()) return n.status();
    if (*n != want) return Corrupt(absl::StrCat("short read at position ", pos));
    size_t p = 0;
    while (buf.size() - p >= batch_layout::kHeaderSize) {
      const uint64_t bsize = batch_layout::kLogOverhead +
                             uint64_t{wire::GetBE32(buf.data() + p + batch_layout::kBatchLength)};
      if (bsize > buf.size() - p) break;
      auto view = RecordBatchView::Parse(std::span<const uint8_t>(buf.data() + p, bsize));
      if (!view.ok()) return Corrupt(std::string(view.status().message()));
      absl::Status s = fn(*view, pos + p);
      if (!s.ok()) return s;
      p += bsize;
    }
    pos += p;
  }
  return absl::OkStatus();
}

// Batches whose records Compact may filter: data batches outside
// transactions, uncompressed or zstd. Others are kept whole and do not
// count in the key map.
bool Compactable(const RecordBatchView& v) {
  return !v.is_control() && !v.is_transactional() &&
         (v.compression() == Compression::kNone || v.compression() == Compression::kZstd);
}

// What Compact knows of a segment from its snapshot under the log mutex.
struct SegmentSnapshot {
  std::shared_ptr<Segment> seg;
  uint64_t size = 0;
  int64_t base = 0;
  int64_t next_offset = 0;
  int64_t max_ts = -1;
  int64_t created_ms = -1;
  bool sealed = false;
};

}  // namespace

absl::StatusOr<CompactionStats> PartitionLog::Compact(int64_t now_ms,
                                                      std::optional<Offset> limit_in) {
  Impl& m = *impl_;
  CompactionStats stats;
  if (m.config.cleanup_policy == CleanupPolicy::kDelete) {
    stats.skipped_reason = "cleanup policy is delete";
    return stats;
  }
  absl::MutexLock compact_lock(&m.compact_mu);
  std::vector<SegmentSnapshot> segs;
  uint64_t gen;
  int64_t clean_offset;
  int64_t limit;
  {
    absl::ReaderMutexLock l(&m.mu);
    absl::Status s = m.CheckWritableLocked();
    if (!s.ok()) return s;
    for (const auto& seg : m.segments) {
      segs.push_back({seg, seg->size, seg->base, seg->next_offset, seg->max_ts, seg->created_ms,
                      seg->sealed});
    }
    gen = m.truncate_gen;
    clean_offset = m.clean_offset;
    limit = m.log_end;
    if (limit_in.has_value()) limit = std::min(limit, limit_in->value());
  }
  stats.clean_offset = Offset(clean_offset);

  // The cleanable prefix: sealed segments entirely below `limit` and older
  // than the compaction lag. The active segment (last) never qualifies.
  const int64_t lag = m.config.min_compaction_lag_ms;
  size_t n = 0;
  while (n + 1 < segs.size() && segs[n].sealed && segs[n].next_offset <= limit &&
         (lag <= 0 || segs[n].max_ts <= now_ms - lag)) {
    ++n;
  }
  if (n == 0) {
    stats.skipped_reason = "no cleanable segment";
    return stats;
  }
  int64_t clean_bytes = 0;
  int64_t dirty_bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    (segs[i].base < clean_offset ? clean_bytes : dirty_bytes) += static_cast<int64_t>(segs[i].size);
  }
  stats.bytes_before = clean_bytes + dirty_bytes;
  stats.dirty_ratio = stats.bytes_before > 0 ? static_cast<double>(dirty_bytes) /
                                                   static_cast<double>(stats.bytes_before)
                                             : 0.0;
  if (dirty_bytes == 0) {
    stats.skipped_reason = "nothing written since the last cleaning";
    return stats;
  }
  if (stats.dirty_ratio < m.config.min_cleanable_dirty_ratio) {
    stats.skipped_reason = absl::StrCat("dirty ratio ", stats.dirty_ratio, " below ",
                                        m.config.min_cleanable_dirty_ratio);
    return stats;
  }

  // 1. The offset map: the latest offset below `limit` of every key, over
  // the whole log (records appended since the snapshot are newer still, so
  // missing them only keeps more).
  absl::flat_hash_map<std::string, int64_t> latest;
  for (const SegmentSnapshot& snap : segs) {
    absl::Status s = ForEachBatch(
        *snap.seg->log, snap.size, [&](const RecordBatchView& v, uint64_t) -> absl::Status {
          if (v.base_offset() >= limit || !Compactable(v)) return absl::OkStatus();
          std::vector<uint8_t> buf;
          auto section = RecordsSection(v, &buf);
          if (!section.ok()) return section.status();
          auto records = ParseRawRecords(*section, v.record_count());
          if (!records.ok()) return records.status();
          for (const RawRecord& r : *records) {
            const int64_t off = v.base_offset() + r.offset_delta;
            if (!r.key.has_value() || off >= limit) continue;
            int64_t& slot = latest[std::string(*r.key)];
            slot = std::max(slot, off);
          }
          return absl::OkStatus();
        });
    if (!s.ok()) return s;
  }

  // The checkpoint is advanced before any segment is swapped: recovery
  // accepts gaps only after segments below it.
  const int64_t new_clean = segs[n].base;
  if (new_clean > clean_offset) {
    absl::Status s = m.PersistCleanOffset(new_clean);
    if (!s.ok()) return s;
  }

  // 2. Rewrite the cleanable segments, oldest first: a crash part-way leaves
  // older duplicates removed before the tombstones that hide them.
  const int64_t tombstone_horizon = now_ms - m.config.delete_retention_ms;
  bool nothing_follows = true;
  for (size_t j = n; j < segs.size(); ++j) nothing_follows &= segs[j].size == 0;

  for (size_t i = 0; i < n; ++i) {
    const SegmentSnapshot& snap = segs[i];
    const std::string cleaned_path = snap.seg->log_path() + kCleanedSuffix;
    auto file = m.fs->Open(cleaned_path);
    if (!file.ok()) return file.status();
    auto discard = [&](std::unique_ptr<File>& f) {
      if (f != nullptr) f->Close().IgnoreError();
      absl::Status r = m.fs->Remove(cleaned_path);
      if (!r.ok()) spdlog::warn("storage: cannot remove {}: {}", cleaned_path, r.ToString());
    };
    absl::Status s = (*file)->Truncate(0);
    if (!s.ok()) {
      discard(*file);
      return s;
    }
    auto ns = std::make_shared<Segment>();
    ns->base = snap.base;
    ns->next_offset = snap.base;
    ns->stem = snap.seg->stem;
    int64_t removed = 0;
    std::vector<uint8_t> pending;
    uint64_t written = 0;
    auto emit = [&](std::span<const uint8_t> bytes, const RecordBatchView& v) -> absl::Status {
      BatchHeader h;
      h.base = v.base_offset();
      h.last = v.last_offset();
      h.max_ts = v.max_timestamp();
      h.size = bytes.size();
      ns->OnBatch(written + pending.size(), h, m.config.index_interval_bytes);
      pending.insert(pending.end(), bytes.begin(), bytes.end());
      if (pending.size() < (1u << 20)) return absl::OkStatus();
      absl::Status w = (*file)->Append(pending);
      written += pending.size();
      pending.clear();
      return w;
    };
    s = ForEachBatch(
        *snap.seg->log, snap.size, [&](const RecordBatchView& v, uint64_t pos) -> absl::Status {
          if (!Compactable(v)) return emit(v.bytes(), v);
          std::vector<uint8_t> buf;
          auto section = RecordsSection(v, &buf);
          if (!section.ok()) return section.status();
          auto records = ParseRawRecords(*section, v.record_count());
          if (!records.ok()) return records.status();
          std::vector<RawRecord> kept;
          for (const RawRecord& r : *records) {
            bool keep = true;
            if (r.key.has_value()) {
              auto it = latest.find(absl::string_view(r.key->data(), r.key->size()));
              const int64_t off = v.base_offset() + r.offset_delta;
              if (it != latest.end() && it->second != off) {
                keep = false;  // a later record of the key exists
              } else if (r.null_value && v.max_timestamp() < tombstone_horizon) {
                keep = false;  // an expired tombstone
              }
            }
            if (keep) kept.push_back(r);
          }
          removed += static_cast<int64_t>(records->size() - kept.size());
          if (kept.size() == records->size()) return emit(v.bytes(), v);
          // The log's very last batch stays (maybe empty) when nothing
          // follows it, so the log end remains reachable by a Read.
          const bool tail = i + 1 == n && nothing_follows && pos + v.size() == snap.size;
          if (kept.empty() && !tail) return absl::OkStatus();
          auto rebuilt = RebuildBatch(v, kept);
          if (!rebuilt.ok()) return rebuilt.status();
          auto rv = RecordBatchView::Parse(*rebuilt);
          if (!rv.ok()) return rv.status();
          return emit(*rebuilt, *rv);
        });
    if (s.ok() && removed > 0 && !pending.empty()) {
      s = (*file)->Append(pending);
      written += pending.size();
    }
    if (!s.ok() || removed == 0) {
      discard(*file);
      if (!s.ok()) return s;
      continue;
    }
    s = (*file)->Sync();
    if (!s.ok()) {
      discard(*file);
      return s;
    }
    ns->time_index = ns->SealedTimeIndex();
    ns->sealed = true;
    ns->created_ms = snap.created_ms;

    // Swap under the log mutex: appends wait for two directory fsyncs.
    absl::MutexLock l(&m.mu);
    s = m.CheckWritableLocked();
    if (s.ok() && m.truncate_gen != gen) {
      discard(*file);
      stats.skipped_reason = "the log was truncated during compaction";
      return stats;
    }
    auto pos_it = std::find(m.segments.begin(), m.segments.end(), snap.seg);
    if (!s.ok() || pos_it == m.segments.end() || std::next(pos_it) == m.segments.end()) {
      discard(*file);  // closed, failed, or the segment went (retention)
      if (!s.ok()) return s;
      continue;
    }
    const int64_t old_size = static_cast<int64_t>(snap.seg->size);
    if (ns->empty() && pos_it != m.segments.begin()) {
      // Nothing left and not the first segment: delete it (its offsets
      // become a gap between its neighbours).
      s = m.RemoveSegmentFiles(*snap.seg);
      discard(*file);
      if (!s.ok()) return s;
      m.segments.erase(pos_it);
      m.total_bytes -= old_size;
      s = m.fs->SyncDir(m.dir);
      if (!s.ok()) return s;
      ++stats.segments_deleted;
    } else {
      // Old index files go first (an index must never describe the other
      // file), then one rename swaps the data in.
      for (const std::string& p : {snap.seg->index_path(), snap.seg->timeindex_path()}) {
        if (s.ok() && m.fs->Exists(p)) s = m.fs->Remove(p);
      }
      if (s.ok()) s = m.fs->SyncDir(m.dir);
      if (s.ok()) s = m.fs->Rename(cleaned_path, snap.seg->log_path());
      if (!s.ok()) {
        discard(*file);
        return s;
      }
      ns->log = std::move(*file);
      *pos_it = ns;
      m.total_bytes += static_cast<int64_t>(ns->size) - old_size;
      s = m.fs->SyncDir(m.dir);
      if (!s.ok()) return s;
      s = m.WriteIndexFiles(*ns, /*sealed=*/true);
      if (!s.ok()) {
        // Rebuilt on the next open.
        spdlog::warn("storage: {}: cannot write indexes of cleaned segment {}: {}", m.dir,
                     ns->base, s.ToString());
      }
      ++stats.segments_rewritten;
    }
    stats.records_removed += removed;
    stats.bytes_removed += old_size - static_cast<int64_t>(ns->size);
  }

  // 3. Everything below the first uncleanable segment is clean.
  {
    absl::MutexLock l(&m.mu);
    if (m.truncate_gen == gen && m.clean_offset < new_clean) m.clean_offset = new_clean;
    stats.clean_offset = Offset(m.clean_offset);
  }
  stats.cleaned = true;
  if (stats.records_removed > 0) {
    spdlog::info("storage: {} compacted: {} record(s), {} byte(s) removed; {} segment(s) "
                 "rewritten, {} deleted; clean up to {}",
                 m.dir, stats.records_removed, stats.bytes_removed, stats.segments_rewritten,
                 stats.segments_deleted, stats.clean_offset.value());
  }
  return stats;
}

Offset PartitionLog::clean_offset() const {
  absl::ReaderMutexLock l(&impl_->mu);
  return Offset(impl_->clean_offset);
}

// ---------------------------------------------------------------------------
// Accessors and the epoch cache.

std::optional<std::pair<LeaderEpoch, Offset>> PartitionLog::EndOffsetForEpoch(
    LeaderEpoch epoch) const {
  const Impl& m = *impl_;
  absl::ReaderMutexLock l(&m.mu);
  auto it = std::upper_bound(
      m.epochs.begin(), m.epochs.end(), epoch.value(),
      [](int32_t e, const std::pair<int32_t, int64_t>& entry) { return e < entry.first; });
  if (it == m.epochs.begin()) return std::nullopt;
  LeaderEpoch found(std::prev(it)->first);
  Offset end(it == m.epochs.end() ? m.log_end : it->second);
  return std::make_pair(found, end);
}

absl::Status PartitionLog::AssignEpochStart(LeaderEpoch epoch) {
  Impl& m = *impl_;
  absl::MutexLock l(&m.mu);
  absl::Status s = m.CheckWritableLocked();
  if (!s.ok()) return s;
  return m.MaybeAddEpochLocked(epoch.value(), m.log_end);
}

std::optional<LeaderEpoch> PartitionLog::latest_epoch() const {
  absl::ReaderMutexLock l(&impl_->mu);
  if (impl_->epochs.empty()) return std::nullopt;
  return LeaderEpoch(impl_->epochs.back().first);
}

Offset PartitionLog::log_start_offset() const {
  absl::ReaderMutexLock l(&impl_->mu);
  return Offset(impl_->log_start);
}

Offset PartitionLog::log_end_offset() const {
  absl::ReaderMutexLock l(&impl_->mu);
  return Offset(impl_->log_end);
}

Offset PartitionLog::durable_offset() const { return Offset(impl_->durable.load()); }

int64_t PartitionLog::size_bytes() const {
  absl::ReaderMutexLock l(&impl_->mu);
  return impl_->total_bytes;
}

int PartitionLog::segment_count() const {
  absl::ReaderMutexLock l(&impl_->mu);
  return static_cast<int>(impl_->segments.size());
}

const std::string& PartitionLog::dir() const { return impl_->dir; }
const LogConfig& PartitionLog::config() const { return impl_->config; }
bool PartitionLog::failed() const { return impl_->failed.load(); }

// ---------------------------------------------------------------------------
// Flusher.

struct Flusher::State {
  absl::Mutex mu;
  absl::CondVar cv;
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::vector<PartitionLog::Impl*> scheduled ABSL_GUARDED_BY(mu);
  absl::flat_hash_set<PartitionLog::Impl*> scheduled_set ABSL_GUARDED_BY(mu);
  // kInterval logs and when each is next due (steady clock ms).
  absl::flat_hash_map<PartitionLog::Impl*, int64_t> periodic ABSL_GUARDED_BY(mu);
  PartitionLog::Impl* running ABSL_GUARDED_BY(mu) = nullptr;
  std::thread thread;

  void Run() {
    absl::MutexLock l(&mu);
    while (!stop) {
      if (!scheduled.empty()) {
        PartitionLog::Impl* log = scheduled.front();
        scheduled.erase(scheduled.begin());
        scheduled_set.erase(log);
        running = log;
        mu.Unlock();
        log->GroupCommit();
        mu.Lock();
        running = nullptr;
        cv.SignalAll();
        continue;
      }
      const int64_t now = SteadyNowMs();
      int64_t next_due = std::numeric_limits<int64_t>::max();
      PartitionLog::Impl* due = nullptr;
      for (auto& [log, at] : periodic) {
        if (at <= now) {
          due = log;
          at = now + log->config.flush_interval_ms;
          break;
        }
        next_due = std::min(next_due, at);
      }
      if (due != nullptr) {
        running = due;
        mu.Unlock();
        due->PeriodicSync();
        mu.Lock();
        running = nullptr;
        cv.SignalAll();
        continue;
      }
      if (next_due == std::numeric_limits<int64_t>::max()) {
        cv.Wait(&mu);
      } else {
        cv.WaitWithTimeout(&mu, absl::Milliseconds(next_due - now));
      }
    }
  }
};

Flusher::Flusher() : state_(std::make_unique<State>()) {
  state_->thread = std::thread([s = state_.get()] { s->Run(); });
}

Flusher::~Flusher() {
  {
    absl::MutexLock l(&state_->mu);
    state_->stop = true;
    state_->cv.SignalAll();
  }
  state_->thread.join();
}

void Flusher::Schedule(PartitionLog::Impl* log) {
  absl::MutexLock l(&state_->mu);
  if (state_->scheduled_set.insert(log).second) {
    state_->scheduled.push_back(log);
    state_->cv.SignalAll();
  }
}

void Flusher::Register(PartitionLog::Impl* log) {
  if (log->config.flush_policy != FlushPolicy::kInterval) return;
  absl::MutexLock l(&state_->mu);
  state_->periodic[log] = SteadyNowMs() + log->config.flush_interval_ms;
  state_->cv.SignalAll();
}

void Flusher::Unregister(PartitionLog::Impl* log) {
  absl::MutexLock l(&state_->mu);
  state_->periodic.erase(log);
  if (state_->scheduled_set.erase(log) > 0) {
    auto& v = state_->scheduled;
    v.erase(std::remove(v.begin(), v.end(), log), v.end());
  }
  while (state_->running == log) state_->cv.Wait(&state_->mu);
}

}  // namespace brook::storage
