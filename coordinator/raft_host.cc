// RaftHost: a RaftNode on its own thread and io_context, durable storage on
// brook::storage, API_RAFT transport with one bounded sender per peer.
#include "coordinator/raft_host.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "common/errors.h"
#include "common/rpc/client.h"
#include "coordinator/raft/durable_storage.h"
#include "spdlog/spdlog.h"

namespace brook::coordinator {
namespace {

using proto::ErrorCode;
using raft::LogIndex;

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Monotonic milliseconds plus a forward skew (a single-member quorum jumps
// past its first election timeout so it leads at once).
class HostClock : public raft::Clock {
 public:
  int64_t NowMs() override { return SteadyNowMs() + skew_.load(); }
  void Skip(int64_t ms) { skew_.fetch_add(ms); }

 private:
  std::atomic<int64_t> skew_{0};
};

class HostRandom : public raft::Random {
 public:
  HostRandom() : rng_(std::random_device{}()) {}
  int64_t Uniform(int64_t lo, int64_t hi) override {
    return std::uniform_int_distribution<int64_t>(lo, hi - 1)(rng_);
  }

 private:
  std::mt19937_64 rng_;
};

// Ships messages to one peer in order over one connection. Enqueue never
// blocks: beyond max_queued messages are dropped. The thread connects
// (blocking), reconnects with back-off, and drops what was queued while the
// peer was unreachable (Raft resends what still matters).
class PeerSender {
 public:
  PeerSender(RaftMember peer, boost::asio::io_context& io, size_t max_queued,
             int64_t max_backoff_ms)
      : peer_(std::move(peer)), io_(io), max_queued_(max_queued), max_backoff_ms_(max_backoff_ms) {
    thread_ = std::thread([this] { Run(); });
  }
  ~PeerSender() { Stop(); }

  void Enqueue(raft::Message m) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ || queue_.size() >= max_queued_) return;
      queue_.push_back(std::move(m));
    }
    cv_.notify_one();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ && !thread_.joinable()) return;
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  // Waits up to `ms` unless stopped; returns false when stopped.
  bool Sleep(int64_t ms) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_; });
    return !stop_;
  }

  void Run() {
    int64_t backoff_ms = 10;
    bool reported_down = false;
    std::shared_ptr<rpc::RpcClient> client;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) break;
      }
      if (client == nullptr || !client->connected()) {
        if (client != nullptr) client->Close();
        client.reset();
        rpc::ClientOptions co;
        co.connect_timeout = std::chrono::milliseconds(1000);
        auto c = rpc::RpcClient::Connect(io_, peer_.host, peer_.port, co);
        if (!c.ok()) {
          if (!reported_down) {
            spdlog::warn("raft: cannot reach coordinator {} at {}:{}: {}", peer_.id.value(),
                         peer_.host, peer_.port, std::string(c.status().message()));
            reported_down = true;
          }
          {
            std::lock_guard<std::mutex> lock(mu_);
            queue_.clear();
          }
          if (!Sleep(backoff_ms)) break;
          backoff_ms = std::min(backoff_ms * 2, max_backoff_ms_);
          continue;
        }
        client = *std::move(c);
        if (reported_down) {
          spdlog::info("raft: connected to coordinator {} at {}:{}", peer_.id.value(), peer_.host,
                       peer_.port);
        }
        reported_down = false;
        backoff_ms = 10;
      }
      // Keep a bounded number of requests in flight; the queue absorbs (and
      // beyond its bound drops) the rest meanwhile.
      while (client->connected() && client->in_flight() >= 8) {
        if (!Sleep(1)) break;
      }
      proto::RaftRequest req;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) break;
        size_t bytes = 0;
        while (!queue_.empty() && req.messages_size() < 256 && bytes < (4u << 20)) {
          *req.add_messages() = ToProto(queue_.front());
          bytes += req.messages(req.messages_size() - 1).ByteSizeLong();
          queue_.pop_front();
        }
      }
      if (req.messages_size() == 0) continue;
      client->Call(proto::API_RAFT, 0, req, {}, std::chrono::milliseconds(5000),
                   [](absl::StatusOr<rpc::Response>) {});
    }
    if (client != nullptr) client->Close();
  }

  const RaftMember peer_;
  boost::asio::io_context& io_;
  const size_t max_queued_;
  const int64_t max_backoff_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<raft::Message> queue_;
  bool stop_ = false;
  std::thread thread_;
};

