// GroupService: the shadow and active consumer group coordinators of a
// coordinator quorum member, the group thread, APIs 50..58, /admin/groups
// and the group metrics (see group_service.h and docs/groups.md).
#include "coordinator/group_service.h"

#include <algorithm>
#include <future>
#include <limits>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "coordinator/admin_json.h"
#include "google/protobuf/struct.pb.h"
#include "spdlog/spdlog.h"

namespace brook::coordinator {
namespace {

using Clock = std::chrono::steady_clock;
using proto::ErrorCode;

constexpr char kStates[][24] = {"Empty", "PreparingRebalance", "CompletingRebalance", "Stable",
                                "Dead"};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}


// [{"topic": t, "partitions": [..]}, ...] of consumer-protocol topic partitions.
google::protobuf::Value TopicPartitionsValue(
    const google::protobuf::RepeatedPtrField<proto::ConsumerTopicPartitions>& tps) {
  google::protobuf::Value out;
  auto* list = out.mutable_list_value();
  for (const auto& tp : tps) {
    google::protobuf::Value entry;
    auto* f = entry.mutable_struct_value()->mutable_fields();
    (*f)["topic"] = StringValue(tp.topic());
    auto* parts = (*f)["partitions"].mutable_list_value();
    for (int32_t p : tp.partitions()) *parts->add_values() = NumberValue(p);
    *list->add_values() = std::move(entry);
  }
  return out;
}

// Latest high watermark by (topic, partition).
using HighWatermarks = std::map<std::pair<std::string, int32_t>, int64_t>;

// The partition's log end offset as consumers see it (its high watermark),
// -1 when unknown.
int64_t LogEnd(const HighWatermarks& hws, const std::string& topic, int32_t partition) {
  auto it = hws.find({topic, partition});
  return it == hws.end() ? -1 : it->second;
}

// max(0, log_end - committed), -1 when either is unknown.
int64_t Lag(int64_t log_end, int64_t committed) {
  if (log_end < 0 || committed < 0) return -1;
  return std::max<int64_t>(0, log_end - committed);
}

// The /admin/groups document of one GroupCoordinator.
google::protobuf::Value RenderGroups(const groups::GroupCoordinator& gc, NodeId id,
                                     const std::string& source, const HighWatermarks& hws) {
  google::protobuf::Value root;
  auto* fields = root.mutable_struct_value()->mutable_fields();
  (*fields)["coordinator_id"] = NumberValue(id.value());
  (*fields)["source"] = StringValue(source);
  google::protobuf::ListValue out;
  const proto::ListGroupsResponse listed = gc.ListGroups(proto::ListGroupsRequest());
  for (const proto::ListedGroup& lg : listed.groups()) {
    proto::DescribeGroupsRequest dreq;
    dreq.add_groups(lg.group_id());
    const proto::DescribeGroupsResponse described = gc.DescribeGroups(dreq);
    if (described.groups_size() != 1) continue;
    const proto::DescribedGroup& d = described.groups(0);
    const bool consumer = d.protocol_type() == "consumer";
    google::protobuf::Value g;
    auto* gf = g.mutable_struct_value()->mutable_fields();
    (*gf)["group_id"] = StringValue(d.group_id());
    (*gf)["state"] = StringValue(d.state());
    (*gf)["protocol_type"] = StringValue(d.protocol_type());
    (*gf)["protocol"] = StringValue(d.protocol_name());
    (*gf)["generation"] = NumberValue(d.generation_id());
    (*gf)["leader"] = StringValue(d.leader());
    auto* members = (*gf)["members"].mutable_list_value();
    for (const proto::DescribedGroupMember& m : d.members()) {
      google::protobuf::Value mv;
      auto* mf = mv.mutable_struct_value()->mutable_fields();
      (*mf)["member_id"] = StringValue(m.member_id());
      if (m.has_group_instance_id())
        (*mf)["group_instance_id"] = StringValue(m.group_instance_id());
      (*mf)["client_id"] = StringValue(m.client_id());
      (*mf)["client_host"] = StringValue(m.client_host());
      proto::ConsumerSubscription sub;
      if (consumer && !m.metadata().empty() && sub.ParseFromString(m.metadata())) {
        auto* topics = (*mf)["subscription"].mutable_list_value();
        for (const std::string& t : sub.topics()) *topics->add_values() = StringValue(t);
      }
      proto::ConsumerAssignment assignment;
      if (consumer && assignment.ParseFromString(m.assignment())) {
        (*mf)["assignment"] = TopicPartitionsValue(assignment.partitions());
      } else {
        (*mf)["assignment_bytes"] = NumberValue(static_cast<double>(m.assignment().size()));
      }
      *members->add_values() = std::move(mv);
    }
    proto::OffsetFetchRequest freq;
    freq.set_group_id(d.group_id());
    const proto::OffsetFetchResponse offsets = gc.OffsetFetch(freq);
    auto* ol = (*gf)["offsets"].mutable_list_value();
    int64_t total_lag = -1;  // sum of the known lags; -1 when none is known
    for (const proto::OffsetFetchPartitionResult& o : offsets.partitions()) {
      google::protobuf::Value ov;
      auto* of = ov.mutable_struct_value()->mutable_fields();
      (*of)["topic"] = StringValue(o.topic());
      (*of)["partition"] = NumberValue(o.partition());
      (*of)["offset"] = NumberValue(static_cast<double>(o.offset()));
      const int64_t log_end = LogEnd(hws, o.topic(), o.partition());
      const int64_t lag = Lag(log_end, o.offset());
      (*of)["log_end_offset"] = NumberValue(static_cast<double>(log_end));
      (*of)["lag"] = NumberValue(static_cast<double>(lag));
      if (lag >= 0) total_lag = std::max<int64_t>(total_lag, 0) + lag;
      (*of)["leader_epoch"] = NumberValue(o.leader_epoch());
      (*of)["metadata"] = StringValue(o.metadata());
      *ol->add_values() = std::move(ov);
    }
    (*gf)["lag"] = NumberValue(static_cast<double>(total_lag));
    *out.add_values() = std::move(g);
  }
  *(*fields)["groups"].mutable_list_value() = std::move(out);
  return root;
}

// A response that came back NOT_COORDINATOR without saying where the leader
// is (an unloaded coordinator's waiting join or sync) gets the message.
template <typename Response>
void NameLeader(Response* r, const std::function<std::string()>& message) {
  if (r->error_code() == ErrorCode::NOT_COORDINATOR && r->error_message().empty()) {
    r->set_error_message(message());
  }
}

// A commit or delete whose records could not be made durable because this
// member lost leadership failed as a whole: the top-level NOT_COORDINATOR
// lets clients (CoordinatorClient) find the new leader and retry.
template <typename Response, typename Results>
void LiftNotCoordinator(Response* r, const Results& results) {
  if (r->error_code() != ErrorCode::NONE) return;
  for (const auto& p : results) {
    if (p.error_code() == ErrorCode::NOT_COORDINATOR) {
      r->set_error_code(ErrorCode::NOT_COORDINATOR);
      r->set_error_message(p.error_message());
      return;
    }
  }
}

// A GroupCoordinator that only replays committed records (it never
// persists: it is never given requests nor ticked).
std::unique_ptr<groups::GroupCoordinator> NewReplica(const groups::GroupConfig& config) {
  return std::make_unique<groups::GroupCoordinator>(
      config, [](std::vector<proto::MetadataRecord>, groups::GroupCoordinator::PersistDone done) {
        done(absl::InternalError("the replica of the group state does not write records"));
      });
}

}  // namespace

