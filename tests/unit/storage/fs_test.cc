// PosixFileSystem: file operations, error mapping (ENOSPC via /dev/full),
// atomic whole-file writes.
#include "broker/storage/fs.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/unit/storage/test_util.h"

namespace brook::storage::testing {
namespace {

using proto::ErrorCode;

std::span<const uint8_t> Bytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(PosixFileSystemTest, AppendReadTruncateSync) {
  TempDir dir;
  FileSystem* fs = DefaultFileSystem();
  const std::string path = dir.path() + "/f";
  auto f = fs->Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->Size(), 0u);
  ASSERT_TRUE((*f)->Append(Bytes("hello ")).ok());
  ASSERT_TRUE((*f)->Append(Bytes("world")).ok());
  EXPECT_EQ((*f)->Size(), 11u);
  ASSERT_TRUE((*f)->PWrite(0, Bytes("J")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  std::vector<uint8_t> buf(20);
  auto n = (*f)->PRead(0, std::span<uint8_t>(buf));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 11u);  // short at EOF
  EXPECT_EQ(std::string(buf.begin(), buf.begin() + 11), "Jello world");
  ASSERT_TRUE((*f)->Truncate(5).ok());
  EXPECT_EQ((*f)->Size(), 5u);
  EXPECT_EQ(FileSize(path), 5u);
  ASSERT_TRUE((*f)->Close().ok());
  // Reopening sees the size; read-only files refuse writes.
  auto ro = fs->OpenReadOnly(path);
  ASSERT_TRUE(ro.ok());
  EXPECT_EQ((*ro)->Size(), 5u);
  EXPECT_FALSE((*ro)->Append(Bytes("x")).ok());
}

TEST(PosixFileSystemTest, ErrorsAreTagged) {
  TempDir dir;
  FileSystem* fs = DefaultFileSystem();
  auto missing = fs->OpenReadOnly(dir.path() + "/nope");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("/nope"), absl::string_view::npos);
  auto bad = fs->Open(dir.path() + "/no/such/dir/file");
  EXPECT_EQ(CodeOf(bad.status()), ErrorCode::STORAGE_ERROR);
  // /dev/full fails every write with ENOSPC.
  if (std::filesystem::exists("/dev/full")) {
    auto full = fs->Open("/dev/full");
    ASSERT_TRUE(full.ok()) << full.status();
    absl::Status s = (*full)->Append(Bytes("data"));
    EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
    EXPECT_EQ(CodeOf(s), ErrorCode::STORAGE_FULL);
    EXPECT_NE(s.message().find("/dev/full"), absl::string_view::npos);
  }
}

TEST(PosixFileSystemTest, DirectoryOperations) {
  TempDir dir;
  FileSystem* fs = DefaultFileSystem();
  const std::string sub = dir.path() + "/a/b";
  ASSERT_TRUE(fs->CreateDirs(sub).ok());
  ASSERT_TRUE(fs->Open(sub + "/x").ok());
  ASSERT_TRUE(fs->Open(sub + "/y").ok());
  auto names = fs->ListDir(sub);
  ASSERT_TRUE(names.ok());
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"x", "y"}));
  ASSERT_TRUE(fs->Rename(sub + "/x", sub + "/z").ok());
  EXPECT_FALSE(fs->Exists(sub + "/x"));
  EXPECT_TRUE(fs->Exists(sub + "/z"));
  ASSERT_TRUE(fs->SyncDir(sub).ok());
  ASSERT_TRUE(fs->Remove(sub + "/z").ok());
  EXPECT_FALSE(fs->Remove(sub + "/z").ok());
  ASSERT_TRUE(fs->RemoveAll(dir.path() + "/a").ok());
  EXPECT_FALSE(fs->Exists(sub));
}

TEST(PosixFileSystemTest, WriteFileAtomicReplacesWholeFile) {
  TempDir dir;
  FileSystem* fs = DefaultFileSystem();
  const std::string path = dir.path() + "/cp";
  ASSERT_TRUE(WriteFileAtomic(fs, path, Bytes("a long first version")).ok());
  ASSERT_TRUE(WriteFileAtomic(fs, path, Bytes("v2")).ok());
  auto got = ReadWholeFile(fs, path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(std::string(got->begin(), got->end()), "v2");
  EXPECT_FALSE(fs->Exists(path + ".tmp"));
  EXPECT_TRUE(absl::IsNotFound(ReadWholeFile(fs, dir.path() + "/none").status()));
}

}  // namespace
}  // namespace brook::storage::testing
