// `brook bench produce|consume|e2e`: throughput and end-to-end latency
// measured through the real client libraries. Progress goes to stderr once a
// second; the result is one JSON object on stdout (with --json) or a short
// readable summary.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "brook/admin.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "tools/cli_args.h"
#include "tools/commands.h"

namespace brook::tools {

const char kBenchUsage[] =
    "usage: brook bench produce|consume|e2e TOPIC --records N --record-size B\n"
    "                   [--acks 0|1|all] [--rate R] [--producers P] [--partitions N]\n"
    "                   [--compression zstd|none] [--batch-bytes B] [--linger-ms L]\n"
    "                   [--json]\n"
    "\n"
    "Creates TOPIC if missing (--partitions, default 1), then:\n"
    "  produce  P producer threads (default 1), each with its own Producer, send N\n"
    "           records in total, at most R records/s in total when --rate is\n"
    "           given, and wait for every acknowledgement.\n"
    "  consume  reads N records from the beginning of TOPIC, producing the\n"
    "           missing ones first when TOPIC holds fewer than N.\n"
    "  e2e      one producer sends N records at R records/s (default 50000), each\n"
    "           stamped with its send time; a consumer in the same process\n"
    "           measures receive - send (p50, p99, p99.9, max).\n"
    "Record values are pseudo-random bytes (fixed seed), incompressible, so zstd\n"
    "does not flatter the results. MB is 10^6 bytes of record values.\n"
    "Defaults: --acks 1, --compression zstd, the producer's batch size and\n"
    "linger (5 ms), except e2e, which defaults to --linger-ms 0 so that it\n"
    "measures the data path rather than the batching delay. The result records\n"
    "the linger used (linger_ms). Progress goes to stderr; with --json the\n"
    "result is a single JSON object on stdout.\n";

namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string mode;
  std::string topic;
  std::string nameservers;
  int64_t records = 0;
  int64_t record_size = 0;
  int acks = 1;
  std::string acks_text = "1";
  int64_t rate = 0;  // records/s in total; 0: unlimited
  int64_t producers = 1;
  int64_t partitions = 1;
  client::CompressionType compression = client::CompressionType::kZstd;
  std::optional<int64_t> batch_bytes;
  std::optional<int64_t> linger_ms;
  bool json = false;
};

struct Result {
  int64_t records = 0;
  int64_t bytes = 0;
  double seconds = 0;
  int64_t errors = 0;
  absl::Status first_error;
  std::vector<int64_t> latencies_ns;  // e2e only
};

// Fixed-seed random bytes; record i's value is a window of the pool, so
// values differ from each other and do not compress.
class Payloads {
 public:
  explicit Payloads(size_t record_size) : size_(record_size) {
    pool_.resize(record_size + (1 << 20));
    std::mt19937_64 rng(0x5eedb700c);
    for (size_t i = 0; i < pool_.size(); i += 8) {
      uint64_t r = rng();
      std::memcpy(&pool_[i], &r, std::min<size_t>(8, pool_.size() - i));
    }
  }
  std::string Get(int64_t i) const {
    size_t span = pool_.size() - size_ + 1;
    size_t at = static_cast<size_t>((static_cast<uint64_t>(i) * 7919u) % span);
    return pool_.substr(at, size_);
  }

 private:
  size_t size_;
  std::string pool_;
};

// Prints `line()` to stderr once a second until Stop().
class Progress {
 public:
  template <typename F>
  explicit Progress(F line)
      : thread_([this, line] {
          std::unique_lock<std::mutex> lock(mu_);
          while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
            std::string text = line();
            std::fprintf(stderr, "%s\n", text.c_str());
          }
        }) {}
  ~Progress() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

client::ProducerConfig MakeProducerConfig(const BenchOptions& o) {
  client::ProducerConfig c;
  c.nameservers = o.nameservers;
  c.acks = o.acks;
  c.compression = o.compression;
  if (o.batch_bytes) c.batch_bytes = static_cast<size_t>(*o.batch_bytes);
  if (o.linger_ms) {
    c.linger = std::chrono::milliseconds(*o.linger_ms);
  } else if (o.mode == "e2e") {
    c.linger = std::chrono::milliseconds(0);
  }
  return c;
}

// The producer linger the bench runs with: --linger-ms, else 0 for e2e and
// the producer's default otherwise.
int64_t EffectiveLingerMs(const BenchOptions& o) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(MakeProducerConfig(o).linger)
      .count();
}

