// Admin: topic and consumer group administration through the active
// coordinator, found via the name servers; DescribeTopic, GroupOffsets and
// ResetGroupOffsets add offsets asked of each partition's leader.
#include "brook/admin.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/address.h"
#include "client/connection_pool.h"
#include "client/coordinator_client.h"
#include "client/list_offsets.h"
#include "client/metadata_cache.h"
#include "client/topic_config.h"
#include "common/errors.h"
#include "common/rpc/client.h"
#include "proto/brook.pb.h"

namespace brook::client {
namespace {

using Clock = std::chrono::steady_clock;

TopicInfo ToTopicInfo(const proto::TopicDescription& d) {
  TopicInfo t;
  t.name = d.name();
  t.topic_id = d.topic_id();
  for (const auto& p : d.partitions()) {
    PartitionInfo pi;
    pi.partition = p.partition();
    pi.leader = p.leader();
    pi.leader_epoch = p.leader_epoch();
    pi.replicas.assign(p.replicas().begin(), p.replicas().end());
    pi.isr.assign(p.isr().begin(), p.isr().end());
    t.partitions.push_back(std::move(pi));
  }
  std::sort(t.partitions.begin(), t.partitions.end(),
            [](const auto& a, const auto& b) { return a.partition < b.partition; });
  t.configs = TopicConfigToMap(d.config());
  return t;
}

// Decodes a "consumer" member's assignment and subscription into `m`.
void DecodeConsumerMember(const proto::DescribedGroupMember& dm, GroupMemberInfo* m) {
  if (!dm.assignment().empty() || !dm.metadata().empty()) {
    proto::ConsumerAssignment a;
    if (!a.ParseFromString(dm.assignment())) return;
    proto::ConsumerSubscription sub;
    if (!sub.ParseFromString(dm.metadata())) return;
    for (const auto& tp : a.partitions()) {
      for (int32_t p : tp.partitions()) m->assignment.push_back({tp.topic(), p});
    }
    std::sort(m->assignment.begin(), m->assignment.end());
    m->subscribed_topics.assign(sub.topics().begin(), sub.topics().end());
    std::sort(m->subscribed_topics.begin(), m->subscribed_topics.end());
  }
  m->assignment_known = true;
}

GroupDescription ToGroupDescription(const proto::DescribedGroup& g) {
  GroupDescription d;
  d.group_id = g.group_id();
  d.state = g.state();
  d.protocol_type = g.protocol_type();
  d.protocol_name = g.protocol_name();
  d.generation = g.generation_id();
  d.leader = g.leader();
  for (const auto& dm : g.members()) {
    GroupMemberInfo m;
    m.member_id = dm.member_id();
    m.group_instance_id = dm.group_instance_id();
    m.client_id = dm.client_id();
    m.host = dm.client_host();
    if (g.protocol_type() == "consumer" && g.state() == "Stable") DecodeConsumerMember(dm, &m);
    d.members.push_back(std::move(m));
  }
  std::sort(d.members.begin(), d.members.end(),
            [](const auto& a, const auto& b) { return a.member_id < b.member_id; });
  return d;
}

// A per-group or per-partition error of a group API as a status.
absl::Status GroupError(proto::ErrorCode code, const std::string& message,
                        const std::string& group) {
  switch (code) {
    case proto::GROUP_ID_NOT_FOUND:
      return MakeError(code, absl::StrCat("group '", group, "' does not exist"));
    case proto::NON_EMPTY_GROUP:
      return MakeError(code,
                       absl::StrCat("group '", group, "' is not empty: it still has members"));
    case proto::INVALID_GROUP_ID:
      return MakeError(code, "invalid group id: empty");
    default:
      return MakeError(code, message.empty() ? proto::ErrorCode_Name(code) : message);
  }
}

// Thread-safe: every member is.
class AdminImpl final : public Admin {
 public:
  AdminImpl(AdminConfig config, std::vector<HostPort> nameservers)
      : config_(std::move(config)),
        pool_(io_.io(), ClientOptionsFor(config_)),
        metadata_(&pool_, std::move(nameservers), config_.request_timeout) {}
  ~AdminImpl() override { pool_.CloseAll(); }

