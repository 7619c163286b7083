// MetadataCache: what the name servers say about the cluster (brokers, topic
// routes, coordinators), refreshed on demand and when older than a max age.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/address.h"
#include "client/connection_pool.h"

namespace brook::proto {
class MetadataResponse;
}

namespace brook::client {

// A coordinator quorum member as the name servers report it.
struct CoordinatorEndpoint {
  int32_t id = 0;
  HostPort address;
  bool leader = false;
};

struct PartitionRouteInfo {
  int32_t partition = 0;
  int32_t leader = -1;  // broker id; -1 when none
  int32_t leader_epoch = 0;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
};

// Thread-safe. Refresh blocks on the network (up to the request timeout per
// name server) and must not run on the pool's io_context thread; lookups never
// block on the network.
class MetadataCache {
 public:
  using Clock = std::chrono::steady_clock;

  // `pool` must outlive the cache.
  MetadataCache(ConnectionPool* pool, std::vector<HostPort> nameservers,
                std::chrono::milliseconds request_timeout);

  // Asks the name servers, one after another from the last that answered
  // until one does, for the routes of `topics` and of every topic already
  // tracked; `topics` are tracked from then on. With no topic at all, asks
  // for every topic (and tracks none).
  absl::Status Refresh(const std::vector<std::string>& topics = {});

  // Refreshes the tracked topics when the last refresh is older than
  // `max_age` or Invalidate() was called since, unless a refresh was tried
  // less than `min_interval` ago. OK when nothing had to be done.
  absl::Status MaybeRefresh(std::chrono::milliseconds max_age, std::chrono::milliseconds min_interval);

  // Marks the routes stale (a request met NOT_LEADER, a closed connection...).
  void Invalidate();
  // Tracks `topics` from now on and marks the routes stale, without asking
  // the name servers now (the next MaybeRefresh does).
  void Track(const std::vector<std::string>& topics);

  // The partitions of `topic`, or the topic's error (NotFound when the name
  // servers do not know it or it was never asked for).
  absl::StatusOr<std::vector<PartitionRouteInfo>> Partitions(const std::string& topic) const;
  absl::StatusOr<int32_t> PartitionCount(const std::string& topic) const;
  // PartitionCount, refreshing `topic` when it fails and retrying, with a
  // back-off doubling from `initial_backoff` up to `max_backoff`, while the
  // error is retriable and the next try would start before `deadline`.
  // Returns the last error otherwise. Blocks (network and sleeps): same
  // thread rule as Refresh.
  absl::StatusOr<int32_t> WaitForPartitionCount(const std::string& topic, Clock::time_point deadline,
                                                std::chrono::milliseconds initial_backoff,
                                                std::chrono::milliseconds max_backoff);
  // The leader's address; Unavailable (LEADER_NOT_AVAILABLE) when the
  // partition has no leader or the leader's address is unknown.
  absl::StatusOr<HostPort> Leader(const std::string& topic, int32_t partition,
                                  int32_t* leader_id = nullptr) const;
  std::optional<HostPort> Broker(int32_t broker_id) const;
  // The coordinator marked leader; Unavailable (NOT_COORDINATOR) when none.
  absl::StatusOr<HostPort> ActiveCoordinator() const;
  // Every coordinator the name servers reported, the one marked leader first.
  std::vector<CoordinatorEndpoint> Coordinators() const;

  // A broker answered NOT_LEADER naming `leader_id` as the partition's leader:
  // route the partition there until a refresh brings a route with a higher
  // leader epoch than the one known now (a stale name server cannot undo
  // the hint). Ignored for a negative id or an unknown topic/partition.
  void SetLeaderHint(const std::string& topic, int32_t partition, int32_t leader_id);

 private:
  struct TopicEntry {
    int error_code = 0;  // proto::ErrorCode
    std::vector<PartitionRouteInfo> partitions;
  };
  // A leader hint: applies while routes show an epoch <= base_epoch.
  struct Hint {
    int32_t leader = -1;
    int32_t base_epoch = 0;
  };
  void Apply(const proto::MetadataResponse& r, const std::vector<std::string>& asked);
  // The entry of `topic`; UNKNOWN_TOPIC_OR_PARTITION when there is none (or,
  // with `need_partitions`, it lists no partition), else the topic's error.
  absl::StatusOr<const TopicEntry*> FindTopic(const std::string& topic, bool need_partitions) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ConnectionPool* const pool_;
  const std::vector<HostPort> nameservers_;
  const std::chrono::milliseconds request_timeout_;

  absl::Mutex refresh_mu_;  // one refresh at a time
  mutable absl::Mutex mu_;
  size_t preferred_ ABSL_GUARDED_BY(mu_) = 0;  // the name server that answered last
  absl::flat_hash_set<std::string> tracked_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, TopicEntry> topics_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int32_t, HostPort> brokers_ ABSL_GUARDED_BY(mu_);
  std::optional<HostPort> coordinator_ ABSL_GUARDED_BY(mu_);
  std::vector<CoordinatorEndpoint> coordinators_ ABSL_GUARDED_BY(mu_);
  // By "topic\0partition".
  absl::flat_hash_map<std::string, Hint> hints_ ABSL_GUARDED_BY(mu_);
  bool stale_ ABSL_GUARDED_BY(mu_) = true;
  Clock::time_point last_success_ ABSL_GUARDED_BY(mu_){};
  Clock::time_point last_attempt_ ABSL_GUARDED_BY(mu_){};
};

}  // namespace brook::client
