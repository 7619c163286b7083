// Integration tests of the client libraries (Admin, Producer, Consumer)
// against a real brook-server on loopback ports chosen at run time.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "common/murmur2.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using client::CompressionType;
using client::ConsumerRecord;
using client::ProducerRecord;
using client::RecordMetadata;
using client::TopicPartition;
using namespace std::chrono_literals;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A record for `partition` of `topic` with only a value.
ProducerRecord ValueRecord(const std::string& topic, int32_t partition, std::string value) {
  ProducerRecord r;
  r.topic = topic;
  r.partition = partition;
  r.value = std::move(value);
  return r;
}

class ClientTest : public ::testing::Test {
 protected:
  explicit ClientTest(std::vector<std::string> server_args = {})
      : server_(std::move(server_args)) {}

  void SetUp() override { ASSERT_TRUE(server_.Start().ok()) << server_.LogTail(); }

  std::string Nameservers() const { return server_.nameserver().ToString(); }

  std::unique_ptr<client::Admin> MakeAdmin() {
    client::AdminConfig config;
    config.nameservers = Nameservers();
    config.request_timeout = 10s;
    auto admin = client::Admin::Create(config);
    EXPECT_TRUE(admin.ok()) << admin.status();
    return admin.ok() ? std::move(*admin) : nullptr;
  }

  void CreateTopic(const std::string& name, int32_t partitions,
                   std::map<std::string, std::string> configs = {}) {
    auto admin = MakeAdmin();
    ASSERT_NE(admin, nullptr);
    client::NewTopic topic{name, partitions, 1, std::move(configs)};
    auto info = admin->CreateTopic(topic);
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_EQ(info->partitions.size(), static_cast<size_t>(partitions));
  }

  std::unique_ptr<client::Producer> MakeProducer(int acks = 1,
                                                 CompressionType c = CompressionType::kZstd) {
    client::ProducerConfig config;
    config.nameservers = Nameservers();
    config.acks = acks;
    config.compression = c;
    config.linger = 1ms;
    config.delivery_timeout = 10s;
    config.request_timeout = 5s;
    config.max_block = 5s;
    auto producer = client::Producer::Create(config);
    EXPECT_TRUE(producer.ok()) << producer.status();
    return producer.ok() ? std::move(*producer) : nullptr;
  }

  std::unique_ptr<client::Consumer> MakeConsumer() {
    client::ConsumerConfig config;
    config.nameservers = Nameservers();
    config.auto_offset_reset = client::OffsetReset::kEarliest;
    config.fetch_max_wait = 100ms;
    config.request_timeout = 5s;
    auto consumer = client::Consumer::Create(config);
    EXPECT_TRUE(consumer.ok()) << consumer.status();
    return consumer.ok() ? std::move(*consumer) : nullptr;
  }

  // Sends every record and waits for its metadata.
  std::vector<RecordMetadata> SendAll(client::Producer& producer,
                                      std::vector<ProducerRecord> records) {
    std::vector<std::future<absl::StatusOr<RecordMetadata>>> futures;
    for (ProducerRecord& r : records) futures.push_back(producer.Send(std::move(r)));
    EXPECT_TRUE(producer.Flush(20s).ok());
    std::vector<RecordMetadata> out;
    for (auto& f : futures) {
      absl::StatusOr<RecordMetadata> md = f.get();
      EXPECT_TRUE(md.ok()) << md.status();
      if (md.ok()) out.push_back(*md);
    }
    return out;
  }

  // Polls until `count` records arrived (or `timeout` passed).
  static std::vector<ConsumerRecord> PollN(client::Consumer& consumer, size_t count,
                                           std::chrono::milliseconds timeout = 15s) {
    std::vector<ConsumerRecord> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
      auto batch = consumer.Poll(200ms);
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) break;
      for (ConsumerRecord& r : *batch) out.push_back(std::move(r));
    }
    return out;
  }

  static std::vector<TopicPartition> Partitions(const std::string& topic, int32_t n) {
    std::vector<TopicPartition> tps;
    for (int32_t p = 0; p < n; ++p) tps.push_back({topic, p});
    return tps;
  }

  ServerProcess server_;
};

class RoundTripTest : public ClientTest,
                      public ::testing::WithParamInterface<CompressionType> {};

