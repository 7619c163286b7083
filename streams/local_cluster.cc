// LocalCluster's runtime: tasks with bounded input queues run by a pool of
// worker threads, grouping-based routing, the XOR acker, tick tuples,
// backpressure and graceful stop.
//
// Scheduling: a task is in one of four states (idle, queued, running,
// running-and-notified). Only the thread that moved it to running runs it,
// so a task never runs on two threads at once. A bolt runs a batch of up to
// kInBatch queued tuples per turn; a spout up to kSpoutCalls next_tuple calls.
//
// Emitted tuples are buffered per target task (up to kOutBatch) and handed
// over at the end of the turn or when the buffer fills. Handing over into a
// full queue blocks the emitter; while blocked, its thread runs other queued
// tasks of strictly greater rank (longest distance from a spout). Because
// tuples only flow to greater ranks, the tasks a blocked thread waits on never
// wait on it, so the pool cannot deadlock however few threads it has.
#include "brook/streams/local_cluster.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/check.h"
#include "common/http/metrics.h"
#include "spdlog/spdlog.h"
#include "streams/acker.h"

namespace brook::streams {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kOutBatch = 64;
constexpr size_t kInBatch = 256;
constexpr int kSpoutCalls = 64;
constexpr auto kTimerPeriod = std::chrono::milliseconds(1);

enum SchedState : int { kIdle = 0, kQueued = 1, kRunning = 2, kRunningNotified = 3 };

std::vector<double> ExecuteLatencyBuckets() {
  return {2.5e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4,
          1e-3,   2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1,  0.2,  0.5,  1,    10};
}

struct Subscription {
  GroupingType type;
  int first_task;
  int num_tasks;
  std::vector<int> field_idx;  // kFields
  int rr_slot;                 // shuffle counters, per emitting task
};

struct StreamRoute {
  std::shared_ptr<const detail::StreamInfo> info;
  bool direct = false;
  std::vector<Subscription> subs;
};

struct ComponentRt {
  std::string name;
  bool is_spout = false;
  int first_task = 0;
  int num_tasks = 0;
  int rank = 0;
  std::chrono::milliseconds tick{0};
  std::map<std::string, StreamRoute, std::less<>> streams;

  std::atomic<uint64_t> emitted{0}, executed{0}, acked{0}, failed{0}, exceptions{0}, dropped{0};
  metrics::Counter* m_emitted = nullptr;
  metrics::Counter* m_executed = nullptr;
  metrics::Counter* m_acked = nullptr;
  metrics::Counter* m_failed = nullptr;
  metrics::Counter* m_exceptions = nullptr;
  metrics::Gauge* m_depth = nullptr;
  metrics::Histogram* m_latency = nullptr;
};

// Counts a task accumulates during a turn, published at its end.
struct LocalCounts {
  uint64_t emitted = 0, executed = 0, acked = 0, failed = 0, exceptions = 0, dropped = 0;
};

}  // namespace

class LocalCluster::Runtime {
 public:
  struct Task;
  class BoltCollector;
  class SpoutCollector;

  Runtime(std::string name, Config config, int threads)
      : name_(std::move(name)),
        config_(std::move(config)),
        threads_(threads),
        acker_([this](const internal::Acker::Completion& c) { Complete(c); }) {}
  ~Runtime();

  absl::Status Init(const Topology& topology);
  void Start();
  absl::Status Stop(std::chrono::milliseconds drain_timeout);
  bool running() const { return started_ && !stopped_; }
  ComponentStats Stats(const std::string& component) const;
  size_t PendingTrees() const { return acker_.size(); }

  // Collector entry points (task thread only).
  void BoltEmit(Task* t, const std::string& stream, std::span<const Tuple> anchors, Values&& values,
                int direct_task);
  void SpoutEmit(Task* t, const std::string& stream, Values&& values, std::optional<MessageId> id,
                 int direct_task);
  void Ack(Task* t, const Tuple& tuple);
  void Fail(Task* t, const Tuple& tuple);
  // Any thread.
  void Post(Task* t, std::function<void()> fn);

 private:
  const StreamRoute& Route(Task* t, const std::string& stream, bool direct_emit);
  void Targets(Task* t, const StreamRoute& route, const Values& values, int direct_task);
  void Buffer(Task* t, int dest, Tuple tuple);
  void Flush(Task* t, int dest);
  void FlushAll(Task* t);
  void Publish(Task* t);

  void Notify(Task* t);
  void Push(Task* t);
  void RunTurn(Task* t);
  bool RunBolt(Task* t);
  bool RunSpout(Task* t);
  bool HelpAbove(int rank);
  void WorkerLoop();
  void TimerLoop();
  void Complete(const internal::Acker::Completion& c);
  bool Quiet();
  void LogException(Task* t, const char* where, const char* what);

