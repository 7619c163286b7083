// KeyValueState (changelogged keyed state of a bolt task) and the in-memory
// changelog backend.
#include "brook/streams/state.h"

#include <atomic>
#include <charconv>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "brook/streams/topology.h"
#include "spdlog/spdlog.h"

namespace brook::streams {

std::string ChangelogTopic(const StateId& id) {
  if (id.name.empty()) return absl::StrCat(id.topology, "-", id.component, "-changelog");
  return absl::StrCat(id.topology, "-", id.component, "-", id.name, "-changelog");
}

// ---- MemoryStateBackend ----

struct MemoryStateBackend::Log {
  absl::Mutex mu;
  std::vector<std::pair<std::string, std::optional<std::string>>> updates ABSL_GUARDED_BY(mu);
};

namespace {

class MemoryChangelog : public Changelog {
 public:
  MemoryChangelog(std::shared_ptr<MemoryStateBackend::Log> log,
                  std::shared_ptr<std::atomic<bool>> fail)
      : log_(std::move(log)), fail_(std::move(fail)) {}

  absl::Status Replay(const Visitor& fn) override {
    std::vector<std::pair<std::string, std::optional<std::string>>> copy;
    {
      absl::MutexLock l(&log_->mu);
      copy = log_->updates;
    }
    for (const auto& [k, v] : copy) fn(k, v);
    return absl::OkStatus();
  }

  void Append(std::string key, std::optional<std::string> value,
              std::function<void(const absl::Status&)> done) override {
    if (fail_->load()) {
      done(absl::UnavailableError("memory changelog: appends are set to fail"));
      return;
    }
    {
      absl::MutexLock l(&log_->mu);
      log_->updates.emplace_back(std::move(key), std::move(value));
    }
    done(absl::OkStatus());
  }

  absl::Status Flush(std::chrono::milliseconds) override { return absl::OkStatus(); }

 private:
  std::shared_ptr<MemoryStateBackend::Log> log_;
  std::shared_ptr<std::atomic<bool>> fail_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Changelog>> MemoryStateBackend::Open(const StateId& id) {
  absl::MutexLock l(&mu_);
  auto& log = logs_[{ChangelogTopic(id), id.task_index}];
  if (!log) log = std::make_shared<Log>();
  return std::unique_ptr<Changelog>(std::make_unique<MemoryChangelog>(log, fail_));
}

size_t MemoryStateBackend::Size(const StateId& id) const {
  absl::MutexLock l(&mu_);
  auto it = logs_.find({ChangelogTopic(id), id.task_index});
  if (it == logs_.end()) return 0;
  absl::MutexLock ll(&it->second->mu);
  return it->second->updates.size();
}

void MemoryStateBackend::set_fail_appends(bool fail) { fail_->store(fail); }

// ---- KeyValueState ----

absl::StatusOr<std::unique_ptr<KeyValueState>> KeyValueState::Open(const TopologyContext& context,
                                                                   OutputCollector* collector,
                                                                   const std::string& name) {
  const std::shared_ptr<StateBackend>& backend = context.config().state_backend;
  if (!backend) {
    return absl::FailedPreconditionError(
        absl::StrCat("component '", context.component(),
                     "' opens keyed state but Config::state_backend is not set"));
  }
  StateId id;
  id.topology = context.topology();
  id.component = context.component();
  id.name = name;
  id.task_index = context.task_index();
  id.num_tasks = static_cast<int>(context.component_tasks(context.component()).size());
  if (id.num_tasks < 1) id.num_tasks = 1;
  return Open(*backend, id, collector);
}

absl::StatusOr<std::unique_ptr<KeyValueState>> KeyValueState::Open(StateBackend& backend,
                                                                   const StateId& id,
                                                                   OutputCollector* collector) {
  absl::StatusOr<std::unique_ptr<Changelog>> log = backend.Open(id);
  if (!log.ok()) return log.status();
  std::unique_ptr<KeyValueState> state(new KeyValueState(std::move(*log), collector));
  absl::Status s =
      state->log_->Replay([&](const std::string& key, const std::optional<std::string>& value) {
        ++state->restored_;
        if (value.has_value()) {
          state->map_.insert_or_assign(key, *value);
        } else {
          state->map_.erase(key);
        }
      });
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("restoring ", ChangelogTopic(id), " partition ",
                                               id.task_index, ": ", s.message()));
  }
  return state;
}

KeyValueState::KeyValueState(std::unique_ptr<Changelog> log, OutputCollector* collector)
    : log_(std::move(log)), collector_(collector) {}

KeyValueState::~KeyValueState() {
  {
    absl::MutexLock l(&mu_);
    closing_ = true;
  }
  absl::Status s = log_->Flush(std::chrono::seconds(30));
  if (!s.ok()) spdlog::warn("streams: keyed state: changelog flush on close: {}", s.ToString());
  log_.reset();  // no callback runs after this
}

const std::string* KeyValueState::Get(std::string_view key) const {
  auto it = map_.find(absl::string_view(key.data(), key.size()));
  return it == map_.end() ? nullptr : &it->second;
}

std::optional<int64_t> KeyValueState::GetInt64(std::string_view key) const {
  const std::string* v = Get(key);
  if (v == nullptr) return std::nullopt;
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || ptr != v->data() + v->size()) {
    throw std::invalid_argument(
        absl::StrCat("keyed state: value of '", std::string(key), "' is not an int64"));
  }
  return out;
}

