// The broker role: request handlers (Produce with acks=all waits, Fetch with
// long-poll for consumers and followers, ListOffsets, Metadata,
// OffsetForLeaderEpoch), the coordinator heartbeat loop that drives the
// PartitionManager, partition roles and replica fetchers, the in-sync set
// check (AlterIsr), controlled shutdown, the name-server registration loop,
// retention and metrics. The queue APIs (60-62) are served by
// broker/queue through the QueueHost defined here.
#include "broker/broker.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "broker/partition.h"
#include "broker/queue/dead_letter.h"
#include "broker/queue/queue_service.h"
#include "broker/replication/fetcher.h"
#include "broker/storage/log.h"
#include "broker/storage/log_cleaner.h"
#include "common/errors.h"
#include "common/http/metrics.h"
#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "spdlog/spdlog.h"

namespace brook::broker {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int32_t kDefaultFetchMaxBytes = 32 * 1024 * 1024;
constexpr auto kConnectTimeout = std::chrono::milliseconds(1000);
constexpr auto kRetryBackoff = std::chrono::milliseconds(200);

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// Monotonic milliseconds (lease deadlines).
int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

constexpr int32_t kDefaultProduceTimeoutMs = 30000;

const char* ApiLabel(proto::Api api) {
  switch (api) {
    case proto::API_PRODUCE: return "produce";
    case proto::API_FETCH: return "fetch";
    case proto::API_LIST_OFFSETS: return "list_offsets";
    case proto::API_METADATA: return "metadata";
    case proto::API_OFFSET_FOR_LEADER_EPOCH: return "offset_for_leader_epoch";
    default: return "other";
  }
}

metrics::Histogram* LatencyHistogram(proto::Api api) {
  return metrics::Registry::Global().GetHistogram(
      "brook_request_latency_seconds", {{"api", ApiLabel(api)}},
      "Broker request latency from receipt to response, per api");
}

void CountError(proto::Api api, proto::ErrorCode code) {
  if (code == proto::NONE) return;
  metrics::Registry::Global()
      .GetCounter("brook_errors_total", {{"api", ApiLabel(api)}, {"code", proto::ErrorCode_Name(code)}},
                  "Errors returned by the broker, per api and error code")
      ->Inc();
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t RecordCount(std::span<const uint8_t> bytes) {
  auto batches = SplitBatches(bytes, /*allow_partial_tail=*/true);
  if (!batches.ok()) return 0;
  int64_t n = 0;
  for (const auto& b : *batches) n += b.record_count();
  return n;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string JsonIntArray(const google::protobuf::RepeatedField<int32_t>& v) {
  std::string out = "[";
  for (int i = 0; i < v.size(); ++i) absl::StrAppend(&out, i ? "," : "", v[i]);
  return out + "]";
}

// One fetch request, possibly parked for long-poll. Every step runs on
// `strand`, so the session needs no lock of its own.
struct FetchSession {
  FetchSession(boost::asio::io_context& io, rpc::Request r)
      : req(std::move(r)), strand(boost::asio::make_strand(io)), timer(strand) {}
  rpc::Request req;
  proto::FetchRequest fetch;
  Clock::time_point start = Clock::now();
  boost::asio::strand<boost::asio::io_context::executor_type> strand;
  boost::asio::steady_timer timer;
  bool done = false;
  bool parked = false;
  bool recorded = false;  // follower positions recorded (first run only)
  // One flag per partition of the request: a waiter is registered on it.
  std::vector<bool> waiting;
  // A re-run is already queued on the strand.
  std::atomic<bool> rerun_queued{false};
};

// One produce request whose appends await durability (and, for acks=all on
// replicated partitions, the high watermark).
struct ProduceContext {
  rpc::Request req;
  int32_t acks = 1;
  Clock::time_point start = Clock::now();
  std::mutex mu;
  proto::ProduceResponse resp;
  std::atomic<int> pending{1};
  // Per partition: an acks=all wait is outstanding (guarded by mu).
  std::vector<char> ack_pending;
  // Fails outstanding acks=all waits with REQUEST_TIMED_OUT; cancelled when
  // the response is sent.
  std::shared_ptr<boost::asio::steady_timer> timer;
};

}  // namespace

// Everything the broker is made of. Shared with the RPC handlers (which keep
// it alive while the server holds them); timers, waiters and the metrics
// collector hold weak references. Members are guarded as annotated; the
// rest is set before Start and then read-only.
struct Broker::State : std::enable_shared_from_this<Broker::State> {
  State(storage::FileSystem* f, BrokerOptions o, boost::asio::io_context& i)
      : fs(f), options(std::move(o)), io(i) {}
  ~State() {
    if (partitions != nullptr) partitions->CloseAll().IgnoreError();
    partitions.reset();
    flusher.reset();
  }

  storage::FileSystem* const fs;
  BrokerOptions options;
  boost::asio::io_context& io;
  std::unique_ptr<storage::Flusher> flusher;
  // Compacts compacted topics' partitions on its own thread (Start/Stop).
  std::unique_ptr<storage::LogCleaner> cleaner;
  std::unique_ptr<PartitionManager> partitions;
  // Queue subscriptions; `queue_host` reaches back into this state.
  std::unique_ptr<queue::QueueHost> queue_host;
  std::unique_ptr<queue::QueueService> queue;

  metrics::Histogram* produce_latency = LatencyHistogram(proto::API_PRODUCE);
  metrics::Histogram* fetch_latency = LatencyHistogram(proto::API_FETCH);
  metrics::Histogram* list_offsets_latency = LatencyHistogram(proto::API_LIST_OFFSETS);
  metrics::Histogram* metadata_latency = LatencyHistogram(proto::API_METADATA);

  std::atomic<bool> stopping{false};
  std::atomic<bool> registered{false};
  std::atomic<bool> started{false};
  std::thread heartbeat_thread;
  std::thread nameserver_thread;
  std::thread isr_thread;

  // The coordinator registration: epoch, and the lease (steady ms; valid
  // until the send time of the last successful heartbeat + lease_ms; 0 while
  // no heartbeat has succeeded).
  std::atomic<int64_t> broker_epoch{0};
  // Set once a controlled shutdown has moved every leadership away: the
  // heartbeat stops (a heartbeat would re-register the fenced broker).
  std::atomic<bool> shut_down{false};
  // Set once the coordinator has accepted a controlled shutdown (this broker
  // is out of every in-sync set): fetching stops, so the leaders do not ask
  // to add it back.
  std::atomic<bool> leaving{false};
  std::atomic<int64_t> lease_deadline_ms{0};

  // Every registered broker's address (from heartbeats).
  mutable absl::Mutex brokers_mu;
  std::map<int32_t, std::string> broker_addrs ABSL_GUARDED_BY(brokers_mu);

  // One fetcher per leader broker this broker follows partitions from.
  // Changed by the heartbeat thread (ApplyRoles) and Stop.
  mutable absl::Mutex repl_mu;
  std::map<int32_t, std::unique_ptr<replication::ReplicaFetcher>> fetchers ABSL_GUARDED_BY(repl_mu);
  std::shared_ptr<boost::asio::steady_timer> retention_timer;

  // Wakes the loops: `stop_requested` ends them, `routes_dirty` triggers an
  // immediate registration with the name servers.
  absl::Mutex loop_mu;
  bool stop_requested ABSL_GUARDED_BY(loop_mu) = false;
  bool routes_dirty ABSL_GUARDED_BY(loop_mu) = false;

  // What the last heartbeat told us; the advertised address.
  mutable absl::Mutex meta_mu;
  std::vector<proto::CoordinatorInfo> coordinators ABSL_GUARDED_BY(meta_mu);
  int64_t metadata_offset ABSL_GUARDED_BY(meta_mu) = -1;

  // Outgoing connections, closed by Stop to unblock the loops.
  absl::Mutex client_mu;
  std::shared_ptr<rpc::RpcClient> coordinator_client ABSL_GUARDED_BY(client_mu);
  // AlterIsr and BrokerShutdown (the heartbeat connection is long-polled).
  std::shared_ptr<rpc::RpcClient> control_client ABSL_GUARDED_BY(client_mu);
  size_t control_idx ABSL_GUARDED_BY(client_mu) = 0;
  std::vector<std::shared_ptr<rpc::RpcClient>> nameserver_clients ABSL_GUARDED_BY(client_mu);

  // Parked fetch sessions (answered with SHUTTING_DOWN by Stop).
  absl::Mutex parked_mu;
  std::set<std::shared_ptr<FetchSession>> parked ABSL_GUARDED_BY(parked_mu);

  std::mutex stop_mu;
  bool stopped = false;
  absl::Status stop_status;

  // ---- helpers ----
  proto::BrokerInfo Self() const {
    absl::MutexLock l(&meta_mu);
    proto::BrokerInfo b;
    b.set_broker_id(options.id.value());
    b.set_host(options.advertised_host);
    b.set_port(options.port);
    return b;
  }

  std::vector<proto::CoordinatorInfo> Coordinators() const {
    absl::MutexLock l(&meta_mu);
    if (!coordinators.empty()) return coordinators;
    std::vector<proto::CoordinatorInfo> out;
    for (const auto& hp : options.coordinators) {
      auto parsed = rpc::ParseHostPort(hp);
      if (!parsed.ok()) continue;
      proto::CoordinatorInfo c;
      c.set_coordinator_id(-1);
      c.set_host(parsed->first);
      c.set_port(parsed->second);
      out.push_back(c);
    }
    return out;
  }

  // Waits up to `d` or until Stop (or `dirty`, when given) is signalled.
  void Sleep(std::chrono::milliseconds d, bool wake_on_dirty = false) {
    absl::MutexLock l(&loop_mu);
    auto cond = [this, wake_on_dirty]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_mu) {
      return stop_requested || (wake_on_dirty && routes_dirty);
    };
    loop_mu.AwaitWithTimeout(absl::Condition(&cond), absl::FromChrono(d));
  }

  std::shared_ptr<rpc::RpcClient> Connect(const std::string& host_port) {
    auto hp = rpc::ParseHostPort(host_port);
    if (!hp.ok()) return nullptr;
    rpc::ClientOptions copts;
    copts.connect_timeout = kConnectTimeout;
    auto c = rpc::RpcClient::Connect(io, hp->first, hp->second, copts);
    if (!c.ok()) return nullptr;
    return *c;
  }

  // ---- coordinator heartbeat ----
  void HeartbeatLoop() {
    size_t idx = 0;
    int64_t broker_epoch = 0;
    int64_t known = -1;
    bool first_apply = true;
    bool last_ok = true;
    int64_t lease_ms = 0;
    while (!stopping.load() && !shut_down.load()) {
      std::shared_ptr<rpc::RpcClient> client;
      {
        absl::MutexLock l(&client_mu);
        if (stopping.load()) break;
        if (coordinator_client == nullptr || !coordinator_client->connected()) {
          coordinator_client = nullptr;
        }
        client = coordinator_client;
      }
      const std::string& target = options.coordinators[idx % options.coordinators.size()];
      if (client == nullptr) {
        client = Connect(target);
        if (client == nullptr) {
          if (last_ok) spdlog::warn("broker: cannot connect to coordinator {}", target);
          last_ok = false;
          idx++;
          Sleep(kRetryBackoff);
          continue;
        }
        absl::MutexLock l(&client_mu);
        if (stopping.load()) {
          client->Close();
          break;
        }
        coordinator_client = client;
      }
      proto::BrokerHeartbeatRequest req;
      *req.mutable_broker() = Self();
      req.set_broker_epoch(broker_epoch);
      req.set_known_metadata_offset(known);
      // Parked at most a third of the lease, so the answer (renewing the
      // lease from this send time) arrives well before the lease lapses.
      int64_t wait = options.coordinator_heartbeat_ms;
      if (lease_ms > 0) wait = std::min<int64_t>(wait, std::max<int64_t>(lease_ms / 3, 1));
      req.set_max_wait_ms(known < 0 ? 0 : static_cast<int32_t>(wait));
      for (const auto& p : partitions->All()) {
        if (p->closed() || p->role() != Partition::Role::kLeader) continue;
        proto::PartitionHighWatermark* hw = req.add_high_watermarks();
        hw->set_topic(p->tp().topic);
        hw->set_partition(p->tp().partition.value());
        hw->set_high_watermark(p->high_watermark().value());
      }
      proto::BrokerHeartbeatResponse resp;
      auto sent = Clock::now();
      auto r = client->CallSync(proto::API_BROKER_HEARTBEAT, 0, req, {}, &resp,
                                std::chrono::milliseconds(options.coordinator_heartbeat_ms + 5000));
      if (stopping.load() || shut_down.load()) break;
      if (!r.ok()) {
        if (last_ok) {
          spdlog::warn("broker: heartbeat to coordinator {} failed: {}", target,
                       r.status().ToString());
        }
        last_ok = false;
        // Whatever failed (connection, timeout, a coordinator that is not the
        // leader or is stopping), start over with a fresh connection to the
        // next quorum member; the coordinator re-registers a broker whose
        // epoch it does not know.
        {
          absl::MutexLock l(&client_mu);
          if (coordinator_client == client) coordinator_client = nullptr;
        }
        client->Close();
        idx++;
        known = -1;
        Sleep(kRetryBackoff);
        continue;
      }
      if (!last_ok) spdlog::info("broker: heartbeat to coordinator {} succeeded", target);
      last_ok = true;
      broker_epoch = resp.broker_epoch();
      this->broker_epoch.store(broker_epoch);
      lease_ms = resp.lease_ms();
      if (resp.lease_ms() > 0) {
        lease_deadline_ms.store(
            std::chrono::duration_cast<std::chrono::milliseconds>(sent.time_since_epoch()).count() +
            resp.lease_ms());
      }
      registered.store(true);
      if (!resp.brokers().empty()) {
        absl::MutexLock l(&brokers_mu);
        broker_addrs.clear();
        for (const auto& b : resp.brokers()) {
          broker_addrs[b.broker_id()] = absl::StrCat(b.host(), ":", b.port());
        }
      }
      bool offset_moved = resp.metadata_offset() != known;
      if (offset_moved || first_apply) {
        std::vector<proto::PartitionAssignment> assignments(resp.assignments().begin(),
                                                            resp.assignments().end());
        auto changed = partitions->Apply(assignments, /*remove_unknown_dirs=*/first_apply);
        if (!changed.ok()) {
          if (stopping.load()) break;
          spdlog::error("broker: applying assignments failed: {}", changed.status().ToString());
          Sleep(kRetryBackoff);
          continue;
        }
        first_apply = false;
        ApplyRoles();
        {
          absl::MutexLock l(&meta_mu);
          coordinators.assign(resp.coordinators().begin(), resp.coordinators().end());
          metadata_offset = resp.metadata_offset();
        }
        if (*changed) {
          absl::MutexLock l(&loop_mu);
          routes_dirty = true;
        }
      }
      known = resp.metadata_offset();
      // A coordinator that answers at once with nothing new would make this
      // loop spin; pace it.
      if (!offset_moved && Clock::now() - sent < std::chrono::milliseconds(50)) {
        int64_t pause = options.coordinator_heartbeat_ms / 2;
        if (lease_ms > 0) pause = std::min<int64_t>(pause, lease_ms / 3);
        Sleep(std::chrono::milliseconds(std::max<int64_t>(pause, 1)));
      }
    }
  }

  // ---- replication: roles and fetchers ----
  std::optional<std::string> BrokerAddress(int32_t id) const {
    absl::MutexLock l(&brokers_mu);
    auto it = broker_addrs.find(id);
    if (it == broker_addrs.end()) return std::nullopt;
    return it->second;
  }

  // Derives every partition's role from its assignment and makes the
  // fetchers follow exactly the partitions led elsewhere. Heartbeat thread.
  void ApplyRoles() {
    const int64_t now = NowMs();
    std::map<int32_t, std::map<TopicPartition, std::pair<std::shared_ptr<Partition>, int32_t>>>
        want;
    for (const auto& p : partitions->All()) {
      if (p->closed()) continue;
      Partition::RoleChange rc = p->UpdateRole(options.id, now);
      proto::PartitionAssignment a = p->assignment();
      if (rc.epoch_changed) {
        spdlog::info("partition {}: {} in epoch {} (leader {}, isr {})", p->tp().ToString(),
                     rc.after == Partition::Role::kLeader     ? "leader"
                     : rc.after == Partition::Role::kFollower ? "follower"
                                                              : "no role",
                     a.leader_epoch(), a.leader(), JsonIntArray(a.isr()));
      }
      if (rc.after == Partition::Role::kFollower && !leaving.load()) {
        want[a.leader()][p->tp()] = {p, a.leader_epoch()};
      }
    }
    std::vector<std::unique_ptr<replication::ReplicaFetcher>> dead;
    {
      absl::MutexLock l(&repl_mu);
      if (stopping.load()) return;
      if (leaving.load()) want.clear();
      for (auto& [leader, parts] : want) {
        auto& f = fetchers[leader];
        if (f == nullptr) {
          replication::FetcherOptions fo;
          fo.self_id = options.id.value();
          fo.fetch_wait_ms = options.replica_fetch_wait_ms;
          // Fetchers are joined by Stop before the state goes away.
          State* self = this;
          fo.address = [self](int32_t id) { return self->BrokerAddress(id); };
          fo.broker_epoch = [self] { return self->broker_epoch.load(); };
          f = std::make_unique<replication::ReplicaFetcher>(io, leader, std::move(fo));
        }
        for (auto& [tp, pe] : parts) f->Follow(pe.first, pe.second);
      }
      for (auto it = fetchers.begin(); it != fetchers.end();) {
        auto w = want.find(it->first);
        for (const auto& st : it->second->Status()) {
          if (w == want.end() || !w->second.contains(st.tp)) it->second->Unfollow(st.tp);
        }
        if (it->second->empty()) {
          dead.push_back(std::move(it->second));
          it = fetchers.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& f : dead) f->Stop();
    if (queue != nullptr) queue->CheckLeadership();
  }

  void StopFetchers() {
    std::map<int32_t, std::unique_ptr<replication::ReplicaFetcher>> all;
    {
      absl::MutexLock l(&repl_mu);
      all.swap(fetchers);
    }
    for (auto& [leader, f] : all) f->Stop();
  }

  bool LeaseValid() const {
    int64_t deadline = lease_deadline_ms.load();
    return deadline == 0 || SteadyMs() < deadline;
  }

  int32_t MinInsyncReplicas(const proto::PartitionAssignment& a) const {
    if (a.config().has_min_insync_replicas()) return a.config().min_insync_replicas();
    if (options.default_topic_config.has_min_insync_replicas()) {
      return options.default_topic_config.min_insync_replicas();
    }
    return 1;
  }

  // Calls `api` on the active coordinator over the control connection,
  // moving to the next quorum member on NOT_COORDINATOR or a connection
  // failure, trying at most every member once.
  absl::Status CallCoordinator(proto::Api api, const google::protobuf::Message& req,
                               google::protobuf::Message* resp, std::chrono::milliseconds timeout) {
    absl::Status last = MakeError(proto::BROKER_NOT_AVAILABLE, "no coordinator");
    // Start with the leader named by the last heartbeat, when known.
    for (const auto& c : Coordinators()) {
      if (!c.leader()) continue;
      std::string addr = absl::StrCat(c.host(), ":", c.port());
      absl::MutexLock l(&client_mu);
      if (control_client == nullptr) {
        auto it = std::find(options.coordinators.begin(), options.coordinators.end(), addr);
        if (it != options.coordinators.end()) {
          control_idx = static_cast<size_t>(it - options.coordinators.begin());
        }
      }
    }
    for (size_t attempt = 0; attempt < options.coordinators.size(); ++attempt) {
      if (stop_requested_unlocked()) break;
      std::shared_ptr<rpc::RpcClient> client;
      size_t idx;
      {
        absl::MutexLock l(&client_mu);
        if (control_client != nullptr && !control_client->connected()) control_client = nullptr;
        client = control_client;
        idx = control_idx;
      }
      if (client == nullptr) {
        client = Connect(options.coordinators[idx % options.coordinators.size()]);
        if (client == nullptr) {
          absl::MutexLock l(&client_mu);
          control_idx++;
          last = MakeError(proto::BROKER_NOT_AVAILABLE, "cannot connect to the coordinator");
          continue;
        }
        absl::MutexLock l(&client_mu);
        control_client = client;
      }
      auto r = client->CallSync(api, 0, req, {}, resp, timeout);
      if (r.ok()) return absl::OkStatus();
      last = r.status();
      proto::ErrorCode code = ToErrorCode(r.status());
      if (code == proto::NOT_COORDINATOR || !client->connected() ||
          absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status())) {
        client->Close();
        absl::MutexLock l(&client_mu);
        if (control_client == client) control_client = nullptr;
        control_idx++;
        continue;
      }
      return last;
    }
    return last;
  }

  bool stop_requested_unlocked() {
    absl::MutexLock l(&loop_mu);
    return stop_requested;
  }

  // Leader side: every replica_lag_time_max_ms/4, asks the coordinator for
  // the in-sync set changes that are due. The committed set (from
  // heartbeats) stays in use until the change comes back that way.
  void IsrLoop() {
    const int64_t interval = std::max<int64_t>(options.replica_lag_time_max_ms / 4, 10);
    while (!stopping.load()) {
      Sleep(std::chrono::milliseconds(interval));
      if (stopping.load()) break;
      proto::AlterIsrRequest req;
      req.set_broker_id(options.id.value());
      req.set_broker_epoch(broker_epoch.load());
      const int64_t now = NowMs();
      for (const auto& p : partitions->All()) {
        if (p->closed() || p->role() != Partition::Role::kLeader || !p->replicated()) continue;
        auto next = p->ProposeIsr(now, options.replica_lag_time_max_ms);
        if (!next.has_value()) continue;
        proto::AlterIsrPartition* ap = req.add_partitions();
        ap->set_topic(p->tp().topic);
        ap->set_partition(p->tp().partition.value());
        ap->set_leader_epoch(p->leader_epoch().value());
        for (int32_t r : *next) ap->add_new_isr(r);
        spdlog::info("partition {}: asking to change the in-sync set {} -> {}", p->tp().ToString(),
                     JsonIntArray(p->assignment().isr()), JsonIntArray(ap->new_isr()));
      }
      if (req.partitions().empty()) continue;
      proto::AlterIsrResponse resp;
      absl::Status st = CallCoordinator(proto::API_ALTER_ISR, req, &resp, std::chrono::milliseconds(5000));
      if (!st.ok()) {
        if (!stopping.load()) spdlog::warn("broker: AlterIsr failed: {}", st.ToString());
        continue;
      }
      for (const auto& r : resp.partitions()) {
        if (r.error_code() != proto::NONE) {
          spdlog::warn("partition {}-{}: AlterIsr refused: {} {}", r.topic(), r.partition(),
                       proto::ErrorCode_Name(r.error_code()), r.error_message());
        }
      }
    }
  }

  // Controlled shutdown: asks the coordinator to move leadership away until
  // none is left here, the timeout passes, or several answers in a row show
  // no progress (the partitions left have no other live in-sync replica, as
  // for the last broker of a cluster to stop; Kafka likewise gives up after
  // a few retries). Skipped when no hosted partition has another replica
  // (there is nowhere to move it).
  void ControlledShutdown() {
    constexpr int kMaxAnswersWithoutProgress = 5;
    int32_t last_remaining = -1;
    int answers_without_progress = 0;
    if (!registered.load()) return;
    bool any_replicated = false;
    for (const auto& p : partitions->All()) any_replicated |= !p->closed() && p->replicated();
    if (!any_replicated) return;
    auto deadline = Clock::now() + std::chrono::milliseconds(options.controlled_shutdown_timeout_ms);
    while (Clock::now() < deadline) {
      proto::BrokerShutdownRequest req;
      req.set_broker_id(options.id.value());
      req.set_broker_epoch(broker_epoch.load());
      proto::BrokerShutdownResponse resp;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      absl::Status st = CallCoordinator(proto::API_BROKER_SHUTDOWN, req, &resp,
                                        std::max(left, std::chrono::milliseconds(1)));
      if (st.ok()) {
        if (!leaving.exchange(true)) StopFetchers();
        if (resp.remaining_leaders() == 0) {
          spdlog::info("broker: controlled shutdown: no partition led here any more");
          shut_down.store(true);
          return;
        }
        if (last_remaining >= 0 && resp.remaining_leaders() >= last_remaining) {
          if (++answers_without_progress >= kMaxAnswersWithoutProgress) {
            spdlog::warn(
                "broker: controlled shutdown: {} partition(s) have no other live in-sync "
                "replica; stopping while still leading them",
                resp.remaining_leaders());
            return;
          }
        } else {
          answers_without_progress = 0;
        }
        last_remaining = resp.remaining_leaders();
      } else {
        proto::ErrorCode code = ToErrorCode(st);
        // NOT_COORDINATOR from every member (an election) and connection
        // failures are retried until the timeout.
        if (code == proto::UNSUPPORTED_API || code == proto::INVALID_REQUEST ||
            code == proto::STALE_BROKER_EPOCH) {
          spdlog::warn("broker: controlled shutdown not possible: {}", st.ToString());
          return;
        }
      }
      std::this_thread::sleep_for(kRetryBackoff);
    }
    spdlog::warn("broker: controlled shutdown timed out");
  }

  // ---- name-server registration ----
  proto::RegisterBrokerRequest BuildRegistration() const {
    proto::RegisterBrokerRequest req;
    *req.mutable_broker() = Self();
    std::map<std::string, proto::TopicRoute*> by_topic;
    for (const auto& p : partitions->All()) {
      if (p->closed()) continue;
      proto::PartitionAssignment a = p->assignment();
      proto::TopicRoute*& route = by_topic[a.topic()];
      if (route == nullptr) {
        route = req.add_routes();
        route->set_topic(a.topic());
      }
      proto::PartitionRoute* pr = route->add_partitions();
      pr->set_partition(a.partition());
      pr->set_leader(a.leader());
      pr->set_leader_epoch(a.leader_epoch());
      *pr->mutable_replicas() = a.replicas();
      *pr->mutable_isr() = a.isr();
    }
    for (const auto& c : Coordinators()) *req.add_coordinators() = c;
    absl::MutexLock l(&meta_mu);
    req.set_metadata_offset(metadata_offset);
    return req;
  }

  void NameServerLoop() {
    const size_t n = options.nameservers.size();
    {
      absl::MutexLock l(&client_mu);
      nameserver_clients.assign(n, nullptr);
    }
    std::vector<bool> last_ok(n, true);
    while (!stopping.load()) {
      {
        absl::MutexLock l(&loop_mu);
        routes_dirty = false;
      }
      proto::RegisterBrokerRequest req = BuildRegistration();
      for (size_t i = 0; i < n && !stopping.load(); ++i) {
        std::shared_ptr<rpc::RpcClient> client;
        {
          absl::MutexLock l(&client_mu);
          if (nameserver_clients[i] != nullptr && !nameserver_clients[i]->connected()) {
            nameserver_clients[i] = nullptr;
          }
          client = nameserver_clients[i];
        }
        if (client == nullptr) {
          client = Connect(options.nameservers[i]);
          if (client == nullptr) {
            if (last_ok[i]) spdlog::warn("broker: cannot connect to name server {}", options.nameservers[i]);
            last_ok[i] = false;
            continue;
          }
          absl::MutexLock l(&client_mu);
          if (stopping.load()) {
            client->Close();
            break;
          }
          nameserver_clients[i] = client;
        }
        proto::RegisterBrokerResponse resp;
        auto r = client->CallSync(proto::API_REGISTER_BROKER, 0, req, {}, &resp,
                                  std::chrono::milliseconds(2000));
        if (!r.ok()) {
          if (last_ok[i]) {
            spdlog::warn("broker: registration with name server {} failed: {}",
                         options.nameservers[i], r.status().ToString());
          }
          last_ok[i] = false;
          continue;
        }
        if (!last_ok[i]) spdlog::info("broker: registered with name server {}", options.nameservers[i]);
        last_ok[i] = true;
      }
      Sleep(std::chrono::milliseconds(options.nameserver_heartbeat_ms), /*wake_on_dirty=*/true);
    }
  }

  // ---- retention ----
  void ScheduleRetention() {
    if (retention_timer == nullptr) {
      retention_timer = std::make_shared<boost::asio::steady_timer>(io);
    }
    retention_timer->expires_after(std::chrono::milliseconds(options.retention_check_ms));
    std::weak_ptr<State> weak = weak_from_this();
    retention_timer->async_wait([weak](const boost::system::error_code& ec) {
      if (ec) return;
      auto self = weak.lock();
      if (self == nullptr || self->stopping.load()) return;
      int64_t now = NowMs();
      for (const auto& p : self->partitions->All()) {
        auto n = p->log().ApplyRetention(now);
        if (!n.ok()) {
          if (!p->closed()) {
            spdlog::warn("partition {}: retention failed: {}", p->tp().ToString(),
                         n.status().ToString());
          }
        } else if (*n > 0) {
          spdlog::info("partition {}: retention deleted {} segment(s)", p->tp().ToString(), *n);
        }
      }
      self->ScheduleRetention();
    });
  }

  // ---- Produce ----
  void HandleProduce(rpc::Request req) {
    auto start = Clock::now();
    proto::ProduceRequest pr;
    auto fail = [&](proto::ErrorCode code, std::string_view msg) {
      CountError(proto::API_PRODUCE, code);
      req.RespondError(code, msg);
      produce_latency->Observe(SecondsSince(start));
    };
    if (!req.ParseHeader(&pr)) return fail(proto::INVALID_REQUEST, "unparsable ProduceRequest");
    if (pr.acks() != 0 && pr.acks() != 1 && pr.acks() != -1) {
      return fail(proto::INVALID_REQUIRED_ACKS, absl::StrCat("acks must be 0, 1 or -1, not ", pr.acks()));
    }
    uint64_t total = 0;
    for (const auto& p : pr.partitions()) total += p.size();
    std::span<uint8_t> payload = req.mutable_payload();
    if (total != payload.size()) {
      return fail(proto::INVALID_REQUEST,
                  absl::StrCat("partition sizes add up to ", total, " but the payload has ",
                               payload.size(), " bytes"));
    }
    if (stopping.load()) return fail(proto::SHUTTING_DOWN, "broker is stopping");

    auto ctx = std::make_shared<ProduceContext>();
    ctx->req = req;
    ctx->acks = pr.acks();
    ctx->start = start;
    for (int i = 0; i < pr.partitions_size(); ++i) ctx->resp.add_partitions();
    ctx->ack_pending.assign(static_cast<size_t>(pr.partitions_size()), 0);
    bool ack_waits = false;
    const bool lease_valid = LeaseValid();
    size_t pos = 0;
    for (int i = 0; i < pr.partitions_size(); ++i) {
      const proto::ProducePartition& pp = pr.partitions(i);
      std::span<uint8_t> data = payload.subspan(pos, pp.size());
      pos += pp.size();
      proto::ProducePartitionResult* res;
      {
        std::lock_guard<std::mutex> l(ctx->mu);
        res = ctx->resp.mutable_partitions(i);
        res->set_topic(pp.topic());
        res->set_partition(pp.partition());
        res->set_base_offset(-1);
        res->set_log_append_time(-1);
        res->set_log_start_offset(-1);
        res->set_leader_hint(-1);
      }
      auto set_error = [&](proto::ErrorCode code, std::string msg) {
        std::lock_guard<std::mutex> l(ctx->mu);
        res->set_error_code(code);
        res->set_error_message(std::move(msg));
      };
      std::shared_ptr<Partition> p = partitions->Get({pp.topic(), PartitionId(pp.partition())});
      if (p == nullptr) {
        set_error(proto::UNKNOWN_TOPIC_OR_PARTITION,
                  absl::StrCat("this broker does not host ", pp.topic(), "-", pp.partition()));
        continue;
      }
      NodeId leader = p->leader();
      const bool replicated = p->replicated();
      if (leader != options.id || (replicated && p->role() != Partition::Role::kLeader)) {
        set_error(proto::NOT_LEADER, absl::StrCat("broker ", options.id.value(),
                                                  " is not the leader of ", p->tp().ToString()));
        std::lock_guard<std::mutex> l(ctx->mu);
        res->set_leader_hint(leader.value() >= 0 && leader != options.id ? leader.value() : -1);
        continue;
      }
      if (!lease_valid) {
        // Fenced: a successor may exist already.
        set_error(proto::NOT_LEADER, absl::StrCat("broker ", options.id.value(),
                                                  " has lost its coordinator lease"));
        continue;
      }
      if (data.empty()) {
        set_error(proto::CORRUPT_MESSAGE, "no record batch for this partition");
        continue;
      }
      const bool wait_ack = ctx->acks == -1 && replicated;
      // Only acks=all needs the topic's min.insync.replicas: the assignment
      // (a proto copy under the partition's lock) stays off the acks=1 path.
      int32_t min_isr = 0;
      if (wait_ack) {
        min_isr = MinInsyncReplicas(p->assignment());
        if (static_cast<int64_t>(p->isr_size()) < min_isr) {
          set_error(proto::NOT_ENOUGH_REPLICAS,
                    absl::StrCat("in-sync set of ", p->tp().ToString(), " has ", p->isr_size(),
                                 " member(s), min.insync.replicas is ", min_isr));
          continue;
        }
      }
      auto appended = p->log().Append(data, p->leader_epoch());
      if (!appended.ok()) {
        set_error(ToErrorCode(appended.status()), std::string(appended.status().message()));
        continue;
      }
      p->NotifyAppended();
      p->bytes_in->Inc(static_cast<double>(appended->bytes));
      p->records_in->Inc(static_cast<double>(appended->last_offset - appended->base_offset + 1));
      {
        std::lock_guard<std::mutex> l(ctx->mu);
        res->set_base_offset(appended->base_offset.value());
        res->set_log_start_offset(p->log().log_start_offset().value());
      }
      metrics::Histogram* latency = produce_latency;
      if (wait_ack) {
        ack_waits = true;
        ctx->pending.fetch_add(1);
        {
          std::lock_guard<std::mutex> l(ctx->mu);
          ctx->ack_pending[static_cast<size_t>(i)] = 1;
        }
        // Runs where the high watermark advances (a fetch handler or the
        // flusher) or where leadership is lost; holds no broker reference.
        p->AddAckWaiter(appended->last_offset, min_isr, [latency, ctx, i](proto::ErrorCode code) {
          CompleteAck(ctx, i, code, latency);
        });
      }
      ctx->pending.fetch_add(1);
      // Runs on the flusher thread: holds no reference to the broker, so the
      // broker is never destroyed there.
      p->log().WhenDurable(appended->last_offset, [latency, ctx, p, i](absl::Status s) {
        p->RefreshHighWatermark();
        if (!s.ok()) {
          std::lock_guard<std::mutex> l(ctx->mu);
          auto* r = ctx->resp.mutable_partitions(i);
          r->set_error_code(ToErrorCode(s));
          r->set_error_message(std::string(s.message()));
          r->set_base_offset(-1);
        }
        if (ctx->pending.fetch_sub(1) == 1) FinishProduce(*ctx, latency);
      });
    }
    if (ack_waits) {
      int32_t timeout_ms = pr.timeout_ms() > 0 ? pr.timeout_ms() : kDefaultProduceTimeoutMs;
      ctx->timer = std::make_shared<boost::asio::steady_timer>(io);
      ctx->timer->expires_after(std::chrono::milliseconds(timeout_ms));
      metrics::Histogram* latency = produce_latency;
      ctx->timer->async_wait([ctx, latency](const boost::system::error_code& ec) {
        if (ec) return;
        for (size_t i = 0; i < ctx->ack_pending.size(); ++i) {
          CompleteAck(ctx, static_cast<int>(i), proto::REQUEST_TIMED_OUT, latency);
        }
      });
    }
    if (ctx->pending.fetch_sub(1) == 1) FinishProduce(*ctx, produce_latency);
  }

  // Ends the acks=all wait of partition `i` (once; later calls are no-ops).
  static void CompleteAck(const std::shared_ptr<ProduceContext>& ctx, int i, proto::ErrorCode code,
                          metrics::Histogram* latency) {
    {
      std::lock_guard<std::mutex> l(ctx->mu);
      if (!ctx->ack_pending[static_cast<size_t>(i)]) return;
      ctx->ack_pending[static_cast<size_t>(i)] = 0;
      auto* r = ctx->resp.mutable_partitions(i);
      if (code != proto::NONE && r->error_code() == proto::NONE) {
        r->set_error_code(code);
        switch (code) {
          case proto::REQUEST_TIMED_OUT:
            r->set_error_message("the in-sync replicas did not confirm the write in time");
            break;
          case proto::NOT_LEADER:
            r->set_error_message("leadership was lost before the write was replicated");
            break;
          case proto::NOT_ENOUGH_REPLICAS_AFTER_APPEND:
            r->set_error_message("written, but the in-sync set is below min.insync.replicas");
            break;
          default: break;
        }
        r->set_base_offset(-1);
      }
    }
    if (ctx->pending.fetch_sub(1) == 1) FinishProduce(*ctx, latency);
  }

  static void FinishProduce(ProduceContext& ctx, metrics::Histogram* latency) {
    std::lock_guard<std::mutex> l(ctx.mu);
    if (ctx.timer != nullptr) {
      auto timer = ctx.timer;
      boost::asio::post(timer->get_executor(), [timer] { timer->cancel(); });
    }
    for (const auto& r : ctx.resp.partitions()) CountError(proto::API_PRODUCE, r.error_code());
    if (ctx.acks != 0) ctx.req.Respond(ctx.resp);
    latency->Observe(SecondsSince(ctx.start));
  }

  // ---- Fetch ----
  void HandleFetch(rpc::Request req) {
    auto session = std::make_shared<FetchSession>(io, req);
    if (!req.ParseHeader(&session->fetch)) {
      CountError(proto::API_FETCH, proto::INVALID_REQUEST);
      req.RespondError(proto::INVALID_REQUEST, "unparsable FetchRequest");
      return;
    }
    if (stopping.load()) {
      CountError(proto::API_FETCH, proto::SHUTTING_DOWN);
      req.RespondError(proto::SHUTTING_DOWN, "broker is stopping");
      return;
    }
    session->waiting.assign(session->fetch.partitions_size(), false);
    auto self = shared_from_this();
    boost::asio::dispatch(session->strand, [self, session] { self->RunFetch(session, false); });
  }

  // Runs on session->strand. Reads every partition; answers when enough bytes
  // are there, on an error, at the deadline (`final`), or parks the session.
  void RunFetch(const std::shared_ptr<FetchSession>& s, bool final) {
    s->rerun_queued.store(false);
    if (s->done) return;
    const proto::FetchRequest& f = s->fetch;
    const bool may_park = !final && f.max_wait_ms() > 0 && !stopping.load();
    // A follower's fetch: its offset is its log end, and it may read up to
    // the leader's log end; it parks until the log end moves.
    const bool follower = f.replica_id() >= 0;

    std::vector<std::shared_ptr<Partition>> parts(f.partitions_size());
    for (int i = 0; i < f.partitions_size(); ++i) {
      parts[i] = partitions->Get({f.partitions(i).topic(), PartitionId(f.partitions(i).partition())});
    }
    // Register waiters before reading, so a high watermark that moves during
    // the read still wakes the session.
    if (may_park) {
      std::weak_ptr<FetchSession> weak = s;
      std::weak_ptr<State> weak_state = weak_from_this();
      for (int i = 0; i < f.partitions_size(); ++i) {
        if (parts[i] == nullptr || s->waiting[i]) continue;
        s->waiting[i] = true;
        auto wake = [weak, weak_state, i] {
          auto session = weak.lock();
          if (session == nullptr) return;
          boost::asio::post(session->strand, [session, i] { session->waiting[i] = false; });
          if (session->rerun_queued.exchange(true)) return;
          auto state = weak_state.lock();
          if (state == nullptr) return;
          // Moved, so this (flusher) thread keeps no reference to the broker
          // after the post.
          auto strand = session->strand;
          boost::asio::post(strand, [state = std::move(state), session = std::move(session)] {
            state->RunFetch(session, false);
          });
        };
        if (follower) {
          parts[i]->AddLogEndWaiter(std::move(wake));
        } else {
          parts[i]->AddWaiter(std::move(wake));
        }
      }
    }
    const bool record = follower && !s->recorded;
    s->recorded = true;
    const int64_t now_ms = NowMs();

    proto::FetchResponse resp;
    std::vector<uint8_t> payload;
    int64_t remaining = f.max_bytes() > 0 ? f.max_bytes() : kDefaultFetchMaxBytes;
    bool any_error = false;
    for (int i = 0; i < f.partitions_size(); ++i) {
      const proto::FetchPartition& fp = f.partitions(i);
      proto::FetchPartitionResult* res = resp.add_partitions();
      res->set_topic(fp.topic());
      res->set_partition(fp.partition());
      res->set_high_watermark(-1);
      res->set_log_start_offset(-1);
      res->set_last_stable_offset(-1);
      const auto& p = parts[i];
      if (p == nullptr) {
        res->set_error_code(proto::UNKNOWN_TOPIC_OR_PARTITION);
        res->set_error_message(absl::StrCat("this broker does not host ", fp.topic(), "-", fp.partition()));
        any_error = true;
        continue;
      }
      NodeId leader = p->leader();
      if (leader != options.id) {
        res->set_error_code(proto::NOT_LEADER);
        res->set_error_message(absl::StrCat("broker ", options.id.value(), " is not the leader"));
        any_error = true;
        continue;
      }
      const int32_t epoch = p->leader_epoch().value();
      res->set_leader_epoch(epoch);
      if (proto::ErrorCode code = CheckLeaderEpoch(
              fp.has_current_leader_epoch() ? fp.current_leader_epoch() : -1, epoch);
          code != proto::NONE) {
        res->set_error_code(code);
        res->set_error_message(absl::StrCat("fetch in leader epoch ", fp.current_leader_epoch(),
                                            ", the partition is in epoch ", epoch));
        any_error = true;
        continue;
      }
      if (record && !p->RecordFollowerFetch(NodeId(f.replica_id()), Offset(fp.fetch_offset()), now_ms)) {
        if (p->replicated()) {
          res->set_error_code(p->role() == Partition::Role::kLeader ? proto::INVALID_REQUEST
                                                                    : proto::NOT_LEADER);
          res->set_error_message(absl::StrCat("broker ", f.replica_id(), " is not a follower of ",
                                              p->tp().ToString(), " here"));
          any_error = true;
          continue;
        }
      }
      Offset hw = p->high_watermark();
      Offset log_end = p->log().log_end_offset();
      res->set_high_watermark(hw.value());
      res->set_last_stable_offset(hw.value());
      res->set_log_start_offset(p->log().log_start_offset().value());
      res->set_log_end_offset(log_end.value());
      if (!payload.empty() && remaining <= 0) continue;
      int64_t limit = fp.max_bytes() > 0 ? std::min<int64_t>(fp.max_bytes(), remaining) : remaining;
      auto data = p->log().Read(Offset(fp.fetch_offset()), static_cast<size_t>(std::max<int64_t>(limit, 1)),
                                follower ? log_end : hw);
      if (!data.ok()) {
        res->set_error_code(ToErrorCode(data.status()));
        res->set_error_message(std::string(data.status().message()));
        any_error = true;
        continue;
      }
      // Only the first non-empty partition may exceed the response limit.
      if (data->empty() || (!payload.empty() && static_cast<int64_t>(data->size()) > remaining)) {
        continue;
      }
      res->set_size(static_cast<uint32_t>(data->size()));
      remaining -= static_cast<int64_t>(data->size());
      if (!follower) {
        p->bytes_out->Inc(static_cast<double>(data->size()));
        p->records_out->Inc(static_cast<double>(RecordCount(*data)));
      }
      payload.insert(payload.end(), data->begin(), data->end());
    }

    bool enough = static_cast<int64_t>(payload.size()) >= std::max<int64_t>(f.min_bytes(), 1) ||
                  f.min_bytes() <= 0;
    if (!may_park || enough || any_error) {
      Complete(s, &resp, std::move(payload));
      return;
    }
    if (!s->parked) {
      bool admitted = false;
      {
        absl::MutexLock l(&parked_mu);
        if (parked.size() < options.max_parked_fetches && !stopping.load()) {
          parked.insert(s);
          admitted = true;
        }
      }
      if (!admitted) {
        Complete(s, &resp, std::move(payload));
        return;
      }
      s->parked = true;
      auto self = shared_from_this();
      s->timer.expires_at(s->start + std::chrono::milliseconds(f.max_wait_ms()));
      s->timer.async_wait([self, s](const boost::system::error_code& ec) {
        if (ec == boost::asio::error::operation_aborted) return;
        self->RunFetch(s, true);
      });
    }
  }

  // Runs on s->strand: sends the response (or `error`) once.
  void Complete(const std::shared_ptr<FetchSession>& s, proto::FetchResponse* resp,
                std::vector<uint8_t> payload, proto::ErrorCode error = proto::NONE) {
    if (s->done) return;
    s->done = true;
    if (s->parked) {
      s->timer.cancel();
      absl::MutexLock l(&parked_mu);
      parked.erase(s);
    }
    if (error != proto::NONE) {
      CountError(proto::API_FETCH, error);
      s->req.RespondError(error, "broker is stopping");
    } else {
      for (const auto& r : resp->partitions()) CountError(proto::API_FETCH, r.error_code());
      s->req.Respond(*resp, std::move(payload));
    }
    fetch_latency->Observe(SecondsSince(s->start));
  }

  // FENCED_LEADER_EPOCH when the requester's epoch is older than the
  // partition's, UNKNOWN_LEADER_EPOCH when newer; -1 is not checked.
  static proto::ErrorCode CheckLeaderEpoch(int32_t requested, int32_t current) {
    if (requested < 0 || requested == current) return proto::NONE;
    return requested < current ? proto::FENCED_LEADER_EPOCH : proto::UNKNOWN_LEADER_EPOCH;
  }

  // ---- OffsetForLeaderEpoch (KIP-101) ----
  void HandleOffsetForLeaderEpoch(rpc::Request req) {
    proto::OffsetForLeaderEpochRequest in;
    if (!req.ParseHeader(&in)) {
      CountError(proto::API_OFFSET_FOR_LEADER_EPOCH, proto::INVALID_REQUEST);
      req.RespondError(proto::INVALID_REQUEST, "unparsable OffsetForLeaderEpochRequest");
      return;
    }
    proto::OffsetForLeaderEpochResponse resp;
    for (const auto& part : in.partitions()) {
      proto::OffsetForLeaderEpochResult* res = resp.add_partitions();
      res->set_topic(part.topic());
      res->set_partition(part.partition());
      res->set_leader_epoch(-1);
      res->set_end_offset(-1);
      auto p = partitions->Get({part.topic(), PartitionId(part.partition())});
      if (p == nullptr) {
        res->set_error_code(proto::UNKNOWN_TOPIC_OR_PARTITION);
        res->set_error_message(absl::StrCat("this broker does not host ", part.topic(), "-", part.partition()));
      } else if (p->leader() != options.id || p->role() != Partition::Role::kLeader) {
        res->set_error_code(proto::NOT_LEADER);
        res->set_error_message(absl::StrCat("broker ", options.id.value(), " is not the leader"));
      } else if (proto::ErrorCode code =
                     CheckLeaderEpoch(part.has_current_leader_epoch() ? part.current_leader_epoch() : -1,
                                      p->leader_epoch().value());
                 code != proto::NONE) {
        res->set_error_code(code);
        res->set_error_message(absl::StrCat("request in leader epoch ", part.current_leader_epoch(),
                                            ", the partition is in epoch ", p->leader_epoch().value()));
      } else if (auto end = p->log().EndOffsetForEpoch(LeaderEpoch(part.leader_epoch()));
                 end.has_value()) {
        res->set_leader_epoch(end->first.value());
        res->set_end_offset(end->second.value());
      }
      CountError(proto::API_OFFSET_FOR_LEADER_EPOCH, res->error_code());
    }
    req.Respond(resp);
  }

  // ---- ListOffsets ----
  void HandleListOffsets(rpc::Request req) {
    auto start = Clock::now();
    proto::ListOffsetsRequest lr;
    if (!req.ParseHeader(&lr)) {
      CountError(proto::API_LIST_OFFSETS, proto::INVALID_REQUEST);
      req.RespondError(proto::INVALID_REQUEST, "unparsable ListOffsetsRequest");
      return;
    }
    proto::ListOffsetsResponse resp;
    for (const auto& lp : lr.partitions()) {
      proto::ListOffsetsResult* res = resp.add_partitions();
      res->set_topic(lp.topic());
      res->set_partition(lp.partition());
      res->set_offset(-1);
      res->set_timestamp(-1);
      auto p = partitions->Get({lp.topic(), PartitionId(lp.partition())});
      if (p == nullptr) {
        res->set_error_code(proto::UNKNOWN_TOPIC_OR_PARTITION);
        res->set_error_message(absl::StrCat("this broker does not host ", lp.topic(), "-", lp.partition()));
      } else if (p->leader() != options.id) {
        res->set_error_code(proto::NOT_LEADER);
        res->set_error_message(absl::StrCat("broker ", options.id.value(), " is not the leader"));
      } else if (lp.timestamp() == -2) {
        res->set_offset(p->log().log_start_offset().value());
      } else if (lp.timestamp() == -1) {
        res->set_offset(p->high_watermark().value());
      } else {
        auto off = p->log().OffsetForTimestamp(lp.timestamp());
        if (!off.ok()) {
          res->set_error_code(ToErrorCode(off.status()));
          res->set_error_message(std::string(off.status().message()));
        } else {
          res->set_offset(std::min(off->value(), p->high_watermark().value()));
        }
      }
      CountError(proto::API_LIST_OFFSETS, res->error_code());
    }
    req.Respond(resp);
    list_offsets_latency->Observe(SecondsSince(start));
  }

  // ---- Metadata ----
  void HandleMetadata(rpc::Request req) {
    auto start = Clock::now();
    proto::MetadataRequest mr;
    if (!req.ParseHeader(&mr)) {
      CountError(proto::API_METADATA, proto::INVALID_REQUEST);
      req.RespondError(proto::INVALID_REQUEST, "unparsable MetadataRequest");
      return;
    }
    proto::MetadataResponse resp;
    *resp.add_brokers() = Self();
    proto::RegisterBrokerRequest reg = BuildRegistration();
    std::set<std::string> wanted(mr.topics().begin(), mr.topics().end());
    const bool all = wanted.empty();
    for (const auto& route : reg.routes()) {
      if (all || wanted.contains(route.topic())) {
        *resp.add_topics() = route;
        wanted.erase(route.topic());
      }
    }
    if (!mr.topics().empty()) {
      for (const auto& t : wanted) {
        proto::TopicRoute* r = resp.add_topics();
        r->set_topic(t);
        r->set_error_code(proto::UNKNOWN_TOPIC_OR_PARTITION);
      }
    }
    *resp.mutable_coordinators() = reg.coordinators();
    req.Respond(resp);
    metadata_latency->Observe(SecondsSince(start));
  }

  // ---- admin ----
  std::string PartitionsJson() const {
    std::string out = "{\"broker_id\":" + std::to_string(options.id.value()) +
                      ",\"broker_epoch\":" + std::to_string(broker_epoch.load()) +
                      ",\"lease_valid\":" + (LeaseValid() ? "true" : "false") + ",\"partitions\":[";
    const auto follow = FollowStatuses();
    bool first = true;
    for (const auto& p : partitions->All()) {
      if (p->closed()) continue;
      proto::PartitionAssignment a = p->assignment();
      const auto& log = p->log();
      absl::StrAppend(&out, first ? "" : ",", "{\"topic\":\"", JsonEscape(p->tp().topic),
                      "\",\"partition\":", p->tp().partition.value(), ",\"topic_id\":\"",
                      JsonEscape(p->topic_id()), "\",\"leader\":", a.leader(),
                      ",\"leader_epoch\":", a.leader_epoch(),
                      ",\"replicas\":", JsonIntArray(a.replicas()),
                      ",\"isr\":", JsonIntArray(a.isr()),
                      ",\"log_start_offset\":", log.log_start_offset().value(),
                      ",\"log_end_offset\":", log.log_end_offset().value(),
                      ",\"high_watermark\":", p->high_watermark().value(),
                      ",\"durable_offset\":", log.durable_offset().value(),
                      ",\"size_bytes\":", log.size_bytes(),
                      ",\"segments\":", log.segment_count(),
                      ",\"failed\":", log.failed() ? "true" : "false",
                      ",\"role\":\"", RoleName(p->role()), "\"");
      if (p->role() == Partition::Role::kLeader) {
        absl::StrAppend(&out, ",\"epoch_start_offset\":", p->epoch_start_offset().value(),
                        ",\"followers\":[");
        const int64_t now = NowMs();
        bool first_f = true;
        for (const auto& f : p->Followers()) {
          absl::StrAppend(&out, first_f ? "" : ",", "{\"replica\":", f.id,
                          ",\"log_end_offset\":", f.log_end,
                          ",\"last_fetch_ms_ago\":", f.last_fetch_ms < 0 ? -1 : now - f.last_fetch_ms,
                          ",\"last_caught_up_ms_ago\":", now - f.last_caught_up_ms,
                          ",\"lag_records\":",
                          f.log_end < 0 ? -1 : log.log_end_offset().value() - f.log_end, "}");
          first_f = false;
        }
        out += "]";
      } else if (auto st = follow.find(p->tp()); st != follow.end()) {
        absl::StrAppend(&out, ",\"fetching_from\":", st->second.leader,
                        ",\"truncating\":", st->second.truncating ? "true" : "false",
                        ",\"leader_log_end_offset\":", st->second.leader_log_end,
                        ",\"leader_high_watermark\":", st->second.leader_hw);
      }
      out += "}";
      first = false;
    }
    return out + "]}";
  }

  static const char* RoleName(Partition::Role r) {
    switch (r) {
      case Partition::Role::kLeader: return "leader";
      case Partition::Role::kFollower: return "follower";
      default: return "none";
    }
  }

  std::map<TopicPartition, replication::FollowStatus> FollowStatuses() const {
    std::map<TopicPartition, replication::FollowStatus> out;
    absl::MutexLock l(&repl_mu);
    for (const auto& [leader, f] : fetchers) {
      for (auto& st : f->Status()) out[st.tp] = st;
    }
    return out;
  }

  void CollectMetrics() const {
    auto& reg = metrics::Registry::Global();
    const auto follow = FollowStatuses();
    for (const auto& p : partitions->All()) {
      if (p->closed()) continue;
      metrics::Labels labels = {{"topic", p->tp().topic},
                                {"partition", std::to_string(p->tp().partition.value())}};
      reg.GetGauge("brook_partition_size_bytes", labels, "Bytes on disk of a hosted partition")
          ->Set(static_cast<double>(p->log().size_bytes()));
      reg.GetGauge("brook_partition_log_end_offset", labels,
                   "Next offset to assign in a hosted partition")
          ->Set(static_cast<double>(p->log().log_end_offset().value()));
      reg.GetGauge("brook_partition_high_watermark", labels,
                   "High watermark of a hosted partition (consumers read below it)")
          ->Set(static_cast<double>(p->high_watermark().value()));
      const bool leader = p->role() == Partition::Role::kLeader;
      proto::PartitionAssignment a = p->assignment();
      reg.GetGauge("brook_partition_isr_size", labels,
                   "In-sync replicas of a partition led here (committed set)")
          ->Set(leader ? static_cast<double>(p->isr_size()) : 0);
      reg.GetGauge("brook_partition_under_replicated", labels,
                   "1 when a partition led here has fewer in-sync replicas than replicas")
          ->Set(leader && static_cast<int>(p->isr_size()) < a.replicas_size() ? 1 : 0);
      double lag = 0;
      if (auto st = follow.find(p->tp()); st != follow.end() && st->second.leader_log_end >= 0) {
        lag = static_cast<double>(
            std::max<int64_t>(0, st->second.leader_log_end - p->log().log_end_offset().value()));
      }
      reg.GetGauge("brook_replica_lag_records", labels,
                   "Records a follower replica is behind its leader's log end (0 on leaders)")
          ->Set(lag);
    }
    if (queue != nullptr) CollectQueueMetrics(reg);
  }

  // One set of gauges per queue subscription loaded on this broker.
  void CollectQueueMetrics(metrics::Registry& reg) const {
    for (const auto& q : queue->SubscriptionStates()) {
      const metrics::Labels labels = {
          {"topic", q.topic}, {"partition", std::to_string(q.partition)}, {"group", q.group}};
      const proto::QueuePartitionState& st = q.state;
      const std::pair<const char*, std::pair<int64_t, const char*>> gauges[] = {
          {"brook_queue_backlog",
           {st.backlog(), "Records of a queue subscription not yet handled (up to the high watermark)"}},
          {"brook_queue_in_flight", {st.in_flight(), "Records delivered and not yet acknowledged"}},
          {"brook_queue_delayed",
           {st.delayed(), "Records waiting for their deliver-at time or a redelivery back-off"}},
          {"brook_queue_ack_floor", {st.ack_floor(), "Every offset below it is handled"}},
          {"brook_queue_consumers", {st.consumers(), "Consumers seen within the ack timeout"}},
          {"brook_queue_acked",
           {st.acked(), "Records acknowledged since the subscription was created"}},
          {"brook_queue_filtered", {st.filtered(), "Records skipped by the tag filter, in all"}},
          {"brook_queue_dead_lettered", {st.dead_lettered(), "Records sent to the dead-letter topic, in all"}},
          {"brook_queue_redeliveries", {st.redeliveries(), "Redeliveries (ack timeouts and nacks), in all"}},
      };
      for (const auto& [name, value_help] : gauges) {
        reg.GetGauge(name, labels, value_help.second)
            ->Set(static_cast<double>(value_help.first));
      }
    }
  }
};

namespace {

// A hosted partition as the queue service sees it.
class PartitionQueueView : public queue::PartitionView {
 public:
  explicit PartitionQueueView(std::shared_ptr<Partition> p) : p_(std::move(p)) {}
  std::string topic_id() const override { return p_->topic_id(); }
  int32_t leader_epoch() const override { return p_->leader_epoch().value(); }
  int64_t log_start_offset() const override { return p_->log().log_start_offset().value(); }
  int64_t high_watermark() const override { return p_->high_watermark().value(); }
  absl::StatusOr<std::vector<uint8_t>> Read(int64_t offset, size_t max_bytes) const override {
    return p_->log().Read(Offset(offset), max_bytes, p_->high_watermark());
  }
  void AddWaiter(std::function<void()> waiter) override { p_->AddWaiter(std::move(waiter)); }

 private:
  std::shared_ptr<Partition> p_;
};

}  // namespace

// The broker as the queue service's host. Lives in (and never outlives) the
// broker's State.
class BrokerQueueHost : public queue::QueueHost {
 public:
  explicit BrokerQueueHost(Broker::State* s) : s_(s) {}

  std::shared_ptr<queue::PartitionView> Lead(const std::string& topic, int32_t partition,
                                             proto::ErrorCode* code, std::string* message) override {
    auto p = s_->partitions->Get({topic, PartitionId(partition)});
    if (p == nullptr || p->closed()) {
      *code = proto::UNKNOWN_TOPIC_OR_PARTITION;
      *message = absl::StrCat("this broker does not host ", topic, "-", partition);
      return nullptr;
    }
    if (p->leader() != s_->options.id || (p->replicated() && p->role() != Partition::Role::kLeader)) {
      *code = proto::NOT_LEADER;
      *message = absl::StrCat("broker ", s_->options.id.value(), " is not the leader of ", topic, "-",
                              partition);
      return nullptr;
    }
    if (!s_->LeaseValid()) {
      *code = proto::NOT_LEADER;
      *message = absl::StrCat("broker ", s_->options.id.value(), " has lost its coordinator lease");
      return nullptr;
    }
    return std::make_shared<PartitionQueueView>(std::move(p));
  }

  std::vector<int32_t> LedPartitions(const std::string& topic) override {
    std::vector<int32_t> out;
    for (const auto& p : s_->partitions->All()) {
      if (p->closed() || p->tp().topic != topic || p->leader() != s_->options.id) continue;
      if (p->replicated() && p->role() != Partition::Role::kLeader) continue;
      out.push_back(p->tp().partition.value());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  absl::Status CallCoordinator(proto::Api api, const google::protobuf::Message& req,
                               google::protobuf::Message* resp,
                               std::chrono::milliseconds timeout) override {
    return s_->CallCoordinator(api, req, resp, timeout);
  }

 private:
  Broker::State* const s_;
};

absl::StatusOr<std::unique_ptr<Broker>> Broker::Open(storage::FileSystem* fs, BrokerOptions options,
                                                     boost::asio::io_context& io) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("broker: data_dir is empty");
  if (options.coordinators.empty()) {
    return absl::InvalidArgumentError("broker: no coordinator address given");
  }
  for (const auto& hp : options.coordinators) {
    if (auto p = rpc::ParseHostPort(hp); !p.ok()) return p.status();
  }
  for (const auto& hp : options.nameservers) {
    if (auto p = rpc::ParseHostPort(hp); !p.ok()) return p.status();
  }
  if (options.coordinator_heartbeat_ms <= 0 || options.nameserver_heartbeat_ms <= 0 ||
      options.retention_check_ms <= 0 || options.log_cleaner_interval_ms <= 0) {
    return absl::InvalidArgumentError("broker: heartbeat and retention intervals must be positive");
  }
  if (auto s = fs->CreateDirs(options.data_dir); !s.ok()) return s;
  auto state = std::make_shared<State>(fs, std::move(options), io);
  state->flusher = std::make_unique<storage::Flusher>();
  state->partitions = std::make_unique<PartitionManager>(
      fs, state->flusher.get(), state->options.data_dir, state->options.default_topic_config);
  {
    storage::LogCleaner::Options co;
    co.interval_ms = state->options.log_cleaner_interval_ms;
    PartitionManager* pm = state->partitions.get();
    co.targets = [pm] {
      std::vector<storage::LogCleaner::Target> out;
      for (const auto& p : pm->All()) {
        if (p->closed()) continue;
        // Only records below the high watermark decide what is removed:
        // anything above it may still be truncated away.
        out.push_back({p->tp().ToString(), p, &p->log(), p->high_watermark()});
      }
      return out;
    };
    auto& reg = metrics::Registry::Global();
    metrics::Counter* runs = reg.GetCounter("brook_log_cleaner_runs_total", {},
                                            "Log compactions that cleaned a partition");
    metrics::Counter* removed = reg.GetCounter("brook_log_cleaner_bytes_removed_total", {},
                                               "Bytes removed from partitions by log compaction");
    co.on_result = [runs, removed](const storage::LogCleaner::Target&,
                                   const storage::CompactionStats& st) {
      if (!st.cleaned) return;
      runs->Inc();
      removed->Inc(static_cast<double>(st.bytes_removed));
    };
    state->cleaner = std::make_unique<storage::LogCleaner>(std::move(co));
  }
  state->queue_host = std::make_unique<BrokerQueueHost>(state.get());
  queue::QueueServiceOptions qo;
  qo.dir = state->options.data_dir + "/__queues";
  state->queue = std::make_unique<queue::QueueService>(
      io, fs, state->queue_host.get(),
      std::make_unique<queue::ProducerDeadLetterSink>(absl::StrJoin(state->options.nameservers, ",")),
      std::move(qo));
  // Registered at zero so they are exported before the first change.
  metrics::Registry::Global().GetCounter("brook_isr_shrinks_total", {},
                                         "In-sync set shrinks committed for partitions led here");
  metrics::Registry::Global().GetCounter("brook_isr_expands_total", {},
                                         "In-sync set expansions committed for partitions led here");
  std::weak_ptr<State> weak = state;
  metrics::Registry::Global().AddCollector([weak] {
    if (auto s = weak.lock()) s->CollectMetrics();
  });
  return std::unique_ptr<Broker>(new Broker(std::move(state)));
}

Broker::Broker(std::shared_ptr<State> state) : state_(std::move(state)) {}

Broker::~Broker() { Stop().IgnoreError(); }

void Broker::RegisterApis(rpc::RpcServer& server) {
  std::shared_ptr<State> s = state_;
  server.Register(proto::API_PRODUCE, 0, [s](rpc::Request r) { s->HandleProduce(std::move(r)); });
  server.Register(proto::API_FETCH, 0, [s](rpc::Request r) { s->HandleFetch(std::move(r)); });
  server.Register(proto::API_LIST_OFFSETS, 0,
                  [s](rpc::Request r) { s->HandleListOffsets(std::move(r)); });
  server.Register(proto::API_METADATA, 0, [s](rpc::Request r) { s->HandleMetadata(std::move(r)); });
  server.Register(proto::API_OFFSET_FOR_LEADER_EPOCH, 0,
                  [s](rpc::Request r) { s->HandleOffsetForLeaderEpoch(std::move(r)); });
  s->queue->RegisterApis(server);
}

void Broker::RegisterAdmin(http::AdminServer& admin) {
  std::weak_ptr<State> weak = state_;
  admin.Handle("/admin/partitions", [weak](const http::HttpRequest&) {
    http::HttpResponse resp;
    auto s = weak.lock();
    if (s == nullptr) {
      resp.status = 503;
      resp.body = "{\"error\":\"broker is gone\"}";
      return resp;
    }
    resp.body = s->PartitionsJson();
    return resp;
  });
}

void Broker::SetAdvertisedAddress(std::string host, uint16_t port) {
  absl::MutexLock l(&state_->meta_mu);
  state_->options.advertised_host = std::move(host);
  state_->options.port = port;
}

void Broker::Start() {
  if (state_->started.exchange(true) || state_->stopping.load()) return;
  State* s = state_.get();
  s->heartbeat_thread = std::thread([s] { s->HeartbeatLoop(); });
  s->isr_thread = std::thread([s] { s->IsrLoop(); });
  s->queue->Start();
  s->cleaner->Start();
  if (!s->options.nameservers.empty()) {
    s->nameserver_thread = std::thread([s] { s->NameServerLoop(); });
  }
  boost::asio::post(s->io, [weak = std::weak_ptr<State>(state_)] {
    if (auto st = weak.lock()) st->ScheduleRetention();
  });
}

bool Broker::registered() const { return state_->registered.load(); }

absl::Status Broker::Stop() {
  State* s = state_.get();
  std::lock_guard<std::mutex> stop_lock(s->stop_mu);
  if (s->stopped) return s->stop_status;
  s->stopped = true;
  // While the loops still run (heartbeats bring the new assignments).
  if (s->started.load()) s->ControlledShutdown();
  s->stopping.store(true);
  s->queue->Stop();
  {
    absl::MutexLock l(&s->loop_mu);
    s->stop_requested = true;
  }
  {
    absl::MutexLock l(&s->client_mu);
    if (s->coordinator_client != nullptr) s->coordinator_client->Close();
    if (s->control_client != nullptr) s->control_client->Close();
    for (auto& c : s->nameserver_clients) {
      if (c != nullptr) c->Close();
    }
  }
  if (s->heartbeat_thread.joinable()) s->heartbeat_thread.join();
  if (s->nameserver_thread.joinable()) s->nameserver_thread.join();
  if (s->isr_thread.joinable()) s->isr_thread.join();
  s->StopFetchers();
  {
    absl::MutexLock l(&s->client_mu);
    s->coordinator_client = nullptr;
    s->control_client = nullptr;
    s->nameserver_clients.clear();
  }
  std::set<std::shared_ptr<FetchSession>> parked;
  {
    absl::MutexLock l(&s->parked_mu);
    parked = s->parked;
  }
  for (const auto& session : parked) {
    boost::asio::post(session->strand, [st = state_, session] {
      st->Complete(session, nullptr, {}, proto::SHUTTING_DOWN);
    });
  }
  s->cleaner->Stop();  // before the logs close
  s->stop_status = s->partitions->CloseAll();
  return s->stop_status;
}

}  // namespace brook::broker