// Creates the topic unless it exists. Returns its description.
absl::StatusOr<client::TopicInfo> EnsureTopic(const BenchOptions& o) {
  client::AdminConfig config;
  config.nameservers = o.nameservers;
  absl::StatusOr<std::unique_ptr<client::Admin>> admin = client::Admin::Create(config);
  if (!admin.ok()) return admin.status();
  if (CheckTopicExists(o.nameservers, o.topic).ok()) return (*admin)->DescribeTopic(o.topic);
  client::NewTopic topic;
  topic.name = o.topic;
  topic.partitions = static_cast<int32_t>(o.partitions);
  absl::StatusOr<client::TopicInfo> created = (*admin)->CreateTopic(topic);
  if (created.ok() || !absl::IsAlreadyExists(created.status())) return created;
  return (*admin)->DescribeTopic(o.topic);  // created meanwhile by someone else
}

// Sends `count` records with o.producers threads and waits for every ack.
Result ProduceRecords(const BenchOptions& o, int64_t count, bool show_progress) {
  Result result;
  const Payloads payloads(static_cast<size_t>(o.record_size));
  std::vector<std::unique_ptr<client::Producer>> producers;
  for (int64_t p = 0; p < o.producers; ++p) {
    absl::StatusOr<std::unique_ptr<client::Producer>> made =
        client::Producer::Create(MakeProducerConfig(o));
    if (!made.ok()) {
      result.errors = count;
      result.first_error = made.status();
      return result;
    }
    producers.push_back(std::move(*made));
  }

  // Shared with the producers' callbacks (their I/O threads).
  struct Tally {
    std::atomic<int64_t> acked{0};
    std::atomic<int64_t> failed{0};
    std::mutex error_mu;
    absl::Status first_error;
  } tally;
  std::atomic<int64_t>& acked = tally.acked;
  std::atomic<int64_t>& failed = tally.failed;
  std::mutex& error_mu = tally.error_mu;
  absl::Status& first_error = tally.first_error;
  // Captures one pointer, so each std::function made from it is stored
  // inline: the bench adds no allocation per record.
  auto callback = [t = &tally](const absl::StatusOr<client::RecordMetadata>& md) {
    if (md.ok()) {
      t->acked.fetch_add(1, std::memory_order_relaxed);
    } else if (t->failed.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> lock(t->error_mu);
      t->first_error = md.status();
    }
  };

  const auto start = Clock::now();
  std::optional<Progress> progress;
  if (show_progress) {
    progress.emplace([&] {
      double s = std::chrono::duration<double>(Clock::now() - start).count();
      int64_t n = acked.load();
      return absl::StrFormat("bench produce: %d/%d acknowledged, %.0f records/s, %d errors", n,
                             count, s > 0 ? n / s : 0.0, failed.load());
    });
  }
  std::vector<std::thread> threads;
  std::vector<absl::Status> flush_status(producers.size());
  for (size_t p = 0; p < producers.size(); ++p) {
    threads.emplace_back([&, p] {
      const int64_t n = count / o.producers + (static_cast<int64_t>(p) < count % o.producers);
      const double per_thread_rate = o.rate > 0 ? static_cast<double>(o.rate) / o.producers : 0;
      for (int64_t i = 0; i < n; ++i) {
        if (per_thread_rate > 0) {
          auto due = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(i / per_thread_rate));
          if (due > Clock::now()) std::this_thread::sleep_until(due);
        }
        client::ProducerRecord r;
        r.topic = o.topic;
        r.value = payloads.Get(i * o.producers + static_cast<int64_t>(p));
        producers[p]->Send(std::move(r), callback);
      }
      flush_status[p] = producers[p]->Flush();
    });
  }
  for (std::thread& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (progress) progress->Stop();
  for (auto& producer : producers) producer->Close().IgnoreError();  // flushed above

  result.records = acked.load();
  result.bytes = result.records * o.record_size;
  result.errors = failed.load();
  {
    std::lock_guard<std::mutex> lock(error_mu);
    result.first_error = first_error;
  }
  for (const absl::Status& s : flush_status) {
    if (!s.ok() && result.first_error.ok()) result.first_error = s;
  }
  // Records neither acknowledged nor failed (a flush that timed out) count as errors.
  result.errors += std::max<int64_t>(0, count - result.records - result.errors);
  return result;
}

