// FaultInjectionFileSystem implementation: a File wrapper that consults the
// file system's fault switches before delegating to the real file.
#include "tests/unit/storage/fault_fs.h"

#include <errno.h>
#include <string.h>

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace brook::storage::testing {

namespace {

absl::Status Injected(const char* op, const std::string& path, int err) {
  std::string msg = absl::StrCat("injected: ", op, " ", path, ": ", strerror(err));
  if (err == ENOSPC) {
    return WithErrorCode(absl::ResourceExhaustedError(msg), proto::ErrorCode::STORAGE_FULL);
  }
  return MakeError(proto::ErrorCode::STORAGE_ERROR, msg);
}

}  // namespace

class FaultFile final : public File {
 public:
  FaultFile(FaultInjectionFileSystem* fs, std::string path, std::unique_ptr<File> inner,
            std::shared_ptr<FaultInjectionFileSystem::FileState> state)
      : fs_(fs), path_(std::move(path)), inner_(std::move(inner)), state_(std::move(state)) {}

  absl::Status Append(std::span<const uint8_t> data) override {
    if (fs_->MaybeCrash()) return Injected("append", path_, EIO);
    absl::MutexLock l(&state_->mu);
    if (fs_->crashed()) return Injected("append", path_, EIO);
    if (fs_->TakeWriteFault()) {
      inner_->Append(data.first(data.size() / 2)).IgnoreError();
      return Injected("append", path_, EIO);
    }
    if (!fs_->Reserve(data.size())) return Injected("append", path_, ENOSPC);
    return inner_->Append(data);
  }

  absl::Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    if (fs_->MaybeCrash()) return Injected("pwrite", path_, EIO);
    absl::MutexLock l(&state_->mu);
    if (fs_->crashed()) return Injected("pwrite", path_, EIO);
    if (fs_->TakeWriteFault()) return Injected("pwrite", path_, EIO);
    uint64_t end = offset + data.size();
    uint64_t grow = end > inner_->Size() ? end - inner_->Size() : 0;
    if (!fs_->Reserve(grow)) return Injected("pwrite", path_, ENOSPC);
    return inner_->PWrite(offset, data);
  }

  absl::StatusOr<size_t> PRead(uint64_t offset, std::span<uint8_t> out) const override {
    return inner_->PRead(offset, out);
  }

  absl::Status Sync() override {
    if (fs_->MaybeCrash()) return Injected("fdatasync", path_, EIO);
    uint64_t size;
    {
      absl::MutexLock l(&state_->mu);
      if (fs_->crashed()) return Injected("fdatasync", path_, EIO);
      if (fs_->TakeSyncFault()) return Injected("fdatasync", path_, EIO);
      size = inner_->Size();
    }
    absl::Status s = inner_->Sync();
    if (!s.ok()) return s;
    absl::MutexLock l(&state_->mu);
    if (fs_->crashed()) return Injected("fdatasync", path_, EIO);
    fs_->sync_count_.fetch_add(1);
    // Concurrent Syncs may finish out of order: the durable size only grows,
    // except that it never exceeds the file (a truncation since the capture).
    state_->synced = std::min(std::max(state_->synced, size), inner_->Size());
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    if (fs_->MaybeCrash()) return Injected("ftruncate", path_, EIO);
    absl::MutexLock l(&state_->mu);
    if (fs_->crashed()) return Injected("ftruncate", path_, EIO);
    uint64_t old = inner_->Size();
    absl::Status s = inner_->Truncate(size);
    if (s.ok() && size < old) fs_->Release(old - size);
    // Modelled as durable at once (the log syncs after truncating anyway).
    if (s.ok()) state_->synced = std::min(state_->synced, size);
    return s;
  }

  uint64_t Size() const override { return inner_->Size(); }
  absl::Status Close() override { return inner_->Close(); }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::string path_;
  std::unique_ptr<File> inner_;
  std::shared_ptr<FaultInjectionFileSystem::FileState> state_;
};

void FaultInjectionFileSystem::FailNextWrites(int n) {
  absl::MutexLock l(&mu_);
  fail_writes_ = n;
}

void FaultInjectionFileSystem::FailNextRename() {
  absl::MutexLock l(&mu_);
  fail_rename_ = true;
}

void FaultInjectionFileSystem::CrashAfterOps(int n) {
  absl::MutexLock l(&mu_);
  crash_after_ = n;
}

bool FaultInjectionFileSystem::MaybeCrash() {
  {
    absl::MutexLock l(&mu_);
    if (crash_after_ < 0) return false;
    if (crash_after_ > 0) {
      --crash_after_;
      return false;
    }
    crash_after_ = -1;
  }
  Crash(0);
  return true;
}

void FaultInjectionFileSystem::FailNextSync() {
  absl::MutexLock l(&mu_);
  fail_sync_ = true;
}

