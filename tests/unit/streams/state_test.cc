// Keyed state: restore from the changelog, acks held back until updates are
// durable (and failed when an update fails), and a stateful bolt in a
// LocalCluster whose counts survive a restart of the topology.
#include "brook/streams/state.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "brook/streams/local_cluster.h"
#include "tests/unit/streams/test_components.h"

namespace brook::streams {
namespace {

using namespace std::chrono_literals;
using testing::ListSpoutFactory;
using testing::ListState;
using testing::WaitFor;

// Records acks and fails by field 0; posted work waits for RunPosted.
class TestCollector : public OutputCollector {
 public:
  void emit(const std::string&, std::span<const Tuple>, Values) override {}
  void emit_direct(int, const std::string&, std::span<const Tuple>, Values) override {}
  void ack(const Tuple& t) override { acked.push_back(t.get(0).as_int64()); }
  void fail(const Tuple& t) override { failed.push_back(t.get(0).as_int64()); }
  void post(std::function<void()> fn) override {
    std::lock_guard<std::mutex> l(mu);
    posted.push_back(std::move(fn));
  }
  void RunPosted() {
    std::vector<std::function<void()>> fns;
    {
      std::lock_guard<std::mutex> l(mu);
      fns.swap(posted);
    }
    for (auto& f : fns) f();
  }
  std::mutex mu;
  std::vector<std::function<void()>> posted;
  std::vector<int64_t> acked, failed;
};

Tuple MakeTuple(int64_t v) {
  static auto info =
      std::make_shared<detail::StreamInfo>(detail::StreamInfo{"src", "default", Fields{"v"}});
  auto impl = std::make_shared<detail::TupleImpl>();
  impl->values = {Value(v)};
  impl->stream = info;
  return Tuple(impl);
}

StateId Id(int task = 0, std::string component = "count") {
  StateId id;
  id.topology = "wc";
  id.component = std::move(component);
  id.task_index = task;
  id.num_tasks = 2;
  return id;
}

TEST(KeyValueState, ChangelogTopicName) {
  EXPECT_EQ(ChangelogTopic(Id()), "wc-count-changelog");
  StateId named = Id();
  named.name = "totals";
  EXPECT_EQ(ChangelogTopic(named), "wc-count-totals-changelog");
}

TEST(KeyValueState, RestoresTheLatestValueOfEveryKey) {
  MemoryStateBackend backend;
  TestCollector c;
  {
    auto s = KeyValueState::Open(backend, Id(), &c);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ((*s)->size(), 0u);
    EXPECT_EQ((*s)->restored_updates(), 0u);
    EXPECT_EQ((*s)->Increment("a"), 1);
    EXPECT_EQ((*s)->Increment("a", 4), 5);
    (*s)->Put("b", std::string("x\0y", 3));
    (*s)->PutInt64("gone", 9);
    (*s)->Remove("gone");
    EXPECT_EQ((*s)->Get("gone"), nullptr);
    EXPECT_TRUE((*s)->Flush().ok());
  }
  EXPECT_EQ(backend.Size(Id()), 5u);
  auto s = KeyValueState::Open(backend, Id(), &c);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->restored_updates(), 5u);
  EXPECT_EQ((*s)->size(), 2u);
  EXPECT_EQ((*s)->GetInt64("a"), 5);
  ASSERT_NE((*s)->Get("b"), nullptr);
  EXPECT_EQ(*(*s)->Get("b"), std::string("x\0y", 3));
  EXPECT_EQ((*s)->GetInt64("gone"), std::nullopt);
  EXPECT_THROW((*s)->GetInt64("b"), std::invalid_argument);
  EXPECT_EQ((*s)->Increment("a"), 6);

  // Other tasks and components have their own changelogs.
  auto other = KeyValueState::Open(backend, Id(1), &c);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->size(), 0u);
  auto other_comp = KeyValueState::Open(backend, Id(0, "sum"), &c);
  ASSERT_TRUE(other_comp.ok());
  EXPECT_EQ((*other_comp)->size(), 0u);
}

