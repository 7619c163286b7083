// Hosted partitions: high watermark, fetch waiters, and applying the
// coordinator's assignments to the partition directories.
#include "broker/partition.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "spdlog/spdlog.h"

namespace brook::broker {
namespace {

storage::FlushPolicy ToFlushPolicy(proto::FlushPolicy p) {
  switch (p) {
    case proto::FLUSH_INTERVAL: return storage::FlushPolicy::kInterval;
    case proto::FLUSH_OS: return storage::FlushPolicy::kOs;
    default: return storage::FlushPolicy::kAlways;
  }
}

std::string MetadataContents(const std::string& topic_id) {
  return absl::StrCat("topic_id=", topic_id, "\n");
}

metrics::Counter* TopicCounter(const std::string& name, const std::string& topic,
                               const std::string& help) {
  return metrics::Registry::Global().GetCounter(name, {{"topic", topic}}, help);
}

}  // namespace

storage::LogConfig MergeLogConfig(const proto::TopicConfig& topic,
                                  const proto::TopicConfig& server_defaults) {
  storage::LogConfig c;
  proto::FlushPolicy policy = topic.flush_policy() != proto::FLUSH_DEFAULT
                                  ? topic.flush_policy()
                                  : server_defaults.flush_policy();
  c.flush_policy = ToFlushPolicy(policy);
#define BROOK_MERGE(field, target)                                          \
  if (topic.has_##field()) {                                                \
    c.target = topic.field();                                               \
  } else if (server_defaults.has_##field()) {                               \
    c.target = server_defaults.field();                                     \
  }
  BROOK_MERGE(flush_interval_ms, flush_interval_ms)
  BROOK_MERGE(segment_bytes, segment_bytes)
  BROOK_MERGE(segment_ms, segment_ms)
  BROOK_MERGE(retention_ms, retention_ms)
  BROOK_MERGE(retention_bytes, retention_bytes)
  BROOK_MERGE(index_interval_bytes, index_interval_bytes)
  BROOK_MERGE(max_message_bytes, max_batch_bytes)
  BROOK_MERGE(delete_retention_ms, delete_retention_ms)
  BROOK_MERGE(min_cleanable_dirty_ratio, min_cleanable_dirty_ratio)
  BROOK_MERGE(min_compaction_lag_ms, min_compaction_lag_ms)
#undef BROOK_MERGE
  const proto::CleanupPolicy cleanup = topic.has_cleanup_policy()
                                           ? topic.cleanup_policy()
                                           : server_defaults.cleanup_policy();
  c.cleanup_policy = cleanup == proto::CLEANUP_COMPACT ? storage::CleanupPolicy::kCompact
                     : cleanup == proto::CLEANUP_COMPACT_DELETE
                         ? storage::CleanupPolicy::kCompactDelete
                         : storage::CleanupPolicy::kDelete;
  return c;
}

// ---- Partition ------------------------------------------------------------

Partition::Partition(TopicPartition tp, std::string topic_id,
                     std::unique_ptr<storage::PartitionLog> log)
    : bytes_in(TopicCounter("brook_bytes_in_total", tp.topic, "Bytes produced, per topic")),
      records_in(TopicCounter("brook_records_in_total", tp.topic, "Records produced, per topic")),
      bytes_out(TopicCounter("brook_bytes_out_total", tp.topic, "Bytes fetched, per topic")),
      records_out(
          TopicCounter("brook_records_out_total", tp.topic, "Records fetched, per topic")),
      tp_(std::move(tp)),
      topic_id_(std::move(topic_id)),
      log_(std::move(log)) {
  // After recovery everything on disk has been synced or is about to be
  // served under the log's own policy.
  RefreshHighWatermark();
}

void Partition::SetAssignment(const proto::PartitionAssignment& a) {
  absl::MutexLock l(&mu_);
  assignment_ = a;
}

proto::PartitionAssignment Partition::assignment() const {
  absl::MutexLock l(&mu_);
  return assignment_;
}

NodeId Partition::leader() const {
  absl::MutexLock l(&mu_);
  return NodeId(assignment_.leader());
}

LeaderEpoch Partition::leader_epoch() const {
  absl::MutexLock l(&mu_);
  return LeaderEpoch(assignment_.leader_epoch());
}

void Partition::RefreshHighWatermark() {
  int64_t own = log_->config().flush_policy == storage::FlushPolicy::kAlways
                    ? log_->durable_offset().value()
                    : log_->log_end_offset().value();
  int64_t target;
  {
    absl::MutexLock l(&mu_);
    if (closed_) return;
    if (assignment_.replicas_size() <= 1) {
      target = own;
    } else if (role_ == Role::kLeader) {
      target = tracker_.HighWatermark(own);
    } else {
      return;  // a follower learns it from the leader; no role: nothing moves
    }
  }
  AdvanceTo(target);
}

void Partition::AdvanceTo(int64_t target) {
  int64_t cur = hw_.load(std::memory_order_acquire);
  bool advanced = false;
  while (target > cur) {
    if (hw_.compare_exchange_weak(cur, target, std::memory_order_acq_rel)) {
      advanced = true;
      break;
    }
  }
  if (!advanced) return;
  WakeWaiters();
  std::vector<std::pair<std::function<void(proto::ErrorCode)>, proto::ErrorCode>> ready;
  {
    absl::MutexLock l(&mu_);
    const int64_t hw = hw_.load(std::memory_order_acquire);
    const size_t isr = role_ == Role::kLeader ? tracker_.isr().size()
                                              : static_cast<size_t>(assignment_.isr_size());
    auto end = ack_waiters_.lower_bound(hw);
    for (auto it = ack_waiters_.begin(); it != end; ++it) {
      proto::ErrorCode code = static_cast<int64_t>(isr) < it->second.min_isr
                                  ? proto::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                                  : proto::NONE;
      ready.emplace_back(std::move(it->second.done), code);
    }
    ack_waiters_.erase(ack_waiters_.begin(), end);
  }
  for (auto& [done, code] : ready) done(code);
}

void Partition::FailAckWaiters(proto::ErrorCode code) {
  std::multimap<int64_t, AckWaiter> waiters;
  {
    absl::MutexLock l(&mu_);
    waiters.swap(ack_waiters_);
  }
  for (auto& [offset, w] : waiters) w.done(code);
}

Partition::RoleChange Partition::UpdateRole(NodeId self, int64_t now_ms) {
  RoleChange rc;
  bool refresh = false;
  {
    absl::MutexLock l(&mu_);
    const proto::PartitionAssignment& a = assignment_;
    bool is_replica = std::find(a.replicas().begin(), a.replicas().end(), self.value()) !=
                      a.replicas().end();
    Role now = a.leader() == self.value() ? Role::kLeader
               : (a.leader() >= 0 && is_replica) ? Role::kFollower
                                                 : Role::kNone;
    rc.before = role_;
    rc.after = now;
    rc.epoch_changed = role_ != now || role_epoch_ != a.leader_epoch();
    std::vector<int32_t> isr(a.isr().begin(), a.isr().end());
    if (now == Role::kLeader) {
      if (rc.epoch_changed) {
        std::vector<int32_t> replicas(a.replicas().begin(), a.replicas().end());
        tracker_.Reset(self.value(), replicas, isr, now_ms);
        if (!closed_) {
          epoch_start_ = log_->log_end_offset().value();
          absl::Status st = log_->AssignEpochStart(LeaderEpoch(a.leader_epoch()));
          if (!st.ok()) {
            spdlog::warn("partition {}: cannot record the start of epoch {}: {}", tp_.ToString(),
                         a.leader_epoch(), st.ToString());
          }
        }
      } else {
        std::vector<int32_t> sorted = isr;
        std::sort(sorted.begin(), sorted.end());
        if (sorted != tracker_.isr()) {
          bool shrank = std::includes(tracker_.isr().begin(), tracker_.isr().end(),
                                      sorted.begin(), sorted.end());
          metrics::Registry::Global()
              .GetCounter(shrank ? "brook_isr_shrinks_total" : "brook_isr_expands_total", {},
                          shrank ? "In-sync set shrinks committed for partitions led here"
                                 : "In-sync set expansions committed for partitions led here")
              ->Inc();
          tracker_.SetIsr(isr, now_ms);
        }
      }
      refresh = true;
    }
    role_ = now;
    role_epoch_ = a.leader_epoch();
  }
  if (rc.before == Role::kLeader && (rc.after != Role::kLeader || rc.epoch_changed)) {
    FailAckWaiters(proto::NOT_LEADER);
  }
  if (refresh) RefreshHighWatermark();
  return rc;
}

Partition::Role Partition::role() const {
  absl::MutexLock l(&mu_);
  return role_;
}

bool Partition::replicated() const {
  absl::MutexLock l(&mu_);
  return assignment_.replicas_size() > 1;
}

Offset Partition::epoch_start_offset() const {
  absl::MutexLock l(&mu_);
  return Offset(epoch_start_);
}

size_t Partition::isr_size() const {
  absl::MutexLock l(&mu_);
  return role_ == Role::kLeader ? tracker_.isr().size()
                                : static_cast<size_t>(assignment_.isr_size());
}

bool Partition::RecordFollowerFetch(NodeId replica, Offset fetch_offset, int64_t now_ms) {
  {
    absl::MutexLock l(&mu_);
    if (role_ != Role::kLeader) return false;
    if (!tracker_.RecordFetch(replica.value(), fetch_offset.value(),
                              log_->log_end_offset().value(), now_ms)) {
      return false;
    }
  }
  RefreshHighWatermark();
  return true;
}

std::optional<std::vector<int32_t>> Partition::ProposeIsr(int64_t now_ms,
                                                          int64_t lag_max_ms) const {
  absl::MutexLock l(&mu_);
  if (role_ != Role::kLeader || closed_) return std::nullopt;
  return tracker_.ProposeIsr(now_ms, lag_max_ms, hw_.load(std::memory_order_acquire),
                             epoch_start_);
}

std::vector<replication::FollowerState> Partition::Followers() const {
  absl::MutexLock l(&mu_);
  if (role_ != Role::kLeader) return {};
  return tracker_.followers();
}

void Partition::SetFollowerHighWatermark(Offset leader_hw) {
  int64_t target = std::min(leader_hw.value(), log_->log_end_offset().value());
  int64_t cur = hw_.load(std::memory_order_acquire);
  if (target < cur) {
    // After a truncation below the old watermark.
    hw_.store(target, std::memory_order_release);
    return;
  }
  AdvanceTo(target);
}

void Partition::AddLogEndWaiter(std::function<void()> waiter) {
  {
    absl::MutexLock l(&mu_);
    if (!closed_) {
      log_end_waiters_.push_back(std::move(waiter));
      return;
    }
  }
  waiter();
}

void Partition::NotifyAppended() {
  std::vector<std::function<void()>> waiters;
  {
    absl::MutexLock l(&mu_);
    waiters.swap(log_end_waiters_);
  }
  for (auto& w : waiters) w();
}

void Partition::AddAckWaiter(Offset last_offset, int32_t min_isr,
                             std::function<void(proto::ErrorCode)> done) {
  {
    absl::MutexLock l(&mu_);
    if (!closed_ && role_ == Role::kLeader) {
      if (last_offset.value() >= hw_.load(std::memory_order_acquire)) {
        ack_waiters_.emplace(last_offset.value(), AckWaiter{min_isr, std::move(done)});
        return;
      }
    }
  }
  if (closed() || role() != Role::kLeader) {
    done(proto::NOT_LEADER);
  } else {
    done(isr_size() < static_cast<size_t>(std::max(min_isr, 0))
             ? proto::NOT_ENOUGH_REPLICAS_AFTER_APPEND
             : proto::NONE);
  }
}

void Partition::AddWaiter(std::function<void()> waiter) {
  {
    absl::MutexLock l(&mu_);
    if (!closed_) {
      waiters_.push_back(std::move(waiter));
      return;
    }
  }
  waiter();
}

void Partition::WakeWaiters() {
  std::vector<std::function<void()>> waiters;
  {
    absl::MutexLock l(&mu_);
    waiters.swap(waiters_);
  }
  for (auto& w : waiters) w();
}

absl::Status Partition::Close() {
  {
    absl::MutexLock l(&mu_);
    if (closed_) return absl::OkStatus();
    closed_ = true;
  }
  absl::Status s = log_->Close();
  WakeWaiters();
  NotifyAppended();
  FailAckWaiters(proto::NOT_LEADER);
  return s;
}

bool Partition::closed() const {
  absl::MutexLock l(&mu_);
  return closed_;
}

// ---- PartitionManager -----------------------------------------------------

PartitionManager::PartitionManager(storage::FileSystem* fs, storage::Flusher* flusher,
                                   std::string dir, proto::TopicConfig server_defaults)
    : fs_(fs), flusher_(flusher), dir_(std::move(dir)), server_defaults_(std::move(server_defaults)) {}

PartitionManager::~PartitionManager() { CloseAll().IgnoreError(); }

std::shared_ptr<Partition> PartitionManager::Get(const TopicPartition& tp) const {
  absl::MutexLock l(&mu_);
  auto it = partitions_.find(tp);
  return it == partitions_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Partition>> PartitionManager::All() const {
  std::vector<std::shared_ptr<Partition>> out;
  {
    absl::MutexLock l(&mu_);
    out.reserve(partitions_.size());
    for (const auto& [tp, p] : partitions_) out.push_back(p);
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a->tp() < b->tp(); });
  return out;
}

absl::StatusOr<std::shared_ptr<Partition>> PartitionManager::OpenPartition(
    const proto::PartitionAssignment& a) {
  TopicPartition tp{a.topic(), PartitionId(a.partition())};
  std::string pdir = absl::StrCat(dir_, "/", tp.ToString());
  std::string meta_path = absl::StrCat(pdir, "/", kPartitionMetadataFile);
  std::string want = MetadataContents(a.topic_id());
  if (fs_->Exists(pdir)) {
    auto existing = storage::ReadWholeFile(fs_, meta_path);
    bool same = existing.ok() &&
                std::string(existing->begin(), existing->end()) == want;
    if (!same) {
      spdlog::info("partition {}: directory belongs to another incarnation of the topic; wiping",
                   tp.ToString());
      if (auto s = fs_->RemoveAll(pdir); !s.ok()) return s;
    }
  }
  if (!fs_->Exists(meta_path)) {
    if (auto s = fs_->CreateDirs(pdir); !s.ok()) return s;
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(want.data()), want.size());
    if (auto s = storage::WriteFileAtomic(fs_, meta_path, bytes); !s.ok()) return s;
    if (auto s = fs_->SyncDir(dir_); !s.ok()) return s;
  }
  auto log = storage::PartitionLog::Open(fs_, pdir, MergeLogConfig(a.config(), server_defaults_),
                                         flusher_);
  if (!log.ok()) return log.status();
  auto p = std::make_shared<Partition>(tp, a.topic_id(), std::move(*log));
  p->SetAssignment(a);
  spdlog::info("partition {}: opened (topic id {}, log end {}, leader {} epoch {})",
               tp.ToString(), a.topic_id(), p->log().log_end_offset().value(), a.leader(),
               a.leader_epoch());
  return p;
}

