// RpcClient: one connection, a strand-protected write queue that coalesces
// frames into gathered writes, a read loop that matches responses to calls by
// correlation id, and a 50 ms sweep that fails calls past their deadline.
#include "common/rpc/client.h"

#include <array>
#include <atomic>
#include <deque>
#include <limits>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "common/rpc/frame.h"
#include "proto/brook.pb.h"
#include "spdlog/spdlog.h"

namespace brook::rpc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kSweepInterval = std::chrono::milliseconds(50);
constexpr size_t kMaxFramesPerWrite = 64;

struct ClientFrame {
  std::vector<uint8_t> head;  // 16-byte prefix + protobuf header
  std::vector<uint8_t> payload;
};

struct PendingCall {
  RpcClient::Callback cb;
  Clock::time_point deadline;
};

}  // namespace

struct RpcClient::Impl : std::enable_shared_from_this<RpcClient::Impl> {
  Impl(asio::io_context& io, ClientOptions options)
      : io(io),
        strand(asio::make_strand(io)),
        socket(strand),
        sweep_timer(strand),
        options(options) {}

  void Start() {
    asio::dispatch(strand, [self = shared_from_this()] {
      self->ReadPrefix();
      self->ArmSweep();
    });
  }

  // ---- writes (strand) ----
  void Enqueue(ClientFrame f) {
    if (socket_closed) return;  // the call was already failed by FailAll
    out.push_back(std::move(f));
    if (!writing) Write();
  }

  void Write() {
    size_t n = std::min(out.size(), kMaxFramesPerWrite);
    gather.clear();
    for (size_t i = 0; i < n; ++i) {
      gather.push_back(asio::buffer(out[i].head));
      if (!out[i].payload.empty()) gather.push_back(asio::buffer(out[i].payload));
    }
    writing = true;
    asio::async_write(socket, gather,
                      [self = shared_from_this(), n](boost::system::error_code ec, size_t) {
                        self->writing = false;
                        if (ec) {
                          self->Fail(absl::UnavailableError(
                              absl::StrCat("write to ", self->address, " failed: ", ec.message())));
                          return;
                        }
                        for (size_t i = 0; i < n && !self->out.empty(); ++i) self->out.pop_front();
                        if (!self->out.empty()) self->Write();
                      });
  }

