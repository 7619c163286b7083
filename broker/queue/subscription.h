// Subscription: the state machine of one queue subscription (topic,
// partition, group) at the partition leader. Pure: no I/O, no clock of its
// own (every call takes `now`), so tests drive it with fake time. The
// service (queue_service.h) feeds it records read from the log, asks it what
// to deliver, applies acks, and writes the journal events it emits.
//
// Offsets of the partition fall into:
//   [0, floor)               handled (acked, filtered, dead-lettered, or not
//                            in the log)
//   [floor, read_offset)     each one handled (a range set), in the window
//                            (waiting, in flight, being dead-lettered), or in
//                            the delayed index (deliver-at in the future)
//   [read_offset, ...)       not read yet
// The window holds at most `max_window` records and the delayed index at
// most `max_delayed`; reading stops while either is full, so memory does not
// grow with the backlog.
//
// Not thread-safe: the owner serializes every call.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "broker/queue/filter.h"
#include "proto/brook.pb.h"

namespace brook::queue {

// A subscription's settings with the defaults applied
// (proto::QueueSubscriptionConfig).
struct QueueConfig {
  int32_t ack_timeout_ms = 30000;
  int32_t max_deliveries = 0;  // 0: never dead-letter
  std::string filter;
  bool key_ordered = false;
  int32_t backoff_initial_ms = 1000;
  int32_t backoff_max_ms = 60000;
  std::string dead_letter_topic;  // resolved: "<group>-dlq" when unset
  bool start_earliest = false;

  // Applies the defaults of proto::QueueSubscriptionConfig.
  static QueueConfig FromProto(const proto::QueueSubscriptionConfig& p, const std::string& group);
  bool operator==(const QueueConfig&) const = default;
};

// Limits of one subscription's memory.
struct SubscriptionLimits {
  size_t max_window = 10000;    // records waiting, in flight or being dead-lettered
  // Records waiting for their deliver-at time, 32 bytes each in memory
  // (1,000,000: 32 MB). Beyond it reading pauses until some are due.
  size_t max_delayed = 1000000;
  size_t max_consumers = 4096;  // consumer ids remembered for `consumers`
};

// What the reader learned about one record of the log.
struct RecordInfo {
  int64_t offset = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> tags;  // "brook-tags" header
  int64_t deliver_at_ms = 0;             // "brook-deliver-at"; 0: none
  uint32_t size = 0;                     // approximate encoded size
};

// Why an offset counts as handled.
enum class HandledKind : uint8_t { kAcked = 1, kFiltered = 2, kDeadLettered = 3, kSkipped = 4 };

// A change the journal must record (see journal.h for the encoding).
struct JournalEvent {
  enum class Type : uint8_t {
    kHandled = 1,   // [offset, end) handled as `kind`
    kDelivery = 2,  // `offset` now has delivery count `count`; not before `not_before_ms`
    kConfig = 3,    // the subscription's config changed (the service writes it)
  };
  Type type = Type::kHandled;
  int64_t offset = 0;
  int64_t end = 0;
  HandledKind kind = HandledKind::kAcked;
  int32_t count = 0;
  int64_t not_before_ms = 0;
  bool operator==(const JournalEvent&) const = default;
};

struct Delivery {
  int64_t offset = 0;
  int32_t delivery_count = 0;
  uint32_t size = 0;
};

struct DeadLetter {
  int64_t offset = 0;
  int32_t delivery_count = 0;
  std::string reason;  // "ack timeout" or "nacked"
};

// Counters since the subscription was created (kept in the journal).
struct SubscriptionStats {
  int64_t acked = 0;
  int64_t filtered = 0;
  int64_t dead_lettered = 0;
  int64_t redeliveries = 0;
  bool operator==(const SubscriptionStats&) const = default;
};

// The state a journal snapshot holds.
struct SubscriptionSnapshot {
  int64_t floor = 0;
  std::vector<std::pair<int64_t, int64_t>> handled;  // [start, end) above the floor
  struct Count {
    int64_t offset;
    int32_t count;
    int64_t not_before_ms;
  };
  std::vector<Count> counts;  // offsets delivered at least once, not handled
  SubscriptionStats stats;
};

class Subscription {
 public:
  // A subscription whose every offset below `floor` is handled.
  Subscription(QueueConfig config, TagFilter filter, int64_t floor, SubscriptionLimits limits = {});

  // ---- restore (before any record is added) ----
  // Applies a snapshot or journal events (counts replace earlier counts;
  // handled ranges are merged). Emits no events.
  void Restore(const SubscriptionSnapshot& snapshot);
  void RestoreEvent(const JournalEvent& e);
  void RestoreStats(const SubscriptionStats& stats) { stats_ = stats; }
  // The durable state, for compacting the journal.
  SubscriptionSnapshot Snapshot() const;

  const QueueConfig& config() const { return config_; }
  // The latest request's settings win. A filter change applies to records
  // read from now on.
  void SetConfig(QueueConfig config, TagFilter filter);

  // ---- reading the log ----
  int64_t floor() const { return floor_; }
  int64_t read_offset() const { return read_offset_; }
  bool WantsRecords() const;
  // Offsets [read_offset, to) are not in the log (compacted, control
  // records, or below the log start): they count as handled.
  void SkipTo(int64_t to);
  // Records below `log_start` are gone (retention): every offset below it
  // counts as handled, including records in the window or delayed.
  void TruncateBelow(int64_t log_start);
  // Adds the record at r.offset >= read_offset() (earlier offsets are
  // skipped). Requires WantsRecords().
  void AddRecord(const RecordInfo& r, int64_t now);

