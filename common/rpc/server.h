// RpcServer: accepts native-protocol connections on an Asio io_context and
// dispatches each frame to the handler registered for its api. Requests on a
// connection are pipelined; responses may be sent in any order (each names
// its correlation id). Bad input closes only that connection or gets an
// error response; the server keeps serving everyone else.
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "google/protobuf/message.h"
#include "common/rpc/frame.h"
#include "proto/brook.pb.h"

namespace brook::rpc {

class Connection;

// A request as the handler sees it. Copyable and cheap to copy (shares the
// frame buffer); may be kept past the handler's return to answer later
// (long-poll). Respond* is thread-safe and must be called at most once;
// dropping a request unanswered is allowed (the client times out).
class Request {
 public:
  uint16_t api() const { return api_; }
  uint16_t version() const { return version_; }
  uint32_t correlation_id() const { return correlation_id_; }
  std::string_view header() const { return header_; }  // protobuf bytes
  std::span<const uint8_t> payload() const { return payload_; }
  // The payload may be patched in place (the broker assigns offsets in the
  // received batches): the frame buffer belongs to this request alone.
  std::span<uint8_t> mutable_payload() const {
    return {const_cast<uint8_t*>(payload_.data()), payload_.size()};
  }
  // The peer address "host:port", for logs.
  const std::string& peer() const;

  // Parses the header as `msg`; false if it does not parse.
  bool ParseHeader(google::protobuf::Message* msg) const;

  // Sends the response frame: `header` then `payload` bytes (not copied
  // again if moved in). A no-op if the connection is gone.
  void Respond(const google::protobuf::Message& header, std::vector<uint8_t> payload = {}) const;
  // Sends an ErrorResponse with the given code (parses as any response).
  void RespondError(proto::ErrorCode code, std::string_view message) const;
  // Closes the connection after flushing responses already queued.
  void CloseConnection() const;

 private:
  friend class Connection;
  uint16_t api_ = 0;
  uint16_t version_ = 0;
  uint32_t correlation_id_ = 0;
  std::string_view header_;
  std::span<const uint8_t> payload_;
  std::shared_ptr<std::vector<uint8_t>> buffer_;  // owns header_ and payload_
  std::weak_ptr<Connection> conn_;
};

struct ServerOptions {
  // Frames above this are refused before their body is read.
  uint32_t max_frame_bytes = kDefaultMaxFrameBytes;
  // Bytes of responses queued on one connection before it stops reading
  // new requests (bounds memory per slow client).
  size_t max_queued_response_bytes = 64 * 1024 * 1024;
};

class RpcServer {
 public:
  using Handler = std::function<void(Request)>;

  // `io` must outlive the server; handlers run on `io`'s threads.
  RpcServer(boost::asio::io_context& io, std::string name, ServerOptions options = {});
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Registers a handler for `api` accepting versions [0, max_version]; a
  // request with a higher version gets UNSUPPORTED_VERSION, an api with no
  // handler UNSUPPORTED_API. Call before Listen.
  void Register(uint16_t api, uint16_t max_version, Handler handler);

  // Binds and starts accepting. `host_port` is "HOST:PORT"; port 0 picks a
  // free port (see port()).
  absl::Status Listen(std::string_view host_port);
  uint16_t port() const;
  const std::string& host() const;

  // Stops accepting and closes every connection. Idempotent.
  void Stop();

  // Live connection count (for metrics and tests).
  size_t connection_count() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Splits "HOST:PORT"; the port must be 0..65535.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(std::string_view host_port);

}  // namespace brook::rpc
