// NameServer: the route registry (RocketMQ-style). Brokers register their
// hosted partitions periodically; clients ask for topic routes. Soft state
// only: everything is rebuilt from registrations, and a broker that stops
// registering is forgotten after broker_expiry_ms.
//
// Thread-safety: every method is thread-safe (one mutex; handlers run on the
// RpcServer's io threads).
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/http/admin_server.h"
#include "common/rpc/server.h"
#include "proto/brook.pb.h"

namespace brook::nameserver {

struct NameServerOptions {
  int64_t broker_expiry_ms = 30000;
  // The time source for expiry; null means std::chrono::steady_clock::now.
  // Tests inject a fake clock. Must be thread-safe.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

class NameServer {
 public:
  explicit NameServer(NameServerOptions options);
  NameServer(const NameServer&) = delete;
  NameServer& operator=(const NameServer&) = delete;

  // API_REGISTER_BROKER, API_METADATA. The server must be stopped before the
  // NameServer is destroyed (handlers refer to it).
  void RegisterApis(rpc::RpcServer& server);
  // GET /admin/routes: the MetadataResponse for all topics, as JSON.
  void RegisterAdmin(http::AdminServer& admin);

  // The logic behind the APIs, callable directly.
  proto::RegisterBrokerResponse RegisterBroker(const proto::RegisterBrokerRequest& request);
  proto::MetadataResponse Metadata(const proto::MetadataRequest& request);

 private:
  struct Registration {
    proto::RegisterBrokerRequest request;  // as last received
    std::chrono::steady_clock::time_point received;
  };

  std::chrono::steady_clock::time_point Now() const;
  // Drops registrations older than broker_expiry_ms.
  void ExpireLocked(std::chrono::steady_clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const NameServerOptions options_;
  absl::Mutex mu_;
  std::map<int32_t, Registration> brokers_ ABSL_GUARDED_BY(mu_);  // by broker id
};

}  // namespace brook::nameserver
