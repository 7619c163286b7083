// Runs the real `brook` binary (BROOK_CLI_BIN, defined by the test target)
// or another program as a subprocess, for the command-line tool's and the
// examples' integration tests.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace brook::testing {

struct CliResult {
  int exit_code = -1;  // 128+signal when killed
  std::string out;
  std::string err;
};

// Runs `brook args...` with `input` on stdin; kills it after `timeout`.
CliResult RunCli(const std::vector<std::string>& args, const std::string& input = "",
                 std::chrono::seconds timeout = std::chrono::seconds(30));

// The same for any program (an example binary).
CliResult RunProgram(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& input = "",
                     std::chrono::seconds timeout = std::chrono::seconds(30));

// "exit N", stdout and stderr, for assertion messages.
std::string Describe(const CliResult& r);

}  // namespace brook::testing
