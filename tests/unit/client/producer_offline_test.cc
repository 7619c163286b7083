// Producer and Consumer with no reachable server: records fail with a clear
// error after delivery_timeout, Send blocks then fails when buffer_memory is
// full, Flush and Close return, and configuration is validated.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <vector>

#include "brook/consumer.h"
#include "brook/producer.h"
#include "gtest/gtest.h"

namespace brook::client {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A loopback port that nothing listens on (bound, then closed).
std::string ClosedAddress() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

ProducerConfig OfflineConfig() {
  ProducerConfig c;
  c.nameservers = ClosedAddress();
  c.linger = milliseconds(1);
  c.retry_backoff = milliseconds(20);
  c.retry_backoff_max = milliseconds(50);
  c.delivery_timeout = milliseconds(700);
  c.request_timeout = milliseconds(300);
  c.max_block = milliseconds(200);
  return c;
}

ProducerRecord Rec(int32_t partition, size_t bytes = 100) {
  ProducerRecord r;
  r.topic = "offline";
  r.partition = partition;
  r.key = "k";
  r.value = std::string(bytes, 'x');
  return r;
}

TEST(ProducerOfflineTest, RecordsFailAfterDeliveryTimeout) {
  auto p = Producer::Create(OfflineConfig());
  ASSERT_TRUE(p.ok()) << p.status();
  const auto start = Clock::now();
  auto f1 = (*p)->Send(Rec(0));
  auto f2 = (*p)->Send(Rec(0));
  ASSERT_EQ(f1.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto r1 = f1.get();
  auto r2 = f2.get();
  const auto elapsed = Clock::now() - start;
  ASSERT_FALSE(r1.ok());
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r1.status().code(), absl::StatusCode::kDeadlineExceeded) << r1.status();
  EXPECT_NE(r1.status().message().find("delivery_timeout"), std::string::npos) << r1.status();
  // The last error names what went wrong (no route: the name server is down).
  EXPECT_NE(r1.status().message().find("last error"), std::string::npos) << r1.status();
  EXPECT_GE(elapsed, milliseconds(650));
  EXPECT_LT(elapsed, milliseconds(5000));
  EXPECT_TRUE((*p)->Flush(milliseconds(1000)).ok());
  EXPECT_TRUE((*p)->Close(milliseconds(1000)).ok());
}

TEST(ProducerOfflineTest, SendBlocksThenFailsWhenBufferMemoryIsFull) {
  ProducerConfig c = OfflineConfig();
  c.buffer_memory = 1000;  // ~8 records of 100 bytes
  auto p = Producer::Create(c);
  ASSERT_TRUE(p.ok()) << p.status();
  std::vector<std::future<absl::StatusOr<RecordMetadata>>> queued;
  for (int i = 0; i < 8; ++i) queued.push_back((*p)->Send(Rec(0)));
  const auto start = Clock::now();
  auto blocked = (*p)->Send(Rec(0));
  const auto send_time = Clock::now() - start;
  // Send blocked for max_block before failing the record.
  EXPECT_GE(send_time, milliseconds(180));
  ASSERT_EQ(blocked.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto r = blocked.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_NE(r.status().message().find("buffer_memory"), std::string::npos);
  // The queued records expire, which frees the memory again.
  for (auto& f : queued) {
    auto q = f.get();
    EXPECT_EQ(q.status().code(), absl::StatusCode::kDeadlineExceeded) << q.status();
  }
  const auto again = Clock::now();
  auto later = (*p)->Send(Rec(0));
  EXPECT_LT(Clock::now() - again, milliseconds(150));
  EXPECT_EQ(later.get().status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ProducerOfflineTest, UnknownTopicFailsAfterMaxBlock) {
  auto p = Producer::Create(OfflineConfig());
  ASSERT_TRUE(p.ok());
  ProducerRecord r = Rec(0);
  r.partition.reset();  // needs the partition count, which no one can tell
  const auto start = Clock::now();
  auto f = (*p)->Send(std::move(r));
  auto res = f.get();
  EXPECT_GE(Clock::now() - start, milliseconds(150));
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.status().message().find("offline"), std::string::npos) << res.status();
}

TEST(ProducerOfflineTest, CloseFailsUnsentRecordsAndLaterSends) {
  ProducerConfig c = OfflineConfig();
  c.delivery_timeout = milliseconds(60000);
  auto p = Producer::Create(c);
  ASSERT_TRUE(p.ok());
  auto f = (*p)->Send(Rec(0));
  const auto start = Clock::now();
  EXPECT_EQ((*p)->Close(milliseconds(100)).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(Clock::now() - start, milliseconds(3000));
  ASSERT_EQ(f.wait_for(milliseconds(0)), std::future_status::ready);
  EXPECT_EQ(f.get().status().code(), absl::StatusCode::kFailedPrecondition);
  auto after = (*p)->Send(Rec(0));
  EXPECT_EQ(after.get().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ProducerOfflineTest, InvalidConfigIsRejected) {
  ProducerConfig c = OfflineConfig();
  c.acks = 2;
  EXPECT_EQ(Producer::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
  c = OfflineConfig();
  c.nameservers = "no-port";
  EXPECT_EQ(Producer::Create(c).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConsumerOfflineTest, PollTimesOutAndPositionFails) {
  ConsumerConfig c;
  c.nameservers = ClosedAddress();
  c.request_timeout = milliseconds(300);
  auto consumer = Consumer::Create(c);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  const TopicPartition tp{"offline", 0};
  EXPECT_EQ((*consumer)->Seek(tp, 5).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*consumer)->Assign({tp}).ok());
  EXPECT_EQ((*consumer)->Assignment(), std::vector<TopicPartition>{tp});
  ASSERT_TRUE((*consumer)->Seek(tp, 5).ok());
  auto pos = (*consumer)->Position(tp);
  ASSERT_TRUE(pos.ok());
  EXPECT_EQ(*pos, 5);
  const auto start = Clock::now();
  auto records = (*consumer)->Poll(milliseconds(200));
  EXPECT_GE(Clock::now() - start, milliseconds(190));
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_TRUE(records->empty());
  ASSERT_TRUE((*consumer)->SeekToBeginning({tp}).ok());
  EXPECT_FALSE((*consumer)->Position(tp).ok());  // no name server to route the lookup
  (*consumer)->Close();
}

}  // namespace
}  // namespace brook::client