GroupService::GroupService(GroupServiceOptions options, ProposeFn propose,
                           NotCoordinatorFn not_coordinator)
    : options_(std::move(options)),
      propose_(std::move(propose)),
      not_coordinator_(std::move(not_coordinator)) {
  shadow_ = NewReplica(options_.config);
  auto& registry = metrics::Registry::Global();
  for (const char* state : kStates) {
    groups_gauges_[state] = registry.GetGauge("brook_coordinator_groups", {{"state", state}},
                                              "Consumer groups by state (active coordinator)");
  }
  members_gauge_ = registry.GetGauge("brook_coordinator_group_members", {},
                                     "Members of all consumer groups (active coordinator)");
  active_gauge_ = registry.GetGauge("brook_coordinator_groups_active", {},
                                    "1 when this member runs the active group coordinator");
  rebalances_ = registry.GetCounter("brook_coordinator_group_rebalances_total", {},
                                    "Group generations that became Stable");
  offset_commits_ = registry.GetCounter("brook_coordinator_group_offset_commits_total", {},
                                        "Committed offsets made durable (partitions)");
  join_latency_ = registry.GetHistogram("brook_coordinator_group_join_seconds", {},
                                        "JoinGroup time to answer (includes rebalance waits)");
  sync_latency_ =
      registry.GetHistogram("brook_coordinator_group_sync_seconds", {}, "SyncGroup time to answer");
  next_metrics_ = Clock::now();
}

