// RpcServer: accept loop, per-connection frame reader, handler dispatch and
// the response writer with its memory bounds.
//
// Threading: every connection's socket lives on its own strand (the accepted
// socket's executor), so all socket operations and the connection's mutable
// state are touched only there. Handlers are invoked on that strand; Respond
// may be called from any thread and hops onto the strand.
#include "common/rpc/server.h"

#include <array>
#include <deque>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "common/errors.h"
#include "spdlog/spdlog.h"

namespace brook::rpc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Requests whose buffers are still held (unanswered or being processed) on
// one connection before it stops reading more.
constexpr size_t kMaxHeldRequests = 1024;
// A request body is first read into a buffer of at most this size; a bigger
// frame grows it (doubling) only as its bytes arrive.
constexpr size_t kInitialBodyBytes = 1 << 20;
// Frames gathered into one write.
constexpr size_t kMaxFramesPerWrite = 32;
// How long a connection closed after an error response keeps discarding
// input before it is closed for good.
constexpr auto kLinger = std::chrono::seconds(1);

struct HandlerEntry {
  uint16_t max_version = 0;
  RpcServer::Handler handler;
};

// A response ready for the wire: the 16-byte prefix followed by the protobuf
// header in `head`, then the raw payload (moved in, never copied).
struct OutFrame {
  std::vector<uint8_t> head;
  std::vector<uint8_t> payload;
  size_t bytes() const { return head.size() + payload.size(); }
};

absl::StatusOr<OutFrame> BuildFrame(uint16_t api, uint16_t version, uint32_t correlation_id,
                                    const google::protobuf::Message& header,
                                    std::vector<uint8_t> payload) {
  size_t header_size = header.ByteSizeLong();
  if (kFixedHeaderBytes + header_size + payload.size() > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError("response frame exceeds 4 GiB");
  }
  OutFrame f;
  f.head.resize(16 + header_size);
  EncodeFramePrefix(api, version, correlation_id, static_cast<uint32_t>(header_size),
                    payload.size(), f.head.data());
  header.SerializeWithCachedSizesToArray(f.head.data() + 16);
  f.payload = std::move(payload);
  return f;
}

}  // namespace

// The server state connections share; outlives the RpcServer while any
// connection still holds it.
struct ServerCore : std::enable_shared_from_this<ServerCore> {
  ServerCore(asio::io_context& io, std::string name, ServerOptions options)
      : io(io), name(std::move(name)), options(options), acceptor(io) {}

  void Accept();
  void Unregister(Connection* c) {
    absl::MutexLock l(&mu);
    connections.erase(c);
  }

  asio::io_context& io;
  const std::string name;
  const ServerOptions options;
  // Written only before Listen; read-only afterwards.
  absl::flat_hash_map<uint16_t, HandlerEntry> handlers;

  mutable absl::Mutex mu;
  // Guarded by mu: initiating operations on and closing the acceptor.
  tcp::acceptor acceptor;
  bool stopped ABSL_GUARDED_BY(mu) = false;
  // Owns every open connection (a connection paused for back-pressure has
  // no pending operation to keep it alive); CloseNow removes it.
  absl::flat_hash_map<Connection*, std::shared_ptr<Connection>> connections ABSL_GUARDED_BY(mu);
  uint16_t port = 0;
  std::string host;
};

struct RpcServer::Impl : ServerCore {
  using ServerCore::ServerCore;
};

