// Integration tests of bad input and hostile clients against the real
// brook-server: the exact error of each malformed frame, invalid partition
// ids on every partition api, produce sizes that do not add up, 50
// connections sending garbage while a good client works, and a consumer that
// pipelines fetches without ever reading them. Memory is checked through the
// server's VmRSS.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/record_batch.h"
#include "common/rpc/frame.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/raw_conn.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int64_t kMaxRssBytes = 256ll << 20;

const int64_t kEpochMs =
    std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now().time_since_epoch()).count();

std::vector<uint8_t> MakeBatch(int records, const std::string& prefix, size_t value_bytes = 40,
                               Compression compression = Compression::kZstd, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  RecordBatchBuilder::Options o;
  o.compression = compression;
  RecordBatchBuilder b(o);
  for (int i = 0; i < records; ++i) {
    std::string value(value_bytes, '\0');
    for (auto& c : value) c = static_cast<char>('a' + rng() % 26);
    b.Append(kEpochMs + i, absl::StrCat(prefix, "-k", i), value);
  }
  return b.Build();
}

// VmRSS of `pid` in bytes; -1 if unreadable.
int64_t RssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::string num;
    for (char c : line) {
      if (c >= '0' && c <= '9') num.push_back(c);
    }
    int64_t kb = 0;
    if (absl::SimpleAtoi(num, &kb)) return kb * 1024;
  }
  return -1;
}

class RobustnessTest : public SharedServerTest<RobustnessTest> {
 protected:
  friend class SharedServerTest<RobustnessTest>;
  static constexpr bool kServerMayStop = true;

  void MakeTopic(const std::string& topic, int32_t partitions) {
    auto d = CreateTopic(*coordinator_, topic, partitions);
    ASSERT_TRUE(d.ok()) << d.status();
    auto w = WaitForTopic(*broker_, topic, partitions);
    ASSERT_TRUE(w.ok()) << w;
  }

  // A metadata call on a connection opened before the bad input, and on a
  // fresh one, both succeed.
  void ExpectStillServing() {
    proto::MetadataRequest req;
    proto::MetadataResponse resp;
    auto r = broker_->CallSync(proto::API_METADATA, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r.ok()) << r.status();
    auto fresh = Connect(*io_, server_->broker());
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    auto r2 = (*fresh)->CallSync(proto::API_METADATA, 0, req, {}, &resp, 5s);
    EXPECT_TRUE(r2.ok()) << r2.status();
    EXPECT_EQ(resp.brokers_size(), 1);
  }

};


