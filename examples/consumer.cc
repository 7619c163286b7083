// example-consumer: reads every partition of a topic from the beginning and
// prints each record as "partition@offset key=value".
//
//   example-consumer TOPIC [MAX_RECORDS]
//
// Stops after MAX_RECORDS records (default: never) or after 5 s with no new
// record. The name servers come from $BROOK_NAMESERVER, else 127.0.0.1:9876.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "brook/consumer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TOPIC [MAX_RECORDS]\n", argv[0]);
    return 2;
  }
  const std::string topic = argv[1];
  const long long max_records = argc > 2 ? std::atoll(argv[2]) : -1;

  brook::client::ConsumerConfig config;
  config.auto_offset_reset = brook::client::OffsetReset::kEarliest;
  auto consumer = brook::client::Consumer::Create(config);
  if (!consumer.ok()) {
    std::fprintf(stderr, "cannot create consumer: %s\n", consumer.status().ToString().c_str());
    return 1;
  }

  // Assign every partition of the topic (no consumer group).
  auto partitions = (*consumer)->PartitionCount(topic);
  if (!partitions.ok()) {
    std::fprintf(stderr, "topic %s: %s\n", topic.c_str(), partitions.status().ToString().c_str());
    return 1;
  }
  std::vector<brook::client::TopicPartition> assignment;
  for (int32_t p = 0; p < *partitions; ++p) assignment.push_back({topic, p});
  if (auto s = (*consumer)->Assign(assignment); !s.ok()) {
    std::fprintf(stderr, "assign: %s\n", s.ToString().c_str());
    return 1;
  }
  if (auto s = (*consumer)->SeekToBeginning(assignment); !s.ok()) {
    std::fprintf(stderr, "seek: %s\n", s.ToString().c_str());
    return 1;
  }

  long long seen = 0;
  int idle_polls = 0;
  while (max_records < 0 || seen < max_records) {
    auto records = (*consumer)->Poll(std::chrono::milliseconds(1000));
    if (!records.ok()) {
      std::fprintf(stderr, "poll: %s\n", records.status().ToString().c_str());
      return 1;
    }
    if (records->empty()) {
      if (++idle_polls >= 5) break;
      continue;
    }
    idle_polls = 0;
    for (const auto& r : *records) {
      std::printf("%d@%lld %s=%s\n", r.partition, static_cast<long long>(r.offset),
                  r.key ? r.key->c_str() : "(null)", r.value ? r.value->c_str() : "(null)");
      if (++seen == max_records) break;
    }
  }
  (*consumer)->Close();
  return 0;
}
