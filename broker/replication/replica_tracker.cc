// Leader-side follower bookkeeping and in-sync set decisions (see header).
#include "broker/replication/replica_tracker.h"

#include <algorithm>

namespace brook::broker::replication {

void ReplicaTracker::Reset(int32_t self, const std::vector<int32_t>& replicas,
                           const std::vector<int32_t>& isr, int64_t now_ms) {
  self_ = self;
  followers_.clear();
  for (int32_t r : replicas) {
    if (r == self) continue;
    FollowerState f;
    f.id = r;
    f.last_caught_up_ms = now_ms;
    followers_.push_back(f);
  }
  SetIsr(isr, now_ms);
}

void ReplicaTracker::SetIsr(const std::vector<int32_t>& isr, int64_t now_ms) {
  isr_changed_ms_ = now_ms;
  isr_ = isr;
  std::sort(isr_.begin(), isr_.end());
}

const FollowerState* ReplicaTracker::follower(int32_t id) const {
  for (const auto& f : followers_) {
    if (f.id == id) return &f;
  }
  return nullptr;
}

bool ReplicaTracker::InIsr(int32_t id) const {
  return std::binary_search(isr_.begin(), isr_.end(), id);
}

bool ReplicaTracker::RecordFetch(int32_t id, int64_t fetch_offset, int64_t leader_log_end,
                                 int64_t now_ms) {
  for (auto& f : followers_) {
    if (f.id != id) continue;
    if (fetch_offset >= leader_log_end) {
      f.last_caught_up_ms = now_ms;
    } else if (f.leader_end_at_last_fetch >= 0 && fetch_offset >= f.leader_end_at_last_fetch) {
      f.last_caught_up_ms = std::max(f.last_caught_up_ms, f.last_fetch_ms);
    }
    f.log_end = fetch_offset;
    f.last_fetch_ms = now_ms;
    f.leader_end_at_last_fetch = leader_log_end;
    return true;
  }
  return false;
}

int64_t ReplicaTracker::HighWatermark(int64_t leader_end) const {
  int64_t hw = leader_end;
  for (const auto& f : followers_) {
    if (InIsr(f.id)) hw = std::min(hw, f.log_end);
  }
  return hw;
}

std::optional<std::vector<int32_t>> ReplicaTracker::ProposeIsr(int64_t now_ms, int64_t lag_max_ms,
                                                              int64_t high_watermark,
                                                              int64_t epoch_start) const {
  std::vector<int32_t> next;
  next.push_back(self_);
  bool changed = !InIsr(self_);
  for (const auto& f : followers_) {
    bool in = InIsr(f.id);
    if (in) {
      if (now_ms - f.last_caught_up_ms > lag_max_ms) {
        changed = true;
      } else {
        next.push_back(f.id);
      }
    } else if (f.log_end >= 0 && f.log_end >= high_watermark && f.log_end >= epoch_start &&
               f.last_fetch_ms > isr_changed_ms_ && now_ms - f.last_fetch_ms <= lag_max_ms) {
      next.push_back(f.id);
      changed = true;
    }
  }
  // Members that are not replicas (cannot happen with a sane assignment) are
  // dropped silently as part of any other change.
  if (!changed) return std::nullopt;
  std::sort(next.begin(), next.end());
  return next;
}

}  // namespace brook::broker::replication
