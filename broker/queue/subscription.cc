// The queue subscription state machine (see subscription.h).
#include "broker/queue/subscription.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "common/check.h"

namespace brook::queue {

QueueConfig QueueConfig::FromProto(const proto::QueueSubscriptionConfig& p,
                                   const std::string& group) {
  QueueConfig c;
  c.ack_timeout_ms = p.ack_timeout_ms() > 0 ? p.ack_timeout_ms() : 30000;
  c.max_deliveries = std::max(p.max_deliveries(), 0);
  c.filter = p.filter();
  c.key_ordered = p.key_ordered();
  c.backoff_initial_ms = p.backoff_initial_ms() > 0 ? p.backoff_initial_ms() : 1000;
  c.backoff_max_ms = p.backoff_max_ms() > 0 ? p.backoff_max_ms() : 60000;
  if (c.backoff_max_ms < c.backoff_initial_ms) c.backoff_max_ms = c.backoff_initial_ms;
  c.dead_letter_topic = p.dead_letter_topic().empty() ? group + "-dlq" : p.dead_letter_topic();
  c.start_earliest = p.start_earliest();
  return c;
}

Subscription::Subscription(QueueConfig config, TagFilter filter, int64_t floor,
                           SubscriptionLimits limits)
    : config_(std::move(config)),
      filter_(std::move(filter)),
      limits_(limits),
      floor_(floor),
      read_offset_(floor) {}

void Subscription::SetConfig(QueueConfig config, TagFilter filter) {
  config_ = std::move(config);
  filter_ = std::move(filter);
}

int64_t Subscription::Backoff(int32_t count) const {
  int64_t d = config_.backoff_initial_ms;
  for (int32_t i = 1; i < count && d < config_.backoff_max_ms; ++i) d *= 2;
  return std::min<int64_t>(d, config_.backoff_max_ms);
}

// ---- handled ranges and the floor ----

bool Subscription::IsHandled(int64_t offset) const {
  if (offset < floor_) return true;
  auto it = handled_.upper_bound(offset);
  if (it == handled_.begin()) return false;
  --it;
  return offset < it->second;
}

void Subscription::MarkHandled(int64_t start, int64_t end, HandledKind kind, bool emit) {
  if (start >= end) return;
  switch (kind) {
    case HandledKind::kAcked: stats_.acked += end - start; break;
    case HandledKind::kFiltered: stats_.filtered += end - start; break;
    case HandledKind::kDeadLettered: stats_.dead_lettered += end - start; break;
    case HandledKind::kSkipped: break;
  }
  if (emit && kind != HandledKind::kSkipped) {
    JournalEvent e;
    e.type = JournalEvent::Type::kHandled;
    e.offset = start;
    e.end = end;
    e.kind = kind;
    Emit(e);
  }
  int64_t s = std::max(start, floor_);
  int64_t t = end;
  if (s >= t) return;
  auto it = handled_.upper_bound(s);
  if (it != handled_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= s) {
      s = prev->first;
      t = std::max(t, prev->second);
      it = handled_.erase(prev);
    }
  }
  while (it != handled_.end() && it->first <= t) {
    t = std::max(t, it->second);
    it = handled_.erase(it);
  }
  handled_[s] = t;
  AdvanceFloor();
}

void Subscription::AdvanceFloor() {
  while (!handled_.empty() && handled_.begin()->first <= floor_) {
    floor_ = std::max(floor_, handled_.begin()->second);
    handled_.erase(handled_.begin());
  }
  if (read_offset_ < floor_) read_offset_ = floor_;
  restored_counts_.erase(restored_counts_.begin(), restored_counts_.lower_bound(floor_));
}

void Subscription::Emit(const JournalEvent& e) {
  if (e.type == JournalEvent::Type::kHandled && !events_.empty()) {
    JournalEvent& last = events_.back();
    if (last.type == JournalEvent::Type::kHandled && last.kind == e.kind && last.end == e.offset) {
      last.end = e.end;
      return;
    }
  }
  events_.push_back(e);
}

std::vector<JournalEvent> Subscription::DrainEvents() {
  std::vector<JournalEvent> out;
  out.swap(events_);
  return out;
}

// ---- restore ----

void Subscription::Restore(const SubscriptionSnapshot& snapshot) {
  floor_ = snapshot.floor;
  read_offset_ = floor_;
  handled_.clear();
  restored_counts_.clear();
  stats_ = snapshot.stats;
  for (const auto& c : snapshot.counts) restored_counts_[c.offset] = {c.count, c.not_before_ms};
  const SubscriptionStats keep = stats_;
  for (const auto& [s, e] : snapshot.handled) MarkHandled(s, e, HandledKind::kSkipped, false);
  stats_ = keep;
  AdvanceFloor();
}

