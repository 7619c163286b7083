// TopicStateBackend: keyed-state changelogs on Brook topics. Each changelog
// has its own Producer (appends) and, while restoring, a Consumer without a
// group reading its partition from the start to the end seen at open.
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/streams/topic.h"
#include "spdlog/spdlog.h"

namespace brook::streams {
namespace {

using Clock = std::chrono::steady_clock;

class TopicChangelog : public Changelog {
 public:
  TopicChangelog(const TopicStateOptions& o, std::string topic, int32_t partition,
                 std::unique_ptr<client::Producer> producer)
      : o_(o), topic_(std::move(topic)), partition_(partition), producer_(std::move(producer)) {}

  ~TopicChangelog() override {
    absl::Status s = producer_->Close(std::chrono::seconds(30));
    if (!s.ok()) spdlog::warn("streams: changelog {}: close: {}", topic_, s.ToString());
  }

  absl::Status Replay(const Visitor& fn) override {
    client::ConsumerConfig c;
    c.nameservers = o_.nameservers;
    c.auto_offset_reset = client::OffsetReset::kEarliest;
    c.enable_auto_commit = false;
    auto consumer = client::Consumer::Create(c);
    if (!consumer.ok()) return consumer.status();
    const client::TopicPartition tp{topic_, partition_};
    absl::Status s = (*consumer)->Assign({tp});
    if (s.ok()) s = (*consumer)->SeekToEnd({tp});
    if (!s.ok()) return s;
    auto end = (*consumer)->Position(tp);
    if (!end.ok()) return end.status();
    s = (*consumer)->SeekToBeginning({tp});
    if (!s.ok()) return s;
    auto pos = (*consumer)->Position(tp);
    if (!pos.ok()) return pos.status();
    const auto deadline = Clock::now() + o_.restore_timeout;
    int64_t next = *pos;
    while (next < *end) {
      if (Clock::now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat("restored up to offset ", next, " of ",
                                                        *end, " within the restore timeout"));
      }
      auto records = (*consumer)->Poll(std::chrono::milliseconds(200));
      if (!records.ok()) return records.status();
      for (const auto& r : *records) {
        if (r.offset >= *end) break;
        fn(r.key.value_or(""), r.value);
        next = r.offset + 1;
      }
    }
    (*consumer)->Close();
    return absl::OkStatus();
  }

  void Append(std::string key, std::optional<std::string> value,
              std::function<void(const absl::Status&)> done) override {
    client::ProducerRecord r;
    r.topic = topic_;
    r.partition = partition_;
    r.key = std::move(key);
    r.value = std::move(value);
    producer_->Send(std::move(r),
                    [done = std::move(done)](const absl::StatusOr<client::RecordMetadata>& m) {
                      done(m.status());
                    });
  }

  absl::Status Flush(std::chrono::milliseconds timeout) override {
    return producer_->Flush(timeout);
  }

 private:
  const TopicStateOptions o_;
  const std::string topic_;
  const int32_t partition_;
  std::unique_ptr<client::Producer> producer_;
};

class TopicBackend : public StateBackend {
 public:
  explicit TopicBackend(TopicStateOptions o) : o_(std::move(o)) {}

  absl::StatusOr<std::unique_ptr<Changelog>> Open(const StateId& id) override {
    const std::string topic = ChangelogTopic(id);
    absl::Status s = EnsureTopic(topic, id.num_tasks);
    if (!s.ok()) return s;
    client::ProducerConfig c = o_.producer;
    c.nameservers = o_.nameservers;
    auto producer = client::Producer::Create(c);
    if (!producer.ok()) return producer.status();
    return std::unique_ptr<Changelog>(
        std::make_unique<TopicChangelog>(o_, topic, id.task_index, std::move(*producer)));
  }

 private:
  // Creates the topic if missing; checks it has a partition per task.
  absl::Status EnsureTopic(const std::string& topic, int num_tasks) {
    absl::MutexLock l(&mu_);
    client::AdminConfig ac;
    ac.nameservers = o_.nameservers;
    auto admin = client::Admin::Create(ac);
    if (!admin.ok()) return admin.status();
    // Create first: describing a topic that does not exist waits for it
    // until the request timeout.
    // Compacted: the cleaner keeps only each key's latest value (or its
    // tombstone, for delete.retention.ms), so restore time stays bounded.
    client::NewTopic t{topic, num_tasks, o_.replication_factor, {{"cleanup.policy", "compact"}}};
    auto info = (*admin)->CreateTopic(t);
    if (absl::IsAlreadyExists(info.status())) info = (*admin)->DescribeTopic(topic);
    if (!info.ok()) {
      return absl::Status(info.status().code(),
                          absl::StrCat("changelog topic ", topic, ": ", info.status().message()));
    }
    if (static_cast<int>(info->partitions.size()) < num_tasks) {
      return absl::FailedPreconditionError(
          absl::StrCat("changelog topic ", topic, " has ", info->partitions.size(),
                       " partitions; the component has ", num_tasks, " tasks"));
    }
    return absl::OkStatus();
  }

  const TopicStateOptions o_;
  absl::Mutex mu_;
};

}  // namespace

std::shared_ptr<StateBackend> TopicStateBackend(TopicStateOptions options) {
  return std::make_shared<TopicBackend>(std::move(options));
}

}  // namespace brook::streams
