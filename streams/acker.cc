// The XOR acker and tuple-id generation.
#include "streams/acker.h"

#include <random>
#include <thread>
#include <vector>

namespace brook::streams::internal {

uint64_t NextTupleId() {
  // splitmix64 over a per-thread random seed.
  thread_local uint64_t state = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           std::hash<std::thread::id>()(std::this_thread::get_id());
  }();
  for (;;) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    if (z != 0) return z;
  }
}

void Acker::Init(uint64_t root, uint64_t xor_val, int spout_task, MessageId id,
                 Clock::time_point deadline) {
  Shard& s = ShardOf(root);
  live_.fetch_add(1, std::memory_order_acq_rel);
  absl::MutexLock l(&s.mu);
  s.entries[root] = Entry{xor_val, spout_task, id, deadline};
}

void Acker::Ack(uint64_t root, uint64_t xor_val) {
  Shard& s = ShardOf(root);
  Completion c;
  {
    absl::MutexLock l(&s.mu);
    auto it = s.entries.find(root);
    if (it == s.entries.end()) return;
    it->second.val ^= xor_val;
    if (it->second.val != 0) return;
    c = Completion{it->second.spout_task, it->second.message_id, true};
    s.entries.erase(it);
  }
  Finish(c);
}

void Acker::Fail(uint64_t root) {
  Shard& s = ShardOf(root);
  Completion c;
  {
    absl::MutexLock l(&s.mu);
    auto it = s.entries.find(root);
    if (it == s.entries.end()) return;
    c = Completion{it->second.spout_task, it->second.message_id, false};
    s.entries.erase(it);
  }
  Finish(c);
}

size_t Acker::Expire(Clock::time_point now) {
  std::vector<Completion> expired;
  for (Shard& s : shards_) {
    absl::MutexLock l(&s.mu);
    for (auto it = s.entries.begin(); it != s.entries.end();) {
      if (it->second.deadline < now) {
        expired.push_back(Completion{it->second.spout_task, it->second.message_id, false});
        s.entries.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (const auto& c : expired) Finish(c);
  return expired.size();
}

void Acker::Clear() {
  for (Shard& s : shards_) {
    absl::MutexLock l(&s.mu);
    live_.fetch_sub(static_cast<int64_t>(s.entries.size()), std::memory_order_acq_rel);
    s.entries.clear();
  }
}

void Acker::Finish(const Completion& c) {
  sink_(c);
  live_.fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace brook::streams::internal
