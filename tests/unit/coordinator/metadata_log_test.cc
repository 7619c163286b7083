// LocalMetadataLog: durable append and replay over a real PartitionLog.
#include "coordinator/metadata_log.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace brook::coordinator {
namespace {

class MetadataLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = ::testing::TempDir() + "/metalog-XXXXXX";
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static proto::MetadataRecord Record(int i) {
    proto::MetadataRecord r;
    if (i % 3 == 0) {
      r.mutable_broker()->mutable_broker()->set_broker_id(i);
      r.mutable_broker()->mutable_broker()->set_host("host-" + std::to_string(i));
      r.mutable_broker()->mutable_broker()->set_port(1000 + i);
    } else if (i % 3 == 1) {
      proto::TopicDescription* t = r.mutable_topic()->mutable_topic();
      t->set_name("topic-" + std::to_string(i));
      t->set_topic_id(std::string(32, 'a' + static_cast<char>(i % 6)));
      t->add_partitions()->add_replicas(i);
    } else {
      r.mutable_remove_topic()->set_name("topic-" + std::to_string(i - 1));
    }
    return r;
  }

  std::vector<std::pair<Offset, std::string>> ReplayAll(MetadataLog& log) {
    std::vector<std::pair<Offset, std::string>> out;
    absl::Status s = log.Replay([&](Offset o, const proto::MetadataRecord& r) {
      out.emplace_back(o, r.SerializeAsString());
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  std::string dir_;
};

TEST_F(MetadataLogTest, EmptyLogReplaysNothing) {
  auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, nullptr);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_TRUE(ReplayAll(**log).empty());
  EXPECT_EQ((*log)->end_offset(), Offset(0));
  EXPECT_TRUE((*log)->Close().ok());
}

TEST_F(MetadataLogTest, AppendCloseReopenReplays) {
  std::vector<std::pair<Offset, std::string>> written;
  {
    auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, nullptr);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 50; ++i) {
      auto off = (*log)->Append(Record(i));
      ASSERT_TRUE(off.ok()) << off.status();
      if (!written.empty()) {
        EXPECT_GT(*off, written.back().first);
      }
      written.emplace_back(*off, Record(i).SerializeAsString());
    }
    EXPECT_EQ(ReplayAll(**log), written);
    ASSERT_TRUE((*log)->Close().ok());
  }
  auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, nullptr);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(ReplayAll(**log), written);
  // Appends continue after the replayed records.
  auto off = (*log)->Append(Record(100));
  ASSERT_TRUE(off.ok());
  EXPECT_GT(*off, written.back().first);
  EXPECT_EQ(ReplayAll(**log).size(), written.size() + 1);
  ASSERT_TRUE((*log)->Close().ok());
}

TEST_F(MetadataLogTest, AppendWithFlusherIsDurable) {
  storage::Flusher flusher;
  std::vector<std::pair<Offset, std::string>> written;
  {
    auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, &flusher);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 10; ++i) {
      auto off = (*log)->Append(Record(i));
      ASSERT_TRUE(off.ok()) << off.status();
      written.emplace_back(*off, Record(i).SerializeAsString());
    }
    ASSERT_TRUE((*log)->Close().ok());
  }
  auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, &flusher);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(ReplayAll(**log), written);
  ASSERT_TRUE((*log)->Close().ok());
}

TEST_F(MetadataLogTest, TornTailIsDroppedOnReopen) {
  std::vector<std::pair<Offset, std::string>> written;
  {
    auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, nullptr);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 5; ++i) {
      auto off = (*log)->Append(Record(i));
      ASSERT_TRUE(off.ok()) << off.status();
      written.emplace_back(*off, Record(i).SerializeAsString());
    }
    ASSERT_TRUE((*log)->Close().ok());
  }
  // A crash in the middle of writing the next batch leaves a partial header.
  bool appended = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.path().extension() == ".log") {
      std::ofstream out(entry.path(), std::ios::binary | std::ios::app);
      out.write("\0\0\0\0\0\0\0\x05\0\0\0\x40garbage", 19);
      appended = true;
    }
  }
  ASSERT_TRUE(appended);
  auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, nullptr);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(ReplayAll(**log), written);
  ASSERT_TRUE((*log)->Close().ok());
}

TEST_F(MetadataLogTest, ReplayStopsAtCallbackError) {
  auto log = LocalMetadataLog::Open(storage::DefaultFileSystem(), dir_, nullptr);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*log)->Append(Record(i)).ok());
  int seen = 0;
  absl::Status s = (*log)->Replay([&](Offset, const proto::MetadataRecord&) {
    return ++seen == 2 ? absl::InternalError("stop") : absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(seen, 2);
  ASSERT_TRUE((*log)->Close().ok());
}

}  // namespace
}  // namespace brook::coordinator
