// The topic spout's bookkeeping, kept apart from the consumer so that it can
// be tested without a server: per partition, which emitted offsets are still
// unfinished and how far the fully acked prefix reaches (the offset to
// commit); the records in flight, kept for replay; the failed ones waiting to
// be emitted again. Not thread-safe: the spout's task owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "brook/types.h"

namespace brook::streams::internal {

// One partition. Offsets are emitted in increasing order (replays do not go
// through Emitted again); an offset stays unfinished from Emitted until Done.
class PartitionOffsets {
 public:
  // `start`: the position the partition was read from (committed offset or
  // reset). Nothing is to be committed until a record is done.
  explicit PartitionOffsets(int64_t start) : next_(start), committed_(start) {}

  void Emitted(int64_t offset) {
    unfinished_.insert(offset);
    if (offset + 1 > next_) next_ = offset + 1;
  }
  // Acked (or given up). Unknown offsets are ignored.
  void Done(int64_t offset) { unfinished_.erase(offset); }

  // The next offset to consume after the contiguous done prefix: the lowest
  // unfinished offset, or the offset after the last one emitted.
  int64_t CommitPoint() const { return unfinished_.empty() ? next_ : *unfinished_.begin(); }
  // Whether CommitPoint moved past what was last committed.
  bool NeedsCommit() const { return CommitPoint() > committed_; }
  void Committed(int64_t offset) {
    if (offset > committed_) committed_ = offset;
  }
  int64_t committed() const { return committed_; }
  size_t unfinished() const { return unfinished_.size(); }

 private:
  std::set<int64_t> unfinished_;
  int64_t next_;
  int64_t committed_;
};

// All partitions of one spout task, plus the records in flight.
class SpoutLedger {
 public:
  struct InFlight {
    client::ConsumerRecord record;
    int replays = 0;
  };

  void AddPartition(int32_t partition, int64_t start) {
    parts_.insert_or_assign(partition, PartitionOffsets(start));
  }
  PartitionOffsets* partition(int32_t p) {
    auto it = parts_.find(p);
    return it == parts_.end() ? nullptr : &it->second;
  }

  // A new record is being emitted.
  void Emitted(client::ConsumerRecord record) {
    PartitionOffsets* p = partition(record.partition);
    if (p == nullptr)
      p = &parts_.emplace(record.partition, PartitionOffsets(record.offset)).first->second;
    p->Emitted(record.offset);
    const std::pair<int32_t, int64_t> key{record.partition, record.offset};
    in_flight_.insert_or_assign(key, InFlight{std::move(record), 0});
  }

  // The record's tree completed.
  void Acked(int32_t partition, int64_t offset) {
    if (in_flight_.erase({partition, offset}) == 0) return;
    if (PartitionOffsets* p = this->partition(partition)) p->Done(offset);
  }

  // The record's tree failed or timed out: queued for replay, unless it was
  // replayed max_replays times already (-1: no limit), in which case it is
  // done and false is returned.
  bool Failed(int32_t partition, int64_t offset, int max_replays) {
    auto it = in_flight_.find({partition, offset});
    if (it == in_flight_.end()) return true;
    if (max_replays >= 0 && it->second.replays >= max_replays) {
      in_flight_.erase(it);
      if (PartitionOffsets* p = this->partition(partition)) p->Done(offset);
      return false;
    }
    ++it->second.replays;
    replay_.emplace_back(partition, offset);
    return true;
  }

  // The next record to emit again, if any (stays in flight).
  const client::ConsumerRecord* NextReplay() {
    while (!replay_.empty()) {
      auto key = replay_.front();
      replay_.pop_front();
      auto it = in_flight_.find(key);
      if (it != in_flight_.end()) return &it->second.record;
    }
    return nullptr;
  }
  bool HasReplays() const { return !replay_.empty(); }

  // Offsets to commit: partitions whose commit point moved.
  std::map<int32_t, int64_t> ToCommit() const {
    std::map<int32_t, int64_t> out;
    for (const auto& [p, o] : parts_) {
      if (o.NeedsCommit()) out[p] = o.CommitPoint();
    }
    return out;
  }
  void Committed(const std::map<int32_t, int64_t>& offsets) {
    for (const auto& [p, o] : offsets) {
      if (PartitionOffsets* po = partition(p)) po->Committed(o);
    }
  }

  size_t in_flight() const { return in_flight_.size(); }

 private:
  std::map<int32_t, PartitionOffsets> parts_;
  std::map<std::pair<int32_t, int64_t>, InFlight> in_flight_;
  std::deque<std::pair<int32_t, int64_t>> replay_;
};

}  // namespace brook::streams::internal