void KeyValueState::Put(const std::string& key, std::string value) {
  map_.insert_or_assign(key, value);
  Append(key, std::move(value));
}

void KeyValueState::PutInt64(const std::string& key, int64_t value) {
  Put(key, std::to_string(value));
}

int64_t KeyValueState::Increment(const std::string& key, int64_t delta) {
  int64_t v = GetInt64(key).value_or(0) + delta;
  PutInt64(key, v);
  return v;
}

void KeyValueState::Remove(const std::string& key) {
  map_.erase(key);
  Append(key, std::nullopt);
}

void KeyValueState::Append(const std::string& key, std::optional<std::string> value) {
  uint64_t seq = issued_.fetch_add(1) + 1;
  log_->Append(key, std::move(value), [this, seq](const absl::Status& s) { OnDone(seq, s); });
}

void KeyValueState::OnDone(uint64_t seq, const absl::Status& s) {
  bool post = false;
  {
    absl::MutexLock l(&mu_);
    if (seq > done_) done_ = seq;
    if (!s.ok()) {
      failed_.push_back(seq);
      if (first_error_.ok()) first_error_ = s;
    }
    if (!closing_ && !release_posted_ && !waiting_.empty() && waiting_.front().first <= done_) {
      release_posted_ = true;
      post = true;
    }
  }
  if (post) collector_->post([this] { Release(); });
}

void KeyValueState::Ack(const Tuple& tuple) {
  bool now = false;
  bool failed = false;
  {
    absl::MutexLock l(&mu_);
    const uint64_t issued = issued_.load();
    if (waiting_.empty() && done_ >= issued) {
      now = true;
      while (!failed_.empty() && failed_.front() <= issued) {
        failed = true;
        failed_.pop_front();
      }
    } else {
      waiting_.emplace_back(issued, tuple);
    }
  }
  if (!now) return;
  if (failed) {
    collector_->fail(tuple);
  } else {
    collector_->ack(tuple);
  }
}

void KeyValueState::Release() {
  std::vector<std::pair<Tuple, bool>> out;
  {
    absl::MutexLock l(&mu_);
    release_posted_ = false;
    while (!waiting_.empty() && waiting_.front().first <= done_) {
      uint64_t seq = waiting_.front().first;
      bool failed = false;
      while (!failed_.empty() && failed_.front() <= seq) {
        failed = true;
        failed_.pop_front();
      }
      out.emplace_back(std::move(waiting_.front().second), failed);
      waiting_.pop_front();
    }
  }
  for (auto& [tuple, failed] : out) {
    if (failed) {
      collector_->fail(tuple);
    } else {
      collector_->ack(tuple);
    }
  }
}

absl::Status KeyValueState::Flush(std::chrono::milliseconds timeout) {
  absl::Status s = log_->Flush(timeout);
  absl::MutexLock l(&mu_);
  absl::Status e = std::move(first_error_);
  first_error_ = absl::OkStatus();
  if (!s.ok()) return s;
  return e;
}

uint64_t KeyValueState::pending_updates() const {
  absl::MutexLock l(&mu_);
  return issued_.load() - done_;
}

}  // namespace brook::streams
