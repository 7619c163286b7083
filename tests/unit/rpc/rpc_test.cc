// RpcServer and RpcClient over loopback: round trips, pipelining with
// out-of-order answers, error responses, bad input isolation, deadlines,
// shutdown and per-connection back-pressure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "common/errors.h"
#include "common/rpc/client.h"
#include "common/rpc/frame.h"
#include "common/rpc/server.h"
#include "gtest/gtest.h"
#include "proto/brook.pb.h"

namespace brook::rpc {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr uint16_t kEcho = proto::API_METADATA;
constexpr uint16_t kHold = proto::API_FETCH;

// An io_context run by two threads, as a server process runs it.
class ServerIo {
 public:
  ServerIo() : guard_(asio::make_work_guard(io_)) {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~ServerIo() {
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) t.join();
  }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

// Requests the kHold handler keeps unanswered until the test answers them.
struct Held {
  absl::Mutex mu;
  std::vector<Request> requests ABSL_GUARDED_BY(mu);

  size_t size() {
    absl::MutexLock l(&mu);
    return requests.size();
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout) {
    absl::MutexLock l(&mu);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return requests.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Milliseconds(timeout.count()));
  }
  std::vector<Request> Take() {
    absl::MutexLock l(&mu);
    return std::move(requests);
  }
};

class RpcTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = {}) {
    server_ = std::make_unique<RpcServer>(server_io_.io(), "test", options);
    // Echo: topics of the MetadataRequest come back as topic routes, the
    // payload comes back as is.
    server_->Register(kEcho, 2, [](Request req) {
      proto::MetadataRequest in;
      if (!req.ParseHeader(&in)) {
        req.RespondError(proto::ErrorCode::INVALID_REQUEST, "bad header");
        return;
      }
      proto::MetadataResponse out;
      for (const auto& t : in.topics()) out.add_topics()->set_topic(t);
      req.Respond(out, std::vector<uint8_t>(req.payload().begin(), req.payload().end()));
    });
    server_->Register(kHold, 0, [this](Request req) {
      absl::MutexLock l(&held_.mu);
      held_.requests.push_back(std::move(req));
    });
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    ASSERT_NE(server_->port(), 0);
  }

  std::shared_ptr<RpcClient> Connect() {
    auto c = RpcClient::Connect(client_io_.io(), "127.0.0.1", server_->port());
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *c : nullptr;
  }

  // One echo round trip; returns its status.
  absl::Status Echo(RpcClient& c, const std::string& topic) {
    proto::MetadataRequest req;
    req.add_topics(topic);
    proto::MetadataResponse resp;
    auto payload = c.CallSync(kEcho, 0, req, {1, 2, 3}, &resp, 5000ms);
    if (!payload.ok()) return payload.status();
    EXPECT_EQ(resp.topics_size(), 1);
    if (resp.topics_size() == 1) {
      EXPECT_EQ(resp.topics(0).topic(), topic);
    }
    EXPECT_EQ(*payload, (std::vector<uint8_t>{1, 2, 3}));
    return absl::OkStatus();
  }

  // A plain blocking socket for sending hand-made bytes.
  tcp::socket RawConnect() {
    tcp::socket s(raw_io_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    return s;
  }

  // Reads one frame; false on EOF or error.
  static bool ReadFrame(tcp::socket& s, FrameHeader* h, std::string* header) {
    uint8_t prefix[16];
    boost::system::error_code ec;
    asio::read(s, asio::buffer(prefix), ec);
    if (ec) return false;
    auto size = DecodeFrameSize(std::span<const uint8_t, 4>(prefix, 4), kDefaultMaxFrameBytes);
    if (!size.ok()) return false;
    std::vector<uint8_t> body(*size);
    std::memcpy(body.data(), prefix + 4, 12);
    asio::read(s, asio::buffer(body.data() + 12, body.size() - 12), ec);
    if (ec) return false;
    auto fh = DecodeFrameBody(*size, body);
    if (!fh.ok()) return false;
    *h = *fh;
    header->assign(reinterpret_cast<const char*>(body.data()) + 12, fh->header_size);
    return true;
  }

  // True when the server closed the socket (EOF) within a few seconds.
  static bool ReadsEof(tcp::socket& s) {
    uint8_t b;
    boost::system::error_code ec;
    s.read_some(asio::buffer(&b, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  ServerIo server_io_;
  IoThread client_io_;
  asio::io_context raw_io_;
  Held held_;
  std::unique_ptr<RpcServer> server_;
};

TEST_F(RpcTest, EchoRoundTripWithPayload) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->connected());
  proto::MetadataRequest req;
  req.add_topics("orders");
  std::vector<uint8_t> payload(200 * 1024);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  proto::MetadataResponse resp;
  auto got = c->CallSync(kEcho, 2, req, payload, &resp, 5000ms);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, payload);
  ASSERT_EQ(resp.topics_size(), 1);
  EXPECT_EQ(resp.topics(0).topic(), "orders");
  EXPECT_EQ(c->in_flight(), 0u);
  EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(RpcTest, PipelinedCallsAnsweredOutOfOrder) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  constexpr int kTotal = kThreads * kPerThread;
  std::atomic<int> matched{0};
  std::atomic<int> done{0};
  std::promise<void> all_done;

  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string name = "t" + std::to_string(t * kPerThread + i);
        proto::MetadataRequest req;
        req.add_topics(name);
        c->Call(kHold, 0, req, {static_cast<uint8_t>(i)}, 10000ms,
                [&, name, i](absl::StatusOr<Response> r) {
                  if (r.ok()) {
                    proto::MetadataResponse resp;
                    if (resp.ParseFromString(r->header) && resp.topics_size() == 1 &&
                        resp.topics(0).topic() == name && r->payload.size() == 1 &&
                        r->payload[0] == static_cast<uint8_t>(i) &&
                        r->api == (kHold | kResponseBit)) {
                      matched.fetch_add(1);
                    }
                  }
                  if (done.fetch_add(1) + 1 == kTotal) all_done.set_value();
                });
      }
    });
  }
  for (auto& t : senders) t.join();
  ASSERT_TRUE(held_.WaitFor(kTotal, 10000ms));
  std::vector<Request> reqs = held_.Take();
  std::shuffle(reqs.begin(), reqs.end(), std::mt19937(42));
  // Answer from two threads other than the io threads, in shuffled order.
  auto answer = [](std::vector<Request> part) {
    for (const Request& r : part) {
      proto::MetadataRequest in;
      ASSERT_TRUE(r.ParseHeader(&in));
      proto::MetadataResponse out;
      out.add_topics()->set_topic(in.topics(0));
      r.Respond(out, std::vector<uint8_t>(r.payload().begin(), r.payload().end()));
    }
  };
  std::vector<Request> second(reqs.begin() + kTotal / 2, reqs.end());
  reqs.resize(kTotal / 2);
  std::thread a(answer, std::move(reqs));
  std::thread b(answer, std::move(second));
  a.join();
  b.join();
  ASSERT_EQ(all_done.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(matched.load(), kTotal);
  EXPECT_EQ(c->in_flight(), 0u);
}

