// Command-line parsing for the `brook` tool: subcommands with `--name value`
// and `--name=value` flags. absl::flags is process-global and cannot express a
// different flag set per subcommand, so the tool parses its own argv here.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace brook::tools {

// One flag a command accepts. A flag with takes_value=false is a switch.
struct FlagSpec {
  std::string name;  // without the leading "--"
  bool takes_value = true;
  bool repeated = false;
};

// The flags and positional arguments of one command line.
class ParsedArgs {
 public:
  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // The last value given for `name`, if any.
  std::optional<std::string> Get(const std::string& name) const;
  // Every value given for a repeated flag, in order.
  std::vector<std::string> GetAll(const std::string& name) const;

  // Typed accessors: `fallback` when the flag is absent; InvalidArgument when
  // its value does not parse or lies outside [min, max].
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback,
                                 int64_t min = INT64_MIN, int64_t max = INT64_MAX) const;

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                              const std::vector<FlagSpec>& specs);
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> values_;
};

// Parses `args` (the words after the subcommand) against `specs`. Accepts
// `--name value`, `--name=value` and `--` (the rest is positional). Unknown
// flags, a missing value and a repeated non-repeatable flag are
// InvalidArgument errors, which the tool reports as usage errors.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs);

// Parses a whole decimal integer ("12", "-3"); InvalidArgument otherwise.
absl::StatusOr<int64_t> ParseInt(const std::string& text, const std::string& what);

}  // namespace brook::tools
