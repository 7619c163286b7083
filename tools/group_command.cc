// `brook group list|describe|delete|reset-offsets`: consumer group
// administration through brook::client::Admin, modelled on Kafka's
// kafka-consumer-groups.sh (committed offsets, log end offsets and lag per
// partition; members and their assignments; offset resets, dry run first).
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "brook/admin.h"
#include "tools/cli_args.h"
#include "tools/commands.h"

namespace brook::tools {

const char kGroupUsage[] =
    "usage:\n"
    "  brook group list [--json]\n"
    "  brook group describe GROUP [--members] [--json]\n"
    "  brook group delete GROUP...\n"
    "  brook group reset-offsets GROUP (--topic TOPIC[:P,P...] ... | --all-topics)\n"
    "      (--to-earliest | --to-latest | --to-datetime YYYY-MM-DDTHH:MM:SS[.mmm]Z\n"
    "       | --to-offset N | --shift-by N) [--execute]\n"
    "\n"
    "describe shows, per partition, the committed offset, the log end offset\n"
    "(high watermark), the lag and the member it is assigned to; --members shows\n"
    "each member with its assignment and total lag instead. --json prints one\n"
    "JSON object.\n"
    "delete removes groups without members, with their committed offsets.\n"
    "reset-offsets prints the planned offsets and changes nothing unless\n"
    "--execute is given. It refuses while the group has members. --topic may be\n"
    "repeated (all partitions unless listed); --all-topics takes every partition\n"
    "the group has committed. New offsets are clamped to [log start, log end].\n"
    "--to-datetime takes RFC 3339 (UTC when no zone is given): the first offset\n"
    "whose record timestamp is at or after it.\n";

namespace {

absl::StatusOr<std::unique_ptr<client::Admin>> MakeAdmin(const std::string& nameservers) {
  client::AdminConfig config;
  config.nameservers = nameservers;
  return client::Admin::Create(config);
}

std::string Dash(const std::string& s) { return s.empty() ? "-" : s; }
std::string Known(int64_t v) { return v < 0 ? "-" : absl::StrCat(v); }
std::string JsonNumber(int64_t v) { return v < 0 ? "null" : absl::StrCat(v); }

// "orders(0,1) payments(2)"; "-" when empty.
std::string AssignmentText(const std::vector<client::GroupTopicPartition>& parts) {
  std::map<std::string, std::vector<int32_t>> by_topic;
  for (const auto& tp : parts) by_topic[tp.topic].push_back(tp.partition);
  std::vector<std::string> out;
  for (const auto& [t, ps] : by_topic)
    out.push_back(absl::StrCat(t, "(", absl::StrJoin(ps, ","), ")"));
  return out.empty() ? "-" : absl::StrJoin(out, " ");
}

// Total lag of a member's partitions; -1 when any of them is unknown.
int64_t MemberLag(const client::GroupMemberInfo& m,
                  const std::vector<client::GroupPartitionOffsets>& offsets) {
  int64_t total = 0;
  for (const auto& tp : m.assignment) {
    bool found = false;
    for (const auto& o : offsets) {
      if (o.topic != tp.topic || o.partition != tp.partition) continue;
      found = true;
      if (o.lag < 0) return -1;
      total += o.lag;
    }
    if (!found) return -1;
  }
  return total;
}

int List(const ParsedArgs& args, const std::string& nameservers) {
  if (!args.positional().empty()) return ReportUsage("group list takes no arguments", kGroupUsage);
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  auto groups = (*admin)->ListGroups();
  if (!groups.ok()) return ReportError(groups.status());
  if (args.Has("json")) {
    std::vector<std::string> items;
    for (const auto& g : *groups) {
      items.push_back(absl::StrFormat("{\"group\":%s,\"protocol_type\":%s,\"state\":%s}",
                                      JsonString(g.group_id), JsonString(g.protocol_type),
                                      JsonString(g.state)));
    }
    std::printf("{\"groups\":[%s]}\n", absl::StrJoin(items, ",").c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"GROUP", "PROTOCOL-TYPE", "STATE"}};
  for (const auto& g : *groups) rows.push_back({g.group_id, Dash(g.protocol_type), g.state});
  PrintTable(rows);
  return kExitOk;
}

std::string DescribeJson(const client::GroupDescription& d,
                         const std::vector<client::GroupPartitionOffsets>& offsets) {
  std::vector<std::string> members;
  for (const auto& m : d.members) {
    std::vector<std::string> assignment;
    for (const auto& tp : m.assignment) {
      assignment.push_back(
          absl::StrFormat("{\"topic\":%s,\"partition\":%d}", JsonString(tp.topic), tp.partition));
    }
    std::vector<std::string> subscribed;
    for (const auto& t : m.subscribed_topics) subscribed.push_back(JsonString(t));
    members.push_back(absl::StrFormat(
        "{\"member_id\":%s,\"instance_id\":%s,\"client_id\":%s,\"host\":%s,"
        "\"assignment\":%s,\"subscription\":[%s],\"lag\":%s}",
        JsonString(m.member_id),
        m.group_instance_id.empty() ? "null" : JsonString(m.group_instance_id),
        JsonString(m.client_id), JsonString(m.host),
        m.assignment_known ? absl::StrCat("[", absl::StrJoin(assignment, ","), "]") : "null",
        absl::StrJoin(subscribed, ","),
        m.assignment_known ? JsonNumber(MemberLag(m, offsets)) : "null"));
  }
  std::vector<std::string> parts;
  for (const auto& o : offsets) {
    parts.push_back(absl::StrFormat(
        "{\"topic\":%s,\"partition\":%d,\"committed\":%s,\"metadata\":%s,\"log_end\":%s,"
        "\"lag\":%s,\"member_id\":%s,\"client_id\":%s,\"host\":%s}",
        JsonString(o.topic), o.partition, JsonNumber(o.committed_offset), JsonString(o.metadata),
        JsonNumber(o.log_end_offset), JsonNumber(o.lag),
        o.member_id.empty() ? "null" : JsonString(o.member_id),
        o.member_id.empty() ? "null" : JsonString(o.client_id),
        o.member_id.empty() ? "null" : JsonString(o.host)));
  }
  return absl::StrFormat(
      "{\"group\":%s,\"state\":%s,\"protocol_type\":%s,\"protocol\":%s,\"generation\":%d,"
      "\"leader\":%s,\"members\":[%s],\"partitions\":[%s]}",
      JsonString(d.group_id), JsonString(d.state), JsonString(d.protocol_type),
      JsonString(d.protocol_name), d.generation, d.leader.empty() ? "null" : JsonString(d.leader),
      absl::StrJoin(members, ","), absl::StrJoin(parts, ","));
}

int Describe(const ParsedArgs& args, const std::string& nameservers) {
  if (args.positional().size() != 1) {
    return ReportUsage("group describe takes one GROUP", kGroupUsage);
  }
  const std::string& group = args.positional()[0];
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  auto desc = (*admin)->DescribeGroup(group);
  if (!desc.ok()) return ReportError(desc.status());
  auto offsets = (*admin)->GroupOffsets(group);
  if (!offsets.ok()) return ReportError(offsets.status());
  if (args.Has("json")) {
    std::printf("%s\n", DescribeJson(*desc, *offsets).c_str());
    return kExitOk;
  }

  std::string protocol = desc->protocol_type.empty() ? "-" : desc->protocol_type;
  if (!desc->protocol_name.empty()) absl::StrAppend(&protocol, "/", desc->protocol_name);
  std::printf("Group: %s\tState: %s\tProtocol: %s\tGeneration: %d\tMembers: %zu\n",
              desc->group_id.c_str(), desc->state.c_str(), protocol.c_str(), desc->generation,
              desc->members.size());
  if (!desc->leader.empty()) std::printf("Leader: %s\n", desc->leader.c_str());
  std::printf("\n");

  if (args.Has("members")) {
    if (desc->members.empty()) {
      std::printf("Group %s has no active members.\n", group.c_str());
      return kExitOk;
    }
    std::vector<std::vector<std::string>> rows = {
        {"MEMBER", "INSTANCE", "CLIENT", "HOST", "PARTITIONS", "LAG", "ASSIGNMENT"}};
    for (const auto& m : desc->members) {
      rows.push_back({m.member_id, Dash(m.group_instance_id), Dash(m.client_id), Dash(m.host),
                      m.assignment_known ? absl::StrCat(m.assignment.size()) : "?",
                      m.assignment_known ? Known(MemberLag(m, *offsets)) : "-",
                      m.assignment_known ? AssignmentText(m.assignment) : "(rebalancing)"});
    }
    PrintTable(rows);
    return kExitOk;
  }

  if (offsets->empty()) {
    std::printf("Group %s has no committed offsets and no assigned partitions.\n", group.c_str());
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER", "CLIENT", "HOST"}};
  for (const auto& o : *offsets) {
    rows.push_back({o.topic, absl::StrCat(o.partition), Known(o.committed_offset),
                    Known(o.log_end_offset), Known(o.lag), Dash(o.member_id), Dash(o.client_id),
                    Dash(o.host)});
  }
  PrintTable(rows);
  return kExitOk;
}

int Delete(const ParsedArgs& args, const std::string& nameservers) {
  if (args.positional().empty()) {
    return ReportUsage("group delete takes one or more GROUPs", kGroupUsage);
  }
  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  auto results = (*admin)->DeleteGroups(args.positional());
  if (!results.ok()) return ReportError(results.status());
  int code = kExitOk;
  std::set<std::string> seen;
  for (const std::string& g : args.positional()) {
    if (!seen.insert(g).second) continue;
    const absl::Status& s = (*results)[g];
    if (s.ok()) {
      std::printf("Deleted group %s.\n", g.c_str());
    } else {
      code = ReportError(s);
    }
  }
  return code;
}

// "2026-11-24T10:00:00Z", with optional fractional seconds and zone offset;
// UTC when no zone is given. Milliseconds since the epoch.
absl::StatusOr<int64_t> ParseDateTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err) ||
      absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S", text, absl::UTCTimeZone(), &t, &err)) {
    return absl::ToUnixMillis(t);
  }
  return absl::InvalidArgumentError(absl::StrCat("--to-datetime: cannot parse '", text,
                                                 "' (expected e.g. 2026-11-24T10:00:00Z)"));
}