class HostTransport : public raft::Transport {
 public:
  void Send(raft::Message message) override {
    auto it = senders.find(message.to);
    if (it != senders.end()) it->second->Enqueue(std::move(message));
  }
  std::map<NodeId, std::unique_ptr<PeerSender>> senders;
};

absl::Status NotCoordinator(const std::string& why) {
  return MakeError(ErrorCode::NOT_COORDINATOR, why);
}

}  // namespace

proto::RaftMessage ToProto(const raft::Message& m) {
  proto::RaftMessage out;
  out.set_type(static_cast<uint32_t>(m.type));
  out.set_from(m.from.value());
  out.set_to(m.to.value());
  out.set_term(m.term.value());
  out.set_last_log_index(m.last_log_index.value());
  out.set_last_log_term(m.last_log_term.value());
  out.set_transfer(m.transfer);
  out.set_granted(m.granted);
  out.set_prev_log_index(m.prev_log_index.value());
  out.set_prev_log_term(m.prev_log_term.value());
  for (const raft::Entry& e : m.entries) {
    proto::RaftEntry* pe = out.add_entries();
    pe->set_term(e.term.value());
    pe->set_index(e.index.value());
    pe->set_type(static_cast<uint32_t>(e.type));
    pe->set_data(e.data);
  }
  out.set_leader_commit(m.leader_commit.value());
  out.set_match_index(m.match_index.value());
  out.set_conflict_index(m.conflict_index.value());
  out.set_conflict_term(m.conflict_term.value());
  if (m.type == raft::MessageType::kInstallSnapshot) {
    out.mutable_snapshot()->set_index(m.snapshot.index.value());
    out.mutable_snapshot()->set_term(m.snapshot.term.value());
    out.mutable_snapshot()->set_data(m.snapshot.data);
  }
  return out;
}

absl::StatusOr<raft::Message> FromProto(const proto::RaftMessage& p) {
  if (p.type() > static_cast<uint32_t>(raft::MessageType::kInstallSnapshot)) {
    return absl::InvalidArgumentError(absl::StrCat("raft: unknown message type ", p.type()));
  }
  raft::Message m;
  m.type = static_cast<raft::MessageType>(p.type());
  m.from = NodeId(p.from());
  m.to = NodeId(p.to());
  m.term = Term(p.term());
  m.last_log_index = LogIndex(p.last_log_index());
  m.last_log_term = Term(p.last_log_term());
  m.transfer = p.transfer();
  m.granted = p.granted();
  m.prev_log_index = LogIndex(p.prev_log_index());
  m.prev_log_term = Term(p.prev_log_term());
  m.entries.reserve(static_cast<size_t>(p.entries_size()));
  for (const proto::RaftEntry& pe : p.entries()) {
    if (pe.type() > static_cast<uint32_t>(raft::EntryType::kNoop)) {
      return absl::InvalidArgumentError(absl::StrCat("raft: unknown entry type ", pe.type()));
    }
    m.entries.push_back(raft::Entry{Term(pe.term()), LogIndex(pe.index()),
                                    static_cast<raft::EntryType>(pe.type()), pe.data()});
  }
  for (size_t i = 1; i < m.entries.size(); ++i) {
    if (m.entries[i].index != m.entries[i - 1].index + 1) {
      return absl::InvalidArgumentError("raft: entries not consecutive");
    }
  }
  if (!m.entries.empty() && m.entries.front().index != m.prev_log_index + 1) {
    return absl::InvalidArgumentError("raft: entries do not follow prev_log_index");
  }
  m.leader_commit = LogIndex(p.leader_commit());
  m.match_index = LogIndex(p.match_index());
  m.conflict_index = LogIndex(p.conflict_index());
  m.conflict_term = Term(p.conflict_term());
  if (p.has_snapshot()) {
    m.snapshot = raft::Snapshot{LogIndex(p.snapshot().index()), Term(p.snapshot().term()),
                                p.snapshot().data()};
  }
  return m;
}

