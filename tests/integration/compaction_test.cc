// Log compaction end to end: a real brook-server with a short log cleaner
// interval, a topic with cleanup.policy=compact and small segments, many
// updates to few keys from the real Producer; the partition's log shrinks on
// disk and the real Consumer reading from offset 0 sees exactly the latest
// value of every key, at increasing offsets.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "common/errors.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using client::ConsumerRecord;
using client::ProducerRecord;
using client::RecordMetadata;
using namespace std::chrono_literals;

constexpr char kTopic[] = "compacted";

int64_t LogBytes(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".log") total += static_cast<int64_t>(e.file_size(ec));
  }
  return total;
}

// `n` pseudo-random letters (incompressible enough that zstd does not hide
// how much the log holds).
std::string Noise(size_t n, uint32_t* x) {
  std::string out(n, 'a');
  for (char& c : out) {
    *x = *x * 1103515245u + 12345u;
    c = static_cast<char>('a' + (*x >> 16) % 26);
  }
  return out;
}

// The partition's cleaner checkpoint (-1 while there is none).
int64_t CleanOffset(const std::string& dir) {
  std::ifstream in(dir + "/cleaner-checkpoint");
  int version = -1;
  int64_t offset = -1;
  if (!(in >> version >> offset) || version != 0) return -1;
  return offset;
}

// The value of an unlabelled metric in Prometheus text (-1 if absent).
double MetricValue(const std::string& text, const std::string& name) {
  const std::string prefix = "\n" + name + " ";
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + prefix.size(), nullptr);
}

class CompactionTest : public ::testing::Test {
 protected:
  CompactionTest() : server_({"--log_cleaner_interval_ms=100"}) {}

  void SetUp() override { ASSERT_TRUE(server_.Start().ok()) << server_.LogTail(); }

  std::string Nameservers() const { return server_.nameserver().ToString(); }

  std::unique_ptr<client::Producer> MakeProducer() {
    client::ProducerConfig config;
    config.nameservers = Nameservers();
    config.acks = 1;
    config.compression = client::CompressionType::kZstd;
    config.linger = 1ms;
    config.delivery_timeout = 10s;
    config.request_timeout = 5s;
    config.max_block = 5s;
    auto producer = client::Producer::Create(config);
    EXPECT_TRUE(producer.ok()) << producer.status();
    return producer.ok() ? std::move(*producer) : nullptr;
  }

  // Sends and waits for every record; returns their offsets.
  std::vector<int64_t> SendAll(client::Producer& producer, std::vector<ProducerRecord> records) {
    std::vector<std::future<absl::StatusOr<RecordMetadata>>> futures;
    for (ProducerRecord& r : records) futures.push_back(producer.Send(std::move(r)));
    EXPECT_TRUE(producer.Flush(20s).ok());
    std::vector<int64_t> out;
    for (auto& f : futures) {
      absl::StatusOr<RecordMetadata> md = f.get();
      EXPECT_TRUE(md.ok()) << md.status();
      if (md.ok()) out.push_back(md->offset);
    }
    return out;
  }

  static ProducerRecord Record(std::optional<std::string> key, std::string value) {
    ProducerRecord r;
    r.topic = kTopic;
    r.partition = 0;
    r.key = std::move(key);
    r.value = std::move(value);
    return r;
  }

  ServerProcess server_;
};

