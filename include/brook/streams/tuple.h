// Streams data model: typed values, declared field names, and tuples as they
// flow between spouts and bolts. A Tuple is a cheap, shared handle; copies
// refer to the same values and the same acking state.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace brook::streams {

// Reserved names. A component's default output stream, and the system
// component / stream that tick tuples come from.
inline constexpr std::string_view kDefaultStream = "default";
inline constexpr std::string_view kSystemComponent = "__system";
inline constexpr std::string_view kTickStream = "__tick";

// Opaque bytes, distinct from text so that a value keeps its declared type.
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};

// One typed value of a tuple: int64, double, string, bytes or bool.
// Accessors of the wrong type throw std::bad_variant_access; inside a bolt's
// execute that fails the tuple (the runtime catches it at the task boundary).
class Value {
 public:
  Value() : v_(int64_t{0}) {}
  // Any integer type except bool becomes int64.
  template <typename I,
            std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  Value(I i) : v_(static_cast<int64_t>(i)) {}        // NOLINT: implicit by design
  Value(double d) : v_(d) {}                         // NOLINT
  Value(bool b) : v_(b) {}                           // NOLINT
  Value(std::string s) : v_(std::move(s)) {}         // NOLINT
  Value(std::string_view s) : v_(std::string(s)) {}  // NOLINT
  Value(const char* s) : v_(std::string(s)) {}       // NOLINT
  Value(Bytes b) : v_(std::move(b)) {}               // NOLINT

  enum class Type { kInt64 = 0, kDouble = 1, kString = 2, kBytes = 3, kBool = 4 };
  Type type() const { return static_cast<Type>(v_.index()); }

  bool is_int64() const { return type() == Type::kInt64; }
  bool is_double() const { return type() == Type::kDouble; }
  bool is_string() const { return type() == Type::kString; }
  bool is_bytes() const { return type() == Type::kBytes; }
  bool is_bool() const { return type() == Type::kBool; }

  int64_t as_int64() const { return std::get<int64_t>(v_); }
  double as_double() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const Bytes& as_bytes() const { return std::get<Bytes>(v_); }
  bool as_bool() const { return std::get<bool>(v_); }

  // A hash that is the same in every process and on every run (fields
  // grouping depends on it): 64-bit FNV-1a over the type tag and the value's
  // bytes (integers and doubles little-endian), then a murmur3 finalizer.
  uint64_t StableHash() const;

  // Human-readable form, for logs and examples.
  std::string DebugString() const;

  bool operator==(const Value&) const = default;

 private:
  std::variant<int64_t, double, std::string, Bytes, bool> v_;
};

using Values = std::vector<Value>;

// The ordered field names of one output stream.
class Fields {
 public:
  Fields() = default;
  Fields(std::initializer_list<std::string> names) : names_(names) {}
  explicit Fields(std::vector<std::string> names) : names_(std::move(names)) {}

  size_t size() const { return names_.size(); }
  const std::string& operator[](size_t i) const { return names_[i]; }
  const std::vector<std::string>& names() const { return names_; }
  // Position of `name`, or -1.
  int index_of(std::string_view name) const;
  bool contains(std::string_view name) const { return index_of(name) >= 0; }

  bool operator==(const Fields&) const = default;

 private:
  std::vector<std::string> names_;
};

namespace detail {

// Where a stream's tuples come from; shared by all tuples of the stream.
struct StreamInfo {
  std::string component;
  std::string stream;
  Fields fields;
};

// The state behind a Tuple handle. Owned by the task that holds the tuple;
// `ack_val` and `state` are only touched by that task's thread.
struct TupleImpl {
  Values values;
  std::shared_ptr<const StreamInfo> stream;
  int source_task = -1;
  // The spout-tuple trees this tuple belongs to: (root id, XOR of the ids
  // of the edges from its anchors to it in that tree). Empty: untracked.
  std::vector<std::pair<uint64_t, uint64_t>> roots;
  uint64_t ack_val = 0;  // XOR of the ids of edges to tuples anchored to this one
  enum State : uint8_t { kPending, kAcked, kFailed } state = kPending;
};

}  // namespace detail

// A tuple received by a bolt. Values are addressed by index or by the field
// names its source stream declared. Copies share the same values and acking
// state; a bolt may keep a tuple and ack it later (from its own task only).
class Tuple {
 public:
  Tuple() = default;
  explicit Tuple(std::shared_ptr<detail::TupleImpl> impl) : impl_(std::move(impl)) {}

  size_t size() const { return impl_->values.size(); }
  const Values& values() const { return impl_->values; }
  const Value& get(size_t i) const { return impl_->values.at(i); }
  // Throws std::out_of_range for a field the stream did not declare.
  const Value& get(std::string_view field) const;

  int64_t get_int64(std::string_view f) const { return get(f).as_int64(); }
  double get_double(std::string_view f) const { return get(f).as_double(); }
  const std::string& get_string(std::string_view f) const { return get(f).as_string(); }
  const Bytes& get_bytes(std::string_view f) const { return get(f).as_bytes(); }
  bool get_bool(std::string_view f) const { return get(f).as_bool(); }

  const Fields& fields() const { return impl_->stream->fields; }
  const std::string& source_component() const { return impl_->stream->component; }
  const std::string& source_stream() const { return impl_->stream->stream; }
  int source_task() const { return impl_->source_task; }
  // The acker's id of this tuple in its first tree (0 when untracked:
  // acking off, a tick, or not anchored to any tracked spout tuple).
  uint64_t message_id() const { return impl_->roots.empty() ? 0 : impl_->roots[0].second; }
  bool tracked() const { return !impl_->roots.empty(); }
  bool is_tick() const;

  bool valid() const { return impl_ != nullptr; }
  detail::TupleImpl* impl() const { return impl_.get(); }

 private:
  std::shared_ptr<detail::TupleImpl> impl_;
};

}  // namespace brook::streams