struct RaftHost::Impl : std::enable_shared_from_this<Impl> {
  // A batch of proposed entries [first, last], all of `term`.
  struct Pending {
    LogIndex first;
    Term term;
    ProposeCallback done;
  };

  Impl(RaftHostOptions o, RaftHostCallbacks c)
      : options(std::move(o)),
        cb(std::move(c)),
        hard_state(options.fs, options.dir + "/hardstate"),
        snapshots(options.fs, options.dir + "/snapshot"),
        tick_timer(io) {}

  // Sender threads use client_io: stop them first (Stop() did already,
  // unless Open failed half-way).
  ~Impl() {
    for (auto& [id, sender] : transport.senders) sender->Stop();
  }

  const RaftHostOptions options;
  const RaftHostCallbacks cb;
  std::unique_ptr<raft::SegmentRaftLog> log;
  raft::FileHardStateStore hard_state;
  raft::FileSnapshotStore snapshots;
  HostClock clock;
  HostRandom random;
  HostTransport transport;
  std::unique_ptr<rpc::IoThread> client_io;
  std::unique_ptr<raft::RaftNode> node;

  boost::asio::io_context io;
  boost::asio::steady_timer tick_timer;
  std::thread thread;

  // Guards `stopped` against posts racing Stop (see Post).
  std::mutex post_mu;
  bool stopped = false;

  // Raft thread only (or before the thread starts / after it is joined).
  bool closed = false;
  absl::Status failed;
  std::map<LogIndex, Pending> pending;  // keyed by the batch's last index
  int64_t since_snapshot = 0;
  Term serving_term;  // the leader's term once its first own entry is applied
  bool have_reported = false;
  RaftHostStatus reported;

  mutable std::mutex status_mu;
  RaftHostStatus status_copy;

  // Runs `fn` on the Raft thread; false (fn dropped) after Stop.
  template <typename Fn>
  bool Post(Fn&& fn) {
    std::lock_guard<std::mutex> lock(post_mu);
    if (stopped) return false;
    boost::asio::post(io, std::forward<Fn>(fn));
    return true;
  }

  void Fail(absl::Status s) {
    if (!failed.ok()) return;
    failed = s;
    spdlog::critical("raft: coordinator {} stopped by an error: {}", options.id.value(),
                     s.ToString());
    FailPending(s);
    Report();
  }

  void FailPending(const absl::Status& s) {
    auto batch = std::move(pending);
    pending.clear();
    for (auto& [last, p] : batch) p.done(s);
  }

