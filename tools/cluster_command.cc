// `brook cluster describe [--json]`: the coordinator quorum (role, term, the
// leader) and the brokers (liveness, fencing, leader and replica counts), from
// API_DESCRIBE_CLUSTER through brook::client::Admin.
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

const char kClusterUsage[] =
    "usage:\n"
    "  brook cluster describe [--json]\n"
    "\n"
    "Shows the coordinator quorum (each member's role and term, and the leader)\n"
    "and the brokers (address, epoch, whether each holds a lease, is fenced, and\n"
    "how many partitions it leads and hosts), as the coordinator leader sees them.\n"
    "When no leader answers, a follower's view is shown (without brokers).\n"
    "--json prints one JSON object instead of tables.\n";

namespace {

std::string Json(const client::ClusterInfo& info) {
  std::vector<std::string> coords;
  for (const auto& c : info.coordinators) {
    coords.push_back(absl::StrFormat(
        "{\"id\":%d,\"address\":%s,\"role\":%s,\"term\":%d,\"leader\":%s,\"match_index\":%d,"
        "\"last_contact_ms\":%d}",
        c.id, JsonString(absl::StrCat(c.host, ":", c.port)), JsonString(c.role), c.term,
        c.id == info.leader_id ? "true" : "false", c.match_index, c.last_contact_ms));
  }
  std::vector<std::string> brokers;
  for (const auto& b : info.brokers) {
    brokers.push_back(absl::StrFormat(
        "{\"id\":%d,\"address\":%s,\"epoch\":%d,\"live\":%s,\"fenced\":%s,"
        "\"lease_remaining_ms\":%d,\"leaders\":%d,\"replicas\":%d}",
        b.id, JsonString(absl::StrCat(b.host, ":", b.port)), b.broker_epoch, b.live ? "true" : "false",
        b.fenced ? "true" : "false", b.lease_remaining_ms, b.leader_count, b.replica_count));
  }
  return absl::StrFormat(
      "{\"answered_by\":%d,\"leader_id\":%d,\"term\":%d,\"metadata_offset\":%d,"
      "\"commit_index\":%d,\"coordinators\":[%s],\"brokers\":[%s]}",
      info.answered_by, info.leader_id, info.term, info.metadata_offset, info.commit_index,
      absl::StrJoin(coords, ","), absl::StrJoin(brokers, ","));
}

std::string Known(int64_t v) { return v < 0 ? "-" : absl::StrCat(v); }

void PrintText(const client::ClusterInfo& info) {
  std::printf("Coordinator leader: %s\tTerm: %lld\tAnswered by: %d\n",
              info.leader_id < 0 ? "none" : absl::StrCat(info.leader_id).c_str(),
              static_cast<long long>(info.term), info.answered_by);
  std::vector<std::vector<std::string>> rows = {
      {"COORDINATOR", "ADDRESS", "ROLE", "TERM", "MATCH-INDEX", "LAST-CONTACT-MS"}};
  for (const auto& c : info.coordinators) {
    rows.push_back({absl::StrCat(c.id, c.id == info.leader_id ? "*" : ""),
                    absl::StrCat(c.host, ":", c.port), c.role.empty() ? "unknown" : c.role,
                    Known(c.term), Known(c.match_index), Known(c.last_contact_ms)});
  }
  PrintTable(rows);
  std::printf("\n");
  if (info.answered_by != info.leader_id) {
    std::printf("Brokers: unknown (no coordinator leader answered)\n");
    return;
  }
  rows = {{"BROKER", "ADDRESS", "EPOCH", "LIVE", "FENCED", "LEASE-MS", "LEADERS", "REPLICAS"}};
  for (const auto& b : info.brokers) {
    rows.push_back({absl::StrCat(b.id), absl::StrCat(b.host, ":", b.port),
                    absl::StrCat(b.broker_epoch), b.live ? "yes" : "no", b.fenced ? "yes" : "no",
                    absl::StrCat(b.lease_remaining_ms), absl::StrCat(b.leader_count),
                    absl::StrCat(b.replica_count)});
  }
  PrintTable(rows);
}

int Describe(const ParsedArgs& args, const std::string& nameservers) {
  if (!args.positional().empty()) {
    return ReportUsage("cluster describe takes no arguments", kClusterUsage);
  }
  client::AdminConfig config;
  config.nameservers = nameservers;
  config.request_timeout = std::chrono::seconds(10);
  auto admin = client::Admin::Create(config);
  if (!admin.ok()) return ReportError(admin.status());
  absl::StatusOr<client::ClusterInfo> info = (*admin)->DescribeCluster();
  if (!info.ok()) return ReportError(info.status());
  if (args.Has("json")) {
    std::printf("%s\n", Json(*info).c_str());
  } else {
    PrintText(*info);
  }
  return kExitOk;
}

}  // namespace

int RunCluster(const std::vector<std::string>& args, const std::string& nameservers) {
  if (args.empty()) return ReportUsage("cluster needs a subcommand", kClusterUsage);
  const std::string& sub = args.front();
  if (sub != "describe") {
    return ReportUsage("unknown cluster subcommand '" + sub + "'", kClusterUsage);
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(rest, {{"json", false}});
  if (!parsed.ok()) return ReportUsage(std::string(parsed.status().message()), kClusterUsage);
  return Describe(*parsed, nameservers);
}

}  // namespace brook::tools
