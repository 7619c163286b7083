// TopicSpout: one Consumer per spout task in assign mode, emitting a tuple
// per record and committing (standalone, generation -1) only the prefix of
// each partition whose tuple trees are complete.
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "brook/streams/topic.h"
#include "spdlog/spdlog.h"
#include "streams/topic_offsets.h"

namespace brook::streams {
namespace {

using Clock = std::chrono::steady_clock;

class TopicSpoutImpl : public ISpout {
 public:
  explicit TopicSpoutImpl(TopicSpoutOptions o) : o_(std::move(o)) {}

  void open(const TopologyContext& context, SpoutOutputCollector* collector) override {
    collector_ = collector;
    label_ = absl::StrCat("topic spout '", context.component(), "' task ", context.task_index(),
                          " (topic ", o_.topic, ", group ", o_.group_id, ")");
    if (o_.topic.empty()) throw std::invalid_argument("TopicSpout: topic is empty");
    if (o_.group_id.empty()) throw std::invalid_argument("TopicSpout: group_id is empty");
    client::ConsumerConfig c = o_.consumer;
    if (!o_.nameservers.empty()) c.nameservers = o_.nameservers;
    c.group_id = o_.group_id;
    c.auto_offset_reset = o_.auto_offset_reset;
    c.enable_auto_commit = false;
    auto consumer = client::Consumer::Create(c);
    if (!consumer.ok()) Throw("creating the consumer", consumer.status());
    consumer_ = std::move(*consumer);
    auto count = consumer_->PartitionCount(o_.topic);
    if (!count.ok()) Throw("reading the partition count", count.status());
    tasks_ = static_cast<int>(context.component_tasks(context.component()).size());
    task_index_ = context.task_index();
    if (absl::Status s = TakePartitions(*count, /*new_start_at_beginning=*/false); !s.ok()) {
      Throw("assigning partitions", s);
    }
    next_commit_ = Clock::now() + o_.commit_interval;
    next_partition_check_ = Clock::now() + o_.partition_check_interval;
    spdlog::info("streams: {}: reading {} of {} partitions", label_, consumer_->Assignment().size(),
                 *count);
  }

  void next_tuple() override {
    auto now = Clock::now();
    if (o_.partition_check_interval.count() > 0 && now >= next_partition_check_) {
      CheckNewPartitions();
      next_partition_check_ = now + o_.partition_check_interval;
    }
    if (!assigned_) return;
    if (now >= next_commit_) {
      Commit();
      next_commit_ = now + o_.commit_interval;
    }
    if (const client::ConsumerRecord* r = ledger_.NextReplay()) {
      collector_->emit(ToValues(*r), TopicMessageId(r->partition, r->offset));
      return;
    }
    if (buffer_.empty()) {
      auto polled = consumer_->Poll(std::chrono::milliseconds(0));
      if (!polled.ok()) {
        if (poll_errors_++ % 1000 == 0) {
          spdlog::warn("streams: {}: poll: {}", label_, polled.status().ToString());
        }
        return;
      }
      for (auto& r : *polled) buffer_.push_back(std::move(r));
      if (buffer_.empty()) return;
    }
    client::ConsumerRecord r = std::move(buffer_.front());
    buffer_.pop_front();
    Values values = ToValues(r);
    const MessageId id = TopicMessageId(r.partition, r.offset);
    ledger_.Emitted(std::move(r));
    collector_->emit(std::move(values), id);
  }

  void ack(MessageId id) override {
    ledger_.Acked(TopicMessagePartition(id), TopicMessageOffset(id));
  }

  void fail(MessageId id) override {
    const int32_t p = TopicMessagePartition(id);
    const int64_t off = TopicMessageOffset(id);
    if (!ledger_.Failed(p, off, o_.max_replays)) {
      spdlog::error("streams: {}: giving up on partition {} offset {} after {} replays", label_, p,
                    off, o_.max_replays);
    }
  }

  void close() override {
    if (!consumer_) return;
    Commit();
    consumer_->Close();
    consumer_.reset();
  }

  void declare_outputs(OutputDeclarer& d) override { d.declare(TopicSpoutFields()); }

