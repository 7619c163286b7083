// Broker: the broker role. Hosts the partitions the coordinator assigns to it
// (learned from a long-polled BrokerHeartbeat), registers their routes with
// every name server, and serves Produce, Fetch, ListOffsets and Metadata.
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "broker/storage/fs.h"
#include "common/http/admin_server.h"
#include "common/rpc/server.h"
#include "common/types.h"
#include "proto/brook.pb.h"

namespace brook::broker {

struct BrokerOptions {
  std::string data_dir;  // <data-dir>/broker
  NodeId id{1};
  std::string advertised_host;
  uint16_t port = 0;
  std::vector<std::string> coordinators;  // HOST:PORT
  std::vector<std::string> nameservers;   // HOST:PORT
  proto::TopicConfig default_topic_config;  // server defaults for unset topic config fields
  int64_t coordinator_heartbeat_ms = 2000;  // long-poll wait of the heartbeat
  int64_t nameserver_heartbeat_ms = 1000;
  int64_t retention_check_ms = 60000;
  // Fetches parked for long-poll beyond this are answered at once.
  size_t max_parked_fetches = 10000;
};

// Thread-safety: every public method is thread-safe. Request handlers run on
// the io_context's threads; the coordinator heartbeat and the name-server
// registration each run on a thread of their own (started by Start).
class Broker {
 public:
  // `fs` and `io` must outlive the broker. Does not start any loop.
  static absl::StatusOr<std::unique_ptr<Broker>> Open(storage::FileSystem* fs,
                                                      BrokerOptions options,
                                                      boost::asio::io_context& io);
  ~Broker();  // calls Stop
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA.
  void RegisterApis(rpc::RpcServer& server);
  // GET /admin/partitions: the hosted partitions as JSON.
  void RegisterAdmin(http::AdminServer& admin);

  // Sets the address registered with the coordinator and name servers (e.g.
  // once the listener is bound to port 0). Call before Start.
  void SetAdvertisedAddress(std::string host, uint16_t port);

  // Starts the heartbeat loop to the coordinator (long-poll, reconnecting),
  // the registration loop to every name server and the retention timer.
  void Start();
  // True once a heartbeat to the coordinator has succeeded.
  bool registered() const;

  // Stops the loops, answers parked fetches, closes every log (fsync).
  // Idempotent; returns the first close error.
  absl::Status Stop();

  struct State;

 private:
  explicit Broker(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace brook::broker
