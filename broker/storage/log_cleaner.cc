// The background log cleaner thread.
#include "broker/storage/log_cleaner.h"

#include <chrono>

#include "spdlog/spdlog.h"

namespace brook::storage {

LogCleaner::LogCleaner(Options options) : options_(std::move(options)) {}

LogCleaner::~LogCleaner() { Stop(); }

void LogCleaner::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    absl::MutexLock l(&mu_);
    while (!stop_) {
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(options_.interval_ms))) {
        break;
      }
      mu_.Unlock();
      RunOnce();
      mu_.Lock();
    }
  });
}

void LogCleaner::Stop() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

int LogCleaner::RunOnce() {
  if (!options_.targets) return 0;
  int cleaned = 0;
  for (const Target& t : options_.targets()) {
    if (t.log == nullptr || t.log->config().cleanup_policy == CleanupPolicy::kDelete) continue;
    {
      absl::MutexLock l(&mu_);
      if (stop_) break;
    }
    const int64_t now =
        options_.now_ms ? options_.now_ms()
                        : std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    auto stats = t.log->Compact(now, t.limit);
    if (!stats.ok()) {
      if (!t.log->failed() && !absl::IsFailedPrecondition(stats.status())) {
        spdlog::warn("log cleaner: {}: {}", t.name, stats.status().ToString());
      }
      continue;
    }
    if (stats->cleaned) {
      ++cleaned;
      spdlog::info("log cleaner: {}: cleaned to offset {}: {} record(s) / {} of {} byte(s) "
                   "removed, dirty ratio {:.2f}",
                   t.name, stats->clean_offset.value(), stats->records_removed,
                   stats->bytes_removed, stats->bytes_before, stats->dirty_ratio);
    }
    if (options_.on_result) options_.on_result(t, *stats);
  }
  return cleaned;
}

}  // namespace brook::storage
