// Resolution and validation of brook-server settings (flags over --config).
#include "server/settings.h"

#include <fstream>
#include <sstream>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/rpc/server.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace brook::server {
namespace {

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!errors.empty()) errors += "; ";
    absl::StrAppend(&errors, "line ", line + 1, " column ", column + 1, ": ", message);
  }
  std::string errors;
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    absl::string_view t = absl::StripAsciiWhitespace(part);
    if (!t.empty()) out.emplace_back(t);
  }
  return out;
}

absl::Status CheckAddress(const std::string& what, const std::string& value) {
  auto hp = rpc::ParseHostPort(value);
  if (!hp.ok() || hp->first.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": bad address '", value, "': want HOST:PORT with a port 0..65535"));
  }
  return absl::OkStatus();
}

// `flag` when given on the command line, else `config` when set, else `def`.
std::string Pick(const std::optional<std::string>& flag, const std::string& config,
                 const std::string& def) {
  if (flag.has_value()) return *flag;
  if (!config.empty()) return config;
  return def;
}

}  // namespace

absl::StatusOr<proto::ServerConfig> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file '", path, "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read config file '", path, "'"));
  proto::ServerConfig config;
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(ss.str(), &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid config file '", path, "': ", errors.errors));
  }
  return config;
}

absl::StatusOr<std::vector<QuorumMember>> ParseQuorum(const std::string& text) {
  std::vector<QuorumMember> out;
  for (const std::string& item : SplitList(text)) {
    std::pair<std::string, std::string> parts = absl::StrSplit(item, absl::MaxSplits('@', 1));
    QuorumMember m;
    if (parts.second.empty() || !absl::SimpleAtoi(parts.first, &m.id) || m.id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("coordinator quorum: bad member '", item, "': want ID@HOST:PORT"));
    }
    if (auto s = CheckAddress("coordinator quorum", parts.second); !s.ok()) return s;
    auto hp = rpc::ParseHostPort(parts.second);
    m.host = hp->first;
    m.port = hp->second;
    for (const auto& o : out) {
      if (o.id == m.id) {
        return absl::InvalidArgumentError(
            absl::StrCat("coordinator quorum: id ", m.id, " appears twice"));
      }
    }
    out.push_back(m);
  }
  if (out.empty()) return absl::InvalidArgumentError("coordinator quorum is empty");
  return out;
}

