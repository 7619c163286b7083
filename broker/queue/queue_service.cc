// QueueService: request handling, log reading, long-poll, journaling, dead
// letters and floor commits for queue subscriptions (see queue_service.h).
//
// Locking: Impl::load_mu_ (serializes loading subscriptions) before
// Impl::mu_ (the subscription map); a Sub's mu is never held together with
// either, and nothing that may call back into the service (partition
// waiters, the syncer, the dead-letter sink) is called while holding one.
#include "broker/queue/queue_service.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "broker/queue/journal.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "spdlog/spdlog.h"

namespace brook::queue {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kDefaultMaxRecords = 500;
constexpr int64_t kDefaultMaxBytes = 1 << 20;
constexpr size_t kReadChunk = 1 << 20;
constexpr auto kCoordinatorTimeout = std::chrono::milliseconds(2000);
constexpr int64_t kLeadershipCheckMs = 1000;

struct SubKey {
  std::string topic;
  int32_t partition = 0;
  std::string group;
  bool operator==(const SubKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const SubKey& k) {
    return H::combine(std::move(h), k.topic, k.partition, k.group);
  }
};

std::string Hex(const std::string& s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::optional<std::string_view> HeaderValue(const RecordView& r, std::string_view key) {
  for (const auto& h : r.headers) {
    if (h.key == key) return h.value;
  }
  return std::nullopt;
}

int64_t ParseDeliverAt(std::optional<std::string_view> v) {
  if (!v.has_value()) return 0;
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || ptr != v->data() + v->size() || out < 0) return 0;
  return out;
}

uint32_t RecordSize(const RecordView& r) {
  size_t n = 24 + (r.key ? r.key->size() : 0) + (r.value ? r.value->size() : 0);
  for (const auto& h : r.headers) n += h.key.size() + (h.value ? h.value->size() : 0) + 4;
  return static_cast<uint32_t>(std::min<size_t>(n, UINT32_MAX));
}

}  // namespace

struct ReceiveSession;

// One loaded subscription. `mu` guards the state machine and journal.
struct Sub {
  SubKey key;
  std::shared_ptr<PartitionView> view;  // fixed at load
  std::string topic_id;
  int32_t epoch = 0;
  absl::Mutex mu;
  std::unique_ptr<Subscription> sm ABSL_GUARDED_BY(mu);
  std::shared_ptr<Journal> journal ABSL_GUARDED_BY(mu);
  bool dropped ABSL_GUARDED_BY(mu) = false;
  bool hw_armed ABSL_GUARDED_BY(mu) = false;
  int64_t committed_floor ABSL_GUARDED_BY(mu) = -1;
  std::vector<std::weak_ptr<ReceiveSession>> waiters ABSL_GUARDED_BY(mu);
};

// One receive request, possibly parked. Every step runs on `strand`.
struct ReceiveSession {
  ReceiveSession(boost::asio::io_context& io, rpc::Request r)
      : req(std::move(r)), strand(boost::asio::make_strand(io)), timer(strand) {}
  rpc::Request req;
  proto::QueueReceiveRequest r;
  QueueConfig config;
  TagFilter filter;
  std::vector<int32_t> partitions;
  int max_records = kDefaultMaxRecords;
  int64_t max_bytes = kDefaultMaxBytes;
  Clock::time_point start = Clock::now();
  Clock::time_point deadline;
  boost::asio::strand<boost::asio::io_context::executor_type> strand;
  boost::asio::steady_timer timer;
  bool done = false;
  bool parked = false;
  std::atomic<bool> rerun_queued{false};
  // A subscription creation failed (set on the strand): answered as a
  // partition error instead of trying again.
  absl::Status create_error;
};

struct QueueService::Impl : std::enable_shared_from_this<QueueService::Impl> {
  Impl(boost::asio::io_context& i, storage::FileSystem* f, QueueHost* h,
       std::unique_ptr<DeadLetterSink> d, QueueServiceOptions o)
      : io(i), fs(f), host(h), dead_letters(std::move(d)), options(std::move(o)) {}

  boost::asio::io_context& io;
  storage::FileSystem* const fs;
  QueueHost* const host;
  std::unique_ptr<DeadLetterSink> dead_letters;
  const QueueServiceOptions options;
  JournalSyncer syncer;

  std::atomic<bool> stopping{false};
  std::atomic<bool> started{false};
  std::thread worker;

  absl::Mutex load_mu;
  mutable absl::Mutex mu;
  absl::flat_hash_map<SubKey, std::shared_ptr<Sub>> subs ABSL_GUARDED_BY(mu);
  // Subscriptions being created on the worker, with the callbacks to run then.
  absl::flat_hash_map<SubKey, std::vector<std::function<void(absl::Status)>>> creating
      ABSL_GUARDED_BY(mu);
  std::deque<std::function<void()>> tasks ABSL_GUARDED_BY(mu);
  bool stop_worker ABSL_GUARDED_BY(mu) = false;

  absl::Mutex parked_mu;
  std::set<std::shared_ptr<ReceiveSession>> parked ABSL_GUARDED_BY(parked_mu);

  int64_t Now() const {
    return options.now_ms ? options.now_ms() : absl::ToUnixMillis(absl::Now());
  }

  std::string JournalDir(const SubKey& k) const {
    return absl::StrCat(options.dir, "/", k.topic, "-", k.partition);
  }
  std::string JournalPath(const SubKey& k) const {
    return absl::StrCat(JournalDir(k), "/", Hex(k.group), ".journal");
  }

  // ---- subscriptions ----

  // Marks `s` dropped and wakes its parked receives (they re-run and find
  // the partition's new state).
  void Drop(const std::shared_ptr<Sub>& s) {
    {
      absl::MutexLock l(&s->mu);
      if (s->dropped) return;
      s->dropped = true;
    }
    spdlog::info("queue {}-{} group {}: dropped from memory (leadership changed)", s->key.topic,
                 s->key.partition, s->key.group);
    WakeSub(s);
  }

