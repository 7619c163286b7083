// Building a topology: a DAG of spouts and bolts, each with a parallelism,
// whose bolts subscribe to streams of other components through groupings.
// Topology::Validate refuses an invalid graph with a clear error before
// anything runs. Not thread-safe; build on one thread, then share the
// (immutable) Topology freely.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "brook/streams/component.h"
#include "brook/streams/tuple.h"

namespace brook::streams {

class StateBackend;

// Runtime settings of one topology.
struct Config {
  // Track spout tuples with the XOR acker; spout ack/fail are called when a
  // tree completes, fails or times out. Off: tuples are not tracked and a
  // spout's ack(id) is called right after next_tuple returns for every tuple
  // it emitted with a message id (fail is never called).
  bool acking = true;
  // A tracked tuple tree not completed this long after the spout emitted it
  // is failed back to the spout.
  std::chrono::milliseconds message_timeout{30000};
  // Per spout task: next_tuple is not called while this many tracked tuples
  // are un-acked. 0: no limit. Only meaningful with acking on.
  int max_spout_pending = 1000;
  // Capacity of each task's input queue, in tuples. An emit into a full queue
  // makes the emitting task wait. Emitters buffer up to 64 tuples per target
  // before handing them over, so a queue holds at most capacity + 63.
  size_t queue_capacity = 1024;
  // Bolt name -> interval of tick tuples (component "__system", stream
  // "__tick", no values) delivered to each of its tasks.
  std::map<std::string, std::chrono::milliseconds> tick_intervals;
  // Where bolts' keyed state (KeyValueState, brook/streams/state.h) keeps its
  // changelogs. Null: bolts cannot open keyed state.
  std::shared_ptr<StateBackend> state_backend;
};

enum class GroupingType { kShuffle, kFields, kAll, kGlobal, kDirect, kLocalOrShuffle };

struct Grouping {
  GroupingType type = GroupingType::kShuffle;
  std::string source;  // component
  std::string stream = std::string(kDefaultStream);
  Fields fields;  // kFields only
};

using SpoutFactory = std::function<std::unique_ptr<ISpout>()>;
using BoltFactory = std::function<std::unique_ptr<IBolt>()>;

// One component as declared to the builder.
struct ComponentSpec {
  std::string name;
  bool is_spout = false;
  int parallelism = 1;
  SpoutFactory spout_factory;
  BoltFactory bolt_factory;
  std::vector<Grouping> inputs;  // bolts only
};

// The declared output streams of one component.
struct StreamSpec {
  std::string name;
  Fields fields;
  bool direct = false;
};

// An immutable topology description. Factories are called once per task when
// it runs, and once more per component by Validate (to collect declared
// outputs), so they must be cheap and free of side effects.
class Topology {
 public:
  Topology() = default;
  explicit Topology(std::vector<ComponentSpec> components) : components_(std::move(components)) {}

  const std::vector<ComponentSpec>& components() const { return components_; }
  const ComponentSpec* Find(const std::string& name) const;

  // OK, or InvalidArgument naming the problem: empty topology, no spout,
  // duplicate or reserved component names, parallelism < 1, missing factory,
  // a stream declared twice, unknown source component or stream, fields
  // grouping on fields the stream does not declare, direct grouping on a
  // non-direct stream (or the reverse), cycles.
  absl::Status Validate() const;

  // Validates and returns each component's declared streams.
  absl::Status Analyze(std::map<std::string, std::vector<StreamSpec>>* outputs) const;

 private:
  std::vector<ComponentSpec> components_;
};

class TopologyBuilder;

// Returned by set_bolt: subscribes the bolt to other components' streams.
// Valid until the builder is destroyed or built.
class BoltDeclarer {
 public:
  BoltDeclarer(TopologyBuilder* builder, size_t index) : builder_(builder), index_(index) {}

  // Tuples spread round-robin over the bolt's tasks.
  BoltDeclarer& shuffle_grouping(const std::string& source,
                                 const std::string& stream = std::string(kDefaultStream));
  // Tuples with equal values of `fields` always go to the same task.
  BoltDeclarer& fields_grouping(const std::string& source, const Fields& fields);
  BoltDeclarer& fields_grouping(const std::string& source, const std::string& stream,
                                const Fields& fields);
  // Every task gets a copy.
  BoltDeclarer& all_grouping(const std::string& source,
                             const std::string& stream = std::string(kDefaultStream));
  // Every tuple goes to the task with the lowest id.
  BoltDeclarer& global_grouping(const std::string& source,
                                const std::string& stream = std::string(kDefaultStream));
  // The emitter chooses the task (emit_direct); the stream must be direct.
  BoltDeclarer& direct_grouping(const std::string& source,
                                const std::string& stream = std::string(kDefaultStream));
  // Prefers tasks in the emitter's worker process; in one process (LocalCluster)
  // every task is local, so this is shuffle.
  BoltDeclarer& local_or_shuffle_grouping(const std::string& source,
                                          const std::string& stream = std::string(kDefaultStream));

 private:
  BoltDeclarer& Add(Grouping g);
  TopologyBuilder* builder_;
  size_t index_;
};

class TopologyBuilder {
 public:
  // Errors (duplicates, parallelism < 1, ...) are reported by Validate.
  void set_spout(const std::string& name, SpoutFactory factory, int parallelism = 1);
  BoltDeclarer set_bolt(const std::string& name, BoltFactory factory, int parallelism = 1);
  Topology build() const { return Topology(components_); }

 private:
  friend class BoltDeclarer;
  std::vector<ComponentSpec> components_;
};

}  // namespace brook::streams