TEST_P(RoundTripTest, EveryRecordComesBackInOrderPerPartition) {
  const std::string topic = GetParam() == CompressionType::kZstd ? "rt-zstd" : "rt-none";
  CreateTopic(topic, 3);
  auto producer = MakeProducer(1, GetParam());
  ASSERT_NE(producer, nullptr);
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 300; ++i) {
    ProducerRecord r;
    r.topic = topic;
    r.partition = i % 3;
    r.key = absl::StrCat("key-", i);
    r.value = absl::StrCat("value-", i, "-", std::string(static_cast<size_t>(i % 50), 'x'));
    records.push_back(std::move(r));
  }
  // A null value and an empty one survive too.
  records[7].value.reset();
  records[8].value = "";
  const std::vector<ProducerRecord> sent = records;
  std::vector<RecordMetadata> acked = SendAll(*producer, std::move(records));
  ASSERT_EQ(acked.size(), sent.size());
  std::map<int32_t, int64_t> next_offset;
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(acked[i].partition, *sent[i].partition);
    EXPECT_EQ(acked[i].offset, next_offset[acked[i].partition]++) << i;
  }

  auto consumer = MakeConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign(Partitions(topic, 3)).ok());
  ASSERT_TRUE(consumer->SeekToBeginning(Partitions(topic, 3)).ok());
  std::vector<ConsumerRecord> got = PollN(*consumer, sent.size());
  ASSERT_EQ(got.size(), sent.size());
  std::map<int32_t, std::vector<ConsumerRecord>> by_partition;
  for (ConsumerRecord& r : got) by_partition[r.partition].push_back(std::move(r));
  for (int32_t p = 0; p < 3; ++p) {
    const auto& recs = by_partition[p];
    ASSERT_EQ(recs.size(), 100u);
    for (size_t j = 0; j < recs.size(); ++j) {
      const ProducerRecord& want = sent[j * 3 + static_cast<size_t>(p)];
      EXPECT_EQ(recs[j].topic, topic);
      EXPECT_EQ(recs[j].offset, static_cast<int64_t>(j));
      EXPECT_EQ(recs[j].key, want.key);
      EXPECT_EQ(recs[j].value, want.value);
    }
  }
  EXPECT_TRUE(producer->Close(5s).ok());
}

INSTANTIATE_TEST_SUITE_P(Compression, RoundTripTest,
                         ::testing::Values(CompressionType::kZstd, CompressionType::kNone),
                         [](const auto& info) {
                           return info.param == CompressionType::kZstd ? "Zstd" : "None";
                         });

TEST_F(ClientTest, KeysLandOnTheirMurmur2Partition) {
  CreateTopic("keyed", 5);
  auto producer = MakeProducer();
  ASSERT_NE(producer, nullptr);
  auto count = producer->PartitionCount("keyed");
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 5);
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 60; ++i) {
    ProducerRecord r;
    r.topic = "keyed";
    r.key = absl::StrCat("user-", i % 20);
    r.value = absl::StrCat(i);
    records.push_back(std::move(r));
  }
  std::vector<RecordMetadata> acked = SendAll(*producer, records);
  ASSERT_EQ(acked.size(), records.size());
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(acked[i].partition, PartitionForKey(*records[i].key, 5)) << *records[i].key;
  }

  auto consumer = MakeConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign(Partitions("keyed", 5)).ok());
  ASSERT_TRUE(consumer->SeekToBeginning(Partitions("keyed", 5)).ok());
  std::vector<ConsumerRecord> got = PollN(*consumer, records.size());
  ASSERT_EQ(got.size(), records.size());
  for (const ConsumerRecord& r : got) {
    ASSERT_TRUE(r.key.has_value());
    EXPECT_EQ(r.partition, PartitionForKey(*r.key, 5));
  }
}

TEST_F(ClientTest, HeadersAndTimestampsArePreserved) {
  CreateTopic("headers", 1);
  auto producer = MakeProducer();
  ASSERT_NE(producer, nullptr);
  const int64_t base = NowMs() - 60'000;
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 10; ++i) {
    ProducerRecord r;
    r.topic = "headers";
    r.value = absl::StrCat("v", i);
    r.timestamp_ms = base + i * 1000;
    r.headers = {{"trace-id", absl::StrCat("t", i)}, {"null-header", std::nullopt}, {"", ""}};
    records.push_back(std::move(r));
  }
  std::vector<RecordMetadata> acked = SendAll(*producer, records);
  ASSERT_EQ(acked.size(), 10u);

  auto consumer = MakeConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign({{"headers", 0}}).ok());
  ASSERT_TRUE(consumer->SeekToBeginning({{"headers", 0}}).ok());
  std::vector<ConsumerRecord> got = PollN(*consumer, 10);
  ASSERT_EQ(got.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(got[i].timestamp_ms, base + i * 1000);
    EXPECT_EQ(got[i].headers, records[i].headers);
    EXPECT_FALSE(got[i].key.has_value());
  }
}

