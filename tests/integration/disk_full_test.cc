// Integration test of a full disk against the real brook-server: its data
// directory is a small tmpfs that a filler file fills up. Produces must then
// fail with the retriable STORAGE_FULL (not STORAGE_ERROR), the server keeps
// serving metadata and fetches, writes resume once space is freed, and every
// acknowledged batch is there exactly once, in order, before and after a
// kill -9 restart. Needs root (mount(2)); refuses to pass silently otherwise.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <future>
#include <map>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/producer.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using client::ProducerRecord;
using client::RecordMetadata;
using namespace std::chrono_literals;

const int64_t kEpochMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch()).count();

// An uncompressed batch of `records` records with ~`value_bytes` of
// pseudo-random (incompressible) value each, so its size is predictable.
std::vector<uint8_t> MakeBatch(int n, int records, size_t value_bytes) {
  std::mt19937_64 rng(static_cast<uint64_t>(n) * 7919 + 1);
  RecordBatchBuilder::Options o;
  o.compression = Compression::kNone;
  RecordBatchBuilder b(o);
  for (int i = 0; i < records; ++i) {
    std::string value(value_bytes, '\0');
    for (auto& c : value) c = static_cast<char>('a' + rng() % 26);
    b.Append(kEpochMs + n, absl::StrCat("k", n, "-", i), value);
  }
  return b.Build();
}

std::vector<uint8_t> AsStored(std::vector<uint8_t> batch, int64_t base_offset, int32_t epoch) {
  SetBaseOffset(batch, base_offset);
  SetPartitionLeaderEpoch(batch, epoch);
  return batch;
}

// Mounts a tmpfs of `size` over `dir`; the destructor detaches it (lazily, so
// it also works while the server still has files open).
class TmpfsMount {
 public:
  TmpfsMount(const std::string& dir, const std::string& size) : dir_(dir) {
    std::string opts = "size=" + size;
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = absl::StrCat("mount -t tmpfs -o ", opts, " tmpfs ", dir,
                            " failed: ", std::strerror(errno));
    }
  }
  ~TmpfsMount() {
    if (mounted_ && umount2(dir_.c_str(), MNT_DETACH) != 0) {
      std::cerr << "umount " << dir_ << " failed: " << std::strerror(errno) << "\n";
    }
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

uint64_t FreeBytes(const std::string& dir) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// Writes `path` until the file system is full, then cuts it back so that
// about `leave` bytes stay free. Returns the filler's final size.
int64_t FillLeaving(const std::string& path, uint64_t leave) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  std::vector<char> chunk(64 * 1024, 'f');
  int64_t size = 0;
  while (true) {
    ssize_t n = write(fd, chunk.data(), chunk.size());
    if (n <= 0) break;
    size += n;
  }
  int64_t keep = std::max<int64_t>(0, size - static_cast<int64_t>(leave));
  if (ftruncate(fd, keep) != 0) keep = -1;
  close(fd);
  return keep;
}