  absl::StatusOr<TopicInfo> CreateTopic(const NewTopic& topic) override {
    auto cfg = TopicConfigFromMap(topic.configs);
    if (!cfg.ok()) return cfg.status();
    if (topic.name.empty()) return absl::InvalidArgumentError("topic name is empty");
    if (topic.partitions < 0 || topic.replication_factor < 0) {
      return absl::InvalidArgumentError("partitions and replication factor must be >= 0");
    }
    const auto deadline = Clock::now() + config_.request_timeout;
    proto::CreateTopicRequest req;
    req.set_topic(topic.name);
    req.set_partitions(topic.partitions);
    req.set_replication_factor(topic.replication_factor);
    *req.mutable_config() = *std::move(cfg);
    proto::CreateTopicResponse resp;
    if (auto s = coordinator_.Call(proto::API_CREATE_TOPIC, req, &resp, deadline); !s.ok())
      return s;
    return WaitRouted(ToTopicInfo(resp.topic()), "created", deadline);
  }

  absl::StatusOr<TopicInfo> CreatePartitions(const std::string& topic, int32_t count) override {
    const auto deadline = Clock::now() + config_.request_timeout;
    proto::CreatePartitionsRequest req;
    req.set_topic(topic);
    req.set_count(count);
    proto::CreatePartitionsResponse resp;
    if (auto s = coordinator_.Call(proto::API_CREATE_PARTITIONS, req, &resp, deadline); !s.ok()) {
      return s;
    }
    return WaitRouted(ToTopicInfo(resp.topic()), "grown", deadline);
  }

  // Waits until the name servers route every partition of `info` to a live
  // leader; `what` ("created") names the change in the timeout error.
  absl::StatusOr<TopicInfo> WaitRouted(TopicInfo info, const char* what,
                                       Clock::time_point deadline) {
    const size_t expected = info.partitions.size();
    auto backoff = std::chrono::milliseconds(20);
    absl::Status last;
    while (true) {
      last = metadata_.Refresh({info.name});
      if (last.ok()) last = AllRouted(info.name, expected, &info);
      if (last.ok()) return info;
      if (Clock::now() + backoff >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("topic '", info.name, "' was ", what,
                         " but not every partition has a leader yet: ", last.message()));
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
    }
  }

  absl::Status DeleteTopic(const std::string& name) override {
    proto::DeleteTopicRequest req;
    req.set_topic(name);
    proto::DeleteTopicResponse resp;
    return coordinator_.Call(proto::API_DELETE_TOPIC, req, &resp,
                             Clock::now() + config_.request_timeout);
  }

  absl::StatusOr<std::vector<TopicInfo>> ListTopics() override {
    proto::ListTopicsRequest req;
    proto::ListTopicsResponse resp;
    if (auto s = coordinator_.Call(proto::API_LIST_TOPICS, req, &resp,
                                   Clock::now() + config_.request_timeout);
        !s.ok()) {
      return s;
    }
    std::vector<TopicInfo> out;
    for (const auto& d : resp.topics()) out.push_back(ToTopicInfo(d));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
  }

  absl::StatusOr<TopicInfo> DescribeTopic(const std::string& name) override {
    proto::DescribeTopicRequest req;
    req.set_topic(name);
    proto::DescribeTopicResponse resp;
    if (auto s = coordinator_.Call(proto::API_DESCRIBE_TOPIC, req, &resp,
                                   Clock::now() + config_.request_timeout);
        !s.ok()) {
      return s;
    }
    TopicInfo info = ToTopicInfo(resp.topic());
    // Offsets: best effort; a partition whose leader cannot be asked keeps -1.
    if (metadata_.Refresh({name}).ok()) {
      std::vector<OffsetQuery> queries;
      for (const auto& p : info.partitions) {
        queries.push_back(OffsetQuery{name, p.partition, -2});
        queries.push_back(OffsetQuery{name, p.partition, -1});
      }
      ListOffsets(&pool_, metadata_, &queries, config_.request_timeout);
      for (size_t i = 0; i < info.partitions.size(); ++i) {
        if (queries[2 * i].status.ok()) info.partitions[i].log_start_offset = queries[2 * i].offset;
        if (queries[2 * i + 1].status.ok()) {
          info.partitions[i].high_watermark = queries[2 * i + 1].offset;
        }
      }
    }
    return info;
  }

