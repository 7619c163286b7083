// example-consumer-group: joins a consumer group subscribed to one or more
// topics, prints each record as "topic-partition@offset value", and commits
// what it printed after every batch. Start several copies with the same
// GROUP to see the partitions shared (and moved when one stops).
//
//   example-consumer-group GROUP TOPIC [TOPIC...]
//
// Runs until interrupted (Ctrl-C), then commits, leaves the group and exits.
// The name servers come from $BROOK_NAMESERVER, else 127.0.0.1:9876.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "brook/consumer.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Prints ownership changes.
class PrintingListener : public brook::client::RebalanceListener {
 public:
  void OnPartitionsAssigned(const std::vector<brook::client::TopicPartition>& parts) override {
    Print("assigned", parts);
  }
  void OnPartitionsRevoked(const std::vector<brook::client::TopicPartition>& parts) override {
    Print("revoked", parts);
  }
  void OnPartitionsLost(const std::vector<brook::client::TopicPartition>& parts) override {
    Print("lost", parts);
  }

 private:
  static void Print(const char* what, const std::vector<brook::client::TopicPartition>& parts) {
    std::fprintf(stderr, "%s:", what);
    for (const auto& tp : parts) std::fprintf(stderr, " %s-%d", tp.topic.c_str(), tp.partition);
    std::fprintf(stderr, "\n");
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s GROUP TOPIC [TOPIC...]\n", argv[0]);
    return 2;
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);

  brook::client::ConsumerConfig config;
  config.group_id = argv[1];
  config.auto_offset_reset = brook::client::OffsetReset::kEarliest;
  config.enable_auto_commit = false;  // committed below, after printing
  config.assignors = {"cooperative-sticky"};
  auto consumer = brook::client::Consumer::Create(config);
  if (!consumer.ok()) {
    std::fprintf(stderr, "cannot create consumer: %s\n", consumer.status().ToString().c_str());
    return 1;
  }
  PrintingListener listener;
  std::vector<std::string> topics(argv + 2, argv + argc);
  if (auto s = (*consumer)->Subscribe(topics, &listener); !s.ok()) {
    std::fprintf(stderr, "subscribe: %s\n", s.ToString().c_str());
    return 1;
  }
  while (!g_stop) {
    auto records = (*consumer)->Poll(std::chrono::milliseconds(500));
    if (!records.ok()) {
      std::fprintf(stderr, "poll: %s\n", records.status().ToString().c_str());
      continue;
    }
    if (records->empty()) continue;
    for (const auto& r : *records) {
      std::printf("%s-%d@%lld %s\n", r.topic.c_str(), r.partition, static_cast<long long>(r.offset),
                  r.value ? r.value->c_str() : "(null)");
    }
    std::fflush(stdout);
    if (auto s = (*consumer)->CommitSync(); !s.ok()) {
      std::fprintf(stderr, "commit: %s\n", s.ToString().c_str());
    }
  }
  const auto m = (*consumer)->Membership();
  std::fprintf(stderr, "leaving group %s (member %s, generation %d)\n", m.group_id.c_str(),
               m.member_id.c_str(), m.generation);
  (*consumer)->Close();
  return 0;
}
