// GroupRpc: sends consumer-group requests (APIs 50..55) to the active
// coordinator. Candidates come from client::CoordinatorClient (the one that
// answered last, a leader named by NOT_COORDINATOR, the name servers'
// leader, the other quorum members). Unlike CoordinatorClient::Call, group
// error codes (REBALANCE_IN_PROGRESS in particular, which is retriable for
// plain requests) come straight back to the member, which must react to
// them, and a request can be sent without waiting (a JoinGroup may wait on
// the coordinator for a whole rebalance while Poll keeps returning).
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/connection_pool.h"
#include "client/coordinator_client.h"
#include "client/metadata_cache.h"
#include "common/rpc/client.h"
#include "google/protobuf/message.h"
#include "proto/brook.pb.h"

namespace brook::client::group {

// One request in flight. Thread-safe; completed on the io thread.
class PendingCall {
 public:
  // Waits until answered or `deadline`; true when answered.
  bool Wait(absl::Time deadline);
  bool done() const;
  // The outcome once done: a transport error (Unavailable, DeadlineExceeded;
  // transport_failed() is then true) or the response's top-level error
  // (with its wire code); `resp` is parsed from the header when one came.
  absl::Status Result(google::protobuf::Message* resp) const;
  bool transport_failed() const;
  const HostPort& address() const { return address_; }

 private:
  friend class GroupRpc;
  void Complete(absl::StatusOr<rpc::Response> r);

  HostPort address_;
  std::shared_ptr<rpc::RpcClient> conn_;
  mutable absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool transport_failed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::string header_ ABSL_GUARDED_BY(mu_);
};

// Thread-safe. Start and Call block while connecting (up to the pool's
// connect timeout) and Call while waiting: never on the pool's io thread.
// `pool` and `metadata` must outlive it.
class GroupRpc {
 public:
  GroupRpc(ConnectionPool* pool, MetadataCache* metadata)
      : pool_(pool), metadata_(metadata), coordinator_(pool, metadata) {}

  // Sends `req` once to the current best candidate; the answer may take up
  // to `timeout`. A candidate that cannot be reached gives a call already
  // failed with Unavailable.
  std::shared_ptr<PendingCall> Start(proto::Api api, const google::protobuf::Message& req,
                                     std::chrono::milliseconds timeout);

  // Learns from a finished call: a transport failure or NOT_COORDINATOR moves
  // on to another candidate (the leader it names first). Returns true when the
  // outcome is the coordinator's answer (OK or a group error), false when the
  // request should be sent again (Start picks the next candidate).
  bool Settle(const PendingCall& call, const absl::Status& outcome);

  // Start + Wait + Settle, sending again (with back-off and a metadata
  // refresh after every candidate failed) until the coordinator answers or
  // `deadline` passes. Each attempt waits at most `attempt_timeout`.
  absl::Status Call(proto::Api api, const google::protobuf::Message& req,
                    google::protobuf::Message* resp, absl::Time deadline,
                    std::chrono::milliseconds attempt_timeout = CoordinatorClient::kAttemptTimeout);

 private:
  ConnectionPool* const pool_;
  MetadataCache* const metadata_;
  CoordinatorClient coordinator_;
  absl::Mutex mu_;
  size_t rotation_ ABSL_GUARDED_BY(mu_) = 0;  // candidates skipped after failures
  std::optional<HostPort> hinted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace brook::client::group
