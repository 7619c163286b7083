// Ready-made bolts from lambdas: filter, map, flat-map, and a keyed
// aggregation (with keyed count as its common case). Each anchors what it
// emits to its input and acks the input after the function returns; an
// exception from the function fails the input instead. Functions run on the
// bolt task's thread; a factory's function is shared by all its tasks, so it
// must be safe to call concurrently (plain lambdas without shared mutable
// state are).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "brook/streams/topology.h"

namespace brook::streams {

// Passes through (same values) the tuples for which `keep` is true. `fields`
// is the declared output (normally the input stream's fields).
BoltFactory FilterBolt(Fields fields, std::function<bool(const Tuple&)> keep);

// Emits one tuple per input.
BoltFactory MapBolt(Fields output, std::function<Values(const Tuple&)> fn);

// Emits any number of tuples per input through `emit`.
using Emit = std::function<void(Values)>;
BoltFactory FlatMapBolt(Fields output, std::function<void(const Tuple&, const Emit&)> fn);

struct AggregateOptions {
  std::vector<std::string> key_fields;  // input fields making the key
  std::string output_field = "value";   // name of the aggregate in the output
  Value initial = Value(int64_t{0});
  // acc <- fn(acc, input)
  std::function<Value(const Value& acc, const Tuple& input)> fn;
  // Emit (key fields..., aggregate) after each update, anchored to the input.
  // Off: emits nothing (use on_cleanup or a downstream query of your own).
  bool emit_updates = true;
  // Called from cleanup with every key's final aggregate of this task.
  std::function<void(const Values& key, const Value& aggregate)> on_cleanup;
};

// Keeps one aggregate per key, in memory, per task. Subscribe it with a
// fields grouping on the key fields so that each key lives in one task.
// Output fields: key_fields..., output_field.
BoltFactory KeyedAggregateBolt(AggregateOptions options);

// KeyedAggregateBolt counting tuples per key; output (key_fields..., "count").
BoltFactory KeyedCountBolt(std::vector<std::string> key_fields, bool emit_updates = true,
                           std::function<void(const Values&, const Value&)> on_cleanup = nullptr);

}  // namespace brook::streams
