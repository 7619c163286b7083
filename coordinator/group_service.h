// GroupService: the consumer group coordinator (coordinator/groups) wired
// into a coordinator quorum member. Every member keeps a "shadow"
// GroupCoordinator that follows the committed group records of the Raft
// metadata log (and the Raft snapshot); the Raft leader, once it serves,
// also runs the ACTIVE GroupCoordinator, rebuilt from the shadow, which
// answers APIs 50..58 and proposes its records to Raft. See docs/groups.md.
//
// Threading: the active GroupCoordinator is owned by one group thread: every
// request, its Tick timer and every Persist completion run there, and it
// never waits for Raft (records are proposed asynchronously; the commit
// callback posts the completion back to the group thread). The shadow is
// guarded by its own mutex; ApplyCommitted, SnapshotRecords and Restore are
// called on the Raft thread. Every other public method is thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/http/admin_server.h"
#include "common/http/metrics.h"
#include "common/rpc/server.h"
#include "common/types.h"
#include "coordinator/groups/group_coordinator.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "proto/metadata.pb.h"

namespace brook::coordinator {

struct GroupServiceOptions {
  NodeId id{1};
  // Every incarnation of the active coordinator gets this config with
  // member_id_nonce set to "c<id>t<term>".
  groups::GroupConfig config;
  // Longest sleep of the group thread with nothing scheduled (metrics
  // refresh); Tick runs at the coordinator's NextDeadline.
  int64_t idle_wake_ms = 500;
};

class GroupService {
 public:
  // Appends `entries` (encoded MetadataRecords) to the Raft log and calls
  // `done` once they are committed and applied (or failed), on any thread.
  using ProposeFn =
      std::function<void(std::vector<std::string> entries, std::function<void(absl::Status)> done)>;
  // The message of a NOT_COORDINATOR answer (names the leader when known).
  using NotCoordinatorFn = std::function<std::string()>;

  GroupService(GroupServiceOptions options, ProposeFn propose, NotCoordinatorFn not_coordinator);
  ~GroupService();  // Close()s
  GroupService(const GroupService&) = delete;
  GroupService& operator=(const GroupService&) = delete;

  // Starts the group thread. Tasks posted before (leadership changes) wait
  // for it; `propose` is not called before Start.
  void Start();

  // ---- Raft thread --------------------------------------------------------
  // A committed group record (GroupCoordinator::IsGroupRecord), in log order.
  void ApplyCommitted(const proto::MetadataRecord& record);
  // The shadow's durable state, for a Raft snapshot.
  std::vector<proto::MetadataRecord> SnapshotRecords() const;
  // Replaces the shadow with one rebuilt from a snapshot's records; on error
  // the shadow is unchanged.
  absl::Status Restore(const google::protobuf::RepeatedPtrField<proto::MetadataRecord>& records);

  // ---- any thread ---------------------------------------------------------
  // Whether this member serves as leader in `term` (leader that applied its
  // term's first entry). Calls must come in the order of the changes; the
  // active coordinator is created (from the shadow) or unloaded accordingly.
  void SetLeadership(bool serving, int64_t term);

  // One request of APIs 50..58 (the coordinator's RPC handlers forward
  // them): parsed here, served on the group thread. A member that does not
  // run the active coordinator answers NOT_COORDINATOR naming the leader.
  void Handle(const rpc::Request& req);

  // GET /admin/groups: every group with state, protocol, generation,
  // members with their assignments and committed offsets with the
  // partition's log end (high watermark) and lag (JSON). From the active
  // coordinator on the leader, from the shadow elsewhere.
  http::HttpResponse AdminGroups();

