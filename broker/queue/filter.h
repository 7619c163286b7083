// Tag filters of queue subscriptions: "" or "*" matches every record,
// "a || b || c" records whose "brook-tags" header (comma-separated) names
// any of a, b, c. Anything else does not parse (INVALID_FILTER).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace brook::queue {

// The record headers the queue reads.
inline constexpr char kDeliverAtHeader[] = "brook-deliver-at";
inline constexpr char kTagsHeader[] = "brook-tags";

// An immutable parsed filter. Copyable; thread-compatible.
class TagFilter {
 public:
  // Matches everything.
  TagFilter() = default;
  // INVALID_FILTER (tagged InvalidArgument) when `expr` is not "", "*" or
  // tags joined by "||". A tag is non-empty, has no whitespace and none of
  // the characters | & ! ( ) * , = < > ' ".
  static absl::StatusOr<TagFilter> Parse(std::string_view expr);

  bool matches_all() const { return tags_.empty(); }
  // `tags_header`: the record's "brook-tags" value (nullopt: no header).
  // Untagged records match only a match-all filter.
  bool Matches(std::optional<std::string_view> tags_header) const;

  const std::string& expression() const { return expr_; }

 private:
  std::string expr_;
  std::vector<std::string> tags_;  // sorted, unique; empty: match all
};

}  // namespace brook::queue
