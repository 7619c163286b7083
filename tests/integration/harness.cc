// Integration-test harness: a brook-server child process and raw-protocol
// helpers (see harness.h).
#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

#ifndef BROOK_SERVER_BIN
#error "BROOK_SERVER_BIN must name the brook-server binary"
#endif

namespace brook::testing {
namespace {

using Clock = std::chrono::steady_clock;

// Forks and execs brook-server with `args`; stdout to a pipe (returned in
// *out_fd), stderr appended to `log_path` (or to a pipe in *err_fd when
// log_path is empty).
pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path, int* out_fd,
            int* err_fd) {
  int out[2];
  int err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  if (log_path.empty() && pipe2(err, O_CLOEXEC) != 0) return -1;
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) return -1;
  }
  std::vector<std::string> argv_s = {ServerBinary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // The server must not outlive the test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(out[1], STDOUT_FILENO);
    dup2(log_fd >= 0 ? log_fd : err[1], STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  *out_fd = out[0];
  if (err[1] >= 0) close(err[1]);
  if (err_fd != nullptr) *err_fd = err[0];
  if (log_fd >= 0) close(log_fd);
  return pid;
}

// Waits for `pid` up to `timeout`; returns the exit code (128+signal when
// killed) or -1 on timeout.
int WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (r < 0 && errno != EINTR) return -1;
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

absl::StatusOr<Address> ParseAddress(absl::string_view text) {
  size_t colon = text.rfind(':');
  Address a;
  int port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(text.substr(colon + 1), &port)) {
    return absl::InternalError(absl::StrCat("bad address in server output: ", std::string(text)));
  }
  a.host = std::string(text.substr(0, colon));
  a.port = static_cast<uint16_t>(port);
  return a;
}

}  // namespace

std::string ServerBinary() { return BROOK_SERVER_BIN; }

ServerProcess::ServerProcess(std::vector<std::string> extra_args)
    : extra_args_(std::move(extra_args)) {
  std::string base = std::filesystem::temp_directory_path().string() + "/brook-it-XXXXXX";
  std::vector<char> tmpl(base.begin(), base.end());
  tmpl.push_back('\0');
  char* dir = mkdtemp(tmpl.data());
  root_ = dir != nullptr ? dir : "/tmp/brook-it-fallback";
  data_dir_ = root_ + "/data";
  log_path_ = root_ + "/server.log";
  std::filesystem::create_directories(data_dir_);
}

ServerProcess::~ServerProcess() {
  Kill();
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

absl::Status ServerProcess::Start(std::chrono::milliseconds timeout) {
  if (running()) return absl::FailedPreconditionError("already running");
  std::vector<std::string> args = {
      "--data-dir=" + data_dir_,          "--nameserver-listen=127.0.0.1:0",
      "--coordinator-listen=127.0.0.1:0", "--broker-listen=127.0.0.1:0",
      "--admin-listen=127.0.0.1:0",
  };
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pid_ = Spawn(args, log_path_, &stdout_fd_, nullptr);
  if (pid_ < 0) return absl::InternalError(absl::StrCat("cannot start ", ServerBinary()));
  nameserver_ = coordinator_ = broker_ = admin_ = Address{};

  auto deadline = Clock::now() + timeout;
  std::string buf;
  while (true) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line == "ready") return absl::OkStatus();
      const std::string marker = " listening on ";
      size_t at = line.find(marker);
      if (at == std::string::npos) continue;
      auto addr = ParseAddress(absl::string_view(line).substr(at + marker.size()));
      if (!addr.ok()) return addr.status();
      if (absl::StartsWith(line, "nameserver ")) nameserver_ = *addr;
      else if (absl::StartsWith(line, "coordinator ")) coordinator_ = *addr;
      else if (absl::StartsWith(line, "broker ")) broker_ = *addr;
      else if (absl::StartsWith(line, "admin ")) admin_ = *addr;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      Kill();
      return absl::DeadlineExceededError("server did not print ready in time; log:\n" + LogTail());
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    char chunk[4096];
    ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) break;  // EOF: the server exited
    buf.append(chunk, static_cast<size_t>(n));
  }
  int code = WaitExit(pid_, std::chrono::seconds(5));
  pid_ = -1;
  close(stdout_fd_);
  stdout_fd_ = -1;
  return absl::InternalError(
      absl::StrCat("server exited (code ", code, ") before ready; log:\n", LogTail()));
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  WaitExit(pid_, std::chrono::seconds(10));
  pid_ = -1;
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
}

int ServerProcess::Terminate(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int code = WaitExit(pid_, timeout);
  if (code == -1) {
    Kill();
    return -1;
  }
  pid_ = -1;
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
  return code;
}

absl::Status ServerProcess::Restart() {
  Kill();
  return Start();
}

