// PosixFileSystem: the real file system behind DefaultFileSystem(), plus the
// WriteFileAtomic / ReadWholeFile helpers every storage file goes through.
#include "broker/storage/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace brook::storage {

namespace {

// Maps an errno from operation `op` on `path` to a tagged status: ENOSPC and
// EDQUOT are STORAGE_FULL (retriable), everything else STORAGE_ERROR.
absl::Status ErrnoStatus(const char* op, const std::string& path, int err) {
  std::string msg = absl::StrCat(op, " ", path, ": ", strerror(err));
  if (err == ENOSPC || err == EDQUOT) {
    return WithErrorCode(absl::ResourceExhaustedError(msg), proto::ErrorCode::STORAGE_FULL);
  }
  if (err == ENOENT) {
    return WithErrorCode(absl::NotFoundError(msg), proto::ErrorCode::STORAGE_ERROR);
  }
  return WithErrorCode(absl::DataLossError(msg), proto::ErrorCode::STORAGE_ERROR);
}

class PosixFile final : public File {
 public:
  PosixFile(std::string path, int fd, uint64_t size, bool writable)
      : path_(std::move(path)), fd_(fd), size_(size), writable_(writable) {}
  ~PosixFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  absl::Status Append(std::span<const uint8_t> data) override {
    if (!writable_) return ErrnoStatus("append", path_, EBADF);
    const uint8_t* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(size_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("write", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
      size_ += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status PWrite(uint64_t offset, std::span<const uint8_t> data) override {
    if (!writable_) return ErrnoStatus("pwrite", path_, EBADF);
    const uint8_t* p = data.data();
    size_t left = data.size();
    uint64_t off = offset;
    while (left > 0) {
      ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("pwrite", path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
      off += static_cast<uint64_t>(n);
      if (off > size_) size_ = off;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> PRead(uint64_t offset, std::span<uint8_t> out) const override {
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                          static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("read", path_, errno);
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  absl::Status Sync() override {
    while (::fdatasync(fd_) != 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("fdatasync", path_, errno);
    }
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("ftruncate", path_, errno);
    }
    size_ = size;
    return absl::OkStatus();
  }

  uint64_t Size() const override { return size_; }

  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return ErrnoStatus("close", path_, errno);
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  int fd_;
  uint64_t size_;
  const bool writable_;
};

absl::StatusOr<std::unique_ptr<File>> OpenWithFlags(const std::string& path, int flags,
                                                    bool writable) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus("fstat", path, err);
  }
  return std::unique_ptr<File>(
      new PosixFile(path, fd, static_cast<uint64_t>(st.st_size), writable));
}

class PosixFileSystem final : public FileSystem {
 public:
  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path) override {
    return OpenWithFlags(path, O_RDWR | O_CREAT | O_CLOEXEC, true);
  }

  absl::StatusOr<std::unique_ptr<File>> OpenReadOnly(const std::string& path) override {
    return OpenWithFlags(path, O_RDONLY | O_CLOEXEC, false);
  }

  absl::Status CreateDirs(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return ErrnoStatus("mkdir", path, ec.value());
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return ErrnoStatus("opendir", path, errno);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return ErrnoStatus("readdir", path, err);
    return names;
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  absl::Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus("unlink", path, errno);
    return absl::OkStatus();
  }

  absl::Status RemoveAll(const std::string& path) override {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) return ErrnoStatus("remove_all", path, ec.value());
    return absl::OkStatus();
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus("rename", absl::StrCat(from, " -> ", to), errno);
    }
    return absl::OkStatus();
  }

  absl::Status SyncDir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open dir", path, errno);
    int rc;
    do {
      rc = ::fsync(fd);
    } while (rc != 0 && errno == EINTR);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoStatus("fsync dir", path, err);
    return absl::OkStatus();
  }
};

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

FileSystem* DefaultFileSystem() {
  static FileSystem* const fs = new PosixFileSystem();
  return fs;
}

absl::Status WriteFileAtomic(FileSystem* fs, const std::string& path,
                             std::span<const uint8_t> data) {
  const std::string tmp = path + ".tmp";
  auto write_tmp = [&]() -> absl::Status {
    auto file = fs->Open(tmp);
    if (!file.ok()) return file.status();
    absl::Status s = (*file)->Truncate(0);
    if (s.ok()) s = (*file)->Append(data);
    if (s.ok()) s = (*file)->Sync();
    absl::Status c = (*file)->Close();
    if (s.ok()) s = c;
    return s;
  };
  absl::Status s = write_tmp();
  if (s.ok()) s = fs->Rename(tmp, path);
  if (!s.ok()) {
    if (fs->Exists(tmp)) fs->Remove(tmp).IgnoreError();
    return s;
  }
  return fs->SyncDir(DirName(path));
}

absl::StatusOr<std::vector<uint8_t>> ReadWholeFile(FileSystem* fs, const std::string& path) {
  auto file = fs->OpenReadOnly(path);
  if (!file.ok()) return file.status();
  std::vector<uint8_t> data((*file)->Size());
  auto n = (*file)->PRead(0, std::span<uint8_t>(data));
  if (!n.ok()) return n.status();
  data.resize(*n);
  return data;
}

}  // namespace brook::storage