// One accepted socket. Owned by the server's connection table until closed,
// and by its pending operations' handlers until they complete.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerCore> server, tcp::socket socket)
      : server_(std::move(server)), socket_(std::move(socket)) {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    peer_ = std::make_shared<const std::string>(
        ec ? std::string("?") : absl::StrCat(ep.address().to_string(), ":", ep.port()));
    socket_.set_option(tcp::no_delay(true), ec);
  }

  // Starts the read loop. Call once, after the connection is registered.
  void Start() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadPrefix(); });
  }

  // Queues a response; any thread.
  void Send(OutFrame frame) {
    asio::dispatch(socket_.get_executor(),
                   [self = shared_from_this(), f = std::move(frame)]() mutable {
                     self->Enqueue(std::move(f));
                   });
  }

  // Closes once queued responses are written; any thread.
  void CloseAfterFlush() {
    asio::dispatch(socket_.get_executor(),
                   [self = shared_from_this()] { self->CloseAfterFlushNow(); });
  }

  // Closes immediately, dropping unwritten responses; any thread.
  void Close() {
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
  }

  const std::shared_ptr<const std::string>& peer() const { return peer_; }

 private:
  // Deleter of a request's body buffer: the last copy of a Request going away
  // releases the request's slot on its connection. Also carries the peer
  // name so Request::peer() stays valid without the connection.
  struct BufferDeleter {
    std::weak_ptr<Connection> conn;
    std::shared_ptr<const std::string> peer;
    void operator()(std::vector<uint8_t>* buf) const {
      delete buf;
      if (auto c = conn.lock()) {
        asio::post(c->socket_.get_executor(), [c] { c->OnRequestReleased(); });
      }
    }
  };
  friend class Request;

  // Reads the next frame unless the connection is over its bounds; then
  // MaybeResumeReading restarts it once responses drain or requests finish.
  void ReadPrefix() {
    if (closed_ || close_after_flush_) return;
    if (held_requests_ >= kMaxHeldRequests ||
        queued_bytes_ >= server_->options.max_queued_response_bytes) {
      read_waiting_ = true;
      return;
    }
    read_waiting_ = false;
    reading_ = true;
    asio::async_read(
        socket_, asio::buffer(prefix_),
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->OnPrefix(ec); });
  }

  void MaybeResumeReading() {
    if (read_waiting_) ReadPrefix();
  }

  void OnRequestReleased() {
    --held_requests_;
    MaybeResumeReading();
  }

  void OnPrefix(boost::system::error_code ec) {
    reading_ = false;
    if (lingering_ && !ec) {
      Drain();
      return;
    }
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
        spdlog::debug("{}: read from {} failed: {}", server_->name, *peer_, ec.message());
      }
      CloseNow();
      return;
    }
    absl::StatusOr<uint32_t> size =
        DecodeFrameSize(std::span<const uint8_t, 4>(prefix_), server_->options.max_frame_bytes);
    if (!size.ok()) {
      spdlog::warn("{}: closing connection from {}: {}", server_->name, *peer_,
                   std::string(size.status().message()));
      if (ToErrorCode(size.status()) == proto::ErrorCode::FRAME_TOO_LARGE) {
        // The body is not read, so the stream cannot be resynchronized: answer
        // with a connection-level error (api 0, correlation id 0) and close.
        SendError(0, 0, 0, proto::ErrorCode::FRAME_TOO_LARGE, std::string(size.status().message()));
        CloseAfterFlushNow();
      } else {
        CloseNow();
      }
      return;
    }
    frame_size_ = *size;
    // Memory is committed as the body arrives, not as its size claims: a
    // frame above kInitialBodyBytes is read into a buffer that doubles.
    body_.reset(new std::vector<uint8_t>(std::min<size_t>(frame_size_, kInitialBodyBytes)),
                BufferDeleter{weak_from_this(), peer_});
    ++held_requests_;
    ReadBody(0);
  }

  // Reads into body_ from byte `have` to its current size.
  void ReadBody(size_t have) {
    reading_ = true;
    asio::async_read(
        socket_, asio::buffer(body_->data() + have, body_->size() - have),
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(boost::system::error_code ec) {
    reading_ = false;
    if (!ec && !lingering_ && body_->size() < frame_size_) {
      const size_t have = body_->size();
      body_->resize(std::min<size_t>(frame_size_, have * 2));
      ReadBody(have);
      return;
    }
    std::shared_ptr<std::vector<uint8_t>> body = std::move(body_);
    if (lingering_ && !ec) {
      Drain();
      return;
    }
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        spdlog::debug("{}: truncated frame from {}: {}", server_->name, *peer_, ec.message());
      }
      CloseNow();
      return;
    }
    absl::StatusOr<FrameHeader> h = DecodeFrameBody(frame_size_, *body);
    if (!h.ok()) {
      // The fixed fields were read, so the correlation id is known.
      const uint8_t* p = body->data();
      uint16_t api = static_cast<uint16_t>((p[0] << 8) | p[1]);
      uint16_t version = static_cast<uint16_t>((p[2] << 8) | p[3]);
      uint32_t corr =
          (uint32_t{p[4]} << 24) | (uint32_t{p[5]} << 16) | (uint32_t{p[6]} << 8) | p[7];
      spdlog::warn("{}: closing connection from {}: {}", server_->name, *peer_,
                   std::string(h.status().message()));
      SendError(api, version, corr, proto::ErrorCode::INVALID_REQUEST,
                std::string(h.status().message()));
      CloseAfterFlushNow();
      return;
    }
    Request req;
    req.api_ = h->api;
    req.version_ = h->version;
    req.correlation_id_ = h->correlation_id;
    const uint8_t* base = body->data() + kFixedHeaderBytes;
    req.header_ = std::string_view(reinterpret_cast<const char*>(base), h->header_size);
    req.payload_ = std::span<const uint8_t>(base + h->header_size, h->payload_size());
    req.buffer_ = std::move(body);
    req.conn_ = weak_from_this();

    auto it = server_->handlers.find(h->api);
    if (it == server_->handlers.end()) {
      req.RespondError(proto::ErrorCode::UNSUPPORTED_API,
                       absl::StrCat("api ", h->api, " is not served by ", server_->name));
    } else if (h->version > it->second.max_version) {
      req.RespondError(proto::ErrorCode::UNSUPPORTED_VERSION,
                       absl::StrCat("api ", h->api, " version ", h->version,
                                    " is above the supported ", it->second.max_version));
    } else {
      it->second.handler(std::move(req));
    }
    ReadPrefix();
  }

  void SendError(uint16_t api, uint16_t version, uint32_t corr, proto::ErrorCode code,
                 std::string_view message) {
    proto::ErrorResponse err;
    err.set_error_code(code);
    err.set_error_message(std::string(message));
    auto f = BuildFrame(api | kResponseBit, version, corr, err, {});
    if (f.ok()) Enqueue(std::move(*f));
  }

  void Enqueue(OutFrame f) {
    if (closed_) return;
    queued_bytes_ += f.bytes();
    queue_.push_back(std::move(f));
    if (!writing_) Write();
  }

  void Write() {
    size_t n = std::min(queue_.size(), kMaxFramesPerWrite);
    gather_.clear();
    for (size_t i = 0; i < n; ++i) {
      gather_.push_back(asio::buffer(queue_[i].head));
      if (!queue_[i].payload.empty()) gather_.push_back(asio::buffer(queue_[i].payload));
    }
    writing_ = true;
    asio::async_write(socket_, gather_,
                      [self = shared_from_this(), n](boost::system::error_code ec, size_t) {
                        self->OnWritten(ec, n);
                      });
  }

  void OnWritten(boost::system::error_code ec, size_t n) {
    writing_ = false;
    if (ec) {
      if (ec != asio::error::operation_aborted) {
        spdlog::debug("{}: write to {} failed: {}", server_->name, *peer_, ec.message());
      }
      CloseNow();
      return;
    }
    for (size_t i = 0; i < n && !queue_.empty(); ++i) {
      queued_bytes_ -= queue_.front().bytes();
      queue_.pop_front();
    }
    if (!queue_.empty()) {
      Write();
    } else if (close_after_flush_) {
      LingerClose();
      return;
    }
    MaybeResumeReading();
  }

  void CloseAfterFlushNow() {
    close_after_flush_ = true;
    if (!writing_) LingerClose();
  }

  // Half-closes and discards what the peer still sends (up to kLinger), so
  // that closing with unread bytes does not reset the connection and destroy
  // the responses just written before the peer reads them.
  void LingerClose() {
    if (closed_ || lingering_) return;
    lingering_ = true;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    linger_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
    linger_timer_->expires_after(kLinger);
    linger_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->CloseNow();
    });
    // A frame read in progress finds lingering_ set and drains from there.
    if (!reading_) Drain();
  }

  void Drain() {
    if (!drain_buf_) drain_buf_ = std::make_unique<std::array<uint8_t, 4096>>();
    socket_.async_read_some(asio::buffer(*drain_buf_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t) {
                              if (ec) {
                                self->CloseNow();
                              } else {
                                self->Drain();
                              }
                            });
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    // Unregister first: once the peer sees the close, connection_count no
    // longer counts this connection.
    server_->Unregister(this);
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    if (linger_timer_) linger_timer_->cancel();
    queue_.clear();
    queued_bytes_ = 0;
  }

  std::shared_ptr<ServerCore> server_;
  tcp::socket socket_;  // executor: this connection's strand
  std::shared_ptr<const std::string> peer_;

  // Everything below is touched only on the strand.
  std::array<uint8_t, 4> prefix_{};
  uint32_t frame_size_ = 0;
  std::shared_ptr<std::vector<uint8_t>> body_;
  size_t held_requests_ = 0;
  bool read_waiting_ = false;
  bool close_after_flush_ = false;
  bool lingering_ = false;
  bool reading_ = false;  // an async_read is outstanding
  std::unique_ptr<asio::steady_timer> linger_timer_;
  std::unique_ptr<std::array<uint8_t, 4096>> drain_buf_;
  bool closed_ = false;
  std::deque<OutFrame> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  std::vector<asio::const_buffer> gather_;
};