  void ScheduleTick() {
    tick_timer.expires_after(std::chrono::milliseconds(options.tick_ms));
    tick_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || closed) return;
      OnTick();
      ScheduleTick();
    });
  }

  void OnTick() {
    if (!failed.ok()) return;
    if (absl::Status s = node->Tick(); !s.ok()) return Fail(s);
    Drain();
  }

  void OnMessages(std::vector<raft::Message> messages) {
    if (closed || !failed.ok()) return;
    for (const raft::Message& m : messages) {
      // Only members of the configured quorum take part (a process started
      // with another quorum must not vote or lead here).
      if (m.to != options.id || !IsMember(m.from) || m.from == options.id) continue;
      if (absl::Status s = node->Step(m); !s.ok()) return Fail(s);
    }
    Drain();
  }

  bool IsMember(NodeId id) const {
    for (const RaftMember& m : options.members) {
      if (m.id == id) return true;
    }
    return false;
  }

  void OnPropose(std::vector<std::string> entries, ProposeCallback done) {
    if (closed) return done(MakeError(ErrorCode::SHUTTING_DOWN, "raft host is stopped"));
    if (!failed.ok()) return done(NotCoordinator("coordinator raft storage failed"));
    if (entries.empty()) return done(absl::InvalidArgumentError("raft: nothing to propose"));
    if (node->role() != raft::Role::kLeader) {
      return done(NotCoordinator("this coordinator is not the raft leader"));
    }
    const Term term = node->term();
    LogIndex first, last;
    for (size_t i = 0; i < entries.size(); ++i) {
      auto index = node->Propose(std::move(entries[i]));
      if (!index.ok()) {
        if (i == 0) {
          return done(NotCoordinator(std::string(index.status().message())));
        }
        // Only a storage failure gets here (the role cannot change in between).
        pending.emplace(last, Pending{first, term, std::move(done)});
        return Fail(index.status());
      }
      if (i == 0) first = *index;
      last = *index;
    }
    pending.emplace(last, Pending{first, term, std::move(done)});
    // Sync now rather than at the next tick.
    if (absl::Status s = node->Tick(); !s.ok()) return Fail(s);
    Drain();
  }

  // Completes or fails the pending batch covering entry `e` (just applied).
  void SettlePending(const raft::Entry& e) {
    auto it = pending.lower_bound(e.index);
    if (it == pending.end() || it->second.first > e.index) return;
    if (e.type != raft::EntryType::kNormal || e.term != it->second.term) {
      ProposeCallback done = std::move(it->second.done);
      pending.erase(it);
      done(NotCoordinator("leadership changed before the proposal committed"));
      return;
    }
    if (it->first == e.index) {
      ProposeCallback done = std::move(it->second.done);
      pending.erase(it);
      done(e.index);
    }
  }

  // Hands snapshots and committed entries to the state machine, compacts,
  // and reports state changes.
  void Drain() {
    if (!failed.ok()) return;
    auto snap = node->TakeSnapshot();
    if (!snap.ok()) return Fail(snap.status());
    if (snap->has_value()) {
      if (absl::Status s = cb.restore(**snap); !s.ok()) return Fail(s);
      since_snapshot = 0;
      spdlog::info("raft: coordinator {} restored snapshot at index {}", options.id.value(),
                   (*snap)->index.value());
    }
    auto committed = node->TakeCommitted();
    if (!committed.ok()) return Fail(committed.status());
    for (const raft::Entry& e : *committed) {
      if (e.type == raft::EntryType::kNormal) {
        cb.apply(e.index, e.data);
        ++since_snapshot;
      } else if (node->role() == raft::Role::kLeader && e.term == node->term()) {
        serving_term = e.term;
      }
      SettlePending(e);
    }
    if (options.snapshot_entries > 0 && since_snapshot >= options.snapshot_entries) {
      const LogIndex through = node->applied_index();
      if (absl::Status s = node->Compact(through, cb.take_snapshot()); !s.ok()) return Fail(s);
      since_snapshot = 0;
      spdlog::info("raft: coordinator {} took a snapshot at index {}", options.id.value(),
                   through.value());
    }
    if (!pending.empty() && (node->role() != raft::Role::kLeader ||
                             pending.begin()->second.term != node->term())) {
      FailPending(NotCoordinator("this coordinator lost raft leadership"));
    }
    Report();
  }

  RaftHostStatus BuildStatus() const {
    RaftHostStatus st;
    st.id = options.id;
    if (node == nullptr) return st;
    const bool ok = failed.ok();
    st.role = ok ? node->role() : raft::Role::kFollower;
    st.term = node->term();
    st.leader = ok ? node->leader() : std::nullopt;
    st.serving = ok && st.role == raft::Role::kLeader && serving_term == node->term();
    st.commit = node->commit_index();
    st.applied = node->applied_index();
    st.last = node->last_index();
    st.snapshot_index = node->snapshot_index();
    std::map<NodeId, RaftHostStatus::Peer> peers;
    for (const RaftMember& m : options.members) {
      if (m.id != options.id) peers[m.id] = RaftHostStatus::Peer{m.id, -1, -1};
    }
    if (st.role == raft::Role::kLeader) {
      const int64_t now = NowMs();
      for (const auto& p : node->peer_progress()) {
        peers[p.id] = RaftHostStatus::Peer{p.id, p.match.value(), std::max<int64_t>(0, now - p.last_heard_ms)};
      }
    }
    for (auto& [id, p] : peers) st.peers.push_back(p);
    return st;
  }

  void Report() {
    RaftHostStatus st = BuildStatus();
    {
      std::lock_guard<std::mutex> lock(status_mu);
      status_copy = st;
    }
    const bool changed = !have_reported || st.role != reported.role || st.term != reported.term ||
                         st.leader != reported.leader || st.serving != reported.serving;
    if (!changed) return;
    have_reported = true;
    reported = st;
    spdlog::info("raft: coordinator {} is {} in term {} (leader {}{})", options.id.value(),
                 raft::RoleName(st.role), st.term.value(),
                 st.leader ? std::to_string(st.leader->value()) : std::string("unknown"),
                 st.serving ? ", serving" : "");
    if (cb.state_changed) cb.state_changed(st);
  }

  // HostClock::NowMs is not const; the status only reads it.
  int64_t NowMs() const { return const_cast<HostClock&>(clock).NowMs(); }
};