  const std::string name_;
  const Config config_;
  const int threads_;
  internal::Acker acker_;
  std::vector<std::unique_ptr<ComponentRt>> components_;
  std::vector<std::unique_ptr<Task>> tasks_;
  std::shared_ptr<const detail::StreamInfo> tick_info_;

  absl::Mutex run_mu_;
  std::deque<Task*> run_queue_ ABSL_GUARDED_BY(run_mu_);
  absl::CondVar run_cv_;

  std::atomic<bool> halt_{false};
  std::atomic<bool> spouts_active_{false};
  std::atomic<bool> ticks_on_{false};
  std::atomic<int64_t> in_flight_{0};  // tuples in queues, buffers or executing
  std::vector<std::thread> workers_;
  std::thread timer_;
  absl::Mutex timer_mu_;
  bool timer_stop_ ABSL_GUARDED_BY(timer_mu_) = false;
  bool started_ = false;
  bool stopped_ = false;
};

class LocalCluster::Runtime::BoltCollector : public OutputCollector {
 public:
  BoltCollector(Runtime* rt, Task* t) : rt_(rt), t_(t) {}
  using OutputCollector::emit;
  void emit(const std::string& stream, std::span<const Tuple> anchors, Values values) override {
    rt_->BoltEmit(t_, stream, anchors, std::move(values), -1);
  }
  void emit_direct(int task_id, const std::string& stream, std::span<const Tuple> anchors,
                   Values values) override {
    rt_->BoltEmit(t_, stream, anchors, std::move(values), task_id);
  }
  void ack(const Tuple& tuple) override { rt_->Ack(t_, tuple); }
  void fail(const Tuple& tuple) override { rt_->Fail(t_, tuple); }
  void post(std::function<void()> fn) override { rt_->Post(t_, std::move(fn)); }

 private:
  Runtime* rt_;
  Task* t_;
};

class LocalCluster::Runtime::SpoutCollector : public SpoutOutputCollector {
 public:
  SpoutCollector(Runtime* rt, Task* t) : rt_(rt), t_(t) {}
  using SpoutOutputCollector::emit;
  void emit(const std::string& stream, Values values, std::optional<MessageId> id) override {
    rt_->SpoutEmit(t_, stream, std::move(values), id, -1);
  }
  void emit_direct(int task_id, const std::string& stream, Values values,
                   std::optional<MessageId> id) override {
    rt_->SpoutEmit(t_, stream, std::move(values), id, task_id);
  }

 private:
  Runtime* rt_;
  Task* t_;
};

// One component instance. Fields marked "task thread" are only touched by
// the thread currently running the task (see the scheduling note above).
struct LocalCluster::Runtime::Task {
  int id = 0;
  int index = 0;
  ComponentRt* comp = nullptr;
  std::unique_ptr<ISpout> spout;
  std::unique_ptr<IBolt> bolt;
  std::unique_ptr<TopologyContext> context;
  std::unique_ptr<BoltCollector> bolt_collector;
  std::unique_ptr<SpoutCollector> spout_collector;

  std::atomic<int> sched{kIdle};

  // Input queue.
  absl::Mutex mu;
  std::deque<Tuple> queue ABSL_GUARDED_BY(mu);
  int space_waiters ABSL_GUARDED_BY(mu) = 0;
  absl::CondVar space;
  std::atomic<uint64_t> depth{0};
  double reported_depth = 0;  // task thread

  // Spout: completions from the acker, consumed by the task.
  absl::Mutex inbox_mu;
  std::vector<internal::Acker::Completion> inbox ABSL_GUARDED_BY(inbox_mu);
  int pending = 0;                 // task thread: tracked, un-completed tuples
  std::vector<MessageId> ack_now;  // task thread: untracked ids to ack after next_tuple
  uint64_t emits_this_call = 0;    // task thread

  // Bolt: work posted from other threads (OutputCollector::post).
  absl::Mutex posted_mu;
  std::vector<std::function<void()>> posted ABSL_GUARDED_BY(posted_mu);
  std::atomic<int64_t> posted_count{0};

  // Output buffers and scratch (task thread).
  std::vector<std::vector<Tuple>> out;  // by destination task id
  std::vector<int> dirty;
  std::vector<uint32_t> rr;  // per subscription slot
  std::vector<int> targets;
  std::vector<std::pair<uint64_t, uint64_t>> roots;
  std::vector<std::pair<int, Tuple>> staged;
  std::vector<Tuple> batch;
  const std::string* last_stream = nullptr;
  const StreamRoute* last_route = nullptr;
  LocalCounts counts;
  uint64_t exception_log_count = 0;

