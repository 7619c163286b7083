// example-producer: sends records to a topic and prints where each landed.
//
//   example-producer TOPIC [COUNT]      sends COUNT records "record-<i>" (default 10)
//   example-producer TOPIC -            sends each line of stdin ("KEY<TAB>VALUE" or VALUE)
//
// Records are keyed ("key-<i>" or the text before a tab), so equal keys land
// on the same partition. The name servers come from $BROOK_NAMESERVER, else
// 127.0.0.1:9876 (the server `make run` starts). Create the topic first, e.g.
// `brook topic create TOPIC --partitions 3`.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "brook/producer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TOPIC [COUNT|-]\n", argv[0]);
    return 2;
  }
  const std::string topic = argv[1];
  const std::string count_arg = argc > 2 ? argv[2] : "10";

  brook::client::ProducerConfig config;  // defaults: acks=1, zstd, linger 5 ms
  // Send waits this long for a topic's route (e.g. a topic that does not
  // exist yet) before failing the record.
  config.max_block = std::chrono::seconds(10);
  auto producer = brook::client::Producer::Create(config);
  if (!producer.ok()) {
    std::fprintf(stderr, "cannot create producer: %s\n", producer.status().ToString().c_str());
    return 1;
  }

  // The callback runs on the producer's I/O thread once the record is
  // acknowledged (or failed); it must be quick and must not block.
  int failures = 0;
  auto report = [&failures](const absl::StatusOr<brook::client::RecordMetadata>& md) {
    if (md.ok()) {
      std::printf("%s-%d@%lld\n", md->topic.c_str(), md->partition,
                  static_cast<long long>(md->offset));
    } else {
      std::fprintf(stderr, "send failed: %s\n", md.status().ToString().c_str());
      ++failures;
    }
  };

  auto send = [&](std::string key, std::string value) {
    brook::client::ProducerRecord record;
    record.topic = topic;
    record.key = std::move(key);
    record.value = std::move(value);
    record.headers.push_back({"source", "example-producer"});
    (*producer)->Send(std::move(record), report);
  };

  if (count_arg == "-") {
    std::string line;
    for (int i = 0; std::getline(std::cin, line); ++i) {
      const size_t tab = line.find('\t');
      if (tab != std::string::npos) {
        send(line.substr(0, tab), line.substr(tab + 1));
      } else {
        send("key-" + std::to_string(i), line);
      }
    }
  } else {
    const int count = std::atoi(count_arg.c_str());
    for (int i = 0; i < count; ++i) {
      send("key-" + std::to_string(i), "record-" + std::to_string(i));
    }
  }

  // Close flushes: it returns once every record is acknowledged or failed.
  if (auto s = (*producer)->Close(std::chrono::seconds(30)); !s.ok()) {
    std::fprintf(stderr, "close: %s\n", s.ToString().c_str());
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
