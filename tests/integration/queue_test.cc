// Integration tests of queue subscriptions (brook/queue.h) against a real
// brook-server: receive / ack / nack and their error codes, durability of
// acknowledgements across kill -9, delayed delivery, tag filters and
// key-ordered delivery across several consumers.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/producer.h"
#include "brook/queue.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using client::ProducerRecord;
using client::QueueAckError;
using client::QueueConfig;
using client::QueueConsumer;
using client::QueueMessage;
using namespace std::chrono_literals;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> HeaderOf(const client::ConsumerRecord& r, const std::string& key) {
  for (const auto& h : r.headers) {
    if (h.key == key) return h.value;
  }
  return std::nullopt;
}

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start().ok()) << server_.LogTail(); }

  std::string Nameservers() const { return server_.nameserver().ToString(); }

  void CreateTopic(const std::string& name, int32_t partitions) {
    client::AdminConfig config;
    config.nameservers = Nameservers();
    config.request_timeout = 10s;
    auto admin = client::Admin::Create(config);
    ASSERT_TRUE(admin.ok()) << admin.status();
    auto info = (*admin)->CreateTopic(client::NewTopic{name, partitions, 1, {}});
    ASSERT_TRUE(info.ok()) << info.status();
  }

  std::unique_ptr<client::Producer> MakeProducer() {
    client::ProducerConfig config;
    config.nameservers = Nameservers();
    config.linger = 1ms;
    config.delivery_timeout = 10s;
    config.request_timeout = 5s;
    auto producer = client::Producer::Create(config);
    EXPECT_TRUE(producer.ok()) << producer.status();
    return producer.ok() ? std::move(*producer) : nullptr;
  }

  // Sends every record and waits until all are acknowledged.
  void SendAll(std::vector<ProducerRecord> records) {
    auto producer = MakeProducer();
    ASSERT_NE(producer, nullptr);
    std::vector<std::future<absl::StatusOr<client::RecordMetadata>>> futures;
    for (ProducerRecord& r : records) futures.push_back(producer->Send(std::move(r)));
    ASSERT_TRUE(producer->Flush(20s).ok());
    for (auto& f : futures) {
      auto md = f.get();
      ASSERT_TRUE(md.ok()) << md.status();
    }
    EXPECT_TRUE(producer->Close(5s).ok());
  }

  QueueConfig BaseConfig(const std::string& topic, const std::string& group) const {
    QueueConfig c;
    c.nameservers = Nameservers();
    c.topic = topic;
    c.group = group;
    c.start = client::QueueStart::kEarliest;
    c.request_timeout = 5s;
    c.max_wait = 200ms;
    return c;
  }

  std::unique_ptr<QueueConsumer> MakeQueue(QueueConfig c) {
    auto q = QueueConsumer::Create(std::move(c));
    EXPECT_TRUE(q.ok()) << q.status();
    return q.ok() ? std::move(*q) : nullptr;
  }

  // Receives until `count` messages arrived or `timeout` passed.
  static std::vector<QueueMessage> ReceiveN(QueueConsumer& q, size_t count,
                                            std::chrono::milliseconds timeout = 15s) {
    std::vector<QueueMessage> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
      auto got = q.Receive(count - out.size(), 200ms);
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok()) break;
      for (auto& m : *got) out.push_back(std::move(m));
    }
    return out;
  }

  static ProducerRecord Record(const std::string& topic, int32_t partition, std::string value) {
    ProducerRecord r;
    r.topic = topic;
    r.partition = partition;
    r.value = std::move(value);
    return r;
  }

  ServerProcess server_;
};