  absl::StatusOr<std::vector<GroupListing>> ListGroups() override {
    proto::ListGroupsRequest req;
    proto::ListGroupsResponse resp;
    if (auto s = coordinator_.Call(proto::API_LIST_GROUPS, req, &resp, Deadline()); !s.ok()) {
      return s;
    }
    std::vector<GroupListing> out;
    for (const auto& g : resp.groups()) {
      out.push_back(GroupListing{g.group_id(), g.protocol_type(), g.state()});
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.group_id < b.group_id; });
    return out;
  }

  absl::StatusOr<GroupDescription> DescribeGroup(const std::string& group) override {
    if (group.empty()) return GroupError(proto::INVALID_GROUP_ID, "", group);
    proto::DescribeGroupsRequest req;
    req.add_groups(group);
    proto::DescribeGroupsResponse resp;
    if (auto s = coordinator_.Call(proto::API_DESCRIBE_GROUPS, req, &resp, Deadline()); !s.ok()) {
      return s;
    }
    for (const auto& g : resp.groups()) {
      if (g.group_id() != group) continue;
      if (g.error_code() != proto::NONE) {
        return GroupError(g.error_code(), g.error_message(), group);
      }
      return ToGroupDescription(g);
    }
    return MakeError(proto::UNKNOWN,
                     absl::StrCat("the coordinator did not describe group '", group, "'"));
  }

  absl::StatusOr<std::vector<GroupPartitionOffsets>> GroupOffsets(
      const std::string& group) override {
    auto desc = DescribeGroup(group);
    if (!desc.ok()) return desc.status();
    auto committed = FetchCommitted(group);
    if (!committed.ok()) return committed.status();

    std::map<GroupTopicPartition, GroupPartitionOffsets> rows;
    for (const auto& p : committed->partitions()) {
      if (p.error_code() != proto::NONE || p.offset() < 0) continue;
      GroupPartitionOffsets& r = rows[{p.topic(), p.partition()}];
      r.committed_offset = p.offset();
      r.committed_leader_epoch = p.leader_epoch();
      r.metadata = p.metadata();
    }
    for (const auto& m : desc->members) {
      for (const auto& tp : m.assignment) {
        GroupPartitionOffsets& r = rows[tp];
        r.member_id = m.member_id;
        r.client_id = m.client_id;
        r.host = m.host;
      }
    }
    std::vector<GroupPartitionOffsets> out;
    std::set<std::string> topics;
    for (auto& [tp, r] : rows) {
      r.topic = tp.topic;
      r.partition = tp.partition;
      topics.insert(tp.topic);
      out.push_back(std::move(r));
    }
    // Log ends: best effort, like DescribeTopic (a deleted topic keeps -1).
    if (!out.empty() &&
        metadata_.Refresh(std::vector<std::string>(topics.begin(), topics.end())).ok()) {
      std::vector<OffsetQuery> queries;
      for (const auto& r : out) queries.push_back(OffsetQuery{r.topic, r.partition, -1});
      ListOffsets(&pool_, metadata_, &queries, config_.request_timeout);
      for (size_t i = 0; i < out.size(); ++i) {
        if (queries[i].status.ok()) out[i].log_end_offset = queries[i].offset;
      }
    }
    for (auto& r : out) {
      if (r.committed_offset >= 0 && r.log_end_offset >= 0) {
        r.lag = std::max<int64_t>(0, r.log_end_offset - r.committed_offset);
      }
    }
    return out;
  }

  absl::StatusOr<std::map<std::string, absl::Status>> DeleteGroups(
      const std::vector<std::string>& groups) override {
    proto::DeleteGroupsRequest req;
    for (const auto& g : groups) req.add_groups(g);
    proto::DeleteGroupsResponse resp;
    if (auto s = coordinator_.Call(proto::API_DELETE_GROUPS, req, &resp, Deadline()); !s.ok()) {
      return s;
    }
    std::map<std::string, absl::Status> out;
    for (const auto& r : resp.groups()) {
      out[r.group_id()] = r.error_code() == proto::NONE
                              ? absl::OkStatus()
                              : GroupError(r.error_code(), r.error_message(), r.group_id());
    }
    for (const auto& g : groups) {
      if (!out.count(g)) {
        out[g] = MakeError(proto::UNKNOWN,
                           absl::StrCat("the coordinator did not answer for group '", g, "'"));
      }
    }
    return out;
  }

