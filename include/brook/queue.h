// QueueConsumer: a queue subscription (docs/queues.md). Many consumers of one
// group receive records of the same partitions concurrently and acknowledge
// each record on its own; an unacknowledged delivery is redelivered after the
// ack timeout (or at once after a Nack's delay), and a record delivered
// max_deliveries times goes to the dead-letter topic. Delays ("deliver at")
// and tags are set on the producer side with SetDeliverAt / SetDelay /
// SetTags.
//
// Thread-safe: Receive, Ack, Nack, AckSync, Flush and Describe may be called
// from any thread (Close must not run concurrently with Describe).
// Background threads: one long-poll receive loop per broker leading a
// partition of the topic (started by the first Receive, so a consumer used
// only to acknowledge or describe receives nothing), one thread that sends
// acknowledgements, and the network thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "brook/types.h"

namespace brook::client {

enum class QueueStart { kEarliest, kLatest };

// The subscription settings travel with every receive request; the partition
// leader keeps the latest it saw (all consumers of a group should agree).
struct QueueConfig {
  std::string nameservers;  // "HOST:PORT,..."; empty: DefaultNameservers()
  std::string group;        // required
  std::string topic;        // required
  // Unique per consumer instance; acknowledgements must carry the id of the
  // consumer that received the delivery. Empty: a random id is generated.
  std::string consumer_id;

  // A delivery not acknowledged within this time is redelivered (to any
  // consumer). Records waiting in this consumer's prefetch buffer count.
  std::chrono::milliseconds ack_timeout{30000};
  // After this many deliveries a record goes to the dead-letter topic.
  // <= 0: never.
  int32_t max_deliveries = 0;
  std::string dead_letter_topic;  // empty: "<group>-dlq"
  // Redelivery delay after a timeout or a Nack without delay: doubles per
  // delivery from backoff_initial up to backoff_max.
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{60000};
  // Tag filter: "" or "*" receives every record; "a || b" records tagged a or
  // b ("brook-tags" header). Records the filter skips count as acknowledged.
  // A filter that does not parse fails Receive with InvalidArgument.
  std::string filter;
  // At most one record per key in flight in the group, in offset order.
  bool key_ordered = false;
  // Where a subscription that does not exist yet starts.
  QueueStart start = QueueStart::kLatest;

  // Most records delivered to this consumer and not yet returned by Receive.
  // The receive loops only ask the brokers for what this buffer can take, so
  // a consumer never hoards deliveries whose ack timers are running.
  size_t prefetch_limit = 1000;
  size_t max_bytes_per_request = 1024 * 1024;
  // How long a receive request waits at the broker while nothing is
  // deliverable (long poll). Close may wait this long for the loops.
  std::chrono::milliseconds max_wait{500};
  std::chrono::milliseconds request_timeout{30000};
};

// A delivered record. Only record.partition, record.offset and
// delivery_count identify the delivery for Ack / Nack, so a tool may rebuild
// a QueueMessage from those three (with the same consumer id).
struct QueueMessage {
  ConsumerRecord record;
  int32_t delivery_count = 1;  // 1 on the first delivery
};

// One partition of a subscription, as its leader reports it.
struct QueuePartitionState {
  int32_t partition = 0;
  absl::Status status;  // not OK: the counters below are unset
  int64_t ack_floor = 0;       // every offset below is handled
  int64_t read_offset = 0;     // next offset read from the log
  int64_t high_watermark = 0;
  int64_t backlog = 0;         // not yet handled: waiting, in flight, delayed
  int64_t in_flight = 0;       // delivered, not yet acknowledged
  int64_t delayed = 0;         // waiting for a deliver-at time or a back-off
  int64_t acked = 0;           // since the subscription was created
  int64_t filtered = 0;        // skipped by the tag filter
  int64_t dead_lettered = 0;
  int64_t redeliveries = 0;
  int32_t consumers = 0;       // seen within the ack timeout
};

// What an acknowledgement failed with, for the statuses AckSync and Flush
// return (each also has its own canonical code, noted here).
enum class QueueAckError {
  kNone,             // OK
  kNotDelivered,     // FailedPrecondition: never delivered to this consumer id
  kAlreadyAcked,     // AlreadyExists: acknowledged (or dead-lettered) already
  kDeliveryExpired,  // Aborted: the ack timeout passed; it may come again
  kOther,            // anything else (network, closed consumer, ...)
};
QueueAckError ClassifyAckError(const absl::Status& status);

class QueueConsumer {
 public:
  // Fails with InvalidArgument on a missing group or topic or bad settings.
  // Does not contact the cluster until first used.
  static absl::StatusOr<std::unique_ptr<QueueConsumer>> Create(QueueConfig config);
  virtual ~QueueConsumer() = default;  // Close()s if still open

  virtual const std::string& consumer_id() const = 0;

  // Returns up to `max` delivered records, waiting up to `timeout` for the
  // first (empty when none came). Records whose ack timeout passed while
  // they waited in the buffer are dropped (the broker redelivers them). The
  // first call starts the receive loops. Errors: InvalidArgument for a bad
  // filter, the broker's error for a subscription it refuses (reported once
  // per occurrence), FailedPrecondition after Close.
  virtual absl::StatusOr<std::vector<QueueMessage>> Receive(size_t max,
                                                            std::chrono::milliseconds timeout) = 0;

  // Acknowledges (never delivered again) or negatively acknowledges
  // (redelivered after `delay`; none: the subscription's back-off) without
  // waiting. Acknowledgements are batched: each broker has at most one ack
  // request in flight, and the ones made meanwhile go in the next. Failures
  // are reported by Flush.
  virtual void Ack(const QueueMessage& message) = 0;
  virtual void Nack(const QueueMessage& message,
                    std::optional<std::chrono::milliseconds> delay = std::nullopt) = 0;
  // Ack, waiting until the broker answered (the acknowledgement is then
  // durable). See QueueAckError for the specific failures.
  virtual absl::Status AckSync(const QueueMessage& message) = 0;
  virtual absl::Status NackSync(const QueueMessage& message,
                                std::optional<std::chrono::milliseconds> delay = std::nullopt) = 0;

  // Waits until every Ack / Nack made before the call is answered; returns
  // the first failure of an asynchronous Ack / Nack since the last Flush
  // (DeadlineExceeded when `timeout` passed first).
  virtual absl::Status Flush(std::chrono::milliseconds timeout) = 0;

  // The subscription's state on every partition of the topic.
  virtual absl::StatusOr<std::vector<QueuePartitionState>> Describe() = 0;

  // Stops receiving, releases the records still in the prefetch buffer
  // (redelivered at once to other consumers, not counted as deliveries) and
  // flushes the acknowledgements (up to request_timeout). Idempotent.
  virtual absl::Status Close() = 0;
};

// ---- Producer-side helpers (set headers of a record to send) ----

// Not delivered to queue consumers before `deliver_at_ms` (ms since the
// epoch): sets the "brook-deliver-at" header.
void SetDeliverAt(ProducerRecord& record, int64_t deliver_at_ms);
// SetDeliverAt(now + delay).
void SetDelay(ProducerRecord& record, std::chrono::milliseconds delay);
// Sets the "brook-tags" header (comma-separated; tags must not contain ',').
void SetTags(ProducerRecord& record, const std::vector<std::string>& tags);
// The tags of a received record (empty when it has none).
std::vector<std::string> TagsOf(const ConsumerRecord& record);

}  // namespace brook::client