TEST_F(QueueTest, ReceiveAckNackAndTheirErrors) {
  CreateTopic("jobs", 2);
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 10; ++i) records.push_back(Record("jobs", i % 2, absl::StrCat("job-", i)));
  SendAll(std::move(records));

  QueueConfig c = BaseConfig("jobs", "workers");
  c.ack_timeout = 10s;
  c.backoff_initial = 100ms;
  c.backoff_max = 200ms;
  auto q = MakeQueue(c);
  ASSERT_NE(q, nullptr);
  std::vector<QueueMessage> got = ReceiveN(*q, 10);
  ASSERT_EQ(got.size(), 10u);
  std::set<std::pair<int32_t, int64_t>> seen;
  for (const auto& m : got) {
    EXPECT_EQ(m.delivery_count, 1);
    EXPECT_EQ(m.record.topic, "jobs");
    seen.insert({m.record.partition, m.record.offset});
  }
  EXPECT_EQ(seen.size(), 10u);
  // Nothing else is delivered while everything is in flight.
  auto more = q->Receive(10, 500ms);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->empty());

  // Ack, then ack again: QUEUE_ALREADY_ACKED.
  ASSERT_TRUE(q->AckSync(got[0]).ok());
  absl::Status again = q->AckSync(got[0]);
  EXPECT_EQ(client::ClassifyAckError(again), QueueAckError::kAlreadyAcked) << again;
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;

  // An offset never delivered: QUEUE_NOT_DELIVERED.
  QueueMessage never = got[1];
  never.record.offset = 1000;
  absl::Status nd = q->AckSync(never);
  EXPECT_EQ(client::ClassifyAckError(nd), QueueAckError::kNotDelivered) << nd;
  EXPECT_TRUE(absl::IsFailedPrecondition(nd)) << nd;

  // A wrong delivery count does not identify the delivery.
  QueueMessage wrong = got[1];
  wrong.delivery_count = 7;
  EXPECT_NE(client::ClassifyAckError(q->AckSync(wrong)), QueueAckError::kNone);

  // Nack with no delay: redelivered with delivery_count 2.
  ASSERT_TRUE(q->NackSync(got[1], 0ms).ok());
  std::vector<QueueMessage> re = ReceiveN(*q, 1, 5s);
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(re[0].record.partition, got[1].record.partition);
  EXPECT_EQ(re[0].record.offset, got[1].record.offset);
  EXPECT_EQ(re[0].record.value, got[1].record.value);
  EXPECT_EQ(re[0].delivery_count, 2);
  // The old delivery is superseded.
  absl::Status stale = q->AckSync(got[1]);
  EXPECT_NE(client::ClassifyAckError(stale), QueueAckError::kNone) << stale;

  // Asynchronous acks of the rest, then Flush reports no error.
  q->Ack(re[0]);
  for (size_t i = 2; i < got.size(); ++i) q->Ack(got[i]);
  {
    absl::Status f = q->Flush(10s);
    EXPECT_TRUE(f.ok()) << f;
  }
  // An async failure shows in the next Flush only.
  q->Ack(got[3]);
  absl::Status flushed = q->Flush(10s);
  EXPECT_EQ(client::ClassifyAckError(flushed), QueueAckError::kAlreadyAcked) << flushed;
  {
    absl::Status f = q->Flush(10s);
    EXPECT_TRUE(f.ok()) << f;
  }

  auto states = q->Describe();
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->size(), 2u);
  int64_t acked = 0;
  for (const auto& s : *states) {
    ASSERT_TRUE(s.status.ok()) << s.status;
    EXPECT_EQ(s.backlog, 0) << s.partition;
    EXPECT_EQ(s.in_flight, 0) << s.partition;
    EXPECT_EQ(s.ack_floor, 5) << s.partition;
    EXPECT_EQ(s.high_watermark, 5) << s.partition;
    acked += s.acked;
  }
  EXPECT_EQ(acked, 10);
  // The same state on the broker's /metrics, per subscription.
  const std::string metrics = HttpGet(server_.admin().port, "/metrics");
  for (int p = 0; p < 2; ++p) {
    const std::string labels =
        absl::StrCat("{topic=\"jobs\",partition=\"", p, "\",group=\"workers\"}");
    EXPECT_NE(metrics.find("brook_queue_acked" + labels + " 5"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("brook_queue_backlog" + labels + " 0"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("brook_queue_ack_floor" + labels + " 5"), std::string::npos) << metrics;
  }
  EXPECT_NE(metrics.find("brook_queue_redeliveries{topic=\"jobs\",partition=\""
                         + std::to_string(got[1].record.partition) + "\",group=\"workers\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_TRUE(q->Close().ok());
  EXPECT_FALSE(q->Receive(1, 10ms).ok());
}

TEST_F(QueueTest, AckAfterTheAckTimeoutIsExpiredAndTheRecordComesBack) {
  CreateTopic("slow", 1);
  SendAll({Record("slow", 0, "a")});
  QueueConfig c = BaseConfig("slow", "g");
  c.ack_timeout = 600ms;
  c.backoff_initial = 100ms;
  c.backoff_max = 100ms;
  c.prefetch_limit = 1;
  auto q = MakeQueue(c);
  ASSERT_NE(q, nullptr);
  auto first = ReceiveN(*q, 1);
  ASSERT_EQ(first.size(), 1u);
  std::this_thread::sleep_for(1200ms);
  absl::Status late = q->AckSync(first[0]);
  EXPECT_EQ(client::ClassifyAckError(late), QueueAckError::kDeliveryExpired) << late;
  EXPECT_TRUE(absl::IsAborted(late)) << late;
  // Redelivered with a higher count (possibly several times meanwhile).
  auto second = ReceiveN(*q, 1);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].record.offset, first[0].record.offset);
  EXPECT_GE(second[0].delivery_count, 2);
  EXPECT_TRUE(q->AckSync(second[0]).ok());
}

TEST_F(QueueTest, TwoConsumersShareTheRecordsAndCloseReleasesThePrefetch) {
  CreateTopic("shared", 2);
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 200; ++i) records.push_back(Record("shared", i % 2, absl::StrCat(i)));
  SendAll(std::move(records));
  QueueConfig c = BaseConfig("shared", "g");
  c.prefetch_limit = 20;
  auto a = MakeQueue(c);
  auto b = MakeQueue(c);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->consumer_id(), b->consumer_id());
  // `a` takes 10 and closes: the rest of its prefetch goes back at once.
  auto few = ReceiveN(*a, 10);
  ASSERT_EQ(few.size(), 10u);
  for (const auto& m : few) a->Ack(m);
  ASSERT_TRUE(a->Close().ok());
  std::set<std::string> values;
  for (const auto& m : few) values.insert(*m.record.value);
  auto rest = ReceiveN(*b, 190, 20s);
  for (const auto& m : rest) {
    EXPECT_TRUE(values.insert(*m.record.value).second) << "delivered twice: " << *m.record.value;
    // Released records are not counted as deliveries.
    EXPECT_EQ(m.delivery_count, 1) << *m.record.value;
    b->Ack(m);
  }
  EXPECT_EQ(values.size(), 200u);
  {
    absl::Status f = b->Flush(10s);
    EXPECT_TRUE(f.ok()) << f;
  }
}

