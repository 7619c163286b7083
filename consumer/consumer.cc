// Consumer: a fetcher thread keeps a bounded prefetch of record batches per
// assigned partition with long-poll FETCH requests to each leader; Poll
// decodes prefetched batches on the caller's thread. As a group member
// (Subscribe) Poll also runs the join / sync steps of the classic group
// protocol (consumer/group_protocol.h, consumer/group_rpc.h), the leader's
// assignor, revocations and rebalance callbacks.
//
// Threads: the user's thread (every public method, the join and sync, the
// listener and commit callbacks); the fetcher thread (position look-ups,
// committed offsets of new partitions, routing, which may block); the
// heartbeat thread (heartbeats, the max_poll_interval leave); the committer
// thread (OffsetCommit requests, in order); the IoThread (FETCH and group
// completions, which only store results and wake waiters).
#include "brook/consumer.h"

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <span>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/address.h"
#include "client/connection_pool.h"
#include "client/list_offsets.h"
#include "client/metadata_cache.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "consumer/group_protocol.h"
#include "consumer/group_rpc.h"
#include "proto/brook.pb.h"

namespace brook::client {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kEarliest = -2;
constexpr int64_t kLatest = -1;
constexpr auto kMetadataMaxAge = std::chrono::minutes(5);
constexpr auto kFetcherTick = std::chrono::milliseconds(100);
constexpr auto kRetryBackoff = std::chrono::milliseconds(100);

// One fetched batch; the view points into the shared response payload.
struct Fetched {
  std::shared_ptr<const std::vector<uint8_t>> payload;
  RecordBatchView view;
};

struct PartitionState {
  int64_t position = -1;        // next offset Poll returns; -1: unknown
  int64_t lookup = kLatest;     // LIST_OFFSETS timestamp that resolves an unknown position
  int64_t fetch_offset = -1;    // next offset to fetch
  uint64_t epoch = 0;           // bumped by every seek: older fetches are dropped
  std::deque<Fetched> batches;  // prefetched, in offset order
  size_t buffered = 0;          // bytes in `batches`
  bool fetching = false;
  Clock::time_point retry_at{};
  absl::Status error;  // a non-retriable fetch error for Poll to report once
  // Decoded records not yet returned (max_poll_records was reached), and the
  // position once they are all returned.
  std::deque<ConsumerRecord> leftover;
  int64_t leftover_end = -1;
  // Paused by the user: neither fetched nor returned (prefetched data stays).
  bool paused = false;
  // Resolve an unknown position from the group's committed offset first
  // (OffsetFetch), falling back to `lookup` when nothing is committed.
  bool check_committed = false;
};

rpc::ClientOptions ClientOptionsFor(const ConsumerConfig& c) {
  rpc::ClientOptions o;
  o.connect_timeout = std::min(c.request_timeout, std::chrono::milliseconds(5000));
  return o;
}

std::string Name(const TopicPartition& tp) { return absl::StrCat(tp.topic, "-", tp.partition); }

class ConsumerImpl final : public Consumer {
 public:
  ConsumerImpl(ConsumerConfig config, std::vector<HostPort> nameservers,
               group::ProtocolChoice choice)
      : config_(std::move(config)),
        nameservers_(nameservers),
        choice_(std::move(choice)),
        io_(std::make_unique<rpc::IoThread>()),
        pool_(io_->io(), ClientOptionsFor(config_)),
        metadata_(&pool_, std::move(nameservers), config_.request_timeout),
        rpc_(&pool_, &metadata_) {
    fetcher_ = std::thread([this] { FetcherLoop(); });
    heartbeat_ = std::thread([this] { HeartbeatLoop(); });
    committer_ = std::thread([this] { CommitLoop(); });
  }
  ~ConsumerImpl() override { Close(); }

  absl::Status Assign(const std::vector<TopicPartition>& partitions) override {
    std::vector<std::string> topics;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return absl::FailedPreconditionError("the consumer is closed");
      if (mode_ == Mode::kSubscribe) {
        return absl::FailedPreconditionError("the consumer is subscribed: Unsubscribe first");
      }
      mode_ = Mode::kAssign;
      std::map<TopicPartition, PartitionState> next;
      for (const auto& tp : partitions) {
        if (tp.partition < 0) {
          return absl::InvalidArgumentError(absl::StrCat("bad partition ", Name(tp)));
        }
        auto it = parts_.find(tp);
        if (it != parts_.end()) {
          next.emplace(tp, std::move(it->second));
        } else {
          next.emplace(tp, NewPartitionState());  // mu_ is held
        }
        if (topics.empty() || topics.back() != tp.topic) topics.push_back(tp.topic);
      }
      parts_ = std::move(next);
      rr_start_ = 0;
    }
    metadata_.Track(topics);
    WakeFetcher();
    return absl::OkStatus();
  }

  std::vector<TopicPartition> Assignment() const override {
    absl::MutexLock lock(&mu_);
    std::vector<TopicPartition> out;
    for (const auto& [tp, s] : parts_) out.push_back(tp);
    return out;
  }

  absl::Status Seek(const TopicPartition& tp, int64_t offset) override {
    if (offset < 0) return absl::InvalidArgumentError("offset must be >= 0");
    absl::MutexLock lock(&mu_);
    auto it = parts_.find(tp);
    if (it == parts_.end()) return NotAssigned(tp);
    Reset(it->second);
    it->second.position = offset;
    it->second.fetch_offset = offset;
    WakeFetcherLocked();
    return absl::OkStatus();
  }

  absl::Status SeekToBeginning(const std::vector<TopicPartition>& tps) override {
    return SeekLookup(tps, kEarliest);
  }
  absl::Status SeekToEnd(const std::vector<TopicPartition>& tps) override {
    return SeekLookup(tps, kLatest);
  }
  absl::Status SeekToTimestamp(const std::vector<TopicPartition>& tps,
                               int64_t timestamp_ms) override {
    if (timestamp_ms < 0) return absl::InvalidArgumentError("timestamp must be >= 0");
    return SeekLookup(tps, timestamp_ms);
  }

