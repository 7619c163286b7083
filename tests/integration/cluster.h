// Multi-process cluster harness for integration tests: name servers, a
// coordinator quorum and brokers, each its own brook-server process (its own
// data directory) on loopback. Name servers and brokers listen on port 0;
// coordinators get free ports picked up front (the quorum string names
// them) and keep them across restarts. Helpers find the coordinator leader,
// wait for brokers, create and describe topics, and kill, stop (SIGSTOP),
// continue and restart single processes.
//
// Not thread-safe: one test thread drives a Cluster (the RpcClients it hands
// out are themselves thread-safe).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "common/rpc/client.h"
#include "proto/brook.pb.h"
#include "tests/integration/harness.h"

namespace brook::testing {

enum class Role { kNameServer, kCoordinator, kBroker };
const char* RoleName(Role role);

struct ClusterOptions {
  int nameservers = 1;
  int coordinators = 1;
  int brokers = 3;
  // ServerConfig text (proto/config.proto, text format) written to a file
  // and passed as --config to every process. Empty: no --config.
  std::string config;
  // Extra command-line arguments per role (after the harness's own, so they
  // may override them).
  std::vector<std::string> nameserver_args;
  std::vector<std::string> coordinator_args;
  std::vector<std::string> broker_args;
  std::chrono::milliseconds start_timeout{20000};
};

// A config with short timings for fault tests: broker lease 1000 ms,
// heartbeats 200 ms, name server heartbeat 200 ms / expiry 3000 ms, Raft
// election 300 ms / heartbeat 50 ms, replica lag 3000 ms / fetch wait 200 ms.
std::string FastFailoverConfig();

// One partition as the active coordinator describes it.
struct PartitionState {
  int32_t partition = 0;
  int32_t leader = -1;
  int32_t leader_epoch = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
};

class Cluster {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Cluster(ClusterOptions options);
  ~Cluster();  // kills every process (SIGKILL), removes data directories
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts name servers, then coordinators, then brokers (each waits for its
  // `ready`), then waits for a coordinator leader and for every broker to be
  // registered and live.
  absl::Status Start();

  // Ids: name servers 0..n-1 (index), coordinators and brokers 1..n.
  ServerProcess& process(Role role, int id);
  std::vector<int> ids(Role role) const;
  bool running(Role role, int id) { return process(role, id).running(); }

  // Process control. Kill: SIGKILL. Stop/Cont: SIGSTOP/SIGCONT (the process
  // stays a child). Terminate: SIGCONT then SIGTERM, waits (returns the exit
  // code, -1 on timeout, then killed). Restart: kill if running, start again
  // on the same data directory and (coordinators) the same port; waits for
  // `ready` only.
  void Kill(Role role, int id);
  void Stop(Role role, int id);
  void Cont(Role role, int id);
  int Terminate(Role role, int id, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  absl::Status Restart(Role role, int id);
  // Start a process that is not running (after Kill/Terminate).
  absl::Status StartOne(Role role, int id);
  // Arguments appended for this one process at its next starts (after the
  // harness's and the role's, so they override them).
  void SetProcessArgs(Role role, int id, std::vector<std::string> args);

  // "HOST:PORT,..." of the running name servers (clients' --nameserver).
  std::string Bootstrap() const;
  // "1@HOST:PORT,2@HOST:PORT,..."
  std::string Quorum() const;
  Address CoordinatorAddress(int id) const;
  // The broker's address from its last start (ports change on restart).
  Address BrokerAddress(int id);

  // An RpcClient to the role's client port (cached per address; reconnects
  // when the cached one is closed).
  absl::StatusOr<std::shared_ptr<rpc::RpcClient>> Connect(Role role, int id);
  rpc::IoThread& io() { return *io_; }

  // API_DESCRIBE_CLUSTER of one coordinator.
  absl::StatusOr<proto::DescribeClusterResponse> DescribeClusterOf(int coordinator_id);
  // The answer of the coordinator leader (asks any running member, then the
  // leader it names). NotFound when no member names a leader.
  absl::StatusOr<proto::DescribeClusterResponse> DescribeCluster();
  // Waits until a coordinator leader answers (and, when given, it is not
  // `not_id`); returns its id.
  absl::StatusOr<int32_t> WaitForCoordinatorLeader(
      std::chrono::milliseconds timeout = std::chrono::seconds(15), int32_t not_id = -1);
  // Waits until the coordinator leader reports every broker in `broker_ids`
  // (all brokers when empty) live and unfenced, and the name servers route
  // to them.
  absl::Status WaitForBrokersLive(std::chrono::milliseconds timeout = std::chrono::seconds(15),
                                  std::vector<int> broker_ids = {});

  // Sends `req` to the active coordinator: tries the last leader first, then
  // every running member, following NOT_COORDINATOR and connection failures,
  // retrying retriable errors until `timeout`.
  absl::Status CallCoordinator(proto::Api api, const google::protobuf::Message& req,
                               google::protobuf::Message* resp,
                               std::chrono::milliseconds timeout = std::chrono::seconds(15));

  absl::StatusOr<proto::TopicDescription> CreateTopic(const std::string& topic, int32_t partitions,
                                                      int32_t replication_factor,
                                                      int32_t min_insync_replicas = 0,
                                                      proto::TopicConfig config = {});
  absl::StatusOr<std::vector<PartitionState>> DescribeTopic(const std::string& topic);
  // Waits until the partition has a leader (other than `not_leader`, with an
  // epoch above `min_epoch`) whose broker is running; returns its state.
  absl::StatusOr<PartitionState> WaitForLeader(
      const std::string& topic, int32_t partition, int32_t not_leader = -1, int32_t min_epoch = -1,
      std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Waits until every partition's ISR holds all its replicas.
  absl::Status WaitForFullIsr(const std::string& topic,
                              std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Waits until the name servers (every running one) route every partition of
  // `topic` to a leader.
  absl::Status WaitForRoutes(const std::string& topic, int32_t partitions,
                             std::chrono::milliseconds timeout = std::chrono::seconds(15));

  // The last `bytes` of every process's log, headed by role and id.
  std::string LogTails(size_t bytes = 3000);
  // The path of the temporary directory holding the cluster's config file.
  const std::string& root() const { return root_; }

 private:
  struct Member {
    Role role;
    int id;
    std::unique_ptr<ServerProcess> proc;
    std::vector<std::string> own_args;
  };
  Member* Find(Role role, int id);
  const Member* Find(Role role, int id) const;
  std::vector<std::string> ArgsFor(Role role, int id) const;

  ClusterOptions options_;
  std::string root_;
  std::string config_path_;
  std::map<int, uint16_t> coordinator_ports_;  // id -> port
  std::vector<Member> members_;
  std::unique_ptr<rpc::IoThread> io_;
  std::map<std::string, std::shared_ptr<rpc::RpcClient>> conns_;  // by address
  int32_t last_leader_ = -1;
};

// A free loopback TCP port (bound and released; a tiny race remains).
absl::StatusOr<uint16_t> PickFreePort();

// A test-only TCP proxy on a loopback port forwarding to a target. While
// blocked (or before a target is set) it forwards nothing in either
// direction and holds new connections without connecting onward: to both
// ends it looks like a network partition (bytes queue, nothing arrives, no
// connection is reset). Unblocking resumes every held stream intact.
// Thread-safe.
class TcpProxy {
 public:
  TcpProxy();
  ~TcpProxy();  // closes everything, joins its threads
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;
  absl::Status Listen();
  Address address() const { return Address{"127.0.0.1", port_}; }
  void SetTarget(const Address& target);
  void SetBlocked(bool blocked);

 private:
  void AcceptLoop();
  void Serve(int client_fd);
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> blocked_{false};
  mutable absl::Mutex mu_;
  std::optional<Address> target_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

// ---- workloads and checks for fault tests ----

struct AckedRecord {
  int64_t offset = -1;
  std::string value;
  std::chrono::steady_clock::time_point acked_at;
};

// A background Producer (its own thread) sending values "p<P>-<seq>" round
// robin to partitions 0..partitions-1 with the given acks, at most
// `max_outstanding` unacknowledged records at a time, and recording every
// acknowledgement (per partition, in acknowledgement order) and failure.
// Thread-safe accessors.
class ProduceLoad {
 public:
  struct Options {
    std::string bootstrap;
    std::string topic;
    int32_t partitions = 1;
    int acks = -1;
    int max_outstanding = 100;
    std::chrono::milliseconds request_timeout{3000};
    std::chrono::milliseconds delivery_timeout{60000};
    std::chrono::milliseconds retry_backoff{50};
    std::chrono::milliseconds retry_backoff_max{250};
    std::chrono::milliseconds linger{2};
    // Pause between sends (0: as fast as acknowledgements allow).
    std::chrono::microseconds pace{0};
  };
  explicit ProduceLoad(Options options);
  ~ProduceLoad();  // Stop()s
  absl::Status Start();
  // Stops sending, waits (up to `timeout`) for outstanding records to be
  // acknowledged or failed, closes the producer.
  absl::Status Stop(std::chrono::milliseconds timeout = std::chrono::seconds(60));

  int64_t sent() const { return sent_.load(); }
  int64_t acked() const;
  int64_t failed() const;
  std::vector<std::string> errors() const;  // the first few failures
  std::map<int32_t, std::vector<AckedRecord>> Acked() const;
  // Waits until `n` more records were acknowledged than at the call.
  bool WaitForMoreAcks(int64_t n, std::chrono::milliseconds timeout);
  // The first acknowledgement of `partition` received after `t` (blocks up
  // to `timeout`); nullopt when none arrived.
  std::optional<std::chrono::steady_clock::time_point> FirstAckAfter(
      int32_t partition, std::chrono::steady_clock::time_point t, std::chrono::milliseconds timeout);

 private:
  void Run();
  const Options options_;
  std::unique_ptr<client::Producer> producer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> sent_{0};
  mutable absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t acked_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, std::vector<AckedRecord>> acked_ ABSL_GUARDED_BY(mu_);
};

// A background Consumer reading partitions 0..partitions-1 from the
// beginning, recording each offset's value and any offset that was read
// with two different values.
class ConsumeLoad {
 public:
  ConsumeLoad(std::string bootstrap, std::string topic, int32_t partitions);
  ~ConsumeLoad();  // Stop()s
  absl::Status Start();
  void Stop();
  int64_t records() const;  // reads, duplicates included
  std::vector<std::string> conflicts() const;
  std::map<int32_t, std::map<int64_t, std::string>> Values() const;

 private:
  void Run();
  const std::string bootstrap_, topic_;
  const int32_t partitions_;
  std::unique_ptr<client::Consumer> consumer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  int64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> conflicts_ ABSL_GUARDED_BY(mu_);
  std::map<int32_t, std::map<int64_t, std::string>> values_ ABSL_GUARDED_BY(mu_);
};

// Reads partition `partition` of `topic` from offset 0 up to its high
// watermark (asked of the leader through Admin), returning offset -> value.
// Fails when an offset is read with two values or the end is not reached
// within `timeout`.
absl::StatusOr<std::map<int64_t, std::string>> ReadPartition(
    const std::string& bootstrap, const std::string& topic, int32_t partition,
    std::chrono::milliseconds timeout = std::chrono::seconds(30), int64_t* high_watermark = nullptr);

// Checks acknowledged records against what was read: each acknowledged
// record is at its acknowledged offset with its value, and acknowledgements
// of a partition came with increasing offsets. Returns the problems found
// (empty: none), at most `max_problems`.
std::vector<std::string> CheckAcked(const std::map<int32_t, std::vector<AckedRecord>>& acked,
                                    const std::map<int32_t, std::map<int64_t, std::string>>& read,
                                    size_t max_problems = 20);

// Opens the partition's log in each listed broker's data directory (the
// brokers must be stopped) and checks that every one holds the same bytes
// from the lowest common log start up to `high_watermark` and reaches it.
absl::Status CheckReplicasIdentical(Cluster& cluster, const std::string& topic, int32_t partition,
                                    const std::vector<int32_t>& brokers, int64_t high_watermark);

// Sends one uncompressed record `value` to topic/partition over the raw
// protocol now (acks as given, ProduceRequest.timeout_ms = server_timeout_ms);
// the answer arrives later. The call itself gives up 10 s after that timeout.
std::future<absl::StatusOr<proto::ProduceResponse>> ProduceRecordAsync(
    rpc::RpcClient& conn, const std::string& topic, int32_t partition, const std::string& value,
    int32_t acks, int32_t server_timeout_ms = 5000);

// True when `r` acknowledged its one partition; `why` gets what came back
// (status, or error codes, messages and the leader hint).
bool Acknowledged(const absl::StatusOr<proto::ProduceResponse>& r, std::string* why);

}  // namespace brook::testing
