// LogCleaner: one background thread that periodically compacts the logs of
// compacted topics (PartitionLog::Compact), so that cleaning, which reads and
// rewrites whole segments, never runs on an io thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "broker/storage/log.h"

namespace brook::storage {

class LogCleaner {
 public:
  // One log to consider in a pass.
  struct Target {
    std::string name;                // for log lines and the result callback
    std::shared_ptr<const void> owner;  // keeps `log` alive during the pass
    PartitionLog* log = nullptr;
    std::optional<Offset> limit;     // Compact's limit (the high watermark)
  };
  struct Options {
    int64_t interval_ms = 15000;
    // The logs to consider, called on the cleaner thread at each pass. Logs
    // whose cleanup policy is delete are skipped.
    std::function<std::vector<Target>()> targets;
    // Called on the cleaner thread after each Compact that did not fail.
    std::function<void(const Target&, const CompactionStats&)> on_result;
    // Wall clock in ms (null: the system clock).
    std::function<int64_t()> now_ms;
  };

  explicit LogCleaner(Options options);
  ~LogCleaner();  // calls Stop
  LogCleaner(const LogCleaner&) = delete;
  LogCleaner& operator=(const LogCleaner&) = delete;

  // Starts the thread; the first pass runs one interval after Start.
  void Start();
  // Stops and joins (an in-progress Compact finishes first). Idempotent.
  void Stop();
  // Runs one pass on the calling thread (tests); returns how many logs were
  // cleaned.
  int RunOnce();

 private:
  Options options_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace brook::storage
