// Durable implementations of the Raft storage interfaces (raft.h) on the
// project's storage layer: SegmentRaftLog keeps the Raft log in a
// storage::PartitionLog (one RecordBatch per entry), FileHardStateStore and
// FileSnapshotStore keep small CRC-protected files written atomically. The
// on-disk formats are in docs/formats/raft.md ("Durable storage").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/storage/fs.h"
#include "broker/storage/log.h"
#include "coordinator/raft/raft.h"

namespace brook::raft {

// A RaftLog in directory `dir`:
//   dir/meta          base index B and its term (absent: B = 0, term 0)
//   dir/log-<B>/      a PartitionLog; Raft index N is at log offset N - B - 1
// B changes only when the log is rewritten (CompactPrefix, ResetTo): the new
// generation's directory is written and synced, then `meta` is replaced
// atomically (the commit point), then the old directory is removed; other
// log-* directories found at Open are leftovers of an interrupted rewrite.
// Appends are buffered until Sync (PartitionLog::Sync, fsync); TruncateSuffix
// is durable at once (PartitionLog::TruncateTo). A failed write or Sync is
// permanent: every later call fails. Not thread-safe; one owner at a time.
class SegmentRaftLog : public RaftLog {
 public:
  struct Options {
    int64_t segment_bytes = 64LL << 20;
  };
  static absl::StatusOr<std::unique_ptr<SegmentRaftLog>> Open(storage::FileSystem* fs,
                                                              std::string dir,
                                                              Options options);
  static absl::StatusOr<std::unique_ptr<SegmentRaftLog>> Open(storage::FileSystem* fs,
                                                              std::string dir) {
    return Open(fs, std::move(dir), Options());
  }
  ~SegmentRaftLog() override;

  LogIndex FirstIndex() const override { return LogIndex(base_ + 1); }
  LogIndex LastIndex() const override {
    return LogIndex(base_ + static_cast<int64_t>(terms_.size()));
  }
  absl::StatusOr<Term> TermAt(LogIndex index) const override;
  absl::StatusOr<std::vector<Entry>> Entries(LogIndex from, LogIndex to,
                                             size_t max_entries) const override;
  absl::Status Append(const std::vector<Entry>& entries) override;
  absl::Status TruncateSuffix(LogIndex from) override;
  // Rewrites the entries after `through` into a new generation (durable when
  // it returns, which is stronger than RaftLog requires).
  absl::Status CompactPrefix(LogIndex through) override;
  absl::Status ResetTo(LogIndex index, Term term) override;
  absl::Status Sync() override;

  // Flushes and closes the files; later calls fail. Also done by the destructor.
  absl::Status Close();

 private:
  SegmentRaftLog(storage::FileSystem* fs, std::string dir, Options options)
      : fs_(fs), dir_(std::move(dir)), options_(options) {}
  absl::Status Load();
  absl::Status Rewrite(int64_t base, Term base_term, const std::vector<Entry>& keep);
  absl::Status AppendOne(const Entry& e);
  absl::Status Fail(absl::Status s);
  std::string GenerationDir(int64_t base) const;
  storage::LogConfig MakeLogConfig() const;

  storage::FileSystem* const fs_;
  const std::string dir_;
  const Options options_;
  std::unique_ptr<storage::PartitionLog> log_;
  int64_t base_ = 0;    // index of the entry before the first one held
  Term base_term_;      // and its term
  std::vector<Term> terms_;  // terms_[i] is the term of index base_ + 1 + i
  absl::Status failed_;
};

// HardState in one file, replaced atomically by Save (durable on return).
class FileHardStateStore : public HardStateStore {
 public:
  FileHardStateStore(storage::FileSystem* fs, std::string path)
      : fs_(fs), path_(std::move(path)) {}
  absl::StatusOr<HardState> Load() override;
  absl::Status Save(const HardState& state) override;

 private:
  storage::FileSystem* const fs_;
  const std::string path_;
};

// The latest Snapshot in one file, replaced atomically by Save.
class FileSnapshotStore : public SnapshotStore {
 public:
  FileSnapshotStore(storage::FileSystem* fs, std::string path)
      : fs_(fs), path_(std::move(path)) {}
  absl::StatusOr<std::optional<Snapshot>> Load() override;
  absl::Status Save(const Snapshot& snapshot) override;

 private:
  storage::FileSystem* const fs_;
  const std::string path_;
};

// Byte encodings of the two files (exposed for tests); decoding fails with
// DataLoss on a bad magic, version, length or CRC.
std::vector<uint8_t> EncodeHardState(const HardState& state);
absl::StatusOr<HardState> DecodeHardState(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeSnapshot(const Snapshot& snapshot);
absl::StatusOr<Snapshot> DecodeSnapshot(std::span<const uint8_t> bytes);

}  // namespace brook::raft