  absl::StatusOr<int64_t> Position(const TopicPartition& tp) override {
    const auto deadline = Clock::now() + config_.request_timeout;
    auto backoff = kRetryBackoff;
    while (true) {
      OffsetQuery q;
      uint64_t epoch = 0;
      bool committed = false;
      {
        absl::MutexLock lock(&mu_);
        auto it = parts_.find(tp);
        if (it == parts_.end()) return NotAssigned(tp);
        if (it->second.position >= 0) return it->second.position;
        committed = it->second.check_committed;
        q.topic = tp.topic;
        q.partition = tp.partition;
        q.timestamp = it->second.lookup;
        epoch = it->second.epoch;
      }
      if (committed) {
        {
          if (ResolveCommitted({{tp, epoch}}).ok()) continue;
          if (Clock::now() + backoff >= deadline) {
            return absl::UnavailableError(absl::StrCat("position of ", Name(tp),
                                                       ": the committed offset is unknown"));
          }
          std::this_thread::sleep_for(backoff);
          continue;
        }
      }
      absl::Status s = Lookup(&q, epoch);
      if (s.ok()) continue;  // applied (or superseded): read it again
      if (!IsRetriable(ToErrorCode(s)) || Clock::now() + backoff >= deadline) {
        return absl::Status(s.code(), absl::StrCat("position of ", Name(tp), ": ", s.message()));
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      metadata_.Refresh({tp.topic}).IgnoreError();
    }
  }

  absl::StatusOr<std::vector<ConsumerRecord>> Poll(std::chrono::milliseconds timeout) override {
    const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
    {
      absl::MutexLock lock(&mu_);
      in_poll_ = true;
    }
    PollScope scope(this);
    RunCommitCallbacks();
    std::vector<ConsumerRecord> out;
    while (true) {
      bool subscribed = false;
      {
        absl::MutexLock lock(&mu_);
        if (closed_) return absl::FailedPreconditionError("the consumer is closed");
        subscribed = mode_ == Mode::kSubscribe;
        if (subscribed) last_poll_ = Clock::now();
      }
      absl::Time wait_until = deadline;
      if (subscribed) {
        // The join and sync run here, on the user's thread.
        if (auto s = MaintainGroup(deadline); !s.ok()) return s;
        {
          absl::MutexLock lock(&mu_);
          if (!joined_) return out;  // still joining at the deadline
        }
        MaybeAutoCommit();
        RunCommitCallbacks();
        wait_until = std::min(deadline, NextGroupWork());
      }
      // Take prefetched batches (and leftovers) under the lock; decode outside.
      std::vector<std::pair<TopicPartition, Fetched>> work;
      {
        absl::MutexLock lock(&mu_);
        if (closed_) return absl::FailedPreconditionError("the consumer is closed");
        auto has_data = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          if (mode_ == Mode::kSubscribe && (rejoin_needed_ || lost_)) return true;
          for (const auto& [tp, s] : parts_) {
            if (s.paused) continue;
            if (!s.batches.empty() || !s.leftover.empty() || !s.error.ok()) return true;
          }
          return false;
        };
        mu_.AwaitWithDeadline(absl::Condition(&has_data), wait_until);
        if (parts_.empty() && mode_ != Mode::kSubscribe) return out;
        // Round-robin over partitions so that one busy partition does not
        // starve the others.
        std::vector<std::map<TopicPartition, PartitionState>::iterator> order;
        for (auto it = parts_.begin(); it != parts_.end(); ++it) {
          if (!it->second.paused) order.push_back(it);
        }
        const size_t start = order.empty() ? 0 : rr_start_++ % order.size();
        std::rotate(order.begin(), order.begin() + start, order.end());
        size_t budget = config_.max_poll_records;
        for (auto it : order) {
          PartitionState& s = it->second;
          if (!s.error.ok()) {
            absl::Status e = std::move(s.error);
            s.error = absl::OkStatus();
            if (out.empty()) return e;
            continue;
          }
          while (budget > 0 && !s.leftover.empty()) {
            s.position = s.leftover.front().offset + 1;
            out.push_back(std::move(s.leftover.front()));
            s.leftover.pop_front();
            --budget;
          }
          if (s.leftover.empty() && s.leftover_end >= 0) {
            s.position = std::max(s.position, s.leftover_end);
            s.leftover_end = -1;
          }
          size_t taken = 0;
          while (budget > taken && !s.batches.empty()) {
            taken += static_cast<size_t>(std::max(s.batches.front().view.record_count(), 1));
            s.buffered -= s.batches.front().view.size();
            work.emplace_back(it->first, std::move(s.batches.front()));
            s.batches.pop_front();
          }
          budget -= std::min(budget, taken);
        }
        if (!work.empty()) WakeFetcherLocked();  // prefetch room was freed
      }
      if (auto s = Decode(work, &out); !s.ok() && out.empty()) return s;
      if (!out.empty() || absl::Now() >= deadline) return out;
    }
  }

  absl::StatusOr<int32_t> PartitionCount(const std::string& topic) override {
    // Tracked topics' routes are at most metadata_max_age old.
    metadata_.MaybeRefresh(config_.metadata_max_age, kRetryBackoff).IgnoreError();
    return metadata_.WaitForPartitionCount(topic, Clock::now() + config_.request_timeout,
                                           kRetryBackoff, std::chrono::milliseconds(1000));
  }

  // ---- Consumer groups ----

  absl::Status Subscribe(const std::vector<std::string>& topics,
                         RebalanceListener* listener) override {
    if (topics.empty()) return absl::InvalidArgumentError("no topic to subscribe to");
    for (const auto& t : topics) {
      if (t.empty()) return absl::InvalidArgumentError("empty topic name");
    }
    std::vector<std::string> sorted = topics;
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    return StartSubscription(std::move(sorted), std::nullopt, listener);
  }

  absl::Status SubscribePattern(const std::string& pattern, RebalanceListener* listener) override {
    std::regex re;
    try {
      re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return absl::InvalidArgumentError(absl::StrCat("bad topic pattern \"", pattern, "\": ", e.what()));
    }
    return StartSubscription({}, std::move(re), listener);
  }

