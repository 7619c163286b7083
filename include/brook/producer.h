// Producer: asynchronous, batching, compressing record sender. Send never
// blocks on the network: records are added to per-partition batches that a
// background thread sends when `batch_bytes` fill or `linger` passes.
// Thread-safe: Send, Flush and Close may be called from any thread. Callbacks
// run on the producer's I/O thread and must not block.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "brook/types.h"

namespace brook::client {

struct ProducerConfig {
  std::string nameservers;  // "HOST:PORT,..."; empty: DefaultNameservers()
  int acks = 1;             // 0, 1 or -1 (all)
  std::chrono::milliseconds linger{5};
  size_t batch_bytes = 256 * 1024;           // per partition batch, before compression
  size_t buffer_memory = 64 * 1024 * 1024;   // records buffered and not yet acknowledged
  CompressionType compression = CompressionType::kZstd;
  int max_in_flight = 5;                     // produce requests per connection
  // Retriable errors are retried with exponential back-off until
  // delivery_timeout passes (then the callback gets the last error).
  std::chrono::milliseconds retry_backoff{100};
  std::chrono::milliseconds retry_backoff_max{1000};
  std::chrono::milliseconds delivery_timeout{120000};
  std::chrono::milliseconds request_timeout{30000};
  // How long Send blocks when buffer_memory is full before failing the
  // record with ResourceExhausted. 0: fail at once.
  std::chrono::milliseconds max_block{60000};
  // Producer id, epoch and base sequence written into every batch (-1: none;
  // the idempotent producer of a later issue assigns them).
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
};

class Producer {
 public:
  using Callback = std::function<void(const absl::StatusOr<RecordMetadata>&)>;

  static absl::StatusOr<std::unique_ptr<Producer>> Create(ProducerConfig config);
  virtual ~Producer() = default;  // Close()s with no timeout if still open

  // Queues `record`; `callback` gets its metadata once acknowledged (or at
  // once with acks=0 when sent) or the error. Records of one partition are
  // acknowledged in the order sent.
  virtual void Send(ProducerRecord record, Callback callback) = 0;
  std::future<absl::StatusOr<RecordMetadata>> Send(ProducerRecord record);

  // Sends everything buffered and waits until every record sent before the
  // call is acknowledged or failed.
  virtual absl::Status Flush(std::chrono::milliseconds timeout = std::chrono::hours(1)) = 0;

  // Flushes, then stops. Records still unsent at the timeout fail.
  virtual absl::Status Close(std::chrono::milliseconds timeout = std::chrono::hours(1)) = 0;

  // Number of partitions of a topic (fetching its route if needed).
  virtual absl::StatusOr<int32_t> PartitionCount(const std::string& topic) = 0;
};

}  // namespace brook::client
