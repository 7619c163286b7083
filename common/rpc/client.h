// RpcClient: one native-protocol connection with pipelined requests matched
// to responses by correlation id. Thread-safe: Call may be invoked from any
// thread; callbacks run on the client's io_context thread and must not block.
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "common/errors.h"
#include "google/protobuf/message.h"

namespace brook::rpc {

struct Response {
  uint16_t api = 0;
  uint16_t version = 0;
  std::string header;            // protobuf bytes of the api's response message
  std::vector<uint8_t> payload;  // raw bytes after the header
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  uint32_t max_frame_bytes = 256 * 1024 * 1024;
};

class RpcClient : public std::enable_shared_from_this<RpcClient> {
 public:
  using Callback = std::function<void(absl::StatusOr<Response>)>;

  // Connects to host:port; blocks up to connect_timeout. `io` must be run by
  // some thread (see IoThread) and outlive the client.
  static absl::StatusOr<std::shared_ptr<RpcClient>> Connect(boost::asio::io_context& io,
                                                            const std::string& host,
                                                            uint16_t port,
                                                            ClientOptions options = {});
  ~RpcClient();

  // Sends one request. `cb` gets the response, or Unavailable when the
  // connection fails or closes before it, or DeadlineExceeded after `timeout`.
  void Call(uint16_t api, uint16_t version, const google::protobuf::Message& header,
            std::vector<uint8_t> payload, std::chrono::milliseconds timeout, Callback cb);

  // Blocking form: waits for the response and parses its header into `out`.
  // A non-NONE error_code in the response becomes the returned status (see
  // FromErrorCode); the payload is returned.
  absl::StatusOr<std::vector<uint8_t>> CallSync(uint16_t api, uint16_t version,
                                                const google::protobuf::Message& header,
                                                std::vector<uint8_t> payload,
                                                google::protobuf::Message* out,
                                                std::chrono::milliseconds timeout);

  bool connected() const;
  // Fails every outstanding call with Unavailable and closes the socket.
  void Close();
  // Requests sent and not yet answered.
  size_t in_flight() const;
  const std::string& address() const;

 private:
  struct Impl;
  explicit RpcClient(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Reads error_code (field 1) and error_message (field 2) of any response
// header; OK when error_code is NONE.
absl::Status ResponseStatus(const Response& r);

// An io_context with one thread running it, for client libraries and tools.
class IoThread {
 public:
  IoThread();
  ~IoThread();  // stops the context and joins
  boost::asio::io_context& io() { return *io_; }

 private:
  struct Impl;
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brook::rpc