GroupService::~GroupService() { Close(); }

void GroupService::Start() {
  std::lock_guard<std::mutex> lock(task_mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
}

int64_t GroupService::NowMs() {
  // Wall time: it is also the commit timestamp stored with offsets.
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- shadow (Raft thread) -----------------------------------------------------

void GroupService::ApplyCommitted(const proto::MetadataRecord& record) {
  absl::MutexLock lock(&shadow_mu_);
  if (absl::Status s = shadow_->Replay(record, NowMs()); !s.ok()) {
    // Every member skips the same record, so the replicas stay equal.
    spdlog::error("groups: committed group record not applied: {}", s.ToString());
  }
}

std::vector<proto::MetadataRecord> GroupService::SnapshotRecords() const {
  absl::MutexLock lock(&shadow_mu_);
  return shadow_->SnapshotRecords();
}

absl::Status GroupService::Restore(
    const google::protobuf::RepeatedPtrField<proto::MetadataRecord>& records) {
  std::unique_ptr<groups::GroupCoordinator> fresh = NewReplica(options_.config);
  const int64_t now = NowMs();
  for (const proto::MetadataRecord& r : records) {
    if (!groups::GroupCoordinator::IsGroupRecord(r)) {
      return absl::InvalidArgumentError("metadata snapshot: a group record of another kind");
    }
    if (absl::Status s = fresh->Replay(r, now); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("metadata snapshot: ", s.message()));
    }
  }
  absl::MutexLock lock(&shadow_mu_);
  shadow_ = std::move(fresh);
  return absl::OkStatus();
}

// ---- group thread -------------------------------------------------------------

void GroupService::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    if (exited_) return;  // closed: the task (and what it would answer) is dropped
    tasks_.push_back(std::move(task));
  }
  task_cv_.notify_one();
}

void GroupService::SetLeadership(bool serving, int64_t term) {
  Post([this, serving, term] {
    if (serving) {
      Activate(term);
    } else {
      Deactivate();
    }
  });
}

Clock::time_point GroupService::NextWake() {
  const auto now = Clock::now();
  auto wake = std::min(now + std::chrono::milliseconds(options_.idle_wake_ms), next_metrics_);
  if (active_ != nullptr) {
    if (std::optional<int64_t> deadline = active_->NextDeadline()) {
      const int64_t in_ms = std::max<int64_t>(*deadline - NowMs(), 2);
      wake = std::min(wake, now + std::chrono::milliseconds(in_ms));
    }
  }
  return wake;
}