// A changelog whose appends complete when the test says so.
class ManualBackend : public StateBackend {
 public:
  struct Shared {
    std::mutex mu;
    std::deque<std::function<void(const absl::Status&)>> pending;
  };
  class Log : public Changelog {
   public:
    explicit Log(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
    absl::Status Replay(const Visitor&) override { return absl::OkStatus(); }
    void Append(std::string, std::optional<std::string>,
                std::function<void(const absl::Status&)> done) override {
      std::lock_guard<std::mutex> l(s_->mu);
      s_->pending.push_back(std::move(done));
    }
    absl::Status Flush(std::chrono::milliseconds) override { return absl::OkStatus(); }

   private:
    std::shared_ptr<Shared> s_;
  };
  absl::StatusOr<std::unique_ptr<Changelog>> Open(const StateId&) override {
    return std::unique_ptr<Changelog>(std::make_unique<Log>(shared));
  }
  // Completes the oldest `n` appends with `s`.
  void Complete(size_t n, absl::Status s = absl::OkStatus()) {
    for (size_t i = 0; i < n; ++i) {
      std::function<void(const absl::Status&)> done;
      {
        std::lock_guard<std::mutex> l(shared->mu);
        ASSERT_FALSE(shared->pending.empty());
        done = std::move(shared->pending.front());
        shared->pending.pop_front();
      }
      done(s);
    }
  }
  std::shared_ptr<Shared> shared = std::make_shared<Shared>();
};

TEST(KeyValueState, AcksWaitUntilTheirUpdatesAreDurable) {
  ManualBackend backend;
  TestCollector c;
  auto s = KeyValueState::Open(backend, Id(), &c);
  ASSERT_TRUE(s.ok());
  KeyValueState& st = **s;

  st.Ack(MakeTuple(0));  // nothing pending: acked at once
  EXPECT_EQ(c.acked, (std::vector<int64_t>{0}));

  st.Increment("a");
  st.Ack(MakeTuple(1));
  st.Increment("b");
  st.Increment("c");
  st.Ack(MakeTuple(2));
  st.Ack(MakeTuple(3));  // no update of its own: waits for the earlier ones
  EXPECT_EQ(st.pending_updates(), 3u);
  c.RunPosted();
  EXPECT_EQ(c.acked.size(), 1u);

  backend.Complete(1);
  EXPECT_EQ(c.acked.size(), 1u);  // delivered as posted work, on the task
  c.RunPosted();
  EXPECT_EQ(c.acked, (std::vector<int64_t>{0, 1}));
  backend.Complete(1);
  c.RunPosted();
  EXPECT_EQ(c.acked, (std::vector<int64_t>{0, 1}));  // 2 waits for "c" too
  backend.Complete(1);
  c.RunPosted();
  EXPECT_EQ(c.acked, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(c.failed.empty());
  EXPECT_EQ(st.pending_updates(), 0u);
}

TEST(KeyValueState, AFailedUpdateFailsTheTupleThatMadeIt) {
  ManualBackend backend;
  TestCollector c;
  auto s = KeyValueState::Open(backend, Id(), &c);
  ASSERT_TRUE(s.ok());
  KeyValueState& st = **s;
  st.Increment("a");
  st.Ack(MakeTuple(1));
  st.Increment("b");
  st.Ack(MakeTuple(2));
  st.Ack(MakeTuple(3));
  st.Increment("c");
  st.Ack(MakeTuple(4));
  backend.Complete(1);
  backend.Complete(1, absl::UnavailableError("disk on fire"));
  backend.Complete(1);
  c.RunPosted();
  EXPECT_EQ(c.acked, (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(c.failed, (std::vector<int64_t>{2}));
  absl::Status f = st.Flush();
  EXPECT_TRUE(absl::IsUnavailable(f)) << f;
  EXPECT_TRUE(st.Flush().ok());  // the error is reported once
}

TEST(KeyValueState, OpenWithoutABackendIsRefused) {
  Config config;
  TopologyContext ctx(&config, "count", 0, 0, {{"count", {0}}}, "wc");
  TestCollector c;
  auto s = KeyValueState::Open(ctx, &c);
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status())) << s.status();
}

// Completes appends on a thread of its own, in order, like a producer.
class AsyncBackend : public StateBackend {
 public:
  AsyncBackend() : worker_([this] { Run(); }) {}
  ~AsyncBackend() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  class Log : public Changelog {
   public:
    Log(AsyncBackend* b, std::unique_ptr<Changelog> inner) : b_(b), inner_(std::move(inner)) {}
    absl::Status Replay(const Visitor& fn) override { return inner_->Replay(fn); }
    void Append(std::string key, std::optional<std::string> value,
                std::function<void(const absl::Status&)> done) override {
      std::lock_guard<std::mutex> l(b_->mu_);
      b_->queue_.push_back(
          [this, key = std::move(key), value = std::move(value), done = std::move(done)]() mutable {
            inner_->Append(std::move(key), std::move(value), std::move(done));
          });
      b_->cv_.notify_all();
    }
    absl::Status Flush(std::chrono::milliseconds) override {
      std::unique_lock<std::mutex> l(b_->mu_);
      b_->cv_.wait(l, [&] { return b_->queue_.empty() && !b_->busy_; });
      return absl::OkStatus();
    }

   private:
    AsyncBackend* b_;
    std::unique_ptr<Changelog> inner_;
  };
  absl::StatusOr<std::unique_ptr<Changelog>> Open(const StateId& id) override {
    auto inner = memory.Open(id);
    if (!inner.ok()) return inner.status();
    return std::unique_ptr<Changelog>(std::make_unique<Log>(this, std::move(*inner)));
  }
  MemoryStateBackend memory;

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      l.unlock();
      fn();
      l.lock();
      busy_ = false;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread worker_;
};

// Counts words in keyed state; on cleanup reports its counts.
class StatefulCountBolt : public IBolt {
 public:
  explicit StatefulCountBolt(std::shared_ptr<std::map<std::string, int64_t>> out,
                             std::shared_ptr<std::mutex> mu)
      : out_(std::move(out)), mu_(std::move(mu)) {}
  void prepare(const TopologyContext& ctx, OutputCollector* c) override {
    auto s = KeyValueState::Open(ctx, c);
    if (!s.ok()) throw std::runtime_error(s.status().ToString());
    state_ = std::move(*s);
  }
  void execute(const Tuple& t) override {
    state_->Increment(t.get_string("word"));
    state_->Ack(t);
  }
  void cleanup() override {
    (void)state_->Flush();  // failures show in the counts and the spout's fails
    std::lock_guard<std::mutex> l(*mu_);
    for (const auto& [k, v] : state_->entries()) (*out_)[k] = std::stoll(v);
  }

 private:
  std::shared_ptr<std::map<std::string, int64_t>> out_;
  std::shared_ptr<std::mutex> mu_;
  std::unique_ptr<KeyValueState> state_;
};

TEST(KeyValueState, StatefulBoltKeepsCountsAcrossATopologyRestart) {
  auto backend = std::make_shared<AsyncBackend>();
  auto counts = std::make_shared<std::map<std::string, int64_t>>();
  auto mu = std::make_shared<std::mutex>();
  const std::vector<std::string> words = {"a", "b", "c", "a", "a", "d", "b"};
  std::map<std::string, int64_t> expected;

  for (int run = 0; run < 2; ++run) {
    auto spout = std::make_shared<ListState>();
    spout->fields = Fields{"word"};
    for (int i = 0; i < 700; ++i) {
      spout->items.push_back({Value(words[i % words.size()])});
      ++expected[words[i % words.size()]];
    }
    TopologyBuilder b;
    b.set_spout("words", ListSpoutFactory(spout), 1);
    b.set_bolt(
         "count", [&] { return std::make_unique<StatefulCountBolt>(counts, mu); }, 2)
        .fields_grouping("words", Fields{"word"});
    Config config;
    config.state_backend = backend;
    LocalCluster cluster(LocalClusterOptions{2});
    ASSERT_TRUE(cluster.Submit("wc", config, b.build()).ok());
    ASSERT_TRUE(WaitFor([&] { return spout->num_acked() == 700; }));
    EXPECT_EQ(spout->num_failed(), 0u);
    ASSERT_TRUE(cluster.Stop().ok());
    std::lock_guard<std::mutex> l(*mu);
    EXPECT_EQ(*counts, expected) << "run " << run;
  }
  // Every update reached a changelog partition of one of the two tasks.
  StateId id;
  id.topology = "wc";
  id.component = "count";
  size_t updates = backend->memory.Size(id);
  id.task_index = 1;
  updates += backend->memory.Size(id);
  EXPECT_EQ(updates, 1400u);

  // Without a backend the stateful bolt cannot start.
  auto spout = std::make_shared<ListState>();
  spout->fields = Fields{"word"};
  TopologyBuilder b;
  b.set_spout("words", ListSpoutFactory(spout), 1);
  b.set_bolt(
       "count", [&] { return std::make_unique<StatefulCountBolt>(counts, mu); }, 1)
      .shuffle_grouping("words");
  LocalCluster cluster;
  absl::Status s = cluster.Submit("wc", Config{}, b.build());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("state_backend"), std::string::npos) << s;
}

TEST(KeyValueState, FailedChangelogWritesFailTuplesForReplay) {
  auto backend = std::make_shared<MemoryStateBackend>();
  auto counts = std::make_shared<std::map<std::string, int64_t>>();
  auto mu = std::make_shared<std::mutex>();
  auto spout = std::make_shared<ListState>();
  spout->fields = Fields{"word"};
  for (int i = 0; i < 50; ++i) spout->items.push_back({Value("w")});
  backend->set_fail_appends(true);
  TopologyBuilder b;
  b.set_spout("words", ListSpoutFactory(spout), 1);
  b.set_bolt(
       "count", [&] { return std::make_unique<StatefulCountBolt>(counts, mu); }, 1)
      .shuffle_grouping("words");
  Config config;
  config.state_backend = backend;
  LocalCluster cluster(LocalClusterOptions{1});
  ASSERT_TRUE(cluster.Submit("wc", config, b.build()).ok());
  ASSERT_TRUE(WaitFor([&] { return spout->num_failed() == 50; }));
  EXPECT_EQ(spout->num_acked(), 0u);
  (void)cluster.Stop();
}

}  // namespace
}  // namespace brook::streams
