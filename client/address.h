// Host:port parsing and the list of name servers a client starts from.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace brook::client {

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
  bool operator==(const HostPort&) const = default;
};

// Parses "host:port" (the port must be 1..65535).
absl::StatusOr<HostPort> ParseHostPort(std::string_view s);

// Parses a comma-separated "HOST:PORT,..." list; an empty list means
// DefaultNameservers(). Fails on any malformed entry.
absl::StatusOr<std::vector<HostPort>> ParseNameservers(const std::string& list);

}  // namespace brook::client
