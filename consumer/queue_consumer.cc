// QueueConsumer (brook/queue.h): queue subscriptions over API_QUEUE_RECEIVE /
// API_QUEUE_ACK / API_QUEUE_DESCRIBE at the partition leaders.
//
// Threads: a supervisor thread keeps one receive loop thread per broker that
// leads partitions of the topic (routes from the MetadataCache); each loop
// long-polls its broker for what the prefetch buffer can still take and
// appends the decoded deliveries to the buffer, which Receive drains. An ack
// sender thread routes acknowledgements to partition leaders and keeps at
// most one QUEUE_ACK request in flight per broker; entries made meanwhile
// wait and go in the next request. Ack responses are handled on the IoThread.
#include "brook/queue.h"

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <random>
#include <span>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/address.h"
#include "client/connection_pool.h"
#include "client/metadata_cache.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "proto/brook.pb.h"

namespace brook::client {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr char kDeliverAtHeader[] = "brook-deliver-at";
constexpr char kTagsHeader[] = "brook-tags";
// Most entries in one QUEUE_ACK request.
constexpr int kMaxAckEntries = 8192;
// Most records asked for in one QUEUE_RECEIVE request.
constexpr size_t kMaxReceiveRecords = 5000;
constexpr milliseconds kRetryBackoff{100};
constexpr milliseconds kMaxLoopBackoff{1000};
constexpr milliseconds kRouteRefreshInterval{2000};

// A status whose canonical code tells the queue errors apart (FromErrorCode
// maps them all to kUnknown); the wire code stays attached.
absl::Status Remap(absl::Status s) {
  const proto::ErrorCode code = ToErrorCode(s);
  absl::StatusCode canonical;
  switch (code) {
    case proto::QUEUE_NOT_DELIVERED: canonical = absl::StatusCode::kFailedPrecondition; break;
    case proto::QUEUE_ALREADY_ACKED: canonical = absl::StatusCode::kAlreadyExists; break;
    case proto::QUEUE_DELIVERY_EXPIRED: canonical = absl::StatusCode::kAborted; break;
    case proto::INVALID_FILTER: canonical = absl::StatusCode::kInvalidArgument; break;
    default: return s;
  }
  if (s.code() == canonical) return s;
  return WithErrorCode(absl::Status(canonical, s.message()), code);
}

absl::Status QueueStatus(proto::ErrorCode code, const std::string& message) {
  return Remap(FromErrorCode(code, message));
}

std::string GenerateConsumerId() {
  char host[64] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  return absl::StrCat(host[0] ? host : "consumer", "-", getpid(), "-",
                      absl::Hex(rng(), absl::kZeroPad16));
}

rpc::ClientOptions ClientOptionsFor(const QueueConfig& c) {
  rpc::ClientOptions o;
  o.connect_timeout = std::min(c.request_timeout, milliseconds(5000));
  return o;
}

int32_t ClampMs(milliseconds d) {
  return static_cast<int32_t>(std::clamp<int64_t>(d.count(), 0, INT32_MAX));
}

// A completion for AckSync / NackSync.
struct SyncWaiter {
  absl::Notification done;
  absl::Status status;
};

struct PendingAck {
  uint64_t seq = 0;
  proto::QueueAckEntry entry;
  Clock::time_point deadline;
  Clock::time_point retry_at;
  std::shared_ptr<SyncWaiter> waiter;  // null: asynchronous
  bool quiet = false;                  // a release: failures are not reported
  absl::Status last_error;
};

struct Buffered {
  QueueMessage message;
  Clock::time_point expires;  // the delivery's ack timeout, measured from the request
};

class QueueConsumerImpl final : public QueueConsumer {
 public:
  QueueConsumerImpl(QueueConfig config, std::vector<HostPort> nameservers)
      : config_(std::move(config)),
        io_(std::make_unique<rpc::IoThread>()),
        pool_(io_->io(), ClientOptionsFor(config_)),
        metadata_(&pool_, std::move(nameservers), config_.request_timeout) {
    metadata_.Track({config_.topic});
    sub_config_.set_ack_timeout_ms(ClampMs(config_.ack_timeout));
    sub_config_.set_max_deliveries(config_.max_deliveries);
    sub_config_.set_filter(config_.filter);
    sub_config_.set_key_ordered(config_.key_ordered);
    sub_config_.set_backoff_initial_ms(ClampMs(config_.backoff_initial));
    sub_config_.set_backoff_max_ms(ClampMs(config_.backoff_max));
    sub_config_.set_dead_letter_topic(config_.dead_letter_topic);
    sub_config_.set_start_earliest(config_.start == QueueStart::kEarliest);
    sender_ = std::thread([this] { SenderLoop(); });
  }
  ~QueueConsumerImpl() override { Close().IgnoreError(); }

