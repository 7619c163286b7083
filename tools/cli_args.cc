// Command-line parsing for the `brook` tool (see cli_args.h).
#include "tools/cli_args.h"

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace brook::tools {

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return {};
  return it->second;
}

absl::StatusOr<int64_t> ParsedArgs::GetInt(const std::string& name, int64_t fallback,
                                           int64_t min, int64_t max) const {
  std::optional<std::string> v = Get(name);
  if (!v) return fallback;
  absl::StatusOr<int64_t> n = ParseInt(*v, "--" + name);
  if (!n.ok()) return n.status();
  if (*n < min || *n > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be between ", min, " and ", max, ", got ", *n));
  }
  return *n;
}

absl::StatusOr<int64_t> ParseInt(const std::string& text, const std::string& what) {
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty number"));
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not an integer: '", text, "'"));
  }
  return static_cast<int64_t>(v);
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs) {
  ParsedArgs out;
  bool only_positional = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || a.size() < 3 || a.compare(0, 2, "--") != 0) {
      if (a == "--") {
        only_positional = true;
        continue;
      }
      out.positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!spec->takes_value) {
      if (value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      value = "true";
    } else if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    std::vector<std::string>& slot = out.values_[name];
    if (!slot.empty() && !spec->repeated && spec->takes_value) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " given more than once"));
    }
    slot.push_back(*value);
  }
  return out;
}

}  // namespace brook::tools