TEST_F(QueueTest, BadFilterFailsReceive) {
  CreateTopic("f", 1);
  QueueConfig c = BaseConfig("f", "g");
  c.filter = "a && (b";
  auto q = MakeQueue(c);
  ASSERT_NE(q, nullptr);
  absl::Status s;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (s.ok() && std::chrono::steady_clock::now() < deadline) s = q->Receive(1, 200ms).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

TEST_F(QueueTest, TagFilterDeliversOnlyMatchingRecords) {
  CreateTopic("tagged", 1);
  std::vector<ProducerRecord> records;
  const std::vector<std::vector<std::string>> tags = {{"red"}, {"blue"}, {"green", "red"}, {}, {"green"}};
  for (int i = 0; i < 50; ++i) {
    ProducerRecord r = Record("tagged", 0, absl::StrCat(i));
    if (!tags[i % 5].empty()) client::SetTags(r, tags[i % 5]);
    records.push_back(std::move(r));
  }
  SendAll(std::move(records));
  QueueConfig c = BaseConfig("tagged", "red-or-green");
  c.filter = "red || green";
  auto q = MakeQueue(c);
  ASSERT_NE(q, nullptr);
  auto got = ReceiveN(*q, 30);
  ASSERT_EQ(got.size(), 30u);
  for (const auto& m : got) {
    int i = 0;
    ASSERT_TRUE(absl::SimpleAtoi(*m.record.value, &i));
    EXPECT_TRUE(i % 5 == 0 || i % 5 == 2 || i % 5 == 4) << i;
    auto t = client::TagsOf(m.record);
    EXPECT_TRUE(std::count(t.begin(), t.end(), "red") + std::count(t.begin(), t.end(), "green") > 0);
    q->Ack(m);
  }
  {
    absl::Status f = q->Flush(10s);
    ASSERT_TRUE(f.ok()) << f;
  }
  auto none = q->Receive(10, 1s);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto states = q->Describe();
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0].filtered, 20);
  EXPECT_EQ((*states)[0].acked, 30);
  EXPECT_EQ((*states)[0].ack_floor, 50);
  EXPECT_EQ((*states)[0].backlog, 0);
}

