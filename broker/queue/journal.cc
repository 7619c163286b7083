// The subscription journal: record codec, replay, appends, compaction and
// the group-commit syncer (see journal.h; layout in docs/queues.md).
#include "broker/queue/journal.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/record_batch.h"

namespace brook::queue {
namespace {

// Record types.
constexpr uint8_t kSnapshot = 1;
constexpr uint8_t kHandled = 2;
constexpr uint8_t kDelivery = 3;
constexpr uint8_t kConfig = 4;

constexpr size_t kFrameHeader = 8;  // u32 body length, u32 CRC32C of the body
constexpr uint32_t kMaxRecordBytes = 64u << 20;

void Put8(std::vector<uint8_t>* out, uint8_t v) { out->push_back(v); }
void Put32(std::vector<uint8_t>* out, uint32_t v) {
  size_t n = out->size();
  out->resize(n + 4);
  wire::PutBE32(out->data() + n, v);
}
void Put64(std::vector<uint8_t>* out, uint64_t v) {
  size_t n = out->size();
  out->resize(n + 8);
  wire::PutBE64(out->data() + n, v);
}
void PutStr(std::vector<uint8_t>* out, const std::string& s) {
  Put32(out, static_cast<uint32_t>(s.size()));
  out->insert(out->end(), s.begin(), s.end());
}

// Bounds-checked reader; `ok` turns false on any overrun.
struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;
  bool Need(size_t n) {
    if (!ok || static_cast<size_t>(end - p) < n) ok = false;
    return ok;
  }
  uint8_t U8() { return Need(1) ? *p++ : 0; }
  uint32_t U32() {
    if (!Need(4)) return 0;
    uint32_t v = wire::GetBE32(p);
    p += 4;
    return v;
  }
  uint64_t U64() {
    if (!Need(8)) return 0;
    uint64_t v = wire::GetBE64(p);
    p += 8;
    return v;
  }
  int32_t I32() { return static_cast<int32_t>(U32()); }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  std::string Str() {
    uint32_t n = U32();
    if (!Need(n)) return {};
    std::string s(reinterpret_cast<const char*>(p), n);
    p += n;
    return s;
  }
};

void PutConfig(std::vector<uint8_t>* out, const QueueConfig& c) {
  Put32(out, static_cast<uint32_t>(c.ack_timeout_ms));
  Put32(out, static_cast<uint32_t>(c.max_deliveries));
  PutStr(out, c.filter);
  Put8(out, c.key_ordered ? 1 : 0);
  Put32(out, static_cast<uint32_t>(c.backoff_initial_ms));
  Put32(out, static_cast<uint32_t>(c.backoff_max_ms));
  PutStr(out, c.dead_letter_topic);
  Put8(out, c.start_earliest ? 1 : 0);
}

QueueConfig GetConfig(Reader& r) {
  QueueConfig c;
  c.ack_timeout_ms = r.I32();
  c.max_deliveries = r.I32();
  c.filter = r.Str();
  c.key_ordered = r.U8() != 0;
  c.backoff_initial_ms = r.I32();
  c.backoff_max_ms = r.I32();
  c.dead_letter_topic = r.Str();
  c.start_earliest = r.U8() != 0;
  return c;
}

// Wraps `body` in a frame appended to `out`.
void Frame(const std::vector<uint8_t>& body, std::vector<uint8_t>* out) {
  Put32(out, static_cast<uint32_t>(body.size()));
  Put32(out, Crc32c(body.data(), body.size()));
  out->insert(out->end(), body.begin(), body.end());
}

absl::Status StorageError(const std::string& msg) {
  return MakeError(proto::STORAGE_ERROR, msg);
}

}  // namespace

std::vector<uint8_t> EncodeSnapshotRecord(const std::string& topic_id, const QueueConfig& config,
                                          const SubscriptionSnapshot& s) {
  std::vector<uint8_t> body;
  Put8(&body, kSnapshot);
  PutStr(&body, topic_id);
  PutConfig(&body, config);
  Put64(&body, static_cast<uint64_t>(s.floor));
  Put64(&body, static_cast<uint64_t>(s.stats.acked));
  Put64(&body, static_cast<uint64_t>(s.stats.filtered));
  Put64(&body, static_cast<uint64_t>(s.stats.dead_lettered));
  Put64(&body, static_cast<uint64_t>(s.stats.redeliveries));
  Put32(&body, static_cast<uint32_t>(s.handled.size()));
  for (const auto& [a, b] : s.handled) {
    Put64(&body, static_cast<uint64_t>(a));
    Put64(&body, static_cast<uint64_t>(b));
  }
  Put32(&body, static_cast<uint32_t>(s.counts.size()));
  for (const auto& c : s.counts) {
    Put64(&body, static_cast<uint64_t>(c.offset));
    Put32(&body, static_cast<uint32_t>(c.count));
    Put64(&body, static_cast<uint64_t>(c.not_before_ms));
  }
  std::vector<uint8_t> out;
  Frame(body, &out);
  return out;
}

