// ReplicaTracker: the leader's view of its followers (log end, last fetch,
// last time caught up), the high watermark over the committed in-sync set,
// and the in-sync set changes to ask the coordinator for. Pure decision
// logic with the clock passed in; not thread-safe (Partition guards it).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace brook::broker::replication {

struct FollowerState {
  int32_t id = -1;
  int64_t log_end = -1;            // the last fetch offset; -1 before any fetch
  int64_t last_fetch_ms = -1;
  int64_t last_caught_up_ms = -1;  // last time it had everything the leader had
  // The leader's log end when the previous fetch was served (Kafka's
  // lastFetchLeaderLogEndOffset): a fetch reaching it proves the follower was
  // caught up at the previous fetch's time.
  int64_t leader_end_at_last_fetch = -1;
};

class ReplicaTracker {
 public:
  // Starts leading: every replica other than `self` is a follower with an
  // unknown position, counted as caught up at `now_ms` (it gets a full lag
  // period before a shrink).
  void Reset(int32_t self, const std::vector<int32_t>& replicas, const std::vector<int32_t>& isr,
             int64_t now_ms);
  // The committed in-sync set changed within the same leader epoch (at
  // `now_ms`: a replica outside must fetch again after this to come back).
  void SetIsr(const std::vector<int32_t>& isr, int64_t now_ms);

  // A follower fetched at `fetch_offset` while the leader's log ended at
  // `leader_log_end`. False when `id` is not a follower of this partition.
  bool RecordFetch(int32_t id, int64_t fetch_offset, int64_t leader_log_end, int64_t now_ms);

  // min(leader_end, log end of every other member of the committed in-sync
  // set); a member that has not fetched yet holds it at -1 (no advance).
  int64_t HighWatermark(int64_t leader_end) const;

  // The in-sync set to ask for, or nullopt when no change is due: members not
  // caught up within `lag_max_ms` go; followers outside whose log end reached
  // both `high_watermark` and `epoch_start` come in, provided they fetched
  // within `lag_max_ms` and since the last in-sync set change (a stopped
  // replica is not proposed on the strength of its last position). The
  // leader always stays.
  std::optional<std::vector<int32_t>> ProposeIsr(int64_t now_ms, int64_t lag_max_ms,
                                                 int64_t high_watermark,
                                                 int64_t epoch_start) const;

  int32_t self() const { return self_; }
  const std::vector<int32_t>& isr() const { return isr_; }
  const std::vector<FollowerState>& followers() const { return followers_; }
  const FollowerState* follower(int32_t id) const;
  bool InIsr(int32_t id) const;

 private:
  int32_t self_ = -1;
  std::vector<int32_t> isr_;
  int64_t isr_changed_ms_ = -1;
  std::vector<FollowerState> followers_;
};

}  // namespace brook::broker::replication
