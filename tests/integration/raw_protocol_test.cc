// Integration tests of the real brook-server over the raw native protocol:
// topic creation, produce/fetch byte fidelity, long-poll, list offsets, bad
// input of every kind (each while another connection keeps working), crash
// recovery under flush=always, graceful stop, flag and config validation.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/record_batch.h"
#include "common/rpc/frame.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/raw_conn.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

// Record timestamps are kEpochMs + `timestamp`: recent enough that the
// server's retention (7 days by default) never deletes them.
const int64_t kEpochMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch()).count() / 1000000 * 1000000;

std::vector<uint8_t> MakeBatch(int records, int64_t timestamp, const std::string& prefix,
                               Compression compression = Compression::kZstd) {
  timestamp += kEpochMs;
  RecordBatchBuilder::Options o;
  o.compression = compression;
  RecordBatchBuilder b(o);
  for (int i = 0; i < records; ++i) {
    std::string key = absl::StrCat(prefix, "-k", i);
    std::string value = absl::StrCat(prefix, "-value-", i, std::string(40, 'x'));
    b.Append(timestamp + i, key, value);
  }
  return b.Build();
}

// `batch` as the broker stores it: base offset and leader epoch patched.
std::vector<uint8_t> AsStored(std::vector<uint8_t> batch, int64_t base_offset, int32_t epoch) {
  SetBaseOffset(batch, base_offset);
  SetPartitionLeaderEpoch(batch, epoch);
  return batch;
}

// One server shared by the tests of the data path and of bad input.
class RawProtocolTest : public SharedServerTest<RawProtocolTest> {
 protected:
  friend class SharedServerTest<RawProtocolTest>;
  static constexpr bool kServerMayStop = false;

  // Creates a topic and waits until the broker hosts it; returns its epoch
  // of partition 0.
  int32_t MakeTopic(const std::string& topic, int32_t partitions = 1,
                    proto::TopicConfig config = {}) {
    auto d = CreateTopic(*coordinator_, topic, partitions, config);
    EXPECT_TRUE(d.ok()) << d.status();
    auto w = WaitForTopic(*broker_, topic, partitions);
    EXPECT_TRUE(w.ok()) << w;
    return d.ok() && d->partitions_size() > 0 ? d->partitions(0).leader_epoch() : 0;
  }

  // The broker still serves a connection opened before the bad input and a
  // fresh one.
  void ExpectStillServing() {
    proto::MetadataRequest req;
    proto::MetadataResponse resp;
    auto r = broker_->CallSync(proto::API_METADATA, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
    auto fresh = Connect(*io_, server_->broker());
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    auto r2 = (*fresh)->CallSync(proto::API_METADATA, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r2.ok()) << r2.status();
    ASSERT_EQ(resp.brokers_size(), 1);
    EXPECT_EQ(resp.brokers(0).port(), server_->broker().port);
  }

};


TEST_F(RawProtocolTest, ProduceThenFetchReturnsTheSameBytes) {
  int32_t epoch = MakeTopic("roundtrip");
  std::vector<uint8_t> b1 = MakeBatch(10, 1000, "a");
  std::vector<uint8_t> b2 = MakeBatch(5, 2000, "b");
  auto r1 = Produce(*broker_, "roundtrip", 0, b1);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_EQ(r1->partitions_size(), 1);
  EXPECT_EQ(r1->partitions(0).error_code(), proto::NONE) << r1->partitions(0).error_message();
  EXPECT_EQ(r1->partitions(0).base_offset(), 0);
  auto r2 = Produce(*broker_, "roundtrip", 0, b2);
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->partitions(0).base_offset(), 10);

