// The interfaces user code implements (ISpout, IBolt) and the ones it calls
// (collectors, output declarer, topology context).
//
// Threading: every method of one spout or bolt instance is called from one
// task at a time (never concurrently), though not always from the same OS
// thread. Collectors may only be used from inside those calls.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "brook/streams/tuple.h"

namespace brook::streams {

// A spout's own id for a tuple it wants acked or failed back.
using MessageId = uint64_t;

struct Config;

// What a task learns about its place in the running topology.
class TopologyContext {
 public:
  TopologyContext(const Config* config, std::string component, int task_id, int task_index,
                  std::map<std::string, std::vector<int>> component_tasks,
                  std::string topology = "")
      : config_(config),
        component_(std::move(component)),
        task_id_(task_id),
        task_index_(task_index),
        component_tasks_(std::move(component_tasks)),
        topology_(std::move(topology)) {}

  const Config& config() const { return *config_; }
  // The name the topology was submitted under (metric labels, changelog
  // topic names).
  const std::string& topology() const { return topology_; }
  const std::string& component() const { return component_; }
  // Global task id, unique within the topology (the target of emit_direct).
  int task_id() const { return task_id_; }
  // 0 .. parallelism-1 within this component.
  int task_index() const { return task_index_; }
  // Global task ids of a component, ascending; empty if there is none.
  std::vector<int> component_tasks(const std::string& component) const;

 private:
  const Config* config_;
  std::string component_;
  int task_id_;
  int task_index_;
  std::map<std::string, std::vector<int>> component_tasks_;
  std::string topology_;
};

// Declares a component's output streams and their fields.
class OutputDeclarer {
 public:
  virtual ~OutputDeclarer() = default;
  // Declares the default stream.
  void declare(Fields fields) { declare_stream(std::string(kDefaultStream), std::move(fields)); }
  // A direct stream may only be emitted with emit_direct and only be
  // subscribed with direct_grouping; any other stream is the opposite.
  virtual void declare_stream(const std::string& stream, Fields fields, bool direct = false) = 0;
};

// A bolt's way out. Anchoring an emitted tuple to input tuples adds it to
// their tuple trees: the spout tuples are complete only once it is acked too.
// Anchors already acked or failed are ignored (anchor before acking). Emitting
// on an undeclared stream, with the wrong number of values, or emit vs
// emit_direct on the wrong kind of stream throws std::invalid_argument (in
// execute, that fails the input).
class OutputCollector {
 public:
  virtual ~OutputCollector() = default;

  virtual void emit(const std::string& stream, std::span<const Tuple> anchors, Values values) = 0;
  // Sends to one task (a global task id) that subscribes to `stream` with
  // direct grouping; to any other task the tuple is dropped and counted as an
  // error.
  virtual void emit_direct(int task_id, const std::string& stream, std::span<const Tuple> anchors,
                           Values values) = 0;
  // Every tuple a bolt receives must be acked or failed exactly once
  // (repeats are ignored). Failing fails the whole tree at once.
  virtual void ack(const Tuple& tuple) = 0;
  virtual void fail(const Tuple& tuple) = 0;

  // Thread-safe, unlike everything else here: runs `fn` on this bolt's task
  // soon (at the start of its next turn), where it may emit, ack and fail as
  // from execute. For completions that arrive on other threads, e.g. a
  // producer's acknowledgement of a write the input tuple waits for. An
  // exception from `fn` is logged and counted. Work posted after the
  // topology stopped running never runs.
  virtual void post(std::function<void()> fn) = 0;

  // Conveniences on the default stream.
  void emit(Values values) { emit(std::string(kDefaultStream), {}, std::move(values)); }
  void emit(const Tuple& anchor, Values values) {
    emit(std::string(kDefaultStream), std::span<const Tuple>(&anchor, 1), std::move(values));
  }
  void emit_to(const std::string& stream, const Tuple& anchor, Values values) {
    emit(stream, std::span<const Tuple>(&anchor, 1), std::move(values));
  }
};

// A spout's way out. A tuple emitted with a message id is tracked (when
// acking is on): the spout's ack(id) or fail(id) is called once its tree
// completes, fails or times out. Emit errors throw as for OutputCollector.
class SpoutOutputCollector {
 public:
  virtual ~SpoutOutputCollector() = default;
  virtual void emit(const std::string& stream, Values values,
                    std::optional<MessageId> message_id) = 0;
  virtual void emit_direct(int task_id, const std::string& stream, Values values,
                           std::optional<MessageId> message_id) = 0;

  void emit(Values values) { emit(std::string(kDefaultStream), std::move(values), std::nullopt); }
  void emit(Values values, MessageId id) {
    emit(std::string(kDefaultStream), std::move(values), id);
  }
};

// A source of tuples. next_tuple should emit a few tuples (or none) and
// return promptly; it is not called while max_spout_pending tuples of this
// task are un-acked. Exceptions thrown by these methods are caught, logged
// and counted by the runtime.
class ISpout {
 public:
  virtual ~ISpout() = default;
  // Called once, before anything else; `collector` outlives the spout's use.
  virtual void open(const TopologyContext& context, SpoutOutputCollector* collector) = 0;
  virtual void next_tuple() = 0;
  virtual void ack(MessageId /*id*/) {}
  virtual void fail(MessageId /*id*/) {}
  virtual void close() {}
  // Called on a separate instance when the topology is validated.
  virtual void declare_outputs(OutputDeclarer& declarer) = 0;
};

// A processing step. execute is called once per input tuple (and per tick
// tuple if a tick interval is configured for the component).
class IBolt {
 public:
  virtual ~IBolt() = default;
  virtual void prepare(const TopologyContext& /*context*/, OutputCollector* collector) {
    (void)collector;
  }
  // An exception escaping execute fails `input` (unless already acked or
  // failed); the runtime logs and counts it and keeps running.
  virtual void execute(const Tuple& input) = 0;
  virtual void cleanup() {}
  // Called on a separate instance when the topology is validated. A bolt
  // that emits nothing may declare nothing.
  virtual void declare_outputs(OutputDeclarer& /*declarer*/) {}
};

}  // namespace brook::streams
