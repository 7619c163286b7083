// Raw-socket helpers for integration tests that speak the native protocol
// byte by byte: malformed frames, stalled frames, peers that never read.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common/record_batch.h"
#include "common/rpc/client.h"
#include "common/rpc/frame.h"
#include "gtest/gtest.h"
#include "proto/brook.pb.h"
#include "tests/integration/harness.h"

namespace brook::testing {

// A plain TCP connection for sending malformed bytes.
class RawConn {
 public:
  explicit RawConn(const Address& a) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(a.port);
    inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~RawConn() { Close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  // Sends all of `bytes`; false when the peer is gone or `timeout` passes
  // with the socket not writable.
  bool Send(const std::vector<uint8_t>& bytes, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t off = 0;
    while (off < bytes.size()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{fd_, POLLOUT, 0};
      if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
      ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  bool ReadN(uint8_t* out, size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t got = 0;
    while (got < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
      ssize_t r = recv(fd_, out + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  struct Response {
    uint16_t api = 0;
    uint32_t correlation_id = 0;
    proto::ErrorCode code = proto::UNKNOWN;
  };
  // Reads one response frame and parses its header as ErrorResponse.
  bool ReadResponse(Response* out, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    uint8_t prefix[4];
    if (!ReadN(prefix, 4, timeout)) return false;
    uint32_t size = wire::GetBE32(prefix);
    if (size < 12 || size > (64u << 20)) return false;
    std::vector<uint8_t> body(size);
    if (!ReadN(body.data(), size, timeout)) return false;
    out->api = wire::GetBE16(body.data());
    out->correlation_id = wire::GetBE32(body.data() + 4);
    uint32_t header_size = wire::GetBE32(body.data() + 8);
    if (header_size > size - 12) return false;
    proto::ErrorResponse er;
    if (!er.ParseFromArray(body.data() + 12, static_cast<int>(header_size))) return false;
    out->code = er.error_code();
    return true;
  }
  // The api and error code of the next response frame.
  bool ReadResponse(uint16_t* api, proto::ErrorCode* code, std::chrono::milliseconds timeout) {
    Response r;
    if (!ReadResponse(&r, timeout)) return false;
    *api = r.api;
    *code = r.code;
    return true;
  }
  // True once the peer has closed (EOF or reset) within `timeout`, skipping
  // whatever it sends first.
  bool WaitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    uint8_t buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      ssize_t r = recv(fd_, buf, sizeof(buf), 0);
      if (r <= 0) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
};

// One whole frame with the given fields, header bytes and payload.
inline std::vector<uint8_t> RawFrame(uint16_t api, uint16_t version, uint32_t corr,
                              const std::string& header, const std::vector<uint8_t>& payload = {}) {
  std::vector<uint8_t> out(16);
  rpc::EncodeFramePrefix(api, version, corr, static_cast<uint32_t>(header.size()), payload.size(),
                         out.data());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// A fixture whose tests share one brook-server (1 MiB frame limit) and hold
// RPC connections to its broker and coordinator. `Derived` gives each suite its
// own server; Derived::kServerMayStop says whether a test may leave the
// server stopped (then its exit code is not checked at the end).
template <typename Derived>
class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--max-frame-bytes=1048576"});
    auto s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
    io_ = new rpc::IoThread();
  }
  static void TearDownTestSuite() {
    delete io_;
    io_ = nullptr;
    if (server_ != nullptr && (!Derived::kServerMayStop || server_->running())) {
      EXPECT_EQ(server_->Terminate(), 0) << server_->LogTail();
    }
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->running());
    auto b = Connect(*io_, server_->broker());
    ASSERT_TRUE(b.ok()) << b.status();
    broker_ = *b;
    auto c = Connect(*io_, server_->coordinator());
    ASSERT_TRUE(c.ok()) << c.status();
    coordinator_ = *c;
  }
  void TearDown() override {
    if (HasFailure() && server_ != nullptr) std::cerr << "server log:\n" << server_->LogTail();
  }

  static inline ServerProcess* server_ = nullptr;
  static inline rpc::IoThread* io_ = nullptr;
  std::shared_ptr<rpc::RpcClient> broker_;
  std::shared_ptr<rpc::RpcClient> coordinator_;
};

}  // namespace brook::testing
