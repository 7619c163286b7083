// ConnectionPool: connect on demand, reuse while connected.
#include "client/connection_pool.h"

#include <vector>

namespace brook::client {

absl::StatusOr<std::shared_ptr<rpc::RpcClient>> ConnectionPool::Get(const HostPort& addr) {
  const std::string key = addr.ToString();
  {
    absl::MutexLock lock(&mu_);
    auto it = conns_.find(key);
    if (it != conns_.end()) {
      if (it->second->connected()) return it->second;
      conns_.erase(it);
    }
  }
  // Connect without the lock so that other addresses stay usable meanwhile.
  auto conn = rpc::RpcClient::Connect(io_, addr.host, addr.port, options_);
  if (!conn.ok()) return conn.status();
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = conns_.try_emplace(key, *conn);
  if (!inserted) {
    if (it->second->connected()) {
      (*conn)->Close();  // another thread connected first: keep theirs
      return it->second;
    }
    it->second = *conn;
  }
  return it->second;
}

void ConnectionPool::Invalidate(const std::shared_ptr<rpc::RpcClient>& conn) {
  if (conn == nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    // Keys are our own HostPort strings, not the client's address(): compare values.
    for (auto it = conns_.begin(); it != conns_.end(); ++it) {
      if (it->second == conn) {
        conns_.erase(it);
        break;
      }
    }
  }
  conn->Close();
}

void ConnectionPool::CloseAll() {
  std::vector<std::shared_ptr<rpc::RpcClient>> conns;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, c] : conns_) conns.push_back(std::move(c));
    conns_.clear();
  }
  for (auto& c : conns) c->Close();
}

}  // namespace brook::client