void Subscription::RestoreEvent(const JournalEvent& e) {
  switch (e.type) {
    case JournalEvent::Type::kHandled:
      MarkHandled(e.offset, e.end, e.kind, /*emit=*/false);
      break;
    case JournalEvent::Type::kDelivery: {
      if (e.offset < floor_) break;
      auto& slot = restored_counts_[e.offset];
      if (e.count > slot.first && e.count > 1) stats_.redeliveries++;
      slot = {e.count, e.not_before_ms};
      break;
    }
    case JournalEvent::Type::kConfig:
      break;
  }
}

SubscriptionSnapshot Subscription::Snapshot() const {
  SubscriptionSnapshot s;
  s.floor = floor_;
  s.stats = stats_;
  for (const auto& [a, b] : handled_) s.handled.emplace_back(a, b);
  for (const auto& [off, e] : entries_) {
    if (e.delivery_count == 0) continue;
    int64_t not_before = 0;  // 0: delivered, in flight
    if (e.state == State::kWaiting) not_before = e.due_ms;
    if (e.state == State::kReady) not_before = 1;  // due at once
    s.counts.push_back({off, e.delivery_count, not_before});
  }
  for (const auto& [off, c] : restored_counts_) {
    if (!entries_.contains(off)) s.counts.push_back({off, c.first, c.second});
  }
  std::sort(s.counts.begin(), s.counts.end(),
            [](const auto& a, const auto& b) { return a.offset < b.offset; });
  return s;
}

// ---- reading ----

bool Subscription::WantsRecords() const {
  return entries_.size() < limits_.max_window && delayed_.size() < limits_.max_delayed;
}

void Subscription::SkipTo(int64_t to) {
  if (to <= read_offset_) return;
  const int64_t from = read_offset_;
  read_offset_ = to;
  // Offsets restored as handled keep their kind; the rest were never there.
  MarkHandled(from, to, HandledKind::kSkipped, false);
}

void Subscription::TruncateBelow(int64_t log_start) {
  if (log_start <= floor_) return;
  while (!entries_.empty() && entries_.begin()->first < log_start) {
    Retire(entries_.begin()->first, HandledKind::kSkipped);
  }
  std::erase_if(delayed_, [&](const Delayed& d) { return d.offset < log_start; });
  std::make_heap(delayed_.begin(), delayed_.end(), std::greater<>());
  if (read_offset_ < log_start) read_offset_ = log_start;
  MarkHandled(floor_, log_start, HandledKind::kSkipped, false);
}

void Subscription::AddRecord(const RecordInfo& r, int64_t now) {
  BROOK_CHECK(r.offset >= read_offset_);
  if (r.offset > read_offset_) SkipTo(r.offset);
  read_offset_ = r.offset + 1;
  if (IsHandled(r.offset)) return;
  int32_t count = 0;
  int64_t not_before = 0;
  if (auto it = restored_counts_.find(r.offset); it != restored_counts_.end()) {
    count = it->second.first;
    not_before = it->second.second;
    restored_counts_.erase(it);
  }
  if (!filter_.Matches(r.tags)) {
    MarkHandled(r.offset, r.offset + 1, HandledKind::kFiltered, /*emit=*/true);
    return;
  }
  uint64_t key_hash = r.key.has_value() ? std::hash<std::string_view>()(*r.key) : 0;
  if (count == 0 && r.deliver_at_ms > now) {
    delayed_.push_back(Delayed{r.deliver_at_ms, r.offset, key_hash, r.size, r.key.has_value()});
    std::push_heap(delayed_.begin(), delayed_.end(), std::greater<>());
    return;
  }
  AddToWindow(r.offset, key_hash, r.key.has_value(), r.size, count, not_before, now);
}

void Subscription::AddToWindow(int64_t offset, uint64_t key_hash, bool has_key, uint32_t size,
                               int32_t count, int64_t not_before, int64_t now) {
  Entry& e = entries_[offset];
  e.delivery_count = count;
  e.size = size;
  e.has_key = has_key;
  e.key_hash = key_hash;
  if (has_key) keys_[key_hash].insert(offset);
  if (count > 0 && not_before == 0) {
    // Delivered before a restart: its consumer may still ack it.
    e.state = State::kInFlight;
    SetTimer(offset, e, now + config_.ack_timeout_ms);
  } else if (not_before > now) {
    e.state = State::kWaiting;
    SetTimer(offset, e, not_before);
  } else {
    MakeReady(offset, e);
  }
}

