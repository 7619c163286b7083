// Helpers for the group consumer integration tests: a consumer driven by its
// own thread (GroupWorker: Poll in a loop, recording records, rebalance
// events, assignment and membership for the test thread to inspect), a
// waiting helper and topic/producer setup against one brook-server.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"

namespace brook::testing {

using Parts = std::vector<client::TopicPartition>;

// Polls `pred` every 20 ms until it holds or `timeout` passes.
inline bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

struct RebalanceEvent {
  enum Kind { kAssigned, kRevoked, kLost } kind;
  Parts parts;
};

// A consumer used only by its own thread; the accessors are thread-safe
// snapshots. `subscribe` runs on the worker thread with the worker's
// listener.
class GroupWorker {
 public:
  using SubscribeFn = std::function<absl::Status(client::Consumer&, client::RebalanceListener*)>;

  GroupWorker(client::ConsumerConfig config, SubscribeFn subscribe)
      : listener_(this), thread_([this, config = std::move(config), subscribe = std::move(subscribe)] {
          Run(config, subscribe);
        }) {}
  ~GroupWorker() { Stop(); }

  // Closes the consumer (commit, revoke, leave) on its thread and joins.
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Runs `fn` on the worker thread between two polls and waits for it.
  void Run(std::function<void(client::Consumer&)> fn) {
    std::atomic<bool> done{false};
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back([&](client::Consumer& c) {
        fn(c);
        done = true;
      });
    }
    while (!done && !exited_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  // Queues `fn` to run on the worker thread between two polls; no wait.
  void Post(std::function<void(client::Consumer&)> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(fn));
  }

  Parts Assignment() const {
    std::lock_guard<std::mutex> lock(mu_);
    return assignment_;
  }
  client::GroupMembership Membership() const {
    std::lock_guard<std::mutex> lock(mu_);
    return membership_;
  }
  std::vector<client::ConsumerRecord> Records() const {
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }
  size_t RecordCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    return records_.size();
  }
  std::vector<RebalanceEvent> Events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  absl::Status error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  class Listener : public client::RebalanceListener {
   public:
    explicit Listener(GroupWorker* w) : w_(w) {}
    void OnPartitionsRevoked(const Parts& p) override { w_->Record(RebalanceEvent::kRevoked, p); }
    void OnPartitionsAssigned(const Parts& p) override { w_->Record(RebalanceEvent::kAssigned, p); }
    void OnPartitionsLost(const Parts& p) override { w_->Record(RebalanceEvent::kLost, p); }

   private:
    GroupWorker* w_;
  };

  void Record(RebalanceEvent::Kind kind, const Parts& parts) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(RebalanceEvent{kind, parts});
  }

  void Run(const client::ConsumerConfig& config, const SubscribeFn& subscribe) {
    auto consumer = client::Consumer::Create(config);
    if (!consumer.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = consumer.status();
      exited_ = true;
      return;
    }
    if (auto s = subscribe(**consumer, &listener_); !s.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = s;
      exited_ = true;
      return;
    }
    while (!stop_) {
      auto records = (*consumer)->Poll(std::chrono::milliseconds(100));
      std::deque<std::function<void(client::Consumer&)>> tasks;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (!records.ok()) {
          error_ = records.status();
        } else {
          for (auto& r : *records) records_.push_back(std::move(r));
        }
        assignment_ = (*consumer)->Assignment();
        membership_ = (*consumer)->Membership();
        tasks.swap(tasks_);
      }
      for (auto& t : tasks) t(**consumer);
    }
    (*consumer)->Close();
    exited_ = true;
  }

  mutable std::mutex mu_;
  Listener listener_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> exited_{false};
  std::deque<std::function<void(client::Consumer&)>> tasks_;
  Parts assignment_;
  client::GroupMembership membership_;
  std::vector<client::ConsumerRecord> records_;
  std::vector<RebalanceEvent> events_;
  absl::Status error_;
  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace brook::testing