// A consumer assigned every partition of `o.topic` (stored in `*tps`), sought
// to the beginning of each for kEarliest, to its end for kLatest.
absl::StatusOr<std::unique_ptr<client::Consumer>> OpenWholeTopic(
    const BenchOptions& o, client::OffsetReset from, std::vector<client::TopicPartition>* tps) {
  client::ConsumerConfig config;
  config.nameservers = o.nameservers;
  config.auto_offset_reset = from;
  absl::StatusOr<std::unique_ptr<client::Consumer>> consumer = client::Consumer::Create(config);
  if (!consumer.ok()) return consumer.status();
  absl::StatusOr<int32_t> n = (*consumer)->PartitionCount(o.topic);
  if (!n.ok()) return n.status();
  tps->clear();
  for (int32_t p = 0; p < *n; ++p) tps->push_back({o.topic, p});
  if (absl::Status s = (*consumer)->Assign(*tps); !s.ok()) return s;
  absl::Status s = from == client::OffsetReset::kEarliest ? (*consumer)->SeekToBeginning(*tps)
                                                          : (*consumer)->SeekToEnd(*tps);
  if (!s.ok()) return s;
  return consumer;
}

constexpr auto kStallLimit = std::chrono::seconds(30);

absl::StatusOr<Result> BenchConsume(const BenchOptions& o, const client::TopicInfo& info) {
  int64_t present = 0;
  for (const client::PartitionInfo& p : info.partitions) {
    if (p.high_watermark > 0) present += p.high_watermark - std::max<int64_t>(0, p.log_start_offset);
  }
  if (present < o.records) {
    std::fprintf(stderr, "bench consume: topic holds %lld record(s); producing %lld first\n",
                 static_cast<long long>(present), static_cast<long long>(o.records - present));
    Result filled = ProduceRecords(o, o.records - present, /*show_progress=*/true);
    if (filled.errors > 0) return filled.first_error.ok() ? absl::InternalError("produce failed")
                                                         : filled.first_error;
  }

  std::vector<client::TopicPartition> tps;
  absl::StatusOr<std::unique_ptr<client::Consumer>> consumer =
      OpenWholeTopic(o, client::OffsetReset::kEarliest, &tps);
  if (!consumer.ok()) return consumer.status();

  Result result;
  std::atomic<int64_t> received{0};
  const auto start = Clock::now();
  Progress progress([&] {
    double s = std::chrono::duration<double>(Clock::now() - start).count();
    int64_t n = received.load();
    return absl::StrFormat("bench consume: %d/%d received, %.0f records/s", n, o.records,
                           s > 0 ? n / s : 0.0);
  });
  auto last = Clock::now();
  while (result.records < o.records) {
    absl::StatusOr<std::vector<client::ConsumerRecord>> batch =
        (*consumer)->Poll(std::chrono::milliseconds(200));
    if (!batch.ok()) return batch.status();
    if (batch->empty()) {
      if (Clock::now() - last > kStallLimit) {
        result.errors = o.records - result.records;
        result.first_error = absl::DeadlineExceededError("no record arrived for 30 s");
        break;
      }
      continue;
    }
    last = Clock::now();
    for (const client::ConsumerRecord& r : *batch) {
      if (result.records >= o.records) break;
      ++result.records;
      result.bytes += r.value ? static_cast<int64_t>(r.value->size()) : 0;
    }
    received.store(result.records);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  progress.Stop();
  (*consumer)->Close();
  return result;
}

absl::StatusOr<Result> BenchEndToEnd(const BenchOptions& o) {
  std::vector<client::TopicPartition> tps;
  absl::StatusOr<std::unique_ptr<client::Consumer>> consumer =
      OpenWholeTopic(o, client::OffsetReset::kLatest, &tps);
  if (!consumer.ok()) return consumer.status();
  // Resolve the end offsets now, so records sent from here on are all read.
  for (const client::TopicPartition& tp : tps) {
    if (absl::StatusOr<int64_t> pos = (*consumer)->Position(tp); !pos.ok()) return pos.status();
  }

  absl::StatusOr<std::unique_ptr<client::Producer>> producer =
      client::Producer::Create(MakeProducerConfig(o));
  if (!producer.ok()) return producer.status();

  const size_t size = static_cast<size_t>(std::max<int64_t>(o.record_size, 8));
  const Payloads payloads(size);
  const int64_t rate = o.rate > 0 ? o.rate : 50000;
  std::atomic<int64_t> failed{0};
  std::mutex error_mu;
  absl::Status first_error;
  const auto start = Clock::now();
  std::thread sender([&] {
    for (int64_t i = 0; i < o.records; ++i) {
      auto due = start + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(static_cast<double>(i) / rate));
      if (due > Clock::now()) std::this_thread::sleep_until(due);
      client::ProducerRecord r;
      r.topic = o.topic;
      std::string value = payloads.Get(i);
      int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           Clock::now().time_since_epoch())
                           .count();
      std::memcpy(value.data(), &now_ns, sizeof(now_ns));
      r.value = std::move(value);
      (*producer)->Send(std::move(r), [&](const absl::StatusOr<client::RecordMetadata>& md) {
        if (!md.ok() && failed.fetch_add(1) == 0) {
          std::lock_guard<std::mutex> lock(error_mu);
          first_error = md.status();
        }
      });
    }
    (*producer)->Flush().IgnoreError();  // failures reach the callbacks
  });

  Result result;
  result.latencies_ns.reserve(static_cast<size_t>(o.records));
  std::atomic<int64_t> received{0};
  Progress progress([&] {
    return absl::StrFormat("bench e2e: %d/%d received, %d send errors", received.load(),
                           o.records, failed.load());
  });
  auto last = Clock::now();
  while (result.records + failed.load() < o.records) {
    absl::StatusOr<std::vector<client::ConsumerRecord>> batch =
        (*consumer)->Poll(std::chrono::milliseconds(100));
    const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               Clock::now().time_since_epoch())
                               .count();
    if (!batch.ok()) {
      result.first_error = batch.status();
      break;
    }
    if (batch->empty()) {
      if (Clock::now() - last > kStallLimit) {
        result.first_error = absl::DeadlineExceededError("no record arrived for 30 s");
        break;
      }
      continue;
    }
    last = Clock::now();
    for (const client::ConsumerRecord& r : *batch) {
      if (!r.value || r.value->size() < sizeof(int64_t)) continue;  // not ours
      int64_t sent_ns;
      std::memcpy(&sent_ns, r.value->data(), sizeof(sent_ns));
      result.latencies_ns.push_back(now_ns - sent_ns);
      result.bytes += static_cast<int64_t>(r.value->size());
      ++result.records;
    }
    received.store(result.records);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  sender.join();
  progress.Stop();
  (*producer)->Close().IgnoreError();
  (*consumer)->Close();
  result.errors = o.records - std::min(result.records, o.records);
  std::lock_guard<std::mutex> lock(error_mu);
  if (result.first_error.ok()) result.first_error = first_error;
  return result;
}