  // The loaded subscription for `k` on `view`, loading it from its journal
  // if there is one. nullptr when there is none (`code` stays NONE) or on
  // an error (`code` set).
  std::shared_ptr<Sub> GetOrLoad(const SubKey& k, const std::shared_ptr<PartitionView>& view,
                                 proto::ErrorCode* code, std::string* msg) {
    std::shared_ptr<Sub> stale;
    {
      absl::MutexLock l(&mu);
      auto it = subs.find(k);
      if (it != subs.end()) {
        if (it->second->epoch == view->leader_epoch() && it->second->topic_id == view->topic_id()) {
          return it->second;
        }
        stale = it->second;
        subs.erase(it);
      }
    }
    if (stale != nullptr) Drop(stale);
    absl::MutexLock load(&load_mu);
    {
      absl::MutexLock l(&mu);
      auto it = subs.find(k);
      if (it != subs.end()) return it->second;
    }
    const std::string path = JournalPath(k);
    if (!fs->Exists(path)) return nullptr;
    JournalContents c;
    auto j = Journal::Open(fs, path, &c);
    if (!j.ok()) {
      spdlog::error("queue: cannot open journal {}: {}", path, j.status().ToString());
      if (ToErrorCode(j.status()) == proto::CORRUPT_MESSAGE) {
        // Not even the snapshot is readable: start over (at-least-once).
        fs->Remove(path).IgnoreError();
        return nullptr;
      }
      *code = proto::STORAGE_ERROR;
      *msg = std::string(j.status().message());
      return nullptr;
    }
    if (c.topic_id != view->topic_id()) {
      // A journal of an earlier incarnation of the topic.
      j->reset();
      fs->Remove(path).IgnoreError();
      return nullptr;
    }
    if (c.truncated_tail) spdlog::warn("queue: journal {}: torn tail truncated", path);
    auto filter = TagFilter::Parse(c.config.filter);
    auto sm = std::make_unique<Subscription>(c.config, filter.ok() ? *filter : TagFilter(), 0,
                                             options.limits);
    sm->Restore(c.snapshot);
    for (const auto& e : c.events) sm->RestoreEvent(e);
    return Insert(k, view, std::move(sm), std::shared_ptr<Journal>(std::move(*j)), code, msg);
  }

  std::shared_ptr<Sub> Insert(const SubKey& k, const std::shared_ptr<PartitionView>& view,
                              std::unique_ptr<Subscription> sm, std::shared_ptr<Journal> journal,
                              proto::ErrorCode* code, std::string* msg) {
    auto s = std::make_shared<Sub>();
    s->key = k;
    s->view = view;
    s->topic_id = view->topic_id();
    s->epoch = view->leader_epoch();
    {
      absl::MutexLock l(&s->mu);
      s->sm = std::move(sm);
      s->journal = std::move(journal);
    }
    absl::MutexLock l(&mu);
    if (subs.size() >= options.max_subscriptions) {
      *code = proto::INVALID_REQUEST;
      *msg = absl::StrCat("too many queue subscriptions on this broker (limit ",
                          options.max_subscriptions, ")");
      return nullptr;
    }
    subs[k] = s;
    return s;
  }

  // Creates the subscription `k` on the worker thread (asking the
  // coordinator for the group's committed offset), then runs `then`.
  void CreateAsync(const SubKey& k, std::shared_ptr<PartitionView> view, QueueConfig config,
                   std::function<void(absl::Status)> then) {
    absl::MutexLock l(&mu);
    auto [it, fresh] = creating.try_emplace(k);
    it->second.push_back(std::move(then));
    if (!fresh) return;
    tasks.push_back([this, k, view = std::move(view), config = std::move(config)] {
      absl::Status created = Create(k, view, config);
      std::vector<std::function<void(absl::Status)>> callbacks;
      {
        absl::MutexLock l(&mu);
        auto it = creating.find(k);
        if (it != creating.end()) {
          callbacks = std::move(it->second);
          creating.erase(it);
        }
      }
      for (auto& cb : callbacks) cb(created);
    });
  }

  // Worker thread.
  absl::Status Create(const SubKey& k, const std::shared_ptr<PartitionView>& view,
                      const QueueConfig& config) {
    proto::ErrorCode code = proto::NONE;
    std::string msg;
    if (GetOrLoad(k, view, &code, &msg) != nullptr) return absl::OkStatus();
    if (code != proto::NONE) return MakeError(code, msg);
    const int64_t log_start = view->log_start_offset();
    const int64_t hw = view->high_watermark();
    int64_t floor = config.start_earliest ? log_start : hw;
    proto::OffsetFetchRequest req;
    req.set_group_id(k.group);
    auto* p = req.add_partitions();
    p->set_topic(k.topic);
    p->set_partition(k.partition);
    proto::OffsetFetchResponse resp;
    absl::Status st = host->CallCoordinator(proto::API_OFFSET_FETCH, req, &resp, kCoordinatorTimeout);
    if (st.ok() && resp.partitions_size() == 1 && resp.partitions(0).error_code() == proto::NONE &&
        resp.partitions(0).offset() >= 0) {
      floor = std::clamp(resp.partitions(0).offset(), log_start, std::max(log_start, hw));
    } else if (!st.ok()) {
      spdlog::debug("queue: OffsetFetch for group {} failed: {}", k.group, st.ToString());
    }
    if (auto s = fs->CreateDirs(JournalDir(k)); !s.ok()) {
      spdlog::error("queue: cannot create {}: {}", JournalDir(k), s.ToString());
      return s;
    }
    SubscriptionSnapshot snap;
    snap.floor = floor;
    auto j = Journal::Create(fs, JournalPath(k), view->topic_id(), config, snap);
    if (!j.ok()) {
      spdlog::error("queue: cannot create journal {}: {}", JournalPath(k), j.status().ToString());
      return j.status();
    }
    auto filter = TagFilter::Parse(config.filter);
    auto sm = std::make_unique<Subscription>(config, filter.ok() ? *filter : TagFilter(), floor,
                                             options.limits);
    absl::MutexLock load(&load_mu);
    if (Insert(k, view, std::move(sm), std::shared_ptr<Journal>(std::move(*j)), &code, &msg) ==
        nullptr) {
      return MakeError(code, msg);
    }
    spdlog::info("queue {}-{} group {}: created at offset {}", k.topic, k.partition, k.group, floor);
    return absl::OkStatus();
  }