TEST_F(RpcTest, UnknownApiGetsUnsupportedApi) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  proto::MetadataRequest req;
  auto r = c->CallSync(99, 0, req, {}, nullptr, 5000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToErrorCode(r.status()), proto::ErrorCode::UNSUPPORTED_API);
  EXPECT_TRUE(Echo(*c, "still-fine").ok());
}

TEST_F(RpcTest, VersionTooHighGetsUnsupportedVersion) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  proto::MetadataRequest req;
  auto r = c->CallSync(kEcho, 3, req, {}, nullptr, 5000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ToErrorCode(r.status()), proto::ErrorCode::UNSUPPORTED_VERSION);
  EXPECT_TRUE(c->CallSync(kEcho, 2, req, {}, nullptr, 5000ms).ok());
}

TEST_F(RpcTest, OversizeFrameGetsErrorAndCloseOthersUnaffected) {
  ServerOptions opts;
  opts.max_frame_bytes = 4096;
  StartServer(opts);
  auto good = Connect();
  ASSERT_TRUE(good);
  ASSERT_TRUE(Echo(*good, "before").ok());

  tcp::socket raw = RawConnect();
  uint8_t prefix[16];
  EncodeFramePrefix(kEcho, 0, 5, 0, 100000, prefix);
  asio::write(raw, asio::buffer(prefix));
  FrameHeader h;
  std::string header;
  ASSERT_TRUE(ReadFrame(raw, &h, &header));
  EXPECT_EQ(h.api, kResponseBit);
  EXPECT_EQ(h.correlation_id, 0u);
  proto::ErrorResponse err;
  ASSERT_TRUE(err.ParseFromString(header));
  EXPECT_EQ(err.error_code(), proto::ErrorCode::FRAME_TOO_LARGE);
  EXPECT_TRUE(ReadsEof(raw));

  // Through the client: the call fails with Unavailable, as the server closes.
  auto big = Connect();
  ASSERT_TRUE(big);
  proto::MetadataRequest req;
  auto r = big->CallSync(kEcho, 0, req, std::vector<uint8_t>(8192), nullptr, 5000ms);
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();

  EXPECT_TRUE(Echo(*good, "after").ok());
}