// Each malformed frame gets its documented answer (docs/protocol.md).
TEST_F(RobustnessTest, MalformedFramesGetTheirSpecificErrors) {
  {  // Over the limit: FRAME_TOO_LARGE under api 0x8000 and correlation id 0, then closed.
    RawConn c(server_->broker());
    ASSERT_TRUE(c.ok());
    std::vector<uint8_t> frame = RawFrame(proto::API_METADATA, 0, 42, "");
    wire::PutBE32(frame.data(), (1u << 20) + 1);  // --max-frame-bytes=1 MiB
    ASSERT_TRUE(c.Send(frame));
    RawConn::Response r;
    ASSERT_TRUE(c.ReadResponse(&r));
    EXPECT_EQ(r.api, rpc::kResponseBit);
    EXPECT_EQ(r.correlation_id, 0u);
    EXPECT_EQ(r.code, proto::FRAME_TOO_LARGE);
    EXPECT_TRUE(c.WaitClosed());
  }
  {  // header_size beyond the frame: INVALID_REQUEST under the request's id, then closed.
    RawConn c(server_->broker());
    ASSERT_TRUE(c.ok());
    std::vector<uint8_t> frame = RawFrame(proto::API_FETCH, 0, 77, std::string(8, '\0'));
    wire::PutBE32(frame.data() + 12, 1000);
    ASSERT_TRUE(c.Send(frame));
    RawConn::Response r;
    ASSERT_TRUE(c.ReadResponse(&r));
    EXPECT_EQ(r.api, proto::API_FETCH | rpc::kResponseBit);
    EXPECT_EQ(r.correlation_id, 77u);
    EXPECT_EQ(r.code, proto::INVALID_REQUEST);
    EXPECT_TRUE(c.WaitClosed());
  }
  {  // size below 12: closed with no answer.
    RawConn c(server_->broker());
    ASSERT_TRUE(c.ok());
    std::vector<uint8_t> frame(4 + 11, 0);
    wire::PutBE32(frame.data(), 11);
    ASSERT_TRUE(c.Send(frame));
    RawConn::Response r;
    EXPECT_FALSE(c.ReadResponse(&r, 3s)) << "answered a frame of size 11";
    EXPECT_TRUE(c.WaitClosed());
  }
  {  // Unknown api, unsupported version and an unparsable header keep the
     // connection open; each answer carries its request's id.
    RawConn c(server_->broker());
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c.Send(RawFrame(4242, 0, 1, "")));
    ASSERT_TRUE(c.Send(RawFrame(proto::API_FETCH, 9, 2, "")));
    ASSERT_TRUE(c.Send(RawFrame(proto::API_LIST_OFFSETS, 0, 3, std::string("\x0a\xff\xff", 3))));
    proto::MetadataRequest md;
    ASSERT_TRUE(c.Send(RawFrame(proto::API_METADATA, 0, 4, md.SerializeAsString())));
    std::map<uint32_t, RawConn::Response> got;
    for (int i = 0; i < 4; ++i) {
      RawConn::Response r;
      ASSERT_TRUE(c.ReadResponse(&r)) << "response " << i;
      got[r.correlation_id] = r;
    }
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[1].api, 4242 | rpc::kResponseBit);
    EXPECT_EQ(got[1].code, proto::UNSUPPORTED_API);
    EXPECT_EQ(got[2].api, proto::API_FETCH | rpc::kResponseBit);
    EXPECT_EQ(got[2].code, proto::UNSUPPORTED_VERSION);
    EXPECT_EQ(got[3].api, proto::API_LIST_OFFSETS | rpc::kResponseBit);
    EXPECT_EQ(got[3].code, proto::INVALID_REQUEST);
    EXPECT_EQ(got[4].api, proto::API_METADATA | rpc::kResponseBit);
    EXPECT_EQ(got[4].code, proto::NONE);
  }
  ExpectStillServing();
}