  // ---- reading the log (sub->mu held) ----

  void Fill(Sub& s, int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    Subscription& sm = *s.sm;
    const int64_t hw = s.view->high_watermark();
    int64_t log_start = s.view->log_start_offset();
    sm.TruncateBelow(log_start);
    size_t budget = options.fill_budget_bytes;
    RecordReader reader;
    std::vector<RecordView> records;
    while (sm.WantsRecords() && sm.read_offset() < hw && budget > 0) {
      auto data = s.view->Read(sm.read_offset(), std::min(budget, kReadChunk));
      if (!data.ok()) {
        if (ToErrorCode(data.status()) == proto::OFFSET_OUT_OF_RANGE) {
          int64_t start = s.view->log_start_offset();
          if (start > sm.read_offset()) {
            sm.TruncateBelow(start);
            continue;
          }
        }
        spdlog::warn("queue {}-{}: read at {} failed: {}", s.key.topic, s.key.partition,
                     sm.read_offset(), data.status().ToString());
        break;
      }
      if (data->empty()) break;
      budget -= std::min(budget, data->size());
      auto batches = SplitBatches(*data, /*allow_partial_tail=*/true);
      if (!batches.ok() || batches->empty()) break;
      const int64_t before = sm.read_offset();
      bool stop = false;
      for (const auto& b : *batches) {
        if (b.base_offset() >= hw) {
          stop = true;
          break;
        }
        if (b.last_offset() < sm.read_offset()) continue;
        if (b.is_control()) {
          sm.SkipTo(b.last_offset() + 1);
          continue;
        }
        records.clear();
        reader.Clear();
        if (!reader.Read(b, &records).ok()) {
          spdlog::warn("queue {}-{}: undecodable batch at {} skipped", s.key.topic, s.key.partition,
                       b.base_offset());
          sm.SkipTo(b.last_offset() + 1);
          continue;
        }
        for (const RecordView& rv : records) {
          if (rv.offset < sm.read_offset()) continue;
          if (rv.offset >= hw || !sm.WantsRecords()) {
            stop = true;
            break;
          }
          RecordInfo info;
          info.offset = rv.offset;
          info.key = rv.key;
          info.tags = HeaderValue(rv, kTagsHeader);
          info.deliver_at_ms = ParseDeliverAt(HeaderValue(rv, kDeliverAtHeader));
          info.size = RecordSize(rv);
          sm.AddRecord(info, now);
        }
        if (stop) break;
        // Offsets of the batch past its last record (compaction) are gone.
        if (b.last_offset() < hw) sm.SkipTo(b.last_offset() + 1);
      }
      if (stop || sm.read_offset() == before) break;
    }
  }

  // Reads the records of `deliveries` (offset order) and appends them to
  // `payload` as record batches, one per run of consecutive offsets.
  // Deliveries whose record is gone (retention) are left out of `kept`.
  void BuildBatches(Sub& s, const std::vector<Delivery>& deliveries, std::vector<Delivery>* kept,
                    proto::QueueReceiveResponse* resp, std::vector<uint8_t>* payload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    RecordBatchBuilder::Options bo;
    bo.compression = Compression::kNone;
    RecordBatchBuilder builder(bo);
    int64_t run_start = -1;
    int64_t run_next = -1;
    auto flush = [&] {
      if (builder.empty()) return;
      std::vector<uint8_t> batch = builder.Build();
      SetBaseOffset(batch, run_start);
      auto* qb = resp->add_batches();
      qb->set_partition(s.key.partition);
      qb->set_bytes(static_cast<int32_t>(batch.size()));
      payload->insert(payload->end(), batch.begin(), batch.end());
    };
    RecordReader reader;
    std::vector<RecordView> records;
    size_t i = 0;
    while (i < deliveries.size()) {
      const int64_t want = deliveries[i].offset;
      auto data = s.view->Read(want, kReadChunk);
      if (!data.ok() || data->empty()) {
        ++i;  // gone
        continue;
      }
      auto batches = SplitBatches(*data, /*allow_partial_tail=*/true);
      const size_t before = i;
      if (batches.ok()) {
        for (const auto& b : *batches) {
          if (i >= deliveries.size()) break;
          if (b.last_offset() < deliveries[i].offset || b.is_control()) continue;
          records.clear();
          reader.Clear();
          if (!reader.Read(b, &records).ok()) continue;
          for (const RecordView& rv : records) {
            while (i < deliveries.size() && deliveries[i].offset < rv.offset) ++i;  // gone
            if (i >= deliveries.size()) break;
            if (deliveries[i].offset != rv.offset) continue;
            if (rv.offset != run_next) {
              flush();
              run_start = rv.offset;
            }
            std::vector<HeaderView> headers(rv.headers.begin(), rv.headers.end());
            builder.Append(rv.timestamp, rv.key, rv.value, headers);
            run_next = rv.offset + 1;
            kept->push_back(deliveries[i]);
            ++i;
          }
          // Flush per source batch: the views point into the reader's buffers.
          flush();
          run_next = -1;
        }
      }
      if (i == before) ++i;  // not found where it should be
    }
    flush();
  }

  // ---- long-poll ----

  void Wake(const std::shared_ptr<ReceiveSession>& session) {
    if (session->rerun_queued.exchange(true)) return;
    auto self = shared_from_this();
    boost::asio::post(session->strand, [self, session] { self->RunReceive(session, false); });
  }

  void WakeSub(const std::shared_ptr<Sub>& s) {
    std::vector<std::weak_ptr<ReceiveSession>> waiters;
    {
      absl::MutexLock l(&s->mu);
      waiters.swap(s->waiters);
    }
    for (auto& w : waiters) {
      if (auto session = w.lock()) Wake(session);
    }
  }