  Clock::time_point next_tick;  // timer thread
};

LocalCluster::Runtime::~Runtime() {
  if (started_ && !stopped_) (void)Stop(std::chrono::milliseconds(0));
}

absl::Status LocalCluster::Runtime::Init(const Topology& topology) {
  std::map<std::string, std::vector<StreamSpec>> outputs;
  absl::Status s = topology.Analyze(&outputs);
  if (!s.ok()) return s;
  if (config_.queue_capacity < 1) return absl::InvalidArgumentError("queue_capacity must be >= 1");
  if (config_.max_spout_pending < 0) {
    return absl::InvalidArgumentError("max_spout_pending must be >= 0");
  }
  if (config_.message_timeout.count() <= 0) {
    return absl::InvalidArgumentError("message_timeout must be > 0");
  }
  for (const auto& [bolt, interval] : config_.tick_intervals) {
    const ComponentSpec* c = topology.Find(bolt);
    if (c == nullptr || c->is_spout) {
      return absl::InvalidArgumentError(
          absl::StrCat("tick interval given for '", bolt, "', which is not a bolt"));
    }
    if (interval.count() <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("tick interval of '", bolt, "' must be > 0"));
    }
  }

  // Components, tasks and ranks.
  std::map<std::string, ComponentRt*> by_name;
  std::map<std::string, std::vector<int>> component_tasks;
  int next_task = 0;
  for (const auto& spec : topology.components()) {
    auto c = std::make_unique<ComponentRt>();
    c->name = spec.name;
    c->is_spout = spec.is_spout;
    c->first_task = next_task;
    c->num_tasks = spec.parallelism;
    next_task += spec.parallelism;
    auto tick = config_.tick_intervals.find(spec.name);
    if (tick != config_.tick_intervals.end()) c->tick = tick->second;
    for (int i = 0; i < c->num_tasks; ++i) component_tasks[spec.name].push_back(c->first_task + i);
    for (const auto& out : outputs[spec.name]) {
      StreamRoute r;
      r.info =
          std::make_shared<detail::StreamInfo>(detail::StreamInfo{spec.name, out.name, out.fields});
      r.direct = out.direct;
      c->streams.emplace(out.name, std::move(r));
    }
    metrics::Labels labels{{"topology", name_}, {"component", spec.name}};
    auto& reg = metrics::Registry::Global();
    c->m_emitted = reg.GetCounter("brook_streams_emitted_total", labels,
                                  "Tuples emitted by a streams component (per target task).");
    c->m_executed = reg.GetCounter("brook_streams_executed_total", labels,
                                   "Tuples executed by a streams bolt.");
    c->m_acked = reg.GetCounter("brook_streams_acked_total", labels,
                                "Tuples acked by a bolt, or spout tuples completed.");
    c->m_failed = reg.GetCounter("brook_streams_failed_total", labels,
                                 "Tuples failed by a bolt, or spout tuples failed or timed out.");
    c->m_exceptions = reg.GetCounter("brook_streams_exceptions_total", labels,
                                     "Exceptions caught at a streams task boundary.");
    c->m_depth = reg.GetGauge("brook_streams_queue_depth", labels,
                              "Tuples waiting in a component's input queues.");
    c->m_latency = reg.GetHistogram("brook_streams_execute_latency_seconds", labels,
                                    "Bolt execute latency.", ExecuteLatencyBuckets());
    by_name[spec.name] = c.get();
    components_.push_back(std::move(c));
  }
  const size_t n = topology.components().size();
  for (size_t round = 0; round < n; ++round) {
    for (const auto& spec : topology.components()) {
      for (const auto& g : spec.inputs) {
        by_name[spec.name]->rank = std::max(by_name[spec.name]->rank, by_name[g.source]->rank + 1);
      }
    }
  }
  int rr_slots = 0;
  for (const auto& spec : topology.components()) {
    ComponentRt* target = by_name[spec.name];
    for (const auto& g : spec.inputs) {
      StreamRoute& route = by_name[g.source]->streams.at(g.stream);
      Subscription sub{g.type, target->first_task, target->num_tasks, {}, rr_slots++};
      for (const auto& f : g.fields.names())
        sub.field_idx.push_back(route.info->fields.index_of(f));
      route.subs.push_back(std::move(sub));
    }
  }
  tick_info_ = std::make_shared<detail::StreamInfo>(
      detail::StreamInfo{std::string(kSystemComponent), std::string(kTickStream), Fields{}});

  for (const auto& spec : topology.components()) {
    ComponentRt* c = by_name[spec.name];
    for (int i = 0; i < c->num_tasks; ++i) {
      auto t = std::make_unique<Task>();
      t->id = c->first_task + i;
      t->index = i;
      t->comp = c;
      t->context =
          std::make_unique<TopologyContext>(&config_, spec.name, t->id, i, component_tasks, name_);
      t->out.resize(next_task);
      t->rr.resize(rr_slots);
      for (int k = 0; k < rr_slots; ++k) t->rr[k] = static_cast<uint32_t>(t->id * 7919 + k);
      if (c->is_spout) {
        t->spout = spec.spout_factory();
        t->spout_collector = std::make_unique<SpoutCollector>(this, t.get());
      } else {
        t->bolt = spec.bolt_factory();
        t->bolt_collector = std::make_unique<BoltCollector>(this, t.get());
      }
      if (!t->spout && !t->bolt) {
        return absl::InvalidArgumentError(
            absl::StrCat("factory of '", spec.name, "' returned null"));
      }
      tasks_.push_back(std::move(t));
    }
  }
  // open / prepare, on this thread, before any task runs.
  for (auto& t : tasks_) {
    try {
      if (t->spout) {
        t->spout->open(*t->context, t->spout_collector.get());
      } else {
        t->bolt->prepare(*t->context, t->bolt_collector.get());
      }
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("task ", t->id, " of '", t->comp->name,
                                                     "' threw from open/prepare: ", e.what()));
    }
  }
  return absl::OkStatus();
}