  absl::Status Unsubscribe() override {
    RunCommitCallbacks();
    bool subscribed;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return absl::FailedPreconditionError("the consumer is closed");
      subscribed = mode_ == Mode::kSubscribe;
      if (!subscribed) {
        parts_.clear();
        mode_ = Mode::kNone;
        return absl::OkStatus();
      }
    }
    LeaveSubscription(/*send_leave=*/!config_.group_instance_id.has_value());
    return absl::OkStatus();
  }

  std::vector<std::string> Subscription() const override {
    absl::MutexLock lock(&mu_);
    if (mode_ != Mode::kSubscribe) return {};
    return pattern_ ? matched_topics_ : topics_;
  }

  GroupMembership Membership() const override {
    absl::MutexLock lock(&mu_);
    GroupMembership m;
    m.group_id = config_.group_id;
    if (mode_ == Mode::kSubscribe) {
      m.member_id = member_id_;
      m.generation = joined_ ? generation_ : -1;
      m.protocol = joined_ ? protocol_ : "";
    }
    return m;
  }

  absl::Status Pause(const std::vector<TopicPartition>& partitions) override {
    return SetPaused(partitions, true);
  }
  absl::Status Resume(const std::vector<TopicPartition>& partitions) override {
    return SetPaused(partitions, false);
  }
  std::vector<TopicPartition> Paused() const override {
    absl::MutexLock lock(&mu_);
    std::vector<TopicPartition> out;
    for (const auto& [tp, s] : parts_) {
      if (s.paused) out.push_back(tp);
    }
    return out;
  }

  absl::Status CommitSync() override { return CommitSync(Positions()); }

  absl::Status CommitSync(const std::map<TopicPartition, OffsetAndMetadata>& offsets) override {
    RunCommitCallbacks();
    auto id = CommitIdentity();
    if (!id.ok()) return id.status();
    absl::Status result;
    bool finished = false;
    {
      absl::MutexLock lock(&mu_);
      commits_.push_back(QueuedCommit{offsets, *id, nullptr, &result, &finished});
      auto done = [&finished]() { return finished; };
      mu_.Await(absl::Condition(&done));
    }
    RunCommitCallbacks();
    return result;
  }

  void CommitAsync(CommitCallback done) override { CommitAsync(Positions(), std::move(done)); }

  void CommitAsync(const std::map<TopicPartition, OffsetAndMetadata>& offsets,
                   CommitCallback done) override {
    RunCommitCallbacks();
    auto id = CommitIdentity();
    absl::MutexLock lock(&mu_);
    if (!id.ok()) {
      if (done) completed_.emplace_back(std::move(done), id.status());
      return;
    }
    commits_.push_back(QueuedCommit{offsets, *id, std::move(done), nullptr, nullptr});
  }

  absl::StatusOr<std::map<TopicPartition, OffsetAndMetadata>> Committed(
      const std::vector<TopicPartition>& partitions) override {
    RunCommitCallbacks();
    if (config_.group_id.empty()) {
      return absl::FailedPreconditionError("no group_id is configured");
    }
    return FetchCommitted(partitions);
  }

  void Close() override {
    if (close_started_) return;
    close_started_ = true;
    RunCommitCallbacks();
    bool subscribed;
    {
      absl::MutexLock lock(&mu_);
      subscribed = mode_ == Mode::kSubscribe;
    }
    // Commit, revoke and leave (a static member stays until its session
    // expires, so that a restart within it keeps its partitions).
    if (subscribed) LeaveSubscription(/*send_leave=*/!config_.group_instance_id.has_value());
    {
      absl::MutexLock lock(&mu_);
      group_stop_ = true;  // the committer drains its queue first
      heartbeat_cv_.Signal();
    }
    heartbeat_.join();
    committer_.join();
    RunCommitCallbacks();
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
      WakeFetcherLocked();
    }
    fetcher_.join();
    pool_.CloseAll();  // outstanding fetches complete with Unavailable
    {
      absl::MutexLock lock(&mu_);
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
      mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(10));
    }
    io_.reset();  // joins the io thread
    absl::MutexLock lock(&mu_);
    parts_.clear();
  }

 private:
  struct FetchRequest {
    HostPort addr;
    std::shared_ptr<rpc::RpcClient> conn;
    std::vector<std::pair<TopicPartition, uint64_t>> parts;  // with the epoch asked under
  };

  static absl::Status NotAssigned(const TopicPartition& tp) {
    return absl::FailedPreconditionError(absl::StrCat(Name(tp), " is not assigned"));
  }

  // Drops prefetched data and pending fetches of a partition (mu_ held).
  static void Reset(PartitionState& s) {
    ++s.epoch;
    s.batches.clear();
    s.buffered = 0;
    s.fetching = false;
    s.leftover.clear();
    s.leftover_end = -1;
    s.error = absl::OkStatus();
    s.retry_at = {};
  }

  absl::Status SeekLookup(const std::vector<TopicPartition>& tps, int64_t lookup) {
    absl::MutexLock lock(&mu_);
    for (const auto& tp : tps) {
      if (!parts_.contains(tp)) return NotAssigned(tp);
    }
    for (const auto& tp : tps) {
      PartitionState& s = parts_[tp];
      Reset(s);
      s.position = -1;
      s.fetch_offset = -1;
      s.lookup = lookup;
    }
    WakeFetcherLocked();
    return absl::OkStatus();
  }

  // Resolves an unknown position with LIST_OFFSETS and applies it unless the
  // partition was seeked (epoch changed) meanwhile. Blocking.
  absl::Status Lookup(OffsetQuery* q, uint64_t epoch) {
    std::vector<OffsetQuery> qs{*q};
    ListOffsets(&pool_, metadata_, &qs, config_.request_timeout);
    *q = qs[0];
    if (!q->status.ok()) {
      if (IsRetriable(ToErrorCode(q->status))) metadata_.Invalidate();
      return q->status;
    }
    absl::MutexLock lock(&mu_);
    auto it = parts_.find(TopicPartition{q->topic, q->partition});
    if (it != parts_.end() && it->second.epoch == epoch && it->second.position < 0) {
      it->second.position = q->offset;
      it->second.fetch_offset = q->offset;
      WakeFetcherLocked();
    }
    return absl::OkStatus();
  }

  // Decodes `work` into `out` (user thread). Records before a partition's
  // position are skipped; records past max_poll_records become leftovers.
  absl::Status Decode(std::vector<std::pair<TopicPartition, Fetched>>& work,
                      std::vector<ConsumerRecord>* out) {
    absl::Status first_error;
    // A RecordReader keeps every decompressed buffer it made until it dies,
    // so one lives only as long as this call (records are copied out).
    RecordReader reader;
    std::vector<RecordView> views;
    std::vector<ConsumerRecord> records;
    out->reserve(config_.max_poll_records);
    for (auto& [tp, f] : work) {
      const RecordBatchView& v = f.view;
      int64_t position;
      {
        absl::MutexLock lock(&mu_);
        auto it = parts_.find(tp);
        if (it == parts_.end()) continue;
        position = it->second.position;
      }
      const int64_t end = v.last_offset() + 1;
      records.clear();
      if (!v.is_control() && end > position) {
        views.clear();
        if (auto s = reader.Read(v, &views); !s.ok()) {
          if (first_error.ok()) {
            first_error = absl::Status(s.code(), absl::StrCat("batch at offset ", v.base_offset(),
                                                              " of ", Name(tp), ": ", s.message()));
          }
        } else {
          records.reserve(views.size());
          for (const auto& rv : views) {
            if (rv.offset < position) continue;
            ConsumerRecord r;
            r.topic = tp.topic;
            r.partition = tp.partition;
            r.offset = rv.offset;
            r.timestamp_ms = rv.timestamp;
            if (rv.key) r.key.emplace(rv.key->data(), rv.key->size());
            if (rv.value) r.value.emplace(rv.value->data(), rv.value->size());
            for (const auto& h : rv.headers) {
              Header hh;
              hh.key.assign(h.key.data(), h.key.size());
              if (h.value) hh.value.emplace(h.value->data(), h.value->size());
              r.headers.push_back(std::move(hh));
            }
            records.push_back(std::move(r));
          }
        }
      }
      absl::MutexLock lock(&mu_);
      auto it = parts_.find(tp);
      if (it == parts_.end()) continue;
      PartitionState& s = it->second;
      size_t room = config_.max_poll_records > out->size() ? config_.max_poll_records - out->size() : 0;
      size_t i = 0;
      for (; i < records.size() && i < room; ++i) {
        s.position = records[i].offset + 1;
        out->push_back(std::move(records[i]));
      }
      if (i < records.size()) {
        for (; i < records.size(); ++i) s.leftover.push_back(std::move(records[i]));
        s.leftover_end = std::max(end, s.leftover_end);
      } else if (s.leftover.empty()) {
        s.position = std::max(s.position, end);
      } else {
        s.leftover_end = std::max(end, s.leftover_end);
      }
    }
    return first_error;
  }

  void WakeFetcher() {
    absl::MutexLock lock(&mu_);
    WakeFetcherLocked();
  }
  void WakeFetcherLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    fetcher_work_ = true;
    fetcher_cv_.Signal();
  }

  void FetcherLoop() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (closed_) return;
      }
      metadata_.MaybeRefresh(kMetadataMaxAge, kRetryBackoff).IgnoreError();
      ResolvePositions();
      SendFetches();
      absl::MutexLock lock(&mu_);
      if (!fetcher_work_ && !closed_) {
        fetcher_cv_.WaitWithTimeout(&mu_, absl::FromChrono(kFetcherTick));
      }
      fetcher_work_ = false;
    }
  }

  void ResolvePositions() {
    std::vector<std::pair<TopicPartition, uint64_t>> committed;
    {
      absl::MutexLock lock(&mu_);
      const auto now = Clock::now();
      for (const auto& [tp, s] : parts_) {
        if (s.position < 0 && s.check_committed && s.retry_at <= now) committed.push_back({tp, s.epoch});
      }
    }
    if (!committed.empty() && !ResolveCommitted(committed).ok()) {
      absl::MutexLock lock(&mu_);
      for (const auto& [tp, epoch] : committed) {
        auto it = parts_.find(tp);
        if (it != parts_.end() && it->second.epoch == epoch) {
          it->second.retry_at = Clock::now() + kRetryBackoff;
        }
      }
    }
    std::vector<std::pair<OffsetQuery, uint64_t>> pending_lookups;
    {
      absl::MutexLock lock(&mu_);
      const auto now = Clock::now();
      for (const auto& [tp, s] : parts_) {
        if (s.position >= 0 || s.check_committed || s.retry_at > now) continue;
        pending_lookups.push_back({OffsetQuery{tp.topic, tp.partition, s.lookup}, s.epoch});
      }
    }
    for (auto& [q, epoch] : pending_lookups) {
      if (Lookup(&q, epoch).ok()) continue;
      absl::MutexLock lock(&mu_);
      auto it = parts_.find(TopicPartition{q.topic, q.partition});
      if (it != parts_.end() && it->second.epoch == epoch) {
        it->second.retry_at = Clock::now() + kRetryBackoff;
        if (!IsRetriable(ToErrorCode(q.status))) it->second.error = q.status;
      }
    }
  }

  void SendFetches() {
    std::map<std::string, FetchRequest> by_leader;
    std::vector<std::pair<TopicPartition, int64_t>> offsets;
    {
      absl::MutexLock lock(&mu_);
      const auto now = Clock::now();
      for (auto& [tp, s] : parts_) {
        if (s.position < 0 || s.paused || s.fetching || s.retry_at > now ||
            s.buffered >= config_.prefetch_bytes) {
          continue;
        }
        auto leader = metadata_.Leader(tp.topic, tp.partition);
        if (!leader.ok()) {
          s.retry_at = now + kRetryBackoff;
          metadata_.Invalidate();
          continue;
        }
        auto& req = by_leader[leader->ToString()];
        req.addr = *leader;
        req.parts.emplace_back(tp, s.epoch);
        s.fetching = true;
      }
    }
    for (auto& [key, req] : by_leader) {
      auto conn = pool_.Get(req.addr);
      proto::FetchRequest header;
      InitFetchHeader(&header);
      {
        absl::MutexLock lock(&mu_);
        for (auto& [tp, epoch] : req.parts) {
          auto it = parts_.find(tp);
          if (it == parts_.end() || it->second.epoch != epoch) continue;
          if (!conn.ok()) {
            it->second.fetching = false;
            it->second.retry_at = Clock::now() + kRetryBackoff;
            continue;
          }
          auto* p = header.add_partitions();
          p->set_topic(tp.topic);
          p->set_partition(tp.partition);
          p->set_fetch_offset(it->second.fetch_offset);
          p->set_max_bytes(static_cast<int32_t>(std::min<size_t>(
              config_.max_partition_fetch_bytes, std::numeric_limits<int32_t>::max())));
          // Not checked: routes from the name servers may lag the leader's
          // epoch; a fetch that reaches a non-leader gets NOT_LEADER instead.
          p->set_current_leader_epoch(-1);
        }
        if (!conn.ok()) {
          metadata_.Invalidate();
          continue;
        }
        ++outstanding_;
      }
      req.conn = *conn;
      StartFetch(std::make_shared<FetchRequest>(std::move(req)), header);
    }
  }

  // On the io thread (the connection's strand).
  void OnFetch(const FetchRequest& req, absl::StatusOr<rpc::Response> r) {
    std::shared_ptr<FetchRequest> next;
    proto::FetchRequest next_header;
    ProcessFetch(req, std::move(r), &next, &next_header);
    if (next != nullptr) StartFetch(std::move(next), next_header);
  }

  void StartFetch(std::shared_ptr<FetchRequest> req, const proto::FetchRequest& header) {
    auto conn = req->conn;
    conn->Call(proto::API_FETCH, 0, header, {}, config_.fetch_max_wait + config_.request_timeout,
               [this, req = std::move(req)](absl::StatusOr<rpc::Response> r) {
                 OnFetch(*req, std::move(r));
               });
  }

  // Fills `header` with the fetch settings (not the partitions).
  void InitFetchHeader(proto::FetchRequest* header) const {
    header->set_max_wait_ms(static_cast<int32_t>(config_.fetch_max_wait.count()));
    header->set_min_bytes(config_.fetch_min_bytes);
    header->set_max_bytes(static_cast<int32_t>(
        std::min<size_t>(config_.fetch_max_bytes, std::numeric_limits<int32_t>::max())));
    header->set_replica_id(-1);
  }

  // Applies a FETCH response. When it succeeded, the partitions it carried
  // that may fetch again at once are put in `*next` (same broker and
  // connection) with their request in `*next_header`: the io thread sends it
  // right away instead of handing over to the fetcher thread and back, which
  // is most of the delay between two fetches of a partition.
  void ProcessFetch(const FetchRequest& req, absl::StatusOr<rpc::Response> r,
                    std::shared_ptr<FetchRequest>* next, proto::FetchRequest* next_header) {
    absl::Status top;
    proto::FetchResponse resp;
    std::shared_ptr<std::vector<uint8_t>> payload;
    if (!r.ok()) {
      top = r.status();
      if (absl::IsUnavailable(top)) pool_.Invalidate(req.conn);
    } else if (!resp.ParseFromString(r->header)) {
      top = MakeError(proto::UNKNOWN, "unparsable FetchResponse");
    } else {
      top = FromErrorCode(resp.error_code(), resp.error_message());
      payload = std::make_shared<std::vector<uint8_t>>(std::move(r->payload));
    }
    bool refresh = false;
    // Poll waits on a Condition over mu_: it wakes when this lock is released.
    absl::MutexLock lock(&mu_);
    const auto now = Clock::now();
    // Byte ranges of each result in the payload.
    std::map<TopicPartition, std::pair<const proto::FetchPartitionResult*, size_t>> results;
    if (top.ok()) {
      size_t off = 0;
      for (const auto& p : resp.partitions()) {
        results[TopicPartition{p.topic(), p.partition()}] = {&p, off};
        off += p.size();
      }
      if (off > payload->size()) top = MakeError(proto::UNKNOWN, "fetch payload is shorter than its sizes");
    }
    for (const auto& [tp, epoch] : req.parts) {
      auto it = parts_.find(tp);
      if (it == parts_.end() || it->second.epoch != epoch) continue;
      PartitionState& s = it->second;
      s.fetching = false;
      absl::Status st = top;
      const proto::FetchPartitionResult* res = nullptr;
      size_t off = 0;
      if (st.ok()) {
        auto rit = results.find(tp);
        if (rit == results.end()) {
          st = MakeError(proto::UNKNOWN, absl::StrCat("no fetch result for ", Name(tp)));
        } else {
          std::tie(res, off) = rit->second;
          st = FromErrorCode(res->error_code(), res->error_message());
        }
      }
      if (!st.ok()) {
        const auto code = ToErrorCode(st);
        if (code == proto::OFFSET_OUT_OF_RANGE) {
          Reset(s);
          s.position = -1;
          s.fetch_offset = -1;
          s.lookup = config_.auto_offset_reset == OffsetReset::kEarliest ? kEarliest : kLatest;
        } else if (IsRetriable(code)) {
          refresh = true;
          s.retry_at = now + kRetryBackoff;
        } else {
          s.error = absl::Status(st.code(), absl::StrCat("fetch of ", Name(tp), ": ", st.message()));
          s.retry_at = now + kRetryBackoff;
        }
        continue;
      }
      std::span<const uint8_t> bytes(payload->data() + off, res->size());
      auto batches = SplitBatches(bytes, /*allow_partial_tail=*/true);
      if (!batches.ok()) {
        s.error = absl::Status(batches.status().code(),
                               absl::StrCat("fetch of ", Name(tp), ": ", batches.status().message()));
        s.retry_at = now + kRetryBackoff;
        continue;
      }
      for (const auto& v : *batches) {
        if (v.last_offset() < s.fetch_offset) continue;
        s.batches.push_back(Fetched{payload, v});
        s.buffered += v.size();
        s.fetch_offset = v.last_offset() + 1;
      }
    }
    if (refresh) metadata_.Invalidate();
    --outstanding_;
    if (top.ok() && !closed_ && req.conn->connected()) {
      auto again = std::make_shared<FetchRequest>();
      again->addr = req.addr;
      again->conn = req.conn;
      for (const auto& [tp, epoch] : req.parts) {
        auto it = parts_.find(tp);
        if (it == parts_.end() || it->second.epoch != epoch) continue;
        PartitionState& s = it->second;
        if (s.position < 0 || s.paused || s.fetching || s.retry_at > now || !s.error.ok() ||
            s.buffered >= config_.prefetch_bytes) {
          continue;
        }
        s.fetching = true;
        again->parts.emplace_back(tp, epoch);
        auto* p = next_header->add_partitions();
        p->set_topic(tp.topic);
        p->set_partition(tp.partition);
        p->set_fetch_offset(s.fetch_offset);
        p->set_max_bytes(static_cast<int32_t>(std::min<size_t>(
            config_.max_partition_fetch_bytes, std::numeric_limits<int32_t>::max())));
        p->set_current_leader_epoch(-1);
      }
      if (!again->parts.empty()) {
        InitFetchHeader(next_header);
        ++outstanding_;
        *next = std::move(again);
      }
    }
    fetcher_work_ = true;
    fetcher_cv_.Signal();
  }

  // ---- Consumer groups: state machine (user thread unless noted) ----

  enum class Mode { kNone, kAssign, kSubscribe };

  // Marks the end of a Poll (for the max_poll_interval check).
  class PollScope {
   public:
    explicit PollScope(ConsumerImpl* c) : c_(c) {}
    ~PollScope() {
      absl::MutexLock lock(&c_->mu_);
      c_->in_poll_ = false;
      c_->last_poll_ = Clock::now();
    }

   private:
    ConsumerImpl* c_;
  };
  enum class JoinPhase { kIdle, kJoining, kSyncing };

  // Who a commit is sent as: a member (generation, member id) or a
  // standalone consumer (generation -1, empty member id).
  struct Identity {
    int32_t generation = -1;
    std::string member_id;
  };
  struct QueuedCommit {
    std::map<TopicPartition, OffsetAndMetadata> offsets;
    Identity id;
    CommitCallback done;  // CommitAsync; run on the user's thread
    absl::Status* result = nullptr;  // CommitSync: written under mu_
    bool* finished = nullptr;
  };

  // A new partition's state (mu_ held). Its epoch is unique over the
  // consumer's life, so a fetch still in flight for an earlier state of the
  // same partition (revoked, then assigned again) is recognised as stale.
  PartitionState NewPartitionState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    PartitionState s;
    s.epoch = (++state_serial_) << 32;
    s.lookup = config_.auto_offset_reset == OffsetReset::kEarliest ? kEarliest : kLatest;
    s.check_committed = !config_.group_id.empty();
    return s;
  }

  static absl::Time ToAbsl(Clock::time_point t) {
    return absl::Now() + absl::FromChrono(t - Clock::now());
  }

  std::chrono::milliseconds RebalanceTimeout() const {
    return std::min<std::chrono::milliseconds>(config_.max_poll_interval,
                                               std::chrono::milliseconds(INT32_MAX));
  }

  absl::Status StartSubscription(std::vector<std::string> topics, std::optional<std::regex> pattern,
                                 RebalanceListener* listener) {
    if (config_.group_id.empty()) {
      return absl::FailedPreconditionError("Subscribe needs a group_id in the consumer config");
    }
    absl::MutexLock lock(&mu_);
    if (closed_) return absl::FailedPreconditionError("the consumer is closed");
    if (mode_ == Mode::kAssign) parts_.clear();
    const bool was_subscribed = mode_ == Mode::kSubscribe;
    mode_ = Mode::kSubscribe;
    topics_ = std::move(topics);
    pattern_ = std::move(pattern);
    matched_topics_.clear();
    listener_ = listener;
    next_metadata_check_ = Clock::time_point{};  // at the next Poll
    last_poll_ = Clock::now();
    next_auto_commit_ = Clock::now() + config_.auto_commit_interval;
    if (was_subscribed) rejoin_needed_ = true;
    return absl::OkStatus();
  }

  // Commits (auto-commit on) and revokes what is owned, leaves the group
  // when `send_leave`, and forgets the subscription.
  void LeaveSubscription(bool send_leave) {
    auto owned = Owned();
    bool joined;
    std::string member_id;
    {
      absl::MutexLock lock(&mu_);
      joined = joined_;
      member_id = member_id_;
    }
    if (joined && config_.enable_auto_commit && !owned.empty()) {
      CommitOwned();
    }
    if (!owned.empty() && listener_ != nullptr) listener_->OnPartitionsRevoked(owned);
    if (send_leave && !member_id.empty()) SendLeave(member_id, "the consumer unsubscribed or closed");
    absl::MutexLock lock(&mu_);
    parts_.clear();
    mode_ = Mode::kNone;
    member_id_.clear();
    generation_ = -1;
    protocol_.clear();
    joined_ = false;
    rejoin_needed_ = false;
    lost_ = false;
    phase_ = JoinPhase::kIdle;
    pending_.reset();
    topics_.clear();
    pattern_.reset();
    matched_topics_.clear();
    listener_ = nullptr;
    last_assigned_.clear();
    snapshot_.clear();
    current_snapshot_.clear();
    have_snapshot_ = false;
  }

  void SendLeave(const std::string& member_id, const std::string& reason) {
    proto::LeaveGroupRequest req;
    req.set_group_id(config_.group_id);
    auto* m = req.add_members();
    m->set_member_id(member_id);
    if (config_.group_instance_id) m->set_group_instance_id(*config_.group_instance_id);
    m->set_reason(reason);
    proto::LeaveGroupResponse resp;
    rpc_.Call(proto::API_LEAVE_GROUP, req, &resp,
              absl::Now() + absl::FromChrono(std::min(config_.request_timeout,
                                                      std::chrono::milliseconds(5000))))
        .IgnoreError();  // the session expires anyway
  }

  std::vector<TopicPartition> Owned() const {
    absl::MutexLock lock(&mu_);
    std::vector<TopicPartition> out;
    for (const auto& [tp, s] : parts_) out.push_back(tp);
    return out;
  }

  std::map<TopicPartition, OffsetAndMetadata> Positions() const {
    absl::MutexLock lock(&mu_);
    std::map<TopicPartition, OffsetAndMetadata> out;
    for (const auto& [tp, s] : parts_) {
      if (s.position >= 0) out[tp] = OffsetAndMetadata{s.position, "", -1};
    }
    return out;
  }

  absl::Status SetPaused(const std::vector<TopicPartition>& tps, bool paused) {
    absl::MutexLock lock(&mu_);
    for (const auto& tp : tps) {
      if (!parts_.contains(tp)) return NotAssigned(tp);
    }
    for (const auto& tp : tps) parts_[tp].paused = paused;
    WakeFetcherLocked();
    return absl::OkStatus();
  }

  absl::StatusOr<Identity> CommitIdentity() const {
    if (config_.group_id.empty()) {
      return absl::FailedPreconditionError("commits need a group_id in the consumer config");
    }
    absl::MutexLock lock(&mu_);
    if (closed_ || group_stop_) return absl::FailedPreconditionError("the consumer is closed");
    if (mode_ != Mode::kSubscribe) return Identity{};
    if (!joined_ || generation_ < 0 || member_id_.empty()) {
      return MakeError(proto::REBALANCE_IN_PROGRESS, "the member has not joined the group yet");
    }
    return Identity{generation_, member_id_};
  }

  // Commits the positions of the owned partitions and waits (auto-commit
  // before a revocation or rejoin); failures are left to the next commit.
  void CommitOwned() { CommitSync(Positions()).IgnoreError(); }

  void RunCommitCallbacks() {
    std::deque<std::pair<CommitCallback, absl::Status>> done;
    {
      absl::MutexLock lock(&mu_);
      done.swap(completed_);
    }
    for (auto& [cb, status] : done) cb(status);
  }

  // The committer thread: sends queued commits one at a time, in order (so a
  // CommitSync never overtakes an earlier CommitAsync).
  void CommitLoop() {
    absl::MutexLock lock(&mu_);
    while (true) {
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !commits_.empty() || group_stop_;
      };
      mu_.Await(absl::Condition(&ready));
      if (commits_.empty()) return;  // stopping and drained
      QueuedCommit c = std::move(commits_.front());
      commits_.pop_front();
      mu_.Unlock();
      absl::Status s = SendCommit(c.offsets, c.id);
      mu_.Lock();
      if (c.finished != nullptr) {
        *c.result = s;
        *c.finished = true;
      } else if (c.done) {
        completed_.emplace_back(std::move(c.done), s);
      }
    }
  }

  // On the committer thread.
  absl::Status SendCommit(const std::map<TopicPartition, OffsetAndMetadata>& offsets,
                          const Identity& id) {
    if (offsets.empty()) return absl::OkStatus();
    proto::OffsetCommitRequest req;
    req.set_group_id(config_.group_id);
    req.set_generation_id(id.generation);
    req.set_member_id(id.member_id);
    if (id.generation >= 0 && config_.group_instance_id) {
      req.set_group_instance_id(*config_.group_instance_id);
    }
    for (const auto& [tp, om] : offsets) {
      auto* p = req.add_partitions();
      p->set_topic(tp.topic);
      p->set_partition(tp.partition);
      p->set_offset(om.offset);
      p->set_leader_epoch(om.leader_epoch);
      p->set_metadata(om.metadata);
    }
    proto::OffsetCommitResponse resp;
    absl::Status s = rpc_.Call(proto::API_OFFSET_COMMIT, req, &resp,
                               absl::Now() + absl::FromChrono(config_.request_timeout));
    if (s.ok()) {
      for (const auto& p : resp.partitions()) {
        if (p.error_code() != proto::NONE) {
          s = FromErrorCode(p.error_code(), absl::StrCat("commit of ", p.topic(), "-", p.partition(),
                                                         ": ", p.error_message()));
          break;
        }
      }
    }
    if (!s.ok() && id.generation >= 0) {
      const auto action = group::ClassifyGroupError(ToErrorCode(s));
      absl::MutexLock lock(&mu_);
      if (generation_ == id.generation && member_id_ == id.member_id && joined_) {
        if (action == group::ErrorAction::kRejoin) rejoin_needed_ = true;
        if (action == group::ErrorAction::kLostRejoin || action == group::ErrorAction::kLostReset) {
          MarkLostLocked(action == group::ErrorAction::kLostReset);
        }
      }
    }
    return s;
  }

  absl::StatusOr<std::map<TopicPartition, OffsetAndMetadata>> FetchCommitted(
      const std::vector<TopicPartition>& partitions) {
    std::map<TopicPartition, OffsetAndMetadata> out;
    if (partitions.empty()) return out;
    proto::OffsetFetchRequest req;
    req.set_group_id(config_.group_id);
    for (const auto& tp : partitions) {
      auto* p = req.add_partitions();
      p->set_topic(tp.topic);
      p->set_partition(tp.partition);
    }
    proto::OffsetFetchResponse resp;
    absl::Status s = rpc_.Call(proto::API_OFFSET_FETCH, req, &resp,
                               absl::Now() + absl::FromChrono(config_.request_timeout));
    if (!s.ok()) return s;
    for (const auto& p : resp.partitions()) {
      if (p.error_code() != proto::NONE) {
        return FromErrorCode(p.error_code(), absl::StrCat("committed offset of ", p.topic(), "-",
                                                          p.partition(), ": ", p.error_message()));
      }
      if (p.offset() >= 0) {
        out[TopicPartition{p.topic(), p.partition()}] =
            OffsetAndMetadata{p.offset(), p.metadata(), p.leader_epoch()};
      }
    }
    return out;
  }

  // Starts partitions whose position is unknown at the group's committed
  // offset (or falls back to their reset lookup when none is committed),
  // unless they were seeked meanwhile. Blocking; fetcher or user thread.
  absl::Status ResolveCommitted(const std::vector<std::pair<TopicPartition, uint64_t>>& parts) {
    std::vector<TopicPartition> tps;
    for (const auto& [tp, epoch] : parts) tps.push_back(tp);
    auto committed = FetchCommitted(tps);
    if (!committed.ok()) return committed.status();
    absl::MutexLock lock(&mu_);
    for (const auto& [tp, epoch] : parts) {
      auto it = parts_.find(tp);
      if (it == parts_.end() || it->second.epoch != epoch || it->second.position >= 0) continue;
      it->second.check_committed = false;
      auto c = committed->find(tp);
      if (c != committed->end()) {
        it->second.position = c->second.offset;
        it->second.fetch_offset = c->second.offset;
      }
    }
    WakeFetcherLocked();
    return absl::OkStatus();
  }

  // The partition counts of `topics` (every topic when empty) from the name
  // servers; topics they do not know are left out.
  absl::StatusOr<group::TopicSnapshot> ClusterTopics(const std::vector<std::string>& topics) {
    proto::MetadataRequest req;
    for (const auto& t : topics) req.add_topics(t);
    absl::Status last = absl::UnavailableError("no name server answered");
    for (const auto& ns : nameservers_) {
      auto conn = pool_.Get(ns);
      if (!conn.ok()) {
        last = conn.status();
        continue;
      }
      proto::MetadataResponse resp;
      auto r = (*conn)->CallSync(proto::API_METADATA, 0, req, {}, &resp, config_.request_timeout);
      if (!r.ok()) {
        last = r.status();
        if (absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last)) pool_.Invalidate(*conn);
        continue;
      }
      group::TopicSnapshot out;
      for (const auto& t : resp.topics()) {
        if (t.error_code() == proto::NONE && t.partitions_size() > 0) {
          out[t.topic()] = t.partitions_size();
        }
      }
      return out;
    }
    return last;
  }

  // Re-reads the subscription's topics; a change since the last join
  // (pattern matches, partition counts) requires a rebalance.
  void CheckMetadata() {
    std::optional<std::regex> pattern;
    std::vector<std::string> topics;
    {
      absl::MutexLock lock(&mu_);
      pattern = pattern_;
      topics = topics_;
    }
    auto counts = ClusterTopics(pattern ? std::vector<std::string>{} : topics);
    absl::MutexLock lock(&mu_);
    if (!counts.ok()) {
      next_metadata_check_ =
          Clock::now() + std::min<std::chrono::milliseconds>(config_.metadata_max_age, std::chrono::seconds(1));
      return;
    }
    group::TopicSnapshot snap;
    if (pattern) {
      std::vector<std::string> all;
      for (const auto& [t, n] : *counts) all.push_back(t);
      for (const auto& t : group::MatchTopics(*pattern, all)) snap[t] = (*counts)[t];
      matched_topics_.clear();
      for (const auto& [t, n] : snap) matched_topics_.push_back(t);
    } else {
      for (const auto& t : topics) {
        auto it = counts->find(t);
        if (it != counts->end()) snap[t] = it->second;
      }
    }
    current_snapshot_ = std::move(snap);
    have_snapshot_ = true;
    if (joined_ && current_snapshot_ != snapshot_) rejoin_needed_ = true;
    next_metadata_check_ = Clock::now() + config_.metadata_max_age;
  }

  // When the next auto-commit or metadata check is due.
  absl::Time NextGroupWork() {
    absl::MutexLock lock(&mu_);
    Clock::time_point t = next_metadata_check_;
    if (config_.enable_auto_commit) t = std::min(t, next_auto_commit_);
    return ToAbsl(t);
  }

  void MaybeAutoCommit() {
    {
      absl::MutexLock lock(&mu_);
      if (!config_.enable_auto_commit || !joined_ || Clock::now() < next_auto_commit_) return;
      next_auto_commit_ = Clock::now() + config_.auto_commit_interval;
    }
    CommitAsync(nullptr);
  }

  // Marks the owned partitions lost (the member was fenced or expired): the
  // next MaintainGroup tells the listener and rejoins.
  void MarkLostLocked(bool reset_member_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    lost_ = true;
    joined_ = false;
    rejoin_needed_ = true;
    generation_ = -1;
    if (reset_member_id) member_id_.clear();
  }

  void HandleLost() {
    std::vector<TopicPartition> lost;
    {
      absl::MutexLock lock(&mu_);
      if (!lost_) return;
      lost_ = false;
      for (const auto& [tp, s] : parts_) lost.push_back(tp);
      parts_.clear();
      last_assigned_.clear();
    }
    if (!lost.empty() && listener_ != nullptr) listener_->OnPartitionsLost(lost);
  }

  // Runs the join / sync steps until the member is in a stable generation
  // or `deadline` passes (at least one step is taken). Errors are fatal
  // (configuration); transient failures are retried.
  absl::Status MaintainGroup(absl::Time deadline) {
    HandleLost();
    bool check;
    {
      absl::MutexLock lock(&mu_);
      check = Clock::now() >= next_metadata_check_;
    }
    if (check) CheckMetadata();
    bool first = true;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (joined_ && !rejoin_needed_ && !lost_) return absl::OkStatus();
      }
      if (!first && absl::Now() >= deadline) return absl::OkStatus();
      first = false;
      HandleLost();
      absl::Status s;
      switch (phase_) {
        case JoinPhase::kIdle: s = SendJoin(); break;
        case JoinPhase::kJoining: s = AwaitJoin(deadline); break;
        case JoinPhase::kSyncing: s = AwaitSync(deadline); break;
      }
      if (!s.ok()) return s;
    }
  }

  // Sleeps a little after a failed attempt (not past `deadline`).
  static void Backoff(absl::Time deadline) {
    absl::SleepFor(std::clamp(deadline - absl::Now(), absl::ZeroDuration(), absl::Milliseconds(100)));
  }

  absl::Status SendJoin() {
    const bool cooperative = choice_.protocol == RebalanceProtocol::kCooperative;
    auto owned = Owned();
    bool joined, have_snapshot;
    {
      absl::MutexLock lock(&mu_);
      joined = joined_;
      have_snapshot = have_snapshot_;
    }
    if (!have_snapshot) CheckMetadata();
    if (!owned.empty() && joined && config_.enable_auto_commit) CommitOwned();
    if (!cooperative && !owned.empty()) {
      // Eager: everything is given up before joining.
      if (listener_ != nullptr) listener_->OnPartitionsRevoked(owned);
      absl::MutexLock lock(&mu_);
      parts_.clear();
      owned.clear();
    }
    proto::JoinGroupRequest req;
    {
      absl::MutexLock lock(&mu_);
      joined_ = false;
      rejoin_needed_ = false;
      snapshot_ = current_snapshot_;
      std::vector<std::string> topics;
      for (const auto& [t, n] : current_snapshot_) topics.push_back(t);
      if (!pattern_) topics = topics_;  // topics that do not exist yet too
      // Eager members report their last assignment (already revoked) for
      // the sticky assignor; cooperative ones what they still own.
      const auto& mine = cooperative ? owned : last_assigned_;
      req.set_group_id(config_.group_id);
      req.set_session_timeout_ms(static_cast<int32_t>(config_.session_timeout.count()));
      req.set_rebalance_timeout_ms(static_cast<int32_t>(RebalanceTimeout().count()));
      req.set_member_id(member_id_);
      if (config_.group_instance_id) req.set_group_instance_id(*config_.group_instance_id);
      req.set_protocol_type(group::kProtocolType);
      req.set_client_id(config_.client_id);
      for (const auto& name : choice_.advertised) {
        // Range and round-robin ignore ownership: leaving it out keeps the
        // metadata of a restarted static member identical (no rebalance).
        const bool sticky = name == "sticky" || name == "cooperative-sticky";
        auto* p = req.add_protocols();
        p->set_name(name);
        p->set_metadata(group::EncodeSubscription(
            topics, sticky ? mine : std::vector<TopicPartition>{}, assigned_generation_, ""));
      }
    }
    pending_ = rpc_.Start(proto::API_JOIN_GROUP, req, RebalanceTimeout() + config_.request_timeout);
    phase_ = JoinPhase::kJoining;
    return absl::OkStatus();
  }

  absl::Status HandleGroupError(const absl::Status& s, absl::Time deadline) {
    switch (group::ClassifyGroupError(ToErrorCode(s))) {
      case group::ErrorAction::kNone:
      case group::ErrorAction::kRejoin: return absl::OkStatus();
      case group::ErrorAction::kLostRejoin: {
        absl::MutexLock lock(&mu_);
        MarkLostLocked(false);
        return absl::OkStatus();
      }
      case group::ErrorAction::kLostReset: {
        absl::MutexLock lock(&mu_);
        MarkLostLocked(true);
        return absl::OkStatus();
      }
      case group::ErrorAction::kRetry:
        Backoff(deadline);
        return absl::OkStatus();
      case group::ErrorAction::kFatal: return s;
    }
    return s;
  }

  absl::Status AwaitJoin(absl::Time deadline) {
    if (!pending_->Wait(deadline)) return absl::OkStatus();
    proto::JoinGroupResponse resp;
    absl::Status s = pending_->Result(&resp);
    const bool answered = rpc_.Settle(*pending_, s);
    pending_.reset();
    phase_ = JoinPhase::kIdle;
    if (!answered) {
      Backoff(deadline);
      return absl::OkStatus();
    }
    const auto code = ToErrorCode(s);
    if (code == proto::MEMBER_ID_REQUIRED) {
      absl::MutexLock lock(&mu_);
      member_id_ = resp.member_id();
      return absl::OkStatus();
    }
    if (!s.ok()) return HandleGroupError(s, deadline);
    {
      absl::MutexLock lock(&mu_);
      member_id_ = resp.member_id();
    }
    join_generation_ = resp.generation_id();
    join_protocol_ = resp.protocol_name();
    proto::SyncGroupRequest req;
    req.set_group_id(config_.group_id);
    req.set_generation_id(resp.generation_id());
    req.set_member_id(resp.member_id());
    if (config_.group_instance_id) req.set_group_instance_id(*config_.group_instance_id);
    req.set_protocol_type(group::kProtocolType);
    req.set_protocol_name(resp.protocol_name());
    if (resp.leader() == resp.member_id()) {
      std::vector<proto::JoinGroupMember> members(resp.members().begin(), resp.members().end());
      auto assignment = LeaderAssignment(resp.protocol_name(), members);
      if (!assignment.ok()) {
        if (absl::IsInvalidArgument(assignment.status()) || absl::IsNotFound(assignment.status())) {
          return assignment.status();
        }
        // Metadata unavailable: join again (the group waits for the leader).
        Backoff(deadline);
        return absl::OkStatus();
      }
      for (auto& [member, bytes] : *assignment) {
        auto* a = req.add_assignments();
        a->set_member_id(member);
        a->set_assignment(std::move(bytes));
      }
    }
    pending_ = rpc_.Start(proto::API_SYNC_GROUP, req, RebalanceTimeout() + config_.request_timeout);
    phase_ = JoinPhase::kSyncing;
    return absl::OkStatus();
  }

  absl::StatusOr<std::map<std::string, std::string>> LeaderAssignment(
      const std::string& protocol, const std::vector<proto::JoinGroupMember>& members) {
    auto assignor = MakeAssignor(protocol);
    if (!assignor.ok()) return assignor.status();
    ClusterView cluster;
    const auto topics = group::SubscribedTopics(members);
    if (!topics.empty()) {
      auto counts = ClusterTopics(topics);
      if (!counts.ok()) return counts.status();
      cluster.partition_counts = *std::move(counts);
    }
    return group::LeaderAssign(**assignor, members, cluster);
  }

  absl::Status AwaitSync(absl::Time deadline) {
    if (!pending_->Wait(deadline)) return absl::OkStatus();
    proto::SyncGroupResponse resp;
    absl::Status s = pending_->Result(&resp);
    const bool answered = rpc_.Settle(*pending_, s);
    pending_.reset();
    phase_ = JoinPhase::kIdle;
    if (!answered) {
      Backoff(deadline);
      return absl::OkStatus();
    }
    if (!s.ok()) return HandleGroupError(s, deadline);
    auto assignment = group::DecodeAssignment(resp.assignment());
    if (!assignment.ok()) return assignment.status();
    auto change = group::DiffAssignment(Owned(), assignment->partitions, choice_.protocol);
    std::vector<std::string> topics;
    {
      absl::MutexLock lock(&mu_);
      generation_ = join_generation_;
      assigned_generation_ = join_generation_;
      protocol_ = join_protocol_;
      joined_ = true;
      if (change.rejoin) rejoin_needed_ = true;
      last_assigned_ = assignment->partitions;
      next_heartbeat_ = Clock::now() + config_.heartbeat_interval;
      heartbeat_cv_.Signal();
    }
    // Cooperative: only what moved is revoked; its position was committed
    // before the join (the coordinator accepts commits only for partitions
    // of the member's current assignment).
    if (!change.revoked.empty()) {
      if (listener_ != nullptr) listener_->OnPartitionsRevoked(change.revoked);
      absl::MutexLock lock(&mu_);
      for (const auto& tp : change.revoked) parts_.erase(tp);
    }
    {
      absl::MutexLock lock(&mu_);
      for (const auto& tp : change.added) {
        parts_.emplace(tp, NewPartitionState());
        if (topics.empty() || topics.back() != tp.topic) topics.push_back(tp.topic);
      }
      WakeFetcherLocked();
    }
    if (!topics.empty()) metadata_.Track(topics);
    if (listener_ != nullptr) listener_->OnPartitionsAssigned(change.added);
    return absl::OkStatus();
  }

  // The heartbeat thread: heartbeats every heartbeat_interval while the
  // member is in a stable generation, flags a rejoin or lost partitions from
  // the answer, and leaves the group when Poll was not called within
  // max_poll_interval.
  void HeartbeatLoop() {
    absl::MutexLock lock(&mu_);
    while (!group_stop_) {
      const auto now = Clock::now();
      if (mode_ != Mode::kSubscribe || !joined_) {
        heartbeat_cv_.WaitWithTimeout(&mu_, absl::FromChrono(config_.heartbeat_interval));
        continue;
      }
      if (in_poll_) last_poll_ = now;  // busy inside Poll (joining, callbacks) counts as polling
      if (now - last_poll_ > config_.max_poll_interval) {
        const std::string member_id = member_id_;
        const bool is_static = config_.group_instance_id.has_value();
        MarkLostLocked(!is_static);
        if (!is_static) {
          mu_.Unlock();
          SendLeave(member_id, "max_poll_interval exceeded");
          mu_.Lock();
        }
        continue;
      }
      if (now < next_heartbeat_) {
        const auto until = std::min(next_heartbeat_, last_poll_ + config_.max_poll_interval +
                                                         std::chrono::milliseconds(1));
        heartbeat_cv_.WaitWithTimeout(&mu_, absl::FromChrono(until - now));
        continue;
      }
      proto::HeartbeatRequest req;
      req.set_group_id(config_.group_id);
      req.set_generation_id(generation_);
      req.set_member_id(member_id_);
      if (config_.group_instance_id) req.set_group_instance_id(*config_.group_instance_id);
      const int32_t generation = generation_;
      const std::string member_id = member_id_;
      next_heartbeat_ = now + config_.heartbeat_interval;
      mu_.Unlock();
      proto::HeartbeatResponse resp;
      const auto wait = std::min(config_.session_timeout, config_.request_timeout);
      absl::Status s = rpc_.Call(proto::API_HEARTBEAT, req, &resp, absl::Now() + absl::FromChrono(wait),
                                 std::min(wait, CoordinatorClient::kAttemptTimeout));
      mu_.Lock();
      if (!joined_ || generation_ != generation || member_id_ != member_id) continue;  // stale
      switch (group::ClassifyGroupError(ToErrorCode(s))) {
        case group::ErrorAction::kRejoin: rejoin_needed_ = true; break;
        case group::ErrorAction::kLostRejoin: MarkLostLocked(false); break;
        case group::ErrorAction::kLostReset: MarkLostLocked(true); break;
        case group::ErrorAction::kRetry:
          // Try again soon: the session must not lapse over a coordinator move.
          next_heartbeat_ = std::min(next_heartbeat_, Clock::now() + kRetryBackoff * 5);
          break;
        default: break;
      }
    }
  }


  const ConsumerConfig config_;
  const std::vector<HostPort> nameservers_;
  const group::ProtocolChoice choice_;
  std::unique_ptr<rpc::IoThread> io_;  // reset by Close after the fetcher stopped
  ConnectionPool pool_;
  MetadataCache metadata_;
  group::GroupRpc rpc_;
  std::thread fetcher_;
  std::thread heartbeat_;  // HeartbeatLoop
  std::thread committer_;  // CommitLoop

  mutable absl::Mutex mu_;
  absl::CondVar fetcher_cv_;
  bool fetcher_work_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // FETCH requests not yet answered
  size_t rr_start_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<TopicPartition, PartitionState> parts_ ABSL_GUARDED_BY(mu_);

  // ---- Consumer groups ----
  bool close_started_ = false;  // user thread
  uint64_t state_serial_ ABSL_GUARDED_BY(mu_) = 0;  // see NewPartitionState
  bool in_poll_ ABSL_GUARDED_BY(mu_) = false;      // the user's thread is inside Poll
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kNone;
  // Subscription: explicit topics, or a pattern and the topics it matches.
  std::vector<std::string> topics_ ABSL_GUARDED_BY(mu_);
  std::optional<std::regex> pattern_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> matched_topics_ ABSL_GUARDED_BY(mu_);
  RebalanceListener* listener_ = nullptr;  // user thread (set under mu_)
  // The subscription's topics and partition counts: at the last join, and
  // as last read from the name servers.
  group::TopicSnapshot snapshot_ ABSL_GUARDED_BY(mu_);
  group::TopicSnapshot current_snapshot_ ABSL_GUARDED_BY(mu_);
  bool have_snapshot_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point next_metadata_check_ ABSL_GUARDED_BY(mu_){};
  Clock::time_point next_auto_commit_ ABSL_GUARDED_BY(mu_){};
  Clock::time_point last_poll_ ABSL_GUARDED_BY(mu_){};
  Clock::time_point next_heartbeat_ ABSL_GUARDED_BY(mu_){};
  // Membership.
  std::string member_id_ ABSL_GUARDED_BY(mu_);
  int32_t generation_ ABSL_GUARDED_BY(mu_) = -1;
  int32_t assigned_generation_ ABSL_GUARDED_BY(mu_) = -1;  // of last_assigned_
  std::string protocol_ ABSL_GUARDED_BY(mu_);
  std::vector<TopicPartition> last_assigned_ ABSL_GUARDED_BY(mu_);
  bool joined_ ABSL_GUARDED_BY(mu_) = false;         // in a stable generation
  bool rejoin_needed_ ABSL_GUARDED_BY(mu_) = false;  // rejoin in the next Poll
  bool lost_ ABSL_GUARDED_BY(mu_) = false;           // owned partitions are lost
  // The join in progress (user thread only).
  JoinPhase phase_ = JoinPhase::kIdle;
  std::shared_ptr<group::PendingCall> pending_;
  int32_t join_generation_ = -1;
  std::string join_protocol_;
  // Commits: queued for the committer thread, and finished CommitAsync
  // callbacks waiting for the user's thread.
  std::deque<QueuedCommit> commits_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<CommitCallback, absl::Status>> completed_ ABSL_GUARDED_BY(mu_);
  bool group_stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar heartbeat_cv_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Consumer>> Consumer::Create(ConsumerConfig config) {
  auto ns = ParseNameservers(config.nameservers);
  if (!ns.ok()) return ns.status();
  if (config.max_poll_records == 0 || config.max_partition_fetch_bytes == 0 ||
      config.fetch_max_bytes == 0 || config.prefetch_bytes == 0) {
    return absl::InvalidArgumentError(
        "max_poll_records, fetch sizes and prefetch_bytes must be > 0");
  }
  if (config.fetch_max_wait.count() < 0 || config.request_timeout.count() <= 0) {
    return absl::InvalidArgumentError("invalid consumer timing configuration");
  }
  auto choice = group::ChooseProtocol(config.assignors);
  if (!choice.ok()) return choice.status();
  if (config.session_timeout.count() <= 0 || config.heartbeat_interval.count() <= 0 ||
      config.max_poll_interval.count() <= 0 || config.auto_commit_interval.count() <= 0 ||
      config.metadata_max_age.count() <= 0) {
    return absl::InvalidArgumentError("invalid consumer group timing configuration");
  }
  return std::unique_ptr<Consumer>(
      new ConsumerImpl(std::move(config), *std::move(ns), *std::move(choice)));
}

}  // namespace brook::client