std::string ServerProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? s.substr(s.size() - max_bytes) : s;
}

int RunServerToExit(const std::vector<std::string>& args, std::string* err,
                    std::chrono::milliseconds timeout) {
  int out_fd = -1;
  int err_fd = -1;
  pid_t pid = Spawn(args, "", &out_fd, &err_fd);
  if (pid < 0) return -1;
  // Drain stderr until EOF (the process exits) or the deadline.
  auto deadline = Clock::now() + timeout;
  std::string collected;
  while (Clock::now() < deadline) {
    pollfd pfd{err_fd, POLLIN, 0};
    int r = poll(&pfd, 1, 100);
    if (r <= 0) continue;
    char chunk[4096];
    ssize_t n = read(err_fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    collected.append(chunk, static_cast<size_t>(n));
  }
  int code = WaitExit(pid, std::chrono::milliseconds(100));
  if (code == -1) {
    kill(pid, SIGKILL);
    WaitExit(pid, std::chrono::seconds(5));
  }
  close(out_fd);
  close(err_fd);
  if (err != nullptr) *err = collected;
  return code;
}

// ---- raw-protocol helpers ----

absl::StatusOr<std::shared_ptr<rpc::RpcClient>> Connect(rpc::IoThread& io, const Address& a) {
  return rpc::RpcClient::Connect(io.io(), a.host, a.port);
}

absl::StatusOr<proto::TopicDescription> CreateTopic(rpc::RpcClient& coordinator,
                                                    const std::string& topic, int32_t partitions,
                                                    const proto::TopicConfig& config) {
  proto::CreateTopicRequest req;
  req.set_topic(topic);
  req.set_partitions(partitions);
  req.set_replication_factor(1);
  *req.mutable_config() = config;
  // Retriable errors (e.g. no broker registered yet) are retried briefly.
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (true) {
    proto::CreateTopicResponse resp;
    auto r = coordinator.CallSync(proto::API_CREATE_TOPIC, 0, req, {}, &resp,
                                  std::chrono::seconds(10));
    if (r.ok()) return resp.topic();
    if (!IsRetriable(ToErrorCode(r.status())) || Clock::now() >= deadline) return r.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

absl::Status WaitForTopic(rpc::RpcClient& broker, const std::string& topic, int32_t partitions,
                          std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  absl::Status last = absl::DeadlineExceededError("topic not hosted yet");
  while (Clock::now() < deadline) {
    proto::MetadataRequest req;
    req.add_topics(topic);
    proto::MetadataResponse resp;
    auto r = broker.CallSync(proto::API_METADATA, 0, req, {}, &resp, std::chrono::seconds(5));
    if (!r.ok()) {
      last = r.status();
    } else {
      for (const auto& t : resp.topics()) {
        if (t.topic() == topic && t.error_code() == proto::NONE &&
            t.partitions_size() == partitions) {
          return absl::OkStatus();
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("broker does not host ", topic, ": ", last.ToString()));
}

absl::StatusOr<proto::ProduceResponse> Produce(rpc::RpcClient& broker, const std::string& topic,
                                               int32_t partition, std::vector<uint8_t> batch,
                                               int32_t acks) {
  proto::ProduceRequest req;
  req.set_acks(acks);
  req.set_timeout_ms(10000);
  auto* p = req.add_partitions();
  p->set_topic(topic);
  p->set_partition(partition);
  p->set_size(static_cast<uint32_t>(batch.size()));
  proto::ProduceResponse resp;
  auto r = broker.CallSync(proto::API_PRODUCE, 0, req, std::move(batch), &resp,
                           std::chrono::seconds(10));
  if (!r.ok()) return r.status();
  return resp;
}

absl::StatusOr<FetchResult> Fetch(rpc::RpcClient& broker, const std::string& topic,
                                  int32_t partition, int64_t offset, int32_t max_wait_ms,
                                  int32_t min_bytes, int32_t max_bytes) {
  proto::FetchRequest req;
  req.set_max_wait_ms(max_wait_ms);
  req.set_min_bytes(min_bytes);
  req.set_max_bytes(max_bytes);
  req.set_replica_id(-1);
  auto* p = req.add_partitions();
  p->set_topic(topic);
  p->set_partition(partition);
  p->set_fetch_offset(offset);
  p->set_max_bytes(max_bytes);
  p->set_current_leader_epoch(-1);  // not checked
  FetchResult out;
  auto r = broker.CallSync(proto::API_FETCH, 0, req, {}, &out.response,
                           std::chrono::milliseconds(max_wait_ms + 10000));
  if (!r.ok()) return r.status();
  out.payload = *std::move(r);
  return out;
}

std::string HttpGet(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "socket failed";
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return "connect failed";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "write failed";
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

}  // namespace brook::testing