  // A partition's high watermark as reported by its current leader.
  struct HighWatermark {
    std::string topic;
    int32_t partition = 0;
    int64_t high_watermark = 0;
  };
  // Remembers the latest high watermarks (in memory only; the caller checks
  // that the reporting broker leads each partition). Lag = max(0, high
  // watermark - committed offset) in AdminGroups and the brook_group_lag*
  // gauges, which the group thread refreshes with the other metrics.
  void SetHighWatermarks(const std::vector<HighWatermark>& hws);
  // Forgets the high watermarks of a deleted topic.
  void ForgetHighWatermarks(const std::string& topic);
  // Forgets every high watermark (e.g. after a snapshot restore).
  void ClearHighWatermarks();

  // Refuses new requests with SHUTTING_DOWN and unloads the active
  // coordinator (waiting joins and syncs get NOT_COORDINATOR). Idempotent.
  void BeginClose();
  // BeginClose, then runs the tasks already queued (e.g. completions of
  // proposals the stopped Raft host failed) and joins the group thread.
  // Call after Raft is stopped. Idempotent.
  void Close();

  // True when this member runs an active group coordinator (tests).
  bool active() const;

 private:
  // One active GroupCoordinator (one leadership term). Kept after it was
  // unloaded until its last Persist completion ran.
  struct Incarnation {
    std::unique_ptr<groups::GroupCoordinator> gc;
    int64_t term = 0;
    int outstanding = 0;  // Persist calls whose `done` has not run
    bool retired = false;
    int64_t rebalances_seen = 0;  // of gc->GetStats(), added to the counter
  };

  void Post(std::function<void()> task);
  void Loop();
  static int64_t NowMs();

  // Group thread only.
  void Activate(int64_t term);
  void Deactivate();
  groups::GroupCoordinator* ActiveOrRespond(const rpc::Request& req);
  void Persist(uint64_t incarnation, std::vector<proto::MetadataRecord> records,
               groups::GroupCoordinator::PersistDone done);
  void FinishPersist(uint64_t incarnation, int offset_commits, absl::Status status,
                     const groups::GroupCoordinator::PersistDone& done);
  void Serve(const rpc::Request& req);
  void UpdateMetrics();
  void UpdateLagMetrics();
  std::chrono::steady_clock::time_point NextWake();
  std::string NotCoordinatorMessage() const { return not_coordinator_(); }

  const GroupServiceOptions options_;
  const ProposeFn propose_;
  const NotCoordinatorFn not_coordinator_;

  // Latest high watermark by (topic, partition).
  mutable absl::Mutex hw_mu_;
  std::map<std::pair<std::string, int32_t>, int64_t> high_watermarks_ ABSL_GUARDED_BY(hw_mu_);

  mutable absl::Mutex shadow_mu_;
  std::unique_ptr<groups::GroupCoordinator> shadow_ ABSL_GUARDED_BY(shadow_mu_);

  // The group thread's queue.
  mutable std::mutex task_mu_;
  std::condition_variable task_cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by task_mu_
  bool stop_ = false;                        // guarded by task_mu_
  bool closing_ = false;                     // guarded by task_mu_: refuse requests
  bool is_active_ = false;                   // guarded by task_mu_: mirrors active_ != nullptr
  bool exited_ = false;                      // guarded by task_mu_: the thread is gone
  std::thread thread_;

  // Group thread only.
  std::map<uint64_t, Incarnation> incarnations_;
  uint64_t next_incarnation_ = 1;
  uint64_t active_incarnation_ = 0;  // 0: none
  groups::GroupCoordinator* active_ = nullptr;
  std::chrono::steady_clock::time_point next_metrics_;

  // Metrics (process-wide registry).
  std::map<std::string, metrics::Gauge*> groups_gauges_;  // by state name
  metrics::Gauge* members_gauge_;
  metrics::Gauge* active_gauge_;
  metrics::Counter* rebalances_;
  metrics::Counter* offset_commits_;
  metrics::Histogram* join_latency_;
  metrics::Histogram* sync_latency_;
  // Group thread only: label sets of the brook_group_lag (group, topic,
  // partition) and brook_group_lag_total (group) gauges last exported.
  std::vector<metrics::Labels> lag_labels_;
  std::vector<metrics::Labels> lag_total_labels_;
};

}  // namespace brook::coordinator