  // Registers `session` to be woken by `s` (acks, appends, a drop).
  void Park(const std::shared_ptr<Sub>& s, const std::shared_ptr<ReceiveSession>& session) {
    bool arm = false;
    {
      absl::MutexLock l(&s->mu);
      if (s->waiters.size() >= 64) {
        std::erase_if(s->waiters, [](const auto& w) { return w.expired(); });
      }
      s->waiters.push_back(session);
      if (!s->hw_armed) {
        s->hw_armed = true;
        arm = true;
      }
    }
    if (!arm) return;
    // Runs on the thread that advances the high watermark: only posts.
    boost::asio::io_context* io_ptr = &io;
    std::weak_ptr<Impl> weak_self = weak_from_this();
    std::weak_ptr<Sub> weak_sub = s;
    s->view->AddWaiter([io_ptr, weak_self, weak_sub] {
      boost::asio::post(*io_ptr, [weak_self, weak_sub] {
        auto self = weak_self.lock();
        auto sub = weak_sub.lock();
        if (self == nullptr || sub == nullptr) return;
        {
          absl::MutexLock l(&sub->mu);
          sub->hw_armed = false;
        }
        self->WakeSub(sub);
      });
    });
  }

  // ---- Receive ----

  void HandleReceive(rpc::Request req) {
    auto session = std::make_shared<ReceiveSession>(io, req);
    proto::QueueReceiveRequest& r = session->r;
    if (!req.ParseHeader(&r)) return req.RespondError(proto::INVALID_REQUEST, "unparsable QueueReceiveRequest");
    if (stopping.load()) return req.RespondError(proto::SHUTTING_DOWN, "broker is stopping");
    if (auto s = ValidateNames(r.group(), r.topic(), r.consumer_id()); !s.empty()) {
      return req.RespondError(proto::INVALID_REQUEST, s);
    }
    if (r.partitions_size() == 0 || r.partitions_size() > options.max_partitions_per_request) {
      return req.RespondError(proto::INVALID_REQUEST,
                              absl::StrCat("a receive names 1 to ", options.max_partitions_per_request,
                                           " partitions"));
    }
    if (!req.payload().empty()) return req.RespondError(proto::INVALID_REQUEST, "unexpected payload");
    auto filter = TagFilter::Parse(r.config().filter());
    if (!filter.ok()) return req.RespondError(proto::INVALID_FILTER, std::string(filter.status().message()));
    session->filter = *std::move(filter);
    session->config = QueueConfig::FromProto(r.config(), r.group());
    std::set<int32_t> seen;
    for (int32_t p : r.partitions()) {
      if (p < 0) return req.RespondError(proto::INVALID_REQUEST, "negative partition");
      if (seen.insert(p).second) session->partitions.push_back(p);
    }
    session->max_records = r.max_records() > 0 ? std::min(r.max_records(), options.max_receive_records)
                                               : kDefaultMaxRecords;
    session->max_bytes =
        r.max_bytes() > 0 ? std::min<int64_t>(r.max_bytes(), options.max_receive_bytes) : kDefaultMaxBytes;
    const int64_t wait = std::clamp<int64_t>(r.max_wait_ms(), 0, options.max_wait_ms);
    session->deadline = session->start + std::chrono::milliseconds(wait);
    auto self = shared_from_this();
    boost::asio::post(session->strand, [self, session] { self->RunReceive(session, false); });
  }

  std::string ValidateNames(const std::string& group, const std::string& topic,
                            const std::string& consumer) const {
    if (group.empty()) return "empty group";
    if (topic.empty()) return "empty topic";
    if (group.size() > options.max_name_bytes || topic.size() > options.max_name_bytes ||
        consumer.size() > options.max_name_bytes) {
      return absl::StrCat("group, topic and consumer id are limited to ", options.max_name_bytes,
                          " bytes");
    }
    if (topic.find('/') != std::string::npos || topic == "." || topic == "..") return "invalid topic";
    return "";
  }

