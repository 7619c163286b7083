// Controller decisions: placement, elections, in-sync set changes and
// preferred-leader moves computed from a MetadataState (see controller.h).
// Output order is deterministic: fence records first (by broker id), then
// partition changes by topic name and partition id.
#include "coordinator/controller.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"

namespace brook::coordinator {
namespace {

using proto::ErrorCode;

bool Contains(const google::protobuf::RepeatedField<int32_t>& list, int32_t id) {
  return std::find(list.begin(), list.end(), id) != list.end();
}

bool Contains(const std::vector<int32_t>& list, int32_t id) {
  return std::find(list.begin(), list.end(), id) != list.end();
}

// A broker may lead or (re)join an in-sync set when it holds a lease and its
// current registration is not fenced. A broker without a registration in the
// image is judged by `live` alone.
bool Eligible(const MetadataState& state, const std::set<int32_t>& live, int32_t broker) {
  if (live.count(broker) == 0) return false;
  const BrokerRegistration* reg = state.FindBroker(NodeId(broker));
  return reg == nullptr || !reg->fenced;
}

proto::MetadataRecord ChangeRecord(const proto::TopicDescription& topic,
                                   const proto::PartitionDescription& p, int32_t leader,
                                   int32_t leader_epoch, const std::vector<int32_t>& isr) {
  proto::MetadataRecord record;
  proto::PartitionChangeRecord* change = record.mutable_partition_change();
  change->set_topic(topic.name());
  change->set_topic_id(topic.topic_id());
  change->set_partition(p.partition());
  change->set_leader(leader);
  change->set_leader_epoch(leader_epoch);
  for (int32_t b : isr) change->add_isr(b);
  return record;
}

bool SameIsr(const proto::PartitionDescription& p, const std::vector<int32_t>& isr) {
  return std::equal(p.isr().begin(), p.isr().end(), isr.begin(), isr.end());
}

// The first replica, in replica order, that is eligible and in `isr`; -1 when
// none. `excluded` is never chosen (a broker shutting down).
int32_t FirstEligibleInSync(const MetadataState& state, const proto::PartitionDescription& p,
                            const std::vector<int32_t>& isr, const std::set<int32_t>& live,
                            int32_t excluded = -1) {
  for (int32_t r : p.replicas()) {
    if (r != excluded && Contains(isr, r) && Eligible(state, live, r)) return r;
  }
  return -1;
}

int32_t FirstEligible(const MetadataState& state, const proto::PartitionDescription& p,
                      const std::set<int32_t>& live) {
  for (int32_t r : p.replicas()) {
    if (Eligible(state, live, r)) return r;
  }
  return -1;
}

bool Unclean(const proto::TopicDescription& topic) {
  return topic.config().has_unclean_leader_election() &&
         topic.config().unclean_leader_election();
}

void AppendFence(const MetadataState& state, int32_t broker,
                 std::vector<proto::MetadataRecord>* out, bool controlled_shutdown = false) {
  const BrokerRegistration* reg = state.FindBroker(NodeId(broker));
  if (reg == nullptr || reg->fenced) return;
  proto::MetadataRecord& record = out->emplace_back();
  record.mutable_fence_broker()->set_broker_id(broker);
  record.mutable_fence_broker()->set_broker_epoch(reg->epoch);
  record.mutable_fence_broker()->set_controlled_shutdown(controlled_shutdown);
}

}  // namespace

std::vector<std::vector<int32_t>> PlaceReplicas(const std::vector<int32_t>& live,
                                                int32_t partitions, int32_t rf,
                                                uint64_t rotation) {
  std::vector<std::vector<int32_t>> out;
  // Outside the preconditions there is no valid placement: nothing is placed.
  if (live.empty() || partitions < 1 || rf < 1 || static_cast<size_t>(rf) > live.size()) {
    return out;
  }
  const uint64_t n = live.size();
  const uint64_t start = rotation % n;
  out.reserve(static_cast<size_t>(partitions));
  for (int32_t p = 0; p < partitions; ++p) {
    std::vector<int32_t>& replicas = out.emplace_back();
    replicas.reserve(static_cast<size_t>(rf));
    for (int32_t r = 0; r < rf; ++r) {
      replicas.push_back(live[(start + static_cast<uint64_t>(p) + static_cast<uint64_t>(r)) % n]);
    }
  }
  return out;
}

std::vector<proto::MetadataRecord> OnBrokersLost(const MetadataState& state,
                                                 const std::set<int32_t>& lost,
                                                 const std::set<int32_t>& live) {
  std::vector<proto::MetadataRecord> out;
  for (int32_t b : lost) AppendFence(state, b, &out);
  // Candidates exclude the lost brokers even if a caller passed overlapping sets.
  std::set<int32_t> usable;
  for (int32_t b : live) {
    if (lost.count(b) == 0) usable.insert(b);
  }
  for (const auto& [name, topic] : state.topics()) {
    for (const proto::PartitionDescription& p : topic.partitions()) {
      const bool leader_lost = p.leader() >= 0 && lost.count(p.leader()) > 0;
      std::vector<int32_t> isr;
      for (int32_t b : p.isr()) {
        if (lost.count(b) == 0) isr.push_back(b);
      }
      if (isr.empty() && p.isr_size() > 0) {
        // Never below one member: keep the leader if it was in sync, else the
        // first member, so a later election knows who has the data.
        isr.push_back(Contains(p.isr(), p.leader()) ? p.leader() : p.isr(0));
      }
      int32_t leader = p.leader();
      int32_t epoch = p.leader_epoch();
      if (leader_lost) {
        leader = FirstEligibleInSync(state, p, isr, usable);
        if (leader < 0 && Unclean(topic)) {
          leader = FirstEligible(state, p, usable);
          if (leader >= 0) isr = {leader};
        }
        epoch += 1;
      }
      if (leader == p.leader() && SameIsr(p, isr)) continue;
      out.push_back(ChangeRecord(topic, p, leader, epoch, isr));
    }
  }
  return out;
}

std::vector<proto::MetadataRecord> ControlledShutdown(const MetadataState& state, int32_t broker,
                                                      const std::set<int32_t>& live,
                                                      int32_t* remaining_leaders) {
  std::vector<proto::MetadataRecord> changes;
  int32_t remaining = 0;
  for (const auto& [name, topic] : state.topics()) {
    for (const proto::PartitionDescription& p : topic.partitions()) {
      std::vector<int32_t> isr;
      for (int32_t b : p.isr()) {
        if (b != broker) isr.push_back(b);
      }
      if (p.leader() == broker) {
        const int32_t leader = FirstEligibleInSync(state, p, isr, live, broker);
        if (leader < 0) {
          ++remaining;  // no other live in-sync replica: it keeps leading
          continue;
        }
        changes.push_back(ChangeRecord(topic, p, leader, p.leader_epoch() + 1, isr));
        continue;
      }
      if (!Contains(p.isr(), broker) || isr.empty()) continue;
      changes.push_back(ChangeRecord(topic, p, p.leader(), p.leader_epoch(), isr));
    }
  }
  std::vector<proto::MetadataRecord> out;
  if (remaining == 0) AppendFence(state, broker, &out, /*controlled_shutdown=*/true);
  for (proto::MetadataRecord& r : changes) out.push_back(std::move(r));
  if (remaining_leaders != nullptr) *remaining_leaders = remaining;
  return out;
}

std::vector<proto::MetadataRecord> ElectLeaderless(const MetadataState& state,
                                                   const std::set<int32_t>& live) {
  std::vector<proto::MetadataRecord> out;
  for (const auto& [name, topic] : state.topics()) {
    for (const proto::PartitionDescription& p : topic.partitions()) {
      if (p.leader() >= 0) continue;
      const std::vector<int32_t> old_isr(p.isr().begin(), p.isr().end());
      int32_t leader = FirstEligibleInSync(state, p, old_isr, live);
      std::vector<int32_t> isr;
      if (leader >= 0) {
        // Members that are still down are dropped; the leader is kept.
        for (int32_t b : old_isr) {
          if (Eligible(state, live, b)) isr.push_back(b);
        }
      } else if (Unclean(topic)) {
        leader = FirstEligible(state, p, live);
        isr = {leader};
      }
      if (leader < 0) continue;
      out.push_back(ChangeRecord(topic, p, leader, p.leader_epoch() + 1, isr));
    }
  }
  return out;
}

absl::StatusOr<proto::MetadataRecord> AlterIsr(const MetadataState& state, int32_t broker,
                                               const proto::AlterIsrPartition& request,
                                               const std::set<int32_t>& live) {
  const std::string where = absl::StrCat(request.topic(), "-", request.partition());
  const proto::TopicDescription* topic = state.FindTopic(request.topic());
  const proto::PartitionDescription* p = nullptr;
  if (topic != nullptr) {
    for (const proto::PartitionDescription& d : topic->partitions()) {
      if (d.partition() == request.partition()) p = &d;
    }
  }
  if (p == nullptr) {
    return MakeError(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                     absl::StrCat("unknown partition ", where));
  }
  if (request.leader_epoch() < p->leader_epoch()) {
    return MakeError(ErrorCode::FENCED_LEADER_EPOCH,
                     absl::StrCat(where, ": leader epoch ", request.leader_epoch(),
                                  " is older than the current ", p->leader_epoch()));
  }
  if (request.leader_epoch() > p->leader_epoch()) {
    return MakeError(ErrorCode::UNKNOWN_LEADER_EPOCH,
                     absl::StrCat(where, ": leader epoch ", request.leader_epoch(),
                                  " is newer than the current ", p->leader_epoch()));
  }
  if (p->leader() != broker) {
    return MakeError(ErrorCode::NOT_LEADER,
                     absl::StrCat(where, ": broker ", broker, " is not the leader (leader is ",
                                  p->leader(), ")"));
  }
  const std::vector<int32_t> new_isr(request.new_isr().begin(), request.new_isr().end());
  if (new_isr.empty()) {
    return MakeError(ErrorCode::INVALID_REQUEST, absl::StrCat(where, ": empty in-sync set"));
  }
  std::set<int32_t> seen;
  for (int32_t b : new_isr) {
    if (!seen.insert(b).second) {
      return MakeError(ErrorCode::INVALID_REQUEST,
                       absl::StrCat(where, ": broker ", b, " listed twice in the in-sync set"));
    }
    if (!Contains(p->replicas(), b)) {
      return MakeError(ErrorCode::INVALID_REQUEST,
                       absl::StrCat(where, ": broker ", b, " is not a replica (replicas ",
                                    absl::StrJoin(p->replicas(), ","), ")"));
    }
  }
  if (seen.count(broker) == 0) {
    return MakeError(ErrorCode::INVALID_REQUEST,
                     absl::StrCat(where, ": the in-sync set must contain the leader ", broker));
  }
  for (int32_t b : new_isr) {
    if (!Contains(p->isr(), b) && !Eligible(state, live, b)) {
      return MakeError(ErrorCode::INVALID_REQUEST,
                       absl::StrCat(where, ": broker ", b,
                                    " cannot join the in-sync set: it is not live or is fenced"));
    }
  }
  return ChangeRecord(*topic, *p, p->leader(), p->leader_epoch(), new_isr);
}

std::vector<proto::MetadataRecord> PreferredLeaderMoves(const MetadataState& state,
                                                        const std::set<int32_t>& live) {
  std::vector<proto::MetadataRecord> out;
  for (const auto& [name, topic] : state.topics()) {
    for (const proto::PartitionDescription& p : topic.partitions()) {
      if (p.replicas_size() == 0) continue;
      const int32_t preferred = p.replicas(0);
      if (preferred == p.leader() || !Contains(p.isr(), preferred) ||
          !Eligible(state, live, preferred)) {
        continue;
      }
      const std::vector<int32_t> isr(p.isr().begin(), p.isr().end());
      out.push_back(ChangeRecord(topic, p, preferred, p.leader_epoch() + 1, isr));
    }
  }
  return out;
}

}  // namespace brook::coordinator