absl::StatusOr<std::unique_ptr<RaftHost>> RaftHost::Open(RaftHostOptions options,
                                                         RaftHostCallbacks callbacks) {
  if (options.fs == nullptr) options.fs = storage::DefaultFileSystem();
  if (options.tick_ms <= 0) return absl::InvalidArgumentError("raft: tick_ms must be positive");
  if (!callbacks.apply || !callbacks.restore || !callbacks.take_snapshot) {
    return absl::InvalidArgumentError("raft: apply, restore and take_snapshot are required");
  }
  raft::RaftConfig config;
  config.id = options.id;
  for (const RaftMember& m : options.members) config.voters.push_back(m.id);
  config.election_timeout_ms = options.election_timeout_ms;
  config.heartbeat_interval_ms = options.heartbeat_ms;
  if (absl::Status s = options.fs->CreateDirs(options.dir); !s.ok()) return s;

  auto impl = std::make_shared<Impl>(std::move(options), std::move(callbacks));
  auto log = raft::SegmentRaftLog::Open(impl->options.fs, impl->options.dir + "/log");
  if (!log.ok()) return log.status();
  impl->log = *std::move(log);
  auto node = raft::RaftNode::Create(config, impl->log.get(), &impl->hard_state, &impl->snapshots,
                                     &impl->transport, &impl->clock, &impl->random);
  if (!node.ok()) return node.status();
  impl->node = *std::move(node);
  if (impl->options.members.size() > 1) {
    impl->client_io = std::make_unique<rpc::IoThread>();
    for (const RaftMember& m : impl->options.members) {
      if (m.id == impl->options.id) continue;
      impl->transport.senders[m.id] = std::make_unique<PeerSender>(
          m, impl->client_io->io(), impl->options.max_queued_messages,
          impl->options.max_reconnect_backoff_ms);
    }
  } else {
    // Alone: the election timer is all that stands between start and
    // leadership, so skip it.
    impl->clock.Skip(2 * impl->options.election_timeout_ms + 1);
  }
  // Restore the stored snapshot (and, alone, become leader and apply the
  // log) before returning.
  impl->Drain();
  if (impl->options.members.size() == 1) impl->OnTick();
  if (!impl->failed.ok()) return impl->failed;

  Impl* raw = impl.get();
  impl->ScheduleTick();
  impl->thread = std::thread([raw] {
    auto work = boost::asio::make_work_guard(raw->io);
    raw->io.run();
  });
  return std::unique_ptr<RaftHost>(new RaftHost(std::move(impl)));
}

