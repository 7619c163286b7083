// TopologyBuilder and topology validation.
#include "brook/streams/topology.h"

#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace brook::streams {
namespace {

// Collects one component's declarations, remembering the first error.
class CollectingDeclarer : public OutputDeclarer {
 public:
  explicit CollectingDeclarer(const std::string& component) : component_(component) {}

  void declare_stream(const std::string& stream, Fields fields, bool direct) override {
    if (!error_.ok()) return;
    if (stream.empty() || stream.rfind("__", 0) == 0) {
      error_ = absl::InvalidArgumentError(absl::StrCat(
          "component '", component_, "' declares reserved or empty stream name '", stream, "'"));
      return;
    }
    for (const auto& s : streams_) {
      if (s.name == stream) {
        error_ = absl::InvalidArgumentError(
            absl::StrCat("component '", component_, "' declares stream '", stream, "' twice"));
        return;
      }
    }
    std::set<std::string> seen;
    for (const auto& f : fields.names()) {
      if (!seen.insert(f).second) {
        error_ = absl::InvalidArgumentError(absl::StrCat(
            "component '", component_, "' stream '", stream, "' declares field '", f, "' twice"));
        return;
      }
    }
    streams_.push_back(StreamSpec{stream, std::move(fields), direct});
  }

  const std::string& component_;
  std::vector<StreamSpec> streams_;
  absl::Status error_;
};

const char* GroupingName(GroupingType t) {
  switch (t) {
    case GroupingType::kShuffle:
      return "shuffle";
    case GroupingType::kFields:
      return "fields";
    case GroupingType::kAll:
      return "all";
    case GroupingType::kGlobal:
      return "global";
    case GroupingType::kDirect:
      return "direct";
    case GroupingType::kLocalOrShuffle:
      return "local_or_shuffle";
  }
  return "?";
}

}  // namespace