  // ---- timers ----
  // Expires in-flight deliveries past their deadline (redelivery after
  // back-off or dead-lettering), makes backed-off and delayed records that
  // are due deliverable.
  void Tick(int64_t now);
  // The earliest time something becomes due (for long-poll); nullopt: none.
  std::optional<int64_t> NextDue() const;

  // ---- delivering ----
  // Picks up to `max_records` deliverable records (offset order; in
  // key-ordered mode only the first unhandled record of each key, one in
  // flight per key) within `max_bytes` (at least one), marks them in flight
  // to `consumer` until now + ack_timeout and emits a kDelivery event for
  // each. Call Tick first.
  std::vector<Delivery> Deliver(const std::string& consumer, int max_records, int64_t max_bytes,
                                int64_t now);
  // Notes that `consumer` asked for records (for the `consumers` count).
  void SeeConsumer(const std::string& consumer, int64_t now);

  // ---- acknowledging ----
  // NONE, QUEUE_NOT_DELIVERED, QUEUE_ALREADY_ACKED or QUEUE_DELIVERY_EXPIRED.
  // NACK redelivers after `delay_ms` (< 0: the back-off for the delivery
  // count); a NACK of a record at max_deliveries dead-letters it. RELEASE
  // makes it deliverable at once and does not count the delivery.
  proto::ErrorCode Ack(int64_t offset, int32_t delivery_count, proto::QueueAckType type,
                       int64_t delay_ms, int64_t now);

  // ---- dead-lettering ----
  // Records due for the dead-letter topic that are not being written yet;
  // they are marked as being written.
  std::vector<DeadLetter> TakeDeadLetters();
  // The write of `offset` was acknowledged (the record is handled) or failed
  // (retried by a later TakeDeadLetters after `retry_ms`).
  void DeadLetterDone(int64_t offset, bool ok, int64_t now, int64_t retry_ms = 1000);

  // ---- observing ----
  std::vector<JournalEvent> DrainEvents();
  bool has_events() const { return !events_.empty(); }
  // Fills ack_floor .. consumers (not partition, error or high_watermark).
  void Describe(int64_t now, proto::QueuePartitionState* out) const;
  const SubscriptionStats& stats() const { return stats_; }
  size_t window_size() const { return entries_.size(); }
  size_t delayed_size() const { return delayed_.size(); }
  size_t in_flight() const;

  // Redelivery delay after delivery number `count`: backoff_initial_ms
  // doubling per delivery up to backoff_max_ms.
  int64_t Backoff(int32_t count) const;

 private:
  enum class State : uint8_t { kWaiting, kReady, kInFlight, kDeadLettering };
  struct Entry {
    State state = State::kReady;
    int32_t delivery_count = 0;
    uint32_t size = 0;
    bool has_key = false;
    bool has_timer = false;
    bool dlq_in_progress = false;
    uint64_t key_hash = 0;
    int64_t due_ms = 0;  // kWaiting: deliverable at; kInFlight: deadline; kDeadLettering: retry at
    std::string consumer;
    std::string dlq_reason;
  };
  // A record waiting for its deliver-at time (compact: 32 bytes).
  struct Delayed {
    int64_t at;
    int64_t offset;
    uint64_t key_hash;
    uint32_t size;
    bool has_key;
    bool operator>(const Delayed& o) const { return at != o.at ? at > o.at : offset > o.offset; }
  };

  bool IsHandled(int64_t offset) const;
  void MarkHandled(int64_t start, int64_t end, HandledKind kind, bool emit);
  void AdvanceFloor();
  void AddToWindow(int64_t offset, uint64_t key_hash, bool has_key, uint32_t size, int32_t count,
                   int64_t not_before, int64_t now);
  void SetTimer(int64_t offset, Entry& e, int64_t due);
  void ClearTimer(int64_t offset, Entry& e);
  void MakeReady(int64_t offset, Entry& e);
  void Retire(int64_t offset, HandledKind kind);  // entry handled: remove from the window
  void StartDeadLetter(int64_t offset, Entry& e, std::string reason);
  bool IsKeyHead(int64_t offset, const Entry& e) const;
  void Emit(const JournalEvent& e);

  QueueConfig config_;
  TagFilter filter_;
  const SubscriptionLimits limits_;
  int64_t floor_;
  int64_t read_offset_;
  // Handled ranges above the floor: start -> end (exclusive), disjoint, not adjacent.
  std::map<int64_t, int64_t> handled_;
  std::map<int64_t, Entry> entries_;  // the window
  std::set<int64_t> ready_;           // deliverable now
  std::set<std::pair<int64_t, int64_t>> timers_;  // (due, offset) of waiting / in-flight / DLQ retry
  std::set<int64_t> dlq_pending_;                 // due for the dead-letter topic, not being written
  // Key-ordered mode: the window's offsets per key.
  absl::flat_hash_map<uint64_t, std::set<int64_t>> keys_;
  std::vector<Delayed> delayed_;  // min-heap by (at, offset)
  // Delivery counts restored from the journal, used when the record is read again.
  std::map<int64_t, std::pair<int32_t, int64_t>> restored_counts_;
  absl::flat_hash_map<std::string, int64_t> consumers_;  // id -> last seen
  SubscriptionStats stats_;
  std::vector<JournalEvent> events_;
};

}  // namespace brook::queue
