// A queue consumer process for queue_fault_test: receives from a queue
// subscription forever and, at random, acknowledges (logging the outcome),
// nacks, or lets the ack timeout lapse. Records whose value starts with
// "poison" are always nacked (they end in the dead-letter topic). The test
// kill -9s and restarts these processes.
//
// usage: queue_fault_worker NAMESERVERS TOPIC GROUP LOG_FILE SEED
// Log lines (appended with write(2), so a kill -9 loses nothing written):
//   I P O D     about to acknowledge delivery D of offset O of partition P
//   A P O D     the acknowledgement succeeded
//   F P O D C   it failed with queue error C (see QueueAckError)
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "brook/queue.h"

namespace {

void Log(int fd, const std::string& line) {
  const std::string l = line + "\n";
  if (write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) std::abort();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc != 6) {
    std::fprintf(stderr, "usage: queue_fault_worker NAMESERVERS TOPIC GROUP LOG_FILE SEED\n");
    return 2;
  }
  const int fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) {
    std::perror("open");
    return 1;
  }
  brook::client::QueueConfig c;
  c.nameservers = argv[1];
  c.topic = argv[2];
  c.group = argv[3];
  c.start = brook::client::QueueStart::kEarliest;
  c.ack_timeout = 1000ms;
  c.max_deliveries = 4;
  c.backoff_initial = 100ms;
  c.backoff_max = 300ms;
  c.prefetch_limit = 20;
  c.max_wait = 200ms;
  c.request_timeout = 3s;
  auto made = brook::client::QueueConsumer::Create(c);
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    return 1;
  }
  brook::client::QueueConsumer& q = **made;
  std::mt19937 rng(static_cast<unsigned>(std::strtoul(argv[5], nullptr, 10)));
  while (true) {
    auto got = q.Receive(10, 200ms);
    if (!got.ok()) {
      std::fprintf(stderr, "receive: %s\n", got.status().ToString().c_str());
      std::this_thread::sleep_for(100ms);
      continue;
    }
    for (const auto& m : *got) {
      const std::string id =
          absl::StrCat(m.record.partition, " ", m.record.offset, " ", m.delivery_count);
      const unsigned dice = rng() % 100;
      if (m.record.value && absl::StartsWith(*m.record.value, "poison")) {
        q.Nack(m, 0ms);
      } else if (dice < 70) {
        Log(fd, "I " + id);
        absl::Status s = q.AckSync(m);
        if (s.ok()) {
          Log(fd, "A " + id);
        } else {
          Log(fd, absl::StrCat("F ", id, " ", static_cast<int>(brook::client::ClassifyAckError(s))));
        }
      } else if (dice < 85) {
        q.Nack(m, std::chrono::milliseconds(rng() % 100));
      }  // else: let the ack timeout lapse
    }
  }
}
