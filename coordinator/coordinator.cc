// Coordinator: topic administration, placement and broker heartbeats over the
// metadata log and its state machine.
#include "coordinator/coordinator.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/steady_timer.hpp"
#include "common/check.h"
#include "common/errors.h"
#include "common/http/metrics.h"
#include "coordinator/metadata_log.h"
#include "coordinator/metadata_state.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "proto/metadata.pb.h"
#include "spdlog/spdlog.h"

namespace brook::coordinator {
namespace {

using Clock = std::chrono::steady_clock;
using proto::ErrorCode;

constexpr int32_t kMaxPartitions = 10000;
constexpr size_t kMaxTopicNameLength = 249;

absl::Status ValidateTopicConfig(const proto::TopicConfig& c, int32_t replication_factor) {
  auto invalid = [](const std::string& what) { return MakeError(ErrorCode::INVALID_CONFIG, what); };
  if (!proto::FlushPolicy_IsValid(c.flush_policy())) {
    return invalid(absl::StrCat("unknown flush_policy ", c.flush_policy()));
  }
  if (c.has_flush_interval_ms() && c.flush_interval_ms() <= 0) {
    return invalid("flush_interval_ms must be > 0");
  }
  if (c.has_segment_bytes() && c.segment_bytes() <= 0) return invalid("segment_bytes must be > 0");
  if (c.has_segment_ms() && c.segment_ms() <= 0) return invalid("segment_ms must be > 0");
  if (c.has_retention_ms() && c.retention_ms() < -1) return invalid("retention_ms must be >= -1");
  if (c.has_retention_bytes() && c.retention_bytes() < -1) {
    return invalid("retention_bytes must be >= -1");
  }
  if (c.has_max_message_bytes() && c.max_message_bytes() <= 0) {
    return invalid("max_message_bytes must be > 0");
  }
  if (c.has_index_interval_bytes() && c.index_interval_bytes() <= 0) {
    return invalid("index_interval_bytes must be > 0");
  }
  if (c.has_min_insync_replicas() &&
      (c.min_insync_replicas() < 1 || c.min_insync_replicas() > replication_factor)) {
    return invalid(absl::StrCat("min_insync_replicas must be in 1..", replication_factor));
  }
  return absl::OkStatus();
}

google::protobuf::Value NumberValue(double v) {
  google::protobuf::Value out;
  out.set_number_value(v);
  return out;
}
google::protobuf::Value StringValue(const std::string& v) {
  google::protobuf::Value out;
  out.set_string_value(v);
  return out;
}
google::protobuf::Value BoolValue(bool v) {
  google::protobuf::Value out;
  out.set_bool_value(v);
  return out;
}

http::HttpResponse JsonResponse(const google::protobuf::Message& msg) {
  http::HttpResponse resp;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  auto s = google::protobuf::util::MessageToJsonString(msg, &resp.body, options);
  if (!s.ok()) {
    resp.status = 500;
    resp.content_type = "text/plain";
    resp.body = "cannot render JSON";
  }
  return resp;
}

}  // namespace

bool IsValidTopicName(const std::string& name) {
  if (name.empty() || name.size() > kMaxTopicNameLength || name == "." || name == "..") {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

struct Coordinator::Impl : std::enable_shared_from_this<Impl> {
  // A heartbeat held until metadata passes `known_offset` or its timer fires.
  struct Parked {
    rpc::Request request;
    int32_t broker_id = 0;
    int64_t known_offset = 0;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  // A response to send once the mutex is released.
  struct Wakeup {
    rpc::Request request;
    proto::BrokerHeartbeatResponse response;
  };

  Impl(std::unique_ptr<MetadataLog> l, CoordinatorOptions o, boost::asio::io_context& i)
      : options(std::move(o)), io(i), log(std::move(l)), rng(std::random_device{}()) {
    auto& registry = metrics::Registry::Global();
    topics_gauge = registry.GetGauge("brook_coordinator_topics", {}, "Topics in the metadata image");
    brokers_gauge = registry.GetGauge("brook_coordinator_brokers", {},
                                      "Brokers registered in the metadata image");
    appends_counter = registry.GetCounter("brook_coordinator_metadata_appends_total", {},
                                          "Records appended to the metadata log");
  }

  const CoordinatorOptions options;
  boost::asio::io_context& io;
  const std::unique_ptr<MetadataLog> log;
  metrics::Gauge* topics_gauge;
  metrics::Gauge* brokers_gauge;
  metrics::Counter* appends_counter;

  mutable absl::Mutex mu;
  MetadataState state ABSL_GUARDED_BY(mu);
  std::map<int32_t, Clock::time_point> lease_deadlines ABSL_GUARDED_BY(mu);
  std::map<uint64_t, Parked> parked ABSL_GUARDED_BY(mu);
  uint64_t next_park_id ABSL_GUARDED_BY(mu) = 1;
  bool closed ABSL_GUARDED_BY(mu) = false;
  uint64_t placement_rotation ABSL_GUARDED_BY(mu) = 0;
  std::mt19937_64 rng ABSL_GUARDED_BY(mu);
  std::string advertised_host ABSL_GUARDED_BY(mu);
  uint16_t advertised_port ABSL_GUARDED_BY(mu) = 0;

  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    topics_gauge->Set(static_cast<double>(state.topics().size()));
    brokers_gauge->Set(static_cast<double>(state.brokers().size()));
  }

  // Appends `record` durably and applies it. On failure nothing is applied.
  absl::StatusOr<Offset> AppendAndApply(const proto::MetadataRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto offset = log->Append(record);
    if (!offset.ok()) {
      spdlog::error("coordinator: metadata log append failed: {}", offset.status().ToString());
      return offset.status();
    }
    appends_counter->Inc();
    // Records are built valid here; a record the state machine refuses after
    // it is durable would make every later replay fail.
    absl::Status applied = state.Apply(*offset, record);
    if (!applied.ok()) {
      spdlog::critical("coordinator: cannot apply own record at {}: {}", offset->value(),
                       applied.ToString());
    }
    BROOK_CHECK(applied.ok());
    UpdateGauges();
    return offset;
  }

  bool IsLive(int32_t broker_id, Clock::time_point now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = lease_deadlines.find(broker_id);
    return it != lease_deadlines.end() && it->second > now && state.FindBroker(NodeId(broker_id));
  }

  std::vector<int32_t> LiveBrokers(Clock::time_point now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<int32_t> out;
    for (const auto& [id, reg] : state.brokers()) {
      if (IsLive(id, now)) out.push_back(id);
    }
    return out;  // sorted: brokers() is ordered by id
  }

  proto::BrokerHeartbeatResponse BuildHeartbeatResponse(int32_t broker_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    proto::BrokerHeartbeatResponse resp;
    if (const BrokerRegistration* reg = state.FindBroker(NodeId(broker_id))) {
      resp.set_broker_epoch(reg->epoch);
    }
    resp.set_lease_ms(options.broker_lease_ms);
    resp.set_metadata_offset(state.last_offset().value());
    for (proto::PartitionAssignment& a : state.AssignmentsFor(NodeId(broker_id))) {
      *resp.add_assignments() = std::move(a);
    }
    if (advertised_port != 0) {
      proto::CoordinatorInfo* c = resp.add_coordinators();
      c->set_coordinator_id(options.id.value());
      c->set_host(advertised_host);
      c->set_port(advertised_port);
      c->set_leader(true);
    }
    return resp;
  }

  // Removes and returns the parked heartbeats that the current metadata offset
  // has passed, with their responses.
  std::vector<Wakeup> TakeWakeups() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<Wakeup> out;
    const int64_t current = state.last_offset().value();
    for (auto it = parked.begin(); it != parked.end();) {
      if (it->second.known_offset < current) {
        it->second.timer->cancel();
        out.push_back({std::move(it->second.request), BuildHeartbeatResponse(it->second.broker_id)});
        it = parked.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

  static void Send(std::vector<Wakeup> wakeups) {
    for (Wakeup& w : wakeups) w.request.Respond(w.response);
  }

  // ---- handlers -------------------------------------------------------------

  void HandleCreateTopic(const rpc::Request& req) {
    proto::CreateTopicRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable CreateTopicRequest");
      return;
    }
    auto created = CreateTopic(in);
    if (!created.first.ok()) {
      req.RespondError(ToErrorCode(created.first), std::string(created.first.message()));
      return;
    }
    Send(std::move(created.second.wakeups));
    proto::CreateTopicResponse out;
    *out.mutable_topic() = std::move(created.second.topic);
    req.Respond(out);
  }

  struct Created {
    proto::TopicDescription topic;
    std::vector<Wakeup> wakeups;
  };

  std::pair<absl::Status, Created> CreateTopic(const proto::CreateTopicRequest& in) {
    Created created;
    auto fail = [&](ErrorCode code, const std::string& message) {
      return std::make_pair(MakeError(code, message), Created{});
    };
    if (!IsValidTopicName(in.topic())) {
      return fail(ErrorCode::INVALID_TOPIC,
                  absl::StrCat("invalid topic name '", in.topic(),
                               "': 1..249 characters of [a-zA-Z0-9._-], not '.' or '..'"));
    }
    const int32_t partitions = in.partitions() == 0 ? options.default_partitions : in.partitions();
    if (partitions < 1 || partitions > kMaxPartitions) {
      return fail(ErrorCode::INVALID_PARTITIONS,
                  absl::StrCat("partitions must be in 1..", kMaxPartitions, ", got ", partitions));
    }
    const int32_t rf = in.replication_factor() == 0 ? options.default_replication_factor
                                                    : in.replication_factor();
    if (rf < 1) {
      return fail(ErrorCode::INVALID_CONFIG,
                  absl::StrCat("replication_factor must be >= 1, got ", rf));
    }
    proto::TopicConfig config = options.default_topic_config;
    config.MergeFrom(in.config());
    if (absl::Status s = ValidateTopicConfig(config, rf); !s.ok()) return {s, Created{}};

    absl::MutexLock lock(&mu);
    if (closed) return fail(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
    if (state.FindTopic(in.topic()) != nullptr) {
      return fail(ErrorCode::TOPIC_ALREADY_EXISTS,
                  absl::StrCat("topic '", in.topic(), "' already exists"));
    }
    const std::vector<int32_t> live = LiveBrokers(Clock::now());
    if (live.empty()) {
      return fail(ErrorCode::BROKER_NOT_AVAILABLE, "no live brokers");
    }
    if (static_cast<size_t>(rf) > live.size()) {
      return fail(ErrorCode::INVALID_CONFIG,
                  absl::StrCat("replication_factor ", rf, " exceeds the ", live.size(),
                               " live broker(s)"));
    }

    proto::MetadataRecord record;
    proto::TopicDescription* topic = record.mutable_topic()->mutable_topic();
    topic->set_name(in.topic());
    topic->set_topic_id(absl::StrFormat("%016x%016x", rng(), rng()));
    *topic->mutable_config() = config;
    const size_t n = live.size();
    const size_t start = placement_rotation++ % n;
    for (int32_t p = 0; p < partitions; ++p) {
      proto::PartitionDescription* part = topic->add_partitions();
      part->set_partition(p);
      for (int32_t r = 0; r < rf; ++r) {
        const int32_t broker = live[(start + static_cast<size_t>(p) + static_cast<size_t>(r)) % n];
        part->add_replicas(broker);
        part->add_isr(broker);
      }
      part->set_leader(part->replicas(0));
      part->set_leader_epoch(0);
    }
    created.topic = *topic;
    auto offset = AppendAndApply(record);
    if (!offset.ok()) return {offset.status(), Created{}};
    spdlog::info("coordinator: created topic {} ({} partitions, rf {}) at offset {}", in.topic(),
                 partitions, rf, offset->value());
    created.wakeups = TakeWakeups();
    return {absl::OkStatus(), std::move(created)};
  }

  void HandleDeleteTopic(const rpc::Request& req) {
    proto::DeleteTopicRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable DeleteTopicRequest");
      return;
    }
    std::vector<Wakeup> wakeups;
    {
      absl::MutexLock lock(&mu);
      if (closed) {
        req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
        return;
      }
      const proto::TopicDescription* topic = state.FindTopic(in.topic());
      if (topic == nullptr) {
        req.RespondError(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                         absl::StrCat("unknown topic '", in.topic(), "'"));
        return;
      }
      proto::MetadataRecord record;
      record.mutable_remove_topic()->set_name(topic->name());
      record.mutable_remove_topic()->set_topic_id(topic->topic_id());
      auto offset = AppendAndApply(record);
      if (!offset.ok()) {
        req.RespondError(ToErrorCode(offset.status()), std::string(offset.status().message()));
        return;
      }
      spdlog::info("coordinator: deleted topic {} at offset {}", in.topic(), offset->value());
      wakeups = TakeWakeups();
    }
    Send(std::move(wakeups));
    req.Respond(proto::DeleteTopicResponse());
  }

  void HandleListTopics(const rpc::Request& req) {
    proto::ListTopicsRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable ListTopicsRequest");
      return;
    }
    req.Respond(ListTopics());
  }

  proto::ListTopicsResponse ListTopics() const {
    proto::ListTopicsResponse out;
    absl::MutexLock lock(&mu);
    for (const auto& [name, topic] : state.topics()) *out.add_topics() = topic;
    return out;
  }

  void HandleDescribeTopic(const rpc::Request& req) {
    proto::DescribeTopicRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable DescribeTopicRequest");
      return;
    }
    proto::DescribeTopicResponse out;
    {
      absl::MutexLock lock(&mu);
      const proto::TopicDescription* topic = state.FindTopic(in.topic());
      if (topic == nullptr) {
        out.set_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        out.set_error_message(absl::StrCat("unknown topic '", in.topic(), "'"));
      } else {
        *out.mutable_topic() = *topic;
      }
    }
    req.Respond(out);
  }

  void HandleHeartbeat(const rpc::Request& req) {
    proto::BrokerHeartbeatRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable BrokerHeartbeatRequest");
      return;
    }
    const proto::BrokerInfo& info = in.broker();
    if (info.broker_id() < 0 || info.host().empty() || info.port() <= 0 || info.port() > 65535) {
      req.RespondError(ErrorCode::INVALID_REQUEST,
                       "heartbeat needs broker_id >= 0, a host and a port in 1..65535");
      return;
    }
    std::vector<Wakeup> wakeups;
    proto::BrokerHeartbeatResponse out;
    bool parked_now = false;
    {
      absl::MutexLock lock(&mu);
      if (closed) {
        req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
        return;
      }
      const BrokerRegistration* reg = state.FindBroker(NodeId(info.broker_id()));
      const bool must_register = reg == nullptr || in.broker_epoch() != reg->epoch ||
                                 reg->info.host() != info.host() ||
                                 reg->info.port() != info.port();
      if (must_register) {
        proto::MetadataRecord record;
        *record.mutable_broker()->mutable_broker() = info;
        auto offset = AppendAndApply(record);
        if (!offset.ok()) {
          req.RespondError(ToErrorCode(offset.status()), std::string(offset.status().message()));
          return;
        }
        spdlog::info("coordinator: broker {} registered at {}:{} (epoch {})", info.broker_id(),
                     info.host(), info.port(), offset->value() + 1);
        wakeups = TakeWakeups();
      }
      const auto now = Clock::now();
      lease_deadlines[info.broker_id()] = now + std::chrono::milliseconds(options.broker_lease_ms);

      const int64_t current = state.last_offset().value();
      if (!must_register && in.max_wait_ms() > 0 && in.known_metadata_offset() >= current) {
        // A parked broker must come back before its lease lapses.
        const int64_t wait_ms =
            std::max<int64_t>(1, std::min<int64_t>(in.max_wait_ms(), options.broker_lease_ms / 2));
        Park(req, info.broker_id(), in.known_metadata_offset(), wait_ms);
        parked_now = true;
      } else {
        out = BuildHeartbeatResponse(info.broker_id());
      }
    }
    Send(std::move(wakeups));
    if (!parked_now) req.Respond(out);
  }

  void Park(const rpc::Request& req, int32_t broker_id, int64_t known_offset, int64_t max_wait_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const uint64_t id = next_park_id++;
    auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::milliseconds(max_wait_ms));
    timer->async_wait([weak = weak_from_this(), id](const boost::system::error_code& ec) {
      if (ec == boost::asio::error::operation_aborted) return;
      if (auto self = weak.lock()) self->OnParkExpired(id);
    });
    parked.emplace(id, Parked{req, broker_id, known_offset, std::move(timer)});
  }

