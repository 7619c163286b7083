// In-memory RaftLog, HardStateStore and SnapshotStore for tests and the
// simulation. The log models a disk with a write cache: appends and
// truncations are volatile until Sync, and Crash() returns the log to the last
// synced state (an unsynced truncation comes back, unsynced appends vanish).
// CompactPrefix and ResetTo take effect durably at once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "coordinator/raft/raft.h"

namespace brook::raft {

// Not thread-safe.
class MemoryLog : public RaftLog {
 public:
  MemoryLog() = default;

  LogIndex FirstIndex() const override { return LogIndex(offset_ + 1); }
  LogIndex LastIndex() const override {
    return LogIndex(offset_ + static_cast<int64_t>(entries_.size()));
  }
  absl::StatusOr<Term> TermAt(LogIndex index) const override;
  absl::StatusOr<std::vector<Entry>> Entries(LogIndex from, LogIndex to,
                                             size_t max_entries) const override;
  absl::Status Append(const std::vector<Entry>& entries) override;
  absl::Status TruncateSuffix(LogIndex from) override;
  absl::Status CompactPrefix(LogIndex through) override;
  absl::Status ResetTo(LogIndex index, Term term) override;
  absl::Status Sync() override;

  // Drops every append and truncation since the last Sync (a power failure).
  void Crash();
  // The next Sync fails (and leaves the writes volatile).
  void FailNextSync() { fail_next_sync_ = true; }

  // The volatile entry at `index` (FirstIndex() <= index <= LastIndex()).
  const Entry& At(LogIndex index) const { return entries_[Slot(index)]; }
  // What a crash now would leave: the last durable index, and the durable term
  // at an index in [FirstIndex() - 1, DurableLastIndex()].
  LogIndex DurableLastIndex() const {
    return LogIndex(offset_ + static_cast<int64_t>(stable_ + lost_tail_.size()));
  }
  Term DurableTermAt(LogIndex index) const;
  // The lowest index appended, truncated or reset since the previous call
  // (LastIndex() + 1 if none), never below FirstIndex(); lets a checker look
  // at changes only.
  LogIndex TakeModifiedFrom();

 private:
  size_t Slot(LogIndex index) const { return static_cast<size_t>(index.value() - offset_ - 1); }
  void Touch(LogIndex index) { modified_from_ = std::min(modified_from_, index.value()); }

  int64_t offset_ = 0;  // index of the last compacted entry
  Term offset_term_;    // and its term
  std::vector<Entry> entries_;
  // entries_[0, stable_) is durable as is; lost_tail_ holds durable entries
  // after it that a volatile truncation removed.
  size_t stable_ = 0;
  std::vector<Entry> lost_tail_;
  bool fail_next_sync_ = false;
  int64_t modified_from_ = 1;
};

// Save is durable as soon as it returns.
class MemoryHardStateStore : public HardStateStore {
 public:
  absl::StatusOr<HardState> Load() override { return state_; }
  absl::Status Save(const HardState& state) override {
    state_ = state;
    return absl::OkStatus();
  }
  const HardState& state() const { return state_; }

 private:
  HardState state_;
};

// Save is durable as soon as it returns.
class MemorySnapshotStore : public SnapshotStore {
 public:
  absl::StatusOr<std::optional<Snapshot>> Load() override { return snapshot_; }
  absl::Status Save(const Snapshot& snapshot) override {
    snapshot_ = snapshot;
    return absl::OkStatus();
  }
  const std::optional<Snapshot>& snapshot() const { return snapshot_; }

 private:
  std::optional<Snapshot> snapshot_;
};

}  // namespace brook::raft
