// RecordAccumulator: batching, partition choice, memory bound, flush marks.
#include "producer/accumulator.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/errors.h"
#include "common/murmur2.h"

namespace brook::client {
namespace {

// Waits on `cv` until `deadline` (steady clock); false once it has passed.
bool WaitUntil(absl::CondVar& cv, absl::Mutex* mu, ProducerClock::time_point deadline) {
  const auto now = ProducerClock::now();
  if (now >= deadline) return false;
  cv.WaitWithTimeout(mu, absl::FromChrono(deadline - now));
  return true;
}

}  // namespace

size_t RecordMemory(const ProducerRecord& record) {
  size_t n = kRecordOverheadBytes;
  if (record.key) n += record.key->size();
  if (record.value) n += record.value->size();
  for (const auto& h : record.headers) n += h.key.size() + (h.value ? h.value->size() : 0);
  return n;
}

RecordAccumulator::RecordAccumulator(AccumulatorConfig config, uint32_t seed)
    : config_(std::move(config)), rng_(seed) {}

absl::StatusOr<int32_t> RecordAccumulator::Append(const ProducerRecord& record,
                                                  int64_t timestamp_ms,
                                                  Producer::Callback& callback,
                                                  Clock::time_point now) {
  const size_t mem = RecordMemory(record);
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::FailedPreconditionError("the producer is closed");
  if (mem > config_.buffer_memory) {
    return absl::ResourceExhaustedError(absl::StrCat("a record of ", mem,
                                                     " bytes is larger than buffer_memory (",
                                                     config_.buffer_memory, " bytes)"));
  }
  if (buffered_ + mem > config_.buffer_memory) {
    const auto deadline = Clock::now() + config_.max_block;
    while (!closed_ && buffered_ + mem > config_.buffer_memory) {
      if (!WaitUntil(space_cv_, &mu_, deadline)) break;
    }
    if (closed_) return absl::FailedPreconditionError("the producer is closed");
    if (buffered_ + mem > config_.buffer_memory) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "buffer_memory (", config_.buffer_memory, " bytes) stayed full for max_block (",
          config_.max_block.count(), " ms): records are not being delivered fast enough"));
    }
  }

  auto it = topics_.find(record.topic);
  if (it == topics_.end()) {
    if (!record.partition) {
      return MakeError(proto::UNKNOWN_TOPIC_OR_PARTITION,
                       absl::StrCat("partition count of topic '", record.topic, "' is unknown"));
    }
    it = topics_.try_emplace(record.topic).first;
  }
  TopicState& ts = it->second;
  const bool sticky = !record.partition && !record.key;
  int32_t p = 0;
  if (record.partition) {
    p = *record.partition;
    if (p < 0 || (ts.partition_count > 0 && p >= ts.partition_count)) {
      return absl::InvalidArgumentError(absl::StrCat("partition ", p, " out of range for topic '",
                                                     record.topic, "' of ", ts.partition_count,
                                                     " partitions"));
    }
  } else if (ts.partition_count <= 0) {
    return MakeError(proto::UNKNOWN_TOPIC_OR_PARTITION,
                     absl::StrCat("partition count of topic '", record.topic, "' is unknown"));
  } else if (record.key) {
    p = PartitionForKey(*record.key, ts.partition_count);
  } else {
    if (ts.sticky < 0) ts.sticky = NewSticky(ts, ts.previous_sticky);
    p = ts.sticky;
  }

  auto would_overflow = [&](const PartitionQueue& q) {
    return q.open != nullptr && !q.open->entries.empty() &&
           q.open->size_bytes() + mem > config_.batch_bytes;
  };
  PartitionQueue* q = &QueueFor(ts, record.topic, p);
  if (would_overflow(*q)) {
    CloseOpen(ts, *q);
    if (sticky) {
      // KIP-480: the sticky partition changes when its batch closes.
      p = NewSticky(ts, p);
      q = &QueueFor(ts, record.topic, p);
      if (would_overflow(*q)) CloseOpen(ts, *q);
      ts.sticky = p;
    }
  }
  if (q->open == nullptr) {
    q->open = std::make_unique<ProducerBatch>(TopicPartition{record.topic, p}, next_id_++,
                                              config_.builder_options, now);
    incomplete_.insert(q->open->id);
    work_ = true;
    work_cv_.Signal();
  }
  ProducerBatch& b = *q->open;
  std::optional<std::string_view> key, value;
  if (record.key) key = *record.key;
  if (record.value) value = *record.value;
  if (record.headers.empty()) {
    b.builder->Append(timestamp_ms, key, value);
  } else {
    absl::InlinedVector<HeaderView, 4> headers;
    for (const auto& h : record.headers) {
      HeaderView hv{h.key, std::nullopt};
      if (h.value) hv.value = *h.value;
      headers.push_back(hv);
    }
    b.builder->Append(timestamp_ms, key, value, std::span<const HeaderView>(headers.data(), headers.size()));
  }
  b.entries.push_back(ProducerBatch::Entry{std::move(callback), timestamp_ms});
  b.memory += mem;
  buffered_ += mem;
  if (b.size_bytes() >= config_.batch_bytes) CloseOpen(ts, *q);
  return p;
}

