// The XOR acker (Storm's scheme). Each tracked spout tuple is the root of a
// tuple tree; the acker keeps, per root, the XOR of the ids of the tree's
// edges that are not yet acked. Every edge id enters the XOR twice (once when
// the tuple is emitted, once when it is acked), so the value returns to 0
// exactly when the whole tree is processed (with probability 1 - 2^-64).
// Thread-safe; sharded by root id so that tasks rarely contend.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "brook/streams/component.h"

namespace brook::streams::internal {

// A fresh random 64-bit id, never 0. Thread-safe (thread-local generator).
uint64_t NextTupleId();

class Acker {
 public:
  using Clock = std::chrono::steady_clock;
  struct Completion {
    int spout_task;
    MessageId message_id;
    bool ok;  // false: failed or timed out
  };
  // Called exactly once per root when its tree completes, fails or times
  // out; called without any acker lock held, on the thread that caused it.
  using Sink = std::function<void(const Completion&)>;

  explicit Acker(Sink sink) : sink_(std::move(sink)) {}

  // Starts tracking `root`, whose first-level edges XOR to `xor_val` (!= 0).
  void Init(uint64_t root, uint64_t xor_val, int spout_task, MessageId id,
            Clock::time_point deadline);
  // XORs `xor_val` into the root's value; completes the tree at 0. Unknown
  // roots (already failed or timed out) are ignored.
  void Ack(uint64_t root, uint64_t xor_val);
  // Fails the tree now. Unknown roots are ignored.
  void Fail(uint64_t root);
  // Fails every tree whose deadline is before `now`. Returns how many.
  size_t Expire(Clock::time_point now);
  // Forgets everything without calling the sink.
  void Clear();
  // Trees being tracked (a tree stays counted until its sink call returned).
  size_t size() const { return static_cast<size_t>(live_.load(std::memory_order_acquire)); }

 private:
  struct Entry {
    uint64_t val;
    int spout_task;
    MessageId message_id;
    Clock::time_point deadline;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<uint64_t, Entry> entries ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 32;
  Shard& ShardOf(uint64_t root) { return shards_[(root >> 7) % kShards]; }
  void Finish(const Completion& c);

  Sink sink_;
  std::array<Shard, kShards> shards_;
  std::atomic<int64_t> live_{0};
};

}  // namespace brook::streams::internal
