// Admin: topic administration through the active coordinator, found via the
// name servers; DescribeTopic adds offsets asked of each partition's leader.
#include "brook/admin.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

  // The coordinators to try, best first: the one that answered last, a
  // leader named in a NOT_COORDINATOR answer, the name servers' leader, then
  // every other quorum member they report.
  std::vector<HostPort> Candidates() {
    std::vector<HostPort> out;
    auto add = [&out](const HostPort& hp) {
      if (hp.port == 0) return;
      for (const auto& o : out) {
        if (o == hp) return;
      }
      out.push_back(hp);
    };
    {
      absl::MutexLock lock(&mu_);
      if (hinted_) add(*hinted_);
      if (preferred_) add(*preferred_);
    }
    for (const auto& c : metadata_.Coordinators()) add(c.address);
    return out;
  }

  // "... leader is coordinator 2 at 127.0.0.1:9093" -> 127.0.0.1:9093.
  static std::optional<HostPort> LeaderFromMessage(std::string_view message) {
    const size_t at = message.rfind(" at ");
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view rest = message.substr(at + 4);
    const size_t end = rest.find_first_of(" ;,)\n");
    if (end != std::string_view::npos) rest = rest.substr(0, end);
    auto hp = ParseHostPort(rest);
    if (!hp.ok()) return std::nullopt;
    return *hp;
  }

  // Sends `req` to the active coordinator. Each round tries every candidate
  // (see Candidates) until one answers; NOT_COORDINATOR and connection
  // failures move on to the next. Retriable errors are retried (with a
  // metadata refresh and back-off) until `deadline`.
  absl::Status CallCoordinator(proto::Api api, const google::protobuf::Message& req,
                               google::protobuf::Message* resp, Clock::time_point deadline) {
    auto backoff = std::chrono::milliseconds(50);
    absl::Status last = MakeError(proto::NOT_COORDINATOR, "no coordinator is known");
    while (true) {
      std::vector<HostPort> candidates = Candidates();
      if (candidates.empty()) {
        if (auto s = metadata_.Refresh(); !s.ok()) last = s;
        candidates = Candidates();
      }
      bool stop_round = false;
      for (size_t i = 0; i < candidates.size() && !stop_round; ++i) {
        const HostPort& c = candidates[i];
        auto conn = pool_.Get(c);
        if (!conn.ok()) {
          last = absl::Status(conn.status().code(), absl::StrCat("coordinator ", c.ToString(), ": ",
                                                                 conn.status().message()));
          continue;
        }
        const auto remaining =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        // A stopped or partitioned member must not eat the whole deadline.
        const auto wait = std::clamp(remaining, std::chrono::milliseconds(1), kAttemptTimeout);
        resp->Clear();
        auto r = (*conn)->CallSync(api, 0, req, {}, resp, wait);
        if (r.ok()) {
          absl::MutexLock lock(&mu_);
          preferred_ = c;
          hinted_.reset();
          return absl::OkStatus();
        }
        last = r.status();
        const auto code = ToErrorCode(last);
        if (code == proto::NOT_COORDINATOR) {
          const absl::string_view msg = last.message();
          if (auto leader = LeaderFromMessage(std::string_view(msg.data(), msg.size()));
              leader && !(*leader == c)) {
            {
              absl::MutexLock lock(&mu_);
              hinted_ = *leader;
            }
            // Try the named leader next, ahead of the remaining candidates.
            candidates.insert(candidates.begin() + static_cast<long>(i) + 1, *leader);
          }
          continue;
        }
        if (absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last)) {
          pool_.Invalidate(*conn);
          {
            absl::MutexLock lock(&mu_);
            if (preferred_ && *preferred_ == c) preferred_.reset();
            if (hinted_ && *hinted_ == c) hinted_.reset();
          }
          continue;
        }
        stop_round = true;  // an answer from the coordinator: no other member would differ
      }
      if (!IsRetriable(ToErrorCode(last))) return last;
      if (Clock::now() + backoff >= deadline) return last;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
      metadata_.Invalidate();
      if (auto s = metadata_.Refresh(); !s.ok() && ToErrorCode(last) == proto::NOT_COORDINATOR) {
        last = s;
      }
    }
  }

  absl::StatusOr<proto::DescribeClusterResponse> DescribeClusterOf(const HostPort& c,
                                                                   Clock::time_point deadline) {
    auto conn = pool_.Get(c);
    if (!conn.ok()) return conn.status();
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    proto::DescribeClusterRequest req;
    proto::DescribeClusterResponse resp;
    auto r = (*conn)->CallSync(proto::API_DESCRIBE_CLUSTER, 0, req, {}, &resp,
                               std::clamp(remaining, std::chrono::milliseconds(1), kAttemptTimeout));
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
      std::vector<HostPort> candidates = Candidates();
      if (candidates.empty()) {
        if (auto s = metadata_.Refresh(); !s.ok()) last = s;
        candidates = Candidates();
      }
      for (const HostPort& c : candidates) {
        auto d = DescribeClusterOf(c, deadline);
        if (!d.ok()) {
          last = absl::Status(d.status().code(),
                              absl::StrCat("coordinator ", c.ToString(), ": ", d.status().message()));
          if (!IsRetriable(ToErrorCode(d.status())) && !absl::IsUnavailable(d.status())) return last;
          continue;
        }
        if (d->leader_id() >= 0 && d->leader_id() == d->answered_by()) {
          absl::MutexLock lock(&mu_);
          preferred_ = c;
          return ToClusterInfo(*d);
        }
        follower_view = *d;
        // Ask the leader it names, if it names one with an address.
        for (const auto& m : d->coordinators()) {
          if (m.coordinator_id() != d->leader_id() || m.port() <= 0) continue;
          HostPort leader{m.host(), static_cast<uint16_t>(m.port())};
          auto l = DescribeClusterOf(leader, deadline);
          if (l.ok() && l->leader_id() == l->answered_by()) {
            absl::MutexLock lock(&mu_);
            preferred_ = leader;
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
  // Longest wait for one coordinator's answer before trying another member.
  static constexpr std::chrono::milliseconds kAttemptTimeout{5000};

  absl::Mutex mu_;
  std::optional<HostPort> preferred_ ABSL_GUARDED_BY(mu_);  // answered last
  std::optional<HostPort> hinted_ ABSL_GUARDED_BY(mu_);     // named by NOT_COORDINATOR

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
