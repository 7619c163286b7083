// Keyed state for bolts: a per-task map from string keys to byte values whose
// every update is appended to a changelog, and which is rebuilt from that
// changelog when the task starts (before its first tuple). With a changelog
// on a Brook topic (brook/streams/topic.h, TopicStateBackend) the state
// survives a crash of the process running the topology.
//
// At-least-once: a bolt acks an input tuple through KeyValueState::Ack, which
// holds the ack back until every update made before it is durable in the
// changelog. The topic spout commits an offset only after its tuple tree is
// complete, so a committed input is always reflected in the restored state;
// inputs replayed after a crash may be applied twice.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "brook/streams/component.h"

namespace brook::streams {

// One task's changelog: an append-only log of updates of (key, value); an
// absent value deletes the key.
class Changelog {
 public:
  virtual ~Changelog() = default;
  using Visitor =
      std::function<void(const std::string& key, const std::optional<std::string>& value)>;
  // Calls `fn` for every update in the log, oldest first, on this thread.
  virtual absl::Status Replay(const Visitor& fn) = 0;
  // Appends an update. `done` runs exactly once, on any thread (possibly
  // inside this call), with OK once the update is durable or the error;
  // callbacks run in append order. Callable from one thread at a time.
  virtual void Append(std::string key, std::optional<std::string> value,
                      std::function<void(const absl::Status&)> done) = 0;
  // Waits until every update appended so far is done.
  virtual absl::Status Flush(std::chrono::milliseconds timeout) = 0;
};

// Which state a changelog belongs to.
struct StateId {
  std::string topology;
  std::string component;
  std::string name;  // several states per component: distinct names; "" default
  int task_index = 0;
  int num_tasks = 1;
};

// The changelog's name: "<topology>-<component>-changelog", or
// "<topology>-<component>-<name>-changelog" for a named state. Each task
// writes the partition numbered by its task index.
std::string ChangelogTopic(const StateId& id);

// Opens changelogs. Set one on Config::state_backend. Thread-safe.
class StateBackend {
 public:
  virtual ~StateBackend() = default;
  virtual absl::StatusOr<std::unique_ptr<Changelog>> Open(const StateId& id) = 0;
};

// Changelogs kept in this process's memory: state survives stopping a
// topology and submitting it again with the same backend, not the end of
// the process. For tests and experiments.
class MemoryStateBackend : public StateBackend {
 public:
  absl::StatusOr<std::unique_ptr<Changelog>> Open(const StateId& id) override;
  // Updates recorded in one changelog partition (ChangelogTopic(id) and
  // task index); 0 if it does not exist.
  size_t Size(const StateId& id) const;
  // While set, appends fail with Unavailable (nothing is recorded).
  void set_fail_appends(bool fail);

  struct Log;  // internal

 private:
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, int>, std::shared_ptr<Log>> logs_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<std::atomic<bool>> fail_ = std::make_shared<std::atomic<bool>>(false);
};

// A bolt task's keyed state. Use it from the bolt's task only (prepare,
// execute, posted work, cleanup), except where noted.
class KeyValueState {
 public:
  // Opens the state of the calling task (context's topology, component and
  // task index) with context.config().state_backend and restores it from
  // the changelog. `collector` is the bolt's; Ack uses it. Call from
  // prepare. FailedPrecondition when the config has no state backend.
  static absl::StatusOr<std::unique_ptr<KeyValueState>> Open(const TopologyContext& context,
                                                             OutputCollector* collector,
                                                             const std::string& name = "");
  // The same with an explicit backend and id.
  static absl::StatusOr<std::unique_ptr<KeyValueState>> Open(StateBackend& backend,
                                                             const StateId& id,
                                                             OutputCollector* collector);
  // Waits for pending updates (up to 30 s); acks still held back are not
  // delivered.
  ~KeyValueState();
  KeyValueState(const KeyValueState&) = delete;
  KeyValueState& operator=(const KeyValueState&) = delete;

  // nullptr when absent. Valid until the key is next updated.
  const std::string* Get(std::string_view key) const;
  // Absent: nullopt. A value that is not a decimal int64 throws
  // std::invalid_argument.
  std::optional<int64_t> GetInt64(std::string_view key) const;
  void Put(const std::string& key, std::string value);
  // Stored as decimal text (readable with `brook consume`).
  void PutInt64(const std::string& key, int64_t value);
  // Adds `delta` to the int64 at `key` (absent: 0) and returns the sum.
  int64_t Increment(const std::string& key, int64_t delta = 1);
  void Remove(const std::string& key);
  size_t size() const { return map_.size(); }
  const absl::flat_hash_map<std::string, std::string>& entries() const { return map_; }

  // Acks `tuple` through the collector once every update made before this
  // call is durable (at once if none is pending). If one of the updates made
  // since the previous Ack failed, fails `tuple` instead (its spout replays
  // it). Acks are delivered in call order, as posted work of the task.
  void Ack(const Tuple& tuple);
  // Waits until every update so far is done; the first append error since
  // the last Flush, if any.
  absl::Status Flush(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Updates read from the changelog when the state was opened.
  uint64_t restored_updates() const { return restored_; }
  // Updates not yet durable. Any thread.
  uint64_t pending_updates() const;

 private:
  KeyValueState(std::unique_ptr<Changelog> log, OutputCollector* collector);
  void Append(const std::string& key, std::optional<std::string> value);
  void OnDone(uint64_t seq, const absl::Status& s);
  void Release();

  std::unique_ptr<Changelog> log_;
  OutputCollector* collector_;
  absl::flat_hash_map<std::string, std::string> map_;
  uint64_t restored_ = 0;
  std::atomic<uint64_t> issued_{0};  // updates appended (written by the task only)

  mutable absl::Mutex mu_;
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;            // updates completed (in order)
  std::deque<uint64_t> failed_ ABSL_GUARDED_BY(mu_);  // seqs (1-based) that failed
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<uint64_t, Tuple>> waiting_ ABSL_GUARDED_BY(mu_);
  bool release_posted_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace brook::streams