// GET `path` from an HTTP server; the whole response ("" on error).
std::string HttpGet(const Address& a, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(a.port);
  inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "not root (euid " << geteuid() << "): cannot mount the tmpfs this test needs";
    }
  }
  // Starts brook-server with its data directory on a fresh 8 MiB tmpfs.
  void StartServerOnTmpfs() {
    server_ = std::make_unique<ServerProcess>();
    mount_ = std::make_unique<TmpfsMount>(server_->data_dir(), "8m");
    ASSERT_TRUE(mount_->mounted()) << mount_->error()
                                   << " (running as root; CAP_SYS_ADMIN is required)";
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
  }
  void TearDown() override {
    if (HasFailure() && server_ != nullptr) std::cerr << "server log:\n" << server_->LogTail();
    // The mount goes before the server directory is removed.
    mount_.reset();
    server_.reset();
  }

  // Reads the whole partition; checks the batches are contiguous and intact
  // and that exactly the acknowledged batches are stored, byte for byte.
  void VerifyLog(rpc::RpcClient& broker, const std::map<int64_t, std::vector<uint8_t>>& acked,
                 int32_t epoch, int64_t expected_end) {
    std::map<int64_t, std::vector<uint8_t>> stored;
    int64_t offset = 0;
    int64_t hw = -1;
    for (int guard = 0; guard < 10000; ++guard) {
      auto f = Fetch(broker, "full", 0, offset, 0, 0, 1 << 20);
      ASSERT_TRUE(f.ok()) << f.status();
      ASSERT_EQ(f->response.partitions_size(), 1);
      ASSERT_EQ(f->response.partitions(0).error_code(), proto::NONE)
          << f->response.partitions(0).error_message();
      hw = f->response.partitions(0).high_watermark();
      if (f->payload.empty()) break;
      auto batches = SplitBatches(f->payload);
      ASSERT_TRUE(batches.ok()) << batches.status();
      for (const auto& b : *batches) {
        ASSERT_EQ(b.base_offset(), offset) << "offsets are not contiguous";
        ASSERT_TRUE(b.VerifyCrc().ok()) << "batch at " << offset;
        ASSERT_TRUE(stored.emplace(b.base_offset(),
                                   std::vector<uint8_t>(b.bytes().begin(), b.bytes().end()))
                        .second);
        offset = b.last_offset() + 1;
      }
    }
    EXPECT_EQ(offset, hw);
    EXPECT_EQ(hw, expected_end);
    // Exactly the acknowledged batches: none lost, none duplicated, nothing
    // that was refused with STORAGE_FULL.
    ASSERT_EQ(stored.size(), acked.size());
    for (const auto& [base, batch] : acked) {
      auto it = stored.find(base);
      ASSERT_NE(it, stored.end()) << "acknowledged batch at " << base << " is missing";
      EXPECT_EQ(it->second, AsStored(batch, base, epoch)) << "batch at " << base;
    }
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TmpfsMount> mount_;
};

// The parameter is how much space (KiB) the filler leaves: with 4 KiB pages
// 320 and 400 make ENOSPC hit a segment append, 332 and 336 the index files
// of a segment roll (the message of the refusal is printed; either way the
// assertions are the same).
class DiskFullSpaceTest : public DiskFullTest, public ::testing::WithParamInterface<int> {};

