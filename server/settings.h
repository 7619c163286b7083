// brook-server settings: the command-line flags merged over the --config file
// (protobuf text format, proto/config.proto), validated into one struct.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/config.pb.h"

namespace brook::server {

struct QuorumMember {
  int32_t id = 0;
  std::string host;
  uint16_t port = 0;
};

// Everything the process needs, resolved and validated.
struct Settings {
  std::set<std::string> roles;  // subset of {nameserver, coordinator, broker}
  std::string data_dir;
  std::string nameserver_listen;
  std::string coordinator_listen;
  std::string broker_listen;
  std::string admin_listen;
  int32_t broker_id = 1;
  int32_t coordinator_id = 1;
  // Empty when the quorum was not given: then it is this process's own
  // coordinator at its bound address. With the coordinator role and a
  // quorum, coordinator_id is a member.
  std::vector<QuorumMember> quorum;
  // The broker's registered address; empty: its bound address.
  std::string broker_advertised;
  // Empty when not given: then this process's own name server (bound
  // address) when it has the role, else 127.0.0.1:9876.
  std::vector<std::string> nameservers;
  uint32_t max_frame_bytes = 0;
  int io_threads = 2;
  proto::ServerConfig config;  // the file's contents (defaults for the rest)

  bool has(const std::string& role) const { return roles.count(role) > 0; }
};

// One explicitly given command-line value, or nullopt when the flag was not
// on the command line (then the config file's value or the default applies).
struct FlagValues {
  std::optional<std::string> roles, data_dir, nameserver_listen, coordinator_listen,
      broker_listen, admin_listen, coordinator_quorum, nameservers, config, broker_advertised;
  std::optional<int32_t> broker_id, coordinator_id, io_threads, default_replication_factor;
  std::optional<uint32_t> max_frame_bytes;
};

// Reads a ServerConfig in protobuf text format; errors name the file, line
// and column.
absl::StatusOr<proto::ServerConfig> LoadConfigFile(const std::string& path);

// Parses "ID@HOST:PORT,..." (non-empty, unique ids).
absl::StatusOr<std::vector<QuorumMember>> ParseQuorum(const std::string& text);

// Flags over config over defaults, then validation (roles, HOST:PORT values,
// ids, thread count, quorum membership, positive timings). Flags that have a
// ServerConfig field are stored into `config` too.
absl::StatusOr<Settings> ResolveSettings(const FlagValues& flags);

}  // namespace brook::server