  const std::string& consumer_id() const override { return config_.consumer_id; }

  absl::StatusOr<std::vector<QueueMessage>> Receive(size_t max, milliseconds timeout) override {
    std::vector<QueueMessage> out;
    if (max == 0) return out;
    absl::MutexLock lock(&mu_);
    if (closing_) return absl::FailedPreconditionError("the queue consumer is closed");
    if (!started_) {
      started_ = true;
      supervisor_ = std::thread([this] { SupervisorLoop(); });
    }
    const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
    while (true) {
      auto ready = [this]() {
        return !buffer_.empty() || !receive_error_.ok() || closing_;
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
      if (!receive_error_.ok()) {
        absl::Status s = std::move(receive_error_);
        receive_error_ = absl::OkStatus();
        return s;
      }
      if (closing_) return absl::FailedPreconditionError("the queue consumer is closed");
      const auto now = Clock::now();
      while (!buffer_.empty() && out.size() < max) {
        Buffered& b = buffer_.front();
        if (b.expires > now) out.push_back(std::move(b.message));
        buffer_.pop_front();
      }
      if (!out.empty() || absl::Now() >= deadline) return out;
    }
  }

  void Ack(const QueueMessage& m) override { Enqueue(m, proto::QUEUE_ACK, -1, nullptr); }

  void Nack(const QueueMessage& m, std::optional<milliseconds> delay) override {
    Enqueue(m, proto::QUEUE_NACK, delay ? delay->count() : -1, nullptr);
  }

  absl::Status AckSync(const QueueMessage& m) override {
    auto waiter = std::make_shared<SyncWaiter>();
    Enqueue(m, proto::QUEUE_ACK, -1, waiter);
    waiter->done.WaitForNotification();
    return waiter->status;
  }

  absl::Status NackSync(const QueueMessage& m, std::optional<milliseconds> delay) override {
    auto waiter = std::make_shared<SyncWaiter>();
    Enqueue(m, proto::QUEUE_NACK, delay ? delay->count() : -1, waiter);
    waiter->done.WaitForNotification();
    return waiter->status;
  }

  absl::Status Flush(milliseconds timeout) override {
    absl::MutexLock lock(&ack_mu_);
    const uint64_t target = next_seq_;
    auto done = [this, target]() {
      return done_base_ >= target;
    };
    if (!ack_mu_.AwaitWithTimeout(absl::Condition(&done), absl::FromChrono(timeout))) {
      return absl::DeadlineExceededError(
          absl::StrCat("Flush: ", target - done_base_, " acknowledgement(s) not yet answered"));
    }
    absl::Status s = std::move(first_error_);
    first_error_ = absl::OkStatus();
    return s;
  }

  absl::StatusOr<std::vector<QueuePartitionState>> Describe() override {
    {
      absl::MutexLock lock(&close_mu_);
      if (closed_) return absl::FailedPreconditionError("the queue consumer is closed");
    }
    metadata_.MaybeRefresh(kRouteRefreshInterval, kRetryBackoff).IgnoreError();
    const auto deadline = Clock::now() + config_.request_timeout;
    absl::StatusOr<int32_t> count =
        metadata_.WaitForPartitionCount(config_.topic, deadline, kRetryBackoff, kMaxLoopBackoff);
    if (!count.ok()) return count.status();
    absl::StatusOr<std::vector<PartitionRouteInfo>> routes = metadata_.Partitions(config_.topic);
    if (!routes.ok()) return routes.status();
    std::map<int32_t, QueuePartitionState> states;
    std::map<int32_t, std::vector<int32_t>> by_leader;
    for (const PartitionRouteInfo& r : *routes) {
      states[r.partition].partition = r.partition;
      by_leader[r.leader].push_back(r.partition);
    }
    for (const auto& [leader, parts] : by_leader) {
      absl::Status failed;
      std::optional<HostPort> addr = leader >= 0 ? metadata_.Broker(leader) : std::nullopt;
      proto::QueueDescribeResponse resp;
      if (!addr) {
        failed = MakeError(proto::LEADER_NOT_AVAILABLE, "no leader");
      } else if (auto conn = pool_.Get(*addr); !conn.ok()) {
        failed = conn.status();
      } else {
        proto::QueueDescribeRequest req;
        req.set_group(config_.group);
        req.set_topic(config_.topic);
        for (int32_t p : parts) req.add_partitions(p);
        auto r = (*conn)->CallSync(proto::API_QUEUE_DESCRIBE, 0, req, {}, &resp,
                                   config_.request_timeout);
        if (!r.ok()) {
          failed = r.status();
          if (absl::IsUnavailable(failed)) pool_.Invalidate(*conn);
        }
      }
      if (!failed.ok()) {
        metadata_.Invalidate();
        for (int32_t p : parts) states[p].status = failed;
        continue;
      }
      for (int32_t p : parts) {
        states[p].status = absl::UnknownError("the leader did not describe this partition");
      }
      for (const proto::QueuePartitionState& ps : resp.partitions()) {
        auto it = states.find(ps.partition());
        if (it == states.end()) continue;
        QueuePartitionState& s = it->second;
        s.status = QueueStatus(ps.error_code(), ps.error_message());
        if (ps.error_code() == proto::NOT_LEADER) metadata_.Invalidate();
        s.ack_floor = ps.ack_floor();
        s.read_offset = ps.read_offset();
        s.high_watermark = ps.high_watermark();
        s.backlog = ps.backlog();
        s.in_flight = ps.in_flight();
        s.delayed = ps.delayed();
        s.acked = ps.acked();
        s.filtered = ps.filtered();
        s.dead_lettered = ps.dead_lettered();
        s.redeliveries = ps.redeliveries();
        s.consumers = ps.consumers();
      }
    }
    std::vector<QueuePartitionState> out;
    for (auto& [p, s] : states) out.push_back(std::move(s));
    return out;
  }

  absl::Status Close() override {
    {
      absl::MutexLock lock(&close_mu_);
      if (closed_) return close_status_;
      closed_ = true;
    }
    std::thread supervisor;
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      supervisor = std::move(supervisor_);
    }
    if (supervisor.joinable()) supervisor.join();  // it stops and joins the loops
    std::deque<Buffered> left;
    {
      absl::MutexLock lock(&mu_);
      left.swap(buffer_);
    }
    const auto now = Clock::now();
    for (const Buffered& b : left) {
      if (b.expires > now) Enqueue(b.message, proto::QUEUE_RELEASE, 0, nullptr, /*quiet=*/true);
    }
    absl::Status s = Flush(config_.request_timeout);
    {
      absl::MutexLock lock(&ack_mu_);
      sender_stop_ = true;
    }
    sender_.join();
    pool_.CloseAll();
    io_.reset();  // joins the io thread: no ack callback runs after this
    {
      // Whatever is still queued (Flush timed out) fails.
      absl::MutexLock lock(&ack_mu_);
      std::vector<PendingAck> rest = TakeAllPendingLocked();
      for (PendingAck& a : rest) {
        CompleteLocked(a, absl::FailedPreconditionError("the queue consumer is closed"));
      }
    }
    absl::MutexLock lock(&close_mu_);
    close_status_ = s;
    return s;
  }