void GroupService::Loop() {
  while (true) {
    const auto wake = NextWake();
    std::deque<std::function<void()>> batch;
    {
      std::unique_lock<std::mutex> lock(task_mu_);
      task_cv_.wait_until(lock, wake, [this] { return stop_ || !tasks_.empty(); });
      if (stop_ && tasks_.empty()) {
        exited_ = true;
        break;
      }
      batch.swap(tasks_);
    }
    for (auto& task : batch) task();
    if (active_ != nullptr) {
      const int64_t now = NowMs();
      if (std::optional<int64_t> deadline = active_->NextDeadline(); deadline && *deadline <= now) {
        active_->Tick(now);
      }
    }
    if (Clock::now() >= next_metrics_) UpdateMetrics();
  }
  Deactivate();
  incarnations_.clear();
  UpdateMetrics();
}

void GroupService::Activate(int64_t term) {
  if (active_ != nullptr) {
    if (incarnations_.at(active_incarnation_).term == term) return;
    Deactivate();
  }
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    if (closing_) return;
  }
  std::vector<proto::MetadataRecord> records = SnapshotRecords();
  groups::GroupConfig config = options_.config;
  config.member_id_nonce = absl::StrCat("c", options_.id.value(), "t", term);
  const uint64_t inc = next_incarnation_++;
  auto gc = std::make_unique<groups::GroupCoordinator>(
      std::move(config), [this, inc](std::vector<proto::MetadataRecord> recs,
                                     groups::GroupCoordinator::PersistDone done) {
        Persist(inc, std::move(recs), std::move(done));
      });
  const int64_t now = NowMs();
  for (const proto::MetadataRecord& r : records) {
    if (absl::Status s = gc->Replay(r, now); !s.ok()) {
      spdlog::error("groups: replaying the group state failed: {}", s.ToString());
    }
  }
  Incarnation& in = incarnations_[inc];
  in.gc = std::move(gc);
  in.term = term;
  in.rebalances_seen = in.gc->GetStats().rebalances_completed;
  active_ = in.gc.get();
  active_incarnation_ = inc;
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    is_active_ = true;
  }
  const groups::GroupCoordinator::Stats stats = active_->GetStats();
  int64_t count = 0;
  for (const auto& [state, n] : stats.groups_by_state) count += n;
  spdlog::info("groups: coordinator {} is the group coordinator in term {} ({} groups, {} members)",
               options_.id.value(), term, count, stats.members);
  UpdateMetrics();
}

void GroupService::Deactivate() {
  if (active_ == nullptr) return;
  UpdateMetrics();  // counts the last rebalances
  auto it = incarnations_.find(active_incarnation_);
  groups::GroupCoordinator* gc = active_;
  active_ = nullptr;
  active_incarnation_ = 0;
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    is_active_ = false;
  }
  gc->Unload();  // waiting joins and syncs answer NOT_COORDINATOR
  it->second.retired = true;
  spdlog::info("groups: coordinator {} is no longer the group coordinator (term {})",
               options_.id.value(), it->second.term);
  if (it->second.outstanding == 0) incarnations_.erase(it);
  UpdateMetrics();
}

void GroupService::Persist(uint64_t inc, std::vector<proto::MetadataRecord> records,
                           groups::GroupCoordinator::PersistDone done) {
  auto it = incarnations_.find(inc);
  if (it == incarnations_.end()) {  // cannot happen: the incarnation is alive while it calls
    done(MakeError(ErrorCode::NOT_COORDINATOR, NotCoordinatorMessage()));
    return;
  }
  ++it->second.outstanding;
  int offset_commits = 0;
  std::vector<std::string> entries;
  entries.reserve(records.size());
  for (const proto::MetadataRecord& r : records) {
    if (r.has_offset_commit()) ++offset_commits;
    entries.push_back(r.SerializeAsString());
  }
  propose_(std::move(entries),
           [this, inc, offset_commits, done = std::move(done)](absl::Status s) mutable {
             Post([this, inc, offset_commits, s = std::move(s), done = std::move(done)] {
               FinishPersist(inc, offset_commits, s, done);
             });
           });
}

