// MemoryLog: the volatile/durable bookkeeping behind Crash().
#include "coordinator/raft/memory_storage.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace brook::raft {

absl::StatusOr<Term> MemoryLog::TermAt(LogIndex index) const {
  if (index.value() == offset_) return offset_term_;
  if (index.value() < offset_ || index > LastIndex()) {
    return absl::OutOfRangeError(absl::StrCat("raft log: no entry at ", index.value()));
  }
  return At(index).term;
}

absl::StatusOr<std::vector<Entry>> MemoryLog::Entries(LogIndex from, LogIndex to,
                                                      size_t max_entries) const {
  if (from < FirstIndex() || to > LastIndex() + 1 || from > to) {
    return absl::OutOfRangeError(
        absl::StrCat("raft log: bad range [", from.value(), ", ", to.value(), ")"));
  }
  const int64_t n = std::min<int64_t>(to - from, static_cast<int64_t>(max_entries));
  const auto begin = entries_.begin() + static_cast<std::ptrdiff_t>(Slot(from));
  return std::vector<Entry>(begin, begin + n);
}

absl::Status MemoryLog::Append(const std::vector<Entry>& entries) {
  LogIndex expect = LastIndex() + 1;
  for (const Entry& e : entries) {
    if (e.index != expect) {
      return absl::InvalidArgumentError(
          absl::StrCat("raft log: append at ", e.index.value(), ", expected ", expect.value()));
    }
    ++expect;
  }
  if (!entries.empty()) Touch(entries.front().index);
  entries_.insert(entries_.end(), entries.begin(), entries.end());
  return absl::OkStatus();
}

absl::Status MemoryLog::TruncateSuffix(LogIndex from) {
  if (from < FirstIndex()) return absl::InvalidArgumentError("raft log: truncate below first");
  const size_t keep = Slot(from);
  if (keep >= entries_.size()) return absl::OkStatus();
  Touch(from);
  if (keep < stable_) {
    std::vector<Entry> lost(entries_.begin() + static_cast<std::ptrdiff_t>(keep),
                            entries_.begin() + static_cast<std::ptrdiff_t>(stable_));
    lost.insert(lost.end(), lost_tail_.begin(), lost_tail_.end());
    lost_tail_ = std::move(lost);
    stable_ = keep;
  }
  entries_.resize(keep);
  return absl::OkStatus();
}

absl::Status MemoryLog::CompactPrefix(LogIndex through) {
  if (through < FirstIndex()) return absl::OkStatus();
  if (through > LastIndex()) return absl::InvalidArgumentError("raft log: compact past the end");
  const size_t n = Slot(through) + 1;
  offset_term_ = At(through).term;
  offset_ = through.value();
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(n));
  if (n <= stable_) {
    stable_ -= n;
  } else {
    // The compacted entries are in the snapshot now; durable ones beyond the
    // volatile prefix (lost_tail_) lie past the compaction point only if
    // they were never committed, so dropping their covered part is safe.
    const size_t covered = std::min(lost_tail_.size(), n - stable_);
    lost_tail_.erase(lost_tail_.begin(), lost_tail_.begin() + static_cast<std::ptrdiff_t>(covered));
    stable_ = 0;
  }
  modified_from_ = std::max(modified_from_, offset_ + 1);
  return absl::OkStatus();
}

absl::Status MemoryLog::ResetTo(LogIndex index, Term term) {
  entries_.clear();
  lost_tail_.clear();
  stable_ = 0;
  offset_ = index.value();
  offset_term_ = term;
  modified_from_ = offset_ + 1;
  return absl::OkStatus();
}

absl::Status MemoryLog::Sync() {
  if (fail_next_sync_) {
    fail_next_sync_ = false;
    return absl::DataLossError("raft log: injected sync failure");
  }
  stable_ = entries_.size();
  lost_tail_.clear();
  return absl::OkStatus();
}

void MemoryLog::Crash() {
  Touch(LogIndex(offset_ + static_cast<int64_t>(stable_) + 1));
  entries_.resize(stable_);
  entries_.insert(entries_.end(), lost_tail_.begin(), lost_tail_.end());
  stable_ = entries_.size();
  lost_tail_.clear();
}

Term MemoryLog::DurableTermAt(LogIndex index) const {
  if (index.value() == offset_) return offset_term_;
  const size_t i = Slot(index);
  if (i < stable_) return entries_[i].term;
  return lost_tail_[i - stable_].term;
}

LogIndex MemoryLog::TakeModifiedFrom() {
  const LogIndex from(std::max(std::min(modified_from_, LastIndex().value() + 1), offset_ + 1));
  modified_from_ = LastIndex().value() + 1;
  return from;
}

}  // namespace brook::raft
