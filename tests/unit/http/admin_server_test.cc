// AdminServer over loopback with a raw Beast client: health, metrics, custom
// routes with query strings, 404, keep-alive and the body limit.
#include "common/http/admin_server.h"

#include <thread>
#include <utility>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "common/http/metrics.h"
#include "gtest/gtest.h"

namespace brook::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class AdminServerTest : public ::testing::Test {
 protected:
  AdminServerTest() : guard_(asio::make_work_guard(io_)) {
    thread_ = std::thread([this] { io_.run(); });
  }
  ~AdminServerTest() override {
    server_.reset();
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  void Start() {
    server_ = std::make_unique<AdminServer>(io_);
    server_->Handle("/echo", [](const HttpRequest& r) {
      std::string body = r.method + " " + r.path;
      for (const auto& [k, v] : r.query) body += " " + k + "=" + v;
      body += " body=" + r.body;
      return HttpResponse{201, "text/plain", body};
    });
    ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
    ASSERT_NE(server_->port(), 0);
    stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  }

  bhttp::response<bhttp::string_body> Send(bhttp::verb verb, const std::string& target,
                                           std::string body = "") {
    bhttp::request<bhttp::string_body> req(verb, target, 11);
    req.set(bhttp::field::host, "localhost");
    req.body() = std::move(body);
    req.prepare_payload();
    bhttp::write(stream_, req);
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream_, buffer_, res);
    return res;
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::unique_ptr<AdminServer> server_;
  asio::io_context client_io_;
  tcp::socket stream_{client_io_};
  beast::flat_buffer buffer_;
};

TEST_F(AdminServerTest, HealthzMetricsRoutesAndNotFoundOnOneConnection) {
  Start();
  auto health = Send(bhttp::verb::get, "/healthz");
  EXPECT_EQ(health.result_int(), 200);
  EXPECT_EQ(health.body(), "ok\n");

  metrics::Registry::Global().GetCounter("admin_test_hits_total", {{"k", "v"}}, "Hits.")->Inc(3);
  auto m = Send(bhttp::verb::get, "/metrics");
  EXPECT_EQ(m.result_int(), 200);
  EXPECT_EQ(m[bhttp::field::content_type], "text/plain; version=0.0.4");
  EXPECT_NE(m.body().find("# TYPE admin_test_hits_total counter\n"
                          "admin_test_hits_total{k=\"v\"} 3\n"),
            std::string::npos);

  auto e = Send(bhttp::verb::post, "/echo?a=1&name=hello%20world&plus=x+y", "payload");
  EXPECT_EQ(e.result_int(), 201);
  EXPECT_EQ(e[bhttp::field::content_type], "text/plain");
  EXPECT_EQ(e.body(), "POST /echo a=1 name=hello world plus=x y body=payload");

  auto nf = Send(bhttp::verb::get, "/nope?x=1");
  EXPECT_EQ(nf.result_int(), 404);
  EXPECT_EQ(nf[bhttp::field::content_type], "application/json");
  EXPECT_EQ(nf.body(), "{\"error\":\"not found\",\"path\":\"/nope\"}");
}

TEST_F(AdminServerTest, HealthCheckFailureIs503) {
  server_ = std::make_unique<AdminServer>(io_);
  server_->SetHealthCheck([] { return absl::UnavailableError("storage offline"); });
  ASSERT_TRUE(server_->Listen("127.0.0.1:0").ok());
  stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  auto r = Send(bhttp::verb::get, "/healthz");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(r.body(), "storage offline\n");
}

TEST_F(AdminServerTest, OversizeBodyIsRefused) {
  Start();
  // Refused on the declared length, before any of the body is read.
  asio::write(stream_, asio::buffer(std::string(
                           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n")));
  bhttp::response<bhttp::string_body> r;
  bhttp::read(stream_, buffer_, r);
  EXPECT_EQ(r.result_int(), 413);
  // The server closes after refusing.
  char b;
  boost::system::error_code ec;
  stream_.read_some(asio::buffer(&b, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
}

TEST_F(AdminServerTest, StopClosesConnections) {
  Start();
  EXPECT_EQ(Send(bhttp::verb::get, "/healthz").result_int(), 200);
  server_->Stop();
  char b;
  boost::system::error_code ec;
  stream_.read_some(asio::buffer(&b, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
}

}  // namespace
}  // namespace brook::http
