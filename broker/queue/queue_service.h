// QueueService: the queue APIs (API_QUEUE_RECEIVE / ACK / DESCRIBE) at the
// partition leader. Owns one Subscription per (topic, partition, group),
// feeds it from the partition log below the high watermark, journals its
// changes (group-commit fsync before acks and deliveries are answered),
// long-polls receives, writes dead letters, and commits each subscription's
// ack floor to the group coordinator about once a second. See
// docs/queues.md.
//
// The service reaches the broker only through QueueHost and PartitionView,
// so it can be driven by tests without a broker.
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "broker/queue/dead_letter.h"
#include "broker/queue/subscription.h"
#include "broker/storage/fs.h"
#include "common/rpc/server.h"
#include "google/protobuf/message.h"
#include "proto/brook.pb.h"

namespace brook::queue {

// One partition led by this broker, as the queue sees it. Thread-safe.
class PartitionView {
 public:
  virtual ~PartitionView() = default;
  // The topic incarnation (a re-created topic has a new id).
  virtual std::string topic_id() const = 0;
  virtual int32_t leader_epoch() const = 0;
  virtual int64_t log_start_offset() const = 0;
  virtual int64_t high_watermark() const = 0;
  // Whole batches from the one holding `offset`, below the high watermark
  // (at least one batch, about `max_bytes`). OFFSET_OUT_OF_RANGE below the
  // log start.
  virtual absl::StatusOr<std::vector<uint8_t>> Read(int64_t offset, size_t max_bytes) const = 0;
  // Runs `waiter` once when the high watermark next advances (or the
  // partition closes), on the advancing thread; must not block.
  virtual void AddWaiter(std::function<void()> waiter) = 0;
};

// What the service needs from the broker. Thread-safe.
class QueueHost {
 public:
  virtual ~QueueHost() = default;
  // The partition if this broker leads it; else nullptr with `code`
  // (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER) and `message` set.
  virtual std::shared_ptr<PartitionView> Lead(const std::string& topic, int32_t partition,
                                              proto::ErrorCode* code, std::string* message) = 0;
  // The partitions of `topic` this broker leads.
  virtual std::vector<int32_t> LedPartitions(const std::string& topic) = 0;
  // Calls the active coordinator (blocking; only the service's worker
  // thread calls it).
  virtual absl::Status CallCoordinator(proto::Api api, const google::protobuf::Message& req,
                                       google::protobuf::Message* resp,
                                       std::chrono::milliseconds timeout) = 0;
};

struct QueueServiceOptions {
  // Journals live in <dir>/<topic>-<partition>/<hex of group>.journal.
  std::string dir;
  SubscriptionLimits limits;
  size_t max_subscriptions = 1000;     // loaded at once; more are refused
  int max_ack_entries = 10000;         // per QueueAckRequest
  int max_partitions_per_request = 1000;
  int max_receive_records = 10000;     // cap of max_records
  int64_t max_receive_bytes = 16 << 20;  // cap of max_bytes
  int64_t max_wait_ms = 60000;         // cap of max_wait_ms
  size_t max_parked_receives = 10000;
  size_t max_name_bytes = 1024;        // group, topic and consumer ids
  // Bytes of log read per subscription per request while filling the window.
  size_t fill_budget_bytes = 8 << 20;
  int64_t tick_ms = 100;               // timers, dead letters
  int64_t commit_interval_ms = 1000;   // ack floors to the coordinator
  uint64_t compact_bytes = 1 << 20;    // journal size that triggers compaction
  int64_t dead_letter_retry_ms = 1000;
  // Wall clock in ms since the epoch; null: the system clock.
  std::function<int64_t()> now_ms;
};

// Thread-safe. Handlers run on the io_context's threads; timers, dead
// letters, subscription creation (which asks the coordinator for the group's
// committed offset) and floor commits on one worker thread of its own.
class QueueService {
 public:
  // `io`, `fs` and `host` must outlive the service. `dead_letters` may be
  // null (then records at max_deliveries wait until one is configured; for
  // tests).
  QueueService(boost::asio::io_context& io, storage::FileSystem* fs, QueueHost* host,
               std::unique_ptr<DeadLetterSink> dead_letters, QueueServiceOptions options);
  ~QueueService();  // Stop()s
  QueueService(const QueueService&) = delete;
  QueueService& operator=(const QueueService&) = delete;

  // API_QUEUE_RECEIVE, API_QUEUE_ACK, API_QUEUE_DESCRIBE.
  void RegisterApis(rpc::RpcServer& server);
  void HandleReceive(rpc::Request req);
  void HandleAck(rpc::Request req);
  void HandleDescribe(rpc::Request req);

  // Starts the worker thread.
  void Start();
  // Drops the in-memory state of subscriptions whose partition is no longer
  // led here (or is led in a newer epoch); their journals stay. Parked
  // receives on them are answered. Safe from any thread.
  void CheckLeadership();
  // Answers parked receives (SHUTTING_DOWN), stops the worker, syncs the
  // journals. Idempotent.
  void Stop();

  // Subscriptions loaded in memory (for tests and metrics).
  size_t subscription_count() const;

  // The state of every loaded subscription, as API_QUEUE_DESCRIBE reports it
  // (without reading the log first: `backlog` counts records up to the
  // partition's high watermark). For /metrics; safe from any thread.
  struct SubscriptionState {
    std::string topic;
    int32_t partition = 0;
    std::string group;
    proto::QueuePartitionState state;
  };
  std::vector<SubscriptionState> SubscriptionStates() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace brook::queue
