// Multi-process cluster harness (see cluster.h).
#include "tests/integration/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "brook/admin.h"
#include "broker/storage/fs.h"
#include "broker/storage/log.h"
#include "common/errors.h"
#include "common/record_batch.h"

namespace brook::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(50);
constexpr auto kCallTimeout = std::chrono::milliseconds(3000);

std::chrono::milliseconds Left(Cluster::Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Cluster::Clock::now());
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kNameServer: return "nameserver";
    case Role::kCoordinator: return "coordinator";
    case Role::kBroker: return "broker";
  }
  return "?";
}

std::string FastFailoverConfig() {
  return "broker_heartbeat_ms: 200\n"
         "broker_lease_ms: 1000\n"
         "nameserver_heartbeat_ms: 200\n"
         "nameserver_expiry_ms: 3000\n"
         "raft_election_timeout_ms: 300\n"
         "raft_heartbeat_ms: 50\n"
         "replica_lag_time_max_ms: 3000\n"
         "replica_fetch_wait_ms: 200\n"
         "controlled_shutdown_timeout_ms: 3000\n";
}

absl::StatusOr<uint16_t> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  socklen_t len = sizeof(sa);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    close(fd);
    return absl::InternalError("cannot bind a loopback port");
  }
  close(fd);
  return ntohs(sa.sin_port);
}

Cluster::Cluster(ClusterOptions options)
    : options_(std::move(options)), io_(std::make_unique<rpc::IoThread>()) {
  std::string base = std::filesystem::temp_directory_path().string() + "/brook-cluster-XXXXXX";
  std::vector<char> tmpl(base.begin(), base.end());
  tmpl.push_back('\0');
  char* dir = mkdtemp(tmpl.data());
  root_ = dir != nullptr ? dir : "/tmp/brook-cluster-fallback";
  if (!options_.config.empty()) {
    config_path_ = root_ + "/server.conf";
    std::ofstream(config_path_) << options_.config;
  }
  for (int i = 1; i <= options_.coordinators; ++i) {
    auto port = PickFreePort();
    coordinator_ports_[i] = port.ok() ? *port : 0;
  }
  for (int i = 0; i < options_.nameservers; ++i) {
    members_.push_back(Member{Role::kNameServer, i, nullptr, {}});
  }
  for (int i = 1; i <= options_.coordinators; ++i) {
    members_.push_back(Member{Role::kCoordinator, i, nullptr, {}});
  }
  for (int i = 1; i <= options_.brokers; ++i) {
    members_.push_back(Member{Role::kBroker, i, nullptr, {}});
  }
  // Processes are created (with their data directories) now; the arguments
  // that depend on other processes' ports are set when they start.
  for (auto& m : members_) m.proc = std::make_unique<ServerProcess>();
}