  auto f = Fetch(*broker_, "roundtrip", 0, 0);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->response.partitions_size(), 1);
  const auto& pr = f->response.partitions(0);
  EXPECT_EQ(pr.error_code(), proto::NONE);
  EXPECT_EQ(pr.high_watermark(), 15);
  EXPECT_EQ(pr.log_start_offset(), 0);
  std::vector<uint8_t> expected = AsStored(b1, 0, epoch);
  std::vector<uint8_t> e2 = AsStored(b2, 10, epoch);
  expected.insert(expected.end(), e2.begin(), e2.end());
  EXPECT_EQ(pr.size(), expected.size());
  EXPECT_EQ(f->payload, expected);

  // The records decode to what was produced.
  auto batches = SplitBatches(f->payload);
  ASSERT_TRUE(batches.ok()) << batches.status();
  ASSERT_EQ(batches->size(), 2u);
  EXPECT_TRUE((*batches)[1].VerifyCrc().ok());
  RecordReader reader;
  std::vector<RecordView> records;
  ASSERT_TRUE(reader.Read((*batches)[1], &records).ok());
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[3].offset, 13);
  EXPECT_EQ(*records[3].key, "b-k3");

  // Fetching from the middle returns the batch that holds the offset; from
  // the end nothing; past the end OFFSET_OUT_OF_RANGE.
  auto mid = Fetch(*broker_, "roundtrip", 0, 12);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->payload, e2);
  auto end = Fetch(*broker_, "roundtrip", 0, 15);
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end->payload.empty());
  EXPECT_EQ(end->response.partitions(0).error_code(), proto::NONE);
  auto past = Fetch(*broker_, "roundtrip", 0, 100);
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->response.partitions(0).error_code(), proto::OFFSET_OUT_OF_RANGE);
}

TEST_F(RawProtocolTest, LongPollFetchWakesOnProduce) {
  MakeTopic("longpoll");
  // Nothing arrives: the fetch waits for max_wait and returns empty.
  auto t0 = std::chrono::steady_clock::now();
  auto empty = Fetch(*broker_, "longpoll", 0, 0, /*max_wait_ms=*/300, /*min_bytes=*/1);
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->payload.empty());
  EXPECT_GE(waited, 250ms);

  auto other = Connect(*io_, server_->broker());
  ASSERT_TRUE(other.ok());
  auto pending = std::async(std::launch::async, [&] {
    return Fetch(**other, "longpoll", 0, 0, /*max_wait_ms=*/10000, /*min_bytes=*/1);
  });
  EXPECT_EQ(pending.wait_for(300ms), std::future_status::timeout);
  auto start = std::chrono::steady_clock::now();
  auto p = Produce(*broker_, "longpoll", 0, MakeBatch(3, 5000, "lp"));
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  auto f = pending.get();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->response.partitions(0).high_watermark(), 3);
  auto batches = SplitBatches(f->payload);
  ASSERT_TRUE(batches.ok());
  ASSERT_EQ(batches->size(), 1u);
  EXPECT_EQ((*batches)[0].record_count(), 3);
}

TEST_F(RawProtocolTest, ListOffsetsEarliestLatestAndByTime) {
  MakeTopic("offsets");
  for (int i = 0; i < 3; ++i) {
    auto p = Produce(*broker_, "offsets", 0, MakeBatch(4, 10000 * (i + 1), "o"));
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p->partitions(0).base_offset(), 4 * i);
  }
  auto list = [&](int64_t ts) -> int64_t {
    proto::ListOffsetsRequest req;
    auto* p = req.add_partitions();
    p->set_topic("offsets");
    p->set_partition(0);
    p->set_timestamp(ts);
    proto::ListOffsetsResponse resp;
    auto r = broker_->CallSync(proto::API_LIST_OFFSETS, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || resp.partitions_size() != 1) return -100;
    EXPECT_EQ(resp.partitions(0).error_code(), proto::NONE);
    return resp.partitions(0).offset();
  };
  EXPECT_EQ(list(-2), 0);
  EXPECT_EQ(list(-1), 12);
  EXPECT_EQ(list(kEpochMs), 0);
  EXPECT_EQ(list(kEpochMs + 20001), 4);  // the second batch (timestamps +20000..+20003)
  EXPECT_EQ(list(kEpochMs + 30000), 8);
  EXPECT_EQ(list(kEpochMs + 99999), 12);
}

TEST_F(RawProtocolTest, OversizedFrameClosesOnlyThatConnection) {
  RawConn conn(server_->broker());
  ASSERT_TRUE(conn.ok());
  std::vector<uint8_t> prefix(4);
  wire::PutBE32(prefix.data(), 64u * 1024 * 1024);  // above --max-frame-bytes=1 MiB
  ASSERT_TRUE(conn.Send(prefix));
  EXPECT_TRUE(conn.WaitClosed(5s));
  ExpectStillServing();
}