  // Runs on session->strand.
  void RunReceive(const std::shared_ptr<ReceiveSession>& session, bool final) {
    session->rerun_queued.store(false);
    if (session->done) return;
    if (stopping.load()) return Finish(session, nullptr, {}, {}, proto::SHUTTING_DOWN);
    const proto::QueueReceiveRequest& r = session->r;
    const int64_t now = Now();
    const bool may_park = !final && Clock::now() < session->deadline;
    proto::QueueReceiveResponse resp;
    std::vector<uint8_t> payload;
    std::vector<std::shared_ptr<Journal>> journals;
    std::vector<std::shared_ptr<Sub>> subs_seen;
    int remaining = session->max_records;
    int64_t bytes_left = session->max_bytes;
    std::optional<int64_t> next_due;
    bool creating_any = false;
    // First every partition's subscription: while one is being created,
    // nothing is delivered (a response held back must not hold deliveries).
    struct Target {
      int32_t partition;
      std::shared_ptr<Sub> sub;
    };
    std::vector<Target> targets;
    for (int32_t partition : session->partitions) {
      proto::ErrorCode code = proto::NONE;
      std::string msg;
      std::shared_ptr<PartitionView> view = host->Lead(r.topic(), partition, &code, &msg);
      std::shared_ptr<Sub> s;
      SubKey key{r.topic(), partition, r.group()};
      if (view != nullptr) s = GetOrLoad(key, view, &code, &msg);
      if (code != proto::NONE) {
        auto* e = resp.add_partition_errors();
        e->set_partition(partition);
        e->set_error_code(code);
        e->set_error_message(std::move(msg));
        continue;
      }
      if (s == nullptr && !session->create_error.ok()) {
        auto* e = resp.add_partition_errors();
        e->set_partition(partition);
        e->set_error_code(ToErrorCode(session->create_error));
        e->set_error_message(std::string(session->create_error.message()));
        continue;
      }
      if (s == nullptr) {
        creating_any = true;
        // The callback keeps the session alive until the creation (bounded by
        // the coordinator timeout) is done.
        std::weak_ptr<Impl> weak_self = weak_from_this();
        CreateAsync(key, view, session->config, [session, weak_self](absl::Status st) {
          auto self = weak_self.lock();
          if (self == nullptr) return;
          boost::asio::post(session->strand, [self, session, st] {
            if (!st.ok()) session->create_error = st;
            self->Wake(session);
          });
        });
        continue;
      }
      targets.push_back(Target{partition, std::move(s)});
    }
    if (creating_any) return;  // woken once the subscriptions exist
    for (const Target& target : targets) {
      const int32_t partition = target.partition;
      const std::shared_ptr<Sub>& s = target.sub;
      auto add_error = [&](proto::ErrorCode code, std::string msg) {
        auto* e = resp.add_partition_errors();
        e->set_partition(partition);
        e->set_error_code(code);
        e->set_error_message(std::move(msg));
      };
      std::vector<Delivery> kept;
      bool journal_failed = false;
      {
        absl::MutexLock l(&s->mu);
        if (s->dropped) {
          add_error(proto::NOT_LEADER, "the partition's leadership changed; retry");
          continue;
        }
        Subscription& sm = *s->sm;
        bool wrote = false;
        if (!(sm.config() == session->config)) {
          sm.SetConfig(session->config, session->filter);
          if (!s->journal->AppendConfig(session->config).ok()) journal_failed = true;
          wrote = true;
        }
        sm.SeeConsumer(r.consumer_id(), now);
        Fill(*s, now);
        sm.Tick(now);
        std::vector<Delivery> delivered;
        if (remaining > 0 && bytes_left > 0) {
          delivered = sm.Deliver(r.consumer_id(), remaining, bytes_left, now);
        }
        if (!journal_failed && !AppendEvents(*s, &wrote)) journal_failed = true;
        if (journal_failed) {
          add_error(proto::STORAGE_ERROR, "the subscription's journal failed");
        } else {
          if (wrote) journals.push_back(s->journal);
          if (!delivered.empty()) {
            BuildBatches(*s, delivered, &kept, &resp, &payload);
          }
          if (auto due = sm.NextDue(); due.has_value()) {
            next_due = next_due.has_value() ? std::min(*next_due, *due) : *due;
          }
        }
      }
      if (journal_failed) {
        DropAndForget(s);
        continue;
      }
      for (const Delivery& d : kept) {
        auto* qd = resp.add_deliveries();
        qd->set_partition(partition);
        qd->set_offset(d.offset);
        qd->set_delivery_count(d.delivery_count);
        remaining--;
        bytes_left -= d.size;
      }
      subs_seen.push_back(s);
    }
    const bool errors_only =
        static_cast<size_t>(resp.partition_errors_size()) == session->partitions.size();
    if (resp.deliveries_size() > 0 || !may_park || errors_only) {
      return Finish(session, &resp, std::move(payload), std::move(journals), proto::NONE);
    }
    // Nothing to deliver: wait for an append, an ack, a timer or the deadline.
    if (!session->parked) {
      {
        absl::MutexLock l(&parked_mu);
        if (parked.size() >= options.max_parked_receives) {
          return Finish(session, &resp, std::move(payload), std::move(journals), proto::NONE);
        }
        parked.insert(session);
      }
      session->parked = true;
    }
    for (const auto& s : subs_seen) Park(s, session);
    Clock::time_point wake_at = session->deadline;
    if (next_due.has_value()) {
      wake_at = std::min(wake_at, Clock::now() + std::chrono::milliseconds(std::max<int64_t>(*next_due - now, 1)));
    }
    auto self = shared_from_this();
    session->timer.expires_at(wake_at);
    session->timer.async_wait([self, session](const boost::system::error_code& ec) {
      if (ec == boost::asio::error::operation_aborted) return;
      self->RunReceive(session, Clock::now() >= session->deadline);
    });
  }

  // Appends the subscription's pending events to its journal and compacts
  // it when large. False when the journal failed.
  bool AppendEvents(Sub& s, bool* wrote = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    std::vector<JournalEvent> events = s.sm->DrainEvents();
    if (!events.empty() && !s.journal->Append(events).ok()) return false;
    if (wrote != nullptr && !events.empty()) *wrote = true;
    if (s.journal->size() > options.compact_bytes) {
      absl::Status c = s.journal->Compact(s.topic_id, s.sm->config(), s.sm->Snapshot());
      if (!c.ok()) {
        spdlog::error("queue: compacting {} failed: {}", s.journal->path(), c.ToString());
        return false;
      }
    }
    return true;
  }

  void DropAndForget(const std::shared_ptr<Sub>& s) {
    {
      absl::MutexLock l(&mu);
      auto it = subs.find(s->key);
      if (it != subs.end() && it->second == s) subs.erase(it);
    }
    Drop(s);
  }

  // Answers `session` once every journal in `journals` is durable.
  void Finish(const std::shared_ptr<ReceiveSession>& session, proto::QueueReceiveResponse* resp,
              std::vector<uint8_t> payload, std::vector<std::shared_ptr<Journal>> journals,
              proto::ErrorCode error) {
    if (session->done) return;
    session->done = true;
    if (session->parked) {
      session->timer.cancel();
      absl::MutexLock l(&parked_mu);
      parked.erase(session);
    }
    if (error != proto::NONE) {
      session->req.RespondError(error, error == proto::SHUTTING_DOWN ? "broker is stopping" : "error");
      return;
    }
    RespondWhenDurable(session->req, std::make_shared<proto::QueueReceiveResponse>(std::move(*resp)),
                       std::move(payload), std::move(journals));
  }

