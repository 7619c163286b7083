// ConnectionPool: one RpcClient per broker / server address, shared by every
// request to that address; a closed connection is replaced on the next Get.
#pragma once

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/address.h"
#include "common/rpc/client.h"

namespace brook::client {

// Thread-safe. Get may block up to the connect timeout and so must not be
// called on the io_context's own thread. `io` must outlive the pool.
class ConnectionPool {
 public:
  ConnectionPool(boost::asio::io_context& io, rpc::ClientOptions options)
      : io_(io), options_(options) {}
  ~ConnectionPool() { CloseAll(); }

  // The live connection to `addr`, connecting (again) if there is none.
  absl::StatusOr<std::shared_ptr<rpc::RpcClient>> Get(const HostPort& addr);

  // Forgets `conn` (and closes it) if it is still the pooled connection for
  // its address, so that the next Get reconnects.
  void Invalidate(const std::shared_ptr<rpc::RpcClient>& conn);

  // Closes every connection (outstanding calls fail with Unavailable).
  void CloseAll();

 private:
  boost::asio::io_context& io_;
  const rpc::ClientOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<rpc::RpcClient>> conns_ ABSL_GUARDED_BY(mu_);
};

}  // namespace brook::client