// ---- Request -------------------------------------------------------------------

const std::string& Request::peer() const {
  static const std::string* const kUnknown = new std::string("?");
  if (auto* d = std::get_deleter<Connection::BufferDeleter>(buffer_)) {
    if (d->peer) return *d->peer;
  }
  return *kUnknown;
}

bool Request::ParseHeader(google::protobuf::Message* msg) const {
  return msg->ParseFromArray(header_.data(), static_cast<int>(header_.size()));
}

void Request::Respond(const google::protobuf::Message& header, std::vector<uint8_t> payload) const {
  std::shared_ptr<Connection> conn = conn_.lock();
  if (!conn) return;
  auto f = BuildFrame(api_ | kResponseBit, version_, correlation_id_, header, std::move(payload));
  if (!f.ok()) {
    spdlog::error("response to api {} from {}: {}", api_, peer(),
                  std::string(f.status().message()));
    RespondError(proto::ErrorCode::UNKNOWN, std::string(f.status().message()));
    return;
  }
  conn->Send(std::move(*f));
}

void Request::RespondError(proto::ErrorCode code, std::string_view message) const {
  proto::ErrorResponse err;
  err.set_error_code(code);
  err.set_error_message(std::string(message));
  Respond(err);
}

void Request::CloseConnection() const {
  if (std::shared_ptr<Connection> conn = conn_.lock()) conn->CloseAfterFlush();
}

