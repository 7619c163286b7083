// The subcommands of the `brook` tool. Each takes the words after its name
// (with the global --nameserver already removed) and returns the process exit
// code: 0 success, 1 an error (printed as "brook: <message>"), 2 a usage error
// (printed with the command's usage text).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace brook::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// Prints "brook: <message>" to stderr; returns kExitError.
int ReportError(const absl::Status& status);
// Prints "brook: <message>" and `usage` to stderr; returns kExitUsage.
int ReportUsage(const std::string& message, const std::string& usage);

// Kafka's topic name rule: 1..249 characters of [a-zA-Z0-9._-], not "." or "..".
absl::Status ValidateTopicName(const std::string& topic);

// NotFound ("topic 'x' does not exist") unless the coordinator lists `topic`.
// The client libraries treat an unknown topic as retriable (metadata may lag
// a creation) and would wait their whole request timeout; the tool asks the
// authoritative list once instead.
absl::Status CheckTopicExists(const std::string& nameservers, const std::string& topic);

// Whether `args` asks for help (--help or -h before any "--").
bool WantsHelp(const std::vector<std::string>& args);

// Prints `rows` (the first is the header) to stdout as columns as wide as
// their widest cell, two spaces apart.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

// `s` as a JSON string literal (quotes, backslashes and control characters
// escaped).
std::string JsonString(const std::string& s);

int RunTopic(const std::vector<std::string>& args, const std::string& nameservers);
int RunProduce(const std::vector<std::string>& args, const std::string& nameservers);
int RunConsume(const std::vector<std::string>& args, const std::string& nameservers);
int RunBench(const std::vector<std::string>& args, const std::string& nameservers);
int RunCluster(const std::vector<std::string>& args, const std::string& nameservers);
int RunGroup(const std::vector<std::string>& args, const std::string& nameservers);
int RunQueue(const std::vector<std::string>& args, const std::string& nameservers);

extern const char kTopicUsage[];
extern const char kProduceUsage[];
extern const char kConsumeUsage[];
extern const char kBenchUsage[];
extern const char kClusterUsage[];
extern const char kGroupUsage[];
extern const char kQueueUsage[];

}  // namespace brook::tools
