// Coordinator: the controller role of one coordinator quorum member. The
// metadata image (MetadataState) is replicated by Raft (raft_host.h): every
// member applies the committed MetadataRecords (Raft index = metadata
// offset). Only the Raft leader serves: it answers topic administration,
// broker heartbeats, in-sync set changes and controlled shutdowns, tracks
// broker leases and runs the controller loop (fencing lapsed brokers,
// electing leaders, preferred-leader rebalancing). Followers answer
// NOT_COORDINATOR naming the leader, except for API_DESCRIBE_CLUSTER and
// API_RAFT. The leader also serves the consumer group APIs 50..58 through
// its active group coordinator (group_service.h, docs/groups.md).
//
// Thread-safety: every public method is thread-safe. RPC handlers run on the
// io_context's threads and never wait for a commit: mutations are queued to
// one controller thread, which proposes one batch of records at a time and
// answers once they are committed and applied. Committed entries are applied
// on the Raft thread.
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
#include "broker/storage/log.h"
#include "common/http/admin_server.h"
#include "common/rpc/server.h"
#include "common/types.h"
#include "coordinator/groups/group_coordinator.h"
#include "proto/brook.pb.h"

namespace brook::coordinator {

struct CoordinatorMember {
  NodeId id;
  std::string host;
  uint16_t port = 0;
};

struct CoordinatorOptions {
  std::string data_dir;  // e.g. <data-dir>/coordinator; Raft storage in data_dir/raft
  NodeId id{1};
  // Every member of the quorum, this one included; empty: this coordinator
  // alone (its address then comes from SetAdvertisedAddress).
  std::vector<CoordinatorMember> quorum;
  proto::TopicConfig default_topic_config;
  int32_t default_partitions = 1;
  int32_t default_replication_factor = 1;
  int64_t broker_lease_ms = 1500;
  int64_t raft_election_timeout_ms = 500;
  int64_t raft_heartbeat_ms = 50;
  int64_t raft_snapshot_entries = 10000;  // 0: never snapshot
  int64_t leader_rebalance_interval_ms = 30000;  // 0: off
  int64_t controller_interval_ms = 100;  // lease checks and leader elections
  // The consumer group coordinator's settings (member_id_nonce is set per
  // leadership term).
  groups::GroupConfig groups;
};

class Coordinator {
 public:
  // Opens the Raft storage under options.data_dir/raft (restoring the
  // snapshot) and starts the Raft and controller threads. A single-member
  // quorum is leader and serving when this returns. `fs` must outlive the
  // coordinator; `flusher` is not used (the Raft log fsyncs itself) and may
  // be null; `io` runs the long-poll timers and must outlive it too.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Open(storage::FileSystem* fs,
                                                           storage::Flusher* flusher,
                                                           CoordinatorOptions options,
                                                           boost::asio::io_context& io);
  ~Coordinator();  // Closes if not closed.
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // This member's address as reported to brokers and in DescribeCluster
  // (replaces its quorum entry, e.g. when that named port 0).
  void SetAdvertisedAddress(std::string host, uint16_t port);

  // API_CREATE_TOPIC, API_DELETE_TOPIC, API_CREATE_PARTITIONS, API_LIST_TOPICS,
  // API_DESCRIBE_TOPIC, API_BROKER_HEARTBEAT, API_ALTER_ISR, API_BROKER_SHUTDOWN,
  // API_DESCRIBE_CLUSTER, API_RAFT and the group APIs 50..58
  // (API_JOIN_GROUP .. API_DELETE_GROUPS). Handlers hold only a weak reference:
  // requests arriving after Close are answered SHUTTING_DOWN. A long-poll
  // heartbeat is held at most min(max_wait_ms, broker_lease_ms / 3), so a
  // parked broker renews its lease in time.
  void RegisterApis(rpc::RpcServer& server);

  // GET /admin/topics, /admin/brokers, /admin/cluster and /admin/groups as
  // JSON.
  void RegisterAdmin(http::AdminServer& admin);

  // Answers parked heartbeats with SHUTTING_DOWN, refuses later requests,
  // stops the controller and Raft threads and closes the Raft storage.
  // Idempotent.
  absl::Status Close();

  // The offset (Raft index) of the last applied metadata record (-1 when none).
  Offset metadata_offset() const;

  // This member leads the quorum and has applied its first entry of the term.
  bool serving() const;
  // This member runs the active group coordinator (it serves APIs 50..58).
  bool serving_groups() const;
  // The API_DESCRIBE_CLUSTER answer of this member.
  proto::DescribeClusterResponse DescribeCluster() const;

  struct Impl;

 private:
  explicit Coordinator(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Kafka's topic-name rule: 1..249 characters of [a-zA-Z0-9._-], not "." or "..".
bool IsValidTopicName(const std::string& name);

}  // namespace brook::coordinator
