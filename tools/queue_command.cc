// `brook queue receive|ack|nack|describe`: queue subscriptions from the shell,
// through brook::client::QueueConsumer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "brook/queue.h"
#include "tools/cli_args.h"
#include "tools/commands.h"

namespace brook::tools {

const char kQueueUsage[] =
    "usage:\n"
    "  brook queue receive TOPIC --group G [--max N] [--timeout-ms T] [--no-ack]\n"
    "                      [--filter EXPR] [--from-beginning] [--ack-timeout-ms T] [--json]\n"
    "  brook queue ack TOPIC --group G --consumer-id ID P:OFFSET:DELIVERY ...\n"
    "  brook queue nack TOPIC --group G --consumer-id ID [--delay-ms T] P:OFFSET:DELIVERY ...\n"
    "  brook queue describe TOPIC --group G [--json]\n"
    "\n"
    "receive prints up to --max records (default 1) delivered to the group's queue\n"
    "subscription within --timeout-ms (default 5000), one per line as\n"
    "\"PARTITION:OFFSET:DELIVERY<TAB>KEY<TAB>VALUE\" (null for a missing key or value),\n"
    "and acknowledges them unless --no-ack. It prints its consumer id to stderr:\n"
    "ack/nack of those deliveries must give it (within the ack timeout, default\n"
    "30000 ms). --filter takes \"tag1 || tag2\"; --from-beginning makes a new\n"
    "subscription start at the log start. nack redelivers after --delay-ms (default:\n"
    "the subscription's back-off). describe shows backlog, in-flight, delayed,\n"
    "dead-lettered and acknowledged records and the ack floor per partition.\n";

namespace {

std::string Nullable(const std::optional<std::string>& s) { return s ? *s : "null"; }
std::string JsonNullable(const std::optional<std::string>& s) {
  return s ? JsonString(*s) : "null";
}

absl::StatusOr<std::unique_ptr<client::QueueConsumer>> MakeConsumer(
    const ParsedArgs& args, const std::string& nameservers, const std::string& topic) {
  std::optional<std::string> group = args.Get("group");
  if (!group || group->empty()) return absl::InvalidArgumentError("--group is required");
  client::QueueConfig config;
  config.nameservers = nameservers;
  config.group = *group;
  config.topic = topic;
  config.consumer_id = args.Get("consumer-id").value_or("");
  config.filter = args.Get("filter").value_or("");
  config.start = args.Has("from-beginning") ? client::QueueStart::kEarliest
                                            : client::QueueStart::kLatest;
  config.request_timeout = std::chrono::milliseconds(10000);
  absl::StatusOr<int64_t> ack_timeout = args.GetInt("ack-timeout-ms", 30000, 1, INT32_MAX);
  if (!ack_timeout.ok()) return ack_timeout.status();
  config.ack_timeout = std::chrono::milliseconds(*ack_timeout);
  absl::StatusOr<int64_t> max = args.GetInt("max", 1, 1, 1 << 20);
  if (!max.ok()) return max.status();
  config.prefetch_limit = static_cast<size_t>(*max);  // never hold more than asked for
  return client::QueueConsumer::Create(config);
}

int Receive(const ParsedArgs& args, const std::string& nameservers, const std::string& topic) {
  absl::StatusOr<int64_t> max = args.GetInt("max", 1, 1, 1 << 20);
  absl::StatusOr<int64_t> timeout_ms = args.GetInt("timeout-ms", 5000, 0);
  for (const auto* v : {&max, &timeout_ms}) {
    if (!v->ok()) return ReportUsage(std::string(v->status().message()), kQueueUsage);
  }
  auto made = MakeConsumer(args, nameservers, topic);
  if (!made.ok()) return ReportError(made.status());
  client::QueueConsumer& consumer = **made;
  const bool json = args.Has("json");
  const bool ack = !args.Has("no-ack");
  std::fprintf(stderr, "consumer-id: %s\n", consumer.consumer_id().c_str());

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(*timeout_ms);
  size_t got = 0;
  absl::Status error;
  while (got < static_cast<size_t>(*max)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto msgs = consumer.Receive(static_cast<size_t>(*max) - got, left);
    if (!msgs.ok()) {
      error = msgs.status();
      break;
    }
    for (const client::QueueMessage& m : *msgs) {
      const client::ConsumerRecord& r = m.record;
      if (json) {
        std::vector<std::string> tags;
        for (const std::string& t : client::TagsOf(r)) tags.push_back(JsonString(t));
        std::printf(
            "{\"partition\":%d,\"offset\":%lld,\"delivery_count\":%d,\"timestamp\":%lld,"
            "\"key\":%s,\"value\":%s,\"tags\":[%s],\"consumer_id\":%s}\n",
            r.partition, static_cast<long long>(r.offset), m.delivery_count,
            static_cast<long long>(r.timestamp_ms), JsonNullable(r.key).c_str(),
            JsonNullable(r.value).c_str(), absl::StrJoin(tags, ",").c_str(),
            JsonString(consumer.consumer_id()).c_str());
      } else {
        std::printf("%d:%lld:%d\t%s\t%s\n", r.partition, static_cast<long long>(r.offset),
                    m.delivery_count, Nullable(r.key).c_str(), Nullable(r.value).c_str());
      }
      if (ack) consumer.Ack(m);
    }
    std::fflush(stdout);
    got += msgs->size();
  }
  absl::Status flushed = consumer.Flush(std::chrono::milliseconds(10000));
  absl::Status closed = consumer.Close();
  std::fprintf(stderr, "brook: received %zu record(s)%s\n", got, ack ? " and acknowledged them" : "");
  if (!error.ok()) return ReportError(error);
  if (!flushed.ok()) return ReportError(flushed);
  if (!closed.ok()) return ReportError(closed);
  return kExitOk;
}

// Parses "P:OFFSET:DELIVERY".
absl::StatusOr<client::QueueMessage> ParseDelivery(const std::string& text,
                                                   const std::string& topic) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError("expected PARTITION:OFFSET:DELIVERY, got '" + text + "'");
  }
  absl::StatusOr<int64_t> p = ParseInt(parts[0], "partition");
  absl::StatusOr<int64_t> o = ParseInt(parts[1], "offset");
  absl::StatusOr<int64_t> d = ParseInt(parts[2], "delivery count");
  for (const auto* v : {&p, &o, &d}) {
    if (!v->ok()) return v->status();
  }
  if (*p < 0 || *p > INT32_MAX || *o < 0 || *d < 1 || *d > INT32_MAX) {
    return absl::InvalidArgumentError("out-of-range PARTITION:OFFSET:DELIVERY '" + text + "'");
  }
  client::QueueMessage m;
  m.record.topic = topic;
  m.record.partition = static_cast<int32_t>(*p);
  m.record.offset = *o;
  m.delivery_count = static_cast<int32_t>(*d);
  return m;
}

