// AdminServer: an asynchronous HTTP/1.1 server (Boost.Beast) with keep-alive.
// Each session's socket lives on its own strand; route handlers run there.
#include "common/http/admin_server.h"

#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/strand.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "common/http/metrics.h"
#include "spdlog/spdlog.h"

namespace brook::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr uint64_t kMaxBodyBytes = 1 << 20;
constexpr uint32_t kMaxHeaderBytes = 16 * 1024;
constexpr auto kIdleTimeout = std::chrono::seconds(60);

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes and '+' (as a space); malformed escapes stay literal.
std::string UrlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

}  // namespace

class Session;

// Server state shared with sessions; outlives the AdminServer while any
// session holds it.
struct AdminCore : std::enable_shared_from_this<AdminCore> {
  explicit AdminCore(asio::io_context& io) : io(io), acceptor(io) {}

  void Accept();
  HttpResponse Route(const HttpRequest& req) const;

  asio::io_context& io;
  // Written only before Listen.
  absl::flat_hash_map<std::string, AdminServer::Handler> routes;

  mutable absl::Mutex health_mu;
  std::function<absl::Status()> health ABSL_GUARDED_BY(health_mu) = [] { return absl::OkStatus(); };

  absl::Mutex mu;
  tcp::acceptor acceptor;  // guarded by mu for initiations and close
  bool stopped ABSL_GUARDED_BY(mu) = false;
  uint16_t port = 0;
  absl::flat_hash_map<Session*, std::weak_ptr<Session>> sessions ABSL_GUARDED_BY(mu);
};

// One HTTP connection: read a request, answer it, repeat while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<AdminCore> core, tcp::socket socket)
      : core_(std::move(core)), stream_(std::move(socket)) {}

  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  void Close() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
  }

 private:
  void Read() {
    if (closed_) return;
    parser_.emplace();
    parser_->body_limit(kMaxBodyBytes);
    parser_->header_limit(kMaxHeaderBytes);
    stream_.expires_after(kIdleTimeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      SendError(bhttp::status::payload_too_large, "request body too large");
      return;
    }
    if (ec == bhttp::error::header_limit) {
      SendError(bhttp::status::request_header_fields_too_large, "request header too large");
      return;
    }
    if (ec) {
      CloseNow();
      return;
    }
    bhttp::request<bhttp::string_body> req = parser_->release();
    HttpRequest r;
    r.method = std::string(req.method_string());
    std::string_view target(req.target().data(), req.target().size());
    size_t q = target.find('?');
    r.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) {
      std::string query(target.substr(q + 1));
      for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
        std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
        r.query[UrlDecode(kv.first)] = UrlDecode(kv.second);
      }
    }
    r.body = std::move(req.body());
    HttpResponse resp = core_->Route(r);

    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(resp.status), req.version());
    res->set(bhttp::field::server, "brook");
    res->set(bhttp::field::content_type, resp.content_type);
    res->keep_alive(req.keep_alive());
    res->body() = std::move(resp.body);
    res->prepare_payload();
    Write(std::move(res));
  }

  void SendError(bhttp::status status, std::string_view message) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(status, 11);
    res->set(bhttp::field::content_type, "application/json");
    res->keep_alive(false);
    res->body() = absl::StrCat("{\"error\":\"", JsonEscape(message), "\"}");
    res->prepare_payload();
    Write(std::move(res));
  }

  void Write(std::shared_ptr<bhttp::response<bhttp::string_body>> res) {
    stream_.expires_after(kIdleTimeout);
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res](beast::error_code ec, size_t) {
                         if (ec || !res->keep_alive()) {
                           self->CloseNow();
                         } else {
                           self->Read();
                         }
                       });
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
    absl::MutexLock l(&core_->mu);
    core_->sessions.erase(this);
  }

  std::shared_ptr<AdminCore> core_;
  beast::tcp_stream stream_;  // executor: this session's strand
  // Strand only.
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool closed_ = false;
};

HttpResponse AdminCore::Route(const HttpRequest& req) const {
  if (req.path == "/healthz") {
    std::function<absl::Status()> check;
    {
      absl::MutexLock l(&health_mu);
      check = health;
    }
    absl::Status s = check();
    if (s.ok()) return HttpResponse{200, "text/plain", "ok\n"};
    return HttpResponse{503, "text/plain", std::string(s.message()) + "\n"};
  }
  if (req.path == "/metrics") {
    return HttpResponse{200, "text/plain; version=0.0.4",
                        metrics::Registry::Global().RenderPrometheus()};
  }
  auto it = routes.find(req.path);
  if (it != routes.end()) return it->second(req);
  return HttpResponse{
      404, "application/json",
      absl::StrCat("{\"error\":\"not found\",\"path\":\"", JsonEscape(req.path), "\"}")};
}

void AdminCore::Accept() {
  absl::MutexLock l(&mu);
  if (stopped) return;
  acceptor.async_accept(asio::make_strand(io),
                        [self = shared_from_this()](beast::error_code ec, tcp::socket s) {
                          if (ec) {
                            if (ec == asio::error::operation_aborted) return;
                            spdlog::warn("admin http: accept failed: {}", ec.message());
                          } else {
                            auto session = std::make_shared<Session>(self, std::move(s));
                            bool keep;
                            {
                              absl::MutexLock l(&self->mu);
                              keep = !self->stopped;
                              if (keep) self->sessions.emplace(session.get(), session);
                            }
                            if (keep) {
                              session->Start();
                            } else {
                              session->Close();
                            }
                          }
                          self->Accept();
                        });
}

struct AdminServer::Impl : AdminCore {
  using AdminCore::AdminCore;
};

AdminServer::AdminServer(asio::io_context& io) : impl_(std::make_shared<Impl>(io)) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::Handle(const std::string& path, Handler handler) {
  impl_->routes[path] = std::move(handler);
}

void AdminServer::SetHealthCheck(std::function<absl::Status()> check) {
  absl::MutexLock l(&impl_->health_mu);
  impl_->health = std::move(check);
}

absl::Status AdminServer::Listen(std::string_view host_port) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address '", std::string(host_port), "': want HOST:PORT"));
  }
  std::string host(host_port.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string port(host_port.substr(colon + 1));
  beast::error_code ec;
  tcp::resolver resolver(impl_->io);
  auto results =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve ", std::string(host_port), ": ", ec.message()));
  }
  {
    absl::MutexLock l(&impl_->mu);
    if (impl_->stopped) return absl::FailedPreconditionError("admin server stopped");
    if (impl_->acceptor.is_open()) return absl::FailedPreconditionError("already listening");
    tcp::endpoint ep = results.begin()->endpoint();
    auto& acc = impl_->acceptor;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      beast::error_code ignored;
      acc.close(ignored);
      return absl::UnavailableError(absl::StrCat("admin http: cannot listen on ",
                                                 std::string(host_port), ": ", ec.message()));
    }
    impl_->port = acc.local_endpoint(ec).port();
  }
  spdlog::info("admin http: listening on {}:{}", host, impl_->port);
  impl_->Accept();
  return absl::OkStatus();
}

uint16_t AdminServer::port() const { return impl_->port; }

void AdminServer::Stop() {
  std::vector<std::shared_ptr<Session>> sessions;
  {
    absl::MutexLock l(&impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
    beast::error_code ec;
    impl_->acceptor.close(ec);
    for (auto& [ptr, weak] : impl_->sessions) {
      if (auto s = weak.lock()) sessions.push_back(std::move(s));
    }
  }
  for (auto& s : sessions) s->Close();
}

}  // namespace brook::http
