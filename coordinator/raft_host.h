// RaftHost: runs one raft::RaftNode for a coordinator quorum member. It owns
// the node's durable storage (<dir>/log, <dir>/hardstate, <dir>/snapshot), a
// thread that drives the node (Tick every tick_ms, inbound messages,
// proposals), and one sender thread per peer that ships outbound messages as
// API_RAFT requests (proto/raft.proto) over an RpcClient.
//
// Threading: every callback in RaftHostCallbacks runs on the host's own Raft
// thread, in commit order, and must not block for long nor call Stop. The
// public methods are thread-safe and never block on the network or on a
// commit (Propose completes through its callback, also on the Raft thread).
// Inbound API_RAFT handlers only decode and enqueue.
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/storage/fs.h"
#include "common/rpc/server.h"
#include "common/types.h"
#include "coordinator/raft/raft.h"
#include "coordinator/raft/raft_node.h"
#include "proto/raft.pb.h"

namespace brook::coordinator {

struct RaftMember {
  NodeId id;
  std::string host;
  uint16_t port = 0;
};

struct RaftHostOptions {
  NodeId id;
  // Every voter including `id` (the own entry's address is not used).
  std::vector<RaftMember> members;
  std::string dir;                     // durable storage directory
  storage::FileSystem* fs = nullptr;   // must outlive the host
  int64_t election_timeout_ms = 500;   // drawn from [t, 2t)
  int64_t heartbeat_ms = 50;
  int64_t tick_ms = 10;
  // Take a snapshot (and compact the log) after this many applied entries
  // since the last one; 0: never.
  int64_t snapshot_entries = 10000;
  // Messages queued per peer while its connection is busy or down; more are
  // dropped (Raft retransmits).
  size_t max_queued_messages = 4096;
  int64_t max_reconnect_backoff_ms = 500;
};

// What the host reports about its member and the quorum.
struct RaftHostStatus {
  NodeId id;
  raft::Role role = raft::Role::kFollower;
  Term term;
  std::optional<NodeId> leader;
  // Leader whose first entry of its term has been applied here: it may serve.
  bool serving = false;
  raft::LogIndex commit;
  raft::LogIndex applied;
  raft::LogIndex last;
  raft::LogIndex snapshot_index;
  struct Peer {
    NodeId id;
    int64_t match = -1;            // leader only; -1 unknown
    int64_t last_contact_ms = -1;  // leader only: since the peer last answered
  };
  std::vector<Peer> peers;  // every other member, ordered by id
};

struct RaftHostCallbacks {
  // A committed normal entry, in index order, exactly once per process
  // lifetime (after a restart entries after the snapshot are applied again
  // on top of the restored snapshot).
  std::function<void(raft::LogIndex index, const std::string& data)> apply;
  // Replace the state machine with the snapshot's (at start, or one received
  // from the leader). An error stops the host.
  std::function<absl::Status(const raft::Snapshot& snapshot)> restore;
  // The state machine serialized as of the last applied entry.
  std::function<std::string()> take_snapshot;
  // Role, term, leader or serving changed.
  std::function<void(const RaftHostStatus& status)> state_changed;
};

class RaftHost {
 public:
  using ProposeCallback = std::function<void(absl::StatusOr<raft::LogIndex>)>;

  // Opens the storage under options.dir, restores the stored snapshot
  // through callbacks.restore, and starts the threads. A single-member
  // quorum is leader and serving when this returns (its log applied).
  static absl::StatusOr<std::unique_ptr<RaftHost>> Open(RaftHostOptions options,
                                                        RaftHostCallbacks callbacks);
  ~RaftHost();  // Stop()s.
  RaftHost(const RaftHost&) = delete;
  RaftHost& operator=(const RaftHost&) = delete;

  // Registers the API_RAFT handler (requests are decoded and queued for the
  // Raft thread; the answer is sent at once). Safe to call once per server.
  void RegisterApis(rpc::RpcServer& server);
  // The API_RAFT handler itself (for servers that dispatch on their own).
  void Handle(const rpc::Request& req);

  // Appends `entries` (each a normal entry) if this member is the leader.
  // `done` gets the index of the last one once all are committed and applied
  // (callbacks.apply has run for them), or NOT_COORDINATOR when this member
  // is not the leader, loses leadership first, or an index was committed with
  // another term; SHUTTING_DOWN after Stop. Runs on the Raft thread (or
  // inline after Stop).
  void Propose(std::vector<std::string> entries, ProposeCallback done);

  // Asks the leader to hand leadership to `target` (tests, graceful stop).
  void TransferLeadership(NodeId target);

  RaftHostStatus status() const;

  // Stops the threads, fails pending proposals with SHUTTING_DOWN and closes
  // the storage. Idempotent; must not be called from a callback.
  absl::Status Stop();

  struct Impl;

 private:
  explicit RaftHost(std::shared_ptr<Impl> impl);
  static void HandleRaftRequest(const std::shared_ptr<Impl>& self, const rpc::Request& req);
  std::shared_ptr<Impl> impl_;
};

// Conversions between raft::Message and its wire form.
proto::RaftMessage ToProto(const raft::Message& m);
absl::StatusOr<raft::Message> FromProto(const proto::RaftMessage& m);

}  // namespace brook::coordinator