void GroupService::FinishPersist(uint64_t inc, int offset_commits, absl::Status s,
                                 const groups::GroupCoordinator::PersistDone& done) {
  auto it = incarnations_.find(inc);
  if (it == incarnations_.end()) return;
  if (!s.ok() && ToErrorCode(s) == ErrorCode::NOT_COORDINATOR) {
    s = MakeError(ErrorCode::NOT_COORDINATOR,
                  absl::StrCat(s.message(), "; ", NotCoordinatorMessage()));
  }
  if (s.ok() && offset_commits > 0) offset_commits_->Inc(offset_commits);
  --it->second.outstanding;
  done(s);
  if (it->second.retired && it->second.outstanding == 0) incarnations_.erase(it);
}

void GroupService::UpdateMetrics() {
  next_metrics_ = Clock::now() + std::chrono::milliseconds(options_.idle_wake_ms);
  if (active_ == nullptr) {
    for (auto& [state, gauge] : groups_gauges_) gauge->Set(0);
    members_gauge_->Set(0);
    active_gauge_->Set(0);
    UpdateLagMetrics();
    return;
  }
  const groups::GroupCoordinator::Stats stats = active_->GetStats();
  for (auto& [state, gauge] : groups_gauges_) {
    auto it = stats.groups_by_state.find(state);
    gauge->Set(it == stats.groups_by_state.end() ? 0 : static_cast<double>(it->second));
  }
  members_gauge_->Set(static_cast<double>(stats.members));
  active_gauge_->Set(1);
  Incarnation& in = incarnations_.at(active_incarnation_);
  if (stats.rebalances_completed > in.rebalances_seen) {
    rebalances_->Inc(static_cast<double>(stats.rebalances_completed - in.rebalances_seen));
    in.rebalances_seen = stats.rebalances_completed;
  }
  UpdateLagMetrics();
}

void GroupService::UpdateLagMetrics() {
  auto& registry = metrics::Registry::Global();
  std::vector<metrics::Labels> lag_labels;
  std::vector<metrics::Labels> total_labels;
  if (active_ != nullptr) {
    HighWatermarks hws;
    {
      absl::MutexLock lock(&hw_mu_);
      hws = high_watermarks_;
    }
    const proto::ListGroupsResponse listed = active_->ListGroups(proto::ListGroupsRequest());
    for (const proto::ListedGroup& lg : listed.groups()) {
      proto::OffsetFetchRequest freq;
      freq.set_group_id(lg.group_id());
      const proto::OffsetFetchResponse offsets = active_->OffsetFetch(freq);
      int64_t total = -1;
      for (const proto::OffsetFetchPartitionResult& o : offsets.partitions()) {
        const int64_t lag = Lag(LogEnd(hws, o.topic(), o.partition()), o.offset());
        if (lag < 0) continue;  // unknown: no sample
        total = std::max<int64_t>(total, 0) + lag;
        metrics::Labels labels = {{"group", lg.group_id()},
                                  {"topic", o.topic()},
                                  {"partition", std::to_string(o.partition())}};
        registry
            .GetGauge("brook_group_lag", labels,
                      "Records of a partition above a group's committed offset "
                      "(high watermark - committed offset)")
            ->Set(static_cast<double>(lag));
        lag_labels.push_back(std::move(labels));
      }
      if (total < 0) continue;
      metrics::Labels labels = {{"group", lg.group_id()}};
      registry
          .GetGauge("brook_group_lag_total", labels,
                    "Sum of brook_group_lag over a group's committed partitions")
          ->Set(static_cast<double>(total));
      total_labels.push_back(std::move(labels));
    }
  }
  // Series of groups, offsets or partitions that are gone (or of a member
  // that no longer coordinates) are removed.
  auto remove_stale = [&registry](const std::string& name, const std::vector<metrics::Labels>& old,
                                  std::vector<metrics::Labels> now) {
    std::sort(now.begin(), now.end());
    for (const metrics::Labels& l : old) {
      if (!std::binary_search(now.begin(), now.end(), l)) registry.Remove(name, l);
    }
  };
  remove_stale("brook_group_lag", lag_labels_, lag_labels);
  remove_stale("brook_group_lag_total", lag_total_labels_, total_labels);
  lag_labels_ = std::move(lag_labels);
  lag_total_labels_ = std::move(total_labels);
}