// Nearest-rank percentile of sorted samples, in milliseconds.
double PercentileMs(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return static_cast<double>(sorted[rank - 1]) / 1e6;
}

void PrintResult(const BenchOptions& o, Result& r) {
  const double rps = r.seconds > 0 ? r.records / r.seconds : 0;
  const double mbps = r.seconds > 0 ? r.bytes / r.seconds / 1e6 : 0;
  const char* compression = o.compression == client::CompressionType::kZstd ? "zstd" : "none";
  std::string latency;
  if (o.mode == "e2e") {
    std::sort(r.latencies_ns.begin(), r.latencies_ns.end());
    latency = absl::StrFormat(
        "{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}", PercentileMs(r.latencies_ns, 0.5),
        PercentileMs(r.latencies_ns, 0.99), PercentileMs(r.latencies_ns, 0.999),
        PercentileMs(r.latencies_ns, 1.0));
  }
  if (o.json) {
    std::string json = absl::StrFormat(
        "{\"mode\":%s,\"topic\":%s,\"records\":%d,\"record_size\":%d,\"seconds\":%.3f,"
        "\"records_per_sec\":%.1f,\"mb_per_sec\":%.3f,\"acks\":%s,\"producers\":%d,"
        "\"partitions\":%d,\"compression\":%s,\"linger_ms\":%d,\"errors\":%d",
        JsonString(o.mode), JsonString(o.topic), r.records, o.record_size, r.seconds, rps, mbps,
        JsonString(o.acks_text), o.mode == "consume" ? 0 : (o.mode == "e2e" ? 1 : o.producers),
        o.partitions, JsonString(compression), EffectiveLingerMs(o), r.errors);
    if (!latency.empty()) absl::StrAppend(&json, ",\"latency_ms\":", latency);
    if (!r.first_error.ok()) {
      absl::StrAppend(&json, ",\"error\":", JsonString(std::string(r.first_error.message())));
    }
    std::printf("%s}\n", json.c_str());
  } else {
    std::printf("%s: %lld records of %lld B in %.3f s: %.0f records/s, %.2f MB/s, %lld errors\n",
                o.mode.c_str(), static_cast<long long>(r.records),
                static_cast<long long>(o.record_size), r.seconds, rps, mbps,
                static_cast<long long>(r.errors));
    if (!latency.empty()) {
      std::printf("latency ms: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
                  PercentileMs(r.latencies_ns, 0.5), PercentileMs(r.latencies_ns, 0.99),
                  PercentileMs(r.latencies_ns, 0.999), PercentileMs(r.latencies_ns, 1.0));
    }
  }
  std::fflush(stdout);
}

}  // namespace