TEST_F(RobustnessTest, InvalidPartitionIdsAreUnknownTopicOrPartition) {
  MakeTopic("pids", 2);
  for (int32_t partition : {-1, 2, 3, std::numeric_limits<int32_t>::min(),
                            std::numeric_limits<int32_t>::max()}) {
    SCOPED_TRACE(absl::StrCat("partition ", partition));
    auto p = Produce(*broker_, "pids", partition, MakeBatch(1, "p"));
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p->partitions_size(), 1);
    EXPECT_EQ(p->partitions(0).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
    EXPECT_EQ(p->partitions(0).partition(), partition);
    EXPECT_EQ(p->partitions(0).base_offset(), -1);

    auto f = Fetch(*broker_, "pids", partition, 0);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_EQ(f->response.partitions_size(), 1);
    EXPECT_EQ(f->response.partitions(0).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
    EXPECT_EQ(f->response.partitions(0).size(), 0u);
    EXPECT_TRUE(f->payload.empty());

    proto::ListOffsetsRequest lreq;
    auto* lp = lreq.add_partitions();
    lp->set_topic("pids");
    lp->set_partition(partition);
    lp->set_timestamp(-1);
    proto::ListOffsetsResponse lresp;
    auto l = broker_->CallSync(proto::API_LIST_OFFSETS, 0, lreq, {}, &lresp, 5s);
    ASSERT_TRUE(l.ok()) << l.status();
    ASSERT_EQ(lresp.partitions_size(), 1);
    EXPECT_EQ(lresp.partitions(0).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
  }
  // A bad partition next to good ones fails alone: produce and fetch of
  // {0, -1, 1} in one request.
  std::vector<uint8_t> b0 = MakeBatch(2, "zero");
  std::vector<uint8_t> bad = MakeBatch(1, "bad");
  std::vector<uint8_t> b1 = MakeBatch(3, "one");
  proto::ProduceRequest req;
  req.set_acks(1);
  req.set_timeout_ms(10000);
  std::vector<uint8_t> payload;
  for (auto [partition, batch] : {std::pair{0, &b0}, std::pair{-1, &bad}, std::pair{1, &b1}}) {
    auto* p = req.add_partitions();
    p->set_topic("pids");
    p->set_partition(partition);
    p->set_size(static_cast<uint32_t>(batch->size()));
    payload.insert(payload.end(), batch->begin(), batch->end());
  }
  proto::ProduceResponse resp;
  auto r = broker_->CallSync(proto::API_PRODUCE, 0, req, payload, &resp, 10s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(resp.partitions_size(), 3);
  EXPECT_EQ(resp.partitions(0).error_code(), proto::NONE);
  EXPECT_EQ(resp.partitions(0).base_offset(), 0);
  EXPECT_EQ(resp.partitions(1).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(resp.partitions(2).error_code(), proto::NONE);
  EXPECT_EQ(resp.partitions(2).base_offset(), 0);

  proto::FetchRequest freq;
  freq.set_max_bytes(1 << 20);
  freq.set_replica_id(-1);
  for (int32_t partition : {0, -1, 1}) {
    auto* p = freq.add_partitions();
    p->set_topic("pids");
    p->set_partition(partition);
    p->set_fetch_offset(0);
    p->set_max_bytes(1 << 20);
  }
  proto::FetchResponse fresp;
  auto f = broker_->CallSync(proto::API_FETCH, 0, freq, {}, &fresp, 10s);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(fresp.partitions_size(), 3);
  EXPECT_EQ(fresp.partitions(0).error_code(), proto::NONE);
  EXPECT_EQ(fresp.partitions(0).high_watermark(), 2);
  EXPECT_EQ(fresp.partitions(1).error_code(), proto::UNKNOWN_TOPIC_OR_PARTITION);
  EXPECT_EQ(fresp.partitions(1).size(), 0u);
  EXPECT_EQ(fresp.partitions(2).error_code(), proto::NONE);
  EXPECT_EQ(fresp.partitions(2).high_watermark(), 3);
  EXPECT_EQ(f->size(), fresp.partitions(0).size() + fresp.partitions(2).size());
  ExpectStillServing();
}

TEST_F(RobustnessTest, ProduceSizesThatDoNotAddUpAreInvalidRequest) {
  MakeTopic("sizes", 2);
  std::vector<uint8_t> a = MakeBatch(2, "a");
  std::vector<uint8_t> b = MakeBatch(2, "b");
  auto call = [&](std::vector<uint32_t> sizes, const std::vector<uint8_t>& payload) {
    proto::ProduceRequest req;
    req.set_acks(1);
    req.set_timeout_ms(10000);
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto* p = req.add_partitions();
      p->set_topic("sizes");
      p->set_partition(static_cast<int32_t>(i % 2));
      p->set_size(sizes[i]);
    }
    proto::ProduceResponse resp;
    return broker_->CallSync(proto::API_PRODUCE, 0, req, payload, &resp, 10s).status();
  };
  std::vector<uint8_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  const auto sa = static_cast<uint32_t>(a.size());
  const auto sb = static_cast<uint32_t>(b.size());
  // Sum below, above, far above (uint32 sizes that would wrap a 32-bit sum),
  // sizes with no payload, and payload with no partitions.
  for (const auto& [sizes, payload] :
       std::vector<std::pair<std::vector<uint32_t>, std::vector<uint8_t>>>{
           {{sa, sb - 1}, both},
           {{sa, sb + 1}, both},
           {{sa, 0xffffffffu, sb + 1}, both},
           {{sa}, {}},
           {{}, both},
       }) {
    absl::Status s = call(sizes, payload);
    EXPECT_EQ(ToErrorCode(s), proto::INVALID_REQUEST) << s;
  }
  // Nothing was appended, and the connection still works.
  for (int32_t partition : {0, 1}) {
    auto f = Fetch(*broker_, "sizes", partition, 0);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->response.partitions(0).high_watermark(), 0);
  }
  EXPECT_TRUE(call({sa, sb}, both).ok());
  ExpectStillServing();
}

// 50 connections send garbage of every kind concurrently while a good client
// produces and consumes without a single error; memory stays bounded.
TEST_F(RobustnessTest, FiftyGarbageConnectionsDoNotDisturbAGoodClient) {
  MakeTopic("good", 1);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> garbage_frames{0};
  std::vector<std::thread> attackers;
  // Stops and joins the attackers on every exit path (a failed ASSERT too).
  struct Joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop.store(true);
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } joiner{stop, attackers};
  for (int t = 0; t < 50; ++t) {
    attackers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t) * 2654435761u);
      int kind = t;
      while (!stop.load()) {
        RawConn c(server_->broker());
        if (!c.ok()) {
          std::this_thread::sleep_for(5ms);
          continue;
        }
        std::vector<uint8_t> bytes;
        switch (kind++ % 7) {
          case 0: {  // random bytes; the first four are forced over the frame limit
            bytes.resize(256 + rng() % 4096);
            for (auto& x : bytes) x = static_cast<uint8_t>(rng());
            bytes[0] |= 0x80;
            break;
          }
          case 1:  // oversized prefix
            bytes.resize(4);
            wire::PutBE32(bytes.data(), 0xfffffff0u);
            break;
          case 2: {  // truncated frame: claims 64 KiB, sends 100 bytes, then closes
            bytes = RawFrame(proto::API_PRODUCE, 0, 1, std::string(100, 'x'));
            wire::PutBE32(bytes.data(), 64 * 1024);
            break;
          }
          case 3: {  // header size beyond the frame
            bytes = RawFrame(proto::API_FETCH, 0, 5, std::string(20, '\0'));
            wire::PutBE32(bytes.data() + 12, 0x7fffffff);
            break;
          }
          case 4: {  // unparsable protobuf headers, pipelined
            for (uint16_t api : {proto::API_PRODUCE, proto::API_FETCH, proto::API_LIST_OFFSETS}) {
              auto f = RawFrame(api, 0, api, std::string("\xff\xff\xff\xff\x0f", 5));
              bytes.insert(bytes.end(), f.begin(), f.end());
            }
            break;
          }
          case 5: {  // unknown apis and versions
            for (uint32_t i = 0; i < 20; ++i) {
              auto f = RawFrame(static_cast<uint16_t>(900 + i), static_cast<uint16_t>(i), i, "");
              bytes.insert(bytes.end(), f.begin(), f.end());
            }
            break;
          }
          case 6: {  // a produce whose batch is garbage (bad CRC / sizes)
            std::vector<uint8_t> junk(512);
            for (auto& x : junk) x = static_cast<uint8_t>(rng());
            proto::ProduceRequest req;
            req.set_acks(1);
            auto* p = req.add_partitions();
            p->set_topic("good");
            p->set_partition(0);
            p->set_size(static_cast<uint32_t>(junk.size()));
            bytes = RawFrame(proto::API_PRODUCE, 0, 9, req.SerializeAsString(), junk);
            break;
          }
        }
        c.Send(bytes, 2s);
        garbage_frames.fetch_add(1);
        // Half the time wait for the server to answer or close; otherwise
        // hang up at once.
        if (rng() % 2 == 0) c.WaitClosed(200ms);
      }
    });
  }

  // The good client: produce and read back, in order, without error.
  int64_t next = 0;
  int rounds = 0;
  auto deadline = Clock::now() + 5s;
  int64_t max_rss = 0;
  while (Clock::now() < deadline || rounds < 20) {
    std::vector<uint8_t> batch = MakeBatch(5, absl::StrCat("g", rounds), 100, Compression::kZstd,
                                           static_cast<uint64_t>(rounds));
    auto p = Produce(*broker_, "good", 0, batch);
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p->partitions(0).error_code(), proto::NONE) << p->partitions(0).error_message();
    ASSERT_EQ(p->partitions(0).base_offset(), next);
    auto f = Fetch(*broker_, "good", 0, next);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_EQ(f->response.partitions(0).error_code(), proto::NONE);
    auto batches = SplitBatches(f->payload);
    ASSERT_TRUE(batches.ok()) << batches.status();
    ASSERT_EQ(batches->size(), 1u);
    EXPECT_EQ((*batches)[0].base_offset(), next);
    EXPECT_TRUE((*batches)[0].VerifyCrc().ok());
    next += 5;
    ++rounds;
    max_rss = std::max(max_rss, RssBytes(server_->pid()));
    if (rounds > 10000) break;
  }
  stop.store(true);
  for (auto& t : attackers) t.join();
  EXPECT_GT(garbage_frames.load(), 200) << "the attackers barely ran";
  ASSERT_TRUE(server_->running());
  max_rss = std::max(max_rss, RssBytes(server_->pid()));
  EXPECT_GT(max_rss, 0);
  EXPECT_LT(max_rss, kMaxRssBytes) << "server RSS grew to " << (max_rss >> 20) << " MiB";
  std::cerr << "garbage frames: " << garbage_frames.load() << ", good rounds: " << rounds
            << ", max server RSS: " << (max_rss >> 20) << " MiB\n";
  ExpectStillServing();
}

