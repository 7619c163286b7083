// Filter, map, flat-map and keyed-aggregation bolts built from functions.
#include "brook/streams/helpers.h"

#include <memory>

#include "absl/container/flat_hash_map.h"

namespace brook::streams {
namespace {

// Runs `body` for the input, acking it afterwards; an exception propagates
// to the runtime, which fails the input.
class FunctionBolt : public IBolt {
 public:
  using Body = std::function<void(const Tuple&, OutputCollector*)>;
  FunctionBolt(Fields output, Body body) : output_(std::move(output)), body_(std::move(body)) {}

  void prepare(const TopologyContext&, OutputCollector* collector) override {
    collector_ = collector;
  }
  void execute(const Tuple& input) override {
    if (input.is_tick()) return;
    body_(input, collector_);
    collector_->ack(input);
  }
  void declare_outputs(OutputDeclarer& d) override { d.declare(output_); }

 private:
  Fields output_;
  Body body_;
  OutputCollector* collector_ = nullptr;
};

struct ValuesHash {
  size_t operator()(const Values& v) const {
    uint64_t h = 0;
    for (const auto& x : v) h = h * 0x9e3779b97f4a7c15ull + x.StableHash();
    return static_cast<size_t>(h);
  }
};

class AggregateBolt : public IBolt {
 public:
  explicit AggregateBolt(std::shared_ptr<const AggregateOptions> options)
      : options_(std::move(options)) {}

  void prepare(const TopologyContext&, OutputCollector* collector) override {
    collector_ = collector;
  }
  void execute(const Tuple& input) override {
    if (input.is_tick()) return;
    // By name on every tuple: inputs from several streams may order their
    // fields differently. Tuple::get throws for a missing field.
    key_.clear();
    for (const auto& f : options_->key_fields) key_.push_back(input.get(f));
    auto it = state_.find(key_);
    Value acc = it == state_.end() ? options_->initial : it->second;
    acc = options_->fn(acc, input);
    if (it == state_.end()) {
      it = state_.emplace(key_, acc).first;
    } else {
      it->second = acc;
    }
    if (options_->emit_updates) {
      Values out = key_;
      out.push_back(std::move(acc));
      collector_->emit(input, std::move(out));
    }
    collector_->ack(input);
  }
  void cleanup() override {
    if (!options_->on_cleanup) return;
    for (const auto& [k, v] : state_) options_->on_cleanup(k, v);
  }
  void declare_outputs(OutputDeclarer& d) override {
    std::vector<std::string> names = options_->key_fields;
    names.push_back(options_->output_field);
    d.declare(Fields(std::move(names)));
  }

 private:
  std::shared_ptr<const AggregateOptions> options_;
  OutputCollector* collector_ = nullptr;
  Values key_;
  absl::flat_hash_map<Values, Value, ValuesHash> state_;
};

}  // namespace

BoltFactory FilterBolt(Fields fields, std::function<bool(const Tuple&)> keep) {
  auto body = [keep = std::move(keep)](const Tuple& in, OutputCollector* out) {
    if (keep(in)) out->emit(in, in.values());
  };
  return
      [fields = std::move(fields), body] { return std::make_unique<FunctionBolt>(fields, body); };
}

BoltFactory MapBolt(Fields output, std::function<Values(const Tuple&)> fn) {
  auto body = [fn = std::move(fn)](const Tuple& in, OutputCollector* out) {
    out->emit(in, fn(in));
  };
  return
      [output = std::move(output), body] { return std::make_unique<FunctionBolt>(output, body); };
}

BoltFactory FlatMapBolt(Fields output, std::function<void(const Tuple&, const Emit&)> fn) {
  auto body = [fn = std::move(fn)](const Tuple& in, OutputCollector* out) {
    fn(in, [&](Values v) { out->emit(in, std::move(v)); });
  };
  return
      [output = std::move(output), body] { return std::make_unique<FunctionBolt>(output, body); };
}

BoltFactory KeyedAggregateBolt(AggregateOptions options) {
  auto shared = std::make_shared<const AggregateOptions>(std::move(options));
  return [shared] { return std::make_unique<AggregateBolt>(shared); };
}

BoltFactory KeyedCountBolt(std::vector<std::string> key_fields, bool emit_updates,
                           std::function<void(const Values&, const Value&)> on_cleanup) {
  AggregateOptions o;
  o.key_fields = std::move(key_fields);
  o.output_field = "count";
  o.initial = Value(int64_t{0});
  o.fn = [](const Value& acc, const Tuple&) { return Value(acc.as_int64() + 1); };
  o.emit_updates = emit_updates;
  o.on_cleanup = std::move(on_cleanup);
  return KeyedAggregateBolt(std::move(o));
}

}  // namespace brook::streams