  absl::StatusOr<std::vector<OffsetResetResult>> ResetGroupOffsets(
      const std::string& group, const OffsetResetSelection& selection, const OffsetResetSpec& spec,
      bool dry_run) override {
    if (group.empty()) return GroupError(proto::INVALID_GROUP_ID, "", group);
    if (selection.all_topics == !selection.topics.empty()) {
      return absl::InvalidArgumentError("select either all topics or a list of topics");
    }
    bool known = true;
    if (auto desc = DescribeGroup(group); !desc.ok()) {
      if (ToErrorCode(desc.status()) != proto::GROUP_ID_NOT_FOUND) return desc.status();
      known = false;
    } else if (!desc->members.empty() || desc->state != "Empty") {
      return MakeError(proto::NON_EMPTY_GROUP,
                       absl::StrCat("group '", group, "' has ", desc->members.size(),
                                    " active member(s) (state ", desc->state,
                                    "): offsets can only be reset while the group is empty; "
                                    "stop its consumers first"));
    }
    std::map<GroupTopicPartition, int64_t> committed;  // -1: nothing committed
    if (known) {
      auto fetched = FetchCommitted(group);
      if (!fetched.ok()) return fetched.status();
      for (const auto& p : fetched->partitions()) {
        if (p.error_code() == proto::NONE && p.offset() >= 0) {
          committed[{p.topic(), p.partition()}] = p.offset();
        }
      }
    }

    // The partitions to act on.
    std::set<GroupTopicPartition> targets;
    if (selection.all_topics) {
      if (committed.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("group '", group, "' has no committed offsets: name the topics to reset"));
      }
      for (const auto& [tp, off] : committed) targets.insert(tp);
    } else {
      std::vector<std::string> names;
      for (const auto& [t, ps] : selection.topics) names.push_back(t);
      // An unknown topic is not an error of the refresh; Partitions says so.
      metadata_.Refresh(names).IgnoreError();
      for (const auto& [topic, parts] : selection.topics) {
        auto routes = metadata_.Partitions(topic);
        if (!routes.ok()) {
          if (absl::IsNotFound(routes.status())) {
            return absl::NotFoundError(absl::StrCat("topic '", topic, "' does not exist"));
          }
          return routes.status();
        }
        std::set<int32_t> existing;
        for (const auto& r : *routes) existing.insert(r.partition);
        if (parts.empty()) {
          for (int32_t p : existing) targets.insert({topic, p});
        }
        for (int32_t p : parts) {
          if (!existing.count(p)) {
            return absl::InvalidArgumentError(absl::StrCat("topic '", topic, "' has no partition ",
                                                           p, " (it has ", existing.size(), ")"));
          }
          targets.insert({topic, p});
        }
      }
    }
    if (targets.empty()) return absl::InvalidArgumentError("no partition selected");

    // Log start and end per partition, plus the timestamp look-up.
    {
      std::set<std::string> topics;
      for (const auto& tp : targets) topics.insert(tp.topic);
      if (auto s = metadata_.Refresh(std::vector<std::string>(topics.begin(), topics.end()));
          !s.ok()) {
        return s;
      }
    }
    const bool by_time = spec.kind == OffsetResetSpec::Kind::kTimestamp;
    const size_t per = by_time ? 3 : 2;
    std::vector<OffsetQuery> queries;
    for (const auto& tp : targets) {
      queries.push_back(OffsetQuery{tp.topic, tp.partition, -2});
      queries.push_back(OffsetQuery{tp.topic, tp.partition, -1});
      if (by_time) queries.push_back(OffsetQuery{tp.topic, tp.partition, spec.value});
    }
    ListOffsets(&pool_, metadata_, &queries, config_.request_timeout);

