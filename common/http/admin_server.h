// AdminServer: the admin HTTP port of every server process (Boost.Beast):
// /healthz, /metrics (Prometheus text from metrics::Registry::Global()), and
// JSON routes that components register. Handlers run on the io_context's
// threads and must not block for long.
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "boost/asio/io_context.hpp"

namespace brook::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::map<std::string, std::string> query;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

class AdminServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit AdminServer(boost::asio::io_context& io);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Adds a route for an exact path (any method). /healthz and /metrics exist
  // already. Call before Listen.
  void Handle(const std::string& path, Handler handler);

  // Health: /healthz answers 200 "ok" while `check` returns OK, else 503 with
  // the status message. Default: always OK.
  void SetHealthCheck(std::function<absl::Status()> check);

  // "HOST:PORT"; port 0 picks a free one (see port()).
  absl::Status Listen(std::string_view host_port);
  uint16_t port() const;
  void Stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace brook::http