void GroupService::SetHighWatermarks(const std::vector<HighWatermark>& hws) {
  absl::MutexLock lock(&hw_mu_);
  for (const HighWatermark& hw : hws) high_watermarks_[{hw.topic, hw.partition}] = hw.high_watermark;
}

void GroupService::ForgetHighWatermarks(const std::string& topic) {
  absl::MutexLock lock(&hw_mu_);
  auto it = high_watermarks_.lower_bound({topic, std::numeric_limits<int32_t>::min()});
  while (it != high_watermarks_.end() && it->first.first == topic) it = high_watermarks_.erase(it);
}

void GroupService::ClearHighWatermarks() {
  absl::MutexLock lock(&hw_mu_);
  high_watermarks_.clear();
}

groups::GroupCoordinator* GroupService::ActiveOrRespond(const rpc::Request& req) {
  bool closing;
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    closing = closing_;
  }
  if (closing) {
    req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
    return nullptr;
  }
  if (active_ == nullptr) {
    req.RespondError(ErrorCode::NOT_COORDINATOR, NotCoordinatorMessage());
    return nullptr;
  }
  return active_;
}

// ---- requests -----------------------------------------------------------------

void GroupService::Handle(const rpc::Request& req) {
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    if (closing_ || exited_) {
      req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
      return;
    }
  }
  auto unparsable = [&](const char* what) {
    req.RespondError(ErrorCode::INVALID_REQUEST, absl::StrCat("unparsable ", what));
  };
  auto leader_message = [this] { return NotCoordinatorMessage(); };
  const auto start = Clock::now();
  switch (req.api()) {
    case proto::API_JOIN_GROUP: {
      auto in = std::make_shared<proto::JoinGroupRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("JoinGroupRequest");
      Post([this, req, in, start, leader_message] {
        groups::GroupCoordinator* gc = ActiveOrRespond(req);
        if (gc == nullptr) return;
        gc->JoinGroup(*in, req.peer(), NowMs(),
                      [this, req, start, leader_message](const proto::JoinGroupResponse& r) {
                        join_latency_->Observe(SecondsSince(start));
                        proto::JoinGroupResponse out = r;
                        NameLeader(&out, leader_message);
                        req.Respond(out);
                      });
      });
      return;
    }
    case proto::API_SYNC_GROUP: {
      auto in = std::make_shared<proto::SyncGroupRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("SyncGroupRequest");
      Post([this, req, in, start, leader_message] {
        groups::GroupCoordinator* gc = ActiveOrRespond(req);
        if (gc == nullptr) return;
        gc->SyncGroup(*in, NowMs(),
                      [this, req, start, leader_message](const proto::SyncGroupResponse& r) {
                        sync_latency_->Observe(SecondsSince(start));
                        proto::SyncGroupResponse out = r;
                        NameLeader(&out, leader_message);
                        req.Respond(out);
                      });
      });
      return;
    }
    case proto::API_HEARTBEAT: {
      auto in = std::make_shared<proto::HeartbeatRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("HeartbeatRequest");
      Post([this, req, in] {
        if (groups::GroupCoordinator* gc = ActiveOrRespond(req)) {
          req.Respond(gc->Heartbeat(*in, NowMs()));
        }
      });
      return;
    }
    case proto::API_LEAVE_GROUP: {
      auto in = std::make_shared<proto::LeaveGroupRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("LeaveGroupRequest");
      Post([this, req, in] {
        if (groups::GroupCoordinator* gc = ActiveOrRespond(req)) {
          req.Respond(gc->LeaveGroup(*in, NowMs()));
        }
      });
      return;
    }
    case proto::API_OFFSET_COMMIT: {
      auto in = std::make_shared<proto::OffsetCommitRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("OffsetCommitRequest");
      Post([this, req, in] {
        groups::GroupCoordinator* gc = ActiveOrRespond(req);
        if (gc == nullptr) return;
        gc->OffsetCommit(*in, NowMs(), [req](const proto::OffsetCommitResponse& r) {
          proto::OffsetCommitResponse out = r;
          LiftNotCoordinator(&out, out.partitions());
          req.Respond(out);
        });
      });
      return;
    }
    case proto::API_OFFSET_FETCH: {
      auto in = std::make_shared<proto::OffsetFetchRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("OffsetFetchRequest");
      Post([this, req, in] {
        if (groups::GroupCoordinator* gc = ActiveOrRespond(req)) req.Respond(gc->OffsetFetch(*in));
      });
      return;
    }
    case proto::API_LIST_GROUPS: {
      auto in = std::make_shared<proto::ListGroupsRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("ListGroupsRequest");
      Post([this, req, in] {
        if (groups::GroupCoordinator* gc = ActiveOrRespond(req)) req.Respond(gc->ListGroups(*in));
      });
      return;
    }
    case proto::API_DESCRIBE_GROUPS: {
      auto in = std::make_shared<proto::DescribeGroupsRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("DescribeGroupsRequest");
      Post([this, req, in] {
        if (groups::GroupCoordinator* gc = ActiveOrRespond(req)) {
          req.Respond(gc->DescribeGroups(*in));
        }
      });
      return;
    }
    case proto::API_DELETE_GROUPS: {
      auto in = std::make_shared<proto::DeleteGroupsRequest>();
      if (!req.ParseHeader(in.get())) return unparsable("DeleteGroupsRequest");
      Post([this, req, in] {
        groups::GroupCoordinator* gc = ActiveOrRespond(req);
        if (gc == nullptr) return;
        gc->DeleteGroups(*in, NowMs(), [req](const proto::DeleteGroupsResponse& r) {
          proto::DeleteGroupsResponse out = r;
          LiftNotCoordinator(&out, out.groups());
          req.Respond(out);
        });
      });
      return;
    }
    default:
      req.RespondError(ErrorCode::UNSUPPORTED_API,
                       absl::StrCat("api ", req.api(), " is not a group api"));
  }
}

