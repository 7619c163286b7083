// Coordinator: the metadata state machine on Raft, the controller thread
// (topic administration, broker registration, in-sync set changes, controlled
// shutdown, lease checks, elections, rebalancing) and the read-only APIs.
#include "coordinator/coordinator.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/steady_timer.hpp"
#include "common/check.h"
#include "common/errors.h"
#include "common/http/metrics.h"
#include "coordinator/admin_json.h"
#include "coordinator/controller.h"
#include "coordinator/group_service.h"
#include "coordinator/metadata_log.h"
#include "coordinator/metadata_state.h"
#include "coordinator/raft_host.h"
#include "google/protobuf/struct.pb.h"
#include "proto/metadata.pb.h"
#include "spdlog/spdlog.h"

namespace brook::coordinator {
namespace {

using Clock = std::chrono::steady_clock;
using proto::ErrorCode;

constexpr int32_t kMaxPartitions = 10000;
constexpr size_t kMaxTopicNameLength = 249;

absl::Status ValidateTopicConfig(const proto::TopicConfig& c, int32_t replication_factor) {
  auto invalid = [](const std::string& what) { return MakeError(ErrorCode::INVALID_CONFIG, what); };
  if (!proto::FlushPolicy_IsValid(c.flush_policy())) {
    return invalid(absl::StrCat("unknown flush_policy ", c.flush_policy()));
  }
  if (c.has_flush_interval_ms() && c.flush_interval_ms() <= 0) {
    return invalid("flush_interval_ms must be > 0");
  }
  if (c.has_segment_bytes() && c.segment_bytes() <= 0) return invalid("segment_bytes must be > 0");
  if (c.has_segment_ms() && c.segment_ms() <= 0) return invalid("segment_ms must be > 0");
  if (c.has_retention_ms() && c.retention_ms() < -1) return invalid("retention_ms must be >= -1");
  if (c.has_retention_bytes() && c.retention_bytes() < -1) {
    return invalid("retention_bytes must be >= -1");
  }
  if (c.has_max_message_bytes() && c.max_message_bytes() <= 0) {
    return invalid("max_message_bytes must be > 0");
  }
  if (c.has_index_interval_bytes() && c.index_interval_bytes() <= 0) {
    return invalid("index_interval_bytes must be > 0");
  }
  if (c.has_min_insync_replicas() &&
      (c.min_insync_replicas() < 1 || c.min_insync_replicas() > replication_factor)) {
    return invalid(absl::StrCat("min_insync_replicas must be in 1..", replication_factor));
  }
  if (c.has_cleanup_policy() && !proto::CleanupPolicy_IsValid(c.cleanup_policy())) {
    return invalid(absl::StrCat("unknown cleanup_policy ", c.cleanup_policy()));
  }
  if (c.has_delete_retention_ms() && c.delete_retention_ms() < 0) {
    return invalid("delete_retention_ms must be >= 0");
  }
  if (c.has_min_compaction_lag_ms() && c.min_compaction_lag_ms() < 0) {
    return invalid("min_compaction_lag_ms must be >= 0");
  }
  if (c.has_min_cleanable_dirty_ratio() &&
      !(c.min_cleanable_dirty_ratio() >= 0.0 && c.min_cleanable_dirty_ratio() <= 1.0)) {
    return invalid("min_cleanable_dirty_ratio must be in [0, 1]");
  }
  return absl::OkStatus();
}


}  // namespace

bool IsValidTopicName(const std::string& name) {
  if (name.empty() || name.size() > kMaxTopicNameLength || name == "." || name == "..") {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

struct Coordinator::Impl : std::enable_shared_from_this<Impl> {
  // A heartbeat held until metadata passes `known_offset` or its timer fires.
  struct Parked {
    rpc::Request request;
    int32_t broker_id = 0;
    int64_t known_offset = 0;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  // A response to send once the mutex is released.
  struct Wakeup {
    rpc::Request request;
    proto::BrokerHeartbeatResponse response;
  };

  Impl(CoordinatorOptions o, boost::asio::io_context& i)
      : options(std::move(o)), io(i), rng(std::random_device{}()) {
    auto& registry = metrics::Registry::Global();
    topics_gauge = registry.GetGauge("brook_coordinator_topics", {}, "Topics in the metadata image");
    brokers_gauge = registry.GetGauge("brook_coordinator_brokers", {},
                                      "Brokers registered in the metadata image");
    appends_counter = registry.GetCounter("brook_coordinator_metadata_appends_total", {},
                                          "Metadata records committed and applied");
    term_gauge = registry.GetGauge("brook_coordinator_raft_term", {}, "Current Raft term");
    is_leader_gauge = registry.GetGauge("brook_coordinator_is_leader", {},
                                        "1 when this coordinator is the Raft leader");
    leader_changes = registry.GetCounter("brook_coordinator_leader_changes_total", {},
                                         "Changes of the coordinator leader seen here");
    elections = registry.GetCounter("brook_controller_leader_elections_total", {},
                                    "Partition leader changes applied");
    isr_changes = registry.GetCounter("brook_controller_isr_changes_total", {},
                                      "Partition in-sync set changes applied");
    fenced_counter = registry.GetCounter("brook_controller_brokers_fenced_total", {},
                                         "Brokers fenced (lease lost or shut down)");
    members = options.quorum;
    if (members.empty()) members.push_back(CoordinatorMember{options.id, "", 0});
    GroupServiceOptions go;
    go.id = options.id;
    go.config = options.groups;
    groups = std::make_unique<GroupService>(
        std::move(go),
        [this](std::vector<std::string> entries, std::function<void(absl::Status)> done) {
          raft->Propose(std::move(entries), [done = std::move(done)](
                                                absl::StatusOr<raft::LogIndex> r) {
            done(r.status());
          });
        },
        [this] {
          absl::MutexLock lock(&mu);
          return NotCoordinatorMessage();
        });
  }

  const CoordinatorOptions options;
  boost::asio::io_context& io;
  // Set once by Open before any thread but the Raft thread uses the Impl.
  std::unique_ptr<RaftHost> raft;
  // Consumer groups: the shadow fed by OnApply / OnRestore, the active group
  // coordinator while this member serves. Started by Open once `raft` is set.
  std::unique_ptr<GroupService> groups;
  // What GroupService::SetLeadership was last told (Raft thread).
  bool groups_serving = false;
  Term groups_term;
  metrics::Gauge* topics_gauge;
  metrics::Gauge* brokers_gauge;
  metrics::Counter* appends_counter;
  metrics::Gauge* term_gauge;
  metrics::Gauge* is_leader_gauge;
  metrics::Counter* leader_changes;
  metrics::Counter* elections;
  metrics::Counter* isr_changes;
  metrics::Counter* fenced_counter;

  mutable absl::Mutex mu;
  MetadataState state ABSL_GUARDED_BY(mu);
  std::map<int32_t, Clock::time_point> lease_deadlines ABSL_GUARDED_BY(mu);
  std::map<uint64_t, Parked> parked ABSL_GUARDED_BY(mu);
  uint64_t next_park_id ABSL_GUARDED_BY(mu) = 1;
  bool closed ABSL_GUARDED_BY(mu) = false;
  bool serving ABSL_GUARDED_BY(mu) = false;
  std::optional<NodeId> leader ABSL_GUARDED_BY(mu);
  Term term ABSL_GUARDED_BY(mu);
  uint64_t placement_rotation ABSL_GUARDED_BY(mu) = 0;
  std::mt19937_64 rng ABSL_GUARDED_BY(mu);
  std::vector<CoordinatorMember> members ABSL_GUARDED_BY(mu);
  Clock::time_point next_rebalance ABSL_GUARDED_BY(mu);

  // The controller thread and its queue of mutating tasks.
  std::mutex task_mu;
  std::condition_variable task_cv;
  std::deque<std::function<void()>> tasks;  // guarded by task_mu
  bool task_stop = false;                   // guarded by task_mu
  std::thread controller;

  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    topics_gauge->Set(static_cast<double>(state.topics().size()));
    brokers_gauge->Set(static_cast<double>(state.brokers().size()));
  }

  // ---- Raft callbacks (Raft thread) ---------------------------------------

  void OnApply(raft::LogIndex index, const std::string& data) {
    auto record = DecodeMetadataRecord(data);
    if (!record.ok()) {
      // Every member skips the same entry, so the images stay equal.
      spdlog::critical("coordinator: skipping undecodable metadata entry {}: {}", index.value(),
                       record.status().ToString());
      return;
    }
    if (groups::GroupCoordinator::IsGroupRecord(*record)) {
      // Consumer group records advance the metadata offset only; parked
      // broker heartbeats are not woken for them.
      {
        absl::MutexLock lock(&mu);
        if (absl::Status s = state.Apply(Offset(index.value()), *record); !s.ok()) {
          spdlog::error("coordinator: metadata entry {} not applied: {}", index.value(),
                        s.ToString());
          return;
        }
        appends_counter->Inc();
      }
      groups->ApplyCommitted(*record);
      return;
    }
    std::vector<Wakeup> wakeups;
    {
      absl::MutexLock lock(&mu);
      CountChange(*record);
      if (absl::Status s = state.Apply(Offset(index.value()), *record); !s.ok()) {
        spdlog::error("coordinator: metadata entry {} not applied: {}", index.value(),
                      s.ToString());
        return;
      }
      appends_counter->Inc();
      UpdateGauges();
      wakeups = TakeWakeups();
    }
    if (record->has_remove_topic()) groups->ForgetHighWatermarks(record->remove_topic().name());
    Send(std::move(wakeups));
  }

  // Controller metrics, from the record about to be applied.
  void CountChange(const proto::MetadataRecord& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (r.has_partition_change()) {
      const proto::PartitionChangeRecord& c = r.partition_change();
      const proto::TopicDescription* t = state.FindTopic(c.topic());
      if (t == nullptr || t->topic_id() != c.topic_id() || c.partition() < 0 ||
          c.partition() >= t->partitions_size()) {
        return;
      }
      const proto::PartitionDescription& p = t->partitions(c.partition());
      if (p.leader() != c.leader()) elections->Inc();
      if (std::vector<int32_t>(p.isr().begin(), p.isr().end()) !=
          std::vector<int32_t>(c.isr().begin(), c.isr().end())) {
        isr_changes->Inc();
      }
    } else if (r.has_fence_broker()) {
      const BrokerRegistration* b = state.FindBroker(NodeId(r.fence_broker().broker_id()));
      if (b != nullptr && !b->fenced && b->epoch == r.fence_broker().broker_epoch()) {
        fenced_counter->Inc();
      }
    }
  }

  absl::Status OnRestore(const raft::Snapshot& snapshot) {
    auto decoded = DecodeMetadataSnapshot(snapshot.data);
    if (!decoded.ok()) return decoded.status();
    if (absl::Status s = groups->Restore(decoded->group_records()); !s.ok()) return s;
    // Topics may be gone; leaders report again within a heartbeat.
    groups->ClearHighWatermarks();
    absl::MutexLock lock(&mu);
    if (absl::Status s = state.Restore(*decoded); !s.ok()) return s;
    UpdateGauges();
    return absl::OkStatus();
  }

  std::string OnTakeSnapshot() {
    proto::MetadataSnapshot snapshot;
    {
      absl::MutexLock lock(&mu);
      snapshot = state.ToSnapshot();
    }
    for (proto::MetadataRecord& r : groups->SnapshotRecords()) {
      *snapshot.add_group_records() = std::move(r);
    }
    return EncodeMetadataSnapshot(snapshot);
  }

  void OnStateChanged(const RaftHostStatus& st) {
    std::vector<rpc::Request> to_fail;
    std::string why;
    bool now_serving;
    {
      absl::MutexLock lock(&mu);
      term_gauge->Set(static_cast<double>(st.term.value()));
      is_leader_gauge->Set(st.role == raft::Role::kLeader ? 1 : 0);
      if (st.leader != leader && st.leader.has_value()) leader_changes->Inc();
      leader = st.leader;
      term = st.term;
      const bool was_serving = serving;
      serving = st.serving && !closed;
      if (serving && !was_serving) {
        // Brokers heartbeated the old leader; give each a full lease here.
        const auto deadline = Clock::now() + std::chrono::milliseconds(options.broker_lease_ms);
        lease_deadlines.clear();
        for (const auto& [id, reg] : state.brokers()) {
          if (!reg.fenced) lease_deadlines[id] = deadline;
        }
        next_rebalance =
            Clock::now() + std::chrono::milliseconds(options.leader_rebalance_interval_ms);
        spdlog::info("coordinator {}: serving as leader in term {} ({} brokers given a lease)",
                     options.id.value(), st.term.value(), lease_deadlines.size());
      } else if (!serving && was_serving) {
        lease_deadlines.clear();
        for (auto& [id, p] : parked) {
          p.timer->cancel();
          to_fail.push_back(std::move(p.request));
        }
        parked.clear();
        why = NotCoordinatorMessage();
      }
      now_serving = serving;
    }
    for (const rpc::Request& r : to_fail) r.RespondError(ErrorCode::NOT_COORDINATOR, why);
    // The group coordinator follows: created (from the replica) when this
    // member starts serving, unloaded when it stops.
    if (now_serving != groups_serving || (now_serving && st.term != groups_term)) {
      groups_serving = now_serving;
      groups_term = st.term;
      groups->SetLeadership(now_serving, st.term.value());
    }
  }

  // ---- helpers ------------------------------------------------------------

  std::string NotCoordinatorMessage() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (leader.has_value() && *leader != options.id) {
      for (const CoordinatorMember& m : members) {
        if (m.id == *leader) {
          return absl::StrCat("leader is coordinator ", leader->value(), " at ", m.host, ":",
                              m.port);
        }
      }
      return absl::StrCat("leader is coordinator ", leader->value());
    }
    if (leader == options.id) {
      if (closed) {
        return absl::StrCat("coordinator ", options.id.value(),
                            " is shutting down and handing over its leadership");
      }
      return absl::StrCat("coordinator ", options.id.value(),
                          " was just elected leader and is not serving yet");
    }
    return absl::StrCat("coordinator ", options.id.value(),
                        " is not the leader and knows no leader (election in progress)");
  }

  // Answers `req` with an error and returns false unless this member serves.
  bool CheckServing(const rpc::Request& req) const {
    absl::MutexLock lock(&mu);
    if (closed) {
      req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
      return false;
    }
    if (!serving) {
      req.RespondError(ErrorCode::NOT_COORDINATOR, NotCoordinatorMessage());
      return false;
    }
    return true;
  }

  // An error status for a request that cannot be served now, or OK.
  absl::Status ServingStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (closed) return MakeError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
    if (!serving) return MakeError(ErrorCode::NOT_COORDINATOR, NotCoordinatorMessage());
    return absl::OkStatus();
  }

  // A proposal failure as the client should see it (NOT_COORDINATOR names
  // the leader when known).
  absl::Status ProposalError(const absl::Status& s) const {
    if (ToErrorCode(s) != ErrorCode::NOT_COORDINATOR) return s;
    absl::MutexLock lock(&mu);
    return MakeError(ErrorCode::NOT_COORDINATOR,
                     absl::StrCat(s.message(), "; ", NotCoordinatorMessage()));
  }

  bool IsLive(int32_t broker_id, Clock::time_point now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const BrokerRegistration* reg = state.FindBroker(NodeId(broker_id));
    if (reg == nullptr || reg->fenced) return false;
    auto it = lease_deadlines.find(broker_id);
    return it != lease_deadlines.end() && it->second > now;
  }

  std::set<int32_t> LiveBrokers(Clock::time_point now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::set<int32_t> out;
    for (const auto& [id, reg] : state.brokers()) {
      if (IsLive(id, now)) out.insert(id);
    }
    return out;
  }

  void FillCoordinators(google::protobuf::RepeatedPtrField<proto::CoordinatorInfo>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (const CoordinatorMember& m : members) {
      if (m.port == 0) continue;
      proto::CoordinatorInfo* c = out->Add();
      c->set_coordinator_id(m.id.value());
      c->set_host(m.host);
      c->set_port(m.port);
      c->set_leader(leader == m.id);
    }
  }

  proto::BrokerHeartbeatResponse BuildHeartbeatResponse(int32_t broker_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    proto::BrokerHeartbeatResponse resp;
    if (const BrokerRegistration* reg = state.FindBroker(NodeId(broker_id))) {
      resp.set_broker_epoch(reg->epoch);
    }
    resp.set_lease_ms(options.broker_lease_ms);
    resp.set_metadata_offset(state.last_offset().value());
    for (proto::PartitionAssignment& a : state.AssignmentsFor(NodeId(broker_id))) {
      *resp.add_assignments() = std::move(a);
    }
    for (const auto& [id, reg] : state.brokers()) *resp.add_brokers() = reg.info;
    FillCoordinators(resp.mutable_coordinators());
    return resp;
  }

  // Removes and returns the parked heartbeats that the current metadata offset
  // has passed, with their responses.
  std::vector<Wakeup> TakeWakeups() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<Wakeup> out;
    const int64_t current = state.last_offset().value();
    for (auto it = parked.begin(); it != parked.end();) {
      if (it->second.known_offset < current) {
        it->second.timer->cancel();
        out.push_back({std::move(it->second.request), BuildHeartbeatResponse(it->second.broker_id)});
        it = parked.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

  static void Send(std::vector<Wakeup> wakeups) {
    for (Wakeup& w : wakeups) w.request.Respond(w.response);
  }

  // ---- controller thread --------------------------------------------------

  // Queues `task` for the controller thread. Tasks check `closed` themselves
  // (those left at Close run after it and answer SHUTTING_DOWN).
  void Enqueue(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(task_mu);
      if (!task_stop) {
        tasks.push_back(std::move(task));
        task = nullptr;
      }
    }
    if (task) {
      task();  // stopped: runs inline and sees `closed`
      return;
    }
    task_cv.notify_one();
  }

  void ControllerLoop() {
    const auto interval = std::chrono::milliseconds(options.controller_interval_ms);
    auto next_pass = Clock::now() + interval;
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(task_mu);
        task_cv.wait_until(lock, next_pass, [this] { return task_stop || !tasks.empty(); });
        if (task_stop) return;
        if (!tasks.empty()) {
          task = std::move(tasks.front());
          tasks.pop_front();
        }
      }
      if (task) task();
      if (Clock::now() >= next_pass) {
        ControllerPass();
        next_pass = Clock::now() + interval;
      }
    }
  }

