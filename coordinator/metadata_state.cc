// MetadataState: applying metadata records to the in-memory image.
#include "coordinator/metadata_state.h"

#include <algorithm>

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
    case proto::MetadataRecord::kBroker: {
      const proto::BrokerRecord& broker = record.broker();
      BrokerRegistration reg;
      reg.info = broker.broker();
      reg.epoch = broker.broker_epoch() > 0 ? broker.broker_epoch() : offset.value() + 1;
      brokers_[reg.info.broker_id()] = std::move(reg);
      break;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown or empty metadata record at offset ", offset.value()));
  }
  last_offset_ = offset;
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
