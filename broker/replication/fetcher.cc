// Follower fetch loop: truncation by leader epoch, then long-polled fetches
// appended with AppendReplicated.
#include "broker/replication/fetcher.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/rpc/server.h"
#include "spdlog/spdlog.h"

namespace brook::broker::replication {
namespace {

constexpr int64_t kRetryMs = 200;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

}  // namespace

Offset TruncationOffset(const storage::PartitionLog& log, LeaderEpoch asked_epoch,
                        int32_t leader_epoch, int64_t leader_end, Offset high_watermark) {
  const Offset own_end = log.log_end_offset();
  if (leader_epoch < 0 || leader_end < 0) {
    // The leader knows no epoch at or below ours: keep only what was
    // committed.
    return std::min(high_watermark, own_end);
  }
  Offset target(std::min(leader_end, own_end.value()));
  if (leader_epoch < asked_epoch.value()) {
    // KIP-279: the leader never had our latest epoch; cut where our own copy
    // of the leader's epoch ends, if that is earlier.
    auto own = log.EndOffsetForEpoch(LeaderEpoch(leader_epoch));
    if (own.has_value() && own->first.value() == leader_epoch) {
      target = std::min(target, own->second);
    }
  }
  return target;
}

ReplicaFetcher::ReplicaFetcher(boost::asio::io_context& io, int32_t leader,
                               FetcherOptions options)
    : io_(io), leader_(leader), options_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

ReplicaFetcher::~ReplicaFetcher() { Stop(); }

void ReplicaFetcher::Stop() {
  std::shared_ptr<rpc::RpcClient> c;
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
    c = client_;
  }
  if (c != nullptr) c->Close();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void ReplicaFetcher::Follow(std::shared_ptr<Partition> p, int32_t epoch) {
  absl::MutexLock l(&mu_);
  Entry& e = entries_[p->tp()];
  if (e.p == p && e.epoch == epoch) return;
  e = Entry{};
  e.p = std::move(p);
  e.epoch = epoch;
  e.truncating = true;
  changed_ = true;
}

void ReplicaFetcher::Unfollow(const TopicPartition& tp) {
  absl::MutexLock l(&mu_);
  if (entries_.erase(tp) > 0) changed_ = true;
}

bool ReplicaFetcher::empty() const {
  absl::MutexLock l(&mu_);
  return entries_.empty();
}

std::vector<FollowStatus> ReplicaFetcher::Status() const {
  absl::MutexLock l(&mu_);
  std::vector<FollowStatus> out;
  for (const auto& [tp, e] : entries_) {
    out.push_back(FollowStatus{tp, leader_, e.epoch, e.truncating, e.leader_log_end, e.leader_hw});
  }
  return out;
}

void ReplicaFetcher::Sleep(int64_t ms) {
  absl::MutexLock l(&mu_);
  auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || changed_; };
  mu_.AwaitWithTimeout(absl::Condition(&cond), absl::Milliseconds(ms));
}

std::shared_ptr<rpc::RpcClient> ReplicaFetcher::EnsureConnected() {
  {
    absl::MutexLock l(&mu_);
    if (client_ != nullptr && client_->connected()) return client_;
    client_ = nullptr;
  }
  std::optional<std::string> addr = options_.address(leader_);
  if (!addr.has_value()) return nullptr;
  auto hp = rpc::ParseHostPort(*addr);
  if (!hp.ok()) return nullptr;
  rpc::ClientOptions copts;
  copts.connect_timeout = std::chrono::milliseconds(1000);
  auto c = rpc::RpcClient::Connect(io_, hp->first, hp->second, copts);
  if (!c.ok()) return nullptr;
  absl::MutexLock l(&mu_);
  if (stop_) {
    (*c)->Close();
    return nullptr;
  }
  client_ = *c;
  return client_;
}

void ReplicaFetcher::DropConnection(const std::shared_ptr<rpc::RpcClient>& c) {
  c->Close();
  absl::MutexLock l(&mu_);
  if (client_ == c) client_ = nullptr;
}

void ReplicaFetcher::Update(const TopicPartition& tp, const Entry& seen,
                            const std::function<void(Entry&)>& f) {
  absl::MutexLock l(&mu_);
  auto it = entries_.find(tp);
  if (it == entries_.end() || it->second.p != seen.p || it->second.epoch != seen.epoch) return;
  f(it->second);
}

