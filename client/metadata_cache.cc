// MetadataCache: API_METADATA against the name servers, with fail-over.
#include "client/metadata_cache.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "proto/brook.pb.h"

namespace brook::client {
namespace {

std::string HintKey(const std::string& topic, int32_t partition) {
  return absl::StrCat(topic, std::string(1, '\0'), partition);
}

}  // namespace

MetadataCache::MetadataCache(ConnectionPool* pool, std::vector<HostPort> nameservers,
                             std::chrono::milliseconds request_timeout)
    : pool_(pool), nameservers_(std::move(nameservers)), request_timeout_(request_timeout) {}

absl::Status MetadataCache::Refresh(const std::vector<std::string>& topics) {
  absl::MutexLock refresh_lock(&refresh_mu_);
  proto::MetadataRequest req;
  size_t start = 0;
  std::vector<std::string> asked;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& t : topics) tracked_.insert(t);
    for (const auto& t : tracked_) asked.push_back(t);
    start = preferred_;
    last_attempt_ = Clock::now();
  }
  for (const auto& t : asked) req.add_topics(t);

  absl::Status last = absl::UnavailableError("no name server");
  for (size_t i = 0; i < nameservers_.size(); ++i) {
    const size_t idx = (start + i) % nameservers_.size();
    const HostPort& ns = nameservers_[idx];
    auto conn = pool_->Get(ns);
    if (!conn.ok()) {
      last = absl::Status(conn.status().code(),
                          absl::StrCat("name server ", ns.ToString(), ": ", conn.status().message()));
      continue;
    }
    proto::MetadataResponse resp;
    auto payload = (*conn)->CallSync(proto::API_METADATA, 0, req, {}, &resp, request_timeout_);
    if (!payload.ok()) {
      if (absl::IsUnavailable(payload.status()) || absl::IsDeadlineExceeded(payload.status())) {
        pool_->Invalidate(*conn);
      }
      last = absl::Status(payload.status().code(), absl::StrCat("name server ", ns.ToString(), ": ",
                                                                payload.status().message()));
      continue;
    }
    Apply(resp, asked);
    absl::MutexLock lock(&mu_);
    preferred_ = idx;
    return absl::OkStatus();
  }
  return last;
}

void MetadataCache::Apply(const proto::MetadataResponse& r, const std::vector<std::string>& asked) {
  absl::MutexLock lock(&mu_);
  brokers_.clear();
  for (const auto& b : r.brokers()) {
    brokers_[b.broker_id()] = HostPort{b.host(), static_cast<uint16_t>(b.port())};
  }
  coordinator_.reset();
  coordinators_.clear();
  for (const auto& c : r.coordinators()) {
    HostPort hp{c.host(), static_cast<uint16_t>(c.port())};
    if (c.leader()) coordinator_ = hp;
    coordinators_.push_back(CoordinatorEndpoint{c.coordinator_id(), std::move(hp), c.leader()});
  }
  std::stable_sort(coordinators_.begin(), coordinators_.end(),
                   [](const auto& a, const auto& b) { return a.leader && !b.leader; });
  // A topic asked for but absent from the answer is unknown.
  for (const auto& t : asked) topics_.erase(t);
  for (const auto& t : r.topics()) {
    TopicEntry e;
    e.error_code = t.error_code();
    for (const auto& p : t.partitions()) {
      PartitionRouteInfo info;
      info.partition = p.partition();
      info.leader = p.leader();
      info.leader_epoch = p.leader_epoch();
      info.replicas.assign(p.replicas().begin(), p.replicas().end());
      info.isr.assign(p.isr().begin(), p.isr().end());
      // A leader hint outlives routes that are not newer than it.
      if (auto h = hints_.find(HintKey(t.topic(), p.partition())); h != hints_.end()) {
        if (info.leader_epoch > h->second.base_epoch) {
          hints_.erase(h);
        } else {
          info.leader = h->second.leader;
        }
      }
      e.partitions.push_back(std::move(info));
    }
    std::sort(e.partitions.begin(), e.partitions.end(),
              [](const auto& a, const auto& b) { return a.partition < b.partition; });
    topics_[t.topic()] = std::move(e);
  }
  stale_ = false;
  last_success_ = Clock::now();
}

absl::Status MetadataCache::MaybeRefresh(std::chrono::milliseconds max_age,
                                         std::chrono::milliseconds min_interval) {
  {
    absl::MutexLock lock(&mu_);
    const auto now = Clock::now();
    if (now - last_attempt_ < min_interval) return absl::OkStatus();
    if (!stale_ && now - last_success_ < max_age) return absl::OkStatus();
  }
  return Refresh();
}