 private:
  struct Loop {
    int32_t broker_id = -1;
    HostPort addr;
    std::vector<int32_t> partitions;  // guarded by mu_
    bool stop = false;                // guarded by mu_
    std::thread thread;               // owned by the supervisor
  };
  struct BrokerAcks {
    HostPort addr;
    std::vector<PendingAck> pending;
    // The request in flight (null: none). Its callback takes it back; Close
    // fails what no callback took.
    std::shared_ptr<std::vector<PendingAck>> in_flight;
  };

  // ---- acknowledgements ----

  void Enqueue(const QueueMessage& m, proto::QueueAckType type, int64_t delay_ms,
               std::shared_ptr<SyncWaiter> waiter, bool quiet = false) {
    PendingAck a;
    a.entry.set_partition(m.record.partition);
    a.entry.set_offset(m.record.offset);
    a.entry.set_delivery_count(m.delivery_count);
    a.entry.set_type(type);
    a.entry.set_delay_ms(delay_ms);
    a.deadline = Clock::now() + config_.request_timeout;
    a.waiter = std::move(waiter);
    a.quiet = quiet;
    absl::MutexLock lock(&ack_mu_);
    a.seq = next_seq_++;
    done_.push_back(false);
    if (sender_stop_) {
      CompleteLocked(a, absl::FailedPreconditionError("the queue consumer is closed"));
      return;
    }
    incoming_.push_back(std::move(a));
  }

  void CompleteLocked(PendingAck& a, absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
    if (a.waiter != nullptr) {
      a.waiter->status = std::move(s);
      a.waiter->done.Notify();
    } else if (!s.ok() && !a.quiet && first_error_.ok()) {
      first_error_ = std::move(s);
    }
    done_[a.seq - done_base_] = true;
    while (!done_.empty() && done_.front()) {
      done_.pop_front();
      ++done_base_;
    }
  }