  // ---- reads (strand) ----
  void ReadPrefix() {
    asio::async_read(
        socket, asio::buffer(prefix),
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->OnPrefix(ec); });
  }

  void OnPrefix(boost::system::error_code ec) {
    if (ec) {
      Fail(absl::UnavailableError(
          ec == asio::error::eof ? absl::StrCat("connection to ", address, " closed")
                                 : absl::StrCat("read from ", address, " failed: ", ec.message())));
      return;
    }
    auto size =
        DecodeFrameSize(std::span<const uint8_t, 4>(prefix.data(), 4), options.max_frame_bytes);
    if (!size.ok()) {
      Fail(absl::UnavailableError(
          absl::StrCat("bad response frame from ", address, ": ", size.status().message())));
      return;
    }
    // The fixed fields are in `prefix`; header and payload are read straight
    // into the Response's own buffers (no copy).
    current.api = static_cast<uint16_t>((prefix[4] << 8) | prefix[5]);
    current.version = static_cast<uint16_t>((prefix[6] << 8) | prefix[7]);
    current_corr = (uint32_t{prefix[8]} << 24) | (uint32_t{prefix[9]} << 16) |
                   (uint32_t{prefix[10]} << 8) | prefix[11];
    uint32_t header_size = (uint32_t{prefix[12]} << 24) | (uint32_t{prefix[13]} << 16) |
                           (uint32_t{prefix[14]} << 8) | prefix[15];
    if (header_size > *size - kFixedHeaderBytes) {
      Fail(absl::UnavailableError(
          absl::StrCat("bad response frame from ", address, ": header size overruns frame")));
      return;
    }
    current.header.resize(header_size);
    current.payload.resize(*size - kFixedHeaderBytes - header_size);
    std::array<asio::mutable_buffer, 2> bufs = {asio::buffer(current.header),
                                                asio::buffer(current.payload)};
    asio::async_read(
        socket, bufs,
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(boost::system::error_code ec) {
    if (ec) {
      Fail(absl::UnavailableError(
          absl::StrCat("truncated response from ", address, ": ", ec.message())));
      return;
    }
    Callback cb;
    {
      absl::MutexLock l(&mu);
      auto it = pending.find(current_corr);
      if (it != pending.end()) {
        cb = std::move(it->second.cb);
        pending.erase(it);
      }
    }
    Response r = std::move(current);
    current = Response();
    if (cb) {
      cb(std::move(r));
    } else if (current_corr == 0 && r.api == kResponseBit) {
      // A connection-level error (e.g. FRAME_TOO_LARGE); the server closes next.
      proto::ErrorResponse err;
      if (err.ParseFromString(r.header)) {
        spdlog::warn("rpc {}: connection error {}: {}", address,
                     proto::ErrorCode_Name(err.error_code()), err.error_message());
        absl::MutexLock l(&mu);
        connection_error =
            absl::StrCat(proto::ErrorCode_Name(err.error_code()), ": ", err.error_message());
      }
    } else {
      spdlog::debug("rpc {}: response with unknown correlation id {} (api {}) ignored", address,
                   current_corr, r.api & ~kResponseBit);
    }
    ReadPrefix();
  }

  // ---- deadlines (strand) ----
  void ArmSweep() {
    if (socket_closed) return;
    sweep_timer.expires_after(kSweepInterval);
    sweep_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        self->Sweep();
        self->ArmSweep();
      }
    });
  }

  void Sweep() {
    std::vector<Callback> expired;
    Clock::time_point now = Clock::now();
    {
      absl::MutexLock l(&mu);
      for (auto it = pending.begin(); it != pending.end();) {
        if (it->second.deadline <= now) {
          expired.push_back(std::move(it->second.cb));
          pending.erase(it++);
        } else {
          ++it;
        }
      }
    }
    for (auto& cb : expired) {
      cb(absl::DeadlineExceededError(absl::StrCat("rpc to ", address, " timed out")));
    }
  }

  // Fails every pending call with `status` and closes the socket (strand).
  void Fail(absl::Status status) {
    absl::flat_hash_map<uint32_t, PendingCall> failed;
    {
      absl::MutexLock l(&mu);
      closed = true;
      failed.swap(pending);
      if (!connection_error.empty()) {
        status = absl::UnavailableError(
            absl::StrCat(status.message(), " (server said ", connection_error, ")"));
      }
    }
    connected.store(false, std::memory_order_release);
    if (!socket_closed) {
      socket_closed = true;
      boost::system::error_code ignored;
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      sweep_timer.cancel();
      out.clear();
    }
    for (auto& [id, call] : failed) call.cb(status);
  }

  asio::io_context& io;
  asio::strand<asio::io_context::executor_type> strand;
  tcp::socket socket;              // strand only
  asio::steady_timer sweep_timer;  // strand only
  const ClientOptions options;
  std::string address;
  std::atomic<bool> connected{false};

  // Strand only.
  std::deque<ClientFrame> out;
  std::vector<asio::const_buffer> gather;
  bool writing = false;
  bool socket_closed = false;
  std::array<uint8_t, 16> prefix{};
  Response current;
  uint32_t current_corr = 0;

  mutable absl::Mutex mu;
  absl::flat_hash_map<uint32_t, PendingCall> pending ABSL_GUARDED_BY(mu);
  uint32_t next_corr ABSL_GUARDED_BY(mu) = 1;
  bool closed ABSL_GUARDED_BY(mu) = false;
  std::string connection_error ABSL_GUARDED_BY(mu);
};

RpcClient::RpcClient(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

RpcClient::~RpcClient() { Close(); }

absl::StatusOr<std::shared_ptr<RpcClient>> RpcClient::Connect(asio::io_context& io,
                                                              const std::string& host,
                                                              uint16_t port,
                                                              ClientOptions options) {
  auto impl = std::make_shared<Impl>(io, options);
  impl->address = absl::StrCat(host, ":", port);
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  auto endpoints = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", ec.message()));
  }

  // The connect and its timer run on the strand; this thread waits.
  struct ConnectState {
    std::promise<boost::system::error_code> done;
    bool finished = false;  // strand only
    asio::steady_timer timer;
    explicit ConnectState(asio::strand<asio::io_context::executor_type>& s) : timer(s) {}
  };
  auto state = std::make_shared<ConnectState>(impl->strand);
  auto fut = state->done.get_future();
  asio::dispatch(impl->strand, [impl, state, endpoints, timeout = options.connect_timeout] {
    state->timer.expires_after(timeout);
    state->timer.async_wait([impl, state](boost::system::error_code ec) {
      if (ec || state->finished) return;
      state->finished = true;
      boost::system::error_code ignored;
      impl->socket.close(ignored);
      state->done.set_value(asio::error::timed_out);
    });
    asio::async_connect(impl->socket, endpoints,
                        [impl, state](boost::system::error_code ec, const tcp::endpoint&) {
                          if (state->finished) return;
                          state->finished = true;
                          state->timer.cancel();
                          state->done.set_value(ec);
                        });
  });
  ec = fut.get();
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", impl->address, ": ", ec.message()));
  }
  impl->socket.set_option(tcp::no_delay(true), ec);
  impl->connected.store(true, std::memory_order_release);
  impl->Start();
  return std::shared_ptr<RpcClient>(new RpcClient(std::move(impl)));
}