  void RespondWhenDurable(rpc::Request req, std::shared_ptr<google::protobuf::Message> resp,
                          std::vector<uint8_t> payload, std::vector<std::shared_ptr<Journal>> journals) {
    std::sort(journals.begin(), journals.end());
    journals.erase(std::unique(journals.begin(), journals.end()), journals.end());
    if (journals.empty()) {
      req.Respond(*resp, std::move(payload));
      return;
    }
    struct Pending {
      std::atomic<size_t> left;
      absl::Mutex mu;
      absl::Status status;
      rpc::Request req;
      std::shared_ptr<google::protobuf::Message> resp;
      std::vector<uint8_t> payload;
    };
    auto p = std::make_shared<Pending>();
    p->left = journals.size();
    p->req = req;
    p->resp = std::move(resp);
    p->payload = std::move(payload);
    for (auto& j : journals) {
      syncer.WhenDurable(j, [p](absl::Status st) {
        if (!st.ok()) {
          absl::MutexLock l(&p->mu);
          p->status = st;
        }
        if (p->left.fetch_sub(1) != 1) return;
        absl::Status final_status;
        {
          absl::MutexLock l(&p->mu);
          final_status = p->status;
        }
        if (!final_status.ok()) {
          p->req.RespondError(proto::STORAGE_ERROR, std::string(final_status.message()));
        } else {
          p->req.Respond(*p->resp, std::move(p->payload));
        }
      });
    }
  }

  // ---- Ack ----

  void HandleAck(rpc::Request req) {
    proto::QueueAckRequest r;
    if (!req.ParseHeader(&r)) return req.RespondError(proto::INVALID_REQUEST, "unparsable QueueAckRequest");
    if (stopping.load()) return req.RespondError(proto::SHUTTING_DOWN, "broker is stopping");
    if (auto s = ValidateNames(r.group(), r.topic(), r.consumer_id()); !s.empty()) {
      return req.RespondError(proto::INVALID_REQUEST, s);
    }
    if (r.entries_size() > options.max_ack_entries) {
      return req.RespondError(proto::INVALID_REQUEST, absl::StrCat("at most ", options.max_ack_entries,
                                                                   " entries per ack request"));
    }
    if (!req.payload().empty()) return req.RespondError(proto::INVALID_REQUEST, "unexpected payload");
    auto resp = std::make_shared<proto::QueueAckResponse>();
    std::map<int32_t, std::vector<int>> by_partition;
    for (int i = 0; i < r.entries_size(); ++i) {
      const auto& e = r.entries(i);
      auto* res = resp->add_results();
      res->set_partition(e.partition());
      res->set_offset(e.offset());
      if (!proto::QueueAckType_IsValid(e.type()) || e.partition() < 0 || e.offset() < 0) {
        res->set_error_code(proto::INVALID_REQUEST);
        res->set_error_message("invalid ack entry");
        continue;
      }
      by_partition[e.partition()].push_back(i);
    }
    const int64_t now = Now();
    std::vector<std::shared_ptr<Journal>> journals;
    for (const auto& [partition, idxs] : by_partition) {
      auto fail_all = [&](proto::ErrorCode code, const std::string& msg) {
        for (int i : idxs) {
          resp->mutable_results(i)->set_error_code(code);
          resp->mutable_results(i)->set_error_message(msg);
        }
      };
      proto::ErrorCode code = proto::NONE;
      std::string msg;
      auto view = host->Lead(r.topic(), partition, &code, &msg);
      if (view == nullptr) {
        fail_all(code, msg);
        continue;
      }
      auto s = GetOrLoad(SubKey{r.topic(), partition, r.group()}, view, &code, &msg);
      if (code != proto::NONE) {
        fail_all(code, msg);
        continue;
      }
      if (s == nullptr) {
        fail_all(proto::QUEUE_NOT_DELIVERED, "no such queue subscription");
        continue;
      }
      bool changed = false;
      bool failed = false;
      {
        absl::MutexLock l(&s->mu);
        if (s->dropped) {
          fail_all(proto::NOT_LEADER, "the partition's leadership changed; retry");
          continue;
        }
        // After a reload the window is empty until read again; the acked
        // records are in it (they were delivered from it).
        Fill(*s, now);
        s->sm->Tick(now);
        for (int i : idxs) {
          const auto& e = r.entries(i);
          proto::ErrorCode c = s->sm->Ack(e.offset(), e.delivery_count(), e.type(), e.delay_ms(), now);
          auto* res = resp->mutable_results(i);
          res->set_error_code(c);
          switch (c) {
            case proto::NONE: changed = true; break;
            case proto::QUEUE_NOT_DELIVERED: res->set_error_message("the record was not delivered"); break;
            case proto::QUEUE_ALREADY_ACKED: res->set_error_message("the record was already acknowledged"); break;
            case proto::QUEUE_DELIVERY_EXPIRED:
              res->set_error_message("the delivery expired or was superseded; the record may come again");
              break;
            default: break;
          }
        }
        if (!AppendEvents(*s)) {
          failed = true;
          for (int i : idxs) {
            if (resp->results(i).error_code() == proto::NONE) {
              resp->mutable_results(i)->set_error_code(proto::STORAGE_ERROR);
              resp->mutable_results(i)->set_error_message("the subscription's journal failed");
            }
          }
        } else if (changed) {
          journals.push_back(s->journal);
        }
      }
      if (failed) {
        DropAndForget(s);
      } else if (changed) {
        WakeSub(s);
      }
    }
    RespondWhenDurable(req, resp, {}, std::move(journals));
  }

  // ---- Describe ----

