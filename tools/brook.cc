// `brook`: the command-line tool. Topic administration, produce from stdin,
// consume to stdout, and the benchmark. This file holds main(): global flags,
// dispatch and help; the subcommands live in *_command.cc.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "brook/types.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "tools/commands.h"

namespace brook::tools {
namespace {

constexpr char kUsage[] =
    "usage: brook [--nameserver HOST:PORT[,...]] <command> [args]\n"
    "\n"
    "commands:\n"
    "  cluster describe                    coordinators, brokers and their liveness\n"
    "  topic create|list|describe|delete|alter   administer topics\n"
    "  produce TOPIC                       send stdin lines as records\n"
    "  consume TOPIC                       print records to stdout\n"
    "  group list|describe|delete|reset-offsets  consumer groups, offsets and lag\n"
    "  queue receive|ack|nack|describe     queue subscriptions from the shell\n"
    "  bench produce|consume|e2e TOPIC     measure throughput and latency\n"
    "  help [command]                      show this text or a command's usage\n"
    "\n"
    "--nameserver defaults to $BROOK_NAMESERVER, else 127.0.0.1:9876.\n"
    "Run `brook <command> --help` for a command's flags.\n";

const char* UsageOf(const std::string& command) {
  if (command == "topic") return kTopicUsage;
  if (command == "produce") return kProduceUsage;
  if (command == "consume") return kConsumeUsage;
  if (command == "bench") return kBenchUsage;
  if (command == "cluster") return kClusterUsage;
  if (command == "group") return kGroupUsage;
  if (command == "queue") return kQueueUsage;
  return nullptr;
}

int Main(int argc, char** argv) {
  // stdout carries records and JSON only; every log line goes to stderr.
  spdlog::set_default_logger(spdlog::stderr_color_mt("brook"));
  // --nameserver may come before or after the command; take it out here so
  // the commands see only their own flags.
  std::string nameservers;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--nameserver") {
      if (i + 1 >= argc) return ReportUsage("--nameserver needs a value", kUsage);
      nameservers = argv[++i];
    } else if (a.rfind("--nameserver=", 0) == 0) {
      nameservers = a.substr(std::string("--nameserver=").size());
    } else {
      words.push_back(std::move(a));
    }
  }
  if (nameservers.empty()) nameservers = brook::client::DefaultNameservers();

  if (words.empty()) return ReportUsage("no command given", kUsage);
  const std::string command = words.front();
  std::vector<std::string> rest(words.begin() + 1, words.end());

  if (command == "help" || command == "--help" || command == "-h") {
    if (!rest.empty()) {
      const char* usage = UsageOf(rest.front());
      if (usage == nullptr) return ReportUsage("unknown command '" + rest.front() + "'", kUsage);
      std::fputs(usage, stdout);
      return kExitOk;
    }
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  const char* usage = UsageOf(command);
  if (usage == nullptr) return ReportUsage("unknown command '" + command + "'", kUsage);
  if (WantsHelp(rest)) {
    std::fputs(usage, stdout);
    return kExitOk;
  }
  if (command == "topic") return RunTopic(rest, nameservers);
  if (command == "produce") return RunProduce(rest, nameservers);
  if (command == "consume") return RunConsume(rest, nameservers);
  if (command == "cluster") return RunCluster(rest, nameservers);
  if (command == "group") return RunGroup(rest, nameservers);
  if (command == "queue") return RunQueue(rest, nameservers);
  return RunBench(rest, nameservers);
}

}  // namespace
}  // namespace brook::tools

int main(int argc, char** argv) { return brook::tools::Main(argc, argv); }