  void OnParkExpired(uint64_t id) {
    std::vector<Wakeup> wakeups;
    {
      absl::MutexLock lock(&mu);
      auto it = parked.find(id);
      if (it == parked.end()) return;  // already answered
      wakeups.push_back({std::move(it->second.request), BuildHeartbeatResponse(it->second.broker_id)});
      parked.erase(it);
    }
    Send(std::move(wakeups));
  }

  absl::Status Close() {
    std::vector<rpc::Request> to_fail;
    {
      absl::MutexLock lock(&mu);
      if (closed) return absl::OkStatus();
      closed = true;
      for (auto& [id, p] : parked) {
        p.timer->cancel();
        to_fail.push_back(std::move(p.request));
      }
      parked.clear();
    }
    for (const rpc::Request& r : to_fail) {
      r.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is shutting down");
    }
    return log->Close();
  }

  // ---- admin ----------------------------------------------------------------

  http::HttpResponse AdminBrokers() const {
    google::protobuf::Value root;
    auto* list = root.mutable_struct_value()->mutable_fields();
    google::protobuf::ListValue brokers;
    {
      absl::MutexLock lock(&mu);
      const auto now = Clock::now();
      (*list)["metadata_offset"] = NumberValue(static_cast<double>(state.last_offset().value()));
      for (const auto& [id, reg] : state.brokers()) {
        google::protobuf::Value b;
        auto* f = b.mutable_struct_value()->mutable_fields();
        (*f)["broker_id"] = NumberValue(id);
        (*f)["host"] = StringValue(reg.info.host());
        (*f)["port"] = NumberValue(reg.info.port());
        (*f)["broker_epoch"] = NumberValue(static_cast<double>(reg.epoch));
        const bool live = IsLive(id, now);
        (*f)["live"] = BoolValue(live);
        if (live) {
          (*f)["lease_remaining_ms"] = NumberValue(static_cast<double>(
              std::chrono::duration_cast<std::chrono::milliseconds>(lease_deadlines.at(id) - now)
                  .count()));
        }
        *brokers.add_values() = std::move(b);
      }
    }
    *(*list)["brokers"].mutable_list_value() = std::move(brokers);
    return JsonResponse(root);
  }
};

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Open(storage::FileSystem* fs,
                                                               storage::Flusher* flusher,
                                                               CoordinatorOptions options,
                                                               boost::asio::io_context& io) {
  const std::string dir = options.data_dir + "/metadata";
  if (absl::Status s = fs->CreateDirs(dir); !s.ok()) return s;
  auto log = LocalMetadataLog::Open(fs, dir, flusher);
  if (!log.ok()) return log.status();
  return OpenWithLog(std::move(*log), std::move(options), io);
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::OpenWithLog(
    std::unique_ptr<MetadataLog> log, CoordinatorOptions options, boost::asio::io_context& io) {
  if (options.default_partitions < 1 || options.default_partitions > kMaxPartitions) {
    return absl::InvalidArgumentError("default_partitions out of range");
  }
  if (options.default_replication_factor < 1 || options.broker_lease_ms <= 0) {
    return absl::InvalidArgumentError(
        "default_replication_factor and broker_lease_ms must be positive");
  }
  auto impl = std::make_shared<Impl>(std::move(log), std::move(options), io);
  {
    absl::MutexLock lock(&impl->mu);
    absl::Status s = impl->log->Replay([&](Offset offset, const proto::MetadataRecord& record)
                                           ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                             return impl->state.Apply(offset, record);
                                           });
    if (!s.ok()) {
      (void)impl->log->Close();
      return s;
    }
    impl->UpdateGauges();
    spdlog::info("coordinator: replayed metadata log to offset {} ({} topics, {} brokers)",
                 impl->state.last_offset().value(), impl->state.topics().size(),
                 impl->state.brokers().size());
  }
  return std::unique_ptr<Coordinator>(new Coordinator(std::move(impl)));
}