    std::vector<OffsetResetResult> plan;
    size_t i = 0;
    for (const auto& tp : targets) {
      const OffsetQuery* q = &queries[i * per];
      ++i;
      for (size_t k = 0; k < per; ++k) {
        if (!q[k].status.ok()) {
          return absl::Status(q[k].status.code(),
                              absl::StrCat(tp.topic, "-", tp.partition,
                                           ": offsets look-up failed: ", q[k].status.message()));
        }
      }
      OffsetResetResult r;
      r.topic = tp.topic;
      r.partition = tp.partition;
      r.log_start_offset = q[0].offset;
      r.log_end_offset = q[1].offset;
      if (auto it = committed.find(tp); it != committed.end()) r.old_offset = it->second;
      int64_t target = 0;
      switch (spec.kind) {
        case OffsetResetSpec::Kind::kEarliest:
          target = r.log_start_offset;
          break;
        case OffsetResetSpec::Kind::kLatest:
          target = r.log_end_offset;
          break;
        case OffsetResetSpec::Kind::kTimestamp:
          target = q[2].offset;
          break;
        case OffsetResetSpec::Kind::kOffset:
          target = spec.value;
          break;
        case OffsetResetSpec::Kind::kShiftBy:
          if (r.old_offset < 0) {
            return absl::InvalidArgumentError(absl::StrCat("cannot shift ", tp.topic, "-",
                                                           tp.partition, ": group '", group,
                                                           "' has no committed offset for it"));
          }
          target = r.old_offset + spec.value;
          break;
      }
      r.new_offset =
          std::clamp(target, r.log_start_offset, std::max(r.log_start_offset, r.log_end_offset));
      plan.push_back(std::move(r));
    }
    if (dry_run) return plan;

    proto::OffsetCommitRequest req;
    req.set_group_id(group);
    req.set_generation_id(-1);
    for (const auto& r : plan) {
      auto* p = req.add_partitions();
      p->set_topic(r.topic);
      p->set_partition(r.partition);
      p->set_offset(r.new_offset);
      p->set_leader_epoch(-1);
    }
    proto::OffsetCommitResponse resp;
    if (auto s = coordinator_.Call(proto::API_OFFSET_COMMIT, req, &resp, Deadline()); !s.ok()) {
      const auto code = ToErrorCode(s);
      if (code == proto::UNKNOWN_MEMBER_ID || code == proto::ILLEGAL_GENERATION ||
          code == proto::NON_EMPTY_GROUP || code == proto::REBALANCE_IN_PROGRESS) {
        return MakeError(proto::NON_EMPTY_GROUP,
                         absl::StrCat("group '", group, "' is no longer empty (", s.message(),
                                      "): stop its consumers before resetting offsets"));
      }
      return s;
    }
    for (const auto& p : resp.partitions()) {
      if (p.error_code() != proto::NONE) {
        return MakeError(
            p.error_code(),
            absl::StrCat(p.topic(), "-", p.partition(), ": commit failed: ",
                         p.error_message().empty() ? proto::ErrorCode_Name(p.error_code())
                                                   : p.error_message()));
      }
    }
    return plan;
  }

 private:
  Clock::time_point Deadline() const { return Clock::now() + config_.request_timeout; }

  // Every offset `group` has committed (OffsetFetch with no partitions).
  absl::StatusOr<proto::OffsetFetchResponse> FetchCommitted(const std::string& group) {
    proto::OffsetFetchRequest req;
    req.set_group_id(group);
    proto::OffsetFetchResponse resp;
    if (auto s = coordinator_.Call(proto::API_OFFSET_FETCH, req, &resp, Deadline()); !s.ok()) {
      return s;
    }
    return resp;
  }

  static rpc::ClientOptions ClientOptionsFor(const AdminConfig& c) {
    rpc::ClientOptions o;
    o.connect_timeout = std::min(c.request_timeout, std::chrono::milliseconds(5000));
    return o;
  }