  // A retriable failure: try again later unless the entry's time is up.
  void RetryLocked(PendingAck a, absl::Status error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
    const auto now = Clock::now();
    if (now >= a.deadline) {
      CompleteLocked(a, std::move(error));
      return;
    }
    a.last_error = std::move(error);
    a.retry_at = now + kRetryBackoff;
    retry_.push_back(std::move(a));
  }

  std::vector<PendingAck> TakeAllPendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
    std::vector<PendingAck> all = std::move(incoming_);
    incoming_.clear();
    for (auto& a : retry_) all.push_back(std::move(a));
    retry_.clear();
    for (auto& [id, b] : broker_acks_) {
      for (auto& a : b.pending) all.push_back(std::move(a));
      b.pending.clear();
      if (b.in_flight != nullptr) {
        for (auto& a : *b.in_flight) all.push_back(std::move(a));
        b.in_flight = nullptr;
      }
    }
    return all;
  }

  bool SenderHasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(ack_mu_) {
    if (sender_stop_ || !incoming_.empty()) return true;
    for (const auto& [id, b] : broker_acks_) {
      if (b.in_flight == nullptr && !b.pending.empty()) return true;
    }
    return false;
  }

  void SenderLoop() {
    while (true) {
      std::vector<PendingAck> to_route;
      {
        absl::MutexLock lock(&ack_mu_);
        absl::Duration wait = absl::Milliseconds(200);
        if (!retry_.empty()) {
          auto first = std::min_element(retry_.begin(), retry_.end(),
                                        [](const PendingAck& x, const PendingAck& y) {
                                          return x.retry_at < y.retry_at;
                                        })->retry_at;
          wait = std::max(absl::ZeroDuration(), absl::FromChrono(first - Clock::now()));
        }
        ack_mu_.AwaitWithTimeout(absl::Condition(this, &QueueConsumerImpl::SenderHasWork), wait);
        if (sender_stop_) return;
        to_route = std::move(incoming_);
        incoming_.clear();
        const auto now = Clock::now();
        for (size_t i = 0; i < retry_.size();) {
          if (retry_[i].retry_at <= now) {
            to_route.push_back(std::move(retry_[i]));
            retry_[i] = std::move(retry_.back());
            retry_.pop_back();
          } else {
            ++i;
          }
        }
      }
      // Routing may refresh the metadata (blocking): outside the lock. A
      // retried entry met NOT_LEADER or a failed connection, which
      // invalidated the routes: refresh them before routing it again.
      bool need_refresh = false;
      if (std::any_of(to_route.begin(), to_route.end(),
                      [](const PendingAck& a) { return !a.last_error.ok(); })) {
        metadata_.MaybeRefresh(kRouteRefreshInterval, kRetryBackoff).IgnoreError();
      }
      std::vector<std::pair<int32_t, HostPort>> routes(to_route.size(), {-1, HostPort{}});
      for (size_t i = 0; i < to_route.size(); ++i) {
        int32_t id = -1;
        auto leader = metadata_.Leader(config_.topic, to_route[i].entry.partition(), &id);
        if (leader.ok()) {
          routes[i] = {id, *leader};
        } else {
          need_refresh = true;
          to_route[i].last_error = leader.status();
        }
      }
      if (need_refresh) {
        metadata_.Invalidate();
        metadata_.MaybeRefresh(kRouteRefreshInterval, kRetryBackoff).IgnoreError();
        for (size_t i = 0; i < to_route.size(); ++i) {
          if (routes[i].first >= 0) continue;
          int32_t id = -1;
          auto leader = metadata_.Leader(config_.topic, to_route[i].entry.partition(), &id);
          if (leader.ok()) routes[i] = {id, *leader};
        }
      }
      std::vector<std::pair<int32_t, HostPort>> sendable;
      {
        absl::MutexLock lock(&ack_mu_);
        for (size_t i = 0; i < to_route.size(); ++i) {
          if (routes[i].first < 0) {
            absl::Status err = to_route[i].last_error;
            RetryLocked(std::move(to_route[i]), err);
            continue;
          }
          BrokerAcks& b = broker_acks_[routes[i].first];
          b.addr = routes[i].second;
          b.pending.push_back(std::move(to_route[i]));
        }
        for (auto& [id, b] : broker_acks_) {
          if (b.in_flight == nullptr && !b.pending.empty()) sendable.emplace_back(id, b.addr);
        }
      }
      for (const auto& [id, addr] : sendable) SendAcks(id, addr);
    }
  }

