// Topic config validation and conversion.
#include "client/topic_config.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace brook::client {
namespace {

absl::StatusOr<int64_t> ParseInt(const std::string& key, const std::string& value, int64_t min,
                                 int64_t max) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", key, "='", value, "' is not an integer"));
  }
  if (v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("config ", key, "=", v, " is out of range [",
                                                   min, ", ", max, "]"));
  }
  return v;
}

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();

}  // namespace

absl::StatusOr<proto::TopicConfig> TopicConfigFromMap(const std::map<std::string, std::string>& m) {
  proto::TopicConfig c;
  for (const auto& [key, value] : m) {
    if (key == "flush.policy") {
      const std::string v = absl::AsciiStrToLower(value);
      if (v == "always") {
        c.set_flush_policy(proto::FLUSH_ALWAYS);
      } else if (v == "interval") {
        c.set_flush_policy(proto::FLUSH_INTERVAL);
      } else if (v == "os") {
        c.set_flush_policy(proto::FLUSH_OS);
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("config flush.policy='", value, "' is not one of always, interval, os"));
      }
      continue;
    }
    if (key == "unclean.leader.election.enable") {
      const std::string v = absl::AsciiStrToLower(value);
      if (v != "true" && v != "false") {
        return absl::InvalidArgumentError(absl::StrCat(
            "config unclean.leader.election.enable='", value, "' is not true or false"));
      }
      c.set_unclean_leader_election(v == "true");
      continue;
    }
    if (key == "cleanup.policy") {
      std::string v = absl::AsciiStrToLower(value);
      v.erase(std::remove(v.begin(), v.end(), ' '), v.end());
      if (v == "delete") {
        c.set_cleanup_policy(proto::CLEANUP_DELETE);
      } else if (v == "compact") {
        c.set_cleanup_policy(proto::CLEANUP_COMPACT);
      } else if (v == "compact,delete" || v == "delete,compact") {
        c.set_cleanup_policy(proto::CLEANUP_COMPACT_DELETE);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "config cleanup.policy='", value, "' is not one of delete, compact, compact,delete"));
      }
      continue;
    }
    if (key == "min.cleanable.dirty.ratio") {
      double d = 0;
      if (!absl::SimpleAtod(value, &d) || !(d >= 0.0 && d <= 1.0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config min.cleanable.dirty.ratio='", value, "' is not a number in [0, 1]"));
      }
      c.set_min_cleanable_dirty_ratio(d);
      continue;
    }
    absl::StatusOr<int64_t> v;
    if (key == "flush.ms") {
      v = ParseInt(key, value, 0, kI64Max);
      if (v.ok()) c.set_flush_interval_ms(*v);
    } else if (key == "segment.bytes") {
      v = ParseInt(key, value, 1, kI64Max);
      if (v.ok()) c.set_segment_bytes(*v);
    } else if (key == "segment.ms") {
      v = ParseInt(key, value, 1, kI64Max);
      if (v.ok()) c.set_segment_ms(*v);
    } else if (key == "retention.ms") {
      v = ParseInt(key, value, -1, kI64Max);
      if (v.ok()) c.set_retention_ms(*v);
    } else if (key == "retention.bytes") {
      v = ParseInt(key, value, -1, kI64Max);
      if (v.ok()) c.set_retention_bytes(*v);
    } else if (key == "max.message.bytes") {
      v = ParseInt(key, value, 1, kI32Max);
      if (v.ok()) c.set_max_message_bytes(static_cast<int32_t>(*v));
    } else if (key == "min.insync.replicas") {
      v = ParseInt(key, value, 1, kI32Max);
      if (v.ok()) c.set_min_insync_replicas(static_cast<int32_t>(*v));
    } else if (key == "delete.retention.ms") {
      v = ParseInt(key, value, 0, kI64Max);
      if (v.ok()) c.set_delete_retention_ms(*v);
    } else if (key == "min.compaction.lag.ms") {
      v = ParseInt(key, value, 0, kI64Max);
      if (v.ok()) c.set_min_compaction_lag_ms(*v);
    } else if (key == "index.interval.bytes") {
      v = ParseInt(key, value, 1, kI32Max);
      if (v.ok()) c.set_index_interval_bytes(static_cast<int32_t>(*v));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown topic config '", key, "'"));
    }
    if (!v.ok()) return v.status();
  }
  if (c.has_flush_interval_ms() && c.flush_policy() != proto::FLUSH_INTERVAL &&
      c.flush_policy() != proto::FLUSH_DEFAULT) {
    return absl::InvalidArgumentError("config flush.ms needs flush.policy=interval");
  }
  return c;
}

std::map<std::string, std::string> TopicConfigToMap(const proto::TopicConfig& c) {
  std::map<std::string, std::string> m;
  switch (c.flush_policy()) {
    case proto::FLUSH_ALWAYS: m["flush.policy"] = "always"; break;
    case proto::FLUSH_INTERVAL: m["flush.policy"] = "interval"; break;
    case proto::FLUSH_OS: m["flush.policy"] = "os"; break;
    default: break;
  }
  if (c.has_flush_interval_ms()) m["flush.ms"] = absl::StrCat(c.flush_interval_ms());
  if (c.has_segment_bytes()) m["segment.bytes"] = absl::StrCat(c.segment_bytes());
  if (c.has_segment_ms()) m["segment.ms"] = absl::StrCat(c.segment_ms());
  if (c.has_retention_ms()) m["retention.ms"] = absl::StrCat(c.retention_ms());
  if (c.has_retention_bytes()) m["retention.bytes"] = absl::StrCat(c.retention_bytes());
  if (c.has_max_message_bytes()) m["max.message.bytes"] = absl::StrCat(c.max_message_bytes());
  if (c.has_min_insync_replicas()) m["min.insync.replicas"] = absl::StrCat(c.min_insync_replicas());
  if (c.has_index_interval_bytes()) {
    m["index.interval.bytes"] = absl::StrCat(c.index_interval_bytes());
  }
  if (c.has_unclean_leader_election()) {
    m["unclean.leader.election.enable"] = c.unclean_leader_election() ? "true" : "false";
  }
  if (c.has_cleanup_policy()) {
    switch (c.cleanup_policy()) {
      case proto::CLEANUP_COMPACT: m["cleanup.policy"] = "compact"; break;
      case proto::CLEANUP_COMPACT_DELETE: m["cleanup.policy"] = "compact,delete"; break;
      default: m["cleanup.policy"] = "delete"; break;
    }
  }
  if (c.has_delete_retention_ms()) m["delete.retention.ms"] = absl::StrCat(c.delete_retention_ms());
  if (c.has_min_cleanable_dirty_ratio()) {
    m["min.cleanable.dirty.ratio"] = absl::StrCat(c.min_cleanable_dirty_ratio());
  }
  if (c.has_min_compaction_lag_ms()) {
    m["min.compaction.lag.ms"] = absl::StrCat(c.min_compaction_lag_ms());
  }
  return m;
}

}  // namespace brook::client