void RecordAccumulator::SetPartitionCount(const std::string& topic, int32_t count) {
  absl::MutexLock lock(&mu_);
  TopicState& ts = topics_[topic];
  ts.partition_count = count;
  if (ts.sticky >= count) ts.sticky = -1;
}

RecordAccumulator::PartitionQueue& RecordAccumulator::QueueFor(TopicState& ts, const std::string&,
                                                               int32_t partition) {
  if (static_cast<size_t>(partition) >= ts.partitions.size()) {
    ts.partitions.resize(partition + 1);
  }
  return ts.partitions[partition];
}

RecordAccumulator::PartitionQueue* RecordAccumulator::FindQueue(const TopicPartition& tp) {
  auto it = topics_.find(tp.topic);
  if (it == topics_.end() || tp.partition < 0 ||
      static_cast<size_t>(tp.partition) >= it->second.partitions.size()) {
    return nullptr;
  }
  return &it->second.partitions[tp.partition];
}

void RecordAccumulator::CloseOpen(TopicState& ts, PartitionQueue& q) {
  if (q.open == nullptr) return;
  if (q.open->tp.partition == ts.sticky) {
    ts.previous_sticky = ts.sticky;
    ts.sticky = -1;
  }
  q.closed.push_back(std::move(q.open));
  work_ = true;
  work_cv_.Signal();
}

int32_t RecordAccumulator::NewSticky(TopicState& ts, int32_t previous) {
  const int32_t n = ts.partition_count;
  if (n <= 1) return 0;
  if (previous < 0 || previous >= n) {
    return std::uniform_int_distribution<int32_t>(0, n - 1)(rng_);
  }
  // Any partition but the previous one.
  const int32_t step = std::uniform_int_distribution<int32_t>(1, n - 1)(rng_);
  return (previous + step) % n;
}

RecordAccumulator::Clock::duration RecordAccumulator::BackoffFor(int attempts) const {
  auto d = config_.retry_backoff;
  for (int i = 1; i < attempts && d < config_.retry_backoff_max; ++i) d *= 2;
  return std::min(d, config_.retry_backoff_max);
}

std::vector<TopicPartition> RecordAccumulator::Ready(Clock::time_point now, Clock::time_point* next) {
  std::vector<TopicPartition> out;
  *next = Clock::time_point::max();
  absl::MutexLock lock(&mu_);
  for (auto& [name, ts] : topics_) {
    for (auto& q : ts.partitions) {
      // While a request is in flight the open batch keeps filling: it goes
      // with the next request anyway.
      if (q.open != nullptr && !q.in_flight) {
        const auto due = q.open->created + config_.linger;
        if (due <= now) {
          CloseOpen(ts, q);
        } else {
          *next = std::min(*next, due);
        }
      }
      if (q.in_flight || q.closed.empty()) continue;
      if (q.retry_at <= now) {
        out.push_back(q.closed.front()->tp);
      } else {
        *next = std::min(*next, q.retry_at);
      }
      *next = std::min(*next, q.closed.front()->created + config_.delivery_timeout);
    }
  }
  return out;
}

std::vector<BatchPtr> RecordAccumulator::Take(const TopicPartition& tp, size_t max_bytes) {
  std::vector<BatchPtr> out;
  absl::MutexLock lock(&mu_);
  PartitionQueue* q = FindQueue(tp);
  if (q == nullptr || q->in_flight) return out;
  size_t total = 0;
  while (!q->closed.empty()) {
    const size_t n = q->closed.front()->size_bytes();
    if (!out.empty() && total + n > max_bytes) break;
    total += n;
    out.push_back(std::move(q->closed.front()));
    q->closed.pop_front();
  }
  if (!out.empty()) q->in_flight = true;
  return out;
}