 private:
  // Adds this task's share of partitions known_..count-1 (p % tasks == task
  // index) to the assignment. They start at the group's committed offset;
  // without one, at auto_offset_reset, or at their beginning when
  // `new_start_at_beginning` (partitions added while the spout runs hold
  // only records it has not seen).
  absl::Status TakePartitions(int32_t count, bool new_start_at_beginning) {
    std::vector<client::TopicPartition> added;
    for (int32_t p = known_; p < count; ++p) {
      if (tasks_ > 0 && p % tasks_ == task_index_) added.push_back({o_.topic, p});
    }
    known_ = count;
    if (added.empty()) return absl::OkStatus();
    std::vector<client::TopicPartition> all = consumer_->Assignment();
    all.insert(all.end(), added.begin(), added.end());
    if (absl::Status s = consumer_->Assign(all); !s.ok()) return s;
    if (new_start_at_beginning) {
      auto committed = consumer_->Committed(added);
      if (!committed.ok()) return committed.status();
      std::vector<client::TopicPartition> fresh;
      for (const auto& tp : added) {
        if (committed->count(tp) == 0) fresh.push_back(tp);
      }
      if (!fresh.empty()) {
        if (absl::Status s = consumer_->SeekToBeginning(fresh); !s.ok()) return s;
      }
    }
    for (const auto& tp : added) {
      auto pos = consumer_->Position(tp);
      if (!pos.ok()) {
        return absl::Status(pos.status().code(),
                            absl::StrCat("position of partition ", tp.partition, ": ",
                                         pos.status().message()));
      }
      ledger_.AddPartition(tp.partition, *pos);
    }
    assigned_ = true;
    return absl::OkStatus();
  }

  // Picks up partitions added to the topic since the last look.
  void CheckNewPartitions() {
    auto count = consumer_->PartitionCount(o_.topic);
    if (!count.ok() || *count <= known_) return;
    const int32_t before = known_;
    absl::Status s = TakePartitions(*count, /*new_start_at_beginning=*/true);
    if (!s.ok()) {
      known_ = before;  // try again at the next check
      spdlog::warn("streams: {}: taking new partitions: {}", label_, s.ToString());
      return;
    }
    spdlog::info("streams: {}: the topic grew from {} to {} partitions; now reading {}", label_,
                 before, *count, consumer_->Assignment().size());
  }

  [[noreturn]] void Throw(const std::string& what, const absl::Status& s) {
    throw std::runtime_error(absl::StrCat(label_, ": ", what, ": ", s.ToString()));
  }

  Values ToValues(const client::ConsumerRecord& r) const {
    Values v;
    v.reserve(6);
    if (o_.bytes) {
      v.emplace_back(Bytes{r.key.value_or("")});
      v.emplace_back(Bytes{r.value.value_or("")});
    } else {
      v.emplace_back(r.key.value_or(""));
      v.emplace_back(r.value.value_or(""));
    }
    v.emplace_back(r.topic);
    v.emplace_back(int64_t{r.partition});
    v.emplace_back(r.offset);
    v.emplace_back(r.timestamp_ms);
    return v;
  }

  void Commit() {
    std::map<int32_t, int64_t> to_commit = ledger_.ToCommit();
    if (to_commit.empty()) return;
    std::map<client::TopicPartition, client::OffsetAndMetadata> offsets;
    for (const auto& [p, o] : to_commit) offsets[{o_.topic, p}].offset = o;
    absl::Status s = consumer_->CommitSync(offsets);
    if (s.ok()) {
      ledger_.Committed(to_commit);
      return;
    }
    if (commit_errors_++ % 100 == 0) {
      spdlog::warn("streams: {}: commit: {}", label_, s.ToString());
    }
  }

  const TopicSpoutOptions o_;
  std::string label_;
  SpoutOutputCollector* collector_ = nullptr;
  std::unique_ptr<client::Consumer> consumer_;
  internal::SpoutLedger ledger_;
  std::deque<client::ConsumerRecord> buffer_;  // polled, not yet emitted
  bool assigned_ = false;
  int tasks_ = 0;
  int task_index_ = 0;
  int32_t known_ = 0;  // partitions of the topic looked at so far
  Clock::time_point next_commit_;
  Clock::time_point next_partition_check_;
  uint64_t poll_errors_ = 0;
  uint64_t commit_errors_ = 0;
};

}  // namespace

Fields TopicSpoutFields() {
  return Fields{"key", "value", "topic", "partition", "offset", "timestamp"};
}

SpoutFactory TopicSpout(TopicSpoutOptions options) {
  return [o = std::move(options)] { return std::make_unique<TopicSpoutImpl>(o); };
}

std::string ValueToBytes(const Value& v) {
  switch (v.type()) {
    case Value::Type::kString:
      return v.as_string();
    case Value::Type::kBytes:
      return v.as_bytes().data;
    case Value::Type::kInt64:
      return std::to_string(v.as_int64());
    case Value::Type::kBool:
      return v.as_bool() ? "true" : "false";
    case Value::Type::kDouble: {
      char buf[32];
      int n = std::snprintf(buf, sizeof(buf), "%.17g", v.as_double());
      return std::string(buf, static_cast<size_t>(n));
    }
  }
  return {};
}

}  // namespace brook::streams
