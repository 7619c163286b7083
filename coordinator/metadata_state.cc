// MetadataState: applying metadata records to the in-memory image.
#include "coordinator/metadata_state.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace brook::coordinator {

absl::Status MetadataState::Apply(Offset offset, const proto::MetadataRecord& record) {
  if (offset <= last_offset_) {
    return absl::FailedPreconditionError(absl::StrCat("metadata record at offset ",
                                                      offset.value(), " after offset ",
                                                      last_offset_.value()));
  }
  switch (record.record_case()) {
    case proto::MetadataRecord::kTopic: {
      const proto::TopicDescription& topic = record.topic().topic();
      if (topic.name().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("topic record without a name at offset ", offset.value()));
      }
      topics_[topic.name()] = topic;
      break;
    }
    case proto::MetadataRecord::kRemoveTopic: {
      const proto::RemoveTopicRecord& remove = record.remove_topic();
      auto it = topics_.find(remove.name());
      if (it != topics_.end() &&
          (remove.topic_id().empty() || remove.topic_id() == it->second.topic_id())) {
        topics_.erase(it);
      }
      break;
    }
    case proto::MetadataRecord::kAddPartitions: {
      const proto::AddPartitionsRecord& add = record.add_partitions();
      auto it = topics_.find(add.topic());
      if (it == topics_.end() || add.topic_id() != it->second.topic_id()) break;
      if (add.partitions_size() == 0 ||
          add.partitions(0).partition() != it->second.partitions_size()) {
        break;
      }
      for (const proto::PartitionDescription& p : add.partitions()) {
        *it->second.add_partitions() = p;
      }
      break;
    }
    case proto::MetadataRecord::kBroker: {
      const proto::BrokerRecord& broker = record.broker();
      BrokerRegistration reg;
      reg.info = broker.broker();
      reg.epoch = broker.broker_epoch() > 0 ? broker.broker_epoch() : offset.value() + 1;
      reg.fenced = false;
      brokers_[reg.info.broker_id()] = std::move(reg);
      break;
    }
    case proto::MetadataRecord::kPartitionChange: {
      const proto::PartitionChangeRecord& change = record.partition_change();
      auto it = topics_.find(change.topic());
      if (it == topics_.end() || change.topic_id() != it->second.topic_id()) break;
      for (proto::PartitionDescription& p : *it->second.mutable_partitions()) {
        if (p.partition() != change.partition()) continue;
        p.set_leader(change.leader());
        p.set_leader_epoch(change.leader_epoch());
        *p.mutable_isr() = change.isr();
        break;
      }
      break;
    }
    case proto::MetadataRecord::kFenceBroker: {
      const proto::FenceBrokerRecord& fence = record.fence_broker();
      auto it = brokers_.find(fence.broker_id());
      if (it != brokers_.end() && it->second.epoch == fence.broker_epoch()) {
        it->second.fenced = true;
        it->second.shut_down = fence.controlled_shutdown();
      }
      break;
    }
    case proto::MetadataRecord::kGroup:
    case proto::MetadataRecord::kOffsetCommit:
    case proto::MetadataRecord::kRemoveGroup:
      // Consumer group records belong to the group coordinator's image
      // (coordinator/group_service.h); they only advance the offset here.
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown or empty metadata record at offset ", offset.value()));
  }
  last_offset_ = offset;
  return absl::OkStatus();
}

proto::MetadataSnapshot MetadataState::ToSnapshot() const {
  proto::MetadataSnapshot snapshot;
  snapshot.set_last_offset(last_offset_.value());
  for (const auto& [name, topic] : topics_) *snapshot.add_topics() = topic;
  for (const auto& [id, reg] : brokers_) {
    proto::MetadataSnapshot::Broker* b = snapshot.add_brokers();
    *b->mutable_info() = reg.info;
    b->set_epoch(reg.epoch);
    b->set_fenced(reg.fenced);
    b->set_shut_down(reg.shut_down);
  }
  return snapshot;
}

absl::Status MetadataState::Restore(const proto::MetadataSnapshot& snapshot) {
  if (snapshot.last_offset() < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata snapshot with last_offset ", snapshot.last_offset()));
  }
  std::map<std::string, proto::TopicDescription> topics;
  for (const proto::TopicDescription& topic : snapshot.topics()) {
    if (topic.name().empty()) {
      return absl::InvalidArgumentError("metadata snapshot holds a topic without a name");
    }
    std::set<int32_t> partitions;
    for (const proto::PartitionDescription& p : topic.partitions()) {
      if (!partitions.insert(p.partition()).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "metadata snapshot: topic '", topic.name(), "' lists partition ", p.partition(),
            " twice"));
      }
    }
    if (!topics.emplace(topic.name(), topic).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata snapshot lists topic '", topic.name(), "' twice"));
    }
  }
  std::map<int32_t, BrokerRegistration> brokers;
  for (const proto::MetadataSnapshot::Broker& b : snapshot.brokers()) {
    BrokerRegistration reg;
    reg.info = b.info();
    reg.epoch = b.epoch();
    reg.fenced = b.fenced();
    reg.shut_down = b.fenced() && b.shut_down();
    if (reg.epoch <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metadata snapshot: broker ", reg.info.broker_id(), " has epoch ", reg.epoch));
    }
    if (!brokers.emplace(reg.info.broker_id(), std::move(reg)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata snapshot lists broker ", b.info().broker_id(), " twice"));
    }
  }
  last_offset_ = Offset(snapshot.last_offset());
  topics_ = std::move(topics);
  brokers_ = std::move(brokers);
  return absl::OkStatus();
}

const proto::TopicDescription* MetadataState::FindTopic(const std::string& name) const {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : &it->second;
}

const BrokerRegistration* MetadataState::FindBroker(NodeId id) const {
  auto it = brokers_.find(id.value());
  return it == brokers_.end() ? nullptr : &it->second;
}

std::vector<proto::PartitionAssignment> MetadataState::AssignmentsFor(NodeId broker) const {
  std::vector<proto::PartitionAssignment> out;
  for (const auto& [name, topic] : topics_) {
    for (const proto::PartitionDescription& p : topic.partitions()) {
      if (std::find(p.replicas().begin(), p.replicas().end(), broker.value()) ==
          p.replicas().end()) {
        continue;
      }
      proto::PartitionAssignment& a = out.emplace_back();
      a.set_topic(name);
      a.set_topic_id(topic.topic_id());
      a.set_partition(p.partition());
      a.set_leader(p.leader());
      a.set_leader_epoch(p.leader_epoch());
      *a.mutable_replicas() = p.replicas();
      *a.mutable_isr() = p.isr();
      *a.mutable_config() = topic.config();
    }
  }
  return out;
}

}  // namespace brook::coordinator