void LocalCluster::Runtime::Start() {
  started_ = true;
  spouts_active_ = true;
  ticks_on_ = true;
  auto now = Clock::now();
  for (auto& t : tasks_) {
    if (t->comp->tick.count() > 0) t->next_tick = now + t->comp->tick;
  }
  for (int i = 0; i < threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  timer_ = std::thread([this] { TimerLoop(); });
  for (auto& t : tasks_) {
    if (t->spout) Notify(t.get());
  }
}

// ---- Scheduling ----

void LocalCluster::Runtime::Push(Task* t) {
  absl::MutexLock l(&run_mu_);
  run_queue_.push_back(t);
  run_cv_.Signal();
}

void LocalCluster::Runtime::Notify(Task* t) {
  int s = t->sched.load(std::memory_order_acquire);
  for (;;) {
    if (s == kIdle) {
      if (t->sched.compare_exchange_weak(s, kQueued, std::memory_order_acq_rel)) {
        Push(t);
        return;
      }
    } else if (s == kRunning) {
      if (t->sched.compare_exchange_weak(s, kRunningNotified, std::memory_order_acq_rel)) return;
    } else {
      return;
    }
  }
}

void LocalCluster::Runtime::RunTurn(Task* t) {
  t->sched.store(kRunning, std::memory_order_release);
  bool more = t->spout ? RunSpout(t) : RunBolt(t);
  if (!more) {
    int s = kRunning;
    if (t->sched.compare_exchange_strong(s, kIdle, std::memory_order_acq_rel)) return;
  }
  t->sched.store(kQueued, std::memory_order_release);
  Push(t);
}

bool LocalCluster::Runtime::HelpAbove(int rank) {
  Task* t = nullptr;
  {
    absl::MutexLock l(&run_mu_);
    if (halt_.load()) return false;
    for (auto it = run_queue_.begin(); it != run_queue_.end(); ++it) {
      if ((*it)->comp->rank > rank) {
        t = *it;
        run_queue_.erase(it);
        break;
      }
    }
  }
  if (t == nullptr) return false;
  RunTurn(t);
  return true;
}

void LocalCluster::Runtime::WorkerLoop() {
  for (;;) {
    Task* t;
    {
      absl::MutexLock l(&run_mu_);
      while (run_queue_.empty() && !halt_.load()) run_cv_.Wait(&run_mu_);
      if (halt_.load()) return;
      t = run_queue_.front();
      run_queue_.pop_front();
    }
    RunTurn(t);
  }
}

void LocalCluster::Runtime::TimerLoop() {
  auto scan_period = std::clamp(config_.message_timeout / 10, std::chrono::milliseconds(1),
                                std::chrono::milliseconds(100));
  auto next_scan = Clock::now() + scan_period;
  for (;;) {
    {
      absl::MutexLock l(&timer_mu_);
      if (timer_mu_.AwaitWithTimeout(absl::Condition(&timer_stop_),
                                     absl::FromChrono(kTimerPeriod))) {
        return;
      }
    }
    auto now = Clock::now();
    // Idle spouts get another chance to emit.
    if (spouts_active_.load()) {
      for (auto& t : tasks_) {
        if (t->spout) Notify(t.get());
      }
    }
    if (ticks_on_.load()) {
      for (auto& t : tasks_) {
        if (t->comp->tick.count() <= 0 || now < t->next_tick) continue;
        t->next_tick = now + t->comp->tick;
        auto impl = std::make_shared<detail::TupleImpl>();
        impl->stream = tick_info_;
        in_flight_.fetch_add(1);
        {
          absl::MutexLock l(&t->mu);
          t->queue.emplace_back(std::move(impl));
          t->depth.store(t->queue.size(), std::memory_order_relaxed);
        }
        Notify(t.get());
      }
    }
    if (config_.acking && now >= next_scan) {
      next_scan = now + scan_period;
      acker_.Expire(now);
    }
  }
}

// ---- Routing and hand-over ----

const StreamRoute& LocalCluster::Runtime::Route(Task* t, const std::string& stream,
                                                bool direct_emit) {
  const StreamRoute* route;
  if (t->last_stream != nullptr && *t->last_stream == stream) {
    route = t->last_route;
  } else {
    auto it = t->comp->streams.find(stream);
    if (it == t->comp->streams.end()) {
      throw std::invalid_argument(absl::StrCat("component '", t->comp->name,
                                               "' emitted on undeclared stream '", stream, "'"));
    }
    route = &it->second;
    t->last_stream = &it->first;
    t->last_route = route;
  }
  if (route->direct != direct_emit) {
    throw std::invalid_argument(
        absl::StrCat("component '", t->comp->name, "': ", direct_emit ? "emit_direct" : "emit",
                     " on ", route->direct ? "direct" : "non-direct", " stream '", stream, "'"));
  }
  return *route;
}

void LocalCluster::Runtime::Targets(Task* t, const StreamRoute& route, const Values& values,
                                    int direct_task) {
  if (values.size() != route.info->fields.size()) {
    throw std::invalid_argument(absl::StrCat(
        "component '", t->comp->name, "' emitted ", values.size(), " values on stream '",
        route.info->stream, "', which declares ", route.info->fields.size(), " fields"));
  }
  auto& out = t->targets;
  out.clear();
  bool direct_delivered = false;
  for (const auto& sub : route.subs) {
    switch (sub.type) {
      case GroupingType::kShuffle:
      case GroupingType::kLocalOrShuffle: {
        uint32_t& c = t->rr[sub.rr_slot];
        out.push_back(sub.first_task + static_cast<int>(c % static_cast<uint32_t>(sub.num_tasks)));
        ++c;
        break;
      }
      case GroupingType::kFields: {
        uint64_t h = 0;
        for (int idx : sub.field_idx) h = h * 0x9e3779b97f4a7c15ull + values[idx].StableHash();
        out.push_back(sub.first_task + static_cast<int>(h % static_cast<uint64_t>(sub.num_tasks)));
        break;
      }
      case GroupingType::kAll:
        for (int i = 0; i < sub.num_tasks; ++i) out.push_back(sub.first_task + i);
        break;
      case GroupingType::kGlobal:
        out.push_back(sub.first_task);
        break;
      case GroupingType::kDirect:
        if (direct_task >= sub.first_task && direct_task < sub.first_task + sub.num_tasks) {
          out.push_back(direct_task);
          direct_delivered = true;
        }
        break;
    }
  }
  if (route.direct && !direct_delivered) ++t->counts.dropped;
}

void LocalCluster::Runtime::Buffer(Task* t, int dest, Tuple tuple) {
  auto& buf = t->out[dest];
  buf.push_back(std::move(tuple));
  if (buf.size() == 1) t->dirty.push_back(dest);
  if (buf.size() >= kOutBatch) Flush(t, dest);
}

void LocalCluster::Runtime::Flush(Task* t, int dest_id) {
  auto& buf = t->out[dest_id];
  if (buf.empty()) return;
  Task* dest = tasks_[dest_id].get();
  in_flight_.fetch_add(static_cast<int64_t>(buf.size()), std::memory_order_relaxed);
  const size_t cap = config_.queue_capacity;
  for (;;) {
    {
      absl::MutexLock l(&dest->mu);
      if (dest->queue.size() < cap || halt_.load(std::memory_order_relaxed)) {
        for (auto& x : buf) dest->queue.push_back(std::move(x));
        dest->depth.store(dest->queue.size(), std::memory_order_relaxed);
        break;
      }
    }
    if (!HelpAbove(t->comp->rank)) {
      absl::MutexLock l(&dest->mu);
      if (dest->queue.size() >= cap && !halt_.load(std::memory_order_relaxed)) {
        ++dest->space_waiters;
        dest->space.WaitWithTimeout(&dest->mu, absl::Milliseconds(1));
        --dest->space_waiters;
      }
    }
  }
  buf.clear();
  Notify(dest);
}

void LocalCluster::Runtime::FlushAll(Task* t) {
  for (size_t i = 0; i < t->dirty.size(); ++i) Flush(t, t->dirty[i]);
  t->dirty.clear();
}

void LocalCluster::Runtime::BoltEmit(Task* t, const std::string& stream,
                                     std::span<const Tuple> anchors, Values&& values,
                                     int direct_task) {
  const StreamRoute& route = Route(t, stream, direct_task >= 0);
  Targets(t, route, values, direct_task);
  const size_t n = t->targets.size();
  for (size_t k = 0; k < n; ++k) {
    auto impl = std::make_shared<detail::TupleImpl>();
    impl->values = (k + 1 == n) ? std::move(values) : values;
    impl->stream = route.info;
    impl->source_task = t->id;
    if (config_.acking) {
      for (const Tuple& a : anchors) {
        detail::TupleImpl* ai = a.impl();
        // Anchoring to an acked or failed tuple cannot extend its tree any more.
        if (ai == nullptr || ai->roots.empty() || ai->state != detail::TupleImpl::kPending) {
          continue;
        }
        uint64_t edge = internal::NextTupleId();
        ai->ack_val ^= edge;
        for (const auto& [root, unused] : ai->roots) {
          auto it = std::find_if(impl->roots.begin(), impl->roots.end(),
                                 [root = root](const auto& p) { return p.first == root; });
          if (it == impl->roots.end()) {
            impl->roots.emplace_back(root, edge);
          } else {
            it->second ^= edge;
          }
        }
      }
    }
    Buffer(t, t->targets[k], Tuple(std::move(impl)));
  }
  t->counts.emitted += n;
}

void LocalCluster::Runtime::SpoutEmit(Task* t, const std::string& stream, Values&& values,
                                      std::optional<MessageId> id, int direct_task) {
  const StreamRoute& route = Route(t, stream, direct_task >= 0);
  Targets(t, route, values, direct_task);
  ++t->emits_this_call;
  const size_t n = t->targets.size();
  const bool tracked = id.has_value() && config_.acking && n > 0;
  if (id.has_value() && !tracked) t->ack_now.push_back(*id);
  uint64_t root = tracked ? internal::NextTupleId() : 0;
  uint64_t xor_val = 0;
  t->staged.clear();
  for (size_t k = 0; k < n; ++k) {
    auto impl = std::make_shared<detail::TupleImpl>();
    impl->values = (k + 1 == n) ? std::move(values) : values;
    impl->stream = route.info;
    impl->source_task = t->id;
    if (tracked) {
      uint64_t edge = internal::NextTupleId();
      xor_val ^= edge;
      impl->roots.emplace_back(root, edge);
    }
    t->staged.emplace_back(t->targets[k], Tuple(std::move(impl)));
  }
  if (tracked) {
    // The tree must exist before any of its tuples can be acked downstream.
    if (xor_val == 0) xor_val = 1;  // 2^-64: keep the tree alive rather than lose it
    acker_.Init(root, xor_val, t->id, *id, Clock::now() + config_.message_timeout);
    ++t->pending;
  }
  for (auto& [dest, tuple] : t->staged) Buffer(t, dest, std::move(tuple));
  t->staged.clear();
  t->counts.emitted += n;
}

void LocalCluster::Runtime::Ack(Task* t, const Tuple& tuple) {
  detail::TupleImpl* i = tuple.impl();
  if (i == nullptr || i->state != detail::TupleImpl::kPending) return;
  i->state = detail::TupleImpl::kAcked;
  if (i->stream == tick_info_) return;
  ++t->counts.acked;
  for (const auto& [root, edge] : i->roots) acker_.Ack(root, edge ^ i->ack_val);
}

void LocalCluster::Runtime::Fail(Task* t, const Tuple& tuple) {
  detail::TupleImpl* i = tuple.impl();
  if (i == nullptr || i->state != detail::TupleImpl::kPending) return;
  i->state = detail::TupleImpl::kFailed;
  if (i->stream == tick_info_) return;
  ++t->counts.failed;
  for (const auto& [root, unused] : i->roots) acker_.Fail(root);
}

void LocalCluster::Runtime::Post(Task* t, std::function<void()> fn) {
  {
    absl::MutexLock l(&t->posted_mu);
    t->posted.push_back(std::move(fn));
  }
  t->posted_count.fetch_add(1, std::memory_order_acq_rel);
  Notify(t);
}

void LocalCluster::Runtime::Complete(const internal::Acker::Completion& c) {
  Task* t = tasks_[c.spout_task].get();
  {
    absl::MutexLock l(&t->inbox_mu);
    t->inbox.push_back(c);
  }
  Notify(t);
}

// ---- Running tasks ----

void LocalCluster::Runtime::LogException(Task* t, const char* where, const char* what) {
  ++t->counts.exceptions;
  uint64_t n = t->exception_log_count++;
  if (n < 10 || n % 1000 == 0) {
    spdlog::warn("streams: topology '{}' component '{}' task {}: exception from {}: {}", name_,
                 t->comp->name, t->id, where, what);
  }
}

void LocalCluster::Runtime::Publish(Task* t) {
  ComponentRt* c = t->comp;
  LocalCounts& k = t->counts;
  auto add = [](uint64_t n, std::atomic<uint64_t>* total, metrics::Counter* counter) {
    if (n == 0) return;
    total->fetch_add(n, std::memory_order_relaxed);
    if (counter != nullptr) counter->Inc(static_cast<double>(n));
  };
  add(k.emitted, &c->emitted, c->m_emitted);
  add(k.executed, &c->executed, c->m_executed);
  add(k.acked, &c->acked, c->m_acked);
  add(k.failed, &c->failed, c->m_failed);
  add(k.exceptions, &c->exceptions, c->m_exceptions);
  add(k.dropped, &c->dropped, nullptr);
  k = LocalCounts{};
  double depth = static_cast<double>(t->depth.load(std::memory_order_relaxed));
  if (depth != t->reported_depth) {
    c->m_depth->Add(depth - t->reported_depth);
    t->reported_depth = depth;
  }
}

bool LocalCluster::Runtime::RunBolt(Task* t) {
  if (t->posted_count.load(std::memory_order_acquire) > 0) {
    std::vector<std::function<void()>> posted;
    {
      absl::MutexLock l(&t->posted_mu);
      posted.swap(t->posted);
    }
    for (auto& fn : posted) {
      try {
        fn();
      } catch (const std::exception& e) {
        LogException(t, "posted work", e.what());
      } catch (...) {
        LogException(t, "posted work", "non-standard exception");
      }
    }
    t->posted_count.fetch_sub(static_cast<int64_t>(posted.size()), std::memory_order_acq_rel);
  }
  auto& batch = t->batch;
  batch.clear();
  size_t remaining;
  {
    absl::MutexLock l(&t->mu);
    size_t n = std::min(t->queue.size(), kInBatch);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(t->queue.front()));
      t->queue.pop_front();
    }
    remaining = t->queue.size();
    t->depth.store(remaining, std::memory_order_relaxed);
    if (t->space_waiters > 0) t->space.SignalAll();
  }
  ComponentRt* c = t->comp;
  for (Tuple& tuple : batch) {
    auto start = Clock::now();
    try {
      t->bolt->execute(tuple);
    } catch (const std::exception& e) {
      LogException(t, "execute", e.what());
      Fail(t, tuple);
    } catch (...) {
      LogException(t, "execute", "non-standard exception");
      Fail(t, tuple);
    }
    c->m_latency->Observe(std::chrono::duration<double>(Clock::now() - start).count());
  }
  t->counts.executed += batch.size();
  const auto done = static_cast<int64_t>(batch.size());
  batch.clear();  // drop references before the hand-over may block
  FlushAll(t);
  Publish(t);
  in_flight_.fetch_sub(done, std::memory_order_acq_rel);
  return remaining > 0;
}