TEST_F(QueueTest, DelayedRecordsAreNeverDeliveredEarly) {
  CreateTopic("later", 2);
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 40; ++i) {
    ProducerRecord r = Record("later", i % 2, absl::StrCat(i));
    if (i % 4 != 0) client::SetDelay(r, std::chrono::milliseconds(1000 + 100 * (i % 10)));
    records.push_back(std::move(r));
  }
  const int64_t sent_at = NowMs();
  SendAll(std::move(records));
  auto q = MakeQueue(BaseConfig("later", "g"));
  ASSERT_NE(q, nullptr);
  std::vector<QueueMessage> got;
  int immediate = 0;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (got.size() < 40 && std::chrono::steady_clock::now() < deadline) {
    auto batch = q->Receive(40, 200ms);
    ASSERT_TRUE(batch.ok()) << batch.status();
    const int64_t now = NowMs();
    for (auto& m : *batch) {
      auto at = HeaderOf(m.record, "brook-deliver-at");
      if (at) {
        int64_t at_ms = 0;
        ASSERT_TRUE(absl::SimpleAtoi(*at, &at_ms));
        EXPECT_GE(now, at_ms) << "offset " << m.record.offset << " came " << at_ms - now
                              << " ms early";
        EXPECT_LT(now - at_ms, 3000) << "offset " << m.record.offset << " came late";
      } else {
        ++immediate;
        EXPECT_LT(now - sent_at, 1000);
      }
      q->Ack(m);
      got.push_back(std::move(m));
    }
  }
  EXPECT_EQ(got.size(), 40u);
  EXPECT_EQ(immediate, 10);
  {
    absl::Status f = q->Flush(10s);
    EXPECT_TRUE(f.ok()) << f;
  }
}