absl::Status PartitionManager::RemovePartition(const std::shared_ptr<Partition>& p) {
  absl::Status s = p->Close();
  if (!s.ok()) spdlog::warn("partition {}: close failed: {}", p->tp().ToString(), s.ToString());
  metrics::Labels labels = {{"topic", p->tp().topic},
                            {"partition", std::to_string(p->tp().partition.value())}};
  metrics::Registry::Global().Remove("brook_partition_size_bytes", labels);
  metrics::Registry::Global().Remove("brook_partition_log_end_offset", labels);
  for (const char* name : {"brook_partition_high_watermark", "brook_partition_isr_size",
                           "brook_partition_under_replicated", "brook_replica_lag_records"}) {
    metrics::Registry::Global().Remove(name, labels);
  }
  absl::Status r = fs_->RemoveAll(absl::StrCat(dir_, "/", p->tp().ToString()));
  if (r.ok()) r = fs_->SyncDir(dir_);
  spdlog::info("partition {}: removed", p->tp().ToString());
  return r;
}

absl::StatusOr<bool> PartitionManager::Apply(
    const std::vector<proto::PartitionAssignment>& assignments, bool remove_unknown_dirs) {
  absl::MutexLock apply_lock(&apply_mu_);
  {
    absl::MutexLock l(&mu_);
    if (closed_) return MakeError(proto::SHUTTING_DOWN, "broker is stopping");
  }
  if (auto s = fs_->CreateDirs(dir_); !s.ok()) return s;

  bool changed = false;
  absl::flat_hash_set<TopicPartition> wanted;
  for (const auto& a : assignments) {
    TopicPartition tp{a.topic(), PartitionId(a.partition())};
    wanted.insert(tp);
    std::shared_ptr<Partition> existing = Get(tp);
    if (existing != nullptr && existing->topic_id() != a.topic_id()) {
      // The topic was deleted and re-created between two heartbeats.
      {
        absl::MutexLock l(&mu_);
        partitions_.erase(tp);
      }
      RemovePartition(existing).IgnoreError();
      existing = nullptr;
      changed = true;
    }
    if (existing != nullptr) {
      proto::PartitionAssignment old = existing->assignment();
      if (old.SerializeAsString() != a.SerializeAsString()) {
        existing->SetAssignment(a);
        changed = true;
      }
      continue;
    }
    auto opened = OpenPartition(a);
    if (!opened.ok()) {
      spdlog::error("partition {}: cannot open: {}", tp.ToString(), opened.status().ToString());
      continue;
    }
    absl::MutexLock l(&mu_);
    partitions_[tp] = *opened;
    changed = true;
  }

  std::vector<std::shared_ptr<Partition>> dropped;
  {
    absl::MutexLock l(&mu_);
    for (auto it = partitions_.begin(); it != partitions_.end();) {
      if (!wanted.contains(it->first)) {
        dropped.push_back(it->second);
        partitions_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (const auto& p : dropped) {
    RemovePartition(p).IgnoreError();
    changed = true;
  }

  if (remove_unknown_dirs) {
    absl::flat_hash_set<std::string> names;
    for (const auto& tp : wanted) names.insert(tp.ToString());
    auto entries = fs_->ListDir(dir_);
    if (entries.ok()) {
      for (const auto& name : *entries) {
        if (names.contains(name)) continue;
        std::string path = absl::StrCat(dir_, "/", name);
        if (!fs_->Exists(absl::StrCat(path, "/", kPartitionMetadataFile))) continue;
        spdlog::info("removing directory of a partition no longer assigned: {}", path);
        if (auto s = fs_->RemoveAll(path); !s.ok()) {
          spdlog::warn("cannot remove {}: {}", path, s.ToString());
        }
      }
    }
  }
  return changed;
}

absl::Status PartitionManager::CloseAll() {
  absl::MutexLock apply_lock(&apply_mu_);
  std::vector<std::shared_ptr<Partition>> all;
  {
    absl::MutexLock l(&mu_);
    closed_ = true;
    for (auto& [tp, p] : partitions_) all.push_back(p);
  }
  absl::Status first;
  for (auto& p : all) {
    absl::Status s = p->Close();
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

}  // namespace brook::broker
