// The examples' command-line flags: `--name=value` and bare `--name`
// switches, nothing else. Header-only, shared by the example programs.
//
//   ExampleFlags flags(argc, argv);
//   flags.String("nameservers", &f.nameservers);
//   flags.Int("records", &f.records, /*min=*/1);
//   flags.Switch("forever", &f.forever);
//   if (!flags.Done("streams_join.cc")) return 2;
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace brook::examples {

class ExampleFlags {
 public:
  ExampleFlags(int argc, char** argv) : args_(argv + 1, argv + argc), used_(args_.size()) {}

  // Sets `*out` from --name=VALUE when present.
  void String(const std::string& name, std::string* out) {
    const std::string prefix = "--" + name + "=";
    for (size_t i = 0; i < args_.size(); ++i) {
      if (args_[i].rfind(prefix, 0) == 0) {
        *out = args_[i].substr(prefix.size());
        used_[i] = true;
      }
    }
  }
  // Sets `*out` from --name=N when present, raised to at least `min`.
  void Int(const std::string& name, int* out, int min = 0) {
    std::string v;
    String(name, &v);
    if (!v.empty()) *out = std::max(min, std::atoi(v.c_str()));
  }
  // Sets `*out` to true when --name is present.
  void Switch(const std::string& name, bool* out) {
    for (size_t i = 0; i < args_.size(); ++i) {
      if (args_[i] == "--" + name) {
        *out = true;
        used_[i] = true;
      }
    }
  }
  // False (after printing the first one) if an argument was not consumed by
  // the calls above; `source` names the file whose comment documents them.
  bool Done(const char* source) const {
    for (size_t i = 0; i < args_.size(); ++i) {
      if (!used_[i]) {
        std::fprintf(stderr, "unknown argument %s (see the comment atop %s)\n", args_[i].c_str(),
                     source);
        return false;
      }
    }
    return true;
  }

 private:
  std::vector<std::string> args_;
  std::vector<bool> used_;
};

}  // namespace brook::examples