Coordinator::Coordinator(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Coordinator::~Coordinator() {
  if (absl::Status s = impl_->Close(); !s.ok()) {
    spdlog::error("coordinator: close failed: {}", s.ToString());
  }
}

void Coordinator::SetAdvertisedAddress(std::string host, uint16_t port) {
  absl::MutexLock lock(&impl_->mu);
  impl_->advertised_host = std::move(host);
  impl_->advertised_port = port;
}

void Coordinator::RegisterApis(rpc::RpcServer& server) {
  std::weak_ptr<Impl> weak = impl_;
  auto bind = [weak](void (Impl::*handler)(const rpc::Request&)) {
    return [weak, handler](rpc::Request req) {
      if (auto self = weak.lock()) {
        (self.get()->*handler)(req);
      } else {
        req.RespondError(ErrorCode::SHUTTING_DOWN, "coordinator is gone");
      }
    };
  };
  server.Register(proto::API_CREATE_TOPIC, 0, bind(&Impl::HandleCreateTopic));
  server.Register(proto::API_DELETE_TOPIC, 0, bind(&Impl::HandleDeleteTopic));
  server.Register(proto::API_LIST_TOPICS, 0, bind(&Impl::HandleListTopics));
  server.Register(proto::API_DESCRIBE_TOPIC, 0, bind(&Impl::HandleDescribeTopic));
  server.Register(proto::API_BROKER_HEARTBEAT, 0, bind(&Impl::HandleHeartbeat));
}

void Coordinator::RegisterAdmin(http::AdminServer& admin) {
  std::weak_ptr<Impl> weak = impl_;
  auto gone = [] {
    http::HttpResponse r;
    r.status = 503;
    r.content_type = "text/plain";
    r.body = "coordinator is gone";
    return r;
  };
  admin.Handle("/admin/topics", [weak, gone](const http::HttpRequest&) {
    auto self = weak.lock();
    return self ? JsonResponse(self->ListTopics()) : gone();
  });
  admin.Handle("/admin/brokers", [weak, gone](const http::HttpRequest&) {
    auto self = weak.lock();
    return self ? self->AdminBrokers() : gone();
  });
}

absl::Status Coordinator::Close() { return impl_->Close(); }

Offset Coordinator::metadata_offset() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->state.last_offset();
}

}  // namespace brook::coordinator
