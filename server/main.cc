// brook-server: one process running any of the nameserver, coordinator and
// broker roles (docs/operations.md). Each role listens on its own address;
// one io_context, run by --io-threads threads, serves them all and the admin
// HTTP port. SIGTERM/SIGINT stop it gracefully.
#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <memory>
#include <set>
#include <string_view>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/signal_set.hpp"
#include "broker/broker.h"
#include "broker/storage/fs.h"
#include "broker/storage/log.h"
#include "common/http/admin_server.h"
#include "common/rpc/server.h"
#include "coordinator/coordinator.h"
#include "nameserver/nameserver.h"
#include "server/settings.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, roles, "nameserver,coordinator,broker",
          "Comma-separated roles of this process: nameserver, coordinator, broker");
ABSL_FLAG(std::string, data_dir, "./data", "Data directory (<dir>/broker, <dir>/coordinator)");
ABSL_FLAG(std::string, nameserver_listen, "127.0.0.1:9876", "Name server HOST:PORT (0: any port)");
ABSL_FLAG(std::string, coordinator_listen, "127.0.0.1:9093", "Coordinator HOST:PORT");
ABSL_FLAG(std::string, broker_listen, "127.0.0.1:9092", "Broker HOST:PORT");
ABSL_FLAG(std::string, admin_listen, "127.0.0.1:9644", "Admin HTTP HOST:PORT");
ABSL_FLAG(int32_t, broker_id, 1, "Broker id");
ABSL_FLAG(int32_t, coordinator_id, 1, "Coordinator id");
ABSL_FLAG(std::string, coordinator_quorum, "",
          "Comma-separated ID@HOST:PORT of every coordinator quorum member (the same list for "
          "every process); default <coordinator-id>@<coordinator-listen>");
ABSL_FLAG(std::string, broker_advertised, "",
          "HOST:PORT registered for this broker (what clients and other brokers dial); default "
          "the bound --broker-listen address");
ABSL_FLAG(int32_t, default_replication_factor, 1,
          "Replication factor of topics created without one");
ABSL_FLAG(std::string, nameservers, "",
          "Comma-separated HOST:PORT of the name servers to register with; default this "
          "process's own name server, else 127.0.0.1:9876");
ABSL_FLAG(std::string, config, "", "ServerConfig file in protobuf text format");
ABSL_FLAG(int32_t, io_threads, 2, "Threads running the network event loop");
ABSL_FLAG(int64_t, log_cleaner_interval_ms, 15000,
          "Broker: how often the log cleaner compacts partitions of topics with "
          "cleanup.policy=compact (ms)");
ABSL_FLAG(uint32_t, max_frame_bytes, 64u * 1024 * 1024, "Frames above this size are refused");
ABSL_FLAG(int32_t, group_initial_rebalance_delay_ms, 3000,
          "Consumer groups: how long a group leaving Empty waits for more members before its "
          "first rebalance completes (0: no delay)");
ABSL_FLAG(int32_t, group_min_session_timeout_ms, 6000,
          "Consumer groups: the smallest session timeout a member may ask for");
ABSL_FLAG(int32_t, group_max_session_timeout_ms, 1800000,
          "Consumer groups: the largest session timeout a member may ask for");

namespace brook::server {
namespace {

// Names of the flags given on the command line (absl's own record of that
// is private in this Abseil version). Accepts -name, --name, --name=value.
std::set<std::string>& GivenFlags() {
  static std::set<std::string> names;
  return names;
}

void RecordGivenFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    a.remove_prefix(a[1] == '-' ? 2 : 1);
    GivenFlags().insert(std::string(a.substr(0, a.find('='))));
  }
}

template <typename T>
std::optional<T> Given(const absl::Flag<T>& flag, const char* name) {
  if (!GivenFlags().contains(name)) return std::nullopt;
  return absl::GetFlag(flag);
}