RaftHost::RaftHost(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

RaftHost::~RaftHost() {
  if (absl::Status s = Stop(); !s.ok()) spdlog::error("raft: stop: {}", s.ToString());
}

void RaftHost::RegisterApis(rpc::RpcServer& server) {
  std::weak_ptr<Impl> weak = impl_;
  server.Register(proto::API_RAFT, 0, [weak](rpc::Request req) {
    if (auto self = weak.lock()) {
      HandleRaftRequest(self, req);
    } else {
      req.RespondError(ErrorCode::SHUTTING_DOWN, "raft host is gone");
    }
  });
}

void RaftHost::Handle(const rpc::Request& req) { HandleRaftRequest(impl_, req); }

void RaftHost::HandleRaftRequest(const std::shared_ptr<Impl>& self, const rpc::Request& req) {
  proto::RaftRequest in;
  if (!req.ParseHeader(&in)) {
    req.RespondError(ErrorCode::INVALID_REQUEST, "unparsable RaftRequest");
    return;
  }
  std::vector<raft::Message> messages;
  messages.reserve(static_cast<size_t>(in.messages_size()));
  for (const proto::RaftMessage& pm : in.messages()) {
    auto m = FromProto(pm);
    if (!m.ok()) {
      req.RespondError(ErrorCode::INVALID_REQUEST, std::string(m.status().message()));
      return;
    }
    messages.push_back(*std::move(m));
  }
  Impl* raw = self.get();
  if (!self->Post([raw, keep = self, messages = std::move(messages)]() mutable {
        raw->OnMessages(std::move(messages));
      })) {
    req.RespondError(ErrorCode::SHUTTING_DOWN, "raft host is stopped");
    return;
  }
  req.Respond(proto::RaftResponse());
}

void RaftHost::Propose(std::vector<std::string> entries, ProposeCallback done) {
  Impl* raw = impl_.get();
  auto shared_done = std::make_shared<ProposeCallback>(std::move(done));
  if (!impl_->Post([raw, entries = std::move(entries), shared_done]() mutable {
        raw->OnPropose(std::move(entries), std::move(*shared_done));
      })) {
    (*shared_done)(MakeError(ErrorCode::SHUTTING_DOWN, "raft host is stopped"));
  }
}

void RaftHost::TransferLeadership(NodeId target) {
  Impl* raw = impl_.get();
  impl_->Post([raw, target] {
    if (raw->closed || !raw->failed.ok()) return;
    if (absl::Status s = raw->node->TransferLeadership(target); !s.ok()) {
      spdlog::info("raft: transfer to {} not started: {}", target.value(), std::string(s.message()));
    }
    raw->Drain();
  });
}

RaftHostStatus RaftHost::status() const {
  std::lock_guard<std::mutex> lock(impl_->status_mu);
  return impl_->status_copy;
}

absl::Status RaftHost::Stop() {
  Impl* raw = impl_.get();
  {
    std::lock_guard<std::mutex> lock(raw->post_mu);
    if (raw->stopped) return absl::OkStatus();
    boost::asio::post(raw->io, [raw] {
      raw->closed = true;
      raw->tick_timer.cancel();
      raw->io.stop();
    });
    raw->stopped = true;
  }
  if (raw->thread.joinable()) raw->thread.join();
  // Run what was posted before `stopped` was set (proposals fail).
  raw->closed = true;
  raw->io.restart();
  raw->io.poll();
  raw->FailPending(MakeError(ErrorCode::SHUTTING_DOWN, "raft host is stopped"));
  for (auto& [id, sender] : raw->transport.senders) sender->Stop();
  raw->client_io.reset();
  return raw->log->Close();
}

}  // namespace brook::coordinator
