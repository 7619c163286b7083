// Coordinator: the controller role. Owns the metadata log and its state
// machine, serves topic administration and broker heartbeats over the native
// protocol, and places partitions on live brokers.
//
// Thread-safety: every public method is thread-safe. RPC handlers run on the
// io_context's threads; mutations are serialized by one mutex (appending to
// the metadata log, which fsyncs, happens under it: metadata changes are rare).
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "broker/storage/fs.h"
#include "broker/storage/log.h"
#include "common/http/admin_server.h"
#include "common/rpc/server.h"
#include "common/types.h"
#include "proto/brook.pb.h"

namespace brook::coordinator {

class MetadataLog;

struct CoordinatorOptions {
  std::string data_dir;  // e.g. <data-dir>/coordinator; the metadata log lives in data_dir/metadata
  NodeId id{1};
  proto::TopicConfig default_topic_config;
  int32_t default_partitions = 1;
  int32_t default_replication_factor = 1;
  int64_t broker_lease_ms = 10000;
};

class Coordinator {
 public:
  // Opens (replaying) the metadata log under options.data_dir. `fs` and
  // `flusher` (may be null) must outlive the coordinator; `io` runs the
  // long-poll timers and must outlive it too.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Open(storage::FileSystem* fs,
                                                           storage::Flusher* flusher,
                                                           CoordinatorOptions options,
                                                           boost::asio::io_context& io);

  // As Open, on a metadata log the caller provides (tests; later the Raft
  // log). The log is replayed here.
  static absl::StatusOr<std::unique_ptr<Coordinator>> OpenWithLog(std::unique_ptr<MetadataLog> log,
                                                                  CoordinatorOptions options,
                                                                  boost::asio::io_context& io);
  ~Coordinator();  // Closes if not closed.
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Reported in heartbeat responses as CoordinatorInfo (leader=true).
  void SetAdvertisedAddress(std::string host, uint16_t port);

  // API_CREATE_TOPIC, API_DELETE_TOPIC, API_LIST_TOPICS, API_DESCRIBE_TOPIC,
  // API_BROKER_HEARTBEAT. Handlers hold only a weak reference: requests
  // arriving after Close are answered SHUTTING_DOWN. A long-poll heartbeat is
  // held at most min(max_wait_ms, broker_lease_ms / 2), so a parked broker
  // renews its lease in time.
  void RegisterApis(rpc::RpcServer& server);

  // GET /admin/topics and /admin/brokers as JSON.
  void RegisterAdmin(http::AdminServer& admin);

  // Answers parked heartbeats with SHUTTING_DOWN, refuses later requests and
  // closes the metadata log. Idempotent.
  absl::Status Close();

  // The offset of the last applied metadata record (-1 when none).
  Offset metadata_offset() const;

  struct Impl;

 private:
  explicit Coordinator(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Kafka's topic-name rule: 1..249 characters of [a-zA-Z0-9._-], not "." or "..".
bool IsValidTopicName(const std::string& name);

}  // namespace brook::coordinator