int RunBench(const std::vector<std::string>& args, const std::string& nameservers) {
  absl::StatusOr<ParsedArgs> parsed =
      ParseArgs(args, {{"records"}, {"record-size"}, {"acks"}, {"rate"}, {"producers"},
                       {"partitions"}, {"compression"}, {"batch-bytes"}, {"linger-ms"},
                       {"json", false}});
  if (!parsed.ok()) return ReportUsage(std::string(parsed.status().message()), kBenchUsage);
  if (parsed->positional().size() != 2) {
    return ReportUsage("bench takes a mode (produce, consume or e2e) and a TOPIC", kBenchUsage);
  }
  BenchOptions o;
  o.mode = parsed->positional()[0];
  o.topic = parsed->positional()[1];
  o.nameservers = nameservers;
  if (o.mode != "produce" && o.mode != "consume" && o.mode != "e2e") {
    return ReportUsage("unknown bench mode '" + o.mode + "'", kBenchUsage);
  }
  if (!parsed->Has("records") || !parsed->Has("record-size")) {
    return ReportUsage("bench needs --records and --record-size", kBenchUsage);
  }
  struct IntFlag {
    const char* name;
    int64_t* out;
    int64_t fallback, min, max;
  };
  int64_t batch_bytes = -1, linger_ms = -1;
  const IntFlag ints[] = {
      {"records", &o.records, 0, 1, INT64_MAX / 2},
      {"record-size", &o.record_size, 0, 0, 64 << 20},
      {"rate", &o.rate, 0, 0, INT64_MAX / 2},
      {"producers", &o.producers, 1, 1, 256},
      {"partitions", &o.partitions, 1, 1, 1 << 20},
      {"batch-bytes", &batch_bytes, -1, 1, 1LL << 31},
      {"linger-ms", &linger_ms, -1, 0, 3600 * 1000},
  };
  for (const IntFlag& f : ints) {
    absl::StatusOr<int64_t> v = parsed->GetInt(f.name, f.fallback, f.min, f.max);
    if (!v.ok()) return ReportUsage(std::string(v.status().message()), kBenchUsage);
    *f.out = *v;
  }
  if (batch_bytes > 0) o.batch_bytes = batch_bytes;
  if (linger_ms >= 0) o.linger_ms = linger_ms;
  o.acks_text = parsed->Get("acks").value_or("1");
  if (o.acks_text == "0") {
    o.acks = 0;
  } else if (o.acks_text == "1") {
    o.acks = 1;
  } else if (o.acks_text == "all" || o.acks_text == "-1") {
    o.acks = -1;
    o.acks_text = "all";
  } else {
    return ReportUsage("--acks must be 0, 1 or all", kBenchUsage);
  }
  std::string compression = parsed->Get("compression").value_or("zstd");
  if (compression == "none") {
    o.compression = client::CompressionType::kNone;
  } else if (compression != "zstd") {
    return ReportUsage("--compression must be zstd or none", kBenchUsage);
  }
  o.json = parsed->Has("json");
  if (absl::Status s = ValidateTopicName(o.topic); !s.ok()) return ReportError(s);

  absl::StatusOr<client::TopicInfo> info = EnsureTopic(o);
  if (!info.ok()) return ReportError(info.status());
  o.partitions = static_cast<int64_t>(info->partitions.size());

  absl::StatusOr<Result> result;
  if (o.mode == "produce") {
    result = ProduceRecords(o, o.records, /*show_progress=*/true);
  } else if (o.mode == "consume") {
    result = BenchConsume(o, *info);
  } else {
    result = BenchEndToEnd(o);
  }
  if (!result.ok()) return ReportError(result.status());
  PrintResult(o, *result);
  if (result->errors > 0) {
    return ReportError(result->first_error.ok()
                           ? absl::InternalError(absl::StrCat(result->errors, " record(s) failed"))
                           : result->first_error);
  }
  return kExitOk;
}

}  // namespace brook::tools
