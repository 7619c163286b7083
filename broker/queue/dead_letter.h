// Dead-letter writes: where a queue subscription sends records that reached
// max_deliveries. DeadLetterSink is the seam (tests substitute their own);
// ProducerDeadLetterSink writes through the client producer (acks=all),
// creating the dead-letter topic through the Admin client when missing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace brook::client {
class Admin;
class Producer;
}  // namespace brook::client

namespace brook::queue {

// Headers added to a dead-lettered record (besides its own).
inline constexpr char kDlqTopicHeader[] = "brook-dlq-topic";
inline constexpr char kDlqPartitionHeader[] = "brook-dlq-partition";
inline constexpr char kDlqOffsetHeader[] = "brook-dlq-offset";
inline constexpr char kDlqGroupHeader[] = "brook-dlq-group";
inline constexpr char kDlqReasonHeader[] = "brook-dlq-reason";
inline constexpr char kDlqDeliveryCountHeader[] = "brook-dlq-delivery-count";

struct DeadLetterRecord {
  std::string topic;  // the dead-letter topic
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;
  int64_t timestamp_ms = -1;
};

// Thread-safe. Send may block briefly (it runs on the queue's worker thread).
class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  // `done` runs exactly once, on any thread, with OK once the write is
  // acknowledged by every in-sync replica. `done` must not block.
  virtual void Send(DeadLetterRecord record, std::function<void(absl::Status)> done) = 0;
  // Stops sending; pending sends fail. Idempotent.
  virtual void Close() = 0;
};

class ProducerDeadLetterSink : public DeadLetterSink {
 public:
  // `nameservers`: "HOST:PORT,...". The producer and admin client are
  // created on the first Send.
  explicit ProducerDeadLetterSink(std::string nameservers);
  ~ProducerDeadLetterSink() override;
  void Send(DeadLetterRecord record, std::function<void(absl::Status)> done) override;
  void Close() override;

 private:
  absl::Status EnsureClients() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EnsureTopic(const std::string& topic) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string nameservers_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<client::Admin> admin_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<client::Producer> producer_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> known_topics_ ABSL_GUARDED_BY(mu_);
};

}  // namespace brook::queue
