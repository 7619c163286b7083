// A group consumer process for groups_client_fault_test: subscribes to a
// topic and "processes" each record by appending a line to a file, flushing
// the file (write(2), no user-space buffer) before committing the batch with
// CommitSync. Runs until killed.
//
//   groups_client_worker NAMESERVERS GROUP TOPIC OUT_FILE ASSIGNOR
//
// Lines (each a single write):
//   S <pid>        the process started
//   R <p> <o>      record at partition p, offset o processed
//   C <p> <o>      offset o of partition p committed (after CommitSync succeeded)
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "brook/consumer.h"

namespace {

void Append(int fd, const std::string& line) {
  const ssize_t n = ::write(fd, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    std::perror("write");
    std::_Exit(3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s NAMESERVERS GROUP TOPIC OUT_FILE ASSIGNOR\n", argv[0]);
    return 2;
  }
  using namespace std::chrono_literals;
  const int fd = ::open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) {
    std::perror("open");
    return 2;
  }
  brook::client::ConsumerConfig config;
  config.nameservers = argv[1];
  config.group_id = argv[2];
  config.assignors = {argv[5]};
  config.enable_auto_commit = false;
  config.auto_offset_reset = brook::client::OffsetReset::kEarliest;
  config.session_timeout = 2s;
  config.heartbeat_interval = 300ms;
  config.max_poll_interval = 10s;
  config.metadata_max_age = 1s;
  config.fetch_max_wait = 100ms;
  config.max_poll_records = 50;
  config.request_timeout = 10s;
  auto consumer = brook::client::Consumer::Create(config);
  if (!consumer.ok()) {
    std::fprintf(stderr, "create: %s\n", consumer.status().ToString().c_str());
    return 1;
  }
  if (auto s = (*consumer)->Subscribe({argv[3]}); !s.ok()) {
    std::fprintf(stderr, "subscribe: %s\n", s.ToString().c_str());
    return 1;
  }
  Append(fd, absl::StrCat("S ", ::getpid(), "\n"));
  while (true) {
    auto records = (*consumer)->Poll(200ms);
    if (!records.ok()) {
      std::fprintf(stderr, "poll: %s\n", records.status().ToString().c_str());
      continue;
    }
    if (records->empty()) continue;
    std::string lines;
    std::map<brook::client::TopicPartition, brook::client::OffsetAndMetadata> offsets;
    for (const auto& r : *records) {
      absl::StrAppend(&lines, "R ", r.partition, " ", r.offset, "\n");
      offsets[brook::client::TopicPartition{r.topic, r.partition}].offset = r.offset + 1;
    }
    Append(fd, lines);  // processed (in the page cache: survives kill -9)
    if (auto s = (*consumer)->CommitSync(offsets); !s.ok()) {
      std::fprintf(stderr, "commit: %s\n", s.ToString().c_str());
      continue;  // the records stay in the uncommitted tail
    }
    std::string done;
    for (const auto& [tp, om] : offsets) absl::StrAppend(&done, "C ", tp.partition, " ", om.offset, "\n");
    Append(fd, done);
  }
}
