// FaultInjectionFileSystem: a FileSystem wrapper for storage tests that can
// fail writes (EIO), fail an fsync, run out of space (ENOSPC), and "crash",
// i.e. drop everything written to a file since its last successful Sync
// (after leveldb's fault_injection_test). Directory operations (create,
// rename, remove) are treated as immediately durable.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "broker/storage/fs.h"

namespace brook::storage::testing {

// Thread-safe.
class FaultInjectionFileSystem final : public FileSystem {
 public:
  explicit FaultInjectionFileSystem(FileSystem* base = DefaultFileSystem()) : base_(base) {}

  // The next `n` Append/PWrite calls write half their data, then fail (EIO).
  void FailNextWrites(int n);
  // The next File::Sync fails (EIO) without syncing anything.
  void FailNextSync();
  // The next Rename fails (EIO) without renaming.
  void FailNextRename();
  // After `n` more mutating operations (file Append/PWrite/Sync/Truncate,
  // Rename, Remove, SyncDir) succeed, the next one crashes the file system
  // (as Crash()) and fails. -1: never.
  void CrashAfterOps(int n);
  // Bytes that may still be written before writes fail with ENOSPC (a write
  // that does not fit writes nothing); shrinking a file gives space back.
  // -1: unlimited.
  void SetSpaceLimit(int64_t bytes);
  // Cuts every file written through this object back to its size at its last
  // successful Sync (files it never saw synced: the size they had when first
  // opened here). Until Restart, every mutating operation fails with EIO.
  void Crash() { Crash(0); }
  // As Crash, but each file keeps a pseudo-random part (from `seed`; 0: none)
  // of its unsynced tail, as when the OS had written back some pages: torn
  // batches at the end of a file.
  void Crash(uint32_t seed);
  void Restart();

  int sync_count() const { return sync_count_.load(); }

  // FileSystem.
  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<File>> OpenReadOnly(const std::string& path) override;
  absl::Status CreateDirs(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  bool Exists(const std::string& path) override;
  absl::Status Remove(const std::string& path) override;
  absl::Status RemoveAll(const std::string& path) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status SyncDir(const std::string& path) override;

  // Per-path durability state, shared by every open File of that path.
  struct FileState {
    absl::Mutex mu;
    uint64_t synced = 0;
  };

 private:
  friend class FaultFile;
  // Consumes one injected write failure if any.
  bool TakeWriteFault();
  bool TakeSyncFault();
  // Counts one mutating operation; true when it is the crash point (the file
  // system has then crashed). Must be called without any FileState lock.
  bool MaybeCrash();
  // Reserves `n` bytes of space; false when the disk is "full".
  bool Reserve(uint64_t n);
  void Release(uint64_t n);
  bool crashed() const { return crashed_.load(); }

  FileSystem* const base_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<FileState>> files_ ABSL_GUARDED_BY(mu_);
  int fail_writes_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_sync_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_rename_ ABSL_GUARDED_BY(mu_) = false;
  int crash_after_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t space_ ABSL_GUARDED_BY(mu_) = -1;
  std::atomic<bool> crashed_{false};
  std::atomic<int> sync_count_{0};
};

}  // namespace brook::storage::testing
