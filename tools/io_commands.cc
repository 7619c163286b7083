// `brook produce` (stdin lines -> records) and `brook consume` (records ->
// stdout lines), through brook::client::Producer and Consumer.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "brook/consumer.h"
#include "brook/producer.h"
#include "brook/queue.h"
#include "tools/cli_args.h"
#include "tools/commands.h"

namespace brook::tools {

const char kProduceUsage[] =
    "usage: brook produce TOPIC [--key-separator SEP] [--acks 0|1|all] [--partition N]\n"
    "                     [--compression zstd|none]\n"
    "                     [--delay-ms T | --deliver-at MS|ISO8601] [--tags T1,T2]\n"
    "\n"
    "Sends one record per line of stdin (the line without its newline). With\n"
    "--key-separator the text before the first SEP is the key and the rest the\n"
    "value; a line without SEP has no key. Without --partition, keyed records go\n"
    "to murmur2(key) % partitions and unkeyed ones to a sticky partition.\n"
    "Flushes at end of input, prints the number of records sent to stderr and\n"
    "exits 1 if any record failed. Defaults: --acks 1, --compression zstd.\n"
    "For queue subscriptions (brook queue): --delay-ms delays each record's\n"
    "delivery by T ms from its send, --deliver-at delivers none before the given\n"
    "time (header brook-deliver-at), --tags sets the header brook-tags.\n";

const char kConsumeUsage[] =
    "usage: brook consume TOPIC [--from-beginning | --offset N | --from-time MS|ISO8601]\n"
    "                     [--partition N] [--max-messages N] [--timeout-ms N]\n"
    "                     [--print-key] [--print-offset]\n"
    "\n"
    "Reads every partition of TOPIC (or only --partition N) and prints each\n"
    "record's value on its own line, prefixed with \"PARTITION:OFFSET<TAB>\" under\n"
    "--print-offset and \"KEY<TAB>\" under --print-key (a missing key or value\n"
    "prints as null). Starts at the end of each partition unless told otherwise;\n"
    "--offset N starts every consumed partition at offset N; --from-time takes\n"
    "milliseconds since the epoch or an RFC 3339 time (2024-05-01T12:00:00Z).\n"
    "Stops after --max-messages records, or when no record arrived for\n"
    "--timeout-ms; by default runs until interrupted (SIGINT/SIGTERM).\n";

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

absl::StatusOr<int> ParseAcks(const std::optional<std::string>& v) {
  if (!v || *v == "1") return 1;
  if (*v == "0") return 0;
  if (*v == "all" || *v == "-1") return -1;
  return absl::InvalidArgumentError("--acks must be 0, 1 or all, got '" + *v + "'");
}

absl::StatusOr<client::CompressionType> ParseCompression(const std::optional<std::string>& v) {
  if (!v || *v == "zstd") return client::CompressionType::kZstd;
  if (*v == "none") return client::CompressionType::kNone;
  return absl::InvalidArgumentError("--compression must be zstd or none, got '" + *v + "'");
}

// Milliseconds since the epoch from "MS" or an RFC 3339 time (the value of
// the flag `flag`).
absl::StatusOr<int64_t> ParseTimestamp(const std::string& text,
                                       const std::string& flag = "--from-time") {
  if (absl::StatusOr<int64_t> ms = ParseInt(text, flag); ms.ok()) return *ms;
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err) ||
      absl::ParseTime("%Y-%m-%dT%H:%M:%S", text, absl::UTCTimeZone(), &t, &err) ||
      absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) {
    return absl::ToUnixMillis(t);
  }
  return absl::InvalidArgumentError(flag + ": not milliseconds or an RFC 3339 time: '" + text +
                                    "'");
}

}  // namespace