  // Proposes `records` (in order) and waits until they are committed and
  // applied. Controller thread only; never with `mu` held.
  absl::StatusOr<raft::LogIndex> ProposeAndWait(const std::vector<proto::MetadataRecord>& records) {
    std::vector<std::string> entries;
    entries.reserve(records.size());
    for (const proto::MetadataRecord& r : records) entries.push_back(EncodeMetadataRecord(r));
    auto promise = std::make_shared<std::promise<absl::StatusOr<raft::LogIndex>>>();
    auto future = promise->get_future();
    raft->Propose(std::move(entries),
                  [promise](absl::StatusOr<raft::LogIndex> r) { promise->set_value(std::move(r)); });
    absl::StatusOr<raft::LogIndex> r = future.get();
    if (!r.ok()) return ProposalError(r.status());
    return r;
  }

  // Lease checks, leader elections and rebalancing (leader only).
  void ControllerPass() {
    std::vector<proto::MetadataRecord> lost_records;
    std::set<int32_t> lost;
    {
      absl::MutexLock lock(&mu);
      if (!serving || closed) return;
      const auto now = Clock::now();
      std::set<int32_t> live = LiveBrokers(now);
      for (const auto& [id, reg] : state.brokers()) {
        if (!reg.fenced && !live.contains(id)) lost.insert(id);
      }
      if (!lost.empty()) lost_records = OnBrokersLost(state, lost, live);
    }
    if (!lost_records.empty()) {
      spdlog::warn("coordinator: broker(s) {} lost their lease: {} metadata change(s)",
                   absl::StrJoin(lost, ","), lost_records.size());
      if (auto r = ProposeAndWait(lost_records); !r.ok()) {
        spdlog::warn("coordinator: fencing lost brokers failed: {}", r.status().ToString());
        return;
      }
    }
    std::vector<proto::MetadataRecord> elect;
    {
      absl::MutexLock lock(&mu);
      if (!serving || closed) return;
      elect = ElectLeaderless(state, LiveBrokers(Clock::now()));
    }
    if (!elect.empty()) {
      spdlog::info("coordinator: electing leaders for {} leaderless partition(s)", elect.size());
      if (auto r = ProposeAndWait(elect); !r.ok()) {
        spdlog::warn("coordinator: leader election failed: {}", r.status().ToString());
        return;
      }
    }
    if (options.leader_rebalance_interval_ms <= 0) return;
    std::vector<proto::MetadataRecord> moves;
    {
      absl::MutexLock lock(&mu);
      if (!serving || closed) return;
      const auto now = Clock::now();
      if (now < next_rebalance) return;
      next_rebalance = now + std::chrono::milliseconds(options.leader_rebalance_interval_ms);
      moves = PreferredLeaderMoves(state, LiveBrokers(now));
    }
    if (!moves.empty()) {
      spdlog::info("coordinator: moving {} partition leader(s) back to their preferred replica",
                   moves.size());
      if (auto r = ProposeAndWait(moves); !r.ok()) {
        spdlog::warn("coordinator: preferred-leader moves failed: {}", r.status().ToString());
      }
    }
  }