TEST_F(RpcTest, GarbageAndTruncatedFramesCloseOnlyThatConnection) {
  StartServer();
  auto good = Connect();
  ASSERT_TRUE(good);

  {  // Size below the fixed header.
    tcp::socket raw = RawConnect();
    const uint8_t bad[] = {0, 0, 0, 3, 1, 2, 3};
    asio::write(raw, asio::buffer(bad));
    EXPECT_TRUE(ReadsEof(raw));
  }
  {  // Text where a frame should be: a huge size, refused unread.
    tcp::socket raw = RawConnect();
    asio::write(raw, asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")));
    FrameHeader h;
    std::string header;
    ASSERT_TRUE(ReadFrame(raw, &h, &header));
    EXPECT_EQ(h.correlation_id, 0u);
    EXPECT_TRUE(ReadsEof(raw));
  }
  {  // header_size overruns the frame: INVALID_REQUEST for that id, then close.
    tcp::socket raw = RawConnect();
    uint8_t frame[16 + 4];
    EncodeFramePrefix(kEcho, 0, 77, 0, 4, frame);
    frame[15] = 200;
    asio::write(raw, asio::buffer(frame));
    FrameHeader h;
    std::string header;
    ASSERT_TRUE(ReadFrame(raw, &h, &header));
    EXPECT_EQ(h.correlation_id, 77u);
    proto::ErrorResponse err;
    ASSERT_TRUE(err.ParseFromString(header));
    EXPECT_EQ(err.error_code(), proto::ErrorCode::INVALID_REQUEST);
    EXPECT_TRUE(ReadsEof(raw));
  }
  {  // Truncated: half a body, then the peer half-closes.
    tcp::socket raw = RawConnect();
    uint8_t prefix[16];
    EncodeFramePrefix(kEcho, 0, 1, 0, 100, prefix);
    asio::write(raw, asio::buffer(prefix));
    asio::write(raw, asio::buffer(std::vector<uint8_t>(10)));
    raw.shutdown(tcp::socket::shutdown_send);
    EXPECT_TRUE(ReadsEof(raw));
  }
  EXPECT_TRUE(Echo(*good, "survivor").ok());
  // Only the good connection is left.
  for (int i = 0; i < 100 && server_->connection_count() != 1; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(RpcTest, CallTimesOutWithDeadlineExceeded) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  proto::MetadataRequest req;
  auto start = std::chrono::steady_clock::now();
  auto r = c->CallSync(kHold, 0, req, {}, nullptr, 150ms);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 2000ms);
  EXPECT_EQ(c->in_flight(), 0u);
  // A late answer to the timed-out call is ignored; the connection still works.
  for (const Request& held : held_.Take()) held.Respond(proto::MetadataResponse());
  EXPECT_TRUE(Echo(*c, "later").ok());
}

TEST_F(RpcTest, ServerStopFailsPendingCallsUnavailable) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  std::vector<std::future<absl::Status>> results;
  for (int i = 0; i < 3; ++i) {
    auto p = std::make_shared<std::promise<absl::Status>>();
    results.push_back(p->get_future());
    c->Call(kHold, 0, proto::MetadataRequest(), {}, 10000ms,
            [p](absl::StatusOr<Response> r) { p->set_value(r.status()); });
  }
  ASSERT_TRUE(held_.WaitFor(3, 5000ms));
  server_->Stop();
  for (auto& f : results) {
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    EXPECT_TRUE(absl::IsUnavailable(f.get()));
  }
  // Answering after the connection is gone is a no-op.
  for (const Request& held : held_.Take()) held.Respond(proto::MetadataResponse());
  EXPECT_FALSE(c->connected());
  EXPECT_EQ(server_->connection_count(), 0u);
  // New calls fail at once.
  auto r = c->CallSync(kEcho, 0, proto::MetadataRequest(), {}, nullptr, 5000ms);
  EXPECT_TRUE(absl::IsUnavailable(r.status()));
  EXPECT_FALSE(RpcClient::Connect(client_io_.io(), "127.0.0.1", server_->port()).ok());
}

