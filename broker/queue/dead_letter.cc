// ProducerDeadLetterSink: dead-letter writes through brook::producer.
#include "broker/queue/dead_letter.h"

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/producer.h"
#include "spdlog/spdlog.h"

namespace brook::queue {

ProducerDeadLetterSink::ProducerDeadLetterSink(std::string nameservers)
    : nameservers_(std::move(nameservers)) {}

ProducerDeadLetterSink::~ProducerDeadLetterSink() { Close(); }

void ProducerDeadLetterSink::Close() {
  std::shared_ptr<client::Producer> producer;
  {
    absl::MutexLock l(&mu_);
    closed_ = true;
    producer = std::move(producer_);
    admin_.reset();
  }
  if (producer != nullptr) producer->Close(std::chrono::milliseconds(2000)).IgnoreError();
}

absl::Status ProducerDeadLetterSink::EnsureClients() {
  if (producer_ != nullptr) return absl::OkStatus();
  client::AdminConfig ac;
  ac.nameservers = nameservers_;
  ac.request_timeout = std::chrono::milliseconds(10000);
  auto admin = client::Admin::Create(ac);
  if (!admin.ok()) return admin.status();
  client::ProducerConfig pc;
  pc.nameservers = nameservers_;
  pc.acks = -1;
  pc.linger = std::chrono::milliseconds(1);
  pc.compression = client::CompressionType::kNone;
  pc.delivery_timeout = std::chrono::milliseconds(30000);
  pc.request_timeout = std::chrono::milliseconds(10000);
  pc.max_block = std::chrono::milliseconds(5000);
  auto producer = client::Producer::Create(pc);
  if (!producer.ok()) return producer.status();
  admin_ = *std::move(admin);
  producer_ = std::shared_ptr<client::Producer>(std::move(*producer));
  return absl::OkStatus();
}

absl::Status ProducerDeadLetterSink::EnsureTopic(const std::string& topic) {
  if (known_topics_.contains(topic)) return absl::OkStatus();
  // Creating is one coordinator round trip; an existing topic answers
  // TOPIC_ALREADY_EXISTS.
  client::NewTopic nt;
  nt.name = topic;
  auto created = admin_->CreateTopic(nt);
  if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
  if (created.ok()) spdlog::info("queue: created dead-letter topic {}", topic);
  if (auto n = producer_->PartitionCount(topic); !n.ok()) return n.status();
  if (known_topics_.size() > 10000) known_topics_.clear();
  known_topics_.insert(topic);
  return absl::OkStatus();
}

void ProducerDeadLetterSink::Send(DeadLetterRecord record, std::function<void(absl::Status)> done) {
  std::shared_ptr<client::Producer> producer;
  {
    absl::MutexLock l(&mu_);
    if (closed_) return done(absl::UnavailableError("dead-letter sink closed"));
    if (auto s = EnsureClients(); !s.ok()) return done(s);
    if (auto s = EnsureTopic(record.topic); !s.ok()) return done(s);
    producer = producer_;
  }
  client::ProducerRecord pr;
  pr.topic = std::move(record.topic);
  pr.key = std::move(record.key);
  pr.value = std::move(record.value);
  for (auto& [k, v] : record.headers) pr.headers.push_back(client::Header{std::move(k), std::move(v)});
  if (record.timestamp_ms >= 0) pr.timestamp_ms = record.timestamp_ms;
  producer->Send(std::move(pr), [done = std::move(done)](const absl::StatusOr<client::RecordMetadata>& m) {
    done(m.ok() ? absl::OkStatus() : m.status());
  });
}

}  // namespace brook::queue