  // OK when the routes show `expected` partitions (any, if 0), each with a
  // leader whose address is known; then copies leaders and epochs into `info`.
  absl::Status AllRouted(const std::string& topic, size_t expected, TopicInfo* info) {
    auto parts = metadata_.Partitions(topic);
    if (!parts.ok()) return parts.status();
    if (parts->empty() || (expected != 0 && parts->size() < expected)) {
      return MakeError(proto::LEADER_NOT_AVAILABLE, "not every partition is routed yet");
    }
    for (const auto& p : *parts) {
      if (auto l = metadata_.Leader(topic, p.partition); !l.ok()) return l.status();
    }
    for (auto& pi : info->partitions) {
      for (const auto& p : *parts) {
        if (p.partition != pi.partition) continue;
        pi.leader = p.leader;
        pi.leader_epoch = p.leader_epoch;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<proto::DescribeClusterResponse> DescribeClusterOf(const HostPort& c,
                                                                   Clock::time_point deadline) {
    auto conn = pool_.Get(c);
    if (!conn.ok()) return conn.status();
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    proto::DescribeClusterRequest req;
    proto::DescribeClusterResponse resp;
    auto r = (*conn)->CallSync(
        proto::API_DESCRIBE_CLUSTER, 0, req, {}, &resp,
        std::clamp(remaining, std::chrono::milliseconds(1), CoordinatorClient::kAttemptTimeout));
    if (!r.ok()) {
      if (absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status())) {
        pool_.Invalidate(*conn);
      }
      return r.status();
    }
    return resp;
  }

  static ClusterInfo ToClusterInfo(const proto::DescribeClusterResponse& d) {
    ClusterInfo info;
    info.answered_by = d.answered_by();
    info.leader_id = d.leader_id();
    info.term = d.term();
    info.metadata_offset = d.metadata_offset();
    info.commit_index = d.commit_index();
    for (const auto& c : d.coordinators()) {
      CoordinatorStatus cs;
      cs.id = c.coordinator_id();
      cs.host = c.host();
      cs.port = c.port();
      cs.role = c.role();
      cs.term = c.term();
      cs.match_index = c.match_index();
      cs.last_contact_ms = c.last_contact_ms();
      info.coordinators.push_back(std::move(cs));
    }
    std::sort(info.coordinators.begin(), info.coordinators.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    for (const auto& b : d.brokers()) {
      BrokerStatus bs;
      bs.id = b.broker().broker_id();
      bs.host = b.broker().host();
      bs.port = b.broker().port();
      bs.broker_epoch = b.broker_epoch();
      bs.live = b.live();
      bs.fenced = b.fenced();
      bs.lease_remaining_ms = b.lease_remaining_ms();
      bs.leader_count = b.leader_count();
      bs.replica_count = b.replica_count();
      info.brokers.push_back(std::move(bs));
    }
    std::sort(info.brokers.begin(), info.brokers.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    return info;
  }

 public:
  absl::StatusOr<ClusterInfo> DescribeCluster() override {
    const auto started = Clock::now();
    const auto deadline = started + config_.request_timeout;
    absl::Status last = MakeError(proto::NOT_COORDINATOR, "no coordinator is known");
    std::optional<proto::DescribeClusterResponse> follower_view;
    auto backoff = std::chrono::milliseconds(50);
    while (true) {
      std::vector<HostPort> candidates = coordinator_.Candidates();
      if (candidates.empty()) {
        if (auto s = metadata_.Refresh(); !s.ok()) last = s;
        candidates = coordinator_.Candidates();
      }
      for (const HostPort& c : candidates) {
        auto d = DescribeClusterOf(c, deadline);
        if (!d.ok()) {
          last = absl::Status(d.status().code(), absl::StrCat("coordinator ", c.ToString(), ": ",
                                                              d.status().message()));
          if (!IsRetriable(ToErrorCode(d.status())) && !absl::IsUnavailable(d.status()))
            return last;
          continue;
        }
        if (d->leader_id() >= 0 && d->leader_id() == d->answered_by()) {
          coordinator_.Prefer(c);
          return ToClusterInfo(*d);
        }
        follower_view = *d;
        // Ask the leader it names, if it names one with an address.
        for (const auto& m : d->coordinators()) {
          if (m.coordinator_id() != d->leader_id() || m.port() <= 0) continue;
          HostPort leader{m.host(), static_cast<uint16_t>(m.port())};
          auto l = DescribeClusterOf(leader, deadline);
          if (l.ok() && l->leader_id() == l->answered_by()) {
            coordinator_.Prefer(leader);
            return ToClusterInfo(*l);
          }
        }
      }
      // During an election a follower's view is returned after a short wait
      // for the new leader.
      if (Clock::now() + backoff >= deadline ||
          (follower_view && Clock::now() - started > std::chrono::seconds(3))) {
        if (follower_view) return ToClusterInfo(*follower_view);
        return last;
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      metadata_.Invalidate();
      metadata_.Refresh().IgnoreError();
    }
  }

 private:
  const AdminConfig config_;
  rpc::IoThread io_;  // declared before the pool: outlives it
  ConnectionPool pool_;
  MetadataCache metadata_;
  CoordinatorClient coordinator_{&pool_, &metadata_};
};

}  // namespace

absl::StatusOr<std::unique_ptr<Admin>> Admin::Create(AdminConfig config) {
  auto ns = ParseNameservers(config.nameservers);
  if (!ns.ok()) return ns.status();
  if (config.request_timeout <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError("request_timeout must be positive");
  }
  return std::unique_ptr<Admin>(new AdminImpl(std::move(config), *std::move(ns)));
}

}  // namespace brook::client