TEST_F(ClientTest, SeekByTimestampBeginningAndEnd) {
  CreateTopic("seeks", 1);
  auto producer = MakeProducer(1, CompressionType::kNone);
  ASSERT_NE(producer, nullptr);
  const int64_t base = NowMs() - 100'000;
  // Ten batches so the time index has more than one entry to search.
  for (int i = 0; i < 10; ++i) {
    ProducerRecord r;
    r.topic = "seeks";
    r.value = absl::StrCat("r", i);
    r.timestamp_ms = base + i * 1000;
    ASSERT_EQ(SendAll(*producer, {r}).size(), 1u);
  }
  const TopicPartition tp{"seeks", 0};
  auto consumer = MakeConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign({tp}).ok());

  ASSERT_TRUE(consumer->SeekToTimestamp({tp}, base + 4500).ok());
  auto pos = consumer->Position(tp);
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_EQ(*pos, 5);
  std::vector<ConsumerRecord> got = PollN(*consumer, 5);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got.front().offset, 5);
  EXPECT_EQ(*got.front().value, "r5");
  EXPECT_EQ(got.back().offset, 9);

  ASSERT_TRUE(consumer->SeekToTimestamp({tp}, base + 4000).ok());
  got = PollN(*consumer, 1);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().offset, 4);

  // Past every record: the end.
  ASSERT_TRUE(consumer->SeekToTimestamp({tp}, base + 60'000).ok());
  pos = consumer->Position(tp);
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_EQ(*pos, 10);

  ASSERT_TRUE(consumer->SeekToBeginning({tp}).ok());
  got = PollN(*consumer, 1);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front().offset, 0);

  ASSERT_TRUE(consumer->SeekToEnd({tp}).ok());
  pos = consumer->Position(tp);
  ASSERT_TRUE(pos.ok()) << pos.status();
  EXPECT_EQ(*pos, 10);
  auto none = consumer->Poll(300ms);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  // A record sent after SeekToEnd is the next one read.
  ProducerRecord later;
  later.topic = "seeks";
  later.value = "later";
  ASSERT_EQ(SendAll(*producer, {later}).size(), 1u);
  got = PollN(*consumer, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].offset, 10);
  EXPECT_EQ(*got[0].value, "later");
}

TEST_F(ClientTest, AcksZeroAndAll) {
  CreateTopic("acks", 1);
  auto fire_and_forget = MakeProducer(0);
  ASSERT_NE(fire_and_forget, nullptr);
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 50; ++i) records.push_back(ValueRecord("acks", 0, absl::StrCat("a0-", i)));
  std::vector<RecordMetadata> md = SendAll(*fire_and_forget, records);
  ASSERT_EQ(md.size(), 50u);
  for (const RecordMetadata& m : md) EXPECT_EQ(m.offset, -1);

  auto all = MakeProducer(-1);
  ASSERT_NE(all, nullptr);
  records.clear();
  for (int i = 0; i < 50; ++i) records.push_back(ValueRecord("acks", 0, absl::StrCat("all-", i)));
  md = SendAll(*all, records);
  ASSERT_EQ(md.size(), 50u);
  // acks=0 records on one loopback connection are all stored before these.
  for (int i = 0; i < 50; ++i) EXPECT_EQ(md[i].offset, 50 + i);

  auto consumer = MakeConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign({{"acks", 0}}).ok());
  ASSERT_TRUE(consumer->SeekToBeginning({{"acks", 0}}).ok());
  std::vector<ConsumerRecord> got = PollN(*consumer, 100);
  ASSERT_EQ(got.size(), 100u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(*got[i].value, absl::StrCat("a0-", i));
    EXPECT_EQ(*got[50 + i].value, absl::StrCat("all-", i));
  }
}

// The broker checks retention every 100 ms (server config retention_check_ms).
class RetentionTest : public ClientTest {
 protected:
  RetentionTest() : ClientTest({"--config=" + ConfigFile()}) {}
  ~RetentionTest() override { std::filesystem::remove(ConfigFile()); }

  static std::string ConfigFile() {
    static const std::string path = [] {
      std::string p = (std::filesystem::temp_directory_path() /
                       absl::StrCat("brook-retention-", getpid(), ".textproto"))
                          .string();
      std::ofstream(p) << "retention_check_ms: 100\n";
      return p;
    }();
    return path;
  }
};

