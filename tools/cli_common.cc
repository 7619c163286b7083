// Helpers shared by the `brook` subcommands: error reporting and checks.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/admin.h"
#include "tools/commands.h"

namespace brook::tools {

int ReportError(const absl::Status& status) {
  std::string message(status.message());
  if (message.empty()) message = status.ToString();
  std::fprintf(stderr, "brook: %s\n", message.c_str());
  return kExitError;
}

int ReportUsage(const std::string& message, const std::string& usage) {
  std::fprintf(stderr, "brook: %s\n\n%s", message.c_str(), usage.c_str());
  return kExitUsage;
}

absl::Status ValidateTopicName(const std::string& topic) {
  if (topic.empty()) return absl::InvalidArgumentError("invalid topic name: empty");
  if (topic == "." || topic == "..") {
    return absl::InvalidArgumentError(absl::StrCat("invalid topic name '", topic, "'"));
  }
  if (topic.size() > 249) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid topic name '", topic, "': longer than 249 characters"));
  }
  for (char c : topic) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid topic name '", topic, "': only letters, digits, '.', '_' and '-' are allowed"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTopicExists(const std::string& nameservers, const std::string& topic) {
  client::AdminConfig config;
  config.nameservers = nameservers;
  absl::StatusOr<std::unique_ptr<client::Admin>> admin = client::Admin::Create(config);
  if (!admin.ok()) return admin.status();
  absl::StatusOr<std::vector<client::TopicInfo>> topics = (*admin)->ListTopics();
  if (!topics.ok()) return topics.status();
  for (const client::TopicInfo& t : *topics) {
    if (t.name == topic) return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("topic '", topic, "' does not exist"));
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--") return false;
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

}  // namespace brook::tools
