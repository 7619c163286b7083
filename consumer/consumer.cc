// Consumer: a fetcher thread keeps a bounded prefetch of record batches per
// assigned partition with long-poll FETCH requests to each leader; Poll
// decodes prefetched batches on the caller's thread.
//
// Threads: the user's thread (every public method); the fetcher thread
// (position look-ups and routing, which may block); the IoThread (FETCH
// completions, which only store batches and wake Poll).
#include "brook/consumer.h"

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <map>
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
};

rpc::ClientOptions ClientOptionsFor(const ConsumerConfig& c) {
  rpc::ClientOptions o;
  o.connect_timeout = std::min(c.request_timeout, std::chrono::milliseconds(5000));
  return o;
}

std::string Name(const TopicPartition& tp) { return absl::StrCat(tp.topic, "-", tp.partition); }

class ConsumerImpl final : public Consumer {
 public:
  ConsumerImpl(ConsumerConfig config, std::vector<HostPort> nameservers)
      : config_(std::move(config)),
        io_(std::make_unique<rpc::IoThread>()),
        pool_(io_->io(), ClientOptionsFor(config_)),
        metadata_(&pool_, std::move(nameservers), config_.request_timeout) {
    fetcher_ = std::thread([this] { FetcherLoop(); });
  }
  ~ConsumerImpl() override { Close(); }

  absl::Status Assign(const std::vector<TopicPartition>& partitions) override {
    std::vector<std::string> topics;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return absl::FailedPreconditionError("the consumer is closed");
      std::map<TopicPartition, PartitionState> next;
      for (const auto& tp : partitions) {
        if (tp.partition < 0) {
          return absl::InvalidArgumentError(absl::StrCat("bad partition ", Name(tp)));
        }
        auto it = parts_.find(tp);
        if (it != parts_.end()) {
          next.emplace(tp, std::move(it->second));
        } else {
          PartitionState s;
          s.lookup = config_.auto_offset_reset == OffsetReset::kEarliest ? kEarliest : kLatest;
          next.emplace(tp, std::move(s));
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
      {
        absl::MutexLock lock(&mu_);
        auto it = parts_.find(tp);
        if (it == parts_.end()) return NotAssigned(tp);
        if (it->second.position >= 0) return it->second.position;
        q.topic = tp.topic;
        q.partition = tp.partition;
        q.timestamp = it->second.lookup;
        epoch = it->second.epoch;
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
    std::vector<ConsumerRecord> out;
    while (true) {
      // Take prefetched batches (and leftovers) under the lock; decode outside.
      std::vector<std::pair<TopicPartition, Fetched>> work;
      {
        absl::MutexLock lock(&mu_);
        if (closed_) return absl::FailedPreconditionError("the consumer is closed");
        auto has_data = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          for (const auto& [tp, s] : parts_) {
            if (!s.batches.empty() || !s.leftover.empty() || !s.error.ok()) return true;
          }
          return false;
        };
        mu_.AwaitWithDeadline(absl::Condition(&has_data), deadline);
        if (parts_.empty()) return out;
        // Round-robin over partitions so that one busy partition does not
        // starve the others.
        std::vector<std::map<TopicPartition, PartitionState>::iterator> order;
        for (auto it = parts_.begin(); it != parts_.end(); ++it) order.push_back(it);
        const size_t start = rr_start_++ % order.size();
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
    return metadata_.WaitForPartitionCount(topic, Clock::now() + config_.request_timeout,
                                           kRetryBackoff, std::chrono::milliseconds(1000));
  }

  void Close() override {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
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
    std::vector<std::pair<OffsetQuery, uint64_t>> pending_lookups;
    {
      absl::MutexLock lock(&mu_);
      const auto now = Clock::now();
      for (const auto& [tp, s] : parts_) {
        if (s.position >= 0 || s.retry_at > now) continue;
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
        if (s.position < 0 || s.fetching || s.retry_at > now || s.buffered >= config_.prefetch_bytes) {
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
        if (s.position < 0 || s.fetching || s.retry_at > now || !s.error.ok() ||
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

  const ConsumerConfig config_;
  std::unique_ptr<rpc::IoThread> io_;  // reset by Close after the fetcher stopped
  ConnectionPool pool_;
  MetadataCache metadata_;
  std::thread fetcher_;

  mutable absl::Mutex mu_;
  absl::CondVar fetcher_cv_;
  bool fetcher_work_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // FETCH requests not yet answered
  size_t rr_start_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<TopicPartition, PartitionState> parts_ ABSL_GUARDED_BY(mu_);
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
  return std::unique_ptr<Consumer>(new ConsumerImpl(std::move(config), *std::move(ns)));
}

}  // namespace brook::client
