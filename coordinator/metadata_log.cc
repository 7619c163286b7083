// LocalMetadataLog: metadata records as one-record batches in a PartitionLog.
#include "coordinator/metadata_log.h"

#include <chrono>
#include <future>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/record_batch.h"

namespace brook::coordinator {
namespace {

// Bytes read from the log per step of Replay (at least one whole batch is
// returned regardless).
constexpr size_t kReplayChunkBytes = 1 << 20;

storage::LogConfig MetadataLogConfig() {
  storage::LogConfig config;
  config.flush_policy = storage::FlushPolicy::kAlways;
  config.segment_bytes = 64LL << 20;
  // Metadata is never dropped by retention: replay needs every record.
  config.retention_ms = -1;
  config.retention_bytes = -1;
  return config;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalMetadataLog>> LocalMetadataLog::Open(
    storage::FileSystem* fs, std::string dir, storage::Flusher* flusher) {
  auto log = storage::PartitionLog::Open(fs, std::move(dir), MetadataLogConfig(), flusher);
  if (!log.ok()) return log.status();
  return std::unique_ptr<LocalMetadataLog>(new LocalMetadataLog(std::move(*log)));
}

LocalMetadataLog::LocalMetadataLog(std::unique_ptr<storage::PartitionLog> log)
    : log_(std::move(log)) {}

LocalMetadataLog::~LocalMetadataLog() = default;

absl::StatusOr<Offset> LocalMetadataLog::Append(const proto::MetadataRecord& record) {
  std::string value;
  if (!record.SerializeToString(&value)) {
    return absl::InternalError("metadata record does not serialize");
  }
  RecordBatchBuilder::Options options;
  options.compression = Compression::kNone;
  RecordBatchBuilder builder(options);
  builder.Append(NowMs(), std::nullopt, std::string_view(value));
  std::vector<uint8_t> batch = builder.Build();

  auto appended = log_->Append(std::span<uint8_t>(batch), LeaderEpoch(0));
  if (!appended.ok()) return appended.status();
  const Offset offset = appended->base_offset;

  // Wait for the group-commit fsync (or the inline one without a flusher).
  std::promise<absl::Status> durable;
  std::future<absl::Status> done = durable.get_future();
  log_->WhenDurable(offset, [&durable](absl::Status s) { durable.set_value(std::move(s)); });
  absl::Status s = done.get();
  if (!s.ok()) return s;
  return offset;
}

absl::Status LocalMetadataLog::Replay(ReplayFn fn) {
  RecordReader reader;
  std::vector<RecordView> records;
  Offset next = log_->log_start_offset();
  const Offset end = log_->log_end_offset();
  while (next < end) {
    auto bytes = log_->Read(next, kReplayChunkBytes, end);
    if (!bytes.ok()) return bytes.status();
    if (bytes->empty()) {
      return MakeError(proto::ErrorCode::STORAGE_ERROR,
                       absl::StrCat("metadata log: no batch at offset ", next.value()));
    }
    const Offset before = next;
    auto batches = SplitBatches(std::span<const uint8_t>(*bytes));
    if (!batches.ok()) return batches.status();
    for (const RecordBatchView& batch : *batches) {
      if (absl::Status s = batch.VerifyCrc(); !s.ok()) return s;
      records.clear();
      if (absl::Status s = reader.Read(batch, &records); !s.ok()) return s;
      for (const RecordView& r : records) {
        // Read starts with the batch containing `next`; skip what came before.
        if (r.offset < next.value()) continue;
        if (!r.value.has_value()) {
          return absl::DataLossError(
              absl::StrCat("metadata log: record at offset ", r.offset, " has no value"));
        }
        proto::MetadataRecord record;
        if (!record.ParseFromArray(r.value->data(), static_cast<int>(r.value->size()))) {
          return absl::DataLossError(
              absl::StrCat("metadata log: record at offset ", r.offset, " does not parse"));
        }
        if (absl::Status s = fn(Offset(r.offset), record); !s.ok()) return s;
      }
      if (batch.last_offset() + 1 > next.value()) next = Offset(batch.last_offset() + 1);
    }
    if (next == before) {
      return MakeError(proto::ErrorCode::STORAGE_ERROR,
                       absl::StrCat("metadata log: read at offset ", next.value(),
                                    " made no progress"));
    }
  }
  return absl::OkStatus();
}

Offset LocalMetadataLog::end_offset() const { return log_->log_end_offset(); }

absl::Status LocalMetadataLog::Close() { return log_->Close(); }

}  // namespace brook::coordinator
