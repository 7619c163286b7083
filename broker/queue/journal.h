// Journal: the durable state of one queue subscription, a file of
// CRC-framed records (layout in docs/queues.md): a snapshot first (topic id,
// config, floor, handled ranges, delivery counts, counters), then events
// (handled ranges, delivery counts, config changes). Compaction rewrites the
// file as a single snapshot (temp file, fsync, rename, directory fsync).
// Recovery stops at the first torn or corrupt record and truncates the file
// there.
//
// JournalSyncer: one thread doing group-commit fsyncs: every waiter queued
// for a journal before a sync starts is answered by that sync.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "broker/queue/subscription.h"
#include "broker/storage/fs.h"

namespace brook::queue {

// What a journal file holds, replayed.
struct JournalContents {
  std::string topic_id;  // the topic incarnation the subscription belongs to
  QueueConfig config;    // the latest config written
  SubscriptionSnapshot snapshot;
  std::vector<JournalEvent> events;  // after the snapshot, in order
  uint64_t valid_bytes = 0;          // the file length up to the last good record
  bool truncated_tail = false;       // a torn or corrupt tail was cut off
};

// Encodings (exposed for tests and fuzzing).
std::vector<uint8_t> EncodeSnapshotRecord(const std::string& topic_id, const QueueConfig& config,
                                          const SubscriptionSnapshot& snapshot);
void AppendEventRecord(const JournalEvent& e, std::vector<uint8_t>* out);
void AppendConfigRecord(const QueueConfig& config, std::vector<uint8_t>* out);
// Parses a whole journal file. DataLoss when even the snapshot is unreadable.
absl::StatusOr<JournalContents> ParseJournal(std::span<const uint8_t> bytes);

// Thread-safe: Append and Sync may run concurrently (Sync works on the
// bytes appended before it started). A failed write or fsync is permanent:
// every later call fails with STORAGE_ERROR.
class Journal {
 public:
  // Replays an existing journal (truncating a torn tail) and opens it for
  // appending. NotFound when there is no file; DataLoss tagged
  // CORRUPT_MESSAGE when not even the snapshot is readable.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(storage::FileSystem* fs, std::string path,
                                                       JournalContents* contents);
  // Creates (or replaces) the journal with one snapshot, durably.
  static absl::StatusOr<std::unique_ptr<Journal>> Create(storage::FileSystem* fs, std::string path,
                                                         const std::string& topic_id,
                                                         const QueueConfig& config,
                                                         const SubscriptionSnapshot& snapshot);
  ~Journal();

  // Buffered appends (the OS may hold them until Sync).
  absl::Status Append(const std::vector<JournalEvent>& events);
  absl::Status AppendConfig(const QueueConfig& config);
  // fdatasync of everything appended so far.
  absl::Status Sync();
  // Replaces the file by a single snapshot, durably. Must not run
  // concurrently with Append (the owner serializes them).
  absl::Status Compact(const std::string& topic_id, const QueueConfig& config,
                       const SubscriptionSnapshot& snapshot);
  uint64_t size() const;
  const std::string& path() const { return path_; }

 private:
  Journal(storage::FileSystem* fs, std::string path, std::shared_ptr<storage::File> file);
  absl::Status Write(const std::vector<uint8_t>& bytes);

  storage::FileSystem* const fs_;
  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<storage::File> file_ ABSL_GUARDED_BY(mu_);
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  // Serializes fsyncs with compaction's file swap.
  absl::Mutex sync_mu_;
};

class JournalSyncer {
 public:
  JournalSyncer();
  ~JournalSyncer();  // answers queued waiters after a last sync, then joins
  JournalSyncer(const JournalSyncer&) = delete;
  JournalSyncer& operator=(const JournalSyncer&) = delete;

  // Runs `done` on the syncer thread once a Sync of `journal` that started
  // after this call has finished (with its status). `done` must not block.
  void WhenDurable(std::shared_ptr<Journal> journal, std::function<void(absl::Status)> done);

 private:
  void Run();
  absl::Mutex mu_;
  std::deque<std::pair<std::shared_ptr<Journal>, std::function<void(absl::Status)>>> queue_
      ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace brook::queue