TEST_F(RpcTest, ClientCloseFailsPendingCalls) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  std::promise<absl::Status> p;
  c->Call(kHold, 0, proto::MetadataRequest(), {}, 10000ms,
          [&p](absl::StatusOr<Response> r) { p.set_value(r.status()); });
  ASSERT_TRUE(held_.WaitFor(1, 5000ms));
  c->Close();
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(absl::IsUnavailable(f.get()));
}

TEST_F(RpcTest, UnansweredRequestsBoundReading) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  constexpr int kCalls = 1100;
  std::atomic<int> ok{0};
  std::promise<void> all;
  for (int i = 0; i < kCalls; ++i) {
    c->Call(kHold, 0, proto::MetadataRequest(), {}, 20000ms, [&](absl::StatusOr<Response> r) {
      if (r.ok() && ok.fetch_add(1) + 1 == kCalls) all.set_value();
    });
  }
  // The server stops reading at 1024 held requests.
  ASSERT_TRUE(held_.WaitFor(1024, 5000ms));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(held_.size(), 1024u);
  // Answering (and so releasing) them lets the rest in.
  for (const Request& r : held_.Take()) r.Respond(proto::MetadataResponse());
  ASSERT_TRUE(held_.WaitFor(kCalls - 1024, 5000ms));
  for (const Request& r : held_.Take()) r.Respond(proto::MetadataResponse());
  ASSERT_EQ(all.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ok.load(), kCalls);
}

TEST_F(RpcTest, CloseConnectionFlushesResponseFirst) {
  StartServer();
  auto c = Connect();
  ASSERT_TRUE(c);
  std::promise<absl::StatusOr<Response>> p;
  c->Call(kHold, 0, proto::MetadataRequest(), {}, 5000ms,
          [&p](absl::StatusOr<Response> r) { p.set_value(std::move(r)); });
  ASSERT_TRUE(held_.WaitFor(1, 5000ms));
  // Answered and closed from a non-io thread while the server is reading.
  for (const Request& r : held_.Take()) {
    proto::MetadataResponse out;
    out.add_topics()->set_topic("last");
    r.Respond(out, {9});
    r.CloseConnection();
  }
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  absl::StatusOr<Response> r = f.get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->payload, (std::vector<uint8_t>{9}));
  for (int i = 0; i < 200 && c->connected(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(c->connected());
  EXPECT_TRUE(absl::IsUnavailable(
      c->CallSync(kEcho, 0, proto::MetadataRequest(), {}, nullptr, 5000ms).status()));
}

TEST_F(RpcTest, ConnectFailsFastWhenNothingListens) {
  StartServer();
  uint16_t port = server_->port();
  server_->Stop();
  auto c = RpcClient::Connect(client_io_.io(), "127.0.0.1", port);
  EXPECT_TRUE(absl::IsUnavailable(c.status())) << c.status();
}

TEST(ParseHostPortTest, Forms) {
  auto a = ParseHostPort("localhost:9876");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "localhost");
  EXPECT_EQ(a->second, 9876);
  auto b = ParseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->first, "::1");
  EXPECT_EQ(b->second, 0);
  EXPECT_EQ(ParseHostPort("10.0.0.1:65535")->second, 65535);
  EXPECT_FALSE(ParseHostPort("10.0.0.1:65536").ok());
  EXPECT_FALSE(ParseHostPort("10.0.0.1:").ok());
  EXPECT_FALSE(ParseHostPort("10.0.0.1").ok());
  EXPECT_FALSE(ParseHostPort(":80").ok());
  EXPECT_FALSE(ParseHostPort("host:-1").ok());
  EXPECT_FALSE(ParseHostPort("host:8o").ok());
  EXPECT_FALSE(ParseHostPort("::1:80").ok());
  EXPECT_FALSE(ParseHostPort("[::1]80").ok());
}

TEST(RpcServerTest, ListenOnLocalhostReportsBoundPort) {
  IoThread io;
  RpcServer server(io.io(), "lh");
  ASSERT_TRUE(server.Listen("localhost:0").ok());
  EXPECT_NE(server.port(), 0);
  EXPECT_FALSE(server.host().empty());
  auto c = RpcClient::Connect(io.io(), "localhost", server.port());
  EXPECT_TRUE(c.ok()) << c.status();
}

}  // namespace
}  // namespace brook::rpc