  // Sends (up to kMaxAckEntries of) the broker's pending entries. Sender thread.
  void SendAcks(int32_t broker_id, const HostPort& addr) {
    auto conn = pool_.Get(addr);  // may block up to the connect timeout
    auto batch = std::make_shared<std::vector<PendingAck>>();
    proto::QueueAckRequest req;
    {
      absl::MutexLock lock(&ack_mu_);
      BrokerAcks& b = broker_acks_[broker_id];
      if (b.in_flight != nullptr || b.pending.empty()) return;
      if (!conn.ok()) {
        metadata_.Invalidate();
        std::vector<PendingAck> pending = std::move(b.pending);
        b.pending.clear();
        for (auto& a : pending) RetryLocked(std::move(a), conn.status());
        return;
      }
      size_t n = std::min<size_t>(b.pending.size(), kMaxAckEntries);
      batch->reserve(n);
      std::move(b.pending.begin(), b.pending.begin() + n, std::back_inserter(*batch));
      b.pending.erase(b.pending.begin(), b.pending.begin() + n);
      b.in_flight = batch;
    }
    req.set_group(config_.group);
    req.set_topic(config_.topic);
    req.set_consumer_id(config_.consumer_id);
    req.mutable_entries()->Reserve(static_cast<int>(batch->size()));
    for (const PendingAck& a : *batch) *req.add_entries() = a.entry;
    std::shared_ptr<rpc::RpcClient> c = *conn;
    c->Call(proto::API_QUEUE_ACK, 0, req, {}, config_.request_timeout,
            [this, broker_id, c](absl::StatusOr<rpc::Response> r) {
              OnAckResponse(broker_id, c, std::move(r));
            });
  }

  // On the io thread.
  void OnAckResponse(int32_t broker_id, const std::shared_ptr<rpc::RpcClient>& conn,
                     absl::StatusOr<rpc::Response> r) {
    std::shared_ptr<std::vector<PendingAck>> taken;
    {
      absl::MutexLock lock(&ack_mu_);
      taken = std::move(broker_acks_[broker_id].in_flight);
      broker_acks_[broker_id].in_flight = nullptr;
    }
    if (taken == nullptr) return;
    std::vector<PendingAck>& batch = *taken;
    absl::Status top;
    proto::QueueAckResponse resp;
    if (!r.ok()) {
      top = r.status();
      if (absl::IsUnavailable(top)) pool_.Invalidate(conn);
    } else if (!resp.ParseFromString(r->header)) {
      top = MakeError(proto::UNKNOWN, "unparsable QueueAckResponse");
    } else if (resp.error_code() != proto::NONE) {
      top = QueueStatus(resp.error_code(), resp.error_message());
    } else if (resp.results_size() != static_cast<int>(batch.size())) {
      top = MakeError(proto::UNKNOWN, absl::StrCat("QueueAckResponse has ", resp.results_size(),
                                                   " results for ", batch.size(), " entries"));
    }
    const bool retry_all = !top.ok() && (!r.ok() || IsRetriable(ToErrorCode(top)));
    bool refresh = retry_all;
    absl::MutexLock lock(&ack_mu_);
    for (size_t i = 0; i < batch.size(); ++i) {
      PendingAck& a = batch[i];
      if (!top.ok()) {
        if (retry_all) {
          RetryLocked(std::move(a), top);
        } else {
          CompleteLocked(a, top);
        }
        continue;
      }
      const proto::QueueAckResult& res = resp.results(static_cast<int>(i));
      if (res.error_code() == proto::NONE) {
        CompleteLocked(a, absl::OkStatus());
      } else if (IsRetriable(res.error_code())) {
        refresh = true;
        RetryLocked(std::move(a), QueueStatus(res.error_code(), res.error_message()));
      } else {
        CompleteLocked(a, QueueStatus(res.error_code(), res.error_message()));
      }
    }
    if (refresh) metadata_.Invalidate();
  }

  // ---- receiving ----