int ResetOffsets(const ParsedArgs& args, const std::string& nameservers) {
  if (args.positional().size() != 1) {
    return ReportUsage("group reset-offsets takes one GROUP", kGroupUsage);
  }
  const std::string& group = args.positional()[0];

  client::OffsetResetSelection selection;
  selection.all_topics = args.Has("all-topics");
  const std::vector<std::string> topics = args.GetAll("topic");
  if (selection.all_topics == !topics.empty()) {
    return ReportUsage("give either --topic (one or more) or --all-topics", kGroupUsage);
  }
  for (const std::string& t : topics) {
    const size_t colon = t.find(':');
    const std::string name = t.substr(0, colon);
    if (absl::Status s = ValidateTopicName(name); !s.ok()) return ReportError(s);
    std::vector<int32_t>& parts = selection.topics[name];
    if (colon == std::string::npos) continue;
    const std::vector<std::string> list = absl::StrSplit(t.substr(colon + 1), ',');
    for (const std::string& p : list) {
      absl::StatusOr<int64_t> n = ParseInt(p, "--topic " + t + " partition");
      if (!n.ok() || *n < 0 || *n > INT32_MAX) {
        return ReportUsage(absl::StrCat("--topic ", t, ": partitions are non-negative integers"),
                           kGroupUsage);
      }
      parts.push_back(static_cast<int32_t>(*n));
    }
  }

  client::OffsetResetSpec spec;
  int specs = 0;
  for (const char* flag : {"to-earliest", "to-latest", "to-datetime", "to-offset", "shift-by"}) {
    if (args.Has(flag)) ++specs;
  }
  if (specs != 1) {
    return ReportUsage(
        "give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by",
        kGroupUsage);
  }
  if (args.Has("to-earliest")) {
    spec.kind = client::OffsetResetSpec::Kind::kEarliest;
  } else if (args.Has("to-latest")) {
    spec.kind = client::OffsetResetSpec::Kind::kLatest;
  } else if (args.Has("to-datetime")) {
    absl::StatusOr<int64_t> ms = ParseDateTime(*args.Get("to-datetime"));
    if (!ms.ok()) return ReportUsage(std::string(ms.status().message()), kGroupUsage);
    if (*ms < 0) return ReportUsage("--to-datetime must not be before 1970", kGroupUsage);
    spec.kind = client::OffsetResetSpec::Kind::kTimestamp;
    spec.value = *ms;
  } else if (args.Has("to-offset")) {
    absl::StatusOr<int64_t> n = args.GetInt("to-offset", 0, 0);
    if (!n.ok()) return ReportUsage(std::string(n.status().message()), kGroupUsage);
    spec.kind = client::OffsetResetSpec::Kind::kOffset;
    spec.value = *n;
  } else {
    absl::StatusOr<int64_t> n = args.GetInt("shift-by", 0);
    if (!n.ok()) return ReportUsage(std::string(n.status().message()), kGroupUsage);
    spec.kind = client::OffsetResetSpec::Kind::kShiftBy;
    spec.value = *n;
  }
  const bool execute = args.Has("execute");

  auto admin = MakeAdmin(nameservers);
  if (!admin.ok()) return ReportError(admin.status());
  auto plan = (*admin)->ResetGroupOffsets(group, selection, spec, !execute);
  if (!plan.ok()) return ReportError(plan.status());

  std::vector<std::vector<std::string>> rows = {
      {"TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET", "LOG-START", "LOG-END"}};
  for (const auto& r : *plan) {
    rows.push_back({r.topic, absl::StrCat(r.partition), Known(r.old_offset),
                    absl::StrCat(r.new_offset), Known(r.log_start_offset),
                    Known(r.log_end_offset)});
  }
  PrintTable(rows);
  std::printf("\n");
  if (execute) {
    std::printf("Reset the offsets of group %s for %zu partition(s).\n", group.c_str(),
                plan->size());
  } else {
    std::printf("Dry run: nothing was changed. Add --execute to commit these offsets.\n");
  }
  return kExitOk;
}

}  // namespace

int RunGroup(const std::vector<std::string>& args, const std::string& nameservers) {
  if (args.empty()) return ReportUsage("group needs a subcommand", kGroupUsage);
  const std::string& sub = args.front();
  std::vector<std::string> rest(args.begin() + 1, args.end());
  std::vector<FlagSpec> specs;
  if (sub == "list") {
    specs = {{"json", false}};
  } else if (sub == "describe") {
    specs = {{"json", false}, {"members", false}};
  } else if (sub == "reset-offsets") {
    specs = {{"topic", true, true}, {"all-topics", false}, {"to-earliest", false},
             {"to-latest", false},  {"to-datetime"},       {"to-offset"},
             {"shift-by"},          {"execute", false}};
  } else if (sub != "delete") {
    return ReportUsage("unknown group subcommand '" + sub + "'", kGroupUsage);
  }
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(rest, specs);
  if (!parsed.ok()) return ReportUsage(std::string(parsed.status().message()), kGroupUsage);
  if (sub == "list") return List(*parsed, nameservers);
  if (sub == "describe") return Describe(*parsed, nameservers);
  if (sub == "reset-offsets") return ResetOffsets(*parsed, nameservers);
  return Delete(*parsed, nameservers);
}

}  // namespace brook::tools