absl::StatusOr<Settings> ResolveSettings(const FlagValues& flags) {
  Settings s;
  if (flags.config.has_value() && !flags.config->empty()) {
    auto config = LoadConfigFile(*flags.config);
    if (!config.ok()) return config.status();
    s.config = *std::move(config);
  }
  const proto::ServerConfig& c = s.config;

  std::vector<std::string> roles;
  if (flags.roles.has_value()) {
    roles = SplitList(*flags.roles);
  } else if (c.roles_size() > 0) {
    for (const auto& r : c.roles()) {
      for (auto& x : SplitList(r)) roles.push_back(x);
    }
  } else {
    roles = {"nameserver", "coordinator", "broker"};
  }
  if (roles.empty()) return absl::InvalidArgumentError("--roles: no role given");
  for (const auto& r : roles) {
    if (r != "nameserver" && r != "coordinator" && r != "broker") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--roles: unknown role '", r, "' (known: nameserver, coordinator, broker)"));
    }
    s.roles.insert(r);
  }

  s.data_dir = Pick(flags.data_dir, c.data_dir(), "./data");
  if (s.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is empty");
  s.nameserver_listen = Pick(flags.nameserver_listen, c.nameserver_listen(), "127.0.0.1:9876");
  s.coordinator_listen = Pick(flags.coordinator_listen, c.coordinator_listen(), "127.0.0.1:9093");
  s.broker_listen = Pick(flags.broker_listen, c.broker_listen(), "127.0.0.1:9092");
  s.admin_listen = Pick(flags.admin_listen, c.admin_listen(), "127.0.0.1:9644");
  if (auto st = CheckAddress("--admin-listen", s.admin_listen); !st.ok()) return st;
  if (s.has("nameserver")) {
    if (auto st = CheckAddress("--nameserver-listen", s.nameserver_listen); !st.ok()) return st;
  }
  if (s.has("coordinator")) {
    if (auto st = CheckAddress("--coordinator-listen", s.coordinator_listen); !st.ok()) return st;
  }
  if (s.has("broker")) {
    if (auto st = CheckAddress("--broker-listen", s.broker_listen); !st.ok()) return st;
  }

  s.broker_id = flags.broker_id.value_or(c.broker_id() != 0 ? c.broker_id() : 1);
  s.coordinator_id = flags.coordinator_id.value_or(c.coordinator_id() != 0 ? c.coordinator_id() : 1);
  if (s.broker_id < 0) return absl::InvalidArgumentError("--broker-id must be >= 0");
  if (s.coordinator_id < 0) return absl::InvalidArgumentError("--coordinator-id must be >= 0");

  std::string quorum = flags.coordinator_quorum.value_or(c.coordinator_quorum());
  if (!quorum.empty()) {
    auto members = ParseQuorum(quorum);
    if (!members.ok()) return members.status();
    s.quorum = *std::move(members);
    const QuorumMember* own = nullptr;
    for (const QuorumMember& m : s.quorum) {
      if (m.id == s.coordinator_id) own = &m;
    }
    if (s.has("coordinator") && own == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--coordinator-quorum: this coordinator (id ",
                                                     s.coordinator_id, ") is not a member"));
    }
    if (s.has("coordinator") && !flags.coordinator_listen.has_value() &&
        c.coordinator_listen().empty()) {
      // Listen where the quorum says this member is.
      s.coordinator_listen = absl::StrCat(own->host, ":", own->port);
    }
    for (const QuorumMember& m : s.quorum) {
      const bool is_self = s.has("coordinator") && m.id == s.coordinator_id;
      if (m.port == 0 && (!is_self || s.quorum.size() > 1)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--coordinator-quorum: member ", m.id,
            " has port 0, which names no coordinator (only allowed for this process's own "
            "coordinator in a single-member quorum)"));
      }
    }
  } else if (s.has("broker") && !s.has("coordinator")) {
    // The default quorum is this process's coordinator listen address.
    auto members = ParseQuorum(absl::StrCat(s.coordinator_id, "@", s.coordinator_listen));
    if (!members.ok()) return members.status();
    s.quorum = *std::move(members);
    if (s.quorum.front().port == 0) {
      return absl::InvalidArgumentError("a broker without the coordinator role needs "
                                        "--coordinator-quorum with a real port");
    }
  }

  s.broker_advertised = flags.broker_advertised.value_or(c.broker_advertised());
  if (!s.broker_advertised.empty()) {
    if (auto st = CheckAddress("--broker-advertised", s.broker_advertised); !st.ok()) return st;
    if (rpc::ParseHostPort(s.broker_advertised)->second == 0) {
      return absl::InvalidArgumentError("--broker-advertised needs a real port, not 0");
    }
  }
  s.config.set_broker_advertised(s.broker_advertised);
  if (flags.default_replication_factor.has_value()) {
    s.config.set_default_replication_factor(*flags.default_replication_factor);
  }

  if (flags.nameservers.has_value()) {
    s.nameservers = SplitList(*flags.nameservers);
    if (s.nameservers.empty()) return absl::InvalidArgumentError("--nameservers is empty");
  } else {
    for (const auto& n : c.nameservers()) {
      for (auto& x : SplitList(n)) s.nameservers.push_back(x);
    }
  }
  for (const auto& n : s.nameservers) {
    if (auto st = CheckAddress("--nameservers", n); !st.ok()) return st;
  }

  s.max_frame_bytes = flags.max_frame_bytes.value_or(
      c.has_max_frame_bytes() ? c.max_frame_bytes() : 64u * 1024 * 1024);
  if (s.max_frame_bytes < 1024) {
    return absl::InvalidArgumentError("--max-frame-bytes must be at least 1024");
  }
  s.io_threads = flags.io_threads.value_or(c.has_io_threads() ? c.io_threads() : 2);
  if (s.io_threads < 1 || s.io_threads > 256) {
    return absl::InvalidArgumentError("--io-threads must be in 1..256");
  }
  for (auto [name, v] : {std::pair<const char*, int64_t>{"broker_heartbeat_ms",
                                                          c.has_broker_heartbeat_ms() ? c.broker_heartbeat_ms() : 1},
                         {"broker_lease_ms", c.has_broker_lease_ms() ? c.broker_lease_ms() : 1},
                         {"nameserver_heartbeat_ms",
                          c.has_nameserver_heartbeat_ms() ? c.nameserver_heartbeat_ms() : 1},
                         {"nameserver_expiry_ms",
                          c.has_nameserver_expiry_ms() ? c.nameserver_expiry_ms() : 1},
                         {"retention_check_ms",
                          c.has_retention_check_ms() ? c.retention_check_ms() : 1}}) {
    if (v <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", name, " must be positive"));
    }
  }
  if (c.has_default_partitions() && c.default_partitions() <= 0) {
    return absl::InvalidArgumentError("config: default_partitions must be positive");
  }
  if (c.has_default_replication_factor() && c.default_replication_factor() <= 0) {
    return absl::InvalidArgumentError("default replication factor must be positive");
  }
  for (auto [name, has, v] : {std::tuple<const char*, bool, int64_t>{
                                  "replica_lag_time_max_ms", c.has_replica_lag_time_max_ms(),
                                  c.replica_lag_time_max_ms()},
                              {"replica_fetch_wait_ms", c.has_replica_fetch_wait_ms(),
                               c.replica_fetch_wait_ms()},
                              {"raft_election_timeout_ms", c.has_raft_election_timeout_ms(),
                               c.raft_election_timeout_ms()},
                              {"raft_heartbeat_ms", c.has_raft_heartbeat_ms(), c.raft_heartbeat_ms()},
                              {"controlled_shutdown_timeout_ms",
                               c.has_controlled_shutdown_timeout_ms(),
                               c.controlled_shutdown_timeout_ms()}}) {
    if (has && v <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", name, " must be positive"));
    }
  }
  for (auto [name, has, v] : {std::tuple<const char*, bool, int64_t>{
                                  "raft_snapshot_entries", c.has_raft_snapshot_entries(),
                                  c.raft_snapshot_entries()},
                              {"leader_rebalance_interval_ms", c.has_leader_rebalance_interval_ms(),
                               c.leader_rebalance_interval_ms()}}) {
    if (has && v < 0) {
      return absl::InvalidArgumentError(absl::StrCat("config: ", name, " must be >= 0 (0: off)"));
    }
  }
  const int64_t election = c.has_raft_election_timeout_ms() ? c.raft_election_timeout_ms() : 500;
  const int64_t heartbeat = c.has_raft_heartbeat_ms() ? c.raft_heartbeat_ms() : 50;
  if (heartbeat >= election) {
    return absl::InvalidArgumentError(
        "config: raft_heartbeat_ms must be below raft_election_timeout_ms");
  }
  return s;
}

}  // namespace brook::server
