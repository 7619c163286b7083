// CoordinatorClient: sends requests to the active coordinator (the Raft
// leader of the coordinator quorum), found through the name servers, moving
// on to the next quorum member on NOT_COORDINATOR (following the leader it
// names) or a connection failure, and retrying retriable errors with
// back-off. Shared by Admin and the group consumer.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "client/address.h"
#include "client/connection_pool.h"
#include "client/metadata_cache.h"
#include "google/protobuf/message.h"
#include "proto/brook.pb.h"

namespace brook::client {

// Thread-safe. Call blocks (network and back-off sleeps) and must not run on
// the pool's io_context thread. `pool` and `metadata` must outlive it.
class CoordinatorClient {
 public:
  using Clock = std::chrono::steady_clock;

  CoordinatorClient(ConnectionPool* pool, MetadataCache* metadata)
      : pool_(pool), metadata_(metadata) {}

  // Sends `req` and parses the answer into `resp`. Each round tries every
  // candidate (see Candidates) until one answers; NOT_COORDINATOR and
  // connection failures move on to the next. Retriable errors are retried
  // (with a metadata refresh and back-off) until `deadline`. A response whose
  // top-level error_code is set comes back as that error (see
  // rpc::RpcClient::CallSync).
  absl::Status Call(proto::Api api, const google::protobuf::Message& req,
                    google::protobuf::Message* resp, Clock::time_point deadline);

  // Makes `coordinator` the first candidate (it answered as leader).
  void Prefer(const HostPort& coordinator);

  // The coordinators to try, best first: the one that answered last, a
  // leader named in a NOT_COORDINATOR answer, the name servers' leader, then
  // every other quorum member they report.
  std::vector<HostPort> Candidates();

  // "... leader is coordinator 2 at 127.0.0.1:9093" -> 127.0.0.1:9093.
  static std::optional<HostPort> LeaderFromMessage(std::string_view message);

  // Longest wait for one coordinator's answer before trying another member.
  static constexpr std::chrono::milliseconds kAttemptTimeout{5000};

 private:
  ConnectionPool* const pool_;
  MetadataCache* const metadata_;
  absl::Mutex mu_;
  std::optional<HostPort> preferred_ ABSL_GUARDED_BY(mu_);  // answered last
  std::optional<HostPort> hinted_ ABSL_GUARDED_BY(mu_);     // named by NOT_COORDINATOR
};

}  // namespace brook::client