int RunProduce(const std::vector<std::string>& args, const std::string& nameservers) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(
      args, {{"key-separator"}, {"acks"}, {"partition"}, {"compression"}, {"delay-ms"},
             {"deliver-at"}, {"tags"}});
  if (!parsed.ok()) return ReportUsage(std::string(parsed.status().message()), kProduceUsage);
  if (parsed->positional().size() != 1) return ReportUsage("produce takes one TOPIC", kProduceUsage);
  const std::string topic = parsed->positional()[0];
  absl::StatusOr<int> acks = ParseAcks(parsed->Get("acks"));
  if (!acks.ok()) return ReportUsage(std::string(acks.status().message()), kProduceUsage);
  absl::StatusOr<client::CompressionType> compression = ParseCompression(parsed->Get("compression"));
  if (!compression.ok()) {
    return ReportUsage(std::string(compression.status().message()), kProduceUsage);
  }
  absl::StatusOr<int64_t> partition = parsed->GetInt("partition", -1, 0, INT32_MAX);
  if (!partition.ok()) return ReportUsage(std::string(partition.status().message()), kProduceUsage);
  absl::StatusOr<int64_t> delay_ms = parsed->GetInt("delay-ms", -1, 0);
  if (!delay_ms.ok()) return ReportUsage(std::string(delay_ms.status().message()), kProduceUsage);
  std::optional<int64_t> deliver_at;
  if (std::optional<std::string> t = parsed->Get("deliver-at")) {
    if (*delay_ms >= 0) return ReportUsage("give --delay-ms or --deliver-at, not both", kProduceUsage);
    absl::StatusOr<int64_t> ms = ParseTimestamp(*t, "--deliver-at");
    if (!ms.ok()) return ReportUsage(std::string(ms.status().message()), kProduceUsage);
    deliver_at = *ms;
  }
  std::optional<std::vector<std::string>> tags;
  if (std::optional<std::string> t = parsed->Get("tags")) {
    tags = absl::StrSplit(*t, ',', absl::SkipEmpty());
  }
  std::optional<std::string> separator = parsed->Get("key-separator");
  if (separator && separator->empty()) {
    return ReportUsage("--key-separator must not be empty", kProduceUsage);
  }
  if (absl::Status s = ValidateTopicName(topic); !s.ok()) return ReportError(s);
  if (absl::Status s = CheckTopicExists(nameservers, topic); !s.ok()) return ReportError(s);

  client::ProducerConfig config;
  config.nameservers = nameservers;
  config.acks = *acks;
  config.compression = *compression;
  absl::StatusOr<std::unique_ptr<client::Producer>> producer = client::Producer::Create(config);
  if (!producer.ok()) return ReportError(producer.status());
  if (*partition >= 0) {
    absl::StatusOr<int32_t> count = (*producer)->PartitionCount(topic);
    if (!count.ok()) return ReportError(count.status());
    if (*partition >= *count) {
      return ReportError(absl::InvalidArgumentError(
          absl::StrCat("topic ", topic, " has ", *count, " partition(s); no partition ", *partition)));
    }
  }

  // Callbacks run on the producer's I/O thread; these counters are shared.
  std::atomic<int64_t> failed{0};
  std::mutex first_error_mu;
  absl::Status first_error;
  int64_t sent = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    client::ProducerRecord record;
    record.topic = topic;
    if (*partition >= 0) record.partition = static_cast<int32_t>(*partition);
    size_t at = separator ? line.find(*separator) : std::string::npos;
    if (at != std::string::npos) {
      record.key = line.substr(0, at);
      record.value = line.substr(at + separator->size());
    } else {
      record.value = std::move(line);
    }
    if (*delay_ms >= 0) client::SetDelay(record, std::chrono::milliseconds(*delay_ms));
    if (deliver_at) client::SetDeliverAt(record, *deliver_at);
    if (tags) client::SetTags(record, *tags);
    (*producer)->Send(std::move(record), [&](const absl::StatusOr<client::RecordMetadata>& md) {
      if (md.ok()) return;
      if (failed.fetch_add(1) == 0) {
        std::lock_guard<std::mutex> lock(first_error_mu);
        first_error = md.status();
      }
    });
    ++sent;
  }
  absl::Status flushed = (*producer)->Flush();
  absl::Status closed = (*producer)->Close();
  int64_t failures = failed.load();
  std::fprintf(stderr, "brook: sent %lld record(s) to %s, %lld failed\n",
               static_cast<long long>(sent - failures), topic.c_str(),
               static_cast<long long>(failures));
  if (failures > 0) {
    std::lock_guard<std::mutex> lock(first_error_mu);
    return ReportError(first_error);
  }
  if (!flushed.ok()) return ReportError(flushed);
  if (!closed.ok()) return ReportError(closed);
  return kExitOk;
}