// ---- RpcServer -------------------------------------------------------------------

void ServerCore::Accept() {
  absl::MutexLock l(&mu);
  if (stopped) return;
  acceptor.async_accept(asio::make_strand(io),
                        [self = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
                          if (ec) {
                            if (ec == asio::error::operation_aborted) return;
                            spdlog::warn("{}: accept failed: {}", self->name, ec.message());
                          } else {
                            auto conn = std::make_shared<Connection>(self, std::move(s));
                            bool keep;
                            {
                              absl::MutexLock l(&self->mu);
                              keep = !self->stopped;
                              if (keep) self->connections.emplace(conn.get(), conn);
                            }
                            if (keep) {
                              conn->Start();
                            } else {
                              conn->Close();
                            }
                          }
                          self->Accept();
                        });
}

RpcServer::RpcServer(asio::io_context& io, std::string name, ServerOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(name), options)) {}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::Register(uint16_t api, uint16_t max_version, Handler handler) {
  impl_->handlers[api] = HandlerEntry{max_version, std::move(handler)};
}

absl::Status RpcServer::Listen(std::string_view host_port) {
  auto hp = ParseHostPort(host_port);
  if (!hp.ok()) return hp.status();
  boost::system::error_code ec;
  tcp::resolver resolver(impl_->io);
  auto results = resolver.resolve(hp->first, std::to_string(hp->second),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve ", std::string(host_port), ": ", ec.message()));
  }
  {
    absl::MutexLock l(&impl_->mu);
    if (impl_->stopped) return absl::FailedPreconditionError("server stopped");
    if (impl_->acceptor.is_open()) return absl::FailedPreconditionError("already listening");
    tcp::endpoint ep = results.begin()->endpoint();
    auto& acc = impl_->acceptor;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      boost::system::error_code ignored;
      acc.close(ignored);
      return absl::UnavailableError(absl::StrCat(impl_->name, ": cannot listen on ",
                                                 std::string(host_port), ": ", ec.message()));
    }
    tcp::endpoint bound = acc.local_endpoint(ec);
    impl_->port = bound.port();
    impl_->host = bound.address().to_string();
  }
  spdlog::info("{}: listening on {}:{}", impl_->name, impl_->host, impl_->port);
  impl_->Accept();
  return absl::OkStatus();
}

uint16_t RpcServer::port() const { return impl_->port; }
const std::string& RpcServer::host() const { return impl_->host; }

void RpcServer::Stop() {
  std::vector<std::shared_ptr<Connection>> conns;
  {
    absl::MutexLock l(&impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
    for (auto& [ptr, conn] : impl_->connections) conns.push_back(std::move(conn));
    // The posted closes own the connections now; if `io` is never run again
    // they are destroyed with it.
    impl_->connections.clear();
  }
  for (auto& c : conns) c->Close();
}

size_t RpcServer::connection_count() const {
  absl::MutexLock l(&impl_->mu);
  return impl_->connections.size();
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseHostPort(std::string_view host_port) {
  std::string_view host;
  std::string_view port;
  if (!host_port.empty() && host_port.front() == '[') {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address '", std::string(host_port), "': want [HOST]:PORT"));
    }
    host = host_port.substr(1, close - 1);
    port = host_port.substr(close + 2);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos ||
        host_port.find(':') != colon) {  // bare IPv6 must be bracketed
      return absl::InvalidArgumentError(
          absl::StrCat("bad address '", std::string(host_port), "': want HOST:PORT"));
    }
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
  }
  uint32_t p = 0;
  bool digits = !port.empty() && port.size() <= 5 &&
                port.find_first_not_of("0123456789") == std::string_view::npos;
  if (!digits || !absl::SimpleAtoi(absl::string_view(port.data(), port.size()), &p) || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad port in '", std::string(host_port), "': want 0..65535"));
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address '", std::string(host_port), "': empty host"));
  }
  return std::make_pair(std::string(host), static_cast<uint16_t>(p));
}

}  // namespace brook::rpc