void FaultInjectionFileSystem::SetSpaceLimit(int64_t bytes) {
  absl::MutexLock l(&mu_);
  space_ = bytes;
}

bool FaultInjectionFileSystem::TakeWriteFault() {
  absl::MutexLock l(&mu_);
  if (fail_writes_ <= 0) return false;
  --fail_writes_;
  return true;
}

bool FaultInjectionFileSystem::TakeSyncFault() {
  absl::MutexLock l(&mu_);
  bool f = fail_sync_;
  fail_sync_ = false;
  return f;
}

bool FaultInjectionFileSystem::Reserve(uint64_t n) {
  absl::MutexLock l(&mu_);
  if (space_ < 0) return true;
  if (n > static_cast<uint64_t>(space_)) return false;
  space_ -= static_cast<int64_t>(n);
  return true;
}

void FaultInjectionFileSystem::Release(uint64_t n) {
  absl::MutexLock l(&mu_);
  if (space_ >= 0) space_ += static_cast<int64_t>(n);
}

void FaultInjectionFileSystem::Crash(uint32_t seed) {
  crashed_.store(true);
  std::mt19937 rng(seed);
  absl::flat_hash_map<std::string, std::shared_ptr<FileState>> files;
  {
    absl::MutexLock l(&mu_);
    files = files_;
  }
  for (auto& [path, state] : files) {
    absl::MutexLock l(&state->mu);
    if (!base_->Exists(path)) continue;
    auto f = base_->Open(path);
    if (!f.ok()) continue;
    const uint64_t size = (*f)->Size();
    if (size <= state->synced) continue;
    uint64_t keep = seed == 0 ? 0 : rng() % (size - state->synced + 1);
    (*f)->Truncate(state->synced + keep).IgnoreError();
  }
}

void FaultInjectionFileSystem::Restart() {
  absl::MutexLock l(&mu_);
  fail_writes_ = 0;
  fail_sync_ = false;
  fail_rename_ = false;
  crash_after_ = -1;
  crashed_.store(false);
}

absl::StatusOr<std::unique_ptr<File>> FaultInjectionFileSystem::Open(const std::string& path) {
  if (crashed()) return Injected("open", path, EIO);
  auto inner = base_->Open(path);
  if (!inner.ok()) return inner.status();
  std::shared_ptr<FileState> state;
  {
    absl::MutexLock l(&mu_);
    auto& slot = files_[path];
    if (slot == nullptr) {
      slot = std::make_shared<FileState>();
      slot->synced = (*inner)->Size();
    }
    state = slot;
  }
  return std::unique_ptr<File>(new FaultFile(this, path, std::move(*inner), std::move(state)));
}

absl::StatusOr<std::unique_ptr<File>> FaultInjectionFileSystem::OpenReadOnly(
    const std::string& path) {
  return base_->OpenReadOnly(path);
}

absl::Status FaultInjectionFileSystem::CreateDirs(const std::string& path) {
  if (crashed()) return Injected("mkdir", path, EIO);
  return base_->CreateDirs(path);
}

absl::StatusOr<std::vector<std::string>> FaultInjectionFileSystem::ListDir(
    const std::string& path) {
  return base_->ListDir(path);
}

bool FaultInjectionFileSystem::Exists(const std::string& path) { return base_->Exists(path); }

absl::Status FaultInjectionFileSystem::Remove(const std::string& path) {
  if (MaybeCrash() || crashed()) return Injected("unlink", path, EIO);
  absl::Status s = base_->Remove(path);
  if (s.ok()) {
    absl::MutexLock l(&mu_);
    files_.erase(path);
  }
  return s;
}

absl::Status FaultInjectionFileSystem::RemoveAll(const std::string& path) {
  if (crashed()) return Injected("remove_all", path, EIO);
  absl::Status s = base_->RemoveAll(path);
  absl::MutexLock l(&mu_);
  for (auto it = files_.begin(); it != files_.end();) {
    auto cur = it++;
    if (cur->first.rfind(path, 0) == 0) files_.erase(cur);
  }
  return s;
}

absl::Status FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  if (MaybeCrash() || crashed()) return Injected("rename", from, EIO);
  {
    absl::MutexLock l(&mu_);
    if (fail_rename_) {
      fail_rename_ = false;
      return Injected("rename", from, EIO);
    }
  }
  absl::Status s = base_->Rename(from, to);
  if (s.ok()) {
    absl::MutexLock l(&mu_);
    auto it = files_.find(from);
    if (it != files_.end()) {
      std::shared_ptr<FileState> moved = it->second;
      files_.erase(it);
      files_[to] = std::move(moved);
    } else {
      files_.erase(to);
    }
  }
  return s;
}

absl::Status FaultInjectionFileSystem::SyncDir(const std::string& path) {
  if (MaybeCrash() || crashed()) return Injected("fsync dir", path, EIO);
  return base_->SyncDir(path);
}

}  // namespace brook::storage::testing