void Subscription::SetTimer(int64_t offset, Entry& e, int64_t due) {
  ClearTimer(offset, e);
  e.due_ms = due;
  e.has_timer = true;
  timers_.insert({due, offset});
}

void Subscription::ClearTimer(int64_t offset, Entry& e) {
  if (!e.has_timer) return;
  timers_.erase({e.due_ms, offset});
  e.has_timer = false;
}

void Subscription::MakeReady(int64_t offset, Entry& e) {
  ClearTimer(offset, e);
  e.state = State::kReady;
  e.consumer.clear();
  ready_.insert(offset);
}

void Subscription::Retire(int64_t offset, HandledKind kind) {
  auto it = entries_.find(offset);
  if (it != entries_.end()) {
    Entry& e = it->second;
    ClearTimer(offset, e);
    ready_.erase(offset);
    dlq_pending_.erase(offset);
    if (e.has_key) {
      auto k = keys_.find(e.key_hash);
      if (k != keys_.end()) {
        k->second.erase(offset);
        if (k->second.empty()) keys_.erase(k);
      }
    }
    entries_.erase(it);
  }
  MarkHandled(offset, offset + 1, kind, /*emit=*/true);
}

void Subscription::StartDeadLetter(int64_t offset, Entry& e, std::string reason) {
  ClearTimer(offset, e);
  ready_.erase(offset);
  e.state = State::kDeadLettering;
  e.dlq_reason = std::move(reason);
  e.dlq_in_progress = false;
  dlq_pending_.insert(offset);
}

// ---- timers ----

void Subscription::Tick(int64_t now) {
  while (!timers_.empty() && timers_.begin()->first <= now) {
    const int64_t offset = timers_.begin()->second;
    timers_.erase(timers_.begin());
    auto it = entries_.find(offset);
    BROOK_CHECK(it != entries_.end());
    Entry& e = it->second;
    e.has_timer = false;
    switch (e.state) {
      case State::kWaiting:
        MakeReady(offset, e);
        break;
      case State::kInFlight:
        if (config_.max_deliveries > 0 && e.delivery_count >= config_.max_deliveries) {
          StartDeadLetter(offset, e, "ack timeout");
        } else {
          e.state = State::kWaiting;
          e.consumer.clear();
          SetTimer(offset, e, now + std::max<int64_t>(Backoff(e.delivery_count), 1));
        }
        break;
      case State::kDeadLettering:
        if (!e.dlq_in_progress) dlq_pending_.insert(offset);
        break;
      case State::kReady:
        break;
    }
  }
  while (!delayed_.empty() && delayed_.front().at <= now && entries_.size() < limits_.max_window) {
    std::pop_heap(delayed_.begin(), delayed_.end(), std::greater<>());
    Delayed d = delayed_.back();
    delayed_.pop_back();
    AddToWindow(d.offset, d.key_hash, d.has_key, d.size, 0, 0, now);
  }
}

std::optional<int64_t> Subscription::NextDue() const {
  std::optional<int64_t> due;
  if (!timers_.empty()) due = timers_.begin()->first;
  if (!delayed_.empty() && entries_.size() < limits_.max_window) {
    due = due.has_value() ? std::min(*due, delayed_.front().at) : delayed_.front().at;
  }
  return due;
}

// ---- delivering ----

bool Subscription::IsKeyHead(int64_t offset, const Entry& e) const {
  auto k = keys_.find(e.key_hash);
  return k == keys_.end() || k->second.empty() || *k->second.begin() == offset;
}

std::vector<Delivery> Subscription::Deliver(const std::string& consumer, int max_records,
                                            int64_t max_bytes, int64_t now) {
  std::vector<Delivery> out;
  int64_t bytes = 0;
  for (auto it = ready_.begin(); it != ready_.end() && static_cast<int>(out.size()) < max_records;) {
    const int64_t offset = *it;
    Entry& e = entries_.at(offset);
    if (config_.key_ordered && e.has_key && !IsKeyHead(offset, e)) {
      ++it;
      continue;
    }
    if (!out.empty() && bytes + e.size > max_bytes) break;
    it = ready_.erase(it);
    bytes += e.size;
    e.state = State::kInFlight;
    e.delivery_count++;
    if (e.delivery_count > 1) stats_.redeliveries++;
    e.consumer = consumer;
    SetTimer(offset, e, now + config_.ack_timeout_ms);
    JournalEvent ev;
    ev.type = JournalEvent::Type::kDelivery;
    ev.offset = offset;
    ev.count = e.delivery_count;
    Emit(ev);
    out.push_back(Delivery{offset, e.delivery_count, e.size});
  }
  return out;
}

