// Streams over Brook topics: a spout reading a topic (from the group's
// committed offsets, committing only what is fully processed), a bolt writing
// tuples to a topic, and a keyed-state backend whose changelogs are topics.
// Library brook::streams_topics (links the producer and consumer clients).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "brook/consumer.h"
#include "brook/producer.h"
#include "brook/streams/state.h"
#include "brook/streams/topology.h"

namespace brook::streams {

struct TopicSpoutOptions {
  std::string topic;
  // The consumer group whose committed offsets the spout starts from and
  // commits to (standalone commits: the group must have no members).
  // Required.
  std::string group_id;
  std::string nameservers;  // empty: client::DefaultNameservers()
  // Where a partition with no committed offset starts.
  client::OffsetReset auto_offset_reset = client::OffsetReset::kEarliest;
  // How often the fully acked prefix of each partition is committed (also
  // on close).
  std::chrono::milliseconds commit_interval{1000};
  // How often the topic is checked for added partitions (0: never). The
  // consumer's metadata_max_age bounds how fresh the partition count is.
  std::chrono::milliseconds partition_check_interval{5000};
  // Emit key and value as Bytes instead of strings.
  bool bytes = false;
  // A failed (or timed out) record is replayed at most this many times, then
  // given up: logged, counted and treated as done so the partition's offset
  // can move on. -1: replay forever.
  int max_replays = -1;
  // Base consumer settings (fetch sizes, timeouts); topic, group, reset and
  // auto-commit above override it.
  client::ConsumerConfig consumer;
};

// Reads the partitions of `topic` assigned to its task: task i of n takes
// every partition p with p % n == i (more tasks than partitions leaves some
// idle), including partitions added while it runs (they start at their
// committed offset or else at their beginning). Emits one tuple per record
// on the default stream with fields key, value, topic, partition, offset,
// timestamp (key and value "" when null; int64 partition, offset and
// timestamp in ms), tracked with message id TopicMessageId(partition,
// offset). Acked offsets are committed per partition up to the first one not
// yet acked; a failed record is emitted again (same id) before new ones. With
// acking off every record counts as acked once emitted. open() fails (so
// Submit does) when the topic does not exist or the consumer cannot be
// created.
SpoutFactory TopicSpout(TopicSpoutOptions options);

// The output fields of TopicSpout.
Fields TopicSpoutFields();

// A topic spout's message id: partition in the top 16 bits, offset in the
// low 48.
inline uint64_t TopicMessageId(int32_t partition, int64_t offset) {
  return (static_cast<uint64_t>(static_cast<uint16_t>(partition)) << 48) |
         (static_cast<uint64_t>(offset) & ((uint64_t{1} << 48) - 1));
}
inline int32_t TopicMessagePartition(uint64_t id) { return static_cast<int32_t>(id >> 48); }
inline int64_t TopicMessageOffset(uint64_t id) {
  return static_cast<int64_t>(id & ((uint64_t{1} << 48) - 1));
}

// Bytes of a value as written to a topic: strings and bytes as they are,
// int64 and bool in decimal / "true" "false", double with %.17g.
std::string ValueToBytes(const Value& v);

struct TopicBoltOptions {
  std::string topic;
  std::string nameservers;  // empty: client::DefaultNameservers()
  // The record key: this input field (empty: no key, the producer spreads
  // records) or, when set, key_fn.
  std::string key_field;
  std::function<std::optional<std::string>(const Tuple&)> key_fn;
  // The record value: this input field or, when set, value_fn.
  std::string value_field = "value";
  std::function<std::optional<std::string>(const Tuple&)> value_fn;
  // Producer settings (acks, linger, ...); nameservers above overrides.
  client::ProducerConfig producer;
};

// Writes every input tuple as one record of `topic` with the task's own
// producer. The input is acked once the write is acknowledged, failed if it
// fails (or if key or value cannot be made: missing field, throwing
// function). Emits nothing. Cleanup flushes the producer. Ticks are ignored.
BoltFactory TopicBolt(TopicBoltOptions options);

struct TopicStateOptions {
  std::string nameservers;  // empty: client::DefaultNameservers()
  // Changelog topics that do not exist are created with one partition per
  // task of the component and this replication factor (0: server default).
  int32_t replication_factor = 0;
  // Producer settings for the changelog (acks, linger); nameservers above
  // overrides. Default: acks=all.
  client::ProducerConfig producer = [] {
    client::ProducerConfig c;
    c.acks = -1;
    c.linger = std::chrono::milliseconds(2);
    return c;
  }();
  // Restoring gives up after this long.
  std::chrono::milliseconds restore_timeout{60000};
};

// Keyed state whose changelogs are Brook topics named ChangelogTopic(id),
// task i writing partition i with key = state key and value = the latest
// value (null: deleted). Opening a state reads its partition from the start
// up to its end at that moment. The topic must have at least as many
// partitions as the component has tasks (FailedPrecondition otherwise).
// Changelog topics are created with cleanup.policy=compact: the broker's log
// cleaner keeps each key's latest value (a deletion's tombstone for the
// topic's delete.retention.ms), so restore time follows the number of live
// keys rather than of updates, apart from the not yet cleaned tail. A topic
// that already exists keeps its own configs.
std::shared_ptr<StateBackend> TopicStateBackend(TopicStateOptions options = {});

}  // namespace brook::streams