TEST_F(QueueTest, KeyOrderedNeverReordersAKeyAcrossFourConsumers) {
  CreateTopic("orders", 2);
  constexpr int kKeys = 16;
  constexpr int kPerKey = 25;
  std::vector<ProducerRecord> records;
  for (int i = 0; i < kPerKey; ++i) {
    for (int k = 0; k < kKeys; ++k) {
      ProducerRecord r;
      r.topic = "orders";
      r.key = absl::StrCat("key-", k);
      r.value = absl::StrCat(i);
      records.push_back(std::move(r));
    }
  }
  SendAll(std::move(records));
  QueueConfig c = BaseConfig("orders", "ordered");
  c.key_ordered = true;
  c.prefetch_limit = 8;
  c.backoff_initial = 50ms;
  c.backoff_max = 100ms;
  std::mutex mu;
  std::map<std::string, std::string> holder;       // key -> consumer holding one of its records
  std::map<std::string, std::vector<int>> done;    // key -> values acknowledged, in order
  std::atomic<int> acked{0};
  std::atomic<int> violations{0};
  auto work = [&](int id) {
    auto q = MakeQueue(c);
    ASSERT_NE(q, nullptr);
    std::mt19937 rng(static_cast<unsigned>(id));
    const auto deadline = std::chrono::steady_clock::now() + 40s;
    while (acked.load() < kKeys * kPerKey && std::chrono::steady_clock::now() < deadline) {
      auto got = q->Receive(4, 100ms);
      ASSERT_TRUE(got.ok()) << got.status();
      for (const auto& m : *got) {
        const std::string key = *m.record.key;
        {
          std::lock_guard<std::mutex> lock(mu);
          auto [it, fresh] = holder.emplace(key, q->consumer_id());
          if (!fresh) {
            ADD_FAILURE() << key << " delivered to " << q->consumer_id() << " while "
                          << it->second << " holds it";
            ++violations;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 3));
        const bool nack = rng() % 10 == 0;
        {
          // Released before the broker hears of it: the next record of the
          // key may be delivered as soon as it does.
          std::lock_guard<std::mutex> lock(mu);
          holder.erase(key);
          if (!nack) {
            int v = std::stoi(*m.record.value);
            auto& seq = done[key];
            if (!seq.empty() && seq.back() >= v) {
              ADD_FAILURE() << key << ": " << v << " after " << seq.back();
              ++violations;
            }
            seq.push_back(v);
          }
        }
        absl::Status s = nack ? q->NackSync(m, 0ms) : q->AckSync(m);
        ASSERT_TRUE(s.ok()) << s;
        if (!nack) ++acked;
      }
    }
    EXPECT_TRUE(q->Close().ok());
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(work, i);
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(acked.load(), kKeys * kPerKey);
  for (int k = 0; k < kKeys; ++k) {
    const auto& seq = done[absl::StrCat("key-", k)];
    ASSERT_EQ(seq.size(), static_cast<size_t>(kPerKey)) << k;
    for (int i = 0; i < kPerKey; ++i) EXPECT_EQ(seq[static_cast<size_t>(i)], i) << k;
  }
}

TEST_F(QueueTest, AcknowledgementsSurviveKillNine) {
  CreateTopic("durable", 2);
  std::vector<ProducerRecord> records;
  for (int i = 0; i < 40; ++i) records.push_back(Record("durable", i % 2, absl::StrCat(i)));
  SendAll(std::move(records));
  QueueConfig c = BaseConfig("durable", "g");
  c.ack_timeout = 4s;
  c.backoff_initial = 100ms;
  c.backoff_max = 100ms;
  c.prefetch_limit = 40;
  std::set<std::string> acked, unacked;
  std::map<std::string, int32_t> first_count;
  {
    auto q = MakeQueue(c);
    ASSERT_NE(q, nullptr);
    // Every record once (a redelivery after the ack timeout is not counted
    // again); a third stays unacknowledged.
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (acked.size() + unacked.size() < 40 && std::chrono::steady_clock::now() < deadline) {
      auto got = q->Receive(40, 200ms);
      ASSERT_TRUE(got.ok()) << got.status();
      for (const auto& m : *got) {
        const std::string v = *m.record.value;
        if (std::stoi(v) % 3 == 0) {
          if (unacked.insert(v).second) first_count[v] = m.delivery_count;
          first_count[v] = std::max(first_count[v], m.delivery_count);
        } else if (!acked.count(v)) {
          q->Ack(m);
          acked.insert(v);
        }
      }
    }
    ASSERT_EQ(acked.size() + unacked.size(), 40u);
    absl::Status flushed = q->Flush(10s);  // acknowledged = durable
    ASSERT_TRUE(flushed.ok()) << flushed;
    server_.Kill();
  }
  ASSERT_TRUE(server_.Restart().ok()) << server_.LogTail();
  c.nameservers = Nameservers();
  c.request_timeout = 5s;
  auto q = MakeQueue(c);
  ASSERT_NE(q, nullptr);
  std::set<std::string> again;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (again.size() < unacked.size() && std::chrono::steady_clock::now() < deadline) {
    auto got = q->Receive(40, 200ms);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const auto& m : *got) {
      const std::string v = *m.record.value;
      EXPECT_EQ(acked.count(v), 0u) << "acknowledged record " << v << " was redelivered";
      EXPECT_EQ(unacked.count(v), 1u) << v;
      EXPECT_GT(m.delivery_count, first_count[v]) << v;
      again.insert(v);
      q->Ack(m);
    }
  }
  EXPECT_EQ(again, unacked);
  {
    absl::Status f = q->Flush(10s);
    ASSERT_TRUE(f.ok()) << f;
  }
  // Nothing else comes.
  auto more = q->Receive(40, 2500ms);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->empty());
  auto states = q->Describe();
  ASSERT_TRUE(states.ok()) << states.status();
  for (const auto& s : *states) {
    EXPECT_EQ(s.backlog, 0) << s.partition;
    EXPECT_EQ(s.ack_floor, 20) << s.partition;
  }
}

}  // namespace
}  // namespace brook::testing
