// The consumer group state machine (see group_coordinator.h and docs/groups.md).
#include "coordinator/groups/group_coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace brook::groups {

using proto::ErrorCode;

namespace {

// Assignments of this protocol type are proto::ConsumerAssignment.
constexpr char kConsumerProtocolType[] = "consumer";

enum class State { kEmpty, kPreparingRebalance, kCompletingRebalance, kStable, kDead };

const char* StateName(State s) {
  switch (s) {
    case State::kEmpty:
      return "Empty";
    case State::kPreparingRebalance:
      return "PreparingRebalance";
    case State::kCompletingRebalance:
      return "CompletingRebalance";
    case State::kStable:
      return "Stable";
    case State::kDead:
      return "Dead";
  }
  return "Dead";
}

std::optional<std::string> InstanceOf(bool has, const std::string& id) {
  if (!has) return std::nullopt;
  return id;
}

// The wire code for a failed Persist: the code the caller tagged, else
// NOT_COORDINATOR (retriable: the client looks the coordinator up again).
ErrorCode PersistError(const absl::Status& s) {
  if (s.ok()) return ErrorCode::NONE;
  if (s.GetPayload(kErrorCodePayload).has_value()) return ToErrorCode(s);
  return ErrorCode::NOT_COORDINATOR;
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

}  // namespace

struct GroupCoordinator::Member {
  std::string id;
  std::optional<std::string> instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::string protocol_type;
  std::vector<std::pair<std::string, std::string>> protocols;  // name, metadata
  std::string assignment;
  JoinCallback join_cb;  // set while awaiting the join's completion
  SyncCallback sync_cb;  // set while awaiting the leader's assignment
  int64_t last_heartbeat_ms = 0;

  const std::string* MetadataFor(const std::string& protocol) const {
    for (const auto& [name, metadata] : protocols) {
      if (name == protocol) return &metadata;
    }
    return nullptr;
  }
};

struct GroupCoordinator::Group {
  std::string id;
  uint64_t serial = 0;  // distinguishes re-creations of a group with the same id
  State state = State::kEmpty;
  int32_t generation = 0;
  std::string protocol_type;
  std::string protocol_name;
  std::string leader;
  std::map<std::string, Member> members;
  std::map<std::string, std::string> static_members;  // instance id -> member id
  std::map<std::string, int64_t> pending_members;     // KIP-394 id -> expiry
  // Members that received the join answer of this generation but have not
  // sent SyncGroup; removed when sync_deadline_ms passes.
  std::set<std::string> pending_sync;
  int64_t sync_deadline_ms = 0;
  int64_t join_deadline_ms = 0;
  bool initial_delay = false;
  int64_t rebalance_start_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::map<std::pair<std::string, int32_t>, OffsetEntry> offsets;  // durable only
  int inflight = 0;                                                // Persist calls not yet done
  std::optional<proto::GroupRecord> last_record;                   // the last durable GroupRecord