TEST_P(DiskFullSpaceTest, StorageFullIsRetriableLosesNothingAndWritesResume) {
  StartServerOnTmpfs();
  if (HasFatalFailure()) return;

  rpc::IoThread io;
  auto coordinator = Connect(io, server_->coordinator());
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  proto::TopicConfig config;
  config.set_flush_policy(proto::FLUSH_ALWAYS);
  config.set_segment_bytes(256 * 1024);  // rolls (index files, new segment) near the full disk
  auto desc = CreateTopic(**coordinator, "full", 1, config);
  ASSERT_TRUE(desc.ok()) << desc.status();
  const int32_t epoch = desc->partitions(0).leader_epoch();
  auto broker = Connect(io, server_->broker());
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE(WaitForTopic(**broker, "full", 1).ok());

  std::map<int64_t, std::vector<uint8_t>> acked;  // base offset -> batch as sent
  int64_t next_offset = 0;
  int n = 0;
  std::string last_error;
  auto produce = [&](const std::vector<uint8_t>& batch) -> proto::ErrorCode {
    auto r = Produce(**broker, "full", 0, batch);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return proto::UNKNOWN;
    EXPECT_EQ(r->partitions_size(), 1);
    if (r->partitions_size() != 1) return proto::UNKNOWN;
    const auto& p = r->partitions(0);
    if (p.error_code() == proto::NONE) {
      EXPECT_EQ(p.base_offset(), next_offset) << "acknowledged offsets must be contiguous";
      acked[p.base_offset()] = batch;
      next_offset = p.base_offset() + 4;
    } else {
      EXPECT_EQ(p.base_offset(), -1);
      last_error = p.error_message();
    }
    return p.error_code();
  };

  // Some data before the disk fills up.
  for (int i = 0; i < 10; ++i) ASSERT_EQ(produce(MakeBatch(n++, 4, 4096)), proto::NONE);

  const std::string filler = server_->data_dir() + "/filler";
  ASSERT_GT(FillLeaving(filler, static_cast<uint64_t>(GetParam()) * 1024), 0) << "cannot write the filler file";
  const uint64_t free_after_fill = FreeBytes(server_->data_dir());
  ASSERT_LT(free_after_fill, 1u << 20) << "filler left too much space";

  // Fill the rest through the broker: ~16 KiB batches, so a few dozen fit.
  proto::ErrorCode code = proto::NONE;
  std::vector<uint8_t> refused;
  for (int i = 0; i < 200 && code == proto::NONE; ++i) {
    std::vector<uint8_t> batch = MakeBatch(n++, 4, 4096);
    code = produce(batch);
    if (code != proto::NONE) refused = batch;
  }
  ASSERT_EQ(code, proto::STORAGE_FULL) << "expected STORAGE_FULL once the disk is full, got "
                                       << proto::ErrorCode_Name(code);
  EXPECT_TRUE(IsRetriable(code));
  std::cerr << "STORAGE_FULL after " << acked.size() << " acknowledged batches (offset "
            << next_offset << "); " << free_after_fill << " bytes were free after the filler: "
            << last_error << "\n";
  ASSERT_GT(next_offset, 40) << "the broker refused writes before the disk was full";
  // Still full, still the same retriable error (the log was not failed).
  for (int i = 0; i < 3; ++i) EXPECT_EQ(produce(MakeBatch(n++, 4, 4096)), proto::STORAGE_FULL);

  // Another connection is served: metadata, fetch, list offsets.
  {
    auto other = Connect(io, server_->broker());
    ASSERT_TRUE(other.ok()) << other.status();
    proto::MetadataRequest mreq;
    mreq.add_topics("full");
    proto::MetadataResponse mresp;
    auto m = (*other)->CallSync(proto::API_METADATA, 0, mreq, {}, &mresp, 5s);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(mresp.topics_size(), 1);
    EXPECT_EQ(mresp.topics(0).error_code(), proto::NONE);
    auto f = Fetch(**other, "full", 0, 0);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->response.partitions(0).error_code(), proto::NONE);
    EXPECT_EQ(f->response.partitions(0).high_watermark(), next_offset);
    EXPECT_FALSE(f->payload.empty());
    proto::ListOffsetsRequest lreq;
    auto* lp = lreq.add_partitions();
    lp->set_topic("full");
    lp->set_partition(0);
    lp->set_timestamp(-1);
    proto::ListOffsetsResponse lresp;
    auto l = (*other)->CallSync(proto::API_LIST_OFFSETS, 0, lreq, {}, &lresp, 5s);
    ASSERT_TRUE(l.ok()) << l.status();
    ASSERT_EQ(lresp.partitions_size(), 1);
    EXPECT_EQ(lresp.partitions(0).error_code(), proto::NONE);
    EXPECT_EQ(lresp.partitions(0).offset(), next_offset);
  }
  VerifyLog(**broker, acked, epoch, next_offset);

  // Free the space: the refused batch goes through on retry, and more after it.
  ASSERT_EQ(unlink(filler.c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(produce(refused), proto::NONE);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(produce(MakeBatch(n++, 4, 4096)), proto::NONE);
  VerifyLog(**broker, acked, epoch, next_offset);
  if (HasFailure()) return;

  // kill -9 and restart on the same (still mounted) data directory.
  (*broker)->Close();
  (*coordinator)->Close();
  ASSERT_TRUE(server_->Restart().ok()) << server_->LogTail();
  auto broker2 = Connect(io, server_->broker());
  ASSERT_TRUE(broker2.ok()) << broker2.status();
  ASSERT_TRUE(WaitForTopic(**broker2, "full", 1).ok()) << server_->LogTail();
  VerifyLog(**broker2, acked, epoch, next_offset);
  // And it still takes writes.
  std::vector<uint8_t> last = MakeBatch(n++, 4, 4096);
  auto r = Produce(**broker2, "full", 0, last);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->partitions(0).error_code(), proto::NONE);
  EXPECT_EQ(r->partitions(0).base_offset(), next_offset);
  EXPECT_EQ(server_->Terminate(), 0) << server_->LogTail();
}

