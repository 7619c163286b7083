// example-queue-worker: a worker of a queue subscription. Receives records
// of TOPIC as a member of GROUP's queue, "processes" each one (prints it) and
// acknowledges it; a record whose value is "fail" is nacked with a 1 s delay
// and, after 3 deliveries, lands in the dead-letter topic GROUP-dlq. Run
// several at once: they share the records, each delivered to one of them.
//
//   example-queue-worker TOPIC GROUP [FILTER]
//
// FILTER is a tag expression such as "red || green" (see brook/queue.h).
// Stops on SIGINT/SIGTERM, releasing what it prefetched to the other
// workers. The name servers come from $BROOK_NAMESERVER, else 127.0.0.1:9876.
#include <csignal>
#include <cstdio>
#include <string>

#include "brook/queue.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TOPIC GROUP [FILTER]\n", argv[0]);
    return 2;
  }
  brook::client::QueueConfig config;
  config.topic = argv[1];
  config.group = argv[2];
  if (argc > 3) config.filter = argv[3];
  config.start = brook::client::QueueStart::kEarliest;  // a new subscription takes the backlog
  config.ack_timeout = 30s;
  config.max_deliveries = 3;
  config.prefetch_limit = 100;
  auto made = brook::client::QueueConsumer::Create(config);
  if (!made.ok()) {
    std::fprintf(stderr, "cannot create queue consumer: %s\n", made.status().ToString().c_str());
    return 1;
  }
  brook::client::QueueConsumer& queue = **made;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::fprintf(stderr, "worker %s on %s/%s\n", queue.consumer_id().c_str(), config.topic.c_str(),
               config.group.c_str());

  long long done = 0;
  while (!g_stop) {
    auto messages = queue.Receive(50, 500ms);
    if (!messages.ok()) {
      std::fprintf(stderr, "receive: %s\n", messages.status().ToString().c_str());
      break;
    }
    for (const brook::client::QueueMessage& m : *messages) {
      const brook::client::ConsumerRecord& r = m.record;
      std::printf("%d@%lld (delivery %d) %s\n", r.partition, static_cast<long long>(r.offset),
                  m.delivery_count, r.value.value_or("null").c_str());
      if (r.value == "fail") {
        queue.Nack(m, 1s);
      } else {
        queue.Ack(m);
        ++done;
      }
    }
    // Acks are asynchronous and batched; Flush reports any that failed (for
    // example one whose ack timeout had passed: the record comes again).
    if (!messages->empty()) {
      if (auto s = queue.Flush(10s); !s.ok()) {
        std::fprintf(stderr, "ack: %s\n", s.ToString().c_str());
      }
    }
  }
  absl::Status closed = queue.Close();
  std::fprintf(stderr, "processed %lld record(s)%s%s\n", done, closed.ok() ? "" : "; close: ",
               closed.ok() ? "" : closed.ToString().c_str());
  return closed.ok() ? 0 : 1;
}