bool LocalCluster::Runtime::RunSpout(Task* t) {
  std::vector<internal::Acker::Completion> inbox;
  {
    absl::MutexLock l(&t->inbox_mu);
    inbox.swap(t->inbox);
  }
  auto run_acks = [&] {
    for (MessageId id : t->ack_now) {
      ++t->counts.acked;
      try {
        t->spout->ack(id);
      } catch (const std::exception& e) {
        LogException(t, "ack", e.what());
      }
    }
    t->ack_now.clear();
  };
  for (const auto& c : inbox) {
    --t->pending;
    try {
      if (c.ok) {
        ++t->counts.acked;
        t->spout->ack(c.message_id);
      } else {
        ++t->counts.failed;
        t->spout->fail(c.message_id);
      }
    } catch (const std::exception& e) {
      LogException(t, c.ok ? "ack" : "fail", e.what());
    }
  }
  run_acks();
  bool more = false;
  if (spouts_active_.load(std::memory_order_relaxed)) {
    const int max_pending = config_.acking ? config_.max_spout_pending : 0;
    int calls = 0;
    for (;;) {
      if (max_pending > 0 && t->pending >= max_pending) break;  // an ack notifies us
      if (calls == kSpoutCalls) {
        more = true;
        break;
      }
      t->emits_this_call = 0;
      try {
        t->spout->next_tuple();
      } catch (const std::exception& e) {
        LogException(t, "next_tuple", e.what());
      }
      ++calls;
      run_acks();
      if (t->emits_this_call == 0) break;  // idle: the timer wakes us
    }
  }
  FlushAll(t);
  Publish(t);
  return more;
}

