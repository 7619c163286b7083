// ReplicaFetcher: the follower side of replication for every partition this
// broker follows from one leader broker. One thread sends one FetchRequest
// for all of them (replica_id, broker_epoch, current_leader_epoch, long-poll
// of replica_fetch_wait_ms) and appends what comes back with
// AppendReplicated. A partition followed in a new leader epoch is first
// truncated by OffsetForLeaderEpoch (KIP-101 with KIP-279).
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "boost/asio/io_context.hpp"
#include "broker/partition.h"
#include "common/rpc/client.h"
#include "common/types.h"
#include "proto/brook.pb.h"

namespace brook::broker::replication {

struct FetcherOptions {
  int32_t self_id = -1;
  int64_t fetch_wait_ms = 500;
  int32_t max_partition_bytes = 1 << 20;
  int32_t max_bytes = 16 << 20;
  // The leader's HOST:PORT, nullopt while unknown (asked on every connect).
  std::function<std::optional<std::string>(int32_t broker_id)> address;
  std::function<int64_t()> broker_epoch;
};

// What a follower knows about one followed partition.
struct FollowStatus {
  TopicPartition tp;
  int32_t leader = -1;
  int32_t epoch = -1;
  bool truncating = false;      // waiting for OffsetForLeaderEpoch
  int64_t leader_log_end = -1;  // as of the last fetch response
  int64_t leader_hw = -1;
};

// KIP-101/279 truncation point for a follower whose latest epoch is
// `asked_epoch`, given the leader's answer (`leader_epoch`, `leader_end`;
// -1/-1 when the leader knows no such epoch) and the follower's own log.
// Returns the offset to truncate to (>= the log end means no truncation).
Offset TruncationOffset(const storage::PartitionLog& log, LeaderEpoch asked_epoch,
                        int32_t leader_epoch, int64_t leader_end, Offset high_watermark);

// Thread-safe. The thread starts in the constructor; Stop (or the destructor)
// joins it. `io` must be run by some thread and outlive the fetcher.
class ReplicaFetcher {
 public:
  ReplicaFetcher(boost::asio::io_context& io, int32_t leader, FetcherOptions options);
  ~ReplicaFetcher();
  ReplicaFetcher(const ReplicaFetcher&) = delete;
  ReplicaFetcher& operator=(const ReplicaFetcher&) = delete;

  // Follows `p` in leader epoch `epoch`; a new epoch (or partition object)
  // restarts with truncation.
  void Follow(std::shared_ptr<Partition> p, int32_t epoch);
  void Unfollow(const TopicPartition& tp);
  bool empty() const;
  std::vector<FollowStatus> Status() const;
  int32_t leader() const { return leader_; }

  // Ends the loop (closing the connection) and joins. Idempotent.
  void Stop();

 private:
  struct Entry {
    std::shared_ptr<Partition> p;
    int32_t epoch = -1;
    bool truncating = true;
    int64_t retry_at_ms = 0;
    int64_t leader_log_end = -1;
    int64_t leader_hw = -1;
  };
  void Run();
  // Sleeps up to `ms` or until Stop.
  void Sleep(int64_t ms);
  std::shared_ptr<rpc::RpcClient> EnsureConnected();
  void DropConnection(const std::shared_ptr<rpc::RpcClient>& c);
  // Runs OffsetForLeaderEpoch for the `pending` partitions. False on a
  // connection failure.
  bool Truncate(const std::shared_ptr<rpc::RpcClient>& c,
                const std::vector<std::pair<TopicPartition, Entry>>& pending);
  bool Fetch(const std::shared_ptr<rpc::RpcClient>& c,
             const std::vector<std::pair<TopicPartition, Entry>>& pending);
  // Applies `f` to the entry of `tp` if it is still the same follow
  // (partition object and epoch).
  void Update(const TopicPartition& tp, const Entry& seen, const std::function<void(Entry&)>& f);

  boost::asio::io_context& io_;
  const int32_t leader_;
  const FetcherOptions options_;

  mutable absl::Mutex mu_;
  std::map<TopicPartition, Entry> entries_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<rpc::RpcClient> client_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace brook::broker::replication