const ComponentSpec* Topology::Find(const std::string& name) const {
  for (const auto& c : components_) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

absl::Status Topology::Validate() const {
  std::map<std::string, std::vector<StreamSpec>> outputs;
  return Analyze(&outputs);
}

absl::Status Topology::Analyze(std::map<std::string, std::vector<StreamSpec>>* outputs) const {
  outputs->clear();
  if (components_.empty()) return absl::InvalidArgumentError("topology has no components");
  bool has_spout = false;
  for (const auto& c : components_) {
    if (c.name.empty()) return absl::InvalidArgumentError("component with an empty name");
    if (c.name.rfind("__", 0) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("component name '", c.name, "' is reserved (starts with \"__\")"));
    }
    if (outputs->count(c.name)) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate component name '", c.name, "'"));
    }
    if (c.parallelism < 1) {
      return absl::InvalidArgumentError(absl::StrCat("component '", c.name, "' has parallelism ",
                                                     c.parallelism, " (must be >= 1)"));
    }
    CollectingDeclarer declarer(c.name);
    if (c.is_spout) {
      has_spout = true;
      if (!c.spout_factory) {
        return absl::InvalidArgumentError(absl::StrCat("spout '", c.name, "' has no factory"));
      }
      auto spout = c.spout_factory();
      if (!spout) {
        return absl::InvalidArgumentError(
            absl::StrCat("spout '", c.name, "' factory returned null"));
      }
      spout->declare_outputs(declarer);
    } else {
      if (!c.bolt_factory) {
        return absl::InvalidArgumentError(absl::StrCat("bolt '", c.name, "' has no factory"));
      }
      auto bolt = c.bolt_factory();
      if (!bolt) {
        return absl::InvalidArgumentError(
            absl::StrCat("bolt '", c.name, "' factory returned null"));
      }
      bolt->declare_outputs(declarer);
    }
    if (!declarer.error_.ok()) return declarer.error_;
    (*outputs)[c.name] = std::move(declarer.streams_);
  }
  if (!has_spout) return absl::InvalidArgumentError("topology has no spout");

  // Subscriptions.
  for (const auto& c : components_) {
    if (c.is_spout) continue;
    if (c.inputs.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bolt '", c.name, "' subscribes to no stream"));
    }
    std::set<std::pair<std::string, std::string>> subscribed;
    for (const auto& g : c.inputs) {
      std::string what = absl::StrCat("bolt '", c.name, "': ", GroupingName(g.type),
                                      " grouping on '", g.source, "' stream '", g.stream, "'");
      auto it = outputs->find(g.source);
      if (it == outputs->end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": unknown source component '", g.source, "'"));
      }
      const StreamSpec* stream = nullptr;
      for (const auto& s : it->second) {
        if (s.name == g.stream) stream = &s;
      }
      if (stream == nullptr) {
        std::vector<std::string> names;
        for (const auto& s : it->second) names.push_back(s.name);
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": component '", g.source, "' declares no stream '", g.stream,
                         "' (it declares: ", absl::StrJoin(names, ", "), ")"));
      }
      if (!subscribed.insert({g.source, g.stream}).second) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": subscribed twice"));
      }
      if (g.type == GroupingType::kFields) {
        if (g.fields.size() == 0) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": no fields given"));
        }
        for (const auto& f : g.fields.names()) {
          if (!stream->fields.contains(f)) {
            return absl::InvalidArgumentError(absl::StrCat(
                what, ": field '", f,
                "' is not declared (declared: ", absl::StrJoin(stream->fields.names(), ", "), ")"));
          }
        }
      }
      if (g.type == GroupingType::kDirect && !stream->direct) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": direct grouping needs a stream declared direct"));
      }
      if (g.type != GroupingType::kDirect && stream->direct) {
        return absl::InvalidArgumentError(
            absl::StrCat(what, ": the stream is direct; only direct grouping may subscribe"));
      }
    }
  }

  // Cycles: depth-first search with colours; report the cycle's path.
  std::map<std::string, int> colour;  // 0 white, 1 on stack, 2 done
  std::vector<std::string> stack;
  std::function<absl::Status(const ComponentSpec&)> visit =
      [&](const ComponentSpec& c) -> absl::Status {
    colour[c.name] = 1;
    stack.push_back(c.name);
    for (const auto& g : c.inputs) {
      const ComponentSpec* src = Find(g.source);
      if (colour[src->name] == 1) {
        std::vector<std::string> cycle;
        auto from = std::find(stack.begin(), stack.end(), src->name);
        cycle.assign(from, stack.end());
        std::reverse(cycle.begin(), cycle.end());
        cycle.insert(cycle.begin(), c.name);
        return absl::InvalidArgumentError(
            absl::StrCat("topology has a cycle: ", absl::StrJoin(cycle, " -> ")));
      }
      if (colour[src->name] == 0) {
        absl::Status s = visit(*src);
        if (!s.ok()) return s;
      }
    }
    stack.pop_back();
    colour[c.name] = 2;
    return absl::OkStatus();
  };
  for (const auto& c : components_) {
    if (colour[c.name] == 0) {
      absl::Status s = visit(c);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

void TopologyBuilder::set_spout(const std::string& name, SpoutFactory factory, int parallelism) {
  ComponentSpec c;
  c.name = name;
  c.is_spout = true;
  c.parallelism = parallelism;
  c.spout_factory = std::move(factory);
  components_.push_back(std::move(c));
}

BoltDeclarer TopologyBuilder::set_bolt(const std::string& name, BoltFactory factory,
                                       int parallelism) {
  ComponentSpec c;
  c.name = name;
  c.parallelism = parallelism;
  c.bolt_factory = std::move(factory);
  components_.push_back(std::move(c));
  return BoltDeclarer(this, components_.size() - 1);
}

BoltDeclarer& BoltDeclarer::Add(Grouping g) {
  builder_->components_[index_].inputs.push_back(std::move(g));
  return *this;
}

BoltDeclarer& BoltDeclarer::shuffle_grouping(const std::string& source, const std::string& stream) {
  return Add(Grouping{GroupingType::kShuffle, source, stream, {}});
}
BoltDeclarer& BoltDeclarer::fields_grouping(const std::string& source, const Fields& fields) {
  return Add(Grouping{GroupingType::kFields, source, std::string(kDefaultStream), fields});
}
BoltDeclarer& BoltDeclarer::fields_grouping(const std::string& source, const std::string& stream,
                                            const Fields& fields) {
  return Add(Grouping{GroupingType::kFields, source, stream, fields});
}
BoltDeclarer& BoltDeclarer::all_grouping(const std::string& source, const std::string& stream) {
  return Add(Grouping{GroupingType::kAll, source, stream, {}});
}
BoltDeclarer& BoltDeclarer::global_grouping(const std::string& source, const std::string& stream) {
  return Add(Grouping{GroupingType::kGlobal, source, stream, {}});
}
BoltDeclarer& BoltDeclarer::direct_grouping(const std::string& source, const std::string& stream) {
  return Add(Grouping{GroupingType::kDirect, source, stream, {}});
}
BoltDeclarer& BoltDeclarer::local_or_shuffle_grouping(const std::string& source,
                                                      const std::string& stream) {
  return Add(Grouping{GroupingType::kLocalOrShuffle, source, stream, {}});
}

}  // namespace brook::streams
