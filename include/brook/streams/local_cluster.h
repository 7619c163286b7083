// LocalCluster: runs one topology inside this process on one pool of worker
// threads (plus one timer thread for ticks, message timeouts and idle-spout
// wake-ups). Each task (component instance) has a bounded input queue and is
// run by at most one thread at a time. Thread-safe: every method may be
// called from any thread other than the topology's own tasks.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "brook/streams/topology.h"

namespace brook::streams {

struct LocalClusterOptions {
  // Worker threads; 0: std::thread::hardware_concurrency().
  int threads = 0;
};

// Totals of one component over all its tasks since Submit.
struct ComponentStats {
  uint64_t emitted = 0;      // tuples emitted (one per target task copy)
  uint64_t executed = 0;     // bolts: tuples executed (ticks included)
  uint64_t acked = 0;        // bolts: tuples acked; spouts: ack(id) calls
  uint64_t failed = 0;       // bolts: tuples failed; spouts: fail(id) calls
  uint64_t exceptions = 0;   // exceptions caught at the task boundary
  uint64_t dropped = 0;      // emit_direct to a task not subscribed directly
  uint64_t queue_depth = 0;  // tuples waiting in the component's input queues now
};

class LocalCluster {
 public:
  explicit LocalCluster(LocalClusterOptions options = {});
  ~LocalCluster();  // Stop()s a running topology with a 10 s drain
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Validates `topology` and `config` (InvalidArgument otherwise), creates
  // one instance per task, calls open/prepare and starts running. One
  // topology at a time: FailedPrecondition while one is running. Metrics go
  // to brook::metrics::Registry::Global() labelled with `name`.
  absl::Status Submit(const std::string& name, const Config& config, const Topology& topology);

  // Graceful stop: spouts stop getting next_tuple, in-flight tuples drain
  // (until every queue is empty and, with acking, every tracked tree is acked
  // or failed) for at most `drain_timeout`, tick tuples still arriving (so
  // windowed bolts close the windows holding tuples), then threads stop and
  // close / cleanup run on every task. DeadlineExceeded if draining timed out (the
  // rest is dropped; the topology is stopped either way). OK if nothing runs.
  // Blocks until calls already inside user code (execute, next_tuple) return.
  absl::Status Stop(std::chrono::milliseconds drain_timeout = std::chrono::seconds(10));

  bool running() const;

  // Totals for a component of the running (or last stopped) topology; zeros
  // for an unknown name.
  ComponentStats Stats(const std::string& component) const;
  // Tracked spout tuples whose trees are neither complete nor failed.
  size_t PendingTrees() const;

  class Runtime;  // internal

 private:
  LocalClusterOptions options_;
  std::unique_ptr<Runtime> runtime_;
};

}  // namespace brook::streams