// A consumer that pipelines many big fetches and never reads the socket:
// the server stops reading it (flow control) instead of buffering every
// response, and keeps serving everyone else.
TEST_F(RobustnessTest, ConsumerThatNeverReadsDoesNotGrowServerMemory) {
  MakeTopic("big", 1);
  // ~8 MiB of incompressible data in 64 batches of ~128 KiB.
  for (int i = 0; i < 64; ++i) {
    auto p = Produce(*broker_, "big", 0,
                     MakeBatch(8, absl::StrCat("b", i), 16 * 1024, Compression::kNone,
                               static_cast<uint64_t>(i) + 100));
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p->partitions(0).error_code(), proto::NONE);
  }
  const int64_t rss_before = RssBytes(server_->pid());
  ASSERT_GT(rss_before, 0);

  // Each fetch asks for the whole partition (8 MiB): 4000 of them would be
  // ~32 GiB of responses.
  proto::FetchRequest req;
  req.set_max_bytes(16 << 20);
  req.set_replica_id(-1);
  auto* fp = req.add_partitions();
  fp->set_topic("big");
  fp->set_partition(0);
  fp->set_fetch_offset(0);
  fp->set_max_bytes(16 << 20);
  const std::string header = req.SerializeAsString();
  RawConn slow(server_->broker());
  ASSERT_TRUE(slow.ok());
  int rcvbuf = 4096;
  setsockopt(slow.fd(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  int sent = 0;
  auto send_deadline = Clock::now() + 8s;
  // Sending stops when the server stops reading (our send buffer fills).
  while (sent < 4000 && Clock::now() < send_deadline) {
    if (!slow.Send(RawFrame(proto::API_FETCH, 0, static_cast<uint32_t>(sent + 1), header), 1s)) {
      break;
    }
    ++sent;
  }
  EXPECT_GT(sent, 8) << "the server read almost none of the fetches";
  // Let the server work through whatever it has read.
  int64_t max_rss = 0;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(100ms);
    max_rss = std::max(max_rss, RssBytes(server_->pid()));
  }
  ASSERT_TRUE(server_->running());
  EXPECT_LT(max_rss, kMaxRssBytes) << "server RSS grew to " << (max_rss >> 20) << " MiB with "
                                   << sent << " unread fetches";
  std::cerr << "fetches sent: " << sent << ", RSS before " << (rss_before >> 20)
            << " MiB, max " << (max_rss >> 20) << " MiB\n";

  // Others are served meanwhile, including big fetches.
  auto other = Connect(*io_, server_->broker());
  ASSERT_TRUE(other.ok());
  auto f = Fetch(**other, "big", 0, 0, 0, 0, 16 << 20);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->response.partitions(0).error_code(), proto::NONE);
  EXPECT_EQ(f->response.partitions(0).high_watermark(), 64 * 8);
  EXPECT_GT(f->payload.size(), 8u << 20);
  auto p = Produce(**other, "big", 0, MakeBatch(1, "after"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->partitions(0).error_code(), proto::NONE);
  EXPECT_EQ(p->partitions(0).base_offset(), 64 * 8);

  // Hanging up releases the queued responses.
  slow.Close();
  ExpectStillServing();
  max_rss = std::max(max_rss, RssBytes(server_->pid()));
  EXPECT_LT(max_rss, kMaxRssBytes);
}