void AppendEventRecord(const JournalEvent& e, std::vector<uint8_t>* out) {
  std::vector<uint8_t> body;
  switch (e.type) {
    case JournalEvent::Type::kHandled:
      Put8(&body, kHandled);
      Put8(&body, static_cast<uint8_t>(e.kind));
      Put64(&body, static_cast<uint64_t>(e.offset));
      Put64(&body, static_cast<uint64_t>(e.end));
      break;
    case JournalEvent::Type::kDelivery:
      Put8(&body, kDelivery);
      Put64(&body, static_cast<uint64_t>(e.offset));
      Put32(&body, static_cast<uint32_t>(e.count));
      Put64(&body, static_cast<uint64_t>(e.not_before_ms));
      break;
    case JournalEvent::Type::kConfig:
      return;  // written by AppendConfigRecord
  }
  Frame(body, out);
}

void AppendConfigRecord(const QueueConfig& config, std::vector<uint8_t>* out) {
  std::vector<uint8_t> body;
  Put8(&body, kConfig);
  PutConfig(&body, config);
  Frame(body, out);
}

absl::StatusOr<JournalContents> ParseJournal(std::span<const uint8_t> bytes) {
  JournalContents c;
  size_t pos = 0;
  bool have_snapshot = false;
  while (true) {
    if (bytes.size() - pos < kFrameHeader) break;
    const uint32_t len = wire::GetBE32(bytes.data() + pos);
    const uint32_t crc = wire::GetBE32(bytes.data() + pos + 4);
    if (len == 0 || len > kMaxRecordBytes || bytes.size() - pos - kFrameHeader < len) break;
    const uint8_t* body = bytes.data() + pos + kFrameHeader;
    if (Crc32c(body, len) != crc) break;
    Reader r{body, body + len};
    const uint8_t type = r.U8();
    if (!have_snapshot && type != kSnapshot) break;
    bool good = true;
    switch (type) {
      case kSnapshot: {
        if (have_snapshot) {
          good = false;
          break;
        }
        c.topic_id = r.Str();
        c.config = GetConfig(r);
        SubscriptionSnapshot& s = c.snapshot;
        s.floor = r.I64();
        s.stats.acked = r.I64();
        s.stats.filtered = r.I64();
        s.stats.dead_lettered = r.I64();
        s.stats.redeliveries = r.I64();
        uint32_t nh = r.U32();
        if (!r.Need(static_cast<size_t>(nh) * 16)) break;
        for (uint32_t i = 0; i < nh; ++i) {
          int64_t a = r.I64();
          int64_t b = r.I64();
          s.handled.emplace_back(a, b);
        }
        uint32_t nc = r.U32();
        if (!r.Need(static_cast<size_t>(nc) * 20)) break;
        for (uint32_t i = 0; i < nc; ++i) {
          SubscriptionSnapshot::Count cnt;
          cnt.offset = r.I64();
          cnt.count = r.I32();
          cnt.not_before_ms = r.I64();
          s.counts.push_back(cnt);
        }
        break;
      }
      case kHandled: {
        JournalEvent e;
        e.type = JournalEvent::Type::kHandled;
        uint8_t kind = r.U8();
        if (kind < 1 || kind > 4) good = false;
        e.kind = static_cast<HandledKind>(kind);
        e.offset = r.I64();
        e.end = r.I64();
        if (r.ok && good) c.events.push_back(e);
        break;
      }
      case kDelivery: {
        JournalEvent e;
        e.type = JournalEvent::Type::kDelivery;
        e.offset = r.I64();
        e.count = r.I32();
        e.not_before_ms = r.I64();
        if (r.ok) c.events.push_back(e);
        break;
      }
      case kConfig:
        c.config = GetConfig(r);
        break;
      default:
        good = false;
    }
    if (!r.ok || !good) break;
    if (type == kSnapshot) have_snapshot = true;
    pos += kFrameHeader + len;
  }
  if (!have_snapshot) return absl::DataLossError("queue journal: no readable snapshot");
  c.valid_bytes = pos;
  c.truncated_tail = pos != bytes.size();
  return c;
}

// ---- Journal ----

Journal::Journal(storage::FileSystem* fs, std::string path, std::shared_ptr<storage::File> file)
    : fs_(fs), path_(std::move(path)), file_(std::move(file)) {}