  // Keeps one receive loop per leader broker. Supervisor thread.
  void SupervisorLoop() {
    std::vector<std::unique_ptr<Loop>> stopped;
    while (true) {
      metadata_.MaybeRefresh(kRouteRefreshInterval, kRetryBackoff).IgnoreError();
      auto routes = metadata_.Partitions(config_.topic);
      std::map<int32_t, std::vector<int32_t>> by_leader;
      bool leaderless = !routes.ok();
      if (routes.ok()) {
        for (const PartitionRouteInfo& r : *routes) {
          if (r.leader < 0 || !metadata_.Broker(r.leader)) {
            leaderless = true;
            continue;
          }
          by_leader[r.leader].push_back(r.partition);
        }
      }
      if (leaderless) metadata_.Invalidate();
      {
        absl::MutexLock lock(&mu_);
        route_dirty_ = false;
        if (!closing_) {
          for (auto it = loops_.begin(); it != loops_.end();) {
            auto want = by_leader.find(it->first);
            std::optional<HostPort> addr = metadata_.Broker(it->first);
            if (want == by_leader.end() || !addr || !(*addr == it->second->addr)) {
              it->second->stop = true;
              stopped.push_back(std::move(it->second));
              it = loops_.erase(it);
            } else {
              it->second->partitions = want->second;
              ++it;
            }
          }
          for (auto& [leader, parts] : by_leader) {
            if (loops_.count(leader)) continue;
            auto loop = std::make_unique<Loop>();
            loop->broker_id = leader;
            loop->addr = *metadata_.Broker(leader);
            loop->partitions = parts;
            Loop* l = loop.get();
            loop->thread = std::thread([this, l] { ReceiveLoop(l); });
            loops_.emplace(leader, std::move(loop));
          }
        } else {
          for (auto& [id, l] : loops_) {
            l->stop = true;
            stopped.push_back(std::move(l));
          }
          loops_.clear();
        }
      }
      for (auto& l : stopped) l->thread.join();
      stopped.clear();
      absl::MutexLock lock(&mu_);
      if (closing_ && loops_.empty()) return;
      // At most one routing pass per 200 ms, however often loops complain.
      auto closing = [this]() { return closing_; };
      mu_.AwaitWithTimeout(absl::Condition(&closing), absl::Milliseconds(200));
      auto wake = [this]() { return route_dirty_ || closing_; };
      mu_.AwaitWithTimeout(absl::Condition(&wake),
                           absl::FromChrono(leaderless ? kRetryBackoff * 5 : kRouteRefreshInterval));
    }
  }

  proto::QueueReceiveRequest MakeReceiveRequest(const std::vector<int32_t>& parts, size_t ask) const {
    proto::QueueReceiveRequest req;
    req.set_group(config_.group);
    req.set_topic(config_.topic);
    req.set_consumer_id(config_.consumer_id);
    for (int32_t p : parts) req.add_partitions(p);
    req.set_max_records(static_cast<int32_t>(ask));
    req.set_max_bytes(static_cast<int32_t>(
        std::min<size_t>(config_.max_bytes_per_request, INT32_MAX)));
    req.set_max_wait_ms(ClampMs(config_.max_wait));
    *req.mutable_config() = sub_config_;
    return req;
  }

  // One broker's long-poll loop. Runs on its own thread until loop->stop.
  void ReceiveLoop(Loop* loop) {
    RecordReader reader;
    milliseconds backoff{0};
    while (true) {
      std::vector<int32_t> parts;
      size_t ask = 0;
      {
        absl::MutexLock lock(&mu_);
        auto can_go = [this, loop]() {
          return loop->stop || (!loop->partitions.empty() && Room() > 0);
        };
        mu_.AwaitWithTimeout(absl::Condition(&can_go), absl::Milliseconds(200));
        if (loop->stop) return;
        if (loop->partitions.empty() || Room() == 0) continue;
        const size_t share =
            std::max<size_t>(1, (config_.prefetch_limit + loops_.size() - 1) /
                                    std::max<size_t>(1, loops_.size()));
        ask = std::min({Room(), share, kMaxReceiveRecords});
        reserved_ += ask;
        parts = loop->partitions;
      }
      absl::Status st = ReceiveOnce(loop, parts, ask, reader);
      {
        absl::MutexLock lock(&mu_);
        reserved_ -= ask;
      }
      if (st.ok()) {
        backoff = milliseconds(0);
        continue;
      }
      backoff = std::clamp(backoff * 2, kRetryBackoff, kMaxLoopBackoff);
      absl::MutexLock lock(&mu_);
      auto stop = [loop]() { return loop->stop; };
      mu_.AwaitWithTimeout(absl::Condition(&stop), absl::FromChrono(backoff));
      if (loop->stop) return;
    }
  }

