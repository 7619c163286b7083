// The built-in partition assignors (range, roundrobin, sticky,
// cooperative-sticky) and the KIP-429 cooperative round planner declared in
// brook/assignor.h. Pure functions over value types; no shared state.
#include "brook/assignor.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace brook::client {
namespace {

// The members in Kafka's MemberInfo order: static members (by group instance
// id) before dynamic ones (by member id); member id breaks remaining ties.
// Each member's subscribed topics are restricted to topics in the cluster.
struct Group {
  std::vector<const MemberSubscription*> members;
  std::vector<std::set<std::string>> topics;  // parallel to members
  std::set<std::string> all_topics;           // union of topics
};

bool MemberBefore(const MemberSubscription* a, const MemberSubscription* b) {
  if (a->group_instance_id.has_value() != b->group_instance_id.has_value()) {
    return a->group_instance_id.has_value();
  }
  if (a->group_instance_id.has_value() && *a->group_instance_id != *b->group_instance_id) {
    return *a->group_instance_id < *b->group_instance_id;
  }
  return a->member_id < b->member_id;
}

absl::Status ValidateMembers(const std::vector<MemberSubscription>& members) {
  std::set<std::string_view> ids;
  std::set<std::string_view> instance_ids;
  for (const MemberSubscription& m : members) {
    if (m.member_id.empty()) return absl::InvalidArgumentError("empty member id");
    if (!ids.insert(m.member_id).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate member id ", m.member_id));
    }
    if (m.group_instance_id.has_value() && !instance_ids.insert(*m.group_instance_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("group instance id ", *m.group_instance_id, " used by two members"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Group> Prepare(const ClusterView& cluster,
                              const std::vector<MemberSubscription>& members) {
  if (absl::Status s = ValidateMembers(members); !s.ok()) return s;
  for (const auto& [topic, count] : cluster.partition_counts) {
    if (count < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("topic ", topic, " has a negative partition count ", count));
    }
  }
  Group g;
  for (const MemberSubscription& m : members) g.members.push_back(&m);
  std::sort(g.members.begin(), g.members.end(), MemberBefore);
  g.topics.resize(g.members.size());
  for (size_t i = 0; i < g.members.size(); ++i) {
    for (const std::string& t : g.members[i]->topics) {
      if (cluster.partition_counts.contains(t)) {
        g.topics[i].insert(t);
        g.all_topics.insert(t);
      }
    }
  }
  return g;
}

// An assignment indexed like Group::members, turned into the public form.
GroupAssignment Finish(const Group& g, std::vector<std::set<TopicPartition>> per_member) {
  GroupAssignment out;
  for (size_t i = 0; i < g.members.size(); ++i) {
    MemberAssignment& a = out.members[g.members[i]->member_id];
    a.partitions.assign(per_member[i].begin(), per_member[i].end());
  }
  return out;
}

class RangeAssignor final : public PartitionAssignor {
 public:
  std::string_view Name() const override { return "range"; }
  std::vector<RebalanceProtocol> SupportedProtocols() const override {
    return {RebalanceProtocol::kEager};
  }
  absl::StatusOr<GroupAssignment> Assign(
      const ClusterView& cluster, const std::vector<MemberSubscription>& members) const override {
    absl::StatusOr<Group> g = Prepare(cluster, members);
    if (!g.ok()) return g.status();
    std::vector<std::set<TopicPartition>> out(g->members.size());
    for (const std::string& topic : g->all_topics) {
      std::vector<size_t> subscribers;
      for (size_t i = 0; i < g->members.size(); ++i) {
        if (g->topics[i].contains(topic)) subscribers.push_back(i);
      }
      const int32_t count = cluster.partition_counts.at(topic);
      const int32_t k = static_cast<int32_t>(subscribers.size());
      const int32_t per = count / k;
      const int32_t extra = count % k;
      for (int32_t j = 0; j < k; ++j) {
        const int32_t start = per * j + std::min(j, extra);
        const int32_t len = per + (j < extra ? 1 : 0);
        for (int32_t p = start; p < start + len; ++p) out[subscribers[j]].insert({topic, p});
      }
    }
    return Finish(*g, std::move(out));
  }
};

class RoundRobinAssignor final : public PartitionAssignor {
 public:
  std::string_view Name() const override { return "roundrobin"; }
  std::vector<RebalanceProtocol> SupportedProtocols() const override {
    return {RebalanceProtocol::kEager};
  }
  absl::StatusOr<GroupAssignment> Assign(
      const ClusterView& cluster, const std::vector<MemberSubscription>& members) const override {
    absl::StatusOr<Group> g = Prepare(cluster, members);
    if (!g.ok()) return g.status();
    std::vector<std::set<TopicPartition>> out(g->members.size());
    const size_t n = g->members.size();
    size_t next = 0;  // the circular iterator over members
    for (const std::string& topic : g->all_topics) {
      const int32_t count = cluster.partition_counts.at(topic);
      for (int32_t p = 0; p < count; ++p) {
        // Some member subscribes to `topic`, so this finds one within n steps.
        while (!g->topics[next].contains(topic)) next = (next + 1) % n;
        out[next].insert({topic, p});
        next = (next + 1) % n;
      }
    }
    return Finish(*g, std::move(out));
  }
};

// The sticky algorithm shared by "sticky" and "cooperative-sticky".
//
// 1. Resolve ownership: per partition, the valid claim with the newest
//    generation wins; a tie at the newest generation invalidates the claims.
// 2. Every member keeps its winning claims.
// 3. Unowned partitions, those with the fewest eligible members first, go to
//    the eligible member with the fewest partitions.
// 4. While some member X has a partition that a member Y with
//    |Y| <= |X| - 2 may take, move one from the largest such X to the
//    smallest such Y, preferring partitions X did not own before this
//    rebalance (free to move) and partitions Y claimed (stale) before.
//    Each move lowers the sum of squared counts, so this terminates.
absl::StatusOr<GroupAssignment> StickyAssign(const ClusterView& cluster,
                                             const std::vector<MemberSubscription>& members) {
  absl::StatusOr<Group> prepared = Prepare(cluster, members);
  if (!prepared.ok()) return prepared.status();
  const Group& g = *prepared;
  const size_t n = g.members.size();

  struct Claim {
    int32_t generation;
    size_t member;
    bool conflicted;
  };
  std::map<TopicPartition, Claim> winners;
  std::set<std::pair<size_t, TopicPartition>> any_claim;  // (member, partition)
  for (size_t i = 0; i < n; ++i) {
    const MemberSubscription& m = *g.members[i];
    for (const TopicPartition& tp : m.owned_partitions) {
      auto count = cluster.partition_counts.find(tp.topic);
      if (count == cluster.partition_counts.end() || !g.topics[i].contains(tp.topic) ||
          tp.partition < 0 || tp.partition >= count->second) {
        continue;
      }
      if (!any_claim.insert({i, tp}).second) continue;  // listed twice by one member
      auto [it, inserted] = winners.try_emplace(tp, Claim{m.generation, i, false});
      if (inserted) continue;
      if (m.generation > it->second.generation) {
        it->second = Claim{m.generation, i, false};
      } else if (m.generation == it->second.generation) {
        it->second.conflicted = true;
      }
    }
  }

  std::vector<std::set<TopicPartition>> assigned(n);
  std::set<std::pair<size_t, TopicPartition>> kept;  // (member, partition) kept from before
  for (const auto& [tp, claim] : winners) {
    if (claim.conflicted) continue;
    assigned[claim.member].insert(tp);
    kept.insert({claim.member, tp});
  }

  // Step 3: unowned partitions, most constrained first.
  std::map<std::string, std::vector<size_t>> eligible;
  for (const std::string& topic : g.all_topics) {
    for (size_t i = 0; i < n; ++i) {
      if (g.topics[i].contains(topic)) eligible[topic].push_back(i);
    }
  }
  std::vector<std::pair<size_t, TopicPartition>> unowned;  // (eligible count, partition)
  for (const std::string& topic : g.all_topics) {
    for (int32_t p = 0; p < cluster.partition_counts.at(topic); ++p) {
      TopicPartition tp{topic, p};
      auto w = winners.find(tp);
      if (w == winners.end() || w->second.conflicted) {
        unowned.push_back({eligible[topic].size(), std::move(tp)});
      }
    }
  }
  std::sort(unowned.begin(), unowned.end());
  for (auto& [unused, tp] : unowned) {
    size_t best = n;
    for (size_t i : eligible[tp.topic]) {
      if (best == n || assigned[i].size() < assigned[best].size()) best = i;
    }
    assigned[best].insert(std::move(tp));
  }

  // Step 4: rebalance by single moves.
  for (;;) {
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return assigned[a].size() < assigned[b].size(); });
    bool moved = false;
    for (auto over = order.rbegin(); over != order.rend() && !moved; ++over) {
      const size_t x = *over;
      if (assigned[x].size() < 2) break;
      for (size_t y : order) {
        if (assigned[y].size() + 2 > assigned[x].size()) break;
        const TopicPartition* best = nullptr;
        std::tuple<bool, bool> best_key{true, true};
        for (const TopicPartition& tp : assigned[x]) {
          if (!g.topics[y].contains(tp.topic)) continue;
          std::tuple<bool, bool> key{kept.contains({x, tp}), !any_claim.contains({y, tp})};
          if (best == nullptr || key < best_key) {
            best = &tp;
            best_key = key;
          }
        }
        if (best == nullptr) continue;
        TopicPartition tp = *best;
        assigned[x].erase(tp);
        assigned[y].insert(std::move(tp));
        moved = true;
        break;
      }
    }
    if (!moved) break;
  }
  return Finish(g, std::move(assigned));
}

class StickyAssignor final : public PartitionAssignor {
 public:
  std::string_view Name() const override { return "sticky"; }
  std::vector<RebalanceProtocol> SupportedProtocols() const override {
    return {RebalanceProtocol::kEager};
  }
  absl::StatusOr<GroupAssignment> Assign(
      const ClusterView& cluster, const std::vector<MemberSubscription>& members) const override {
    return StickyAssign(cluster, members);
  }
};

class CooperativeStickyAssignor final : public PartitionAssignor {
 public:
  std::string_view Name() const override { return "cooperative-sticky"; }
  std::vector<RebalanceProtocol> SupportedProtocols() const override {
    return {RebalanceProtocol::kCooperative};
  }
  absl::StatusOr<GroupAssignment> Assign(
      const ClusterView& cluster, const std::vector<MemberSubscription>& members) const override {
    absl::StatusOr<GroupAssignment> target = StickyAssign(cluster, members);
    if (!target.ok()) return target.status();
    absl::StatusOr<CooperativeRound> round = PlanCooperativeRound(members, *target);
    if (!round.ok()) return round.status();
    return std::move(round->assignment);
  }
};

}  // namespace

std::string PartitionAssignor::SubscriptionUserData(const std::vector<std::string>&) const {
  return {};
}

std::unique_ptr<PartitionAssignor> MakeRangeAssignor() { return std::make_unique<RangeAssignor>(); }
std::unique_ptr<PartitionAssignor> MakeRoundRobinAssignor() {
  return std::make_unique<RoundRobinAssignor>();
}
std::unique_ptr<PartitionAssignor> MakeStickyAssignor() {
  return std::make_unique<StickyAssignor>();
}
std::unique_ptr<PartitionAssignor> MakeCooperativeStickyAssignor() {
  return std::make_unique<CooperativeStickyAssignor>();
}

absl::StatusOr<std::unique_ptr<PartitionAssignor>> MakeAssignor(std::string_view name) {
  if (name == "range") return MakeRangeAssignor();
  if (name == "roundrobin") return MakeRoundRobinAssignor();
  if (name == "sticky") return MakeStickyAssignor();
  if (name == "cooperative-sticky") return MakeCooperativeStickyAssignor();
  return absl::NotFoundError(absl::StrCat("no assignor named ", std::string(name)));
}

absl::StatusOr<CooperativeRound> PlanCooperativeRound(
    const std::vector<MemberSubscription>& members, const GroupAssignment& target) {
  if (absl::Status s = ValidateMembers(members); !s.ok()) return s;
  std::map<TopicPartition, std::set<std::string>> claims;  // partition -> claiming members
  for (const MemberSubscription& m : members) {
    for (const TopicPartition& tp : m.owned_partitions) claims[tp].insert(m.member_id);
  }
  std::set<TopicPartition> seen;
  for (const auto& [member_id, assignment] : target.members) {
    auto known = std::find_if(members.begin(), members.end(), [&](const MemberSubscription& m) {
      return m.member_id == member_id;
    });
    if (known == members.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("target assigns to ", member_id, ", which is not a member"));
    }
    for (const TopicPartition& tp : assignment.partitions) {
      if (!seen.insert(tp).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("target assigns ", tp.topic, "-", tp.partition, " to two members"));
      }
    }
  }

  CooperativeRound round;
  std::set<TopicPartition> withheld;
  for (const MemberSubscription& m : members) {
    MemberAssignment& out = round.assignment.members[m.member_id];
    auto t = target.members.find(m.member_id);
    std::set<TopicPartition> mine;
    if (t != target.members.end()) {
      out.user_data = t->second.user_data;
      for (const TopicPartition& tp : t->second.partitions) {
        auto c = claims.find(tp);
        if (c != claims.end() && !c->second.contains(m.member_id)) {
          withheld.insert(tp);
        } else {
          mine.insert(tp);
        }
      }
    }
    out.partitions.assign(mine.begin(), mine.end());
    std::set<TopicPartition> revoke;
    for (const TopicPartition& tp : m.owned_partitions) {
      if (!mine.contains(tp)) revoke.insert(tp);
    }
    if (!revoke.empty()) round.revoked[m.member_id].assign(revoke.begin(), revoke.end());
  }
  round.withheld.assign(withheld.begin(), withheld.end());
  return round;
}

}  // namespace brook::client