Journal::~Journal() {
  absl::MutexLock l(&mu_);
  if (file_ != nullptr) file_->Close().IgnoreError();
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(storage::FileSystem* fs, std::string path,
                                                       JournalContents* contents) {
  if (!fs->Exists(path)) return absl::NotFoundError(absl::StrCat("no journal at ", path));
  auto bytes = storage::ReadWholeFile(fs, path);
  if (!bytes.ok()) return bytes.status();
  auto parsed = ParseJournal(*bytes);
  if (!parsed.ok()) return WithErrorCode(parsed.status(), proto::CORRUPT_MESSAGE);
  auto file = fs->Open(path);
  if (!file.ok()) return file.status();
  if (parsed->truncated_tail) {
    if (auto s = (*file)->Truncate(parsed->valid_bytes); !s.ok()) return s;
    if (auto s = (*file)->Sync(); !s.ok()) return s;
  }
  *contents = *std::move(parsed);
  return std::unique_ptr<Journal>(
      new Journal(fs, std::move(path), std::shared_ptr<storage::File>(std::move(*file))));
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Create(storage::FileSystem* fs, std::string path,
                                                         const std::string& topic_id,
                                                         const QueueConfig& config,
                                                         const SubscriptionSnapshot& snapshot) {
  std::vector<uint8_t> bytes = EncodeSnapshotRecord(topic_id, config, snapshot);
  if (auto s = storage::WriteFileAtomic(fs, path, bytes); !s.ok()) return s;
  auto file = fs->Open(path);
  if (!file.ok()) return file.status();
  return std::unique_ptr<Journal>(
      new Journal(fs, std::move(path), std::shared_ptr<storage::File>(std::move(*file))));
}

absl::Status Journal::Write(const std::vector<uint8_t>& bytes) {
  absl::MutexLock l(&mu_);
  if (!failed_.ok()) return failed_;
  const uint64_t before = file_->Size();
  absl::Status s = file_->Append(bytes);
  if (!s.ok()) {
    // Cut a partial record so later appends stay readable; if even that
    // fails, the journal is done for.
    if (!file_->Truncate(before).ok()) failed_ = StorageError(absl::StrCat(path_, ": ", s.message()));
  }
  return s;
}

absl::Status Journal::Append(const std::vector<JournalEvent>& events) {
  std::vector<uint8_t> bytes;
  for (const auto& e : events) AppendEventRecord(e, &bytes);
  if (bytes.empty()) return absl::OkStatus();
  return Write(bytes);
}

absl::Status Journal::AppendConfig(const QueueConfig& config) {
  std::vector<uint8_t> bytes;
  AppendConfigRecord(config, &bytes);
  return Write(bytes);
}

absl::Status Journal::Sync() {
  absl::MutexLock sync_lock(&sync_mu_);
  std::shared_ptr<storage::File> file;
  {
    absl::MutexLock l(&mu_);
    if (!failed_.ok()) return failed_;
    file = file_;
  }
  absl::Status s = file->Sync();
  if (!s.ok()) {
    absl::MutexLock l(&mu_);
    failed_ = StorageError(absl::StrCat(path_, ": fsync failed: ", s.message()));
    return failed_;
  }
  return s;
}

absl::Status Journal::Compact(const std::string& topic_id, const QueueConfig& config,
                              const SubscriptionSnapshot& snapshot) {
  absl::MutexLock sync_lock(&sync_mu_);
  {
    absl::MutexLock l(&mu_);
    if (!failed_.ok()) return failed_;
  }
  std::vector<uint8_t> bytes = EncodeSnapshotRecord(topic_id, config, snapshot);
  // The old handle stays usable until the rename has made the snapshot durable.
  if (auto s = storage::WriteFileAtomic(fs_, path_, bytes); !s.ok()) return s;
  auto file = fs_->Open(path_);
  absl::MutexLock l(&mu_);
  if (!file.ok()) {
    failed_ = StorageError(absl::StrCat(path_, ": reopen after compaction: ", file.status().message()));
    return failed_;
  }
  file_->Close().IgnoreError();
  file_ = std::shared_ptr<storage::File>(std::move(*file));
  return absl::OkStatus();
}

uint64_t Journal::size() const {
  absl::MutexLock l(&mu_);
  return file_->Size();
}

// ---- JournalSyncer ----

JournalSyncer::JournalSyncer() : thread_([this] { Run(); }) {}

JournalSyncer::~JournalSyncer() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void JournalSyncer::WhenDurable(std::shared_ptr<Journal> journal,
                                std::function<void(absl::Status)> done) {
  absl::MutexLock l(&mu_);
  queue_.emplace_back(std::move(journal), std::move(done));
}

void JournalSyncer::Run() {
  while (true) {
    std::deque<std::pair<std::shared_ptr<Journal>, std::function<void(absl::Status)>>> batch;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty() && stop_) return;
      batch.swap(queue_);
    }
    // One fsync per journal covers every waiter of this batch.
    std::vector<std::pair<Journal*, absl::Status>> synced;
    for (auto& [journal, done] : batch) {
      absl::Status st;
      bool found = false;
      for (auto& [j, s] : synced) {
        if (j == journal.get()) {
          st = s;
          found = true;
          break;
        }
      }
      if (!found) {
        st = journal->Sync();
        synced.emplace_back(journal.get(), st);
      }
      done(st);
    }
  }
}

}  // namespace brook::queue