// The real Producer treats STORAGE_FULL as retriable: records sent while
// the disk is full stay pending (no error), and are delivered once space is
// freed, exactly once and in order.
TEST_F(DiskFullTest, ProducerRetriesThroughAFullDisk) {
  StartServerOnTmpfs();
  if (HasFatalFailure()) return;
  rpc::IoThread io;
  auto coordinator = Connect(io, server_->coordinator());
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  proto::TopicConfig config;
  config.set_flush_policy(proto::FLUSH_ALWAYS);
  auto desc = CreateTopic(**coordinator, "full", 1, config);
  ASSERT_TRUE(desc.ok()) << desc.status();
  auto broker = Connect(io, server_->broker());
  ASSERT_TRUE(broker.ok()) << broker.status();
  ASSERT_TRUE(WaitForTopic(**broker, "full", 1).ok());

  const std::string filler = server_->data_dir() + "/filler";
  ASSERT_GT(FillLeaving(filler, 0), 0) << "cannot write the filler file";

  client::ProducerConfig pc;
  pc.nameservers = server_->nameserver().ToString();
  pc.acks = 1;
  pc.linger = std::chrono::milliseconds(1);
  pc.compression = client::CompressionType::kNone;
  pc.max_in_flight = 1;  // retries must not reorder
  pc.retry_backoff = std::chrono::milliseconds(20);
  pc.retry_backoff_max = std::chrono::milliseconds(200);
  pc.delivery_timeout = std::chrono::seconds(60);
  pc.request_timeout = std::chrono::seconds(10);
  auto producer = client::Producer::Create(pc);
  ASSERT_TRUE(producer.ok()) << producer.status();

  // 80 records of 8 KiB: about 640 KiB, over four times the free space.
  constexpr int kRecords = 80;
  std::mt19937_64 rng(42);
  std::vector<std::string> values;
  std::vector<std::future<absl::StatusOr<RecordMetadata>>> futures;
  for (int i = 0; i < kRecords; ++i) {
    std::string v = absl::StrCat("r", i, ":");
    v.resize(8192);
    for (size_t j = 8; j < v.size(); ++j) v[j] = static_cast<char>('a' + rng() % 26);
    values.push_back(v);
    ProducerRecord r;
    r.topic = "full";
    r.partition = 0;
    r.value = v;
    futures.push_back((*producer)->Send(std::move(r)));
  }
  // While the disk is full every record stays pending (none fails), the
  // broker has been refusing the producer's requests with STORAGE_FULL, and a
  // direct produce gets STORAGE_FULL too.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_NE(futures[i].wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "record " << i << " completed on a full disk: " << futures[i].get().status();
  }
  auto direct = Produce(**broker, "full", 0, MakeBatch(1000, 4, 4096));
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->partitions(0).error_code(), proto::STORAGE_FULL);
  const std::string metrics = HttpGet(server_->admin(), "/metrics");
  const std::string counter = "brook_errors_total{api=\"produce\",code=\"STORAGE_FULL\"} ";
  size_t at = metrics.find(counter);
  ASSERT_NE(at, std::string::npos) << "no STORAGE_FULL refusals counted:\n" << metrics;
  EXPECT_GE(std::atof(metrics.c_str() + at + counter.size()), 2.0)
      << "the producer did not retry against the full disk";

  ASSERT_EQ(unlink(filler.c_str()), 0) << std::strerror(errno);
  ASSERT_TRUE((*producer)->Flush(std::chrono::seconds(30)).ok());
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_EQ(futures[i].wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto md = futures[i].get();
    ASSERT_TRUE(md.ok()) << "record " << i << ": " << md.status();
    EXPECT_EQ(md->offset, i) << "record " << i;
  }
  EXPECT_TRUE((*producer)->Close(std::chrono::seconds(10)).ok());

  // Read back: every value once, in send order, offsets 0..kRecords-1.
  std::vector<std::string> got;
  int64_t offset = 0;
  for (int guard = 0; guard < 1000 && offset < kRecords; ++guard) {
    auto f = Fetch(**broker, "full", 0, offset, 0, 0, 1 << 20);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_EQ(f->response.partitions(0).error_code(), proto::NONE);
    auto batches = SplitBatches(f->payload);
    ASSERT_TRUE(batches.ok()) << batches.status();
    if (batches->empty()) break;
    RecordReader reader;
    for (const auto& b : *batches) {
      std::vector<RecordView> records;
      ASSERT_TRUE(reader.Read(b, &records).ok());
      for (const auto& r : records) {
        if (r.offset < offset) continue;
        ASSERT_EQ(r.offset, offset);
        ASSERT_TRUE(r.value.has_value());
        got.emplace_back(*r.value);
        ++offset;
      }
    }
  }
  ASSERT_EQ(got.size(), values.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(got[i] == values[i]) << "record " << i;
  auto end = Fetch(**broker, "full", 0, 0);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->response.partitions(0).high_watermark(), kRecords);
  EXPECT_EQ(server_->Terminate(), 0) << server_->LogTail();
}

INSTANTIATE_TEST_SUITE_P(FreeSpace, DiskFullSpaceTest, ::testing::Values(320, 332, 336, 400));

}  // namespace
}  // namespace brook::testing
