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
#undef BROOK_MERGE
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
  if (closed()) return;
  int64_t target = log_->config().flush_policy == storage::FlushPolicy::kAlways
                       ? log_->durable_offset().value()
                       : log_->log_end_offset().value();
  int64_t cur = hw_.load(std::memory_order_acquire);
  bool advanced = false;
  while (target > cur) {
    if (hw_.compare_exchange_weak(cur, target, std::memory_order_acq_rel)) {
      advanced = true;
      break;
    }
  }
  if (advanced) WakeWaiters();
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
