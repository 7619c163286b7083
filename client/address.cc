// Name-server address lists and DefaultNameservers() (declared in brook/types.h).
#include "client/address.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "brook/types.h"

namespace brook::client {

std::string DefaultNameservers() {
  const char* env = std::getenv("BROOK_NAMESERVER");
  if (env != nullptr && env[0] != '\0') return env;
  return "127.0.0.1:9876";
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) {
    return absl::InvalidArgumentError(absl::StrCat("address '", std::string(s), "' is not HOST:PORT"));
  }
  int port = 0;
  if (!absl::SimpleAtoi(std::string(s.substr(colon + 1)), &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("address '", std::string(s), "' has a bad port"));
  }
  std::string host(s.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return HostPort{std::move(host), static_cast<uint16_t>(port)};
}

absl::StatusOr<std::vector<HostPort>> ParseNameservers(const std::string& list) {
  const std::string effective = list.empty() ? DefaultNameservers() : list;
  std::vector<HostPort> out;
  for (absl::string_view part : absl::StrSplit(effective, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    auto hp = ParseHostPort(std::string_view(part.data(), part.size()));
    if (!hp.ok()) return hp.status();
    out.push_back(*std::move(hp));
  }
  if (out.empty()) return absl::InvalidArgumentError("no name server address given");
  return out;
}

}  // namespace brook::client
