// Admin: topic administration through the active coordinator, found via the
// name servers; DescribeTopic adds offsets asked of each partition's leader.
#include "brook/admin.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/address.h"
#include "client/connection_pool.h"
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
    if (auto s = CallCoordinator(proto::API_CREATE_TOPIC, req, &resp, deadline); !s.ok()) return s;
    TopicInfo info = ToTopicInfo(resp.topic());
    const size_t expected = info.partitions.size();

    // Wait until the name servers route every partition to a live leader.
    auto backoff = std::chrono::milliseconds(20);
    absl::Status last;
    while (true) {
      last = metadata_.Refresh({topic.name});
      if (last.ok()) last = AllRouted(topic.name, expected, &info);
      if (last.ok()) return info;
      if (Clock::now() + backoff >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "topic '", topic.name, "' was created but not every partition has a leader yet: ",
            last.message()));
      }
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
    }
  }

  absl::Status DeleteTopic(const std::string& name) override {
    proto::DeleteTopicRequest req;
    req.set_topic(name);
    proto::DeleteTopicResponse resp;
    return CallCoordinator(proto::API_DELETE_TOPIC, req, &resp,
                           Clock::now() + config_.request_timeout);
  }

  absl::StatusOr<std::vector<TopicInfo>> ListTopics() override {
    proto::ListTopicsRequest req;
    proto::ListTopicsResponse resp;
    if (auto s = CallCoordinator(proto::API_LIST_TOPICS, req, &resp,
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
    if (auto s = CallCoordinator(proto::API_DESCRIBE_TOPIC, req, &resp,
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

 private:
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

  // Sends `req` to the active coordinator, retrying retriable errors (with
  // a metadata refresh and back-off) until `deadline`.
  absl::Status CallCoordinator(proto::Api api, const google::protobuf::Message& req,
                               google::protobuf::Message* resp, Clock::time_point deadline) {
    auto backoff = std::chrono::milliseconds(50);
    absl::Status last;
    while (true) {
      auto coord = metadata_.ActiveCoordinator();
      if (!coord.ok()) {
        last = metadata_.Refresh();
        if (last.ok()) coord = metadata_.ActiveCoordinator();
      }
      if (coord.ok()) {
        last = absl::OkStatus();
        auto conn = pool_.Get(*coord);
        if (conn.ok()) {
          const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
              deadline - Clock::now());
          auto r = (*conn)->CallSync(api, 0, req, {}, resp,
                                     std::max(remaining, std::chrono::milliseconds(1)));
          if (r.ok()) return absl::OkStatus();
          last = r.status();
          if (absl::IsUnavailable(last)) pool_.Invalidate(*conn);
        } else {
          last = conn.status();
        }
      } else if (last.ok()) {
        last = coord.status();
      }
      if (!IsRetriable(ToErrorCode(last))) return last;
      if (Clock::now() + backoff >= deadline) return last;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      metadata_.Invalidate();
      if (auto s = metadata_.Refresh(); !s.ok()) last = s;
    }
  }

  const AdminConfig config_;
  rpc::IoThread io_;  // declared before the pool: outlives it
  ConnectionPool pool_;
  MetadataCache metadata_;
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