  void HandleDescribe(rpc::Request req) {
    proto::QueueDescribeRequest r;
    if (!req.ParseHeader(&r)) return req.RespondError(proto::INVALID_REQUEST, "unparsable QueueDescribeRequest");
    if (stopping.load()) return req.RespondError(proto::SHUTTING_DOWN, "broker is stopping");
    if (auto s = ValidateNames(r.group(), r.topic(), ""); !s.empty()) {
      return req.RespondError(proto::INVALID_REQUEST, s);
    }
    if (r.partitions_size() > options.max_partitions_per_request) {
      return req.RespondError(proto::INVALID_REQUEST, "too many partitions");
    }
    std::vector<int32_t> partitions(r.partitions().begin(), r.partitions().end());
    if (partitions.empty()) partitions = host->LedPartitions(r.topic());
    const int64_t now = Now();
    proto::QueueDescribeResponse resp;
    for (int32_t partition : partitions) {
      auto* st = resp.add_partitions();
      st->set_partition(partition);
      st->set_ack_floor(-1);
      st->set_read_offset(-1);
      st->set_high_watermark(-1);
      proto::ErrorCode code = proto::NONE;
      std::string msg;
      auto view = partition >= 0 ? host->Lead(r.topic(), partition, &code, &msg) : nullptr;
      if (view == nullptr) {
        st->set_error_code(partition >= 0 ? code : proto::INVALID_REQUEST);
        st->set_error_message(msg);
        continue;
      }
      st->set_high_watermark(view->high_watermark());
      auto s = GetOrLoad(SubKey{r.topic(), partition, r.group()}, view, &code, &msg);
      if (code != proto::NONE) {
        st->set_error_code(code);
        st->set_error_message(msg);
        continue;
      }
      if (s == nullptr) {
        st->set_error_code(proto::GROUP_ID_NOT_FOUND);
        st->set_error_message("no queue subscription of this group on the partition");
        continue;
      }
      absl::MutexLock l(&s->mu);
      if (s->dropped) {
        st->set_error_code(proto::NOT_LEADER);
        st->set_error_message("the partition's leadership changed; retry");
        continue;
      }
      // Reading the window first makes the state after a reload exact
      // (filtered records it journals need no fsync before answering; a
      // journal failure is sticky and drops the subscription at its next
      // receive or ack).
      Fill(*s, now);
      AppendEvents(*s);
      s->sm->Tick(now);
      s->sm->Describe(now, st);
      st->set_backlog(st->backlog() + std::max<int64_t>(0, view->high_watermark() - s->sm->read_offset()));
    }
    req.Respond(resp);
  }

  // ---- worker ----

  void Run() {
    int64_t last_commit = 0;
    int64_t last_check = 0;
    while (true) {
      std::deque<std::function<void()>> batch;
      {
        absl::MutexLock l(&mu);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stop_worker || !tasks.empty(); };
        mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(options.tick_ms));
        if (stop_worker) return;
        batch.swap(tasks);
      }
      for (auto& t : batch) t();
      const int64_t now = Now();
      TickAll(now);
      const int64_t steady = absl::ToUnixMillis(absl::Now());
      if (steady - last_check >= kLeadershipCheckMs) {
        last_check = steady;
        CheckLeadership();
      }
      if (steady - last_commit >= options.commit_interval_ms) {
        last_commit = steady;
        CommitFloors();
      }
    }
  }

  std::vector<std::shared_ptr<Sub>> AllSubs() const {
    absl::MutexLock l(&mu);
    std::vector<std::shared_ptr<Sub>> out;
    out.reserve(subs.size());
    for (const auto& [k, s] : subs) out.push_back(s);
    return out;
  }

  // Expires deliveries and sends what is due for the dead-letter topic.
  void TickAll(int64_t now) {
    for (const auto& s : AllSubs()) {
      std::vector<DeadLetter> due;
      {
        absl::MutexLock l(&s->mu);
        if (s->dropped) continue;
        s->sm->Tick(now);
        due = s->sm->TakeDeadLetters();
      }
      for (const auto& d : due) SendDeadLetter(s, d);
    }
  }

  void DeadLetterDone(const std::shared_ptr<Sub>& s, int64_t offset, absl::Status st) {
    std::shared_ptr<Journal> journal;
    {
      absl::MutexLock l(&s->mu);
      if (s->dropped) return;
      if (!st.ok()) {
        spdlog::warn("queue {}-{} group {}: dead-lettering offset {} failed: {}", s->key.topic,
                     s->key.partition, s->key.group, offset, st.ToString());
      }
      s->sm->DeadLetterDone(offset, st.ok(), Now(), options.dead_letter_retry_ms);
      if (!AppendEvents(*s)) return;
      journal = s->journal;
    }
    syncer.WhenDurable(journal, [](absl::Status) {});
    WakeSub(s);
  }

  void SendDeadLetter(const std::shared_ptr<Sub>& s, const DeadLetter& d) {
    auto data = s->view->Read(d.offset, 64 << 10);
    std::optional<DeadLetterRecord> rec;
    std::string dlq_topic;
    {
      absl::MutexLock l(&s->mu);
      dlq_topic = s->sm->config().dead_letter_topic;
    }
    if (data.ok()) {
      auto batches = SplitBatches(*data, true);
      RecordReader reader;
      std::vector<RecordView> records;
      if (batches.ok()) {
        for (const auto& b : *batches) {
          if (b.last_offset() < d.offset || b.is_control()) continue;
          records.clear();
          if (!reader.Read(b, &records).ok()) break;
          for (const auto& rv : records) {
            if (rv.offset != d.offset) continue;
            DeadLetterRecord out;
            out.topic = dlq_topic;
            if (rv.key) out.key = std::string(*rv.key);
            if (rv.value) out.value = std::string(*rv.value);
            out.timestamp_ms = rv.timestamp;
            for (const auto& h : rv.headers) {
              out.headers.emplace_back(std::string(h.key), h.value ? std::optional<std::string>(std::string(*h.value))
                                                                   : std::nullopt);
            }
            out.headers.emplace_back(kDlqTopicHeader, s->key.topic);
            out.headers.emplace_back(kDlqPartitionHeader, std::to_string(s->key.partition));
            out.headers.emplace_back(kDlqOffsetHeader, std::to_string(d.offset));
            out.headers.emplace_back(kDlqGroupHeader, s->key.group);
            out.headers.emplace_back(kDlqReasonHeader, d.reason);
            out.headers.emplace_back(kDlqDeliveryCountHeader, std::to_string(d.delivery_count));
            rec = std::move(out);
            break;
          }
          break;
        }
      }
    }
    if (!rec.has_value()) {
      if (data.ok() || ToErrorCode(data.status()) == proto::OFFSET_OUT_OF_RANGE) {
        // The record is gone from the log (retention): nothing to move.
        return DeadLetterDone(s, d.offset, absl::OkStatus());
      }
      return DeadLetterDone(s, d.offset, data.status());
    }
    if (dead_letters == nullptr) {
      return DeadLetterDone(s, d.offset, absl::UnavailableError("no dead-letter sink configured"));
    }
    std::weak_ptr<Impl> weak_self = weak_from_this();
    std::weak_ptr<Sub> weak_sub = s;
    const int64_t offset = d.offset;
    dead_letters->Send(std::move(*rec), [weak_self, weak_sub, offset](absl::Status st) {
      auto self = weak_self.lock();
      auto sub = weak_sub.lock();
      if (self != nullptr && sub != nullptr) self->DeadLetterDone(sub, offset, st);
    });
  }

  void CheckLeadership() {
    for (const auto& s : AllSubs()) {
      proto::ErrorCode code = proto::NONE;
      std::string msg;
      auto view = host->Lead(s->key.topic, s->key.partition, &code, &msg);
      if (view != nullptr && view->leader_epoch() == s->epoch && view->topic_id() == s->topic_id) continue;
      DropAndForget(s);
    }
  }

  void CommitFloors() {
    std::map<std::string, std::vector<std::pair<std::shared_ptr<Sub>, int64_t>>> by_group;
    for (const auto& s : AllSubs()) {
      absl::MutexLock l(&s->mu);
      if (s->dropped || s->sm->floor() == s->committed_floor) continue;
      by_group[s->key.group].emplace_back(s, s->sm->floor());
    }
    for (const auto& [group, entries] : by_group) {
      if (stopping.load()) return;
      proto::OffsetCommitRequest req;
      req.set_group_id(group);
      req.set_generation_id(-1);
      for (const auto& [s, floor] : entries) {
        auto* p = req.add_partitions();
        p->set_topic(s->key.topic);
        p->set_partition(s->key.partition);
        p->set_offset(floor);
        p->set_leader_epoch(s->epoch);
        p->set_metadata("queue ack floor");
      }
      proto::OffsetCommitResponse resp;
      absl::Status st = host->CallCoordinator(proto::API_OFFSET_COMMIT, req, &resp, kCoordinatorTimeout);
      if (!st.ok()) {
        spdlog::debug("queue: committing ack floors of group {} failed: {}", group, st.ToString());
        continue;
      }
      for (const auto& [s, floor] : entries) {
        bool ok = true;
        for (const auto& res : resp.partitions()) {
          if (res.topic() == s->key.topic && res.partition() == s->key.partition &&
              res.error_code() != proto::NONE) {
            ok = false;
            spdlog::debug("queue: commit of {}-{} for group {} refused: {}", res.topic(),
                          res.partition(), group, res.error_message());
          }
        }
        if (!ok) continue;
        absl::MutexLock l(&s->mu);
        s->committed_floor = floor;
      }
    }
  }

  void Stop() {
    if (stopping.exchange(true)) return;
    {
      absl::MutexLock l(&mu);
      stop_worker = true;
    }
    if (worker.joinable()) worker.join();
    std::set<std::shared_ptr<ReceiveSession>> to_answer;
    {
      absl::MutexLock l(&parked_mu);
      to_answer = parked;
    }
    auto self = shared_from_this();
    for (const auto& session : to_answer) {
      boost::asio::post(session->strand, [self, session] {
        self->Finish(session, nullptr, {}, {}, proto::SHUTTING_DOWN);
      });
    }
    if (dead_letters != nullptr) dead_letters->Close();
    for (const auto& s : AllSubs()) {
      absl::MutexLock l(&s->mu);
      if (s->journal != nullptr) s->journal->Sync().IgnoreError();
    }
  }
};