// ---- admin, lifecycle ------------------------------------------------------------

http::HttpResponse GroupService::AdminGroups() {
  HighWatermarks hws;
  {
    absl::MutexLock lock(&hw_mu_);
    hws = high_watermarks_;
  }
  bool active;
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    active = is_active_ && !exited_;
  }
  if (active) {
    auto promise = std::make_shared<std::promise<std::optional<google::protobuf::Value>>>();
    auto future = promise->get_future();
    Post([this, promise, hws] {
      if (active_ == nullptr) {
        promise->set_value(std::nullopt);
      } else {
        promise->set_value(RenderGroups(*active_, options_.id, "active", hws));
      }
    });
    if (future.wait_for(std::chrono::seconds(2)) == std::future_status::ready) {
      if (std::optional<google::protobuf::Value> v = future.get()) return JsonResponse(*v);
    }
  }
  absl::MutexLock lock(&shadow_mu_);
  return JsonResponse(RenderGroups(*shadow_, options_.id, "replica", hws));
}

bool GroupService::active() const {
  std::lock_guard<std::mutex> lock(task_mu_);
  return is_active_;
}

void GroupService::BeginClose() {
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    if (closing_) return;
    closing_ = true;
  }
  Post([this] { Deactivate(); });
}

void GroupService::Close() {
  BeginClose();
  {
    std::lock_guard<std::mutex> lock(task_mu_);
    stop_ = true;
  }
  task_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(task_mu_);
  exited_ = true;
  tasks_.clear();
}

}  // namespace brook::coordinator