void Subscription::SeeConsumer(const std::string& consumer, int64_t now) {
  auto it = consumers_.find(consumer);
  if (it != consumers_.end()) {
    it->second = now;
    return;
  }
  if (consumers_.size() >= limits_.max_consumers) {
    absl::erase_if(consumers_, [&](const auto& kv) { return kv.second < now - config_.ack_timeout_ms; });
    if (consumers_.size() >= limits_.max_consumers) return;
  }
  consumers_.emplace(consumer, now);
}

// ---- acknowledging ----

proto::ErrorCode Subscription::Ack(int64_t offset, int32_t delivery_count,
                                   proto::QueueAckType type, int64_t delay_ms, int64_t now) {
  if (IsHandled(offset)) return proto::QUEUE_ALREADY_ACKED;
  if (offset >= read_offset_) return proto::QUEUE_NOT_DELIVERED;
  auto it = entries_.find(offset);
  if (it == entries_.end()) return proto::QUEUE_NOT_DELIVERED;  // delayed, never delivered
  Entry& e = it->second;
  if (e.delivery_count == 0) return proto::QUEUE_NOT_DELIVERED;
  if (e.state != State::kInFlight || e.delivery_count != delivery_count || e.due_ms <= now) {
    return proto::QUEUE_DELIVERY_EXPIRED;
  }
  switch (type) {
    case proto::QUEUE_ACK:
      Retire(offset, HandledKind::kAcked);
      break;
    case proto::QUEUE_NACK: {
      if (config_.max_deliveries > 0 && e.delivery_count >= config_.max_deliveries) {
        StartDeadLetter(offset, e, "nacked");
        break;
      }
      const int64_t delay = delay_ms >= 0 ? delay_ms : Backoff(e.delivery_count);
      JournalEvent ev;
      ev.type = JournalEvent::Type::kDelivery;
      ev.offset = offset;
      ev.count = e.delivery_count;
      ev.not_before_ms = std::max<int64_t>(now + delay, 1);
      Emit(ev);
      if (delay <= 0) {
        MakeReady(offset, e);
      } else {
        e.state = State::kWaiting;
        e.consumer.clear();
        SetTimer(offset, e, now + delay);
      }
      break;
    }
    case proto::QUEUE_RELEASE: {
      e.delivery_count--;
      JournalEvent ev;
      ev.type = JournalEvent::Type::kDelivery;
      ev.offset = offset;
      ev.count = e.delivery_count;
      ev.not_before_ms = std::max<int64_t>(now, 1);
      Emit(ev);
      MakeReady(offset, e);
      break;
    }
    default:
      return proto::INVALID_REQUEST;
  }
  return proto::NONE;
}

// ---- dead-lettering ----

std::vector<DeadLetter> Subscription::TakeDeadLetters() {
  std::vector<DeadLetter> out;
  for (int64_t offset : dlq_pending_) {
    Entry& e = entries_.at(offset);
    e.dlq_in_progress = true;
    out.push_back(DeadLetter{offset, e.delivery_count, e.dlq_reason});
  }
  dlq_pending_.clear();
  return out;
}

void Subscription::DeadLetterDone(int64_t offset, bool ok, int64_t now, int64_t retry_ms) {
  auto it = entries_.find(offset);
  if (it == entries_.end() || it->second.state != State::kDeadLettering) return;
  if (ok) {
    Retire(offset, HandledKind::kDeadLettered);
    return;
  }
  it->second.dlq_in_progress = false;
  SetTimer(offset, it->second, now + retry_ms);
}

// ---- observing ----

size_t Subscription::in_flight() const {
  size_t n = 0;
  for (const auto& [off, e] : entries_) n += e.state == State::kInFlight ? 1 : 0;
  return n;
}

void Subscription::Describe(int64_t now, proto::QueuePartitionState* out) const {
  int64_t in_flight = 0;
  int64_t waiting = 0;
  for (const auto& [off, e] : entries_) {
    if (e.state == State::kInFlight) in_flight++;
    if (e.state == State::kWaiting) waiting++;
  }
  out->set_ack_floor(floor_);
  out->set_read_offset(read_offset_);
  out->set_backlog(static_cast<int64_t>(entries_.size() + delayed_.size()));
  out->set_in_flight(in_flight);
  out->set_delayed(static_cast<int64_t>(delayed_.size()) + waiting);
  out->set_acked(stats_.acked);
  out->set_filtered(stats_.filtered);
  out->set_dead_lettered(stats_.dead_lettered);
  out->set_redeliveries(stats_.redeliveries);
  int32_t consumers = 0;
  for (const auto& [id, seen] : consumers_) consumers += seen >= now - config_.ack_timeout_ms ? 1 : 0;
  out->set_consumers(consumers);
}

}  // namespace brook::queue
