// Tag filter parsing and matching (see filter.h).
#include "broker/queue/filter.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"

namespace brook::queue {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && absl::ascii_isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool ValidTag(std::string_view t) {
  if (t.empty()) return false;
  for (char c : t) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
    switch (c) {
      case '|': case '&': case '!': case '(': case ')': case '*': case ',':
      case '=': case '<': case '>': case '\'': case '"':
        return false;
      default: break;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<TagFilter> TagFilter::Parse(std::string_view expr) {
  TagFilter f;
  f.expr_ = std::string(expr);
  std::string_view body = Trim(expr);
  if (body.empty() || body == "*") return f;
  size_t pos = 0;
  while (true) {
    size_t bar = body.find("||", pos);
    std::string_view part = Trim(body.substr(pos, bar == std::string_view::npos ? std::string_view::npos
                                                                                 : bar - pos));
    if (!ValidTag(part)) {
      return MakeError(proto::INVALID_FILTER,
                       absl::StrCat("invalid tag filter \"", std::string(expr),
                                    "\": expected \"*\" or tags joined by \"||\""));
    }
    f.tags_.emplace_back(part);
    if (bar == std::string_view::npos) break;
    pos = bar + 2;
  }
  std::sort(f.tags_.begin(), f.tags_.end());
  f.tags_.erase(std::unique(f.tags_.begin(), f.tags_.end()), f.tags_.end());
  return f;
}

bool TagFilter::Matches(std::optional<std::string_view> tags_header) const {
  if (tags_.empty()) return true;
  if (!tags_header.has_value()) return false;
  std::string_view rest = *tags_header;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view tag = Trim(rest.substr(0, comma));
    if (!tag.empty() && std::binary_search(tags_.begin(), tags_.end(), tag)) return true;
    if (comma == std::string_view::npos) return false;
    rest.remove_prefix(comma + 1);
  }
}

}  // namespace brook::queue