  // ---- topic administration ---------------------------------------------

  // Appends partitions first, first+1, ... with the replica lists of
  // `placement`, all in sync, each led by its first replica at epoch 0.
  static void AddPlacedPartitions(
      const std::vector<std::vector<int32_t>>& placement, int32_t first,
      google::protobuf::RepeatedPtrField<proto::PartitionDescription>* out) {
    for (size_t i = 0; i < placement.size(); ++i) {
      proto::PartitionDescription* part = out->Add();
      part->set_partition(first + static_cast<int32_t>(i));
      for (int32_t b : placement[i]) {
        part->add_replicas(b);
        part->add_isr(b);
      }
      part->set_leader(part->replicas(0));
      part->set_leader_epoch(0);
    }
  }

  // Parses a `Request`, then runs `change` (a topic change that waits for
  // its Raft commit) on the controller thread and answers a `Response`
  // holding the topic it returns.
  template <typename Request, typename Response>
  void HandleTopicChange(const rpc::Request& req, const char* request_name,
                         absl::StatusOr<proto::TopicDescription> (Impl::*change)(const Request&)) {
    Request in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, absl::StrCat("unparsable ", request_name));
      return;
    }
    if (!CheckServing(req)) return;
    Enqueue([self = shared_from_this(), req, in = std::move(in), change] {
      auto topic = ((*self).*change)(in);
      if (!topic.ok()) {
        req.RespondError(ToErrorCode(topic.status()), std::string(topic.status().message()));
        return;
      }
      Response out;
      *out.mutable_topic() = *std::move(topic);
      req.Respond(out);
    });
  }

  void HandleCreateTopic(const rpc::Request& req) {
    HandleTopicChange<proto::CreateTopicRequest, proto::CreateTopicResponse>(
        req, "CreateTopicRequest", &Impl::CreateTopic);
  }

  absl::StatusOr<proto::TopicDescription> CreateTopic(const proto::CreateTopicRequest& in) {
    if (!IsValidTopicName(in.topic())) {
      return MakeError(ErrorCode::INVALID_TOPIC,
                       absl::StrCat("invalid topic name '", in.topic(),
                                    "': 1..249 characters of [a-zA-Z0-9._-], not '.' or '..'"));
    }
    const int32_t partitions = in.partitions() == 0 ? options.default_partitions : in.partitions();
    if (partitions < 1 || partitions > kMaxPartitions) {
      return MakeError(ErrorCode::INVALID_PARTITIONS,
                       absl::StrCat("partitions must be in 1..", kMaxPartitions, ", got ",
                                    partitions));
    }
    const int32_t rf = in.replication_factor() == 0 ? options.default_replication_factor
                                                    : in.replication_factor();
    if (rf < 1) {
      return MakeError(ErrorCode::INVALID_REPLICATION_FACTOR,
                       absl::StrCat("replication_factor must be >= 1, got ", rf));
    }
    proto::TopicConfig config = options.default_topic_config;
    config.MergeFrom(in.config());
    if (absl::Status s = ValidateTopicConfig(config, rf); !s.ok()) return s;

    proto::MetadataRecord record;
    {
      absl::MutexLock lock(&mu);
      if (absl::Status s = ServingStatus(); !s.ok()) return s;
      if (state.FindTopic(in.topic()) != nullptr) {
        return MakeError(ErrorCode::TOPIC_ALREADY_EXISTS,
                         absl::StrCat("topic '", in.topic(), "' already exists"));
      }
      const std::set<int32_t> live_set = LiveBrokers(Clock::now());
      const std::vector<int32_t> live(live_set.begin(), live_set.end());
      if (live.empty()) return MakeError(ErrorCode::BROKER_NOT_AVAILABLE, "no live brokers");
      if (static_cast<size_t>(rf) > live.size()) {
        return MakeError(ErrorCode::INVALID_REPLICATION_FACTOR,
                         absl::StrCat("replication_factor ", rf, " exceeds the ", live.size(),
                                      " live broker(s)"));
      }
      proto::TopicDescription* topic = record.mutable_topic()->mutable_topic();
      topic->set_name(in.topic());
      topic->set_topic_id(absl::StrFormat("%016x%016x", rng(), rng()));
      *topic->mutable_config() = config;
      AddPlacedPartitions(PlaceReplicas(live, partitions, rf, placement_rotation++), 0,
                          topic->mutable_partitions());
    }
    auto index = ProposeAndWait({record});
    if (!index.ok()) return index.status();
    spdlog::info("coordinator: created topic {} ({} partitions, rf {}) at offset {}", in.topic(),
                 partitions, rf, index->value());
    absl::MutexLock lock(&mu);
    const proto::TopicDescription* t = state.FindTopic(in.topic());
    if (t == nullptr || t->topic_id() != record.topic().topic().topic_id()) {
      return MakeError(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                       absl::StrCat("topic '", in.topic(), "' was removed meanwhile"));
    }
    return *t;
  }

  void HandleCreatePartitions(const rpc::Request& req) {
    HandleTopicChange<proto::CreatePartitionsRequest, proto::CreatePartitionsResponse>(
        req, "CreatePartitionsRequest", &Impl::CreatePartitions);
  }

  // Appends partitions current..count-1 to the topic, placed on the live
  // brokers like a new topic's (continuing the rotation), each led by its
  // first replica at epoch 0.
  absl::StatusOr<proto::TopicDescription> CreatePartitions(
      const proto::CreatePartitionsRequest& in) {
    proto::MetadataRecord record;
    std::string topic_id;
    int32_t current = 0;
    {
      absl::MutexLock lock(&mu);
      if (absl::Status s = ServingStatus(); !s.ok()) return s;
      const proto::TopicDescription* topic = state.FindTopic(in.topic());
      if (topic == nullptr) {
        return MakeError(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                         absl::StrCat("unknown topic '", in.topic(), "'"));
      }
      current = topic->partitions_size();
      if (in.count() <= current || in.count() > kMaxPartitions) {
        return MakeError(ErrorCode::INVALID_PARTITIONS,
                         absl::StrCat("topic '", in.topic(), "' has ", current,
                                      " partitions; the new count must be in ", current + 1,
                                      "..", kMaxPartitions, ", got ", in.count()));
      }
      const int32_t rf = current > 0 ? topic->partitions(0).replicas_size() : 1;
      const std::set<int32_t> live_set = LiveBrokers(Clock::now());
      const std::vector<int32_t> live(live_set.begin(), live_set.end());
      if (static_cast<size_t>(rf) > live.size()) {
        return MakeError(ErrorCode::INVALID_REPLICATION_FACTOR,
                         absl::StrCat("the topic's replication factor ", rf, " exceeds the ",
                                      live.size(), " live broker(s)"));
      }
      topic_id = topic->topic_id();
      proto::AddPartitionsRecord* add = record.mutable_add_partitions();
      add->set_topic(in.topic());
      add->set_topic_id(topic_id);
      const int32_t added = in.count() - current;
      AddPlacedPartitions(
          PlaceReplicas(live, added, rf, placement_rotation++ + static_cast<uint64_t>(current)),
          current, add->mutable_partitions());
    }
    auto index = ProposeAndWait({record});
    if (!index.ok()) return index.status();
    absl::MutexLock lock(&mu);
    const proto::TopicDescription* t = state.FindTopic(in.topic());
    if (t == nullptr || t->topic_id() != topic_id) {
      return MakeError(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                       absl::StrCat("topic '", in.topic(), "' was removed meanwhile"));
    }
    spdlog::info("coordinator: topic {} now has {} partitions (was {}) at offset {}", in.topic(),
                 t->partitions_size(), current, index->value());
    return *t;
  }

  void HandleDeleteTopic(const rpc::Request& req) {
    proto::DeleteTopicRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable DeleteTopicRequest");
      return;
    }
    if (!CheckServing(req)) return;
    Enqueue([self = shared_from_this(), req, in = std::move(in)] {
      proto::MetadataRecord record;
      {
        absl::MutexLock lock(&self->mu);
        if (absl::Status s = self->ServingStatus(); !s.ok()) {
          req.RespondError(ToErrorCode(s), std::string(s.message()));
          return;
        }
        const proto::TopicDescription* topic = self->state.FindTopic(in.topic());
        if (topic == nullptr) {
          req.RespondError(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                           absl::StrCat("unknown topic '", in.topic(), "'"));
          return;
        }
        record.mutable_remove_topic()->set_name(topic->name());
        record.mutable_remove_topic()->set_topic_id(topic->topic_id());
      }
      auto index = self->ProposeAndWait({record});
      if (!index.ok()) {
        req.RespondError(ToErrorCode(index.status()), std::string(index.status().message()));
        return;
      }
      spdlog::info("coordinator: deleted topic {} at offset {}", in.topic(), index->value());
      req.Respond(proto::DeleteTopicResponse());
    });
  }

  void HandleListTopics(const rpc::Request& req) {
    proto::ListTopicsRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable ListTopicsRequest");
      return;
    }
    if (!CheckServing(req)) return;
    req.Respond(ListTopics());
  }

  proto::ListTopicsResponse ListTopics() const {
    proto::ListTopicsResponse out;
    absl::MutexLock lock(&mu);
    for (const auto& [name, topic] : state.topics()) *out.add_topics() = topic;
    return out;
  }

  void HandleDescribeTopic(const rpc::Request& req) {
    proto::DescribeTopicRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable DescribeTopicRequest");
      return;
    }
    if (!CheckServing(req)) return;
    proto::DescribeTopicResponse out;
    {
      absl::MutexLock lock(&mu);
      const proto::TopicDescription* topic = state.FindTopic(in.topic());
      if (topic == nullptr) {
        out.set_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        out.set_error_message(absl::StrCat("unknown topic '", in.topic(), "'"));
      } else {
        *out.mutable_topic() = *topic;
      }
    }
    req.Respond(out);
  }

  // ---- brokers ------------------------------------------------------------

  static bool MustRegister(const BrokerRegistration* reg, const proto::BrokerHeartbeatRequest& in) {
    return reg == nullptr || reg->fenced || in.broker_epoch() != reg->epoch ||
           reg->info.host() != in.broker().host() || reg->info.port() != in.broker().port();
  }

  void HandleHeartbeat(const rpc::Request& req) {
    proto::BrokerHeartbeatRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable BrokerHeartbeatRequest");
      return;
    }
    const proto::BrokerInfo& info = in.broker();
    if (info.broker_id() < 0 || info.host().empty() || info.port() <= 0 || info.port() > 65535) {
      req.RespondError(ErrorCode::INVALID_REQUEST,
                       "heartbeat needs broker_id >= 0, a host and a port in 1..65535");
      return;
    }
    proto::BrokerHeartbeatResponse out;
    {
      absl::MutexLock lock(&mu);
      if (absl::Status s = ServingStatus(); !s.ok()) {
        req.RespondError(ToErrorCode(s), std::string(s.message()));
        return;
      }
      const BrokerRegistration* reg = state.FindBroker(NodeId(info.broker_id()));
      if (reg != nullptr && reg->shut_down && in.broker_epoch() == reg->epoch) {
        // A heartbeat still in flight from a broker that completed its
        // controlled shutdown: re-registering it would hand it leadership
        // again as it exits. A restarted broker comes with epoch 0.
        req.RespondError(ErrorCode::SHUTTING_DOWN,
                         absl::StrCat("broker ", info.broker_id(), " shut down at epoch ",
                                      reg->epoch, "; restart it to register again"));
        return;
      }
      if (!MustRegister(reg, in)) {
        RecordHighWatermarks(in);
        lease_deadlines[info.broker_id()] =
            Clock::now() + std::chrono::milliseconds(options.broker_lease_ms);
        const int64_t current = state.last_offset().value();
        if (in.max_wait_ms() > 0 && in.known_metadata_offset() >= current) {
          // A parked broker must come back well before its lease lapses.
          const int64_t wait_ms = std::max<int64_t>(
              1, std::min<int64_t>(in.max_wait_ms(), options.broker_lease_ms / 3));
          Park(req, info.broker_id(), in.known_metadata_offset(), wait_ms);
          return;
        }
        out = BuildHeartbeatResponse(info.broker_id());
        req.Respond(out);
        return;
      }
    }
    Enqueue([self = shared_from_this(), req, in = std::move(in)] { self->RegisterBroker(req, in); });
  }

  // The reported high watermarks of the partitions the broker currently leads
  // (others are stale reports of a former leader) go to the group service.
  void RecordHighWatermarks(const proto::BrokerHeartbeatRequest& in)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (in.high_watermarks().empty()) return;
    std::vector<GroupService::HighWatermark> hws;
    hws.reserve(in.high_watermarks_size());
    for (const proto::PartitionHighWatermark& hw : in.high_watermarks()) {
      const proto::TopicDescription* t = state.FindTopic(hw.topic());
      if (t == nullptr || hw.partition() < 0 || hw.partition() >= t->partitions_size() ||
          t->partitions(hw.partition()).leader() != in.broker().broker_id() ||
          hw.high_watermark() < 0) {
        continue;
      }
      hws.push_back({hw.topic(), hw.partition(), hw.high_watermark()});
    }
    groups->SetHighWatermarks(hws);
  }

  // Controller thread: registers (or re-registers) the broker, then answers.
  void RegisterBroker(const rpc::Request& req, const proto::BrokerHeartbeatRequest& in) {
    const int32_t id = in.broker().broker_id();
    proto::MetadataRecord record;
    {
      absl::MutexLock lock(&mu);
      if (absl::Status s = ServingStatus(); !s.ok()) {
        req.RespondError(ToErrorCode(s), std::string(s.message()));
        return;
      }
      const BrokerRegistration* reg = state.FindBroker(NodeId(id));
      if (reg != nullptr && reg->shut_down && in.broker_epoch() == reg->epoch) {
        req.RespondError(ErrorCode::SHUTTING_DOWN,
                         absl::StrCat("broker ", id, " shut down at epoch ", reg->epoch,
                                      "; restart it to register again"));
        return;
      }
      if (!MustRegister(reg, in)) {
        // The registration asked for exists now (queued twice): renew it.
        lease_deadlines[id] = Clock::now() + std::chrono::milliseconds(options.broker_lease_ms);
        req.Respond(BuildHeartbeatResponse(id));
        return;
      }
      *record.mutable_broker()->mutable_broker() = in.broker();
    }
    auto index = ProposeAndWait({record});
    if (!index.ok()) {
      req.RespondError(ToErrorCode(index.status()), std::string(index.status().message()));
      return;
    }
    proto::BrokerHeartbeatResponse out;
    {
      absl::MutexLock lock(&mu);
      lease_deadlines[id] = Clock::now() + std::chrono::milliseconds(options.broker_lease_ms);
      out = BuildHeartbeatResponse(id);
    }
    spdlog::info("coordinator: broker {} registered at {}:{} (epoch {})", id, in.broker().host(),
                 in.broker().port(), out.broker_epoch());
    req.Respond(out);
  }

  void Park(const rpc::Request& req, int32_t broker_id, int64_t known_offset, int64_t max_wait_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const uint64_t id = next_park_id++;
    auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::milliseconds(max_wait_ms));
    timer->async_wait([weak = weak_from_this(), id](const boost::system::error_code& ec) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (auto self = weak.lock()) self->OnParkExpired(id);
    });
    parked.emplace(id, Parked{req, broker_id, known_offset, std::move(timer)});
  }

  void OnParkExpired(uint64_t id) {
    std::vector<Wakeup> wakeups;
    {
      absl::MutexLock lock(&mu);
      auto it = parked.find(id);
      if (it == parked.end()) return;  // already answered
      wakeups.push_back({std::move(it->second.request), BuildHeartbeatResponse(it->second.broker_id)});
      parked.erase(it);
    }
    Send(std::move(wakeups));
  }

  // Checks the broker's registration epoch (under mu): STALE_BROKER_EPOCH
  // when it is not the current one.
  absl::Status CheckBrokerEpoch(int32_t broker_id, int64_t epoch) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const BrokerRegistration* reg = state.FindBroker(NodeId(broker_id));
    if (reg == nullptr || reg->epoch != epoch) {
      return MakeError(ErrorCode::STALE_BROKER_EPOCH,
                       absl::StrCat("broker ", broker_id, " epoch ", epoch, " is not current (",
                                    reg == nullptr ? std::string("not registered")
                                                   : absl::StrCat("current ", reg->epoch),
                                    ")"));
    }
    return absl::OkStatus();
  }

  void HandleAlterIsr(const rpc::Request& req) {
    proto::AlterIsrRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable AlterIsrRequest");
      return;
    }
    if (!CheckServing(req)) return;
    Enqueue([self = shared_from_this(), req, in = std::move(in)] { self->AlterIsrTask(req, in); });
  }

  void AlterIsrTask(const rpc::Request& req, const proto::AlterIsrRequest& in) {
    proto::AlterIsrResponse out;
    std::vector<proto::MetadataRecord> records;
    {
      absl::MutexLock lock(&mu);
      absl::Status s = ServingStatus();
      if (s.ok()) s = CheckBrokerEpoch(in.broker_id(), in.broker_epoch());
      if (s.ok() && state.FindBroker(NodeId(in.broker_id()))->fenced) {
        s = MakeError(ErrorCode::STALE_BROKER_EPOCH,
                      absl::StrCat("broker ", in.broker_id(), " is fenced; re-register"));
      }
      if (!s.ok()) {
        req.RespondError(ToErrorCode(s), std::string(s.message()));
        return;
      }
      const std::set<int32_t> live = LiveBrokers(Clock::now());
      for (const proto::AlterIsrPartition& p : in.partitions()) {
        proto::AlterIsrResult* r = out.add_partitions();
        r->set_topic(p.topic());
        r->set_partition(p.partition());
        auto record = AlterIsr(state, in.broker_id(), p, live);
        if (!record.ok()) {
          r->set_error_code(ToErrorCode(record.status()));
          r->set_error_message(std::string(record.status().message()));
        } else {
          records.push_back(*std::move(record));
        }
      }
    }
    if (!records.empty()) {
      auto index = ProposeAndWait(records);
      if (!index.ok()) {
        req.RespondError(ToErrorCode(index.status()), std::string(index.status().message()));
        return;
      }
    }
    {
      absl::MutexLock lock(&mu);
      for (proto::AlterIsrResult& r : *out.mutable_partitions()) {
        const proto::TopicDescription* t = state.FindTopic(r.topic());
        if (t == nullptr || r.partition() < 0 || r.partition() >= t->partitions_size()) continue;
        const proto::PartitionDescription& p = t->partitions(r.partition());
        r.set_leader(p.leader());
        r.set_leader_epoch(p.leader_epoch());
        r.mutable_isr()->Assign(p.isr().begin(), p.isr().end());
      }
    }
    req.Respond(out);
  }

  void HandleBrokerShutdown(const rpc::Request& req) {
    proto::BrokerShutdownRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable BrokerShutdownRequest");
      return;
    }
    if (!CheckServing(req)) return;
    Enqueue([self = shared_from_this(), req, in = std::move(in)] {
      self->BrokerShutdownTask(req, in);
    });
  }

  void BrokerShutdownTask(const rpc::Request& req, const proto::BrokerShutdownRequest& in) {
    std::vector<proto::MetadataRecord> records;
    int32_t remaining = 0;
    {
      absl::MutexLock lock(&mu);
      absl::Status s = ServingStatus();
      if (s.ok()) s = CheckBrokerEpoch(in.broker_id(), in.broker_epoch());
      if (!s.ok()) {
        req.RespondError(ToErrorCode(s), std::string(s.message()));
        return;
      }
      if (state.FindBroker(NodeId(in.broker_id()))->fenced) {
        req.Respond(proto::BrokerShutdownResponse());  // already done
        return;
      }
      std::set<int32_t> live = LiveBrokers(Clock::now());
      live.erase(in.broker_id());
      records = ControlledShutdown(state, in.broker_id(), live, &remaining);
    }
    if (!records.empty()) {
      auto index = ProposeAndWait(records);
      if (!index.ok()) {
        req.RespondError(ToErrorCode(index.status()), std::string(index.status().message()));
        return;
      }
    }
    if (remaining == 0) {
      absl::MutexLock lock(&mu);
      lease_deadlines.erase(in.broker_id());
    }
    spdlog::info("coordinator: controlled shutdown of broker {}: {} change(s), {} leader(s) left",
                 in.broker_id(), records.size(), remaining);
    proto::BrokerShutdownResponse out;
    out.set_remaining_leaders(remaining);
    req.Respond(out);
  }

  // ---- cluster description -----------------------------------------------

  proto::DescribeClusterResponse DescribeCluster() const {
    proto::DescribeClusterResponse out;
    const RaftHostStatus st = raft->status();
    absl::MutexLock lock(&mu);
    out.set_answered_by(options.id.value());
    out.set_leader_id(st.leader ? st.leader->value() : -1);
    out.set_term(st.term.value());
    out.set_metadata_offset(state.last_offset().value());
    out.set_commit_index(st.commit.value());
    for (const CoordinatorMember& m : members) {
      proto::CoordinatorState* c = out.add_coordinators();
      c->set_coordinator_id(m.id.value());
      c->set_host(m.host);
      c->set_port(m.port);
      c->set_term(-1);
      c->set_match_index(-1);
      c->set_last_contact_ms(-1);
      if (m.id == options.id) {
        c->set_role(raft::RoleName(st.role));
        c->set_term(st.term.value());
        if (st.role == raft::Role::kLeader) {
          c->set_match_index(st.last.value());
          c->set_last_contact_ms(0);
        }
      } else {
        c->set_role(st.leader == m.id ? "leader" : st.leader ? "follower" : "unknown");
        for (const RaftHostStatus::Peer& p : st.peers) {
          if (p.id == m.id) {
            c->set_match_index(p.match);
            c->set_last_contact_ms(p.last_contact_ms);
            // A follower that answered within an election timeout is in
            // the leader's term.
            if (st.role == raft::Role::kLeader && p.last_contact_ms >= 0 &&
                p.last_contact_ms < options.raft_election_timeout_ms) {
              c->set_term(st.term.value());
            }
          }
        }
      }
    }
    if (st.role == raft::Role::kLeader && serving) {
      const auto now = Clock::now();
      std::map<int32_t, std::pair<int32_t, int32_t>> counts;  // leads, hosts
      for (const auto& [name, t] : state.topics()) {
        for (const proto::PartitionDescription& p : t.partitions()) {
          if (p.leader() >= 0) ++counts[p.leader()].first;
          for (int32_t r : p.replicas()) ++counts[r].second;
        }
      }
      for (const auto& [id, reg] : state.brokers()) {
        proto::BrokerState* b = out.add_brokers();
        *b->mutable_broker() = reg.info;
        b->set_broker_epoch(reg.epoch);
        b->set_fenced(reg.fenced);
        const bool live = IsLive(id, now);
        b->set_live(live);
        if (live) {
          b->set_lease_remaining_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        lease_deadlines.at(id) - now)
                                        .count());
        }
        b->set_leader_count(counts[id].first);
        b->set_replica_count(counts[id].second);
      }
    }
    return out;
  }

  void HandleDescribeCluster(const rpc::Request& req) {
    proto::DescribeClusterRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable DescribeClusterRequest");
      return;
    }
    {
      absl::MutexLock lock(&mu);
      if (closed) {
        req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
        return;
      }
    }
    req.Respond(DescribeCluster());
  }

  // ---- lifecycle ----------------------------------------------------------

  // A leader that stops hands leadership to its most caught-up peer first
  // (waiting at most one election timeout), so the quorum need not wait for
  // an election timeout to notice.
  void HandOffLeadership() {
    RaftHostStatus st = raft->status();
    if (st.role != raft::Role::kLeader || st.peers.empty()) return;
    const RaftHostStatus::Peer* best = &st.peers.front();
    for (const RaftHostStatus::Peer& p : st.peers) {
      if (p.match > best->match) best = &p;
    }
    raft->TransferLeadership(best->id);
    const auto deadline =
        Clock::now() + std::chrono::milliseconds(options.raft_election_timeout_ms);
    while (Clock::now() < deadline && raft->status().role == raft::Role::kLeader) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    spdlog::info("coordinator {}: leadership {} coordinator {} before stopping",
                 options.id.value(),
                 raft->status().role == raft::Role::kLeader ? "not handed to" : "handed to",
                 best->id.value());
  }

  absl::Status Close() {
    std::vector<rpc::Request> to_fail;
    {
      absl::MutexLock lock(&mu);
      if (closed) return absl::OkStatus();
      closed = true;
      serving = false;
      for (auto& [id, p] : parked) {
        p.timer->cancel();
        to_fail.push_back(std::move(p.request));
      }
      parked.clear();
    }
    for (const rpc::Request& r : to_fail) {
      r.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
    }
    groups->BeginClose();
    HandOffLeadership();
    // Stopping Raft first fails a proposal the controller may be waiting on.
    absl::Status st = raft->Stop();
    // Then the group thread answers what waited on its proposals and stops.
    groups->Close();
    std::deque<std::function<void()>> left;
    {
      std::lock_guard<std::mutex> lock(task_mu);
      task_stop = true;
      left.swap(tasks);
    }
    task_cv.notify_all();
    if (controller.joinable()) controller.join();
    for (auto& task : left) task();  // each answers SHUTTING_DOWN
    return st;
  }

  // ---- consumer groups ------------------------------------------------------

  void HandleGroupRequest(const rpc::Request& req) {
    {
      absl::MutexLock lock(&mu);
      if (closed) {
        req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
        return;
      }
    }
    groups->Handle(req);
  }

  // ---- admin ----------------------------------------------------------------

  http::HttpResponse AdminBrokers() const {
    google::protobuf::Value root;
    auto* list = root.mutable_struct_value()->mutable_fields();
    google::protobuf::ListValue brokers;
    {
      absl::MutexLock lock(&mu);
      const auto now = Clock::now();
      (*list)["metadata_offset"] = NumberValue(static_cast<double>(state.last_offset().value()));
      for (const auto& [id, reg] : state.brokers()) {
        google::protobuf::Value b;
        auto* f = b.mutable_struct_value()->mutable_fields();
        (*f)["broker_id"] = NumberValue(id);
        (*f)["host"] = StringValue(reg.info.host());
        (*f)["port"] = NumberValue(reg.info.port());
        (*f)["broker_epoch"] = NumberValue(static_cast<double>(reg.epoch));
        (*f)["fenced"] = BoolValue(reg.fenced);
        const bool live = IsLive(id, now);
        (*f)["live"] = BoolValue(live);
        if (live) {
          (*f)["lease_remaining_ms"] = NumberValue(static_cast<double>(
              std::chrono::duration_cast<std::chrono::milliseconds>(lease_deadlines.at(id) - now)
                  .count()));
        }
        *brokers.add_values() = std::move(b);
      }
    }
    *(*list)["brokers"].mutable_list_value() = std::move(brokers);
    return JsonResponse(root);
  }
};

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Open(storage::FileSystem* fs,
                                                               storage::Flusher* /*flusher*/,
                                                               CoordinatorOptions options,
                                                               boost::asio::io_context& io) {
  if (options.default_partitions < 1 || options.default_partitions > kMaxPartitions) {
    return absl::InvalidArgumentError("default_partitions out of range");
  }
  if (options.default_replication_factor < 1 || options.broker_lease_ms <= 0 ||
      options.controller_interval_ms <= 0) {
    return absl::InvalidArgumentError(
        "default_replication_factor, broker_lease_ms and controller_interval_ms must be positive");
  }
  if (!options.quorum.empty()) {
    bool found = false;
    for (const CoordinatorMember& m : options.quorum) found = found || m.id == options.id;
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("coordinator ", options.id.value(), " is not a member of its quorum"));
    }
  }
  // A data directory written before the metadata moved onto Raft keeps its
  // records in coordinator/metadata, which is not read any more. Starting
  // with an empty Raft log would make the broker delete every partition
  // directory it holds as belonging to no topic: refuse instead.
  if (fs->Exists(options.data_dir + "/metadata") && !fs->Exists(options.data_dir + "/raft")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", options.data_dir,
        "/metadata' holds a metadata log of a Brook version before the Raft quorum; it is not "
        "migrated. Move the data directory away (or delete it) and start again."));
  }
  auto impl = std::make_shared<Impl>(std::move(options), io);
  RaftHostOptions ro;
  ro.id = impl->options.id;
  ro.fs = fs;
  ro.dir = impl->options.data_dir + "/raft";
  {
    absl::MutexLock lock(&impl->mu);
    for (const CoordinatorMember& m : impl->members) ro.members.push_back({m.id, m.host, m.port});
  }
  ro.election_timeout_ms = impl->options.raft_election_timeout_ms;
  ro.heartbeat_ms = impl->options.raft_heartbeat_ms;
  ro.snapshot_entries = impl->options.raft_snapshot_entries;
  Impl* raw = impl.get();
  RaftHostCallbacks cb;
  cb.apply = [raw](raft::LogIndex index, const std::string& data) { raw->OnApply(index, data); };
  cb.restore = [raw](const raft::Snapshot& s) { return raw->OnRestore(s); };
  cb.take_snapshot = [raw] { return raw->OnTakeSnapshot(); };
  cb.state_changed = [raw](const RaftHostStatus& st) { raw->OnStateChanged(st); };
  auto host = RaftHost::Open(std::move(ro), std::move(cb));
  if (!host.ok()) return host.status();
  impl->raft = *std::move(host);
  {
    absl::MutexLock lock(&impl->mu);
    spdlog::info("coordinator {}: metadata at offset {} ({} topics, {} brokers), quorum of {}",
                 impl->options.id.value(), impl->state.last_offset().value(),
                 impl->state.topics().size(), impl->state.brokers().size(), impl->members.size());
  }
  impl->groups->Start();
  impl->controller = std::thread([raw] { raw->ControllerLoop(); });
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