TEST_F(CompactionTest, ConsumersSeeTheLatestValuePerKeyAfterTheCleanerRuns) {
  {
    client::AdminConfig ac;
    ac.nameservers = Nameservers();
    ac.request_timeout = 10s;
    auto admin = client::Admin::Create(ac);
    ASSERT_TRUE(admin.ok()) << admin.status();
    client::NewTopic t{kTopic, 1, 1,
                       {{"cleanup.policy", "compact"},
                        {"segment.bytes", "2048"},
                        {"min.cleanable.dirty.ratio", "0"}}};
    auto info = (*admin)->CreateTopic(t);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->configs.at("cleanup.policy"), "compact");
  }
  const std::string pdir = server_.data_dir() + "/broker/" + kTopic + "-0";
  auto producer = MakeProducer();
  ASSERT_NE(producer, nullptr);

  // Many updates of 8 keys, in rounds so that batches (and segments) are many.
  constexpr int kKeys = 8;
  std::map<std::string, std::string> latest;
  int64_t sent = 0;
  int64_t value_bytes = 0;
  uint32_t x = 12345;
  for (int round = 0; round < 40; ++round) {
    std::vector<ProducerRecord> recs;
    for (int i = 0; i < 20; ++i) {
      const std::string key = absl::StrCat("key-", (round * 20 + i) % kKeys);
      std::string value = absl::StrCat("value-", round, "-", i, "-", key, "-", Noise(150, &x));
      latest[key] = value;
      value_bytes += static_cast<int64_t>(value.size());
      recs.push_back(Record(key, value));
    }
    sent += static_cast<int64_t>(SendAll(*producer, std::move(recs)).size());
  }
  ASSERT_EQ(sent, 800);

  // A record without a key is refused by a compact-only topic.
  {
    auto f = producer->Send(Record(std::nullopt, "no key"));
    ASSERT_TRUE(producer->Flush(20s).ok());
    auto md = f.get();
    EXPECT_FALSE(md.ok());
    EXPECT_EQ(ToErrorCode(md.status()), proto::INVALID_RECORD) << md.status();
    EXPECT_NE(md.status().message().find("key"), std::string::npos) << md.status();
  }

  // Large incompressible records of another key roll the segment holding the
  // last updates, so every update ends up in a cleanable sealed segment.
  std::vector<int64_t> pads;
  for (int i = 0; i < 3; ++i) {
    auto offs = SendAll(*producer, {Record("pad", Noise(3000, &x))});
    ASSERT_EQ(offs.size(), 1u);
    pads.push_back(offs[0]);
  }

  // The cleaner (interval 100 ms) cleans everything below the last segment.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (CleanOffset(pdir) < pads[2] && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_GE(CleanOffset(pdir), pads[2]) << server_.LogTail();
  // The checkpoint is written before the pass swaps its segments: wait for
  // the pass to finish (no .cleaned file, sizes stable).
  while (std::chrono::steady_clock::now() < deadline) {
    const int64_t before = LogBytes(pdir);
    std::this_thread::sleep_for(300ms);
    bool cleaning = false;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(pdir, ec)) {
      cleaning |= e.path().extension() == ".cleaned";
    }
    if (!cleaning && LogBytes(pdir) == before) break;
  }
  // Far less than what was produced (the values alone; zstd cannot shrink
  // the random part much) is left on disk.
  const int64_t bytes_after = LogBytes(pdir);
  EXPECT_LT(bytes_after, value_bytes / 4) << value_bytes << " produced, " << bytes_after
                                          << " on disk";

  // The cleaner's metrics.
  const std::string metrics = HttpGet(server_.admin().port, "/metrics");
  EXPECT_GE(MetricValue(metrics, "brook_log_cleaner_runs_total"), 1.0) << metrics;
  EXPECT_GT(MetricValue(metrics, "brook_log_cleaner_bytes_removed_total"), 10000.0) << metrics;

  // Read everything from offset 0.
  client::ConsumerConfig cc;
  cc.nameservers = Nameservers();
  cc.auto_offset_reset = client::OffsetReset::kEarliest;
  cc.fetch_max_wait = 100ms;
  cc.request_timeout = 5s;
  auto consumer = client::Consumer::Create(cc);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  ASSERT_TRUE((*consumer)->Assign({{kTopic, 0}}).ok());
  ASSERT_TRUE((*consumer)->Seek({kTopic, 0}, 0).ok());
  std::vector<ConsumerRecord> got;
  const auto read_deadline = std::chrono::steady_clock::now() + 15s;
  while ((got.empty() || got.back().offset < pads.back()) &&
         std::chrono::steady_clock::now() < read_deadline) {
    auto batch = (*consumer)->Poll(200ms);
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (ConsumerRecord& r : *batch) got.push_back(std::move(r));
  }
  (*consumer)->Close();
  ASSERT_FALSE(got.empty());
  ASSERT_EQ(got.back().offset, pads.back());

  std::map<std::string, std::string> seen;
  int pad_count = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (i > 0) {
      EXPECT_GT(got[i].offset, got[i - 1].offset);
    }
    ASSERT_TRUE(got[i].key.has_value());
    if (*got[i].key == "pad") {
      ++pad_count;
      continue;
    }
    EXPECT_EQ(seen.count(*got[i].key), 0u) << "key " << *got[i].key << " seen twice";
    seen[*got[i].key] = got[i].value.value_or("<null>");
  }
  EXPECT_EQ(seen, latest);
  // The last pad, and the one before it if the cleaner ran while the last
  // was not yet below the high watermark (it then decided nothing).
  EXPECT_GE(pad_count, 1);
  EXPECT_LE(pad_count, 2);
}

}  // namespace
}  // namespace brook::testing