  bool Has(const std::string& member_id) const { return members.count(member_id) > 0; }
};

GroupCoordinator::GroupCoordinator(GroupConfig config, PersistFn persist)
    : config_(std::move(config)), persist_(std::move(persist)) {}

GroupCoordinator::~GroupCoordinator() = default;

// ---- plumbing ------------------------------------------------------------------

void GroupCoordinator::Flush() {
  if (flushing_) return;
  flushing_ = true;
  while (!deferred_.empty()) {
    std::vector<std::function<void()>> batch;
    batch.swap(deferred_);
    for (auto& fn : batch) fn();
  }
  flushing_ = false;
}

void GroupCoordinator::Persist(std::vector<proto::MetadataRecord> records, PersistDone done) {
  Defer([this, records = std::move(records), done = std::move(done)]() mutable {
    persist_(std::move(records), [this, done = std::move(done)](absl::Status s) {
      done(std::move(s));
      Flush();
    });
  });
}

GroupCoordinator::Group* GroupCoordinator::Find(const std::string& group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : it->second.get();
}

GroupCoordinator::Group& GroupCoordinator::GetOrCreate(const std::string& group_id) {
  auto& slot = groups_[group_id];
  if (!slot) {
    slot = std::make_unique<Group>();
    slot->id = group_id;
    slot->serial = next_serial_++;
  }
  return *slot;
}

GroupCoordinator::Group* GroupCoordinator::Current(const std::string& group_id,
                                                   uint64_t serial) const {
  Group* g = Find(group_id);
  return g != nullptr && g->serial == serial ? g : nullptr;
}

bool GroupCoordinator::Fenced(const Group& g, const std::string& member_id,
                              const std::optional<std::string>& instance_id) const {
  if (!instance_id) return false;
  auto it = g.static_members.find(*instance_id);
  return it != g.static_members.end() && it->second != member_id;
}

std::string GroupCoordinator::NewMemberId(const Group& g, const std::string& client_id) {
  const std::string prefix =
      absl::StrCat(client_id.empty() ? "member" : client_id, "-", config_.member_id_nonce,
                   config_.member_id_nonce.empty() ? "" : "-");
  while (true) {
    std::string id = absl::StrCat(prefix, next_member_seq_++);
    if (!g.Has(id) && g.pending_members.count(id) == 0) return id;
  }
}

proto::JoinGroupResponse GroupCoordinator::JoinResult(const Group& g, const Member& m,
                                                      bool with_members) const {
  proto::JoinGroupResponse r;
  r.set_generation_id(g.generation);
  r.set_protocol_type(g.protocol_type);
  r.set_protocol_name(g.protocol_name);
  r.set_leader(g.leader);
  r.set_member_id(m.id);
  if (with_members) {
    for (const auto& [id, member] : g.members) {
      auto* out = r.add_members();
      out->set_member_id(id);
      if (member.instance_id) out->set_group_instance_id(*member.instance_id);
      if (const std::string* md = member.MetadataFor(g.protocol_name)) out->set_metadata(*md);
    }
  }
  return r;
}

bool GroupCoordinator::SupportsProtocols(const Group& g, const proto::JoinGroupRequest& req) const {
  if (g.members.empty()) return true;
  if (req.protocol_type() != g.protocol_type) return false;
  for (const auto& p : req.protocols()) {
    bool all = true;
    for (const auto& [id, m] : g.members) {
      if (id == req.member_id()) continue;  // its own protocols are being replaced
      if (m.MetadataFor(p.name()) == nullptr) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

std::string GroupCoordinator::SelectProtocol(const Group& g) const {
  // Candidates: protocols every member supports. Each member votes for the
  // first candidate in its own order; most votes wins, ties to the smallest
  // name (deterministic).
  std::map<std::string, int> votes;
  const Member& first = g.members.begin()->second;
  for (const auto& [name, md] : first.protocols) {
    bool all = true;
    for (const auto& [id, m] : g.members) {
      if (m.MetadataFor(name) == nullptr) all = false;
    }
    if (all) votes[name] = 0;
  }
  for (const auto& [id, m] : g.members) {
    for (const auto& [name, md] : m.protocols) {
      auto it = votes.find(name);
      if (it != votes.end()) {
        ++it->second;
        break;
      }
    }
  }
  std::string best;
  int best_votes = -1;
  for (const auto& [name, n] : votes) {
    if (n > best_votes) {
      best = name;
      best_votes = n;
    }
  }
  return best;
}

proto::MetadataRecord GroupCoordinator::GroupRecordOf(const Group& g) const {
  proto::MetadataRecord rec;
  auto* r = rec.mutable_group();
  r->set_group_id(g.id);
  r->set_protocol_type(g.protocol_type);
  r->set_generation(g.generation);
  r->set_protocol_name(g.protocol_name);
  r->set_leader(g.leader);
  for (const auto& [id, m] : g.members) {
    auto* out = r->add_members();
    out->set_member_id(id);
    if (m.instance_id) out->set_group_instance_id(*m.instance_id);
    out->set_client_id(m.client_id);
    out->set_client_host(m.client_host);
    out->set_session_timeout_ms(m.session_timeout_ms);
    out->set_rebalance_timeout_ms(m.rebalance_timeout_ms);
    out->set_protocol_type(m.protocol_type);
    for (const auto& [name, md] : m.protocols) {
      auto* p = out->add_protocols();
      p->set_name(name);
      p->set_metadata(md);
    }
    out->set_assignment(m.assignment);
  }
  return rec;
}

void GroupCoordinator::PersistGroup(Group& g) {
  proto::MetadataRecord rec = GroupRecordOf(g);
  ++g.inflight;
  Persist({rec}, [this, gid = g.id, serial = g.serial, rec](absl::Status s) {
    Group* g = Current(gid, serial);
    if (g == nullptr) return;
    --g->inflight;
    if (s.ok()) g->last_record = rec.group();
  });
}

// ---- membership ------------------------------------------------------------------

void GroupCoordinator::FailSyncs(Group& g, ErrorCode code) {
  for (auto& [id, m] : g.members) {
    if (!m.sync_cb) continue;
    proto::SyncGroupResponse r;
    r.set_error_code(code);
    Defer([cb = std::move(m.sync_cb), r] { cb(r); });
    m.sync_cb = nullptr;
  }
}

void GroupCoordinator::RemoveMember(Group& g, const std::string& member_id, ErrorCode reason) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  Member m = std::move(it->second);
  g.members.erase(it);
  if (m.instance_id) {
    auto s = g.static_members.find(*m.instance_id);
    if (s != g.static_members.end() && s->second == member_id) g.static_members.erase(s);
  }
  if (m.join_cb) {
    proto::JoinGroupResponse r;
    r.set_error_code(reason);
    r.set_member_id(member_id);
    Defer([cb = std::move(m.join_cb), r] { cb(r); });
  }
  if (m.sync_cb) {
    proto::SyncGroupResponse r;
    r.set_error_code(reason);
    Defer([cb = std::move(m.sync_cb), r] { cb(r); });
  }
  g.pending_sync.erase(member_id);
  if (g.leader == member_id) g.leader = g.members.empty() ? "" : g.members.begin()->first;
}

void GroupCoordinator::RemoveMemberAndUpdate(Group& g, const std::string& member_id,
                                             ErrorCode reason, int64_t now_ms) {
  RemoveMember(g, member_id, reason);
  switch (g.state) {
    case State::kStable:
    case State::kCompletingRebalance:
      PrepareRebalance(g, now_ms);
      TryCompleteJoin(g, now_ms);
      break;
    case State::kPreparingRebalance:
      TryCompleteJoin(g, now_ms);
      break;
    case State::kEmpty:
    case State::kDead:
      break;
  }
}

void GroupCoordinator::PrepareRebalance(Group& g, int64_t now_ms) {
  if (g.state == State::kCompletingRebalance) {
    for (auto& [id, m] : g.members) m.assignment.clear();
    FailSyncs(g, ErrorCode::REBALANCE_IN_PROGRESS);
  }
  g.pending_sync.clear();
  int32_t timeout = 0;
  for (const auto& [id, m] : g.members) timeout = std::max(timeout, m.rebalance_timeout_ms);
  const bool from_empty = g.state == State::kEmpty;
  g.state = State::kPreparingRebalance;
  g.rebalance_start_ms = now_ms;
  g.rebalance_timeout_ms = timeout;
  g.initial_delay = from_empty && config_.initial_rebalance_delay_ms > 0;
  g.join_deadline_ms =
      now_ms + (g.initial_delay ? std::min(config_.initial_rebalance_delay_ms, timeout) : timeout);
}

void GroupCoordinator::MaybePrepareRebalance(Group& g, int64_t now_ms) {
  if (g.state == State::kStable || g.state == State::kCompletingRebalance ||
      g.state == State::kEmpty) {
    PrepareRebalance(g, now_ms);
  }
  TryCompleteJoin(g, now_ms);
}

void GroupCoordinator::TryCompleteJoin(Group& g, int64_t now_ms) {
  if (g.state != State::kPreparingRebalance || g.initial_delay) return;
  if (!g.pending_members.empty()) return;
  for (const auto& [id, m] : g.members) {
    if (!m.join_cb) return;
  }
  CompleteJoin(g, now_ms);
}

void GroupCoordinator::CompleteJoin(Group& g, int64_t now_ms) {
  std::vector<std::string> lagging;
  for (const auto& [id, m] : g.members) {
    if (!m.join_cb) lagging.push_back(id);
  }
  for (const auto& id : lagging) RemoveMember(g, id, ErrorCode::UNKNOWN_MEMBER_ID);
  g.initial_delay = false;
  ++g.generation;
  if (g.members.empty()) {
    g.state = State::kEmpty;
    g.protocol_name.clear();
    g.leader.clear();
    PersistGroup(g);
    return;
  }
  g.protocol_name = SelectProtocol(g);
  if (!g.Has(g.leader)) g.leader = g.members.begin()->first;
  g.state = State::kCompletingRebalance;
  g.pending_sync.clear();
  g.sync_deadline_ms = now_ms + g.rebalance_timeout_ms;
  for (auto& [id, m] : g.members) {
    g.pending_sync.insert(id);
    m.last_heartbeat_ms = now_ms;
    proto::JoinGroupResponse r = JoinResult(g, m, id == g.leader);
    Defer([cb = std::move(m.join_cb), r] { cb(r); });
    m.join_cb = nullptr;
  }
}

void GroupCoordinator::AddMemberAndRebalance(Group& g, const std::string& member_id,
                                             const proto::JoinGroupRequest& req,
                                             const std::string& host, int64_t now_ms,
                                             JoinCallback done) {
  Member m;
  m.id = member_id;
  m.instance_id = InstanceOf(req.has_group_instance_id(), req.group_instance_id());
  m.client_id = req.client_id();
  m.client_host = host;
  m.session_timeout_ms = req.session_timeout_ms();
  m.rebalance_timeout_ms =
      req.rebalance_timeout_ms() > 0 ? req.rebalance_timeout_ms() : req.session_timeout_ms();
  m.protocol_type = req.protocol_type();
  for (const auto& p : req.protocols()) m.protocols.emplace_back(p.name(), p.metadata());
  m.join_cb = std::move(done);
  m.last_heartbeat_ms = now_ms;
  if (g.members.empty()) g.protocol_type = req.protocol_type();
  if (g.leader.empty()) g.leader = member_id;
  if (m.instance_id) g.static_members[*m.instance_id] = member_id;
  g.pending_members.erase(member_id);
  const int32_t rebalance_timeout = m.rebalance_timeout_ms;
  g.members.emplace(member_id, std::move(m));
  if (g.state == State::kPreparingRebalance && g.initial_delay) {
    // Each new member during the initial delay extends it, up to the
    // rebalance timeout counted from the start.
    g.rebalance_timeout_ms = std::max(g.rebalance_timeout_ms, rebalance_timeout);
    g.join_deadline_ms = std::min(now_ms + config_.initial_rebalance_delay_ms,
                                  g.rebalance_start_ms + g.rebalance_timeout_ms);
  }
  MaybePrepareRebalance(g, now_ms);
}

void GroupCoordinator::UpdateMemberAndRebalance(Group& g, Member& m,
                                                const proto::JoinGroupRequest& req, int64_t now_ms,
                                                JoinCallback done) {
  if (m.join_cb) {
    proto::JoinGroupResponse r;
    r.set_error_code(ErrorCode::REBALANCE_IN_PROGRESS);
    r.set_error_message("superseded by a newer join of the same member");
    r.set_member_id(m.id);
    Defer([cb = std::move(m.join_cb), r] { cb(r); });
  }
  m.session_timeout_ms = req.session_timeout_ms();
  m.rebalance_timeout_ms =
      req.rebalance_timeout_ms() > 0 ? req.rebalance_timeout_ms() : req.session_timeout_ms();
  m.protocol_type = req.protocol_type();
  m.protocols.clear();
  for (const auto& p : req.protocols()) m.protocols.emplace_back(p.name(), p.metadata());
  m.join_cb = std::move(done);
  m.last_heartbeat_ms = now_ms;
  MaybePrepareRebalance(g, now_ms);
}

namespace {
bool SameProtocols(const std::string& type,
                   const std::vector<std::pair<std::string, std::string>>& protocols,
                   const proto::JoinGroupRequest& req) {
  if (type != req.protocol_type() || protocols.size() != static_cast<size_t>(req.protocols_size()))
    return false;
  for (size_t i = 0; i < protocols.size(); ++i) {
    const auto& p = req.protocols(static_cast<int>(i));
    if (protocols[i].first != p.name() || protocols[i].second != p.metadata()) return false;
  }
  return true;
}
}  // namespace

// ---- JoinGroup ---------------------------------------------------------------------

void GroupCoordinator::JoinGroup(const proto::JoinGroupRequest& req, const std::string& host,
                                 int64_t now_ms, JoinCallback done) {
  now_ms_ = std::max(now_ms_, now_ms);
  auto fail = [&](ErrorCode code, std::string message) {
    proto::JoinGroupResponse r;
    r.set_error_code(code);
    r.set_error_message(std::move(message));
    r.set_member_id(req.member_id());
    Defer([cb = std::move(done), r] { cb(r); });
    Flush();
  };
  if (req.group_id().empty()) return fail(ErrorCode::INVALID_GROUP_ID, "empty group id");
  if (req.session_timeout_ms() < config_.min_session_timeout_ms ||
      req.session_timeout_ms() > config_.max_session_timeout_ms) {
    return fail(
        ErrorCode::INVALID_SESSION_TIMEOUT,
        absl::StrCat("session timeout ", req.session_timeout_ms(), " ms outside [",
                     config_.min_session_timeout_ms, ", ", config_.max_session_timeout_ms, "]"));
  }
  if (req.protocol_type().empty() || req.protocols_size() == 0) {
    return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, "no protocol type or no protocols");
  }
  if (req.has_group_instance_id() && req.group_instance_id().empty()) {
    return fail(ErrorCode::INVALID_REQUEST, "empty group instance id");
  }
  Group* g = Find(req.group_id());
  if (g == nullptr) {
    if (!req.member_id().empty()) return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown group");
    g = &GetOrCreate(req.group_id());
  }
  if (g->state == State::kDead) return fail(ErrorCode::NOT_COORDINATOR, "group is being deleted");
  if (!SupportsProtocols(*g, req)) {
    return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL,
                "protocol type differs from the group's or no protocol in common");
  }
  if (req.member_id().empty()) {
    JoinUnknownMember(*g, req, host, now_ms, std::move(done));
  } else {
    JoinKnownMember(*g, req, host, now_ms, std::move(done));
  }
  Flush();
}

void GroupCoordinator::JoinUnknownMember(Group& g, const proto::JoinGroupRequest& req,
                                         const std::string& host, int64_t now_ms,
                                         JoinCallback done) {
  auto reply = [&](ErrorCode code, const std::string& member_id, std::string message) {
    proto::JoinGroupResponse r;
    r.set_error_code(code);
    r.set_error_message(std::move(message));
    r.set_member_id(member_id);
    Defer([cb = std::move(done), r] { cb(r); });
  };
  if (req.has_group_instance_id() && g.static_members.count(req.group_instance_id()) > 0) {
    return ReplaceStaticMember(g, req, now_ms, std::move(done));
  }
  if (static_cast<int64_t>(g.members.size() + g.pending_members.size()) >= config_.max_group_size) {
    return reply(ErrorCode::GROUP_MAX_SIZE_REACHED, "", "the group is full");
  }
  const std::string id = NewMemberId(g, req.client_id());
  if (req.has_group_instance_id()) {
    return AddMemberAndRebalance(g, id, req, host, now_ms, std::move(done));
  }
  // KIP-394: the member must come back with this id before it counts.
  g.pending_members[id] = now_ms + req.session_timeout_ms();
  reply(ErrorCode::MEMBER_ID_REQUIRED, id, "join again with the given member id");
}

void GroupCoordinator::JoinKnownMember(Group& g, const proto::JoinGroupRequest& req,
                                       const std::string& host, int64_t now_ms, JoinCallback done) {
  const std::string& id = req.member_id();
  const auto instance = InstanceOf(req.has_group_instance_id(), req.group_instance_id());
  auto reply = [&](ErrorCode code, std::string message) {
    proto::JoinGroupResponse r;
    r.set_error_code(code);
    r.set_error_message(std::move(message));
    r.set_member_id(id);
    Defer([cb = std::move(done), r] { cb(r); });
  };
  if (Fenced(g, id, instance)) {
    return reply(ErrorCode::FENCED_INSTANCE_ID, "another member holds this group instance id");
  }
  if (g.pending_members.count(id) > 0) {
    return AddMemberAndRebalance(g, id, req, host, now_ms, std::move(done));
  }
  auto it = g.members.find(id);
  if (it == g.members.end()) return reply(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
  Member& m = it->second;
  const bool same = SameProtocols(m.protocol_type, m.protocols, req);
  switch (g.state) {
    case State::kPreparingRebalance:
      return UpdateMemberAndRebalance(g, m, req, now_ms, std::move(done));
    case State::kCompletingRebalance:
      if (same) {
        // A retried join of this generation: answer it again.
        m.last_heartbeat_ms = now_ms;
        proto::JoinGroupResponse r = JoinResult(g, m, id == g.leader);
        Defer([cb = std::move(done), r] { cb(r); });
        return;
      }
      return UpdateMemberAndRebalance(g, m, req, now_ms, std::move(done));
    case State::kStable:
      if (same && id != g.leader) {
        m.last_heartbeat_ms = now_ms;
        proto::JoinGroupResponse r = JoinResult(g, m, false);
        Defer([cb = std::move(done), r] { cb(r); });
        return;
      }
      // The leader rejoining (it may have seen metadata change) or a changed
      // subscription starts a rebalance.
      return UpdateMemberAndRebalance(g, m, req, now_ms, std::move(done));
    case State::kEmpty:
    case State::kDead:
      return reply(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
  }
}

void GroupCoordinator::ReplaceStaticMember(Group& g, const proto::JoinGroupRequest& req,
                                           int64_t now_ms, JoinCallback done) {
  const std::string instance = req.group_instance_id();
  const std::string old_id = g.static_members[instance];
  const std::string new_id = NewMemberId(g, req.client_id());
  auto node = g.members.extract(old_id);
  Member& m = node.mapped();
  // The old incarnation's waiting requests are fenced.
  if (m.join_cb) {
    proto::JoinGroupResponse r;
    r.set_error_code(ErrorCode::FENCED_INSTANCE_ID);
    r.set_member_id(old_id);
    Defer([cb = std::move(m.join_cb), r] { cb(r); });
    m.join_cb = nullptr;
  }
  if (m.sync_cb) {
    proto::SyncGroupResponse r;
    r.set_error_code(ErrorCode::FENCED_INSTANCE_ID);
    Defer([cb = std::move(m.sync_cb), r] { cb(r); });
    m.sync_cb = nullptr;
  }
  const bool same = SameProtocols(m.protocol_type, m.protocols, req);
  const std::string old_leader = g.leader;
  m.id = new_id;
  m.client_id = req.client_id();
  m.session_timeout_ms = req.session_timeout_ms();
  m.rebalance_timeout_ms =
      req.rebalance_timeout_ms() > 0 ? req.rebalance_timeout_ms() : req.session_timeout_ms();
  m.last_heartbeat_ms = now_ms;
  node.key() = new_id;
  g.members.insert(std::move(node));
  g.static_members[instance] = new_id;
  if (g.leader == old_id) g.leader = new_id;
  if (g.pending_sync.erase(old_id) > 0) g.pending_sync.insert(new_id);
  Member& member = g.members.at(new_id);

  if (g.state == State::kStable && same) {
    // No rebalance: persist the new member id, then answer with the current
    // generation. The leader named is the one before the replacement, so a
    // restarted leader does not compute an assignment a Stable group would
    // not distribute (as Kafka does).
    proto::JoinGroupResponse r = JoinResult(g, member, false);
    r.set_leader(old_leader);
    proto::MetadataRecord rec = GroupRecordOf(g);
    ++g.inflight;
    Persist({rec}, [this, gid = g.id, serial = g.serial, rec, r, old_id, new_id, instance,
                    done = std::move(done)](absl::Status s) mutable {
      Group* g = Current(gid, serial);
      if (g != nullptr) --g->inflight;
      if (s.ok()) {
        if (g != nullptr) g->last_record = rec.group();
        Defer([cb = std::move(done), r] { cb(r); });
        return;
      }
      // Not durable: undo the replacement when nothing else changed it.
      if (g != nullptr && g->Has(new_id) && g->static_members[instance] == new_id) {
        auto node = g->members.extract(new_id);
        node.mapped().id = old_id;
        node.key() = old_id;
        g->members.insert(std::move(node));
        g->static_members[instance] = old_id;
        if (g->leader == new_id) g->leader = old_id;
        if (g->pending_sync.erase(new_id) > 0) g->pending_sync.insert(old_id);
      }
      proto::JoinGroupResponse err;
      err.set_error_code(PersistError(s));
      err.set_error_message(Message(s));
      Defer([cb = std::move(done), err] { cb(err); });
    });
    return;
  }
  member.protocol_type = req.protocol_type();
  member.protocols.clear();
  for (const auto& p : req.protocols()) member.protocols.emplace_back(p.name(), p.metadata());
  member.join_cb = std::move(done);
  MaybePrepareRebalance(g, now_ms);
}

// ---- SyncGroup ---------------------------------------------------------------------

void GroupCoordinator::SyncGroup(const proto::SyncGroupRequest& req, int64_t now_ms,
                                 SyncCallback done) {
  now_ms_ = std::max(now_ms_, now_ms);
  auto fail = [&](ErrorCode code, std::string message) {
    proto::SyncGroupResponse r;
    r.set_error_code(code);
    r.set_error_message(std::move(message));
    Defer([cb = std::move(done), r] { cb(r); });
    Flush();
  };
  if (req.group_id().empty()) return fail(ErrorCode::INVALID_GROUP_ID, "empty group id");
  Group* g = Find(req.group_id());
  if (g == nullptr) return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown group");
  const auto instance = InstanceOf(req.has_group_instance_id(), req.group_instance_id());
  if (Fenced(*g, req.member_id(), instance)) {
    return fail(ErrorCode::FENCED_INSTANCE_ID, "another member holds this group instance id");
  }
  if (!g->Has(req.member_id())) return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
  if (req.generation_id() != g->generation) {
    return fail(ErrorCode::ILLEGAL_GENERATION,
                absl::StrCat("generation ", req.generation_id(), " is not ", g->generation));
  }
  if ((!req.protocol_type().empty() && req.protocol_type() != g->protocol_type) ||
      (!req.protocol_name().empty() && req.protocol_name() != g->protocol_name)) {
    return fail(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, "protocol differs from the group's");
  }
  Member& m = g->members.at(req.member_id());
  switch (g->state) {
    case State::kEmpty:
    case State::kDead:
      return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
    case State::kPreparingRebalance:
      return fail(ErrorCode::REBALANCE_IN_PROGRESS, "the group is rebalancing");
    case State::kStable: {
      m.last_heartbeat_ms = now_ms;
      g->pending_sync.erase(m.id);
      proto::SyncGroupResponse r;
      r.set_protocol_type(g->protocol_type);
      r.set_protocol_name(g->protocol_name);
      r.set_assignment(m.assignment);
      Defer([cb = std::move(done), r] { cb(r); });
      Flush();
      return;
    }
    case State::kCompletingRebalance:
      break;
  }
  m.last_heartbeat_ms = now_ms;
  g->pending_sync.erase(m.id);
  if (m.sync_cb) {
    proto::SyncGroupResponse r;
    r.set_error_code(ErrorCode::REBALANCE_IN_PROGRESS);
    r.set_error_message("superseded by a newer sync of the same member");
    Defer([cb = std::move(m.sync_cb), r] { cb(r); });
  }
  m.sync_cb = std::move(done);
  if (m.id == g->leader) {
    // The leader's assignment becomes the group's once durable; members not
    // named get an empty assignment, unknown names are ignored.
    std::map<std::string, std::string> assignment;
    for (const auto& a : req.assignments()) {
      if (g->Has(a.member_id())) assignment[a.member_id()] = a.assignment();
    }
    proto::MetadataRecord rec = GroupRecordOf(*g);
    for (auto& member : *rec.mutable_group()->mutable_members()) {
      auto it = assignment.find(member.member_id());
      member.set_assignment(it == assignment.end() ? std::string() : it->second);
    }
    ++g->inflight;
    Persist({rec}, [this, gid = g->id, serial = g->serial, generation = g->generation, rec,
                    assignment](absl::Status s) {
      Group* g = Current(gid, serial);
      if (g == nullptr) return;
      --g->inflight;
      if (s.ok()) g->last_record = rec.group();
      if (g->state != State::kCompletingRebalance || g->generation != generation) return;
      if (!s.ok()) {
        FailSyncs(*g, PersistError(s));
        PrepareRebalance(*g, now_ms_);
        TryCompleteJoin(*g, now_ms_);
        return;
      }
      for (auto& [id, member] : g->members) {
        auto it = assignment.find(id);
        member.assignment = it == assignment.end() ? std::string() : it->second;
      }
      g->state = State::kStable;
      ++rebalances_completed_;
      for (auto& [id, member] : g->members) {
        if (!member.sync_cb) continue;
        proto::SyncGroupResponse r;
        r.set_protocol_type(g->protocol_type);
        r.set_protocol_name(g->protocol_name);
        r.set_assignment(member.assignment);
        Defer([cb = std::move(member.sync_cb), r] { cb(r); });
        member.sync_cb = nullptr;
      }
    });
  }
  Flush();
}

// ---- Heartbeat, LeaveGroup ---------------------------------------------------------------

proto::HeartbeatResponse GroupCoordinator::Heartbeat(const proto::HeartbeatRequest& req,
                                                     int64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  proto::HeartbeatResponse r;
  auto fail = [&](ErrorCode code, std::string message) {
    r.set_error_code(code);
    r.set_error_message(std::move(message));
    return r;
  };
  if (req.group_id().empty()) return fail(ErrorCode::INVALID_GROUP_ID, "empty group id");
  Group* g = Find(req.group_id());
  if (g == nullptr) return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown group");
  if (Fenced(*g, req.member_id(),
             InstanceOf(req.has_group_instance_id(), req.group_instance_id()))) {
    return fail(ErrorCode::FENCED_INSTANCE_ID, "another member holds this group instance id");
  }
  auto it = g->members.find(req.member_id());
  if (it == g->members.end()) return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
  if (req.generation_id() != g->generation) {
    return fail(ErrorCode::ILLEGAL_GENERATION,
                absl::StrCat("generation ", req.generation_id(), " is not ", g->generation));
  }
  switch (g->state) {
    case State::kEmpty:
    case State::kDead:
      return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
    case State::kPreparingRebalance:
      it->second.last_heartbeat_ms = now_ms;
      return fail(ErrorCode::REBALANCE_IN_PROGRESS, "the group is rebalancing");
    case State::kCompletingRebalance:
    case State::kStable:
      it->second.last_heartbeat_ms = now_ms;
      return r;
  }
  return r;
}

proto::LeaveGroupResponse GroupCoordinator::LeaveGroup(const proto::LeaveGroupRequest& req,
                                                       int64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  proto::LeaveGroupResponse resp;
  if (req.group_id().empty()) {
    resp.set_error_code(ErrorCode::INVALID_GROUP_ID);
    resp.set_error_message("empty group id");
    return resp;
  }
  Group* g = Find(req.group_id());
  if (g != nullptr && g->state == State::kDead) {
    resp.set_error_code(ErrorCode::NOT_COORDINATOR);
    resp.set_error_message("group is being deleted");
    return resp;
  }
  for (const auto& lm : req.members()) {
    auto* out = resp.add_members();
    out->set_member_id(lm.member_id());
    if (lm.has_group_instance_id()) out->set_group_instance_id(lm.group_instance_id());
    const auto instance = InstanceOf(lm.has_group_instance_id(), lm.group_instance_id());
    auto fail = [&](ErrorCode code, const char* message) {
      out->set_error_code(code);
      out->set_error_message(message);
    };
    if (g == nullptr) {
      fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown group");
      continue;
    }
    std::string id = lm.member_id();
    if (id.empty()) {
      // KIP-345 admin removal of a static member by its instance id.
      auto s = instance ? g->static_members.find(*instance) : g->static_members.end();
      if (s == g->static_members.end()) {
        fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown group instance id");
        continue;
      }
      id = s->second;
    } else if (Fenced(*g, id, instance)) {
      fail(ErrorCode::FENCED_INSTANCE_ID, "another member holds this group instance id");
      continue;
    } else if (g->pending_members.erase(id) > 0) {
      TryCompleteJoin(*g, now_ms);
      continue;
    } else if (!g->Has(id)) {
      fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
      continue;
    }
    RemoveMemberAndUpdate(*g, id, ErrorCode::UNKNOWN_MEMBER_ID, now_ms);
  }
  Flush();
  return resp;
}

// ---- Offsets -------------------------------------------------------------------------------

void GroupCoordinator::OffsetCommit(const proto::OffsetCommitRequest& req, int64_t now_ms,
                                    CommitCallback done) {
  now_ms_ = std::max(now_ms_, now_ms);
  proto::OffsetCommitResponse resp;
  for (const auto& p : req.partitions()) {
    auto* out = resp.add_partitions();
    out->set_topic(p.topic());
    out->set_partition(p.partition());
  }
  auto fail = [&](ErrorCode code, const std::string& message) {
    resp.set_error_code(code);
    resp.set_error_message(message);
    for (auto& out : *resp.mutable_partitions()) {
      out.set_error_code(code);
      out.set_error_message(message);
    }
    Defer([cb = std::move(done), resp] { cb(resp); });
    Flush();
  };
  if (req.group_id().empty()) return fail(ErrorCode::INVALID_GROUP_ID, "empty group id");
  Group* g = Find(req.group_id());
  if (g == nullptr) {
    if (req.generation_id() >= 0) {
      return fail(ErrorCode::ILLEGAL_GENERATION, "unknown group");
    }
    g = &GetOrCreate(req.group_id());  // a group that only stores offsets
  }
  const auto instance = InstanceOf(req.has_group_instance_id(), req.group_instance_id());
  if (g->state == State::kDead) return fail(ErrorCode::NOT_COORDINATOR, "group is being deleted");
  if (Fenced(*g, req.member_id(), instance)) {
    return fail(ErrorCode::FENCED_INSTANCE_ID, "another member holds this group instance id");
  }
  std::optional<std::map<std::pair<std::string, int32_t>, std::string>> owned_by_others;
  if (!(req.generation_id() < 0 && g->state == State::kEmpty)) {
    auto it = g->members.find(req.member_id());
    if (it == g->members.end()) return fail(ErrorCode::UNKNOWN_MEMBER_ID, "unknown member id");
    if (req.generation_id() != g->generation) {
      return fail(ErrorCode::ILLEGAL_GENERATION,
                  absl::StrCat("generation ", req.generation_id(), " is not ", g->generation));
    }
    if (g->state == State::kCompletingRebalance) {
      return fail(ErrorCode::REBALANCE_IN_PROGRESS, "the group is completing a rebalance");
    }
    // Stable, or PreparingRebalance: commits of the ending generation are
    // still accepted (the member learns of the rebalance by heartbeat).
    it->second.last_heartbeat_ms = now_ms;
    // A consumer-protocol member may not commit a partition that the
    // current generation assigns to another member: that member's progress
    // would be overwritten. Partitions it gives up in a cooperative
    // rebalance are assigned to nobody until the next round, so their last
    // positions can still be committed on revocation. Assignments that do not
    // parse are not checked.
    if (g->protocol_type == kConsumerProtocolType) {
      owned_by_others.emplace();
      for (const auto& [id, member] : g->members) {
        proto::ConsumerAssignment assignment;
        if (id == req.member_id() || !assignment.ParseFromString(member.assignment)) continue;
        for (const auto& tp : assignment.partitions()) {
          for (int32_t p : tp.partitions()) owned_by_others->emplace(std::make_pair(tp.topic(), p), id);
        }
      }
    }
  }
  std::vector<proto::MetadataRecord> records;
  std::vector<int> indices;  // response entries the records stand for
  for (int i = 0; i < req.partitions_size(); ++i) {
    const auto& p = req.partitions(i);
    auto* out = resp.mutable_partitions(i);
    if (p.topic().empty() || p.partition() < 0) {
      out->set_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
      out->set_error_message("empty topic or negative partition");
      continue;
    }
    if (p.offset() < 0) {
      out->set_error_code(ErrorCode::INVALID_REQUEST);
      out->set_error_message("negative offset");
      continue;
    }
    if (owned_by_others) {
      if (auto owner = owned_by_others->find({p.topic(), p.partition()});
          owner != owned_by_others->end()) {
        out->set_error_code(ErrorCode::PARTITION_NOT_OWNED);
        out->set_error_message(absl::StrCat(p.topic(), "-", p.partition(), " is assigned to member ",
                                            owner->second, " in generation ", g->generation));
        continue;
      }
    }
    if (static_cast<int64_t>(p.metadata().size()) > config_.max_offset_metadata_bytes) {
      out->set_error_code(ErrorCode::OFFSET_METADATA_TOO_LARGE);
      out->set_error_message(
          absl::StrCat("metadata exceeds ", config_.max_offset_metadata_bytes, " bytes"));
      continue;
    }
    proto::MetadataRecord rec;
    auto* r = rec.mutable_offset_commit();
    r->set_group_id(g->id);
    r->set_topic(p.topic());
    r->set_partition(p.partition());
    r->set_offset(p.offset());
    r->set_leader_epoch(p.leader_epoch());
    r->set_metadata(p.metadata());
    r->set_commit_timestamp_ms(now_ms);
    records.push_back(std::move(rec));
    indices.push_back(i);
  }
  if (records.empty()) {
    Defer([cb = std::move(done), resp] { cb(resp); });
    Flush();
    return;
  }
  ++g->inflight;
  Persist(records, [this, gid = g->id, serial = g->serial, records, indices, resp,
                    done = std::move(done)](absl::Status s) mutable {
    if (Group* g = Current(gid, serial)) {
      --g->inflight;
      if (s.ok()) {
        for (const auto& rec : records) {
          const auto& r = rec.offset_commit();
          g->offsets[{r.topic(), r.partition()}] =
              OffsetEntry{r.offset(), r.leader_epoch(), r.metadata(), r.commit_timestamp_ms()};
        }
      }
    }
    for (int i : indices) {
      auto* out = resp.mutable_partitions(i);
      out->set_error_code(PersistError(s));
      out->set_error_message(Message(s));
    }
    Defer([cb = std::move(done), resp] { cb(resp); });
  });
  Flush();
}

proto::OffsetFetchResponse GroupCoordinator::OffsetFetch(
    const proto::OffsetFetchRequest& req) const {
  proto::OffsetFetchResponse resp;
  if (req.group_id().empty()) {
    resp.set_error_code(ErrorCode::INVALID_GROUP_ID);
    resp.set_error_message("empty group id");
    return resp;
  }
  const Group* g = Find(req.group_id());
  auto add = [&](const std::string& topic, int32_t partition, const OffsetEntry* e) {
    auto* out = resp.add_partitions();
    out->set_topic(topic);
    out->set_partition(partition);
    out->set_offset(e ? e->offset : -1);
    out->set_leader_epoch(e ? e->leader_epoch : -1);
    if (e) out->set_metadata(e->metadata);
  };
  if (req.partitions_size() == 0) {
    if (g != nullptr) {
      for (const auto& [tp, e] : g->offsets) add(tp.first, tp.second, &e);
    }
    return resp;
  }
  for (const auto& p : req.partitions()) {
    const OffsetEntry* e = nullptr;
    if (g != nullptr) {
      auto it = g->offsets.find({p.topic(), p.partition()});
      if (it != g->offsets.end()) e = &it->second;
    }
    add(p.topic(), p.partition(), e);
  }
  return resp;
}

// ---- List, Describe, Delete ---------------------------------------------------------------

proto::ListGroupsResponse GroupCoordinator::ListGroups(const proto::ListGroupsRequest& req) const {
  proto::ListGroupsResponse resp;
  for (const auto& [id, g] : groups_) {
    if (g->state == State::kDead) continue;
    const std::string state = StateName(g->state);
    if (req.states_size() > 0 &&
        std::find(req.states().begin(), req.states().end(), state) == req.states().end()) {
      continue;
    }
    auto* out = resp.add_groups();
    out->set_group_id(id);
    out->set_protocol_type(g->protocol_type);
    out->set_state(state);
  }
  return resp;
}

proto::DescribeGroupsResponse GroupCoordinator::DescribeGroups(
    const proto::DescribeGroupsRequest& req) const {
  proto::DescribeGroupsResponse resp;
  for (const auto& id : req.groups()) {
    auto* out = resp.add_groups();
    out->set_group_id(id);
    if (id.empty()) {
      out->set_error_code(ErrorCode::INVALID_GROUP_ID);
      out->set_error_message("empty group id");
      out->set_state("Dead");
      continue;
    }
    const Group* g = Find(id);
    if (g == nullptr) {
      out->set_error_code(ErrorCode::GROUP_ID_NOT_FOUND);
      out->set_error_message("unknown group");
      out->set_state("Dead");
      continue;
    }
    out->set_state(StateName(g->state));
    out->set_protocol_type(g->protocol_type);
    out->set_protocol_name(g->protocol_name);
    out->set_generation_id(g->generation);
    out->set_leader(g->leader);
    const bool stable = g->state == State::kStable;
    for (const auto& [mid, m] : g->members) {
      auto* dm = out->add_members();
      dm->set_member_id(mid);
      if (m.instance_id) dm->set_group_instance_id(*m.instance_id);
      dm->set_client_id(m.client_id);
      dm->set_client_host(m.client_host);
      if (stable) {
        if (const std::string* md = m.MetadataFor(g->protocol_name)) dm->set_metadata(*md);
        dm->set_assignment(m.assignment);
      }
    }
  }
  return resp;
}

void GroupCoordinator::DeleteGroups(const proto::DeleteGroupsRequest& req, int64_t now_ms,
                                    DeleteCallback done) {
  now_ms_ = std::max(now_ms_, now_ms);
  proto::DeleteGroupsResponse resp;
  std::vector<proto::MetadataRecord> records;
  struct Deleting {
    std::string id;
    uint64_t serial;
    int index;
  };
  std::vector<Deleting> deleting;
  std::set<std::string> seen;
  for (const auto& id : req.groups()) {
    if (!seen.insert(id).second) continue;
    auto* out = resp.add_groups();
    out->set_group_id(id);
    Group* g = id.empty() ? nullptr : Find(id);
    if (id.empty()) {
      out->set_error_code(ErrorCode::INVALID_GROUP_ID);
      out->set_error_message("empty group id");
    } else if (g == nullptr || g->state == State::kDead) {
      out->set_error_code(ErrorCode::GROUP_ID_NOT_FOUND);
      out->set_error_message("unknown group");
    } else if (g->state != State::kEmpty) {
      out->set_error_code(ErrorCode::NON_EMPTY_GROUP);
      out->set_error_message(absl::StrCat("the group is ", StateName(g->state)));
    } else {
      g->state = State::kDead;  // refuses joins and commits until the record is durable
      ++g->inflight;
      proto::MetadataRecord rec;
      rec.mutable_remove_group()->set_group_id(id);
      records.push_back(std::move(rec));
      deleting.push_back({id, g->serial, resp.groups_size() - 1});
    }
  }
  if (records.empty()) {
    Defer([cb = std::move(done), resp] { cb(resp); });
    Flush();
    return;
  }
  Persist(std::move(records),
          [this, deleting, resp, done = std::move(done)](absl::Status s) mutable {
            for (const auto& d : deleting) {
              if (Group* g = Current(d.id, d.serial)) {
                --g->inflight;
                if (s.ok()) {
                  groups_.erase(d.id);
                } else if (g->state == State::kDead) {
                  g->state = State::kEmpty;
                }
              }
              auto* out = resp.mutable_groups(d.index);
              out->set_error_code(PersistError(s));
              out->set_error_message(Message(s));
            }
            Defer([cb = std::move(done), resp] { cb(resp); });
          });
  Flush();
}

// ---- Time --------------------------------------------------------------------------------

void GroupCoordinator::ExpireGroup(Group& g, int64_t now_ms) {
  bool pending_expired = false;
  for (auto it = g.pending_members.begin(); it != g.pending_members.end();) {
    if (it->second <= now_ms) {
      it = g.pending_members.erase(it);
      pending_expired = true;
    } else {
      ++it;
    }
  }
  std::vector<std::string> expired;
  for (const auto& [id, m] : g.members) {
    // A member waiting on the coordinator (join or sync) is kept alive.
    if (!m.join_cb && !m.sync_cb && m.last_heartbeat_ms + m.session_timeout_ms <= now_ms) {
      expired.push_back(id);
    }
  }
  for (const auto& id : expired) {
    RemoveMemberAndUpdate(g, id, ErrorCode::UNKNOWN_MEMBER_ID, now_ms);
  }
  if (pending_expired) TryCompleteJoin(g, now_ms);
  if (g.state == State::kPreparingRebalance && now_ms >= g.join_deadline_ms) {
    CompleteJoin(g, now_ms);
  }
  if ((g.state == State::kCompletingRebalance || g.state == State::kStable) &&
      !g.pending_sync.empty() && now_ms >= g.sync_deadline_ms) {
    // Members that never fetched their assignment (a leader that never sent
    // one blocks the whole group) are removed and the group rebalances.
    std::vector<std::string> unsynced(g.pending_sync.begin(), g.pending_sync.end());
    for (const auto& id : unsynced) RemoveMember(g, id, ErrorCode::UNKNOWN_MEMBER_ID);
    PrepareRebalance(g, now_ms);
    TryCompleteJoin(g, now_ms);
  }
}

void GroupCoordinator::Tick(int64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  std::vector<std::string> ids;
  for (const auto& [id, g] : groups_) ids.push_back(id);
  for (const auto& id : ids) {
    Group* g = Find(id);
    if (g == nullptr || g->state == State::kDead) continue;
    ExpireGroup(*g, now_ms);
    // An Empty group with nothing committed is forgotten (as Kafka's cleanup
    // does); a tombstone follows a GroupRecord that was made durable.
    if (g->state == State::kEmpty && g->members.empty() && g->pending_members.empty() &&
        g->offsets.empty() && g->inflight == 0) {
      const bool durable = g->last_record.has_value();
      groups_.erase(id);
      if (durable) {
        proto::MetadataRecord rec;
        rec.mutable_remove_group()->set_group_id(id);
        Persist({rec}, [](absl::Status) {});
      }
    }
  }
  Flush();
}

std::optional<int64_t> GroupCoordinator::NextDeadline() const {
  std::optional<int64_t> next;
  auto consider = [&](int64_t t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [id, g] : groups_) {
    if (g->state == State::kDead) continue;
    for (const auto& [mid, deadline] : g->pending_members) consider(deadline);
    for (const auto& [mid, m] : g->members) {
      if (!m.join_cb && !m.sync_cb) consider(m.last_heartbeat_ms + m.session_timeout_ms);
    }
    if (g->state == State::kPreparingRebalance) consider(g->join_deadline_ms);
    if ((g->state == State::kCompletingRebalance || g->state == State::kStable) &&
        !g->pending_sync.empty()) {
      consider(g->sync_deadline_ms);
    }
    if (g->state == State::kEmpty && g->members.empty() && g->pending_members.empty() &&
        g->offsets.empty() && g->inflight == 0) {
      consider(now_ms_);
    }
  }
  return next;
}

// ---- Replay, snapshot, unload --------------------------------------------------------------

bool GroupCoordinator::IsGroupRecord(const proto::MetadataRecord& record) {
  return record.has_group() || record.has_offset_commit() || record.has_remove_group();
}

absl::Status GroupCoordinator::Replay(const proto::MetadataRecord& record, int64_t now_ms) {
  now_ms_ = std::max(now_ms_, now_ms);
  if (record.has_group()) {
    const proto::GroupRecord& r = record.group();
    if (r.group_id().empty()) return absl::InvalidArgumentError("GroupRecord without group id");
    std::set<std::string> ids;
    for (const auto& m : r.members()) {
      if (m.member_id().empty() || !ids.insert(m.member_id()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("GroupRecord of ", r.group_id(), ": empty or duplicate member id"));
      }
    }
    if (!r.members().empty() && ids.count(r.leader()) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GroupRecord of ", r.group_id(), ": leader is not a member"));
    }
    Group& g = GetOrCreate(r.group_id());
    std::vector<std::string> old;
    for (const auto& [id, m] : g.members) old.push_back(id);
    for (const auto& id : old) RemoveMember(g, id, ErrorCode::NOT_COORDINATOR);
    g.static_members.clear();
    g.pending_members.clear();
    g.pending_sync.clear();
    g.initial_delay = false;
    g.generation = r.generation();
    g.protocol_type = r.protocol_type();
    g.protocol_name = r.protocol_name();
    g.leader = r.leader();
    for (const auto& rm : r.members()) {
      Member m;
      m.id = rm.member_id();
      m.instance_id = InstanceOf(rm.has_group_instance_id(), rm.group_instance_id());
      m.client_id = rm.client_id();
      m.client_host = rm.client_host();
      m.session_timeout_ms = rm.session_timeout_ms();
      m.rebalance_timeout_ms = rm.rebalance_timeout_ms();
      m.protocol_type = rm.protocol_type();
      for (const auto& p : rm.protocols()) m.protocols.emplace_back(p.name(), p.metadata());
      m.assignment = rm.assignment();
      m.last_heartbeat_ms = now_ms;
      if (m.instance_id) g.static_members[*m.instance_id] = m.id;
      g.members.emplace(m.id, std::move(m));
    }
    g.state = g.members.empty() ? State::kEmpty : State::kStable;
    g.last_record = r;
  } else if (record.has_offset_commit()) {
    const auto& r = record.offset_commit();
    if (r.group_id().empty() || r.topic().empty() || r.partition() < 0) {
      return absl::InvalidArgumentError("OffsetCommitRecord without group, topic or partition");
    }
    Group& g = GetOrCreate(r.group_id());
    g.offsets[{r.topic(), r.partition()}] =
        OffsetEntry{r.offset(), r.leader_epoch(), r.metadata(), r.commit_timestamp_ms()};
  } else if (record.has_remove_group()) {
    if (Group* g = Find(record.remove_group().group_id())) {
      std::vector<std::string> old;
      for (const auto& [id, m] : g->members) old.push_back(id);
      for (const auto& id : old) RemoveMember(*g, id, ErrorCode::NOT_COORDINATOR);
      groups_.erase(record.remove_group().group_id());
    }
  }
  Flush();
  return absl::OkStatus();
}

std::vector<proto::MetadataRecord> GroupCoordinator::SnapshotRecords() const {
  std::vector<proto::MetadataRecord> out;
  for (const auto& [id, g] : groups_) {
    if (g->last_record) {
      proto::MetadataRecord rec;
      *rec.mutable_group() = *g->last_record;
      out.push_back(std::move(rec));
    }
    for (const auto& [tp, e] : g->offsets) {
      proto::MetadataRecord rec;
      auto* r = rec.mutable_offset_commit();
      r->set_group_id(id);
      r->set_topic(tp.first);
      r->set_partition(tp.second);
      r->set_offset(e.offset);
      r->set_leader_epoch(e.leader_epoch);
      r->set_metadata(e.metadata);
      r->set_commit_timestamp_ms(e.commit_timestamp_ms);
      out.push_back(std::move(rec));
    }
  }
  return out;
}

void GroupCoordinator::Unload() {
  for (auto& [gid, g] : groups_) {
    std::vector<std::string> ids;
    for (const auto& [id, m] : g->members) ids.push_back(id);
    for (const auto& id : ids) RemoveMember(*g, id, ErrorCode::NOT_COORDINATOR);
  }
  groups_.clear();
  Flush();
}

GroupCoordinator::Stats GroupCoordinator::GetStats() const {
  Stats out;
  for (State s : {State::kEmpty, State::kPreparingRebalance, State::kCompletingRebalance,
                  State::kStable, State::kDead}) {
    out.groups_by_state[StateName(s)] = 0;
  }
  for (const auto& [id, g] : groups_) {
    ++out.groups_by_state[StateName(g->state)];
    out.members += static_cast<int64_t>(g->members.size());
  }
  out.rebalances_completed = rebalances_completed_;
  return out;
}

std::string GroupCoordinator::GroupState(const std::string& group_id) const {
  const Group* g = Find(group_id);
  return g == nullptr ? "Dead" : StateName(g->state);
}

int32_t GroupCoordinator::GroupGeneration(const std::string& group_id) const {
  const Group* g = Find(group_id);
  return g == nullptr ? -1 : g->generation;
}

}  // namespace brook::groups
