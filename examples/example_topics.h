// Topic helpers shared by the example programs that write their own input:
// create topics if missing, and a producer that counts failed sends.
// Header-only.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "brook/producer.h"

namespace brook::examples {

// Creates each (topic, partitions) that does not exist yet (server default
// replication factor).
inline absl::Status EnsureTopics(const std::string& nameservers,
                                 const std::vector<std::pair<std::string, int>>& topics) {
  auto admin =
      client::Admin::Create(client::AdminConfig{nameservers, std::chrono::seconds(10)});
  if (!admin.ok()) return admin.status();
  for (const auto& [topic, partitions] : topics) {
    auto info = (*admin)->CreateTopic(client::NewTopic{topic, partitions, 0, {}});
    if (!info.ok() && !absl::IsAlreadyExists(info.status())) {
      return absl::Status(info.status().code(),
                          absl::StrCat("creating topic ", topic, ": ", info.status().message()));
    }
  }
  return absl::OkStatus();
}

// A Producer whose sends count their failures; Close fails if any did.
class CountingProducer {
 public:
  // Default producer settings but `nameservers` and `linger`.
  static absl::StatusOr<std::unique_ptr<CountingProducer>> Create(
      const std::string& nameservers,
      std::chrono::milliseconds linger = client::ProducerConfig().linger) {
    client::ProducerConfig config;
    config.nameservers = nameservers;
    config.linger = linger;
    auto producer = client::Producer::Create(std::move(config));
    if (!producer.ok()) return producer.status();
    return std::unique_ptr<CountingProducer>(new CountingProducer(std::move(*producer)));
  }

  void Send(client::ProducerRecord record) {
    producer_->Send(std::move(record), [this](const absl::StatusOr<client::RecordMetadata>& m) {
      if (!m.ok()) ++failed_;
    });
  }

  // Flushes and closes; an error when closing failed or any send did.
  absl::Status Close() {
    absl::Status s = producer_->Close();
    if (!s.ok()) return s;
    if (failed_ > 0) return absl::UnavailableError(absl::StrCat(failed_.load(), " sends failed"));
    return absl::OkStatus();
  }

 private:
  explicit CountingProducer(std::unique_ptr<client::Producer> p) : producer_(std::move(p)) {}
  std::unique_ptr<client::Producer> producer_;
  std::atomic<int> failed_{0};
};

}  // namespace brook::examples
