// Helpers shared by the `brook` subcommands: error reporting and checks.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c + 1 == row.size() || c >= width.size()) {
        line += row[c];
      } else {
        line += absl::StrFormat("%-*s  ", static_cast<int>(width[c]), row[c]);
      }
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<int>(static_cast<unsigned char>(c)));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace brook::tools