TEST_F(RetentionTest, OldSegmentsGoOnceTheLogExceedsRetentionBytes) {
  CreateTopic("retained", 1, {{"segment.bytes", "8192"}, {"retention.bytes", "16384"}});
  auto producer = MakeProducer(1, CompressionType::kNone);
  ASSERT_NE(producer, nullptr);
  // 120 batches of 2 records of ~500 B: about 120 KB, many 8 KB segments.
  constexpr int kRecords = 240;
  for (int i = 0; i < kRecords; i += 2) {
    std::vector<ProducerRecord> pair;
    for (int j = i; j < i + 2; ++j) {
      pair.push_back(ValueRecord("retained", 0, absl::StrCat(j, ":", std::string(500, 'r'))));
    }
    ASSERT_EQ(SendAll(*producer, pair).size(), 2u);
  }

  auto admin = MakeAdmin();
  ASSERT_NE(admin, nullptr);
  // Wait until every record is below the high watermark, retention has
  // removed segments and the log start holds still.
  int64_t log_start = 0;
  int64_t high_watermark = 0;
  int64_t previous = -1;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto info = admin->DescribeTopic("retained");
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_EQ(info->partitions.size(), 1u);
    high_watermark = info->partitions[0].high_watermark;
    log_start = info->partitions[0].log_start_offset;
    if (high_watermark == kRecords && log_start > 0 && log_start == previous) break;
    previous = log_start;
    std::this_thread::sleep_for(300ms);
  }
  ASSERT_EQ(high_watermark, kRecords);
  ASSERT_GT(log_start, 0) << "no segment was deleted; log:\n" << server_.LogTail();
  // What is kept is at least retention.bytes minus one segment and at most
  // retention.bytes plus the active segment, in records of ~560 B.
  EXPECT_LE(kRecords - log_start, (16384 + 8192) / 500 + 2);
  EXPECT_GE(kRecords - log_start, (16384 - 8192) / 600);

  auto consumer = MakeConsumer();
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign({{"retained", 0}}).ok());
  ASSERT_TRUE(consumer->SeekToBeginning({{"retained", 0}}).ok());
  std::vector<ConsumerRecord> got = PollN(*consumer, static_cast<size_t>(kRecords - log_start));
  ASSERT_EQ(got.size(), static_cast<size_t>(kRecords - log_start));
  // Reading from the beginning starts at the log start and runs to the end
  // without gaps.
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].offset, log_start + static_cast<int64_t>(i));
    EXPECT_EQ(got[i].value->substr(0, got[i].value->find(':')), absl::StrCat(got[i].offset));
  }
}

TEST_F(ClientTest, AcknowledgedRecordsSurviveKillDashNine) {
  CreateTopic("durable", 1, {{"flush.policy", "always"}});
  auto producer = MakeProducer(1, CompressionType::kZstd);
  ASSERT_NE(producer, nullptr);

  // Callbacks run on the producer's I/O thread.
  std::mutex mu;
  std::map<int64_t, std::string> acked;  // offset -> value
  std::atomic<int64_t> acked_count{0};
  std::atomic<bool> stop{false};
  std::thread sender([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::string value = absl::StrCat("durable-", i);
      producer->Send(ValueRecord("durable", 0, value),
                     [&, value](const absl::StatusOr<RecordMetadata>& md) {
                       if (!md.ok()) return;
                       std::lock_guard<std::mutex> lock(mu);
                       acked[md->offset] = value;
                       acked_count.fetch_add(1);
                     });
      if (i % 64 == 63) std::this_thread::sleep_for(1ms);
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (acked_count.load() < 2000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  server_.Kill();  // mid-stream: requests in flight are lost unacknowledged
  stop.store(true);
  sender.join();
  ASSERT_GT(acked_count.load(), 0) << server_.LogTail();
  // Records still buffered fail at the close timeout; none can be acked now.
  (void)producer->Close(1s);
  producer.reset();

  std::map<int64_t, std::string> want;
  {
    std::lock_guard<std::mutex> lock(mu);
    want = acked;
  }
  ASSERT_TRUE(server_.Restart().ok()) << server_.LogTail();

  auto consumer = MakeConsumer();  // the name server's port may have changed
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(consumer->Assign({{"durable", 0}}).ok());
  ASSERT_TRUE(consumer->SeekToBeginning({{"durable", 0}}).ok());
  const int64_t last_acked = want.rbegin()->first;
  std::vector<ConsumerRecord> got;
  const auto read_deadline = std::chrono::steady_clock::now() + 20s;
  while ((got.empty() || got.back().offset < last_acked) &&
         std::chrono::steady_clock::now() < read_deadline) {
    auto batch = consumer->Poll(200ms);
    if (!batch.ok()) continue;  // the partition's leader may still be coming back
    for (ConsumerRecord& r : *batch) got.push_back(std::move(r));
  }
  ASSERT_FALSE(got.empty());
  ASSERT_GE(got.back().offset, last_acked);
  // Offsets are dense from 0 and values follow the send order.
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].offset, static_cast<int64_t>(i));
    ASSERT_EQ(*got[i].value, absl::StrCat("durable-", i));
  }
  for (const auto& [offset, value] : want) {
    EXPECT_EQ(*got[static_cast<size_t>(offset)].value, value) << offset;
  }
}

}  // namespace
}  // namespace brook::testing