// Frames under the limit that claim a big size and then stall: the server
// must not commit memory for bytes that never arrive (else 40 connections
// sending 116 bytes each would pin 40 x 16 MiB).
TEST(StalledFrameTest, BigClaimedFramesThatNeverArriveDoNotPinMemory) {
  ServerProcess server;  // default --max-frame-bytes (64 MiB)
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  const int64_t rss_before = RssBytes(server.pid());
  ASSERT_GT(rss_before, 0);
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 40; ++i) {
    auto c = std::make_unique<RawConn>(server.broker());
    ASSERT_TRUE(c->ok());
    std::vector<uint8_t> frame =
        RawFrame(proto::API_PRODUCE, 0, static_cast<uint32_t>(i + 1), std::string(100, 'x'));
    wire::PutBE32(frame.data(), 16u << 20);  // claims 16 MiB, sends 116 bytes
    ASSERT_TRUE(c->Send(frame));
    conns.push_back(std::move(c));
  }
  // A good client is served meanwhile (which also shows the server has read
  // the stalled prefixes: one io_context serves every connection).
  rpc::IoThread io;
  auto coordinator = Connect(io, server.coordinator());
  ASSERT_TRUE(coordinator.ok());
  auto desc = CreateTopic(**coordinator, "stall", 1);
  ASSERT_TRUE(desc.ok()) << desc.status();
  auto broker = Connect(io, server.broker());
  ASSERT_TRUE(broker.ok());
  ASSERT_TRUE(WaitForTopic(**broker, "stall", 1).ok());
  int64_t max_rss = 0;
  for (int i = 0; i < 10; ++i) {
    auto p = Produce(**broker, "stall", 0, MakeBatch(3, absl::StrCat("s", i)));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->partitions(0).error_code(), proto::NONE);
    EXPECT_EQ(p->partitions(0).base_offset(), 3 * i);
    std::this_thread::sleep_for(100ms);
    max_rss = std::max(max_rss, RssBytes(server.pid()));
  }
  std::cerr << "RSS before " << (rss_before >> 20) << " MiB, max with 40 stalled 16 MiB frames "
            << (max_rss >> 20) << " MiB\n";
  EXPECT_LT(max_rss - rss_before, 128ll << 20)
      << "40 stalled frames of 116 bytes pinned " << ((max_rss - rss_before) >> 20) << " MiB";
  // The stalled connections are still open (a frame may take its time), and
  // one that completes its frame gets an answer.
  std::vector<uint8_t> rest((16u << 20) - 12 - 100, 0);
  ASSERT_TRUE(conns[0]->Send(rest, 20s));
  RawConn::Response r;
  ASSERT_TRUE(conns[0]->ReadResponse(&r, 10s));
  EXPECT_EQ(r.correlation_id, 1u);
  EXPECT_EQ(r.code, proto::INVALID_REQUEST);  // 'x' * 100 is no ProduceRequest
  conns.clear();

  // A legitimate frame far above the first read buffer arrives intact: a
  // ~6 MiB incompressible batch goes in and comes back byte for byte.
  std::vector<uint8_t> big = MakeBatch(6, "big", 1 << 20, Compression::kNone, 7);
  auto p = Produce(**broker, "stall", 0, big);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->partitions(0).error_code(), proto::NONE) << p->partitions(0).error_message();
  ASSERT_EQ(p->partitions(0).base_offset(), 30);
  auto f = Fetch(**broker, "stall", 0, 30, 0, 0, 16 << 20);
  ASSERT_TRUE(f.ok()) << f.status();
  SetBaseOffset(big, 30);
  SetPartitionLeaderEpoch(big, desc->partitions(0).leader_epoch());
  EXPECT_TRUE(f->payload == big) << "the big batch came back different";
  EXPECT_EQ(server.Terminate(), 0) << server.LogTail();
}

}  // namespace
}  // namespace brook::testing
