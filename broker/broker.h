// Broker: the broker role. Hosts the partitions the coordinator assigns to it
// (learned from a long-polled BrokerHeartbeat), registers their routes with
// every name server, and serves Produce, Fetch, ListOffsets, Metadata and
// the queue subscriptions of the partitions it leads (broker/queue).
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
  // How often the log cleaner thread compacts the partitions of compacted
  // topics (cleanup.policy=compact; storage::LogCleaner).
  int64_t log_cleaner_interval_ms = 15000;
  // Fetches parked for long-poll beyond this are answered at once.
  size_t max_parked_fetches = 10000;
  // Replication: a follower whose fetches have not reached the leader's log
  // end for this long is dropped from the in-sync set (AlterIsr).
  int64_t replica_lag_time_max_ms = 10000;
  // Long-poll wait of follower fetches.
  int64_t replica_fetch_wait_ms = 500;
  // Stop() first asks the coordinator to move leadership away (controlled
  // shutdown) for at most this long.
  int64_t controlled_shutdown_timeout_ms = 10000;
};

// Replication (broker/replication): a partition with several replicas is led
// by the broker its assignment names; the leader tracks its followers'
// fetch positions, computes the high watermark over the committed in-sync
// set, answers acks=all once the watermark passes a batch, and asks the
// coordinator (AlterIsr) to shrink or expand the in-sync set. Followers fetch
// from their leaders (one fetcher thread per leader broker), truncating by
// leader epoch first. Produce is refused (NOT_LEADER) while the coordinator
// lease has lapsed.
//
// Thread-safety: every public method is thread-safe. Request handlers run on
// the io_context's threads; the coordinator heartbeat, the name-server
// registration, the in-sync set check and each replica fetcher run on a
// thread of their own (started by Start and by heartbeats).
class Broker {
 public:
  // `fs` and `io` must outlive the broker. Does not start any loop.
  static absl::StatusOr<std::unique_ptr<Broker>> Open(storage::FileSystem* fs,
                                                      BrokerOptions options,
                                                      boost::asio::io_context& io);
  ~Broker();  // calls Stop
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA,
  // API_OFFSET_FOR_LEADER_EPOCH, and the queue APIs API_QUEUE_RECEIVE /
  // ACK / DESCRIBE (broker/queue; journals under <data_dir>/__queues).
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

  // Controlled shutdown first (when a hosted partition has other replicas:
  // API_BROKER_SHUTDOWN until no partition is led here, at most
  // controlled_shutdown_timeout_ms, given up at once on UNSUPPORTED_API),
  // then stops the loops and fetchers, answers parked
  // fetches, closes every log (fsync). Idempotent; returns the first close
  // error.
  absl::Status Stop();

  struct State;

 private:
  explicit Broker(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace brook::broker