void ReplicaFetcher::Run() {
  bool last_ok = true;
  while (true) {
    std::vector<std::pair<TopicPartition, Entry>> truncate, fetch;
    int64_t now = NowMs();
    int64_t next_retry = now + options_.fetch_wait_ms;
    {
      absl::MutexLock l(&mu_);
      auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !entries_.empty();
      };
      mu_.Await(absl::Condition(&cond));
      if (stop_) return;
      changed_ = false;
      for (const auto& [tp, e] : entries_) {
        if (e.retry_at_ms > now) {
          next_retry = std::min(next_retry, e.retry_at_ms);
          continue;
        }
        (e.truncating ? truncate : fetch).emplace_back(tp, e);
      }
    }
    if (truncate.empty() && fetch.empty()) {
      Sleep(std::max<int64_t>(next_retry - now, 1));
      continue;
    }
    auto c = EnsureConnected();
    if (c == nullptr) {
      if (last_ok) spdlog::warn("replica fetcher: cannot connect to leader broker {}", leader_);
      last_ok = false;
      Sleep(kRetryMs);
      continue;
    }
    bool ok = truncate.empty() || Truncate(c, truncate);
    if (ok && !fetch.empty()) ok = Fetch(c, fetch);
    if (!ok) {
      if (last_ok) spdlog::warn("replica fetcher: connection to leader broker {} failed", leader_);
      last_ok = false;
      DropConnection(c);
      Sleep(kRetryMs);
      continue;
    }
    if (!last_ok) spdlog::info("replica fetcher: fetching from leader broker {}", leader_);
    last_ok = true;
  }
}

bool ReplicaFetcher::Truncate(const std::shared_ptr<rpc::RpcClient>& c,
                              const std::vector<std::pair<TopicPartition, Entry>>& pending) {
  proto::OffsetForLeaderEpochRequest req;
  req.set_replica_id(options_.self_id);
  std::vector<const std::pair<TopicPartition, Entry>*> asked;
  std::vector<LeaderEpoch> asked_epochs;
  for (const auto& item : pending) {
    const Entry& e = item.second;
    std::optional<LeaderEpoch> latest = e.p->log().latest_epoch();
    if (!latest.has_value()) {
      // No epoch on record: an empty log needs no truncation; data without
      // epochs is cut to what was committed.
      if (e.p->log().log_end_offset() > e.p->high_watermark()) {
        e.p->log().TruncateTo(e.p->high_watermark()).IgnoreError();
      }
      Update(item.first, e, [](Entry& x) { x.truncating = false; });
      continue;
    }
    auto* part = req.add_partitions();
    part->set_topic(item.first.topic);
    part->set_partition(item.first.partition.value());
    part->set_current_leader_epoch(e.epoch);
    part->set_leader_epoch(latest->value());
    asked.push_back(&item);
    asked_epochs.push_back(*latest);
  }
  if (asked.empty()) return true;
  proto::OffsetForLeaderEpochResponse resp;
  auto r = c->CallSync(proto::API_OFFSET_FOR_LEADER_EPOCH, 0, req, {}, &resp,
                       std::chrono::milliseconds(5000));
  if (!r.ok()) {
    proto::ErrorCode code = ToErrorCode(r.status());
    if (code == proto::UNSUPPORTED_API || code == proto::SHUTTING_DOWN) {
      for (const auto* item : asked) {
        Update(item->first, item->second, [](Entry& x) { x.retry_at_ms = NowMs() + kRetryMs; });
      }
      return true;
    }
    return false;
  }
  for (size_t i = 0; i < asked.size(); ++i) {
    const auto& [tp, e] = *asked[i];
    if (static_cast<int>(i) >= resp.partitions_size()) break;
    const auto& res = resp.partitions(static_cast<int>(i));
    if (res.error_code() != proto::NONE) {
      // FENCED (we are behind: a new assignment is coming), NOT_LEADER /
      // UNKNOWN_LEADER_EPOCH (the leader is behind): retry shortly.
      Update(tp, e, [](Entry& x) { x.retry_at_ms = NowMs() + kRetryMs; });
      continue;
    }
    Offset target = TruncationOffset(e.p->log(), asked_epochs[i], res.leader_epoch(),
                                     res.end_offset(), e.p->high_watermark());
    if (target < e.p->log().log_end_offset()) {
      spdlog::info("partition {}: truncating from {} to {} (epoch {}: leader epoch {} ends at {})",
                   tp.ToString(), e.p->log().log_end_offset().value(), target.value(),
                   asked_epochs[i].value(), res.leader_epoch(), res.end_offset());
      absl::Status s = e.p->log().TruncateTo(target);
      if (!s.ok()) {
        spdlog::error("partition {}: truncation failed: {}", tp.ToString(), s.ToString());
        Update(tp, e, [](Entry& x) { x.retry_at_ms = NowMs() + kRetryMs; });
        continue;
      }
      e.p->SetFollowerHighWatermark(e.p->high_watermark());
    }
    Update(tp, e, [](Entry& x) { x.truncating = false; });
  }
  return true;
}