Coordinator::Coordinator(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Coordinator::~Coordinator() {
  if (absl::Status s = impl_->Close(); !s.ok()) {
    spdlog::error("coordinator: close failed: {}", s.ToString());
  }
}

void Coordinator::SetAdvertisedAddress(std::string host, uint16_t port) {
  absl::MutexLock lock(&impl_->mu);
  for (CoordinatorMember& m : impl_->members) {
    if (m.id == impl_->options.id) {
      m.host = host;
      m.port = port;
    }
  }
}

void Coordinator::RegisterApis(rpc::RpcServer& server) {
  std::weak_ptr<Impl> weak = impl_;
  auto bind = [weak](void (Impl::*handler)(const rpc::Request&)) {
    return [weak, handler](rpc::Request req) {
      if (auto self = weak.lock()) {
        (self.get()->*handler)(req);
      } else {
        req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is gone");
      }
    };
  };
  server.Register(proto::API_CREATE_TOPIC, 0, bind(&Impl::HandleCreateTopic));
  server.Register(proto::API_DELETE_TOPIC, 0, bind(&Impl::HandleDeleteTopic));
  server.Register(proto::API_CREATE_PARTITIONS, 0, bind(&Impl::HandleCreatePartitions));
  server.Register(proto::API_LIST_TOPICS, 0, bind(&Impl::HandleListTopics));
  server.Register(proto::API_DESCRIBE_TOPIC, 0, bind(&Impl::HandleDescribeTopic));
  server.Register(proto::API_BROKER_HEARTBEAT, 0, bind(&Impl::HandleHeartbeat));
  server.Register(proto::API_ALTER_ISR, 0, bind(&Impl::HandleAlterIsr));
  server.Register(proto::API_BROKER_SHUTDOWN, 0, bind(&Impl::HandleBrokerShutdown));
  server.Register(proto::API_DESCRIBE_CLUSTER, 0, bind(&Impl::HandleDescribeCluster));
  for (proto::Api api :
       {proto::API_JOIN_GROUP, proto::API_SYNC_GROUP, proto::API_HEARTBEAT, proto::API_LEAVE_GROUP,
        proto::API_OFFSET_COMMIT, proto::API_OFFSET_FETCH, proto::API_LIST_GROUPS,
        proto::API_DESCRIBE_GROUPS, proto::API_DELETE_GROUPS}) {
    server.Register(api, 0, bind(&Impl::HandleGroupRequest));
  }
  impl_->raft->RegisterApis(server);
}

void Coordinator::RegisterAdmin(http::AdminServer& admin) {
  std::weak_ptr<Impl> weak = impl_;
  auto gone = [] {
    http::HttpResponse r;
    r.status = 503;
    r.content_type = "text/plain";
    r.body = "coordinator is gone";
    return r;
  };
  admin.Handle("/admin/topics", [weak, gone](const http::HttpRequest&) {
    auto self = weak.lock();
    return self ? JsonResponse(self->ListTopics()) : gone();
  });
  admin.Handle("/admin/brokers", [weak, gone](const http::HttpRequest&) {
    auto self = weak.lock();
    return self ? self->AdminBrokers() : gone();
  });
  admin.Handle("/admin/cluster", [weak, gone](const http::HttpRequest&) {
    auto self = weak.lock();
    return self ? JsonResponse(self->DescribeCluster()) : gone();
  });
  admin.Handle("/admin/groups", [weak, gone](const http::HttpRequest&) {
    auto self = weak.lock();
    return self ? self->groups->AdminGroups() : gone();
  });
}

absl::Status Coordinator::Close() { return impl_->Close(); }

Offset Coordinator::metadata_offset() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->state.last_offset();
}

bool Coordinator::serving() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->serving;
}

bool Coordinator::serving_groups() const { return impl_->groups->active(); }

proto::DescribeClusterResponse Coordinator::DescribeCluster() const {
  return impl_->DescribeCluster();
}

}  // namespace brook::coordinator