FlagValues CollectFlags() {
  FlagValues v;
  v.roles = Given(FLAGS_roles, "roles");
  v.data_dir = Given(FLAGS_data_dir, "data_dir");
  v.nameserver_listen = Given(FLAGS_nameserver_listen, "nameserver_listen");
  v.coordinator_listen = Given(FLAGS_coordinator_listen, "coordinator_listen");
  v.broker_listen = Given(FLAGS_broker_listen, "broker_listen");
  v.admin_listen = Given(FLAGS_admin_listen, "admin_listen");
  v.coordinator_quorum = Given(FLAGS_coordinator_quorum, "coordinator_quorum");
  v.nameservers = Given(FLAGS_nameservers, "nameservers");
  v.config = Given(FLAGS_config, "config");
  v.broker_id = Given(FLAGS_broker_id, "broker_id");
  v.coordinator_id = Given(FLAGS_coordinator_id, "coordinator_id");
  v.io_threads = Given(FLAGS_io_threads, "io_threads");
  v.max_frame_bytes = Given(FLAGS_max_frame_bytes, "max_frame_bytes");
  v.broker_advertised = Given(FLAGS_broker_advertised, "broker_advertised");
  v.default_replication_factor =
      Given(FLAGS_default_replication_factor, "default_replication_factor");
  return v;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "brook-server: %s\n", std::string(s.message()).c_str());
  return 2;
}