TEST_F(RawProtocolTest, GarbageBytesCloseOnlyThatConnection) {
  RawConn conn(server_->broker());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn.Send(std::vector<uint8_t>(64, 0xff)));
  EXPECT_TRUE(conn.WaitClosed(5s));
  // A frame whose header size exceeds its body.
  RawConn conn2(server_->broker());
  ASSERT_TRUE(conn2.ok());
  std::vector<uint8_t> frame(4 + 16, 0);
  wire::PutBE32(frame.data(), 16);
  wire::PutBE16(frame.data() + 4, proto::API_METADATA);
  wire::PutBE32(frame.data() + 12, 1000);
  ASSERT_TRUE(conn2.Send(frame));
  EXPECT_TRUE(conn2.WaitClosed(5s));
  ExpectStillServing();
}

TEST_F(RawProtocolTest, TruncatedFrameThenClose) {
  {
    RawConn conn(server_->broker());
    ASSERT_TRUE(conn.ok());
    std::vector<uint8_t> frame = RawFrame(proto::API_METADATA, 0, 1, "");
    wire::PutBE32(frame.data(), 200);  // claims more than is sent
    ASSERT_TRUE(conn.Send(frame));
  }
  ExpectStillServing();
}

TEST_F(RawProtocolTest, UnknownApiAndUnsupportedVersion) {
  RawConn conn(server_->broker());
  ASSERT_TRUE(conn.ok());
  ASSERT_TRUE(conn.Send(RawFrame(999, 0, 7, "")));
  uint16_t api = 0;
  proto::ErrorCode code = proto::NONE;
  ASSERT_TRUE(conn.ReadResponse(&api, &code, 5s));
  EXPECT_EQ(api, 999 | rpc::kResponseBit);
  EXPECT_EQ(code, proto::UNSUPPORTED_API);
  ASSERT_TRUE(conn.Send(RawFrame(proto::API_PRODUCE, 77, 8, "")));
  ASSERT_TRUE(conn.ReadResponse(&api, &code, 5s));
  EXPECT_EQ(code, proto::UNSUPPORTED_VERSION);
  ExpectStillServing();
}

TEST_F(RawProtocolTest, UnparsableHeaderIsInvalidRequest) {
  RawConn conn(server_->broker());
  ASSERT_TRUE(conn.ok());
  const std::string junk("\xff\xff\xff\xff\x0f", 5);
  for (uint16_t api : {proto::API_PRODUCE, proto::API_FETCH, proto::API_LIST_OFFSETS,
                       proto::API_METADATA}) {
    ASSERT_TRUE(conn.Send(RawFrame(api, 0, api, junk)));
    uint16_t got_api = 0;
    proto::ErrorCode code = proto::NONE;
    ASSERT_TRUE(conn.ReadResponse(&got_api, &code, 5s)) << api;
    EXPECT_EQ(got_api, api | rpc::kResponseBit);
    EXPECT_EQ(code, proto::INVALID_REQUEST) << api;
  }
  ExpectStillServing();
}

