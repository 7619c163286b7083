// NameServer: merging broker route reports into topic routes.
#include "nameserver/nameserver.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "spdlog/spdlog.h"

namespace brook::nameserver {
namespace {

using Clock = std::chrono::steady_clock;
using proto::ErrorCode;

// The best report of one partition seen so far, with its rank.
struct PartitionReport {
  std::tuple<int32_t, int64_t> rank;  // (leader_epoch, metadata_offset)
  proto::PartitionRoute route;
};

}  // namespace

NameServer::NameServer(NameServerOptions options) : options_(std::move(options)) {}

Clock::time_point NameServer::Now() const {
  return options_.clock ? options_.clock() : Clock::now();
}

void NameServer::ExpireLocked(Clock::time_point now) {
  const auto expiry = std::chrono::milliseconds(options_.broker_expiry_ms);
  for (auto it = brokers_.begin(); it != brokers_.end();) {
    if (now - it->second.received >= expiry) {
      spdlog::info("nameserver: broker {} expired", it->first);
      it = brokers_.erase(it);
    } else {
      ++it;
    }
  }
}

proto::RegisterBrokerResponse NameServer::RegisterBroker(
    const proto::RegisterBrokerRequest& request) {
  proto::RegisterBrokerResponse out;
  const proto::BrokerInfo& b = request.broker();
  if (b.broker_id() < 0 || b.host().empty() || b.port() <= 0 || b.port() > 65535) {
    out.set_error_code(ErrorCode::INVALID_REQUEST);
    out.set_error_message("registration needs broker_id >= 0, a host and a port in 1..65535");
    return out;
  }
  const auto now = Now();
  absl::MutexLock lock(&mu_);
  ExpireLocked(now);
  auto [it, inserted] = brokers_.insert_or_assign(b.broker_id(), Registration{request, now});
  if (inserted) {
    spdlog::info("nameserver: broker {} registered at {}:{}", b.broker_id(), b.host(), b.port());
  }
  out.set_expiry_ms(options_.broker_expiry_ms);
  return out;
}

proto::MetadataResponse NameServer::Metadata(const proto::MetadataRequest& request) {
  proto::MetadataResponse out;
  std::map<std::string, std::map<int32_t, PartitionReport>> topics;
  const auto now = Now();
  absl::MutexLock lock(&mu_);
  ExpireLocked(now);

  // Coordinators: for each id, the report of the most recent registration.
  std::map<int32_t, std::pair<Clock::time_point, proto::CoordinatorInfo>> coordinators;
  for (const auto& [id, reg] : brokers_) {
    *out.add_brokers() = reg.request.broker();
    for (const proto::CoordinatorInfo& c : reg.request.coordinators()) {
      auto cit = coordinators.find(c.coordinator_id());
      if (cit == coordinators.end() || cit->second.first < reg.received) {
        coordinators[c.coordinator_id()] = {reg.received, c};
      }
    }
    for (const proto::TopicRoute& route : reg.request.routes()) {
      if (route.error_code() != ErrorCode::NONE || route.topic().empty()) continue;
      auto& partitions = topics[route.topic()];
      for (const proto::PartitionRoute& p : route.partitions()) {
        const auto rank = std::make_tuple(p.leader_epoch(), reg.request.metadata_offset());
        auto pit = partitions.find(p.partition());
        if (pit == partitions.end() || pit->second.rank < rank) {
          partitions[p.partition()] = PartitionReport{rank, p};
        }
      }
    }
  }
  for (auto& [id, c] : coordinators) *out.add_coordinators() = std::move(c.second);

  auto add_topic = [&](const std::string& name) {
    proto::TopicRoute* route = out.add_topics();
    route->set_topic(name);
    auto it = topics.find(name);
    if (it == topics.end()) {
      route->set_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
      return;
    }
    for (auto& [pid, report] : it->second) *route->add_partitions() = std::move(report.route);
  };
  if (request.topics().empty()) {
    for (const auto& [name, partitions] : topics) add_topic(name);
  } else {
    for (const std::string& name : request.topics()) add_topic(name);
  }
  return out;
}

void NameServer::RegisterApis(rpc::RpcServer& server) {
  server.Register(proto::API_REGISTER_BROKER, 0, [this](rpc::Request req) {
    proto::RegisterBrokerRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable RegisterBrokerRequest");
      return;
    }
    req.Respond(RegisterBroker(in));
  });
  server.Register(proto::API_METADATA, 0, [this](rpc::Request req) {
    proto::MetadataRequest in;
    if (!req.ParseHeader(&in)) {
      req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable MetadataRequest");
      return;
    }
    req.Respond(Metadata(in));
  });
}

void NameServer::RegisterAdmin(http::AdminServer& admin) {
  admin.Handle("/admin/routes", [this](const http::HttpRequest&) {
    http::HttpResponse resp;
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(Metadata(proto::MetadataRequest()),
                                                     &resp.body, options)
             .ok()) {
      resp.status = 500;
      resp.content_type = "text/plain";
      resp.body = "cannot render JSON";
    }
    return resp;
  });
}

}  // namespace brook::nameserver
