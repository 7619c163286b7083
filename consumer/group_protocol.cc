// The consumer protocol's pure logic (see group_protocol.h).
#include "consumer/group_protocol.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace brook::client::group {
namespace {

void SortUnique(std::vector<TopicPartition>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

// Adds `parts` grouped by topic (sorted) to a repeated ConsumerTopicPartitions.
template <typename Repeated>
void AddGrouped(std::vector<TopicPartition> parts, Repeated* out) {
  SortUnique(&parts);
  proto::ConsumerTopicPartitions* cur = nullptr;
  for (const auto& tp : parts) {
    if (cur == nullptr || cur->topic() != tp.topic) {
      cur = out->Add();
      cur->set_topic(tp.topic);
    }
    cur->add_partitions(tp.partition);
  }
}

template <typename Repeated>
std::vector<TopicPartition> Flatten(const Repeated& in) {
  std::vector<TopicPartition> out;
  for (const auto& t : in) {
    for (int32_t p : t.partitions()) out.push_back(TopicPartition{t.topic(), p});
  }
  SortUnique(&out);
  return out;
}

}  // namespace

std::string EncodeSubscription(const std::vector<std::string>& topics,
                               const std::vector<TopicPartition>& owned, int32_t generation,
                               const std::string& user_data) {
  proto::ConsumerSubscription s;
  std::vector<std::string> sorted = topics;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (auto& t : sorted) s.add_topics(std::move(t));
  AddGrouped(owned, s.mutable_owned_partitions());
  s.set_generation(owned.empty() ? kNoGeneration : generation);
  s.set_user_data(user_data);
  return s.SerializeAsString();
}

absl::StatusOr<MemberSubscription> DecodeSubscription(const proto::JoinGroupMember& member) {
  proto::ConsumerSubscription s;
  if (!s.ParseFromString(member.metadata())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unparsable subscription of member ", member.member_id()));
  }
  MemberSubscription m;
  m.member_id = member.member_id();
  if (member.has_group_instance_id()) m.group_instance_id = member.group_instance_id();
  m.topics.assign(s.topics().begin(), s.topics().end());
  m.owned_partitions = Flatten(s.owned_partitions());
  m.generation = m.owned_partitions.empty() ? kNoGeneration : s.generation();
  m.user_data = s.user_data();
  return m;
}

std::string EncodeAssignment(const MemberAssignment& assignment) {
  proto::ConsumerAssignment a;
  AddGrouped(assignment.partitions, a.mutable_partitions());
  a.set_user_data(assignment.user_data);
  return a.SerializeAsString();
}

absl::StatusOr<MemberAssignment> DecodeAssignment(std::string_view bytes) {
  proto::ConsumerAssignment a;
  if (!a.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("unparsable consumer assignment");
  }
  MemberAssignment m;
  m.partitions = Flatten(a.partitions());
  m.user_data = a.user_data();
  return m;
}

absl::StatusOr<ProtocolChoice> ChooseProtocol(const std::vector<std::string>& assignors) {
  if (assignors.empty()) return absl::InvalidArgumentError("no assignor configured");
  std::set<std::string> seen;
  bool all_cooperative = true;
  std::vector<std::string> eager;
  for (const auto& name : assignors) {
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("assignor ", name, " listed twice"));
    }
    auto a = MakeAssignor(name);
    if (!a.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown assignor \"", name, "\""));
    }
    const auto protocols = (*a)->SupportedProtocols();
    const bool coop = std::find(protocols.begin(), protocols.end(),
                                RebalanceProtocol::kCooperative) != protocols.end();
    const bool eag =
        std::find(protocols.begin(), protocols.end(), RebalanceProtocol::kEager) != protocols.end();
    all_cooperative = all_cooperative && coop;
    if (eag) eager.push_back(name);
  }
  ProtocolChoice c;
  if (all_cooperative) {
    c.protocol = RebalanceProtocol::kCooperative;
    c.advertised = assignors;
  } else {
    c.protocol = RebalanceProtocol::kEager;
    c.advertised = std::move(eager);
  }
  return c;
}

absl::StatusOr<std::map<std::string, std::string>> LeaderAssign(
    const PartitionAssignor& assignor, const std::vector<proto::JoinGroupMember>& members,
    const ClusterView& cluster) {
  std::vector<MemberSubscription> subs;
  subs.reserve(members.size());
  for (const auto& m : members) {
    auto s = DecodeSubscription(m);
    if (!s.ok()) return s.status();
    subs.push_back(*std::move(s));
  }
  auto assignment = assignor.Assign(cluster, subs);
  if (!assignment.ok()) return assignment.status();
  std::map<std::string, std::string> out;
  for (const auto& m : subs) {
    auto it = assignment->members.find(m.member_id);
    out[m.member_id] = EncodeAssignment(it == assignment->members.end() ? MemberAssignment{}
                                                                         : it->second);
  }
  return out;
}

std::vector<std::string> SubscribedTopics(const std::vector<proto::JoinGroupMember>& members) {
  std::set<std::string> topics;
  for (const auto& m : members) {
    proto::ConsumerSubscription s;
    if (!s.ParseFromString(m.metadata())) continue;
    topics.insert(s.topics().begin(), s.topics().end());
  }
  return {topics.begin(), topics.end()};
}

AssignmentChange DiffAssignment(const std::vector<TopicPartition>& owned,
                                const std::vector<TopicPartition>& assigned,
                                RebalanceProtocol protocol) {
  std::vector<TopicPartition> o = owned;
  std::vector<TopicPartition> a = assigned;
  SortUnique(&o);
  SortUnique(&a);
  AssignmentChange c;
  std::set_difference(o.begin(), o.end(), a.begin(), a.end(), std::back_inserter(c.revoked));
  std::set_difference(a.begin(), a.end(), o.begin(), o.end(), std::back_inserter(c.added));
  std::set_intersection(o.begin(), o.end(), a.begin(), a.end(), std::back_inserter(c.kept));
  c.rejoin = protocol == RebalanceProtocol::kCooperative && !c.revoked.empty();
  return c;
}

ErrorAction ClassifyGroupError(proto::ErrorCode code) {
  switch (code) {
    case proto::NONE: return ErrorAction::kNone;
    case proto::REBALANCE_IN_PROGRESS: return ErrorAction::kRejoin;
    case proto::ILLEGAL_GENERATION: return ErrorAction::kLostRejoin;
    case proto::UNKNOWN_MEMBER_ID:
    case proto::FENCED_INSTANCE_ID: return ErrorAction::kLostReset;
    case proto::NOT_COORDINATOR:
    case proto::REQUEST_TIMED_OUT:
    case proto::SHUTTING_DOWN:
    case proto::BROKER_NOT_AVAILABLE:
    case proto::LEADER_NOT_AVAILABLE:
    case proto::NOT_ENOUGH_REPLICAS:
    case proto::UNKNOWN: return ErrorAction::kRetry;
    default: return ErrorAction::kFatal;
  }
}

std::vector<std::string> MatchTopics(const std::regex& pattern, const std::vector<std::string>& all) {
  std::vector<std::string> out;
  for (const auto& t : all) {
    if (std::regex_match(t, pattern)) out.push_back(t);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace brook::client::group