TEST_F(RawProtocolTest, BadInputInProduce) {
  MakeTopic("badinput");
  // Bad CRC.
  std::vector<uint8_t> corrupt = MakeBatch(5, 1000, "c");
  corrupt.back() ^= 0x5a;
  auto r = Produce(*broker_, "badinput", 0, corrupt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->partitions(0).error_code(), proto::CORRUPT_MESSAGE);
  // Unknown partition and unknown topic.
  r = Produce(*broker_, "badinput", 7, MakeBatch(1, 1000, "u"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->partitions(0).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
  r = Produce(*broker_, "no-such-topic", 0, MakeBatch(1, 1000, "u"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->partitions(0).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
  // Bad acks.
  auto acks = Produce(*broker_, "badinput", 0, MakeBatch(1, 1000, "a"), /*acks=*/2);
  EXPECT_EQ(ToErrorCode(acks.status()), proto::INVALID_REQUIRED_ACKS) << acks.status();
  // Sizes that do not add up to the payload.
  {
    proto::ProduceRequest req;
    req.set_acks(1);
    auto* p = req.add_partitions();
    p->set_topic("badinput");
    p->set_partition(0);
    std::vector<uint8_t> batch = MakeBatch(1, 1000, "m");
    p->set_size(static_cast<uint32_t>(batch.size() + 5));
    proto::ProduceResponse resp;
    auto s = broker_->CallSync(proto::API_PRODUCE, 0, req, batch, &resp, 5s);
    EXPECT_EQ(ToErrorCode(s.status()), proto::INVALID_REQUEST) << s.status();
  }
  // Invalid topic name at the coordinator.
  auto bad = CreateTopic(*coordinator_, "bad topic!", 1);
  EXPECT_EQ(ToErrorCode(bad.status()), proto::INVALID_TOPIC) << bad.status();
  // Nothing of the above was appended.
  auto f = Fetch(*broker_, "badinput", 0, 0);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->response.partitions(0).high_watermark(), 0);
  ExpectStillServing();
}

TEST_F(RawProtocolTest, AcksZeroSendsNoResponse) {
  MakeTopic("acks0");
  RawConn conn(server_->broker());
  ASSERT_TRUE(conn.ok());
  std::vector<uint8_t> batch = MakeBatch(2, 1000, "z");
  proto::ProduceRequest req;
  req.set_acks(0);
  auto* p = req.add_partitions();
  p->set_topic("acks0");
  p->set_partition(0);
  p->set_size(static_cast<uint32_t>(batch.size()));
  ASSERT_TRUE(conn.Send(RawFrame(proto::API_PRODUCE, 0, 1, req.SerializeAsString(), batch)));
  proto::MetadataRequest md;
  ASSERT_TRUE(conn.Send(RawFrame(proto::API_METADATA, 0, 2, md.SerializeAsString())));
  uint16_t api = 0;
  proto::ErrorCode code = proto::UNKNOWN;
  ASSERT_TRUE(conn.ReadResponse(&api, &code, 5s));
  EXPECT_EQ(api, proto::API_METADATA | rpc::kResponseBit);  // no produce response came first
  EXPECT_EQ(code, proto::NONE);
  // The data is there.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  int64_t hw = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto f = Fetch(*broker_, "acks0", 0, 0);
    ASSERT_TRUE(f.ok());
    hw = f->response.partitions(0).high_watermark();
    if (hw == 2) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(hw, 2);
}

std::string HttpGet(const Address& a, const std::string& path) {
  RawConn conn(a);
  if (!conn.ok()) return "";
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (!conn.Send(std::vector<uint8_t>(req.begin(), req.end()))) return "";
  std::string out;
  uint8_t c;
  while (conn.ReadN(&c, 1, 5s)) out.push_back(static_cast<char>(c));
  return out;
}

TEST_F(RawProtocolTest, AdminEndpointsServe) {
  MakeTopic("admin-visible");
  auto p = Produce(*broker_, "admin-visible", 0, MakeBatch(3, 1000, "m"));
  ASSERT_TRUE(p.ok()) << p.status();
  std::string body = HttpGet(server_->admin(), "/admin/partitions");
  EXPECT_NE(body.find("200 OK"), std::string::npos) << body;
  EXPECT_NE(body.find("\"topic\":\"admin-visible\""), std::string::npos) << body;
  std::string metrics = HttpGet(server_->admin(), "/metrics");
  EXPECT_NE(metrics.find("brook_records_in_total{topic=\"admin-visible\"} 3"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("brook_partition_log_end_offset{topic=\"admin-visible\",partition=\"0\"} 3"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("brook_request_latency_seconds_count{api=\"produce\"}"), std::string::npos);
  EXPECT_NE(HttpGet(server_->admin(), "/healthz").find("200 OK"), std::string::npos);
}

TEST_F(RawProtocolTest, NameServerLearnsRoutesFromTheBroker) {
  MakeTopic("routed", 3);
  auto ns = Connect(*io_, server_->nameserver());
  ASSERT_TRUE(ns.ok()) << ns.status();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  proto::MetadataResponse resp;
  bool found = false;
  while (!found && std::chrono::steady_clock::now() < deadline) {
    proto::MetadataRequest req;
    req.add_topics("routed");
    auto r = (*ns)->CallSync(proto::API_METADATA, 0, req, {}, &resp, 5s);
    ASSERT_TRUE(r.ok()) << r.status();
    found = resp.topics_size() == 1 && resp.topics(0).error_code() == proto::NONE &&
            resp.topics(0).partitions_size() == 3;
    if (!found) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(found) << resp.DebugString();
  for (const auto& p : resp.topics(0).partitions()) EXPECT_EQ(p.leader(), 1);
  bool broker_listed = false;
  for (const auto& b : resp.brokers()) {
    if (b.broker_id() == 1 && b.port() == server_->broker().port) broker_listed = true;
  }
  EXPECT_TRUE(broker_listed) << resp.DebugString();
  bool coordinator_listed = false;
  for (const auto& c : resp.coordinators()) {
    if (c.port() == server_->coordinator().port) coordinator_listed = true;
  }
  EXPECT_TRUE(coordinator_listed) << resp.DebugString();
}

// ---- tests with a server of their own ----

TEST(ServerLifecycleTest, KillDuringAckedProduceLosesNothingAcknowledged) {
  ServerProcess server;
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  rpc::IoThread io;
  auto coordinator = Connect(io, server.coordinator());
  ASSERT_TRUE(coordinator.ok());
  proto::TopicConfig config;
  config.set_flush_policy(proto::FLUSH_ALWAYS);
  config.set_segment_bytes(64 * 1024);  // several segments
  auto desc = CreateTopic(**coordinator, "durable", 1, config);
  ASSERT_TRUE(desc.ok()) << desc.status();
  int32_t epoch = desc->partitions(0).leader_epoch();
  auto broker = Connect(io, server.broker());
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE(WaitForTopic(**broker, "durable", 1).ok());

  // Pipelined acks=1 produces; every acknowledged batch is remembered.
  std::mutex mu;
  std::map<int64_t, std::vector<uint8_t>> acked;  // base offset -> batch as sent
  std::atomic<int> in_flight{0};
  std::atomic<bool> stop{false};
  std::thread producer([&] {
    int n = 0;
    while (!stop.load()) {
      if (in_flight.load() >= 16) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      auto batch = std::make_shared<std::vector<uint8_t>>(
          MakeBatch(1 + n % 7, 1000 + n, absl::StrCat("d", n)));
      ++n;
      proto::ProduceRequest req;
      req.set_acks(1);
      auto* p = req.add_partitions();
      p->set_topic("durable");
      p->set_partition(0);
      p->set_size(static_cast<uint32_t>(batch->size()));
      in_flight.fetch_add(1);
      (*broker)->Call(proto::API_PRODUCE, 0, req, *batch, 10s,
                      [&, batch](absl::StatusOr<rpc::Response> r) {
                        in_flight.fetch_sub(1);
                        if (!r.ok()) return;
                        proto::ProduceResponse resp;
                        if (!resp.ParseFromString(r->header) || resp.partitions_size() != 1 ||
                            resp.partitions(0).error_code() != proto::NONE) {
                          return;
                        }
                        std::lock_guard<std::mutex> l(mu);
                        acked[resp.partitions(0).base_offset()] = *batch;
                      });
    }
  });
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (acked.size() >= 300) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  server.Kill();  // SIGKILL with produces in flight
  stop.store(true);
  producer.join();
  (*broker)->Close();
  auto drain = std::chrono::steady_clock::now() + 10s;
  while (in_flight.load() > 0 && std::chrono::steady_clock::now() < drain) {
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(in_flight.load(), 0);
  std::map<int64_t, std::vector<uint8_t>> snapshot;
  {
    std::lock_guard<std::mutex> l(mu);
    snapshot = acked;
  }
  ASSERT_GE(snapshot.size(), 50u) << server.LogTail();

  ASSERT_TRUE(server.Restart().ok()) << server.LogTail();
  auto broker2 = Connect(io, server.broker());
  ASSERT_TRUE(broker2.ok());
  ASSERT_TRUE(WaitForTopic(**broker2, "durable", 1).ok()) << server.LogTail();

  std::vector<uint8_t> all;
  int64_t offset = 0;
  int64_t hw = -1;
  while (true) {
    auto f = Fetch(**broker2, "durable", 0, offset, 0, 0, 1 << 20);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_EQ(f->response.partitions(0).error_code(), proto::NONE);
    hw = f->response.partitions(0).high_watermark();
    if (f->payload.empty()) break;
    auto batches = SplitBatches(f->payload);
    ASSERT_TRUE(batches.ok()) << batches.status();
    for (const auto& b : *batches) {
      ASSERT_EQ(b.base_offset(), offset) << "offsets are not contiguous";
      ASSERT_TRUE(b.VerifyCrc().ok());
      offset = b.last_offset() + 1;
    }
    all.insert(all.end(), f->payload.begin(), f->payload.end());
  }
  EXPECT_EQ(offset, hw);
  auto batches = SplitBatches(all);
  ASSERT_TRUE(batches.ok());
  std::map<int64_t, std::vector<uint8_t>> stored;
  for (const auto& b : *batches) stored[b.base_offset()].assign(b.bytes().begin(), b.bytes().end());
  for (const auto& [base, batch] : snapshot) {
    auto it = stored.find(base);
    ASSERT_NE(it, stored.end()) << "acknowledged batch at " << base << " is missing";
    EXPECT_EQ(it->second, AsStored(batch, base, epoch)) << "batch at " << base;
  }
  EXPECT_EQ(server.Terminate(), 0) << server.LogTail();
}

TEST(ServerLifecycleTest, GracefulStopKeepsDataAcrossRestart) {
  ServerProcess server;
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  std::vector<uint8_t> batch = MakeBatch(3, 1000, "g");
  int32_t epoch = 0;
  {
    rpc::IoThread io;
    auto coordinator = Connect(io, server.coordinator());
    ASSERT_TRUE(coordinator.ok());
    proto::TopicConfig config;
    config.set_flush_policy(proto::FLUSH_OS);
    auto desc = CreateTopic(**coordinator, "graceful", 2, config);
    ASSERT_TRUE(desc.ok()) << desc.status();
    epoch = desc->partitions(1).leader_epoch();
    auto broker = Connect(io, server.broker());
    ASSERT_TRUE(broker.ok());
    ASSERT_TRUE(WaitForTopic(**broker, "graceful", 2).ok());
    auto r = Produce(**broker, "graceful", 1, batch);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->partitions(0).error_code(), proto::NONE);
  }
  EXPECT_EQ(server.Terminate(), 0) << server.LogTail();
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  rpc::IoThread io;
  auto broker = Connect(io, server.broker());
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE(WaitForTopic(**broker, "graceful", 2).ok()) << server.LogTail();
  auto f = Fetch(**broker, "graceful", 1, 0);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->payload, AsStored(batch, 0, epoch));
  EXPECT_EQ(server.Terminate(), 0);
}

TEST(ServerLifecycleTest, ConfigFileIsReadAndFlagsOverrideIt) {
  std::string dir = std::filesystem::temp_directory_path().string() +
                    absl::StrCat("/brook-config-", getpid());
  std::filesystem::create_directories(dir);
  std::string path = dir + "/server.conf";
  {
    std::ofstream out(path);
    out << "broker_id: 7\n"
        << "broker_listen: \"127.0.0.1:1\"\n"  // overridden by the harness's flag
        << "default_topic_config { flush_policy: FLUSH_OS }\n";
  }
  ServerProcess server({"--config=" + path});
  auto s = server.Start();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_NE(server.broker().port, 1);
  rpc::IoThread io;
  auto broker = Connect(io, server.broker());
  ASSERT_TRUE(broker.ok());
  proto::MetadataRequest req;
  proto::MetadataResponse resp;
  ASSERT_TRUE((*broker)->CallSync(proto::API_METADATA, 0, req, {}, &resp, 5s).ok());
  ASSERT_EQ(resp.brokers_size(), 1);
  EXPECT_EQ(resp.brokers(0).broker_id(), 7);
  EXPECT_EQ(server.Terminate(), 0);
  std::filesystem::remove_all(dir);
}

TEST(ServerFlagsTest, InvalidSettingsExitNonZeroWithAClearError) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::string bad_config = std::filesystem::temp_directory_path().string() +
                           absl::StrCat("/brook-bad-config-", getpid());
  {
    std::ofstream out(bad_config);
    out << "broker_id: \"seven\"\n";
  }
  std::vector<Case> cases = {
      {{"--roles=broker,juggler"}, "unknown role 'juggler'"},
      {{"--broker-listen=localhost"}, "--broker-listen"},
      {{"--admin-listen=127.0.0.1:99999"}, "--admin-listen"},
      {{"--config=/nonexistent/brook.conf"}, "cannot read config file"},
      {{"--config=" + bad_config}, "invalid config file"},
      {{"--coordinator-quorum=2@127.0.0.1:9093,3@127.0.0.1:9094"}, "is not a member"},
      {{"--nameservers=nohostport"}, "--nameservers"},
  };
  for (const auto& c : cases) {
    std::string err;
    int code = RunServerToExit(c.args, &err);
    EXPECT_NE(code, 0) << c.args[0];
    EXPECT_NE(code, -1) << c.args[0] << " did not exit";
    EXPECT_NE(err.find(c.message), std::string::npos) << c.args[0] << ": " << err;
  }
  std::filesystem::remove(bad_config);
}

}  // namespace
}  // namespace brook::testing
