// GroupCoordinator: Kafka's classic consumer group protocol (join / sync /
// heartbeat / leave, generations, protocol vote), static membership (KIP-345),
// required member ids (KIP-394) and committed offsets, as a pure state
// machine. No threads, clocks or I/O: time arrives as `now_ms` arguments and
// through Tick(), answers that wait (join, sync, commit, delete) are given to
// callbacks, and every change that must survive a coordinator failover is
// handed to the caller's PersistFn as MetadataRecords (GroupRecord,
// OffsetCommitRecord, RemoveGroupRecord) from which Replay() rebuilds the
// state on another coordinator. The protocol and state machine are described
// in docs/groups.md.
//
// Not thread-safe: one owner (a strand or thread) calls every method and runs
// every PersistFn `done`. Callbacks run on that caller's stack, after the
// state change they report is complete, so they may call back into the
// coordinator.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "proto/brook.pb.h"
#include "proto/metadata.pb.h"

namespace brook::groups {

struct GroupConfig {
  // Session timeouts a member may ask for (Kafka's group.min/max.session.timeout.ms).
  int32_t min_session_timeout_ms = 6000;
  int32_t max_session_timeout_ms = 1800000;
  // A group leaving Empty waits this long for more members before its first
  // rebalance completes, extended by each new member up to the rebalance
  // timeout (group.initial.rebalance.delay.ms). 0: no delay.
  int32_t initial_rebalance_delay_ms = 3000;
  // Members plus members asked to rejoin with their id (KIP-394).
  int32_t max_group_size = 1000;
  int32_t max_offset_metadata_bytes = 4096;
  // Part of every generated member id ("<client id>-<nonce>-<sequence>"). Set
  // it to something unique per coordinator incarnation (e.g. node and Raft
  // term) so that ids handed out before a failover are never reused after it.
  std::string member_id_nonce;
};

class GroupCoordinator {
 public:
  using PersistDone = std::function<void(absl::Status)>;
  // Makes `records` durable (e.g. proposes them to the Raft metadata log) and
  // then calls `done` exactly once, OK or not, on the owner's thread, possibly
  // before Persist returns. Records must become durable in call order, and
  // `done`s run in call order. `done` must not be called after the
  // GroupCoordinator is destroyed.
  using PersistFn =
      std::function<void(std::vector<proto::MetadataRecord> records, PersistDone done)>;
  using JoinCallback = std::function<void(const proto::JoinGroupResponse&)>;
  using SyncCallback = std::function<void(const proto::SyncGroupResponse&)>;
  using CommitCallback = std::function<void(const proto::OffsetCommitResponse&)>;
  using DeleteCallback = std::function<void(const proto::DeleteGroupsResponse&)>;

  GroupCoordinator(GroupConfig config, PersistFn persist);
  ~GroupCoordinator();
  GroupCoordinator(const GroupCoordinator&) = delete;
  GroupCoordinator& operator=(const GroupCoordinator&) = delete;

  // Every waiting callback is called exactly once (unless Unload() or the
  // destructor comes first: see Unload). `client_host` is the connection's
  // peer, shown by DescribeGroups.
  void JoinGroup(const proto::JoinGroupRequest& request, const std::string& client_host,
                 int64_t now_ms, JoinCallback done);
  void SyncGroup(const proto::SyncGroupRequest& request, int64_t now_ms, SyncCallback done);
  proto::HeartbeatResponse Heartbeat(const proto::HeartbeatRequest& request, int64_t now_ms);
  proto::LeaveGroupResponse LeaveGroup(const proto::LeaveGroupRequest& request, int64_t now_ms);
  // Answered once the OffsetCommitRecords are durable; OffsetFetch sees the
  // offsets from then on. A member of a group of protocol type "consumer"
  // whose assignment parses as proto::ConsumerAssignment gets
  // PARTITION_NOT_OWNED for partitions outside it.
  void OffsetCommit(const proto::OffsetCommitRequest& request, int64_t now_ms, CommitCallback done);
  proto::OffsetFetchResponse OffsetFetch(const proto::OffsetFetchRequest& request) const;
  proto::ListGroupsResponse ListGroups(const proto::ListGroupsRequest& request) const;
  proto::DescribeGroupsResponse DescribeGroups(const proto::DescribeGroupsRequest& request) const;
  // Deletes Empty groups with their offsets; answered once durable.
  void DeleteGroups(const proto::DeleteGroupsRequest& request, int64_t now_ms, DeleteCallback done);

  // Expires sessions, KIP-394 pending member ids, rebalance timeouts and
  // members that never synced, and forgets Empty groups with no offsets.
  void Tick(int64_t now_ms);
  // The earliest time at which Tick has something to do; nullopt: nothing
  // is scheduled.
  std::optional<int64_t> NextDeadline() const;

