// The coordinator's metadata log: an ordered, durable sequence of
// MetadataRecords (docs/formats/metadata-log.md). The state machine
// (metadata_state.h) only sees this interface, so a Raft-replicated log can
// later stand in for the local one.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/storage/fs.h"
#include "broker/storage/log.h"
#include "common/types.h"
#include "proto/metadata.pb.h"

namespace brook::coordinator {

class MetadataLog {
 public:
  using ReplayFn = std::function<absl::Status(Offset, const proto::MetadataRecord&)>;

  virtual ~MetadataLog() = default;

  // Appends one record and returns its offset. The record is durable when
  // this returns OK (it survives a crash). Offsets strictly increase. May
  // block on an fsync.
  virtual absl::StatusOr<Offset> Append(const proto::MetadataRecord& record) = 0;

  // Calls `fn` for every record in offset order; stops at and returns the
  // first error (from `fn` or from reading). Not to be called concurrently
  // with Append.
  virtual absl::Status Replay(ReplayFn fn) = 0;

  // Makes everything durable and releases the log; later calls fail.
  virtual absl::Status Close() = 0;
};

// MetadataLog on a local storage::PartitionLog with fsync on every append.
// Each record is the value of a one-record uncompressed RecordBatch v2 (null
// key). Thread-safe (Append calls are serialized by the PartitionLog; callers
// that need an order between appends serialize them themselves).
class LocalMetadataLog : public MetadataLog {
 public:
  // Opens or creates the log in `dir` (recovering a torn tail). `fs` and
  // `flusher` (may be null: durability is then reached by inline fsync) must
  // outlive the log.
  static absl::StatusOr<std::unique_ptr<LocalMetadataLog>> Open(storage::FileSystem* fs,
                                                                std::string dir,
                                                                storage::Flusher* flusher);
  ~LocalMetadataLog() override;

  absl::StatusOr<Offset> Append(const proto::MetadataRecord& record) override;
  absl::Status Replay(ReplayFn fn) override;

  // The offset the next record will get.
  Offset end_offset() const;

  absl::Status Close() override;

 private:
  explicit LocalMetadataLog(std::unique_ptr<storage::PartitionLog> log);
  std::unique_ptr<storage::PartitionLog> log_;
};

}  // namespace brook::coordinator
