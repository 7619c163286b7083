// TopicBolt: writes each input tuple as a record with the task's own
// Producer and acks the tuple once the write is acknowledged. Completions
// arrive on the producer's I/O thread; they are queued and handed to the
// bolt's task with OutputCollector::post, one post per batch.
#include <stdexcept>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "brook/streams/topic.h"
#include "spdlog/spdlog.h"

namespace brook::streams {
namespace {

class TopicBoltImpl : public IBolt {
 public:
  explicit TopicBoltImpl(TopicBoltOptions o) : o_(std::move(o)) {}

  ~TopicBoltImpl() override { Shutdown(); }

  void prepare(const TopologyContext& context, OutputCollector* collector) override {
    collector_ = collector;
    label_ = absl::StrCat("topic bolt '", context.component(), "' task ", context.task_index(),
                          " (topic ", o_.topic, ")");
    if (o_.topic.empty()) throw std::invalid_argument("TopicBolt: topic is empty");
    client::ProducerConfig c = o_.producer;
    if (!o_.nameservers.empty()) c.nameservers = o_.nameservers;
    auto producer = client::Producer::Create(c);
    if (!producer.ok()) {
      throw std::runtime_error(
          absl::StrCat(label_, ": creating the producer: ", producer.status().ToString()));
    }
    producer_ = std::move(*producer);
  }

  void execute(const Tuple& input) override {
    if (input.is_tick()) return;
    client::ProducerRecord r;
    r.topic = o_.topic;
    try {
      if (o_.key_fn) {
        r.key = o_.key_fn(input);
      } else if (!o_.key_field.empty()) {
        r.key = ValueToBytes(input.get(o_.key_field));
      }
      if (o_.value_fn) {
        r.value = o_.value_fn(input);
      } else {
        r.value = ValueToBytes(input.get(o_.value_field));
      }
    } catch (const std::exception& e) {
      if (errors_++ % 1000 == 0) spdlog::warn("streams: {}: bad input: {}", label_, e.what());
      collector_->fail(input);
      return;
    }
    producer_->Send(std::move(r), [this, input](const absl::StatusOr<client::RecordMetadata>& m) {
      Completed(input, m.status());
    });
  }

  void cleanup() override { Shutdown(); }

 private:
  // Producer I/O thread.
  void Completed(const Tuple& input, const absl::Status& s) {
    bool post = false;
    {
      absl::MutexLock l(&mu_);
      if (closing_) return;
      done_.emplace_back(input, s);
      if (!posted_) {
        posted_ = true;
        post = true;
      }
    }
    if (post) collector_->post([this] { Deliver(); });
  }

  // Bolt task.
  void Deliver() {
    std::vector<std::pair<Tuple, absl::Status>> done;
    {
      absl::MutexLock l(&mu_);
      done.swap(done_);
      posted_ = false;
    }
    for (auto& [tuple, status] : done) {
      if (status.ok()) {
        collector_->ack(tuple);
      } else {
        if (errors_++ % 1000 == 0) {
          spdlog::warn("streams: {}: write failed: {}", label_, status.ToString());
        }
        collector_->fail(tuple);
      }
    }
  }

  // Flushes and closes the producer. Completions from then on are dropped:
  // the runtime runs no posted work once cleanup is called, and from the
  // destructor the collector may be gone already.
  void Shutdown() {
    if (!producer_) return;
    {
      absl::MutexLock l(&mu_);
      closing_ = true;
      done_.clear();
    }
    absl::Status s = producer_->Close(std::chrono::seconds(30));
    if (!s.ok()) spdlog::warn("streams: {}: close: {}", label_, s.ToString());
    producer_.reset();
  }

  const TopicBoltOptions o_;
  std::string label_;
  OutputCollector* collector_ = nullptr;
  uint64_t errors_ = 0;  // task thread

  absl::Mutex mu_;
  std::vector<std::pair<Tuple, absl::Status>> done_ ABSL_GUARDED_BY(mu_);
  bool posted_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;

  std::unique_ptr<client::Producer> producer_;
};

}  // namespace

BoltFactory TopicBolt(TopicBoltOptions options) {
  return [o = std::move(options)] { return std::make_unique<TopicBoltImpl>(o); };
}

}  // namespace brook::streams
