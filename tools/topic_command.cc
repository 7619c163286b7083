// `brook topic create|list|describe|delete|alter`: topic administration through
// brook::client::Admin.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "brook/admin.h"
#include "tools/cli_args.h"
#include "tools/commands.h"

namespace brook::tools {

const char kTopicUsage[] =
    "usage:\n"
    "  brook topic create TOPIC [--partitions N] [--replication-factor N]\n"
    "                           [--config KEY=VALUE ...]\n"
    "  brook topic list\n"
    "  brook topic describe TOPIC\n"
    "  brook topic delete TOPIC\n"
    "  brook topic alter TOPIC --partitions N\n"
    "\n"
    "Partitions and replication factor default to the server's defaults.\n"
    "alter raises the partition count to N (it cannot shrink); records with a key\n"
    "may map to another partition afterwards.\n"
    "--config may be repeated; keys are Kafka-style: flush.policy (always|interval|os),\n"
    "flush.ms, segment.bytes, segment.ms, retention.ms, retention.bytes,\n"
    "max.message.bytes, min.insync.replicas, index.interval.bytes,\n"
    "unclean.leader.election.enable (true|false), cleanup.policy (delete|compact|\n"
    "compact,delete), delete.retention.ms, min.cleanable.dirty.ratio (0..1),\n"
    "min.compaction.lag.ms.\n";

namespace {

std::string JoinIds(const std::vector<int32_t>& ids) {
  return ids.empty() ? "-" : absl::StrJoin(ids, ",");
}

std::string OffsetText(int64_t v) { return v < 0 ? "?" : absl::StrCat(v); }

absl::StatusOr<std::unique_ptr<client::Admin>> MakeAdmin(const std::string& nameservers) {
  client::AdminConfig config;
  config.nameservers = nameservers;
  return client::Admin::Create(config);
}

int Create(const ParsedArgs& args, const std::string& nameservers) {
  if (args.positional().size() != 1) return ReportUsage("topic create takes one TOPIC", kTopicUsage);
  client::NewTopic topic;
  topic.name = args.positional()[0];
  if (absl::Status s = ValidateTopicName(topic.name); !s.ok()) return ReportError(s);
  absl::StatusOr<int64_t> partitions = args.GetInt("partitions", 0, 1, 1 << 20);
  if (!partitions.ok()) return ReportUsage(std::string(partitions.status().message()), kTopicUsage);
  absl::StatusOr<int64_t> rf = args.GetInt("replication-factor", 0, 1, 1 << 10);
  if (!rf.ok()) return ReportUsage(std::string(rf.status().message()), kTopicUsage);
  topic.partitions = static_cast<int32_t>(*partitions);
  topic.replication_factor = static_cast<int32_t>(*rf);
  for (const std::string& kv : args.GetAll("config")) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return ReportUsage("--config takes KEY=VALUE, got '" + kv + "'", kTopicUsage);
    }
    topic.configs[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  absl::StatusOr<client::TopicInfo> info = (*admin)->CreateTopic(topic);
  if (!info.ok()) return ReportError(info.status());
  std::printf("Created topic %s with %zu partition(s).\n", info->name.c_str(),
              info->partitions.size());
  return kExitOk;
}

int List(const ParsedArgs& args, const std::string& nameservers) {
  if (!args.positional().empty()) return ReportUsage("topic list takes no arguments", kTopicUsage);
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  absl::StatusOr<std::vector<client::TopicInfo>> topics = (*admin)->ListTopics();
  if (!topics.ok()) return ReportError(topics.status());
  for (const client::TopicInfo& t : *topics) std::printf("%s\n", t.name.c_str());
  return kExitOk;
}

int Describe(const ParsedArgs& args, const std::string& nameservers) {
  if (args.positional().size() != 1) {
    return ReportUsage("topic describe takes one TOPIC", kTopicUsage);
  }
  const std::string& name = args.positional()[0];
  if (absl::Status s = ValidateTopicName(name); !s.ok()) return ReportError(s);
  if (absl::Status s = CheckTopicExists(nameservers, name); !s.ok()) return ReportError(s);
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  absl::StatusOr<client::TopicInfo> info = (*admin)->DescribeTopic(name);
  if (!info.ok()) return ReportError(info.status());

  std::printf("Topic: %s\tId: %s\tPartitions: %zu\n", info->name.c_str(), info->topic_id.c_str(),
              info->partitions.size());
  if (!info->configs.empty()) {
    std::vector<std::string> kvs;
    for (const auto& [k, v] : info->configs) kvs.push_back(absl::StrCat(k, "=", v));
    std::printf("Configs: %s\n", absl::StrJoin(kvs, ",").c_str());
  }
  std::vector<std::vector<std::string>> rows = {
      {"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK"}};
  for (const client::PartitionInfo& p : info->partitions) {
    rows.push_back({absl::StrCat(p.partition), p.leader < 0 ? "none" : absl::StrCat(p.leader),
                    absl::StrCat(p.leader_epoch), JoinIds(p.replicas), JoinIds(p.isr),
                    OffsetText(p.log_start_offset), OffsetText(p.high_watermark)});
  }
  PrintTable(rows);
  return kExitOk;
}

int Delete(const ParsedArgs& args, const std::string& nameservers) {
  if (args.positional().size() != 1) return ReportUsage("topic delete takes one TOPIC", kTopicUsage);
  const std::string& name = args.positional()[0];
  if (absl::Status s = ValidateTopicName(name); !s.ok()) return ReportError(s);
  if (absl::Status s = CheckTopicExists(nameservers, name); !s.ok()) return ReportError(s);
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  if (absl::Status s = (*admin)->DeleteTopic(name); !s.ok()) return ReportError(s);
  std::printf("Deleted topic %s.\n", name.c_str());
  return kExitOk;
}

int Alter(const ParsedArgs& args, const std::string& nameservers) {
  if (args.positional().size() != 1) return ReportUsage("topic alter takes one TOPIC", kTopicUsage);
  const std::string& name = args.positional()[0];
  if (absl::Status s = ValidateTopicName(name); !s.ok()) return ReportError(s);
  absl::StatusOr<int64_t> partitions = args.GetInt("partitions", 0, 1, 1 << 20);
  if (!partitions.ok()) return ReportUsage(std::string(partitions.status().message()), kTopicUsage);
  if (*partitions == 0) return ReportUsage("topic alter needs --partitions N", kTopicUsage);
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  absl::StatusOr<client::TopicInfo> info =
      (*admin)->CreatePartitions(name, static_cast<int32_t>(*partitions));
  if (!info.ok()) return ReportError(info.status());
  std::printf("Topic %s now has %zu partition(s).\n", info->name.c_str(), info->partitions.size());
  return kExitOk;
}

}  // namespace

int RunTopic(const std::vector<std::string>& args, const std::string& nameservers) {
  if (args.empty()) return ReportUsage("topic needs a subcommand", kTopicUsage);
  const std::string& sub = args.front();
  std::vector<std::string> rest(args.begin() + 1, args.end());
  std::vector<FlagSpec> specs;
  if (sub == "create") {
    specs = {{"partitions"}, {"replication-factor"}, {"config", true, true}};
  } else if (sub == "alter") {
    specs = {{"partitions"}};
  } else if (sub != "list" && sub != "describe" && sub != "delete") {
    return ReportUsage("unknown topic subcommand '" + sub + "'", kTopicUsage);
  }
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(rest, specs);
  if (!parsed.ok()) return ReportUsage(std::string(parsed.status().message()), kTopicUsage);
  if (sub == "create") return Create(*parsed, nameservers);
  if (sub == "list") return List(*parsed, nameservers);
  if (sub == "describe") return Describe(*parsed, nameservers);
  if (sub == "alter") return Alter(*parsed, nameservers);
  return Delete(*parsed, nameservers);
}

}  // namespace brook::tools