void RecordAccumulator::Requeue(const TopicPartition& tp, std::vector<BatchPtr> batches,
                                Clock::time_point now, absl::Status error) {
  absl::MutexLock lock(&mu_);
  PartitionQueue* q = FindQueue(tp);
  if (q == nullptr || batches.empty()) return;
  for (auto& b : batches) {
    ++b->attempts;
    b->last_error = error;
  }
  q->retry_at = now + BackoffFor(batches.front()->attempts);
  for (auto it = batches.rbegin(); it != batches.rend(); ++it) q->closed.push_front(std::move(*it));
  q->in_flight = false;
  work_ = true;
  work_cv_.Signal();
}

void RecordAccumulator::Backoff(const TopicPartition& tp, Clock::time_point now, absl::Status error) {
  absl::MutexLock lock(&mu_);
  PartitionQueue* q = FindQueue(tp);
  if (q == nullptr || q->in_flight || q->closed.empty()) return;
  ProducerBatch& head = *q->closed.front();
  ++head.attempts;
  head.last_error = std::move(error);
  q->retry_at = now + BackoffFor(head.attempts);
}

void RecordAccumulator::Complete(const TopicPartition& tp, const std::vector<BatchPtr>& batches) {
  absl::MutexLock lock(&mu_);
  if (PartitionQueue* q = FindQueue(tp)) q->in_flight = false;
  for (const auto& b : batches) {
    buffered_ -= b->memory;
    incomplete_.erase(b->id);
  }
  space_cv_.SignalAll();
  flush_cv_.SignalAll();
  work_ = true;
  work_cv_.Signal();
}

std::vector<BatchPtr> RecordAccumulator::Expired(Clock::time_point now) {
  std::vector<BatchPtr> out;
  absl::MutexLock lock(&mu_);
  for (auto& [name, ts] : topics_) {
    for (auto& q : ts.partitions) {
      if (q.in_flight) continue;
      while (!q.closed.empty() && q.closed.front()->created + config_.delivery_timeout <= now) {
        out.push_back(std::move(q.closed.front()));
        q.closed.pop_front();
      }
    }
  }
  return out;
}

void RecordAccumulator::Release(const std::vector<BatchPtr>& batches) {
  absl::MutexLock lock(&mu_);
  for (const auto& b : batches) {
    buffered_ -= b->memory;
    incomplete_.erase(b->id);
  }
  space_cv_.SignalAll();
  flush_cv_.SignalAll();
}

std::vector<BatchPtr> RecordAccumulator::DrainAll() {
  std::vector<BatchPtr> out;
  absl::MutexLock lock(&mu_);
  for (auto& [name, ts] : topics_) {
    for (auto& q : ts.partitions) {
      if (!q.in_flight) {
        for (auto& b : q.closed) out.push_back(std::move(b));
        q.closed.clear();
      }
      if (q.open != nullptr) out.push_back(std::move(q.open));
    }
  }
  return out;
}

uint64_t RecordAccumulator::BeginFlush() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, ts] : topics_) {
    for (auto& q : ts.partitions) CloseOpen(ts, q);
  }
  work_ = true;
  work_cv_.Signal();
  return next_id_ - 1;
}

bool RecordAccumulator::WaitFlushed(uint64_t mark, Clock::time_point deadline) {
  absl::MutexLock lock(&mu_);
  auto done = [&] { return incomplete_.empty() || *incomplete_.begin() > mark; };
  while (!done()) {
    if (!WaitUntil(flush_cv_, &mu_, deadline)) break;
  }
  return done();
}

void RecordAccumulator::WaitForWork(Clock::time_point until) {
  absl::MutexLock lock(&mu_);
  while (!work_) {
    if (!WaitUntil(work_cv_, &mu_, until)) break;
  }
  work_ = false;
}

void RecordAccumulator::Wake() {
  absl::MutexLock lock(&mu_);
  work_ = true;
  work_cv_.Signal();
}

void RecordAccumulator::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  space_cv_.SignalAll();
}

size_t RecordAccumulator::buffered_bytes() const {
  absl::MutexLock lock(&mu_);
  return buffered_;
}

bool RecordAccumulator::empty() const {
  absl::MutexLock lock(&mu_);
  return incomplete_.empty();
}

}  // namespace brook::client