QueueService::QueueService(boost::asio::io_context& io, storage::FileSystem* fs, QueueHost* host,
                           std::unique_ptr<DeadLetterSink> dead_letters, QueueServiceOptions options)
    : impl_(std::make_shared<Impl>(io, fs, host, std::move(dead_letters), std::move(options))) {}

QueueService::~QueueService() { Stop(); }

void QueueService::RegisterApis(rpc::RpcServer& server) {
  std::shared_ptr<Impl> impl = impl_;
  server.Register(proto::API_QUEUE_RECEIVE, 0, [impl](rpc::Request r) { impl->HandleReceive(std::move(r)); });
  server.Register(proto::API_QUEUE_ACK, 0, [impl](rpc::Request r) { impl->HandleAck(std::move(r)); });
  server.Register(proto::API_QUEUE_DESCRIBE, 0,
                  [impl](rpc::Request r) { impl->HandleDescribe(std::move(r)); });
}

void QueueService::HandleReceive(rpc::Request req) { impl_->HandleReceive(std::move(req)); }
void QueueService::HandleAck(rpc::Request req) { impl_->HandleAck(std::move(req)); }
void QueueService::HandleDescribe(rpc::Request req) { impl_->HandleDescribe(std::move(req)); }

void QueueService::Start() {
  if (impl_->started.exchange(true) || impl_->stopping.load()) return;
  Impl* impl = impl_.get();
  impl_->worker = std::thread([impl] { impl->Run(); });
}

void QueueService::CheckLeadership() {
  if (!impl_->stopping.load()) impl_->CheckLeadership();
}

void QueueService::Stop() { impl_->Stop(); }

size_t QueueService::subscription_count() const {
  absl::MutexLock l(&impl_->mu);
  return impl_->subs.size();
}

std::vector<QueueService::SubscriptionState> QueueService::SubscriptionStates() const {
  std::vector<std::shared_ptr<Sub>> subs;
  {
    absl::MutexLock l(&impl_->mu);
    for (const auto& [key, sub] : impl_->subs) subs.push_back(sub);
  }
  const int64_t now = impl_->Now();
  std::vector<SubscriptionState> out;
  for (const auto& sub : subs) {
    SubscriptionState row;
    row.topic = sub->key.topic;
    row.partition = sub->key.partition;
    row.group = sub->key.group;
    absl::MutexLock l(&sub->mu);
    if (sub->dropped) continue;
    sub->sm->Describe(now, &row.state);
    row.state.set_high_watermark(sub->view->high_watermark());
    row.state.set_backlog(row.state.backlog() +
                          std::max<int64_t>(0, sub->view->high_watermark() - sub->sm->read_offset()));
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace brook::queue
