// The file-system interface every storage file access goes through, so that
// tests can inject faults (tests/unit/storage/fault_fs.h). Errors: ENOSPC is
// ResourceExhausted tagged STORAGE_FULL; other I/O errors are tagged
// STORAGE_ERROR (see common/errors.h).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace brook::storage {

// One open file. Not thread-safe except that PRead and Sync may run
// concurrently with anything else (the flusher fsyncs while appends go on).
class File {
 public:
  virtual ~File() = default;
  // Writes at the end of the file. A failed append may have written a prefix;
  // callers truncate back to their last known good size.
  virtual absl::Status Append(std::span<const uint8_t> data) = 0;
  virtual absl::Status PWrite(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Reads up to out.size() bytes at `offset`; returns the count (short at EOF).
  virtual absl::StatusOr<size_t> PRead(uint64_t offset, std::span<uint8_t> out) const = 0;
  // fdatasync. A failure is permanent for the caller: data written since the
  // last successful Sync may be lost, and must not be acknowledged.
  virtual absl::Status Sync() = 0;
  virtual absl::Status Truncate(uint64_t size) = 0;
  virtual uint64_t Size() const = 0;
  virtual absl::Status Close() = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Opens for read and write, creating the file if missing.
  virtual absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path) = 0;
  // Opens an existing file read-only; NotFound if missing.
  virtual absl::StatusOr<std::unique_ptr<File>> OpenReadOnly(const std::string& path) = 0;
  virtual absl::Status CreateDirs(const std::string& path) = 0;
  // Names (not paths) of the entries of a directory.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual absl::Status Remove(const std::string& path) = 0;
  virtual absl::Status RemoveAll(const std::string& path) = 0;
  // Atomic replace of `to` (POSIX rename).
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;
  // fsync of a directory, making creations, removals and renames durable.
  virtual absl::Status SyncDir(const std::string& path) = 0;
};

// The real POSIX file system. Thread-safe; never destroyed.
FileSystem* DefaultFileSystem();

// Writes `data` to `path` durably and atomically: temp file, fsync, rename,
// fsync of the directory.
absl::Status WriteFileAtomic(FileSystem* fs, const std::string& path,
                             std::span<const uint8_t> data);
absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(FileSystem* fs, const std::string& path);

}  // namespace brook::storage