  size_t Room() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t used = buffer_.size() + reserved_;
    return used >= config_.prefetch_limit ? 0 : config_.prefetch_limit - used;
  }

  // One QUEUE_RECEIVE round trip; appends the deliveries to the buffer. Not
  // OK when the loop should back off.
  absl::Status ReceiveOnce(Loop* loop, const std::vector<int32_t>& parts, size_t ask,
                           RecordReader& reader) {
    auto conn = pool_.Get(loop->addr);
    if (!conn.ok()) {
      MarkRoutesDirty();
      return conn.status();
    }
    const auto sent = Clock::now();
    proto::QueueReceiveResponse resp;
    auto payload = (*conn)->CallSync(proto::API_QUEUE_RECEIVE, 0, MakeReceiveRequest(parts, ask),
                                     {}, &resp, config_.max_wait + config_.request_timeout);
    if (!payload.ok()) {
      absl::Status s = payload.status();
      const proto::ErrorCode code = ToErrorCode(s);
      if (absl::IsUnavailable(s) && code == proto::BROKER_NOT_AVAILABLE) pool_.Invalidate(*conn);
      if (IsRetriable(code) || absl::IsDeadlineExceeded(s)) {
        MarkRoutesDirty();
      } else {
        // The subscription itself is refused (a bad filter, an unsupported
        // API): the user hears of it in Receive.
        absl::MutexLock lock(&mu_);
        if (receive_error_.ok()) receive_error_ = Remap(s);
      }
      return s;
    }
    // A partition with an error leaves this loop until the supervisor
    // routes it again (after a metadata refresh); errors that are not about
    // routing also reach the user through Receive.
    bool dirty = false;
    for (const proto::QueuePartitionError& e : resp.partition_errors()) {
      if (e.error_code() == proto::NONE) continue;
      dirty = true;
      absl::MutexLock lock(&mu_);
      auto& ps = loop->partitions;
      ps.erase(std::remove(ps.begin(), ps.end(), e.partition()), ps.end());
      if (!IsRetriable(e.error_code()) && receive_error_.ok()) {
        receive_error_ = QueueStatus(e.error_code(), absl::StrCat("partition ", e.partition(), ": ",
                                                                  e.error_message()));
      }
    }
    if (dirty) MarkRoutesDirty();

    // (partition, offset) -> delivery count
    absl::flat_hash_map<std::pair<int32_t, int64_t>, int32_t> deliveries;
    deliveries.reserve(resp.deliveries_size());
    for (const proto::QueueDelivery& d : resp.deliveries()) {
      deliveries[{d.partition(), d.offset()}] = d.delivery_count();
    }
    std::vector<Buffered> got;
    got.reserve(resp.deliveries_size());
    const auto expires = sent + config_.ack_timeout;
    absl::Status decode_error;
    size_t off = 0;
    std::vector<RecordView> views;
    for (const proto::QueueBatch& qb : resp.batches()) {
      if (qb.bytes() < 0 || off + static_cast<size_t>(qb.bytes()) > payload->size()) {
        decode_error = MakeError(proto::CORRUPT_MESSAGE, "receive payload shorter than its batches");
        break;
      }
      std::span<const uint8_t> bytes(payload->data() + off, static_cast<size_t>(qb.bytes()));
      off += static_cast<size_t>(qb.bytes());
      auto batches = SplitBatches(bytes);
      if (!batches.ok()) {
        decode_error = batches.status();
        continue;
      }
      for (const RecordBatchView& v : *batches) {
        views.clear();
        if (auto s = reader.Read(v, &views); !s.ok()) {
          decode_error = s;
          continue;
        }
        for (const RecordView& rv : views) {
          auto it = deliveries.find({qb.partition(), rv.offset});
          if (it == deliveries.end()) continue;
          Buffered b;
          b.expires = expires;
          b.message.delivery_count = it->second;
          ConsumerRecord& r = b.message.record;
          r.topic = config_.topic;
          r.partition = qb.partition();
          r.offset = rv.offset;
          r.timestamp_ms = rv.timestamp;
          if (rv.key) r.key.emplace(rv.key->data(), rv.key->size());
          if (rv.value) r.value.emplace(rv.value->data(), rv.value->size());
          r.headers.reserve(rv.headers.size());
          for (const HeaderView& h : rv.headers) {
            Header hh;
            hh.key.assign(h.key.data(), h.key.size());
            if (h.value) hh.value.emplace(h.value->data(), h.value->size());
            r.headers.push_back(std::move(hh));
          }
          deliveries.erase(it);
          got.push_back(std::move(b));
        }
      }
    }
    reader.Clear();
    if (!got.empty()) {
      absl::MutexLock lock(&mu_);
      for (auto& b : got) buffer_.push_back(std::move(b));
    }
    if (!decode_error.ok()) {
      absl::MutexLock lock(&mu_);
      if (receive_error_.ok()) receive_error_ = decode_error;
    }
    return absl::OkStatus();
  }

  void MarkRoutesDirty() {
    metadata_.Invalidate();
    absl::MutexLock lock(&mu_);
    route_dirty_ = true;
  }

  const QueueConfig config_;
  proto::QueueSubscriptionConfig sub_config_;
  std::unique_ptr<rpc::IoThread> io_;  // reset by Close
  ConnectionPool pool_;
  MetadataCache metadata_;

  absl::Mutex close_mu_;
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;
  absl::Status close_status_ ABSL_GUARDED_BY(close_mu_);

  // Receiving.
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool route_dirty_ ABSL_GUARDED_BY(mu_) = false;
  std::thread supervisor_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, std::unique_ptr<Loop>> loops_ ABSL_GUARDED_BY(mu_);
  std::deque<Buffered> buffer_ ABSL_GUARDED_BY(mu_);
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;  // records asked for in requests in flight
  absl::Status receive_error_ ABSL_GUARDED_BY(mu_);

  // Acknowledging.
  absl::Mutex ack_mu_;
  uint64_t next_seq_ ABSL_GUARDED_BY(ack_mu_) = 0;
  uint64_t done_base_ ABSL_GUARDED_BY(ack_mu_) = 0;  // every seq below is answered
  std::deque<bool> done_ ABSL_GUARDED_BY(ack_mu_);   // seqs from done_base_
  std::vector<PendingAck> incoming_ ABSL_GUARDED_BY(ack_mu_);
  std::vector<PendingAck> retry_ ABSL_GUARDED_BY(ack_mu_);
  std::map<int32_t, BrokerAcks> broker_acks_ ABSL_GUARDED_BY(ack_mu_);
  absl::Status first_error_ ABSL_GUARDED_BY(ack_mu_);
  bool sender_stop_ ABSL_GUARDED_BY(ack_mu_) = false;
  std::thread sender_;
};