  // Rebuilds state from records emitted by (another) GroupCoordinator, in log
  // order; records of other kinds are ignored. For a coordinator that is
  // loading the log before it serves requests: a GroupRecord replaces the
  // group's membership (Stable, or Empty without members), whose sessions
  // start at `now_ms`. InvalidArgument for a malformed record (state unchanged).
  absl::Status Replay(const proto::MetadataRecord& record, int64_t now_ms);
  static bool IsGroupRecord(const proto::MetadataRecord& record);
  // Records whose Replay gives the current durable state (a snapshot): one
  // GroupRecord per group with members or a generation, then its offsets.
  std::vector<proto::MetadataRecord> SnapshotRecords() const;

  // Leadership lost: completes every waiting join and sync with
  // NOT_COORDINATOR and forgets all groups. `done`s of earlier Persist calls
  // still complete their commit/delete callbacks (with the persist status)
  // but change no state.
  void Unload();

  // Test and metrics helpers: the group's state name ("Dead" when unknown)
  // and generation (-1 when unknown).
  std::string GroupState(const std::string& group_id) const;
  int32_t GroupGeneration(const std::string& group_id) const;

  // For metrics: groups per state name (every state listed, 0 included),
  // members of all groups, and generations that became Stable (a leader's
  // assignment made durable) since construction. O(groups).
  struct Stats {
    std::map<std::string, int64_t> groups_by_state;
    int64_t members = 0;
    int64_t rebalances_completed = 0;
  };
  Stats GetStats() const;

 private:
  struct Member;
  struct Group;
  struct OffsetEntry {
    int64_t offset = -1;
    int32_t leader_epoch = -1;
    std::string metadata;
    int64_t commit_timestamp_ms = 0;
  };

  Group* Find(const std::string& group_id) const;
  Group& GetOrCreate(const std::string& group_id);
  Group* Current(const std::string& group_id, uint64_t serial) const;
  bool Fenced(const Group& g, const std::string& member_id,
              const std::optional<std::string>& instance_id) const;
  std::string NewMemberId(const Group& group, const std::string& client_id);

  void JoinUnknownMember(Group& g, const proto::JoinGroupRequest& req, const std::string& host,
                         int64_t now_ms, JoinCallback done);
  void JoinKnownMember(Group& g, const proto::JoinGroupRequest& req, const std::string& host,
                       int64_t now_ms, JoinCallback done);
  void ReplaceStaticMember(Group& g, const proto::JoinGroupRequest& req, int64_t now_ms,
                           JoinCallback done);
  void AddMemberAndRebalance(Group& g, const std::string& member_id,
                             const proto::JoinGroupRequest& req, const std::string& host,
                             int64_t now_ms, JoinCallback done);
  void UpdateMemberAndRebalance(Group& g, Member& m, const proto::JoinGroupRequest& req,
                                int64_t now_ms, JoinCallback done);
  void PrepareRebalance(Group& g, int64_t now_ms);
  void MaybePrepareRebalance(Group& g, int64_t now_ms);
  void TryCompleteJoin(Group& g, int64_t now_ms);
  void CompleteJoin(Group& g, int64_t now_ms);
  void RemoveMember(Group& g, const std::string& member_id, proto::ErrorCode reason);
  void RemoveMemberAndUpdate(Group& g, const std::string& member_id, proto::ErrorCode reason,
                             int64_t now_ms);
  void FailSyncs(Group& g, proto::ErrorCode code);
  proto::JoinGroupResponse JoinResult(const Group& g, const Member& m, bool with_members) const;
  bool SupportsProtocols(const Group& g, const proto::JoinGroupRequest& req) const;
  std::string SelectProtocol(const Group& g) const;
  proto::MetadataRecord GroupRecordOf(const Group& g) const;
  void PersistGroup(Group& g);
  void ExpireGroup(Group& g, int64_t now_ms);

  // Work queued while the state is being changed and run once it is
  // consistent (callbacks and Persist calls, in order).
  void Defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
  void Flush();
  void Persist(std::vector<proto::MetadataRecord> records, PersistDone done);

  GroupConfig config_;
  PersistFn persist_;
  std::map<std::string, std::unique_ptr<Group>> groups_;
  uint64_t next_serial_ = 1;
  uint64_t next_member_seq_ = 1;
  int64_t now_ms_ = 0;
  std::vector<std::function<void()>> deferred_;
  bool flushing_ = false;
  int64_t rebalances_completed_ = 0;
};

}  // namespace brook::groups
