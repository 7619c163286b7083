// Integration-test harness: runs the real brook-server binary on loopback
// ports chosen at run time (all listen ports 0) over a fresh temporary data
// directory, parses the addresses it prints until `ready`, and can kill,
// terminate and restart it on the same data directory. Plus small helpers
// for talking the raw native protocol to it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/rpc/client.h"
#include "proto/brook.pb.h"

namespace brook::testing {

struct Address {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// The brook-server binary this test was built with.
std::string ServerBinary();

// A brook-server child process. Not thread-safe. The destructor kills the
// process (SIGKILL) and removes the data directory.
class ServerProcess {
 public:
  // `extra_args` are appended to the command line (after the defaults, so
  // they may override them). The data directory is created empty.
  explicit ServerProcess(std::vector<std::string> extra_args = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the server and waits (up to `timeout`) for `ready`; fills the
  // addresses from the printed lines. Fails if it exits first.
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // SIGKILL and reap.
  void Kill();
  // SIGTERM and reap; returns the exit code (or 128+signal), -1 on timeout
  // (then the process is killed).
  int Terminate(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Kill (if running) and Start again on the same data directory. Ports may
  // change.
  absl::Status Restart();
  bool running() const { return pid_ > 0; }
  // Replaces the extra arguments for later starts (e.g. to pin a port that
  // was 0 at the first start).
  void set_extra_args(std::vector<std::string> args) { extra_args_ = std::move(args); }
  const std::vector<std::string>& extra_args() const { return extra_args_; }
  pid_t pid() const { return pid_; }

  const std::string& data_dir() const { return data_dir_; }
  const std::string& log_path() const { return log_path_; }
  // The last `max_bytes` of the server's stderr (all runs).
  std::string LogTail(size_t max_bytes = 8000) const;

  // Addresses from the last start (port 0 when the role is not running).
  const Address& nameserver() const { return nameserver_; }
  const Address& coordinator() const { return coordinator_; }
  const Address& broker() const { return broker_; }
  const Address& admin() const { return admin_; }

 private:
  std::vector<std::string> extra_args_;
  std::string root_;      // temp dir holding data/ and server.log
  std::string data_dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  Address nameserver_, coordinator_, broker_, admin_;
};

// Runs brook-server with `args` expecting it to exit on its own (bad
// flags); returns its exit code and its stderr in `err`. -1 if it is still
// running after `timeout` (it is then killed).
int RunServerToExit(const std::vector<std::string>& args, std::string* err,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// ---- raw-protocol helpers ----

absl::StatusOr<std::shared_ptr<rpc::RpcClient>> Connect(rpc::IoThread& io, const Address& a);

// One request on `client`, waited for; the response header parsed as Resp
// even when it carries an error code (an ErrorResponse parses as any
// response).
template <typename Resp>
absl::StatusOr<Resp> CallParsed(rpc::RpcClient& client, proto::Api api,
                                const google::protobuf::Message& req,
                                std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<absl::StatusOr<rpc::Response>>>();
  auto future = done->get_future();
  client.Call(api, 0, req, {}, timeout,
              [done](absl::StatusOr<rpc::Response> r) { done->set_value(std::move(r)); });
  absl::StatusOr<rpc::Response> r = future.get();
  if (!r.ok()) return r.status();
  Resp out;
  if (!out.ParseFromString(r->header)) return absl::DataLossError("unparsable response");
  return out;
}

// CreateTopic through the coordinator; returns the description.
absl::StatusOr<proto::TopicDescription> CreateTopic(rpc::RpcClient& coordinator,
                                                    const std::string& topic, int32_t partitions,
                                                    const proto::TopicConfig& config = {});

// Polls the broker's Metadata until it hosts `partitions` partitions of
// `topic` (it learns assignments through its coordinator heartbeat).
absl::Status WaitForTopic(rpc::RpcClient& broker, const std::string& topic, int32_t partitions,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10));

// One produce of `batch` to topic/partition with the given acks; returns the
// response (acks != 0).
absl::StatusOr<proto::ProduceResponse> Produce(rpc::RpcClient& broker, const std::string& topic,
                                               int32_t partition, std::vector<uint8_t> batch,
                                               int32_t acks = 1);

// A fetch of one partition.
struct FetchResult {
  proto::FetchResponse response;
  std::vector<uint8_t> payload;
};
absl::StatusOr<FetchResult> Fetch(rpc::RpcClient& broker, const std::string& topic,
                                  int32_t partition, int64_t offset, int32_t max_wait_ms = 0,
                                  int32_t min_bytes = 0, int32_t max_bytes = 16 << 20);

// A blocking HTTP/1.0 GET of 127.0.0.1:port (an admin port); the whole
// response (status line, headers, body), or a short error text.
std::string HttpGet(uint16_t port, const std::string& path);

}  // namespace brook::testing