void SetHeader(ProducerRecord& record, const std::string& key, std::string value) {
  record.headers.erase(std::remove_if(record.headers.begin(), record.headers.end(),
                                      [&](const Header& h) { return h.key == key; }),
                       record.headers.end());
  record.headers.push_back(Header{key, std::move(value)});
}

}  // namespace

QueueAckError ClassifyAckError(const absl::Status& status) {
  if (status.ok()) return QueueAckError::kNone;
  switch (ToErrorCode(status)) {
    case proto::QUEUE_NOT_DELIVERED: return QueueAckError::kNotDelivered;
    case proto::QUEUE_ALREADY_ACKED: return QueueAckError::kAlreadyAcked;
    case proto::QUEUE_DELIVERY_EXPIRED: return QueueAckError::kDeliveryExpired;
    default: return QueueAckError::kOther;
  }
}

absl::StatusOr<std::unique_ptr<QueueConsumer>> QueueConsumer::Create(QueueConfig config) {
  if (config.group.empty()) return absl::InvalidArgumentError("QueueConfig.group is required");
  if (config.topic.empty()) return absl::InvalidArgumentError("QueueConfig.topic is required");
  if (config.prefetch_limit == 0) {
    return absl::InvalidArgumentError("QueueConfig.prefetch_limit must be at least 1");
  }
  if (config.ack_timeout.count() <= 0 || config.request_timeout.count() <= 0 ||
      config.max_wait.count() < 0) {
    return absl::InvalidArgumentError("QueueConfig timeouts must be positive");
  }
  auto nameservers = ParseNameservers(config.nameservers);
  if (!nameservers.ok()) return nameservers.status();
  if (config.consumer_id.empty()) config.consumer_id = GenerateConsumerId();
  return std::unique_ptr<QueueConsumer>(
      new QueueConsumerImpl(std::move(config), std::move(*nameservers)));
}

void SetDeliverAt(ProducerRecord& record, int64_t deliver_at_ms) {
  SetHeader(record, kDeliverAtHeader, absl::StrCat(deliver_at_ms));
}

void SetDelay(ProducerRecord& record, milliseconds delay) {
  const int64_t now = std::chrono::duration_cast<milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  SetDeliverAt(record, now + delay.count());
}

void SetTags(ProducerRecord& record, const std::vector<std::string>& tags) {
  SetHeader(record, kTagsHeader, absl::StrJoin(tags, ","));
}

std::vector<std::string> TagsOf(const ConsumerRecord& record) {
  std::vector<std::string> out;
  for (const Header& h : record.headers) {
    if (h.key != kTagsHeader || !h.value) continue;
    for (absl::string_view t : absl::StrSplit(*h.value, ',', absl::SkipWhitespace())) {
      out.emplace_back(absl::StripAsciiWhitespace(t));
    }
  }
  return out;
}

}  // namespace brook::client
