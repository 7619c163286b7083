// Spouts and bolts shared by the streams unit tests.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "brook/streams/component.h"
#include "brook/streams/topology.h"

namespace brook::streams::testing {

// Polls `cond` until true or `timeout`; returns the last result.
inline bool WaitFor(const std::function<bool()>& cond,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

// State of a ListSpout, shared with the test. Item i has message id i.
struct ListState {
  std::mutex mu;
  Fields fields{"v"};
  std::vector<Values> items;
  bool with_ids = true;    // emit with message ids
  bool replay = false;     // re-emit failed items
  bool unbounded = false;  // cycle through items forever, ids keep growing
  size_t next = 0;
  std::deque<MessageId> replays;
  std::multiset<MessageId> acked;
  std::multiset<MessageId> failed;
  int emitted = 0;
  int max_pending_seen = 0;
  bool opened = false, closed = false;

  int pending() const {
    return emitted - static_cast<int>(acked.size()) - static_cast<int>(failed.size());
  }
  size_t num_acked() {
    std::lock_guard<std::mutex> l(mu);
    return acked.size();
  }
  size_t num_failed() {
    std::lock_guard<std::mutex> l(mu);
    return failed.size();
  }
};

class ListSpout : public ISpout {
 public:
  explicit ListSpout(std::shared_ptr<ListState> s) : s_(std::move(s)) {}
  void open(const TopologyContext&, SpoutOutputCollector* c) override {
    c_ = c;
    std::lock_guard<std::mutex> l(s_->mu);
    s_->opened = true;
  }
  void next_tuple() override {
    MessageId id;
    Values v;
    {
      std::lock_guard<std::mutex> l(s_->mu);
      if (!s_->replays.empty()) {
        id = s_->replays.front();
        s_->replays.pop_front();
      } else if (s_->next < s_->items.size() || (s_->unbounded && !s_->items.empty())) {
        id = s_->next++;
      } else {
        return;
      }
      v = s_->items[id % s_->items.size()];
      if (s_->with_ids) {
        ++s_->emitted;
        s_->max_pending_seen = std::max(s_->max_pending_seen, s_->pending());
      }
    }
    if (s_->with_ids) {
      c_->emit(std::move(v), id);
    } else {
      c_->emit(std::move(v));
    }
  }
  void ack(MessageId id) override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->acked.insert(id);
  }
  void fail(MessageId id) override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->failed.insert(id);
    if (s_->replay) s_->replays.push_back(id);
  }
  void close() override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->closed = true;
  }
  void declare_outputs(OutputDeclarer& d) override { d.declare(s_->fields); }

 private:
  std::shared_ptr<ListState> s_;
  SpoutOutputCollector* c_ = nullptr;
};

inline SpoutFactory ListSpoutFactory(std::shared_ptr<ListState> s) {
  return [s] { return std::make_unique<ListSpout>(s); };
}

// What a RecordingBolt saw: (task id, tuple values) in arrival order.
struct Recorder {
  std::mutex mu;
  std::vector<std::pair<int, Values>> seen;
  int ticks = 0;
  bool cleaned_up = false;
  size_t size() {
    std::lock_guard<std::mutex> l(mu);
    return seen.size();
  }
};

// Records and acks every tuple; `on_tuple` (optional) runs first and may
// throw, fail or hold the tuple instead (return false: do not ack).
class RecordingBolt : public IBolt {
 public:
  using Hook = std::function<bool(const Tuple&, OutputCollector*)>;
  RecordingBolt(std::shared_ptr<Recorder> r, Hook hook)
      : r_(std::move(r)), hook_(std::move(hook)) {}
  void prepare(const TopologyContext& ctx, OutputCollector* c) override {
    task_ = ctx.task_id();
    c_ = c;
  }
  void execute(const Tuple& t) override {
    if (t.is_tick()) {
      std::lock_guard<std::mutex> l(r_->mu);
      ++r_->ticks;
      return;
    }
    if (hook_ && !hook_(t, c_)) return;
    {
      std::lock_guard<std::mutex> l(r_->mu);
      r_->seen.emplace_back(task_, t.values());
    }
    c_->ack(t);
  }
  void cleanup() override {
    std::lock_guard<std::mutex> l(r_->mu);
    r_->cleaned_up = true;
  }

 private:
  std::shared_ptr<Recorder> r_;
  Hook hook_;
  int task_ = -1;
  OutputCollector* c_ = nullptr;
};

inline BoltFactory RecordingBoltFactory(std::shared_ptr<Recorder> r,
                                        RecordingBolt::Hook hook = nullptr) {
  return [r, hook] { return std::make_unique<RecordingBolt>(r, hook); };
}

}  // namespace brook::streams::testing