void RpcClient::Call(uint16_t api, uint16_t version, const google::protobuf::Message& header,
                     std::vector<uint8_t> payload, std::chrono::milliseconds timeout, Callback cb) {
  size_t header_size = header.ByteSizeLong();
  if (kFixedHeaderBytes + header_size + payload.size() > std::numeric_limits<uint32_t>::max()) {
    asio::post(impl_->strand, [cb = std::move(cb)] {
      cb(absl::InvalidArgumentError("request frame exceeds 4 GiB"));
    });
    return;
  }
  uint32_t corr = 0;
  bool closed;
  {
    absl::MutexLock l(&impl_->mu);
    closed = impl_->closed;
    if (!closed) {
      corr = impl_->next_corr++;
      if (impl_->next_corr == 0) impl_->next_corr = 1;  // 0 is for connection-level errors
      impl_->pending.emplace(corr, PendingCall{std::move(cb), Clock::now() + timeout});
    }
  }
  if (closed) {
    asio::post(impl_->strand, [cb = std::move(cb), addr = impl_->address] {
      cb(absl::UnavailableError(absl::StrCat("connection to ", addr, " is closed")));
    });
    return;
  }
  ClientFrame f;
  f.head.resize(16 + header_size);
  EncodeFramePrefix(api, version, corr, static_cast<uint32_t>(header_size), payload.size(),
                    f.head.data());
  header.SerializeWithCachedSizesToArray(f.head.data() + 16);
  f.payload = std::move(payload);
  asio::dispatch(impl_->strand,
                 [impl = impl_, f = std::move(f)]() mutable { impl->Enqueue(std::move(f)); });
}

absl::StatusOr<std::vector<uint8_t>> RpcClient::CallSync(uint16_t api, uint16_t version,
                                                         const google::protobuf::Message& header,
                                                         std::vector<uint8_t> payload,
                                                         google::protobuf::Message* out,
                                                         std::chrono::milliseconds timeout) {
  std::promise<absl::StatusOr<Response>> done;
  auto fut = done.get_future();
  Call(api, version, header, std::move(payload), timeout,
       [&done](absl::StatusOr<Response> r) { done.set_value(std::move(r)); });
  absl::StatusOr<Response> r = fut.get();
  if (!r.ok()) return r.status();
  absl::Status s = ResponseStatus(*r);
  if (!s.ok()) return s;
  if (out != nullptr && !out->ParseFromString(r->header)) {
    return absl::DataLossError(
        absl::StrCat("unparsable ", out->GetTypeName(), " from ", impl_->address));
  }
  return std::move(r->payload);
}

bool RpcClient::connected() const { return impl_->connected.load(std::memory_order_acquire); }

void RpcClient::Close() {
  asio::dispatch(impl_->strand, [impl = impl_] {
    impl->Fail(absl::UnavailableError(absl::StrCat("connection to ", impl->address, " closed")));
  });
  // Calls made after Close returns fail at once, even before the strand runs.
  absl::MutexLock l(&impl_->mu);
  impl_->closed = true;
}

size_t RpcClient::in_flight() const {
  absl::MutexLock l(&impl_->mu);
  return impl_->pending.size();
}

const std::string& RpcClient::address() const { return impl_->address; }

absl::Status ResponseStatus(const Response& r) {
  proto::ErrorResponse err;
  if (!err.ParseFromString(r.header)) {
    return absl::DataLossError(
        absl::StrCat("unparsable header of response to api ", r.api & ~kResponseBit));
  }
  return FromErrorCode(err.error_code(), err.error_message());
}

// ---- IoThread ------------------------------------------------------------------------

struct IoThread::Impl {
  explicit Impl(asio::io_context& io) : guard(asio::make_work_guard(io)) {}
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::thread thread;
};

IoThread::IoThread()
    : io_(std::make_unique<asio::io_context>(1)), impl_(std::make_unique<Impl>(*io_)) {
  impl_->thread = std::thread([io = io_.get()] { io->run(); });
}

IoThread::~IoThread() {
  impl_->guard.reset();
  io_->stop();
  impl_->thread.join();
}

}  // namespace brook::rpc