bool ReplicaFetcher::Fetch(const std::shared_ptr<rpc::RpcClient>& c,
                           const std::vector<std::pair<TopicPartition, Entry>>& pending) {
  proto::FetchRequest req;
  req.set_replica_id(options_.self_id);
  req.set_broker_epoch(options_.broker_epoch ? options_.broker_epoch() : 0);
  req.set_max_wait_ms(static_cast<int32_t>(options_.fetch_wait_ms));
  req.set_min_bytes(1);
  req.set_max_bytes(options_.max_bytes);
  for (const auto& [tp, e] : pending) {
    auto* fp = req.add_partitions();
    fp->set_topic(tp.topic);
    fp->set_partition(tp.partition.value());
    fp->set_fetch_offset(e.p->log().log_end_offset().value());
    fp->set_max_bytes(options_.max_partition_bytes);
    fp->set_current_leader_epoch(e.epoch);
  }
  proto::FetchResponse resp;
  auto r = c->CallSync(proto::API_FETCH, 0, req, {}, &resp,
                       std::chrono::milliseconds(options_.fetch_wait_ms + 5000));
  if (!r.ok()) {
    proto::ErrorCode code = ToErrorCode(r.status());
    if (code == proto::SHUTTING_DOWN) {
      Sleep(kRetryMs);
      return true;
    }
    return false;
  }
  const std::vector<uint8_t>& payload = *r;
  size_t pos = 0;
  for (int i = 0; i < resp.partitions_size() && i < static_cast<int>(pending.size()); ++i) {
    const auto& res = resp.partitions(i);
    const auto& [tp, e] = pending[static_cast<size_t>(i)];
    std::span<const uint8_t> data;
    if (res.size() > 0 && pos + res.size() <= payload.size()) {
      data = std::span<const uint8_t>(payload.data() + pos, res.size());
    }
    pos += res.size();
    storage::PartitionLog& log = e.p->log();
    switch (res.error_code()) {
      case proto::NONE: break;
      case proto::OFFSET_OUT_OF_RANGE: {
        Offset own_end = log.log_end_offset();
        if (res.log_start_offset() > own_end.value()) {
          spdlog::info("partition {}: fetch offset {} is below the leader's log start {}; restarting there",
                       tp.ToString(), own_end.value(), res.log_start_offset());
          absl::Status s = log.TruncateFullyAndStartAt(Offset(res.log_start_offset()));
          if (!s.ok()) spdlog::error("partition {}: {}", tp.ToString(), s.ToString());
          Update(tp, e, [](Entry& x) { x.retry_at_ms = 0; });
        } else {
          // Ahead of the leader: truncate by epoch again.
          Update(tp, e, [](Entry& x) {
            x.truncating = true;
            x.retry_at_ms = NowMs() + kRetryMs;
          });
        }
        continue;
      }
      default:
        Update(tp, e, [](Entry& x) { x.retry_at_ms = NowMs() + kRetryMs; });
        continue;
    }
    if (!data.empty()) {
      auto appended = log.AppendReplicated(data);
      if (!appended.ok()) {
        spdlog::warn("partition {}: replicated append failed: {}", tp.ToString(),
                     appended.status().ToString());
        Update(tp, e, [](Entry& x) {
          x.truncating = true;
          x.retry_at_ms = NowMs() + kRetryMs;
        });
        continue;
      }
      // Under flush `always` the follower's fsync is a group commit on the
      // flusher thread, off the replication path (Kafka's rule: the leader
      // counts what a follower has appended). A failed fsync fails the log
      // for good, and later appends are refused.
      if (log.config().flush_policy == storage::FlushPolicy::kAlways) {
        const std::string name = tp.ToString();
        log.WhenDurable(appended->last_offset, [name](absl::Status s) {
          if (!s.ok()) spdlog::error("partition {}: fsync failed: {}", name, s.ToString());
        });
      }
    }
    e.p->SetFollowerHighWatermark(Offset(res.high_watermark()));
    int64_t leader_end = res.log_end_offset();
    int64_t leader_hw = res.high_watermark();
    Update(tp, e, [leader_end, leader_hw](Entry& x) {
      x.leader_log_end = leader_end;
      x.leader_hw = leader_hw;
    });
  }
  return true;
}

}  // namespace brook::broker::replication