Cluster::~Cluster() {
  for (auto& [addr, c] : conns_) c->Close();
  conns_.clear();
  // Brokers first, so that they do not spend their last moments retrying.
  for (auto it = members_.rbegin(); it != members_.rend(); ++it) it->proc->Kill();
  io_.reset();
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

Cluster::Member* Cluster::Find(Role role, int id) {
  for (auto& m : members_) {
    if (m.role == role && m.id == id) return &m;
  }
  return nullptr;
}
const Cluster::Member* Cluster::Find(Role role, int id) const {
  for (const auto& m : members_) {
    if (m.role == role && m.id == id) return &m;
  }
  return nullptr;
}

ServerProcess& Cluster::process(Role role, int id) {
  Member* m = Find(role, id);
  if (m == nullptr) {
    std::fprintf(stderr, "cluster: no %s %d\n", RoleName(role), id);
    std::abort();
  }
  return *m->proc;
}

std::vector<int> Cluster::ids(Role role) const {
  std::vector<int> out;
  for (const auto& m : members_) {
    if (m.role == role) out.push_back(m.id);
  }
  return out;
}

std::string Cluster::Quorum() const {
  std::vector<std::string> parts;
  for (const auto& [id, port] : coordinator_ports_) {
    parts.push_back(absl::StrCat(id, "@127.0.0.1:", port));
  }
  return absl::StrJoin(parts, ",");
}

Address Cluster::CoordinatorAddress(int id) const {
  auto it = coordinator_ports_.find(id);
  return Address{"127.0.0.1", it == coordinator_ports_.end() ? uint16_t{0} : it->second};
}

Address Cluster::BrokerAddress(int id) { return process(Role::kBroker, id).broker(); }

std::string Cluster::Bootstrap() const {
  std::vector<std::string> parts;
  for (const auto& m : members_) {
    if (m.role == Role::kNameServer && m.proc->nameserver().port != 0) {
      parts.push_back(m.proc->nameserver().ToString());
    }
  }
  return absl::StrJoin(parts, ",");
}

std::vector<std::string> Cluster::ArgsFor(Role role, int id) const {
  std::vector<std::string> args;
  if (!config_path_.empty()) args.push_back("--config=" + config_path_);
  const Member* m = Find(role, id);
  switch (role) {
    case Role::kNameServer: {
      args.push_back("--roles=nameserver");
      // Port 0 at the first start; the same port afterwards (brokers name it).
      args.push_back(absl::StrCat("--nameserver-listen=127.0.0.1:", m->proc->nameserver().port));
      args.insert(args.end(), options_.nameserver_args.begin(), options_.nameserver_args.end());
      break;
    }
    case Role::kCoordinator: {
      args.push_back("--roles=coordinator");
      args.push_back(absl::StrCat("--coordinator-id=", id));
      args.push_back("--coordinator-listen=" + CoordinatorAddress(id).ToString());
      args.push_back("--coordinator-quorum=" + Quorum());
      args.insert(args.end(), options_.coordinator_args.begin(), options_.coordinator_args.end());
      break;
    }
    case Role::kBroker: {
      args.push_back("--roles=broker");
      args.push_back(absl::StrCat("--broker-id=", id));
      args.push_back("--coordinator-quorum=" + Quorum());
      args.push_back("--nameservers=" + Bootstrap());
      args.push_back(absl::StrCat("--broker-listen=127.0.0.1:", m->proc->broker().port));
      args.insert(args.end(), options_.broker_args.begin(), options_.broker_args.end());
      break;
    }
  }
  args.insert(args.end(), m->own_args.begin(), m->own_args.end());
  return args;
}

absl::Status Cluster::StartOne(Role role, int id) {
  Member* m = Find(role, id);
  if (m == nullptr) return absl::NotFoundError(absl::StrCat("no ", RoleName(role), " ", id));
  if (m->proc->running()) return absl::OkStatus();
  m->proc->set_extra_args(ArgsFor(role, id));
  absl::Status s = m->proc->Start(options_.start_timeout);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat(RoleName(role), " ", id, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status Cluster::Start() {
  for (Role role : {Role::kNameServer, Role::kCoordinator, Role::kBroker}) {
    for (int id : ids(role)) {
      if (auto s = StartOne(role, id); !s.ok()) return s;
    }
  }
  const auto timeout = options_.start_timeout;
  if (auto leader = WaitForCoordinatorLeader(timeout); !leader.ok()) {
    return absl::Status(leader.status().code(),
                        absl::StrCat("no coordinator leader: ", leader.status().message()));
  }
  return WaitForBrokersLive(timeout);
}

void Cluster::SetProcessArgs(Role role, int id, std::vector<std::string> args) {
  if (Member* m = Find(role, id)) m->own_args = std::move(args);
}

void Cluster::Kill(Role role, int id) { process(role, id).Kill(); }

void Cluster::Stop(Role role, int id) {
  ServerProcess& p = process(role, id);
  if (p.running()) ::kill(p.pid(), SIGSTOP);
}

void Cluster::Cont(Role role, int id) {
  ServerProcess& p = process(role, id);
  if (p.running()) ::kill(p.pid(), SIGCONT);
}

int Cluster::Terminate(Role role, int id, std::chrono::milliseconds timeout) {
  ServerProcess& p = process(role, id);
  if (!p.running()) return -1;
  ::kill(p.pid(), SIGCONT);
  return p.Terminate(timeout);
}

absl::Status Cluster::Restart(Role role, int id) {
  process(role, id).Kill();
  return StartOne(role, id);
}

absl::StatusOr<std::shared_ptr<rpc::RpcClient>> Cluster::Connect(Role role, int id) {
  Address a;
  switch (role) {
    case Role::kNameServer: a = process(role, id).nameserver(); break;
    case Role::kCoordinator: a = CoordinatorAddress(id); break;
    case Role::kBroker: a = process(role, id).broker(); break;
  }
  if (a.port == 0) return absl::UnavailableError(absl::StrCat(RoleName(role), " ", id, " has no address"));
  const std::string key = a.ToString();
  auto it = conns_.find(key);
  if (it != conns_.end()) {
    if (it->second->connected()) return it->second;
    conns_.erase(it);
  }
  rpc::ClientOptions o;
  o.connect_timeout = std::chrono::milliseconds(2000);
  auto c = rpc::RpcClient::Connect(io_->io(), a.host, a.port, o);
  if (!c.ok()) return c.status();
  conns_[key] = *c;
  return *c;
}

absl::StatusOr<proto::DescribeClusterResponse> Cluster::DescribeClusterOf(int coordinator_id) {
  auto conn = Connect(Role::kCoordinator, coordinator_id);
  if (!conn.ok()) return conn.status();
  proto::DescribeClusterRequest req;
  proto::DescribeClusterResponse resp;
  auto r = (*conn)->CallSync(proto::API_DESCRIBE_CLUSTER, 0, req, {}, &resp, kCallTimeout);
  if (r.ok()) return resp;
  if (ToErrorCode(r.status()) != proto::UNSUPPORTED_API) {
    if (absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status())) {
      (*conn)->Close();
    }
    return r.status();
  }
  // A coordinator without API_DESCRIBE_CLUSTER (single-member builds): it is
  // the leader if it answers LIST_TOPICS.
  proto::ListTopicsRequest lreq;
  proto::ListTopicsResponse lresp;
  auto l = (*conn)->CallSync(proto::API_LIST_TOPICS, 0, lreq, {}, &lresp, kCallTimeout);
  if (!l.ok()) return l.status();
  proto::DescribeClusterResponse synth;
  synth.set_answered_by(coordinator_id);
  synth.set_leader_id(coordinator_id);
  return synth;
}

absl::StatusOr<proto::DescribeClusterResponse> Cluster::DescribeCluster() {
  std::vector<int> order;
  if (last_leader_ > 0) order.push_back(last_leader_);
  for (int id : ids(Role::kCoordinator)) {
    if (id != last_leader_) order.push_back(id);
  }
  absl::Status last = absl::UnavailableError("no coordinator is running");
  for (int id : order) {
    if (!process(Role::kCoordinator, id).running()) continue;
    auto d = DescribeClusterOf(id);
    if (!d.ok()) {
      last = d.status();
      continue;
    }
    if (d->leader_id() < 0) {
      last = absl::NotFoundError(absl::StrCat("coordinator ", id, " knows no leader"));
      continue;
    }
    if (d->leader_id() == d->answered_by()) {
      last_leader_ = d->leader_id();
      return d;
    }
    if (Find(Role::kCoordinator, d->leader_id()) != nullptr &&
        process(Role::kCoordinator, d->leader_id()).running()) {
      auto l = DescribeClusterOf(d->leader_id());
      if (l.ok() && l->leader_id() == l->answered_by()) {
        last_leader_ = l->leader_id();
        return l;
      }
      if (!l.ok()) last = l.status();
    }
  }
  return last;
}

absl::StatusOr<int32_t> Cluster::WaitForCoordinatorLeader(std::chrono::milliseconds timeout,
                                                          int32_t not_id) {
  const auto deadline = Clock::now() + timeout;
  absl::Status last = absl::DeadlineExceededError("no answer yet");
  while (true) {
    auto d = DescribeCluster();
    if (d.ok()) {
      if (d->leader_id() != not_id) return d->leader_id();
      last = absl::FailedPreconditionError(absl::StrCat("leader is still ", not_id));
    } else {
      last = d.status();
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("no coordinator leader within ",
                                                      timeout.count(), " ms: ", last.ToString()));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status Cluster::WaitForBrokersLive(std::chrono::milliseconds timeout,
                                         std::vector<int> broker_ids) {
  if (broker_ids.empty()) broker_ids = ids(Role::kBroker);
  const auto deadline = Clock::now() + timeout;
  std::string missing;
  while (true) {
    missing.clear();
    auto d = DescribeCluster();
    if (!d.ok()) {
      missing = d.status().ToString();
    } else if (d->brokers_size() > 0 || d->coordinators_size() > 0) {
      // A real DescribeCluster: brokers live and unfenced.
      std::set<int> live;
      for (const auto& b : d->brokers()) {
        if (b.live() && !b.fenced()) live.insert(b.broker().broker_id());
      }
      for (int id : broker_ids) {
        if (!live.count(id)) absl::StrAppend(&missing, " broker ", id, " not live;");
      }
    }
    // Every running name server knows every broker.
    for (int ns : ids(Role::kNameServer)) {
      if (!process(Role::kNameServer, ns).running()) continue;
      auto conn = Connect(Role::kNameServer, ns);
      if (!conn.ok()) {
        absl::StrAppend(&missing, " name server ", ns, ": ", conn.status().ToString(), ";");
        continue;
      }
      proto::MetadataRequest req;
      req.add_topics("__brook_harness_probe");
      proto::MetadataResponse resp;
      auto r = (*conn)->CallSync(proto::API_METADATA, 0, req, {}, &resp, kCallTimeout);
      if (!r.ok()) {
        absl::StrAppend(&missing, " name server ", ns, ": ", r.status().ToString(), ";");
        continue;
      }
      std::set<int> known;
      for (const auto& b : resp.brokers()) {
        known.insert(b.broker_id());
      }
      for (int id : broker_ids) {
        if (!known.count(id)) absl::StrAppend(&missing, " name server ", ns, " lacks broker ", id, ";");
      }
    }
    if (missing.empty()) return absl::OkStatus();
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("brokers not live within ", timeout.count(), " ms:", missing));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status Cluster::CallCoordinator(proto::Api api, const google::protobuf::Message& req,
                                      google::protobuf::Message* resp,
                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  absl::Status last = absl::UnavailableError("no coordinator is running");
  while (true) {
    std::vector<int> order;
    if (last_leader_ > 0) order.push_back(last_leader_);
    for (int id : ids(Role::kCoordinator)) {
      if (id != last_leader_) order.push_back(id);
    }
    bool retriable = true;
    for (int id : order) {
      if (!process(Role::kCoordinator, id).running()) continue;
      auto conn = Connect(Role::kCoordinator, id);
      if (!conn.ok()) {
        last = conn.status();
        continue;
      }
      const auto wait = std::clamp(Left(deadline), std::chrono::milliseconds(1), kCallTimeout);
      resp->Clear();
      auto r = (*conn)->CallSync(api, 0, req, {}, resp, wait);
      if (r.ok()) {
        last_leader_ = id;
        return absl::OkStatus();
      }
      last = absl::Status(r.status().code(),
                          absl::StrCat("coordinator ", id, ": ", r.status().message()));
      const auto code = ToErrorCode(r.status());
      if (absl::IsUnavailable(r.status()) || absl::IsDeadlineExceeded(r.status())) {
        if (code != proto::NOT_COORDINATOR) (*conn)->Close();
        continue;  // another member may be the leader
      }
      if (!IsRetriable(code)) {
        retriable = false;
        break;
      }
    }
    if (!retriable) return last;
    if (Clock::now() + kPollInterval >= deadline) return last;
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::StatusOr<proto::TopicDescription> Cluster::CreateTopic(const std::string& topic,
                                                             int32_t partitions,
                                                             int32_t replication_factor,
                                                             int32_t min_insync_replicas,
                                                             proto::TopicConfig config) {
  proto::CreateTopicRequest req;
  req.set_topic(topic);
  req.set_partitions(partitions);
  req.set_replication_factor(replication_factor);
  if (min_insync_replicas > 0) config.set_min_insync_replicas(min_insync_replicas);
  *req.mutable_config() = config;
  proto::CreateTopicResponse resp;
  if (auto s = CallCoordinator(proto::API_CREATE_TOPIC, req, &resp); !s.ok()) return s;
  return resp.topic();
}

absl::StatusOr<std::vector<PartitionState>> Cluster::DescribeTopic(const std::string& topic) {
  proto::DescribeTopicRequest req;
  req.set_topic(topic);
  proto::DescribeTopicResponse resp;
  if (auto s = CallCoordinator(proto::API_DESCRIBE_TOPIC, req, &resp, std::chrono::seconds(5));
      !s.ok()) {
    return s;
  }
  std::vector<PartitionState> out;
  for (const auto& p : resp.topic().partitions()) {
    PartitionState ps;
    ps.partition = p.partition();
    ps.leader = p.leader();
    ps.leader_epoch = p.leader_epoch();
    ps.replicas.assign(p.replicas().begin(), p.replicas().end());
    ps.isr.assign(p.isr().begin(), p.isr().end());
    out.push_back(std::move(ps));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.partition < b.partition; });
  return out;
}

absl::StatusOr<PartitionState> Cluster::WaitForLeader(const std::string& topic, int32_t partition,
                                                      int32_t not_leader, int32_t min_epoch,
                                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last = "not described yet";
  while (true) {
    auto parts = DescribeTopic(topic);
    if (!parts.ok()) {
      last = parts.status().ToString();
    } else {
      last = absl::StrCat("partition ", partition, " missing");
      for (const auto& p : *parts) {
        if (p.partition != partition) continue;
        last = absl::StrCat("leader ", p.leader, " epoch ", p.leader_epoch);
        if (p.leader >= 0 && p.leader != not_leader && p.leader_epoch > min_epoch &&
            Find(Role::kBroker, p.leader) != nullptr && running(Role::kBroker, p.leader)) {
          return p;
        }
      }
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("no new leader for ", topic, "-", partition,
                                                      " within ", timeout.count(), " ms: ", last));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status Cluster::WaitForFullIsr(const std::string& topic, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last;
  while (true) {
    auto parts = DescribeTopic(topic);
    if (!parts.ok()) {
      last = parts.status().ToString();
    } else {
      last.clear();
      for (const auto& p : *parts) {
        std::set<int32_t> isr(p.isr.begin(), p.isr.end());
        std::set<int32_t> replicas(p.replicas.begin(), p.replicas.end());
        if (isr != replicas || p.leader < 0) {
          absl::StrAppend(&last, " partition ", p.partition, " isr [", absl::StrJoin(p.isr, ","),
                          "] replicas [", absl::StrJoin(p.replicas, ","), "] leader ", p.leader,
                          ";");
        }
      }
      if (last.empty()) return absl::OkStatus();
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("ISR of ", topic, " not full within ", timeout.count(), " ms:", last));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

absl::Status Cluster::WaitForRoutes(const std::string& topic, int32_t partitions,
                                    std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string last;
  while (true) {
    last.clear();
    for (int ns : ids(Role::kNameServer)) {
      if (!process(Role::kNameServer, ns).running()) continue;
      auto conn = Connect(Role::kNameServer, ns);
      if (!conn.ok()) {
        absl::StrAppend(&last, " name server ", ns, ": ", conn.status().ToString(), ";");
        continue;
      }
      proto::MetadataRequest req;
      req.add_topics(topic);
      proto::MetadataResponse resp;
      auto r = (*conn)->CallSync(proto::API_METADATA, 0, req, {}, &resp, kCallTimeout);
      if (!r.ok()) {
        absl::StrAppend(&last, " name server ", ns, ": ", r.status().ToString(), ";");
        continue;
      }
      std::set<int32_t> brokers;
      for (const auto& b : resp.brokers()) brokers.insert(b.broker_id());
      int routed = 0;
      for (const auto& t : resp.topics()) {
        if (t.topic() != topic || t.error_code() != proto::NONE) continue;
        for (const auto& p : t.partitions()) {
          if (p.leader() >= 0 && brokers.count(p.leader())) ++routed;
        }
      }
      if (routed < partitions) {
        absl::StrAppend(&last, " name server ", ns, " routes ", routed, "/", partitions, ";");
      }
    }
    if (last.empty()) return absl::OkStatus();
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("routes of ", topic, " incomplete within ", timeout.count(), " ms:", last));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::string Cluster::LogTails(size_t bytes) {
  std::string out;
  for (const auto& m : members_) {
    absl::StrAppend(&out, "===== ", RoleName(m.role), " ", m.id,
                    m.proc->running() ? "" : " (not running)", " log tail =====\n",
                    m.proc->LogTail(bytes), "\n");
  }
  return out;
}

// ---- TcpProxy ----

TcpProxy::TcpProxy() = default;

TcpProxy::~TcpProxy() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

absl::Status TcpProxy::Listen() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::InternalError("socket() failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  socklen_t len = sizeof(sa);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      listen(listen_fd_, 128) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    return absl::InternalError("proxy cannot listen");
  }
  port_ = ntohs(sa.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void TcpProxy::SetTarget(const Address& target) {
  absl::MutexLock lock(&mu_);
  target_ = target;
}

void TcpProxy::SetBlocked(bool blocked) { blocked_.store(blocked); }

void TcpProxy::AcceptLoop() {
  while (!stop_.load()) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    absl::MutexLock lock(&mu_);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void TcpProxy::Serve(int client_fd) {
  int upstream = -1;
  std::vector<char> buf(64 * 1024);
  // Writes all of `n` bytes to `fd` (blocking with short polls); false when
  // the peer is gone or the proxy stops.
  auto write_all = [this](int fd, const char* data, size_t n) {
    size_t off = 0;
    while (off < n && !stop_.load()) {
      pollfd pfd{fd, POLLOUT, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      ssize_t w = send(fd, data + off, n - off, MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += static_cast<size_t>(w);
    }
    return off == n;
  };
  while (!stop_.load()) {
    if (blocked_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (upstream < 0) {
      std::optional<Address> target;
      {
        absl::MutexLock lock(&mu_);
        target = target_;
      }
      if (!target) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(target->port);
      inet_pton(AF_INET, target->host.c_str(), &sa.sin_addr);
      if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
        break;  // the target is down: the client sees the connection close
      }
    }
    pollfd pfds[2] = {{client_fd, POLLIN, 0}, {upstream, POLLIN, 0}};
    if (poll(pfds, 2, 20) <= 0) continue;
    if (blocked_.load()) continue;  // blocked while waiting: leave the bytes queued
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const int from = i == 0 ? client_fd : upstream;
      const int to = i == 0 ? upstream : client_fd;
      ssize_t n = recv(from, buf.data(), buf.size(), 0);
      if (n <= 0 || !write_all(to, buf.data(), static_cast<size_t>(n))) closed = true;
    }
    if (closed) break;
  }
  if (upstream >= 0) close(upstream);
  close(client_fd);
}

// ---- ProduceLoad ----

ProduceLoad::ProduceLoad(Options options) : options_(std::move(options)) {}

ProduceLoad::~ProduceLoad() { Stop(std::chrono::seconds(5)).IgnoreError(); }

absl::Status ProduceLoad::Start() {
  client::ProducerConfig pc;
  pc.nameservers = options_.bootstrap;
  pc.acks = options_.acks;
  pc.linger = options_.linger;
  pc.request_timeout = options_.request_timeout;
  pc.delivery_timeout = options_.delivery_timeout;
  pc.retry_backoff = options_.retry_backoff;
  pc.retry_backoff_max = options_.retry_backoff_max;
  pc.compression = client::CompressionType::kNone;
  auto p = client::Producer::Create(pc);
  if (!p.ok()) return p.status();
  producer_ = *std::move(p);
  // Learn the partitions before the thread starts sending.
  auto n = producer_->PartitionCount(options_.topic);
  if (!n.ok()) return n.status();
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void ProduceLoad::Run() {
  for (int64_t seq = 0; !stop_.load(); ++seq) {
    {
      absl::MutexLock lock(&mu_);
      auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return outstanding_ < options_.max_outstanding || stop_.load();
      };
      mu_.AwaitWithTimeout(absl::Condition(&room), absl::Milliseconds(100));
      if (!room()) {
        --seq;
        continue;
      }
      if (stop_.load()) break;
      ++outstanding_;
    }
    const int32_t partition = static_cast<int32_t>(seq % options_.partitions);
    client::ProducerRecord r;
    r.topic = options_.topic;
    r.partition = partition;
    r.value = absl::StrCat("p", partition, "-", seq);
    std::string value = *r.value;
    sent_.fetch_add(1);
    producer_->Send(std::move(r), [this, partition, value = std::move(value)](
                                      const absl::StatusOr<client::RecordMetadata>& md) {
      absl::MutexLock lock(&mu_);
      --outstanding_;
      if (md.ok()) {
        ++acked_count_;
        acked_[partition].push_back(AckedRecord{md->offset, value, Clock::now()});
      } else {
        ++failed_;
        if (errors_.size() < 10) errors_.push_back(absl::StrCat(value, ": ", md.status().ToString()));
      }
    });
    if (options_.pace.count() > 0) std::this_thread::sleep_for(options_.pace);
  }
}

absl::Status ProduceLoad::Stop(std::chrono::milliseconds timeout) {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (producer_ == nullptr) return absl::OkStatus();
  absl::Status s = producer_->Flush(timeout);
  absl::Status c = producer_->Close(std::chrono::seconds(5));
  producer_.reset();
  return s.ok() ? c : s;
}

int64_t ProduceLoad::acked() const {
  absl::MutexLock lock(&mu_);
  return acked_count_;
}
int64_t ProduceLoad::failed() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}
std::vector<std::string> ProduceLoad::errors() const {
  absl::MutexLock lock(&mu_);
  return errors_;
}
std::map<int32_t, std::vector<AckedRecord>> ProduceLoad::Acked() const {
  absl::MutexLock lock(&mu_);
  return acked_;
}

bool ProduceLoad::WaitForMoreAcks(int64_t n, std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mu_);
  const int64_t target = acked_count_ + n;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return acked_count_ >= target;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), absl::FromChrono(timeout));
}

std::optional<Cluster::Clock::time_point> ProduceLoad::FirstAckAfter(
    int32_t partition, Cluster::Clock::time_point t, std::chrono::milliseconds timeout) {
  absl::MutexLock lock(&mu_);
  auto first = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> std::optional<Clock::time_point> {
    auto it = acked_.find(partition);
    if (it == acked_.end()) return std::nullopt;
    // Acknowledgements are appended in time order.
    for (auto r = it->second.rbegin(); r != it->second.rend(); ++r) {
      if (r->acked_at <= t) {
        if (r == it->second.rbegin()) return std::nullopt;
        return std::prev(r)->acked_at;
      }
    }
    return it->second.empty() ? std::nullopt : std::optional(it->second.front().acked_at);
  };
  auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return first().has_value(); };
  mu_.AwaitWithTimeout(absl::Condition(&found), absl::FromChrono(timeout));
  return first();
}

// ---- ConsumeLoad ----

ConsumeLoad::ConsumeLoad(std::string bootstrap, std::string topic, int32_t partitions)
    : bootstrap_(std::move(bootstrap)), topic_(std::move(topic)), partitions_(partitions) {}

ConsumeLoad::~ConsumeLoad() { Stop(); }

absl::Status ConsumeLoad::Start() {
  client::ConsumerConfig cc;
  cc.nameservers = bootstrap_;
  cc.auto_offset_reset = client::OffsetReset::kEarliest;
  cc.fetch_max_wait = std::chrono::milliseconds(200);
  cc.request_timeout = std::chrono::seconds(3);
  auto c = client::Consumer::Create(cc);
  if (!c.ok()) return c.status();
  consumer_ = *std::move(c);
  std::vector<client::TopicPartition> tps;
  for (int32_t p = 0; p < partitions_; ++p) tps.push_back({topic_, p});
  if (auto s = consumer_->Assign(tps); !s.ok()) return s;
  if (auto s = consumer_->SeekToBeginning(tps); !s.ok()) return s;
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void ConsumeLoad::Run() {
  while (!stop_.load()) {
    auto recs = consumer_->Poll(std::chrono::milliseconds(100));
    if (!recs.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    absl::MutexLock lock(&mu_);
    for (const auto& r : *recs) {
      ++records_;
      const std::string v = r.value.value_or("");
      auto [it, inserted] = values_[r.partition].emplace(r.offset, v);
      if (!inserted && it->second != v && conflicts_.size() < 20) {
        conflicts_.push_back(absl::StrCat("partition ", r.partition, " offset ", r.offset,
                                          " read as '", it->second, "' and '", v, "'"));
      }
    }
  }
}

void ConsumeLoad::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (consumer_ != nullptr) consumer_->Close();
  consumer_.reset();
}

int64_t ConsumeLoad::records() const {
  absl::MutexLock lock(&mu_);
  return records_;
}
std::vector<std::string> ConsumeLoad::conflicts() const {
  absl::MutexLock lock(&mu_);
  return conflicts_;
}
std::map<int32_t, std::map<int64_t, std::string>> ConsumeLoad::Values() const {
  absl::MutexLock lock(&mu_);
  return values_;
}

// ---- checks ----

absl::StatusOr<std::map<int64_t, std::string>> ReadPartition(const std::string& bootstrap,
                                                             const std::string& topic,
                                                             int32_t partition,
                                                             std::chrono::milliseconds timeout,
                                                             int64_t* high_watermark) {
  const auto deadline = Cluster::Clock::now() + timeout;
  client::AdminConfig ac;
  ac.nameservers = bootstrap;
  ac.request_timeout = std::chrono::seconds(5);
  auto admin = client::Admin::Create(ac);
  if (!admin.ok()) return admin.status();
  int64_t hw = -1;
  absl::Status last;
  while (hw < 0) {
    auto info = (*admin)->DescribeTopic(topic);
    if (info.ok()) {
      for (const auto& p : info->partitions) {
        if (p.partition == partition) hw = p.high_watermark;
      }
      if (hw < 0) last = absl::UnavailableError("high watermark unknown");
    } else {
      last = info.status();
    }
    if (hw >= 0) break;
    if (Cluster::Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("no high watermark for ", topic, "-",
                                                      partition, ": ", last.ToString()));
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  if (high_watermark != nullptr) *high_watermark = hw;
  std::map<int64_t, std::string> out;
  if (hw == 0) return out;
  client::ConsumerConfig cc;
  cc.nameservers = bootstrap;
  cc.fetch_max_wait = std::chrono::milliseconds(100);
  cc.request_timeout = std::chrono::seconds(3);
  auto consumer = client::Consumer::Create(cc);
  if (!consumer.ok()) return consumer.status();
  client::TopicPartition tp{topic, partition};
  if (auto s = (*consumer)->Assign({tp}); !s.ok()) return s;
  if (auto s = (*consumer)->Seek(tp, 0); !s.ok()) return s;
  int64_t next = 0;
  while (next < hw) {
    if (Cluster::Clock::now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("read ", topic, "-", partition, " only to ",
                                                      next, " of ", hw));
    }
    auto recs = (*consumer)->Poll(std::chrono::milliseconds(200));
    if (!recs.ok()) continue;
    for (const auto& r : *recs) {
      const std::string v = r.value.value_or("");
      auto [it, inserted] = out.emplace(r.offset, v);
      if (!inserted && it->second != v) {
        return absl::DataLossError(absl::StrCat("offset ", r.offset, " read as '", it->second,
                                                "' and '", v, "'"));
      }
      next = std::max(next, r.offset + 1);
    }
  }
  (*consumer)->Close();
  return out;
}

std::vector<std::string> CheckAcked(const std::map<int32_t, std::vector<AckedRecord>>& acked,
                                    const std::map<int32_t, std::map<int64_t, std::string>>& read,
                                    size_t max_problems) {
  std::vector<std::string> problems;
  auto add = [&](std::string s) {
    if (problems.size() < max_problems) problems.push_back(std::move(s));
  };
  for (const auto& [p, records] : acked) {
    auto rit = read.find(p);
    int64_t prev = -1;
    for (const auto& a : records) {
      if (a.offset <= prev) {
        add(absl::StrCat("partition ", p, ": '", a.value, "' acknowledged at offset ", a.offset,
                         " after an acknowledgement at ", prev, " (reordered)"));
      }
      prev = std::max(prev, a.offset);
      if (rit == read.end()) {
        add(absl::StrCat("partition ", p, ": nothing read, '", a.value, "' acknowledged at ",
                         a.offset));
        continue;
      }
      auto v = rit->second.find(a.offset);
      if (v == rit->second.end()) {
        add(absl::StrCat("partition ", p, ": acknowledged '", a.value, "' at offset ", a.offset,
                         " is missing (lost)"));
      } else if (v->second != a.value) {
        add(absl::StrCat("partition ", p, ": offset ", a.offset, " acknowledged as '", a.value,
                         "' but holds '", v->second, "'"));
      }
    }
  }
  return problems;
}

absl::Status CheckReplicasIdentical(Cluster& cluster, const std::string& topic, int32_t partition,
                                    const std::vector<int32_t>& brokers, int64_t high_watermark) {
  storage::FileSystem* fs = storage::DefaultFileSystem();
  std::vector<std::vector<uint8_t>> contents;
  std::vector<int64_t> starts;
  for (int32_t b : brokers) {
    ServerProcess& proc = cluster.process(Role::kBroker, b);
    if (proc.running()) {
      return absl::FailedPreconditionError(absl::StrCat("broker ", b, " is still running"));
    }
    const std::string dir = absl::StrCat(proc.data_dir(), "/broker/", topic, "-", partition);
    if (!fs->Exists(dir)) return absl::NotFoundError(absl::StrCat("broker ", b, ": no ", dir));
    auto log = storage::PartitionLog::Open(fs, dir, storage::LogConfig{});
    if (!log.ok()) {
      return absl::Status(log.status().code(),
                          absl::StrCat("broker ", b, ": ", log.status().message()));
    }
    const int64_t end = (*log)->log_end_offset().value();
    if (end < high_watermark) {
      return absl::DataLossError(absl::StrCat("broker ", b, ": log ends at ", end,
                                              " below the high watermark ", high_watermark));
    }
    starts.push_back((*log)->log_start_offset().value());
    contents.emplace_back();
  }
  const int64_t start = starts.empty() ? 0 : *std::max_element(starts.begin(), starts.end());
  for (size_t i = 0; i < brokers.size(); ++i) {
    ServerProcess& proc = cluster.process(Role::kBroker, brokers[i]);
    const std::string dir = absl::StrCat(proc.data_dir(), "/broker/", topic, "-", partition);
    auto log = storage::PartitionLog::Open(fs, dir, storage::LogConfig{});
    if (!log.ok()) return log.status();
    if (start >= high_watermark) continue;
    auto bytes = (*log)->Read(Offset(start), size_t{1} << 30, Offset(high_watermark));
    if (!bytes.ok()) {
      return absl::Status(bytes.status().code(), absl::StrCat("broker ", brokers[i], ": ",
                                                              bytes.status().message()));
    }
    contents[i] = *std::move(bytes);
  }
  for (size_t i = 1; i < contents.size(); ++i) {
    if (contents[i] != contents[0]) {
      size_t at = 0;
      while (at < contents[i].size() && at < contents[0].size() && contents[i][at] == contents[0][at]) {
        ++at;
      }
      return absl::DataLossError(absl::StrCat(
          topic, "-", partition, ": broker ", brokers[i], " (", contents[i].size(),
          " bytes) differs from broker ", brokers[0], " (", contents[0].size(),
          " bytes) below the high watermark ", high_watermark, ", first at byte ", at));
    }
  }
  return absl::OkStatus();
}

std::future<absl::StatusOr<proto::ProduceResponse>> ProduceRecordAsync(
    rpc::RpcClient& conn, const std::string& topic, int32_t partition, const std::string& value,
    int32_t acks, int32_t server_timeout_ms) {
  RecordBatchBuilder::Options o;
  o.compression = Compression::kNone;
  RecordBatchBuilder b(o);
  b.Append(1700000000000, std::nullopt, value);
  std::vector<uint8_t> batch = b.Build();
  proto::ProduceRequest req;
  req.set_acks(acks);
  req.set_timeout_ms(server_timeout_ms);
  proto::ProducePartition* p = req.add_partitions();
  p->set_topic(topic);
  p->set_partition(partition);
  p->set_size(static_cast<uint32_t>(batch.size()));
  auto promise = std::make_shared<std::promise<absl::StatusOr<proto::ProduceResponse>>>();
  auto future = promise->get_future();
  conn.Call(proto::API_PRODUCE, 0, req, std::move(batch),
            std::chrono::milliseconds(server_timeout_ms) + std::chrono::seconds(10),
            [promise](absl::StatusOr<rpc::Response> r) {
              if (!r.ok()) {
                promise->set_value(r.status());
                return;
              }
              proto::ProduceResponse resp;
              if (!resp.ParseFromString(r->header)) {
                promise->set_value(absl::InternalError("unparsable ProduceResponse"));
                return;
              }
              promise->set_value(std::move(resp));
            });
  return future;
}

bool Acknowledged(const absl::StatusOr<proto::ProduceResponse>& r, std::string* why) {
  if (!r.ok()) {
    *why = r.status().ToString();
    return false;
  }
  if (r->error_code() != proto::NONE) {
    *why = absl::StrCat(proto::ErrorCode_Name(r->error_code()), " ", r->error_message());
    return false;
  }
  if (r->partitions_size() != 1) {
    *why = "no partition result";
    return false;
  }
  const proto::ProducePartitionResult& p = r->partitions(0);
  *why = absl::StrCat(proto::ErrorCode_Name(p.error_code()), " ", p.error_message(),
                      " leader_hint ", p.leader_hint());
  return p.error_code() == proto::NONE;
}

}  // namespace brook::testing