int AckOrNack(const ParsedArgs& args, const std::string& nameservers, const std::string& topic,
              bool nack) {
  if (!args.Has("consumer-id")) return ReportUsage("--consumer-id is required", kQueueUsage);
  if (args.positional().size() < 2) {
    return ReportUsage("give at least one PARTITION:OFFSET:DELIVERY", kQueueUsage);
  }
  absl::StatusOr<int64_t> delay = args.GetInt("delay-ms", -1, 0);
  if (!delay.ok()) return ReportUsage(std::string(delay.status().message()), kQueueUsage);
  std::vector<client::QueueMessage> msgs;
  for (size_t i = 1; i < args.positional().size(); ++i) {
    auto m = ParseDelivery(args.positional()[i], topic);
    if (!m.ok()) return ReportUsage(std::string(m.status().message()), kQueueUsage);
    msgs.push_back(*m);
  }
  auto made = MakeConsumer(args, nameservers, topic);
  if (!made.ok()) return ReportError(made.status());
  client::QueueConsumer& consumer = **made;
  std::optional<std::chrono::milliseconds> d;
  if (*delay >= 0) d = std::chrono::milliseconds(*delay);
  // One at a time, so each answer is printed next to its delivery.
  int failures = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    absl::Status s = nack ? consumer.NackSync(msgs[i], d) : consumer.AckSync(msgs[i]);
    if (!s.ok()) ++failures;
    std::printf("%s\t%s\n", args.positional()[i + 1].c_str(),
                s.ok() ? (nack ? "nacked" : "acked") : std::string(s.message()).c_str());
  }
  consumer.Close().IgnoreError();
  if (failures > 0) {
    return ReportError(absl::AbortedError(absl::StrCat(failures, " of ", msgs.size(), " ",
                                                       nack ? "nack(s)" : "ack(s)", " failed")));
  }
  return kExitOk;
}