// ---- Stopping ----

bool LocalCluster::Runtime::Quiet() {
  if (in_flight_.load() != 0) return false;
  if (config_.acking && acker_.size() != 0) return false;
  for (auto& t : tasks_) {
    if (t->sched.load() != kIdle) return false;
    if (t->posted_count.load() != 0) return false;
    if (t->spout) {
      absl::MutexLock l(&t->inbox_mu);
      if (!t->inbox.empty()) return false;
    }
  }
  return true;
}

absl::Status LocalCluster::Runtime::Stop(std::chrono::milliseconds drain_timeout) {
  if (!started_ || stopped_) return absl::OkStatus();
  spouts_active_ = false;
  // Ticks go on while draining: windowed bolts need them to move their
  // watermarks past the tuples they hold, which are acked only then.
  auto deadline = Clock::now() + drain_timeout;
  bool drained = false;
  int quiet_polls = 0;
  while (true) {
    // Quiet twice in a row, a poll apart, so that work being handed between
    // two checks (acker -> spout inbox) is not missed.
    quiet_polls = Quiet() ? quiet_polls + 1 : 0;
    if (quiet_polls >= 2) {
      drained = true;
      break;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ticks_on_ = false;
  {
    absl::MutexLock l(&run_mu_);
    halt_ = true;
    run_cv_.SignalAll();
  }
  for (auto& w : workers_) w.join();
  workers_.clear();
  {
    absl::MutexLock l(&timer_mu_);
    timer_stop_ = true;
  }
  timer_.join();
  for (auto& t : tasks_) {
    try {
      if (t->spout) {
        t->spout->close();
      } else {
        t->bolt->cleanup();
      }
    } catch (const std::exception& e) {
      LogException(t.get(), t->spout ? "close" : "cleanup", e.what());
    }
    absl::MutexLock l(&t->mu);
    t->queue.clear();
    t->depth.store(0);
  }
  for (auto& t : tasks_) Publish(t.get());
  acker_.Clear();
  stopped_ = true;
  if (!drained) {
    return absl::DeadlineExceededError(
        absl::StrCat("topology '", name_, "' did not drain within ", drain_timeout.count(), " ms"));
  }
  return absl::OkStatus();
}

ComponentStats LocalCluster::Runtime::Stats(const std::string& component) const {
  ComponentStats s;
  for (const auto& c : components_) {
    if (c->name != component) continue;
    s.emitted = c->emitted.load();
    s.executed = c->executed.load();
    s.acked = c->acked.load();
    s.failed = c->failed.load();
    s.exceptions = c->exceptions.load();
    s.dropped = c->dropped.load();
    for (int i = 0; i < c->num_tasks; ++i) s.queue_depth += tasks_[c->first_task + i]->depth.load();
  }
  return s;
}

// ---- LocalCluster ----

LocalCluster::LocalCluster(LocalClusterOptions options) : options_(options) {
  if (options_.threads <= 0) {
    options_.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
}

LocalCluster::~LocalCluster() {
  if (runtime_ && runtime_->running()) (void)runtime_->Stop(std::chrono::seconds(10));
}

absl::Status LocalCluster::Submit(const std::string& name, const Config& config,
                                  const Topology& topology) {
  if (runtime_ && runtime_->running()) {
    return absl::FailedPreconditionError("a topology is already running in this LocalCluster");
  }
  auto rt = std::make_unique<Runtime>(name, config, options_.threads);
  absl::Status s = rt->Init(topology);
  if (!s.ok()) return s;
  runtime_ = std::move(rt);
  runtime_->Start();
  return absl::OkStatus();
}

absl::Status LocalCluster::Stop(std::chrono::milliseconds drain_timeout) {
  if (!runtime_) return absl::OkStatus();
  return runtime_->Stop(drain_timeout);
}

bool LocalCluster::running() const { return runtime_ && runtime_->running(); }

ComponentStats LocalCluster::Stats(const std::string& component) const {
  return runtime_ ? runtime_->Stats(component) : ComponentStats{};
}

size_t LocalCluster::PendingTrees() const { return runtime_ ? runtime_->PendingTrees() : 0; }

}  // namespace brook::streams