int Run(const Settings& settings) {
  storage::FileSystem* fs = storage::DefaultFileSystem();
  if (auto s = fs->CreateDirs(settings.data_dir); !s.ok()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("cannot create data dir '", settings.data_dir, "': ", s.message())));
  }

  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  rpc::ServerOptions server_options;
  server_options.max_frame_bytes = settings.max_frame_bytes;
  const proto::ServerConfig& cfg = settings.config;

  http::AdminServer admin(io);
  std::vector<std::string> ready_lines;

  std::unique_ptr<nameserver::NameServer> ns;
  std::unique_ptr<rpc::RpcServer> ns_server;
  std::string own_nameserver;
  if (settings.has("nameserver")) {
    nameserver::NameServerOptions o;
    if (cfg.has_nameserver_expiry_ms()) o.broker_expiry_ms = cfg.nameserver_expiry_ms();
    ns = std::make_unique<nameserver::NameServer>(std::move(o));
    ns_server = std::make_unique<rpc::RpcServer>(io, "nameserver", server_options);
    ns->RegisterApis(*ns_server);
    ns->RegisterAdmin(admin);
    if (auto s = ns_server->Listen(settings.nameserver_listen); !s.ok()) return Fail(s);
    own_nameserver = absl::StrCat(ns_server->host(), ":", ns_server->port());
    ready_lines.push_back(absl::StrCat("nameserver listening on ", own_nameserver));
  }

  std::unique_ptr<storage::Flusher> coordinator_flusher;
  std::unique_ptr<coordinator::Coordinator> coord;
  std::unique_ptr<rpc::RpcServer> coord_server;
  std::string own_coordinator;
  if (settings.has("coordinator")) {
    coordinator::CoordinatorOptions o;
    o.data_dir = settings.data_dir + "/coordinator";
    o.id = NodeId(settings.coordinator_id);
    o.default_topic_config = cfg.default_topic_config();
    if (cfg.has_default_partitions()) o.default_partitions = cfg.default_partitions();
    if (cfg.has_broker_lease_ms()) o.broker_lease_ms = cfg.broker_lease_ms();
    if (cfg.has_default_replication_factor()) {
      o.default_replication_factor = cfg.default_replication_factor();
    }
    if (cfg.has_raft_election_timeout_ms()) {
      o.raft_election_timeout_ms = cfg.raft_election_timeout_ms();
    }
    if (cfg.has_raft_heartbeat_ms()) o.raft_heartbeat_ms = cfg.raft_heartbeat_ms();
    if (cfg.has_raft_snapshot_entries()) o.raft_snapshot_entries = cfg.raft_snapshot_entries();
    if (cfg.has_leader_rebalance_interval_ms()) {
      o.leader_rebalance_interval_ms = cfg.leader_rebalance_interval_ms();
    }
    for (const auto& m : settings.quorum) {
      o.quorum.push_back(coordinator::CoordinatorMember{NodeId(m.id), m.host, m.port});
    }
    o.groups.initial_rebalance_delay_ms = absl::GetFlag(FLAGS_group_initial_rebalance_delay_ms);
    o.groups.min_session_timeout_ms = absl::GetFlag(FLAGS_group_min_session_timeout_ms);
    o.groups.max_session_timeout_ms = absl::GetFlag(FLAGS_group_max_session_timeout_ms);
    if (o.groups.initial_rebalance_delay_ms < 0 || o.groups.min_session_timeout_ms <= 0 ||
        o.groups.max_session_timeout_ms < o.groups.min_session_timeout_ms) {
      return Fail(absl::InvalidArgumentError(
          "--group-initial-rebalance-delay-ms must be >= 0 and 0 < "
          "--group-min-session-timeout-ms <= --group-max-session-timeout-ms"));
    }
    coordinator_flusher = std::make_unique<storage::Flusher>();
    auto opened = coordinator::Coordinator::Open(fs, coordinator_flusher.get(), std::move(o), io);
    if (!opened.ok()) return Fail(opened.status());
    coord = *std::move(opened);
    coord_server = std::make_unique<rpc::RpcServer>(io, "coordinator", server_options);
    coord->RegisterApis(*coord_server);
    coord->RegisterAdmin(admin);
    if (auto s = coord_server->Listen(settings.coordinator_listen); !s.ok()) return Fail(s);
    // The quorum entry names this member; only a missing entry or port 0
    // (single member on any port) takes the bound address.
    bool listed = false;
    for (const auto& m : settings.quorum) {
      listed = listed || (m.id == settings.coordinator_id && m.port != 0);
    }
    if (!listed) coord->SetAdvertisedAddress(coord_server->host(), coord_server->port());
    own_coordinator = absl::StrCat(coord_server->host(), ":", coord_server->port());
    ready_lines.push_back(absl::StrCat("coordinator listening on ", own_coordinator));
  }

  std::unique_ptr<broker::Broker> brk;
  std::unique_ptr<rpc::RpcServer> broker_server;
  if (settings.has("broker")) {
    broker::BrokerOptions o;
    o.data_dir = settings.data_dir + "/broker";
    o.id = NodeId(settings.broker_id);
    for (const auto& m : settings.quorum) {
      if (settings.has("coordinator") && m.id == settings.coordinator_id) {
        o.coordinators.push_back(own_coordinator);
      } else {
        o.coordinators.push_back(absl::StrCat(m.host, ":", m.port));
      }
    }
    if (o.coordinators.empty()) o.coordinators.push_back(own_coordinator);
    o.nameservers = settings.nameservers;
    if (o.nameservers.empty()) {
      o.nameservers.push_back(settings.has("nameserver") ? own_nameserver : "127.0.0.1:9876");
    }
    o.default_topic_config = cfg.default_topic_config();
    if (cfg.has_broker_heartbeat_ms()) o.coordinator_heartbeat_ms = cfg.broker_heartbeat_ms();
    if (cfg.has_nameserver_heartbeat_ms()) o.nameserver_heartbeat_ms = cfg.nameserver_heartbeat_ms();
    if (cfg.has_retention_check_ms()) o.retention_check_ms = cfg.retention_check_ms();
    o.log_cleaner_interval_ms = absl::GetFlag(FLAGS_log_cleaner_interval_ms);
    if (cfg.has_replica_lag_time_max_ms()) o.replica_lag_time_max_ms = cfg.replica_lag_time_max_ms();
    if (cfg.has_replica_fetch_wait_ms()) o.replica_fetch_wait_ms = cfg.replica_fetch_wait_ms();
    if (cfg.has_controlled_shutdown_timeout_ms()) {
      o.controlled_shutdown_timeout_ms = cfg.controlled_shutdown_timeout_ms();
    }
    auto opened = broker::Broker::Open(fs, std::move(o), io);
    if (!opened.ok()) return Fail(opened.status());
    brk = *std::move(opened);
    broker_server = std::make_unique<rpc::RpcServer>(io, "broker", server_options);
    brk->RegisterApis(*broker_server);
    brk->RegisterAdmin(admin);
    if (auto s = broker_server->Listen(settings.broker_listen); !s.ok()) return Fail(s);
    if (settings.broker_advertised.empty()) {
      brk->SetAdvertisedAddress(broker_server->host(), broker_server->port());
    } else {
      auto hp = rpc::ParseHostPort(settings.broker_advertised);  // validated by settings
      brk->SetAdvertisedAddress(hp->first, hp->second);
    }
    ready_lines.push_back(absl::StrCat("broker ", settings.broker_id, " listening on ",
                                       broker_server->host(), ":", broker_server->port()));
  }

  std::atomic<bool> stopping{false};
  broker::Broker* brk_ptr = brk.get();
  admin.SetHealthCheck([&stopping, brk_ptr]() -> absl::Status {
    if (stopping.load()) return absl::UnavailableError("shutting down");
    if (brk_ptr != nullptr && !brk_ptr->registered()) {
      return absl::UnavailableError("broker has not yet reached the coordinator");
    }
    return absl::OkStatus();
  });
  if (auto s = admin.Listen(settings.admin_listen); !s.ok()) return Fail(s);
  std::string admin_host = settings.admin_listen.substr(0, settings.admin_listen.rfind(':'));
  ready_lines.push_back(absl::StrCat("admin listening on ", admin_host, ":", admin.port()));

  std::promise<int> signalled;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&signalled](const boost::system::error_code& ec, int sig) {
    if (!ec) signalled.set_value(sig);
  });

  std::vector<std::thread> threads;
  for (int i = 0; i < settings.io_threads; ++i) threads.emplace_back([&io] { io.run(); });
  if (brk != nullptr) {
    brk->Start();
    // With its own coordinator in the process, `ready` also means the broker
    // is registered (topics can be placed on it); a remote coordinator may
    // be down, so then it is not waited for.
    if (coord != nullptr) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!brk->registered() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  }

  for (const auto& line : ready_lines) std::printf("%s\n", line.c_str());
  std::printf("ready\n");
  std::fflush(stdout);
  spdlog::info("brook-server ready (roles: {}, data dir {})", absl::StrJoin(settings.roles, ","),
               settings.data_dir);

  int sig = signalled.get_future().get();
  spdlog::info("signal {} received; stopping", sig);
  stopping.store(true);

  int rc = 0;
  if (broker_server != nullptr) broker_server->Stop();
  if (brk != nullptr) {
    if (auto s = brk->Stop(); !s.ok()) {
      spdlog::error("broker stop: {}", s.ToString());
      rc = 1;
    }
  }
  // The coordinator closes while its server still runs, so a leader can hand
  // leadership over (the vote that completes it arrives through the server).
  if (coord != nullptr) {
    if (auto s = coord->Close(); !s.ok()) {
      spdlog::error("coordinator close: {}", s.ToString());
      rc = 1;
    }
  }
  if (coord_server != nullptr) coord_server->Stop();
  if (ns_server != nullptr) ns_server->Stop();
  admin.Stop();
  work.reset();
  io.stop();
  for (auto& t : threads) t.join();
  brk.reset();
  coord.reset();
  coordinator_flusher.reset();
  spdlog::info("brook-server stopped");
  return rc;
}

}  // namespace
}  // namespace brook::server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "brook-server [--roles=nameserver,coordinator,broker] [--data-dir=DIR] [--config=FILE] ...");
  // Flags are spelled with dashes (--data-dir); Abseil names them with
  // underscores, so the names are rewritten before parsing.
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-') continue;
    size_t end = a.find('=');
    if (end == std::string::npos) end = a.size();
    for (size_t j = 1; j < end; ++j) {
      if (a[j] == '-' && j > (a[1] == '-' ? 1u : 0u)) a[j] = '_';
    }
  }
  std::vector<char*> argv2;
  for (auto& a : args) argv2.push_back(a.data());
  argv2.push_back(nullptr);
  argc = static_cast<int>(args.size());
  argv = argv2.data();
  brook::server::RecordGivenFlags(argc, argv);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "brook-server: unexpected argument '%s'\n", rest[1]);
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  auto logger = spdlog::stderr_color_mt("brook");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%t] %v");

  auto settings = brook::server::ResolveSettings(brook::server::CollectFlags());
  if (!settings.ok()) return brook::server::Fail(settings.status());
  return brook::server::Run(*settings);
}