void MetadataCache::Track(const std::vector<std::string>& topics) {
  absl::MutexLock lock(&mu_);
  for (const auto& t : topics) {
    if (tracked_.insert(t).second) stale_ = true;
  }
}

void MetadataCache::Invalidate() {
  absl::MutexLock lock(&mu_);
  stale_ = true;
}

absl::StatusOr<const MetadataCache::TopicEntry*> MetadataCache::FindTopic(
    const std::string& topic, bool need_partitions) const {
  auto it = topics_.find(topic);
  if (it == topics_.end() || (need_partitions && it->second.partitions.empty())) {
    return MakeError(proto::UNKNOWN_TOPIC_OR_PARTITION,
                     absl::StrCat("no route for topic '", topic, "'"));
  }
  if (it->second.error_code != proto::NONE) {
    return FromErrorCode(static_cast<proto::ErrorCode>(it->second.error_code),
                         absl::StrCat("topic '", topic, "'"));
  }
  return &it->second;
}

absl::StatusOr<std::vector<PartitionRouteInfo>> MetadataCache::Partitions(
    const std::string& topic) const {
  absl::MutexLock lock(&mu_);
  auto entry = FindTopic(topic, /*need_partitions=*/false);
  if (!entry.ok()) return entry.status();
  return (*entry)->partitions;
}

absl::StatusOr<int32_t> MetadataCache::PartitionCount(const std::string& topic) const {
  absl::MutexLock lock(&mu_);
  auto entry = FindTopic(topic, /*need_partitions=*/true);
  if (!entry.ok()) return entry.status();
  return static_cast<int32_t>((*entry)->partitions.size());
}

absl::StatusOr<int32_t> MetadataCache::WaitForPartitionCount(
    const std::string& topic, Clock::time_point deadline, std::chrono::milliseconds initial_backoff,
    std::chrono::milliseconds max_backoff) {
  auto backoff = initial_backoff;
  while (true) {
    auto n = PartitionCount(topic);
    if (n.ok()) return n;
    absl::Status s = Refresh({topic});
    if (s.ok()) {
      n = PartitionCount(topic);
      if (n.ok()) return n;
      s = n.status();
    }
    if (!IsRetriable(ToErrorCode(s)) || Clock::now() + backoff >= deadline) return s;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, max_backoff);
  }
}

absl::StatusOr<HostPort> MetadataCache::Leader(const std::string& topic, int32_t partition,
                                               int32_t* leader_id) const {
  absl::MutexLock lock(&mu_);
  auto entry = FindTopic(topic, /*need_partitions=*/false);
  if (!entry.ok()) return entry.status();
  for (const auto& p : (*entry)->partitions) {
    if (p.partition != partition) continue;
    if (p.leader < 0) {
      return MakeError(proto::LEADER_NOT_AVAILABLE,
                       absl::StrCat(topic, "-", partition, " has no leader"));
    }
    auto b = brokers_.find(p.leader);
    if (b == brokers_.end()) {
      return MakeError(proto::LEADER_NOT_AVAILABLE,
                       absl::StrCat("leader ", p.leader, " of ", topic, "-", partition,
                                    " is not a known broker"));
    }
    if (leader_id != nullptr) *leader_id = p.leader;
    return b->second;
  }
  return MakeError(proto::UNKNOWN_TOPIC_OR_PARTITION,
                   absl::StrCat("no partition ", partition, " in topic '", topic, "'"));
}

std::optional<HostPort> MetadataCache::Broker(int32_t broker_id) const {
  absl::MutexLock lock(&mu_);
  auto it = brokers_.find(broker_id);
  if (it == brokers_.end()) return std::nullopt;
  return it->second;
}

std::vector<CoordinatorEndpoint> MetadataCache::Coordinators() const {
  absl::MutexLock lock(&mu_);
  return coordinators_;
}

void MetadataCache::SetLeaderHint(const std::string& topic, int32_t partition, int32_t leader_id) {
  if (leader_id < 0) return;
  absl::MutexLock lock(&mu_);
  auto it = topics_.find(topic);
  if (it == topics_.end()) return;
  for (auto& p : it->second.partitions) {
    if (p.partition != partition) continue;
    p.leader = leader_id;
    hints_[HintKey(topic, partition)] = Hint{leader_id, p.leader_epoch};
    return;
  }
}

absl::StatusOr<HostPort> MetadataCache::ActiveCoordinator() const {
  absl::MutexLock lock(&mu_);
  if (!coordinator_) return MakeError(proto::NOT_COORDINATOR, "no active coordinator is known");
  return *coordinator_;
}

}  // namespace brook::client