int RunConsume(const std::vector<std::string>& args, const std::string& nameservers) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(
      args, {{"from-beginning", false}, {"offset"}, {"from-time"}, {"partition"},
             {"max-messages"}, {"timeout-ms"}, {"print-key", false}, {"print-offset", false}});
  if (!parsed.ok()) return ReportUsage(std::string(parsed.status().message()), kConsumeUsage);
  if (parsed->positional().size() != 1) return ReportUsage("consume takes one TOPIC", kConsumeUsage);
  const std::string topic = parsed->positional()[0];
  int starts = parsed->Has("from-beginning") + parsed->Has("offset") + parsed->Has("from-time");
  if (starts > 1) {
    return ReportUsage("give at most one of --from-beginning, --offset, --from-time",
                       kConsumeUsage);
  }
  absl::StatusOr<int64_t> partition = parsed->GetInt("partition", -1, 0, INT32_MAX);
  absl::StatusOr<int64_t> offset = parsed->GetInt("offset", -1, 0);
  absl::StatusOr<int64_t> max_messages = parsed->GetInt("max-messages", -1, 1);
  absl::StatusOr<int64_t> timeout_ms = parsed->GetInt("timeout-ms", -1, 0);
  for (const auto* v : {&partition, &offset, &max_messages, &timeout_ms}) {
    if (!v->ok()) return ReportUsage(std::string(v->status().message()), kConsumeUsage);
  }
  std::optional<int64_t> from_time;
  if (std::optional<std::string> t = parsed->Get("from-time")) {
    absl::StatusOr<int64_t> ms = ParseTimestamp(*t);
    if (!ms.ok()) return ReportUsage(std::string(ms.status().message()), kConsumeUsage);
    from_time = *ms;
  }
  const bool print_key = parsed->Has("print-key");
  const bool print_offset = parsed->Has("print-offset");
  if (absl::Status s = ValidateTopicName(topic); !s.ok()) return ReportError(s);
  if (absl::Status s = CheckTopicExists(nameservers, topic); !s.ok()) return ReportError(s);

  client::ConsumerConfig config;
  config.nameservers = nameservers;
  config.auto_offset_reset =
      parsed->Has("from-beginning") ? client::OffsetReset::kEarliest : client::OffsetReset::kLatest;
  absl::StatusOr<std::unique_ptr<client::Consumer>> made = client::Consumer::Create(config);
  if (!made.ok()) return ReportError(made.status());
  client::Consumer& consumer = **made;

  absl::StatusOr<int32_t> count = consumer.PartitionCount(topic);
  if (!count.ok()) return ReportError(count.status());
  std::vector<client::TopicPartition> tps;
  if (*partition >= 0) {
    if (*partition >= *count) {
      return ReportError(absl::InvalidArgumentError(
          absl::StrCat("topic ", topic, " has ", *count, " partition(s); no partition ", *partition)));
    }
    tps.push_back({topic, static_cast<int32_t>(*partition)});
  } else {
    for (int32_t p = 0; p < *count; ++p) tps.push_back({topic, p});
  }
  if (absl::Status s = consumer.Assign(tps); !s.ok()) return ReportError(s);
  absl::Status positioned;
  if (parsed->Has("from-beginning")) {
    positioned = consumer.SeekToBeginning(tps);
  } else if (*offset >= 0) {
    for (const auto& tp : tps) {
      positioned.Update(consumer.Seek(tp, *offset));
    }
  } else if (from_time) {
    positioned = consumer.SeekToTimestamp(tps, *from_time);
  } else {
    positioned = consumer.SeekToEnd(tps);
  }
  if (!positioned.ok()) return ReportError(positioned);

  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A closed stdout reader (e.g. `| head`) ends the loop through EPIPE.
  std::signal(SIGPIPE, SIG_IGN);

  using Clock = std::chrono::steady_clock;
  const auto idle_limit = std::chrono::milliseconds(*timeout_ms);
  auto last_record = Clock::now();
  int64_t printed = 0;
  std::string out;
  int rc = kExitOk;
  while (!g_stop.load()) {
    if (*max_messages >= 0 && printed >= *max_messages) break;
    auto wait = std::chrono::milliseconds(100);
    if (*timeout_ms >= 0) {
      auto left = idle_limit - std::chrono::duration_cast<std::chrono::milliseconds>(
                                   Clock::now() - last_record);
      if (left <= std::chrono::milliseconds(0)) break;
      wait = std::min(wait, left);
    }
    absl::StatusOr<std::vector<client::ConsumerRecord>> records = consumer.Poll(wait);
    if (!records.ok()) {
      rc = ReportError(records.status());
      break;
    }
    if (records->empty()) continue;
    last_record = Clock::now();
    out.clear();
    for (const client::ConsumerRecord& r : *records) {
      if (*max_messages >= 0 && printed >= *max_messages) break;
      if (print_offset) absl::StrAppend(&out, r.partition, ":", r.offset, "\t");
      if (print_key) absl::StrAppend(&out, r.key ? *r.key : "null", "\t");
      absl::StrAppend(&out, r.value ? *r.value : "null", "\n");
      ++printed;
    }
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0) {
      break;  // stdout closed: nothing more to do
    }
  }
  consumer.Close();
  std::fprintf(stderr, "brook: consumed %lld record(s)\n", static_cast<long long>(printed));
  return rc;
}

}  // namespace brook::tools