int Describe(const ParsedArgs& args, const std::string& nameservers, const std::string& topic) {
  auto made = MakeConsumer(args, nameservers, topic);
  if (!made.ok()) return ReportError(made.status());
  auto states = (*made)->Describe();
  (*made)->Close().IgnoreError();
  if (!states.ok()) return ReportError(states.status());
  client::QueuePartitionState total;
  int errors = 0;
  for (const auto& s : *states) {
    if (!s.status.ok()) {
      ++errors;
      continue;
    }
    total.backlog += s.backlog;
    total.in_flight += s.in_flight;
    total.delayed += s.delayed;
    total.dead_lettered += s.dead_lettered;
    total.acked += s.acked;
    total.filtered += s.filtered;
    total.redeliveries += s.redeliveries;
    total.consumers = std::max(total.consumers, s.consumers);
  }
  const std::string group = *args.Get("group");
  if (args.Has("json")) {
    auto fields = [](const client::QueuePartitionState& s) {
      return absl::StrCat("\"backlog\":", s.backlog, ",\"in_flight\":", s.in_flight,
                          ",\"delayed\":", s.delayed, ",\"dead_lettered\":", s.dead_lettered,
                          ",\"acked\":", s.acked, ",\"filtered\":", s.filtered,
                          ",\"redeliveries\":", s.redeliveries, ",\"consumers\":", s.consumers);
    };
    std::vector<std::string> parts;
    for (const auto& s : *states) {
      if (!s.status.ok()) {
        parts.push_back(absl::StrCat("{\"partition\":", s.partition,
                                     ",\"error\":", JsonString(std::string(s.status.message())),
                                     "}"));
        continue;
      }
      parts.push_back(absl::StrCat("{\"partition\":", s.partition, ",\"ack_floor\":", s.ack_floor,
                                   ",\"read_offset\":", s.read_offset,
                                   ",\"high_watermark\":", s.high_watermark, ",", fields(s), "}"));
    }
    std::printf("{\"topic\":%s,\"group\":%s,\"partitions\":[%s],\"totals\":{%s}}\n",
                JsonString(topic).c_str(), JsonString(group).c_str(),
                absl::StrJoin(parts, ",").c_str(), fields(total).c_str());
  } else {
    std::printf("Topic: %s\tGroup: %s\n", topic.c_str(), group.c_str());
    std::vector<std::vector<std::string>> rows = {
        {"PARTITION", "BACKLOG", "IN-FLIGHT", "DELAYED", "DEAD-LETTERED", "ACKED", "FILTERED",
         "REDELIVERIES", "FLOOR", "HIGH-WATERMARK", "CONSUMERS"}};
    for (const auto& s : *states) {
      if (!s.status.ok()) {
        rows.push_back({absl::StrCat(s.partition), std::string(s.status.message())});
        continue;
      }
      rows.push_back({absl::StrCat(s.partition), absl::StrCat(s.backlog),
                      absl::StrCat(s.in_flight), absl::StrCat(s.delayed),
                      absl::StrCat(s.dead_lettered), absl::StrCat(s.acked),
                      absl::StrCat(s.filtered), absl::StrCat(s.redeliveries),
                      absl::StrCat(s.ack_floor), absl::StrCat(s.high_watermark),
                      absl::StrCat(s.consumers)});
    }
    rows.push_back({"TOTAL", absl::StrCat(total.backlog), absl::StrCat(total.in_flight),
                    absl::StrCat(total.delayed), absl::StrCat(total.dead_lettered),
                    absl::StrCat(total.acked), absl::StrCat(total.filtered),
                    absl::StrCat(total.redeliveries), "-", "-", absl::StrCat(total.consumers)});
    PrintTable(rows);
  }
  if (errors > 0) {
    return ReportError(absl::UnavailableError(absl::StrCat(errors, " partition(s) not described")));
  }
  return kExitOk;
}

}  // namespace

int RunQueue(const std::vector<std::string>& args, const std::string& nameservers) {
  if (args.empty()) return ReportUsage("queue needs a subcommand", kQueueUsage);
  const std::string& sub = args.front();
  std::vector<std::string> rest(args.begin() + 1, args.end());
  std::vector<FlagSpec> specs = {{"group"}};
  if (sub == "receive") {
    specs.insert(specs.end(), {{"max"}, {"timeout-ms"}, {"no-ack", false}, {"filter"},
                               {"from-beginning", false}, {"ack-timeout-ms"}, {"json", false},
                               {"consumer-id"}});
  } else if (sub == "ack") {
    specs.push_back({"consumer-id"});
  } else if (sub == "nack") {
    specs.insert(specs.end(), {{"consumer-id"}, {"delay-ms"}});
  } else if (sub == "describe") {
    specs.push_back({"json", false});
  } else {
    return ReportUsage("unknown queue subcommand '" + sub + "'", kQueueUsage);
  }
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(rest, specs);
  if (!parsed.ok()) return ReportUsage(std::string(parsed.status().message()), kQueueUsage);
  if (parsed->positional().empty()) return ReportUsage("queue " + sub + " needs a TOPIC", kQueueUsage);
  if (!parsed->Has("group")) return ReportUsage("--group is required", kQueueUsage);
  const std::string topic = parsed->positional()[0];
  if ((sub == "receive" || sub == "describe") && parsed->positional().size() != 1) {
    return ReportUsage("queue " + sub + " takes one TOPIC", kQueueUsage);
  }
  if (absl::Status s = ValidateTopicName(topic); !s.ok()) return ReportError(s);
  if (absl::Status s = CheckTopicExists(nameservers, topic); !s.ok()) return ReportError(s);
  if (sub == "receive") return Receive(*parsed, nameservers, topic);
  if (sub == "ack") return AckOrNack(*parsed, nameservers, topic, /*nack=*/false);
  if (sub == "nack") return AckOrNack(*parsed, nameservers, topic, /*nack=*/true);
  return Describe(*parsed, nameservers, topic);
}

}  // namespace brook::tools
