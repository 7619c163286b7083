// Values, fields and tuples of the streams data model.
#include "brook/streams/tuple.h"

#include <cstring>
#include <stdexcept>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "brook/streams/component.h"
#include "brook/streams/topology.h"

namespace brook::streams {
namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t Fnv(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

uint64_t FnvU64(uint64_t h, uint64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
  return Fnv(h, b, 8);
}

uint64_t Fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

}  // namespace

uint64_t Value::StableHash() const {
  unsigned char tag = static_cast<unsigned char>(v_.index());
  uint64_t h = Fnv(kFnvOffset, &tag, 1);
  switch (type()) {
    case Type::kInt64:
      h = FnvU64(h, static_cast<uint64_t>(as_int64()));
      break;
    case Type::kDouble: {
      double d = as_double();
      if (d == 0) d = 0;  // -0.0 and 0.0 are equal, so hash alike
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof(bits));
      h = FnvU64(h, bits);
      break;
    }
    case Type::kString:
      h = Fnv(h, as_string().data(), as_string().size());
      break;
    case Type::kBytes:
      h = Fnv(h, as_bytes().data.data(), as_bytes().data.size());
      break;
    case Type::kBool: {
      unsigned char b = as_bool() ? 1 : 0;
      h = Fnv(h, &b, 1);
      break;
    }
  }
  return Fmix64(h);
}

std::string Value::DebugString() const {
  switch (type()) {
    case Type::kInt64:
      return absl::StrCat(as_int64());
    case Type::kDouble:
      return absl::StrCat(as_double());
    case Type::kString:
      return absl::StrCat("\"", absl::CEscape(as_string()), "\"");
    case Type::kBytes:
      return absl::StrCat("b\"", absl::CHexEscape(as_bytes().data), "\"");
    case Type::kBool:
      return as_bool() ? "true" : "false";
  }
  return "?";
}

int Fields::index_of(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

const Value& Tuple::get(std::string_view field) const {
  int i = impl_->stream->fields.index_of(field);
  if (i < 0) {
    throw std::out_of_range(absl::StrCat("tuple from ", impl_->stream->component, "/",
                                         impl_->stream->stream, " has no field '",
                                         std::string(field), "'"));
  }
  return impl_->values.at(static_cast<size_t>(i));
}

bool Tuple::is_tick() const {
  return impl_->stream->component == kSystemComponent && impl_->stream->stream == kTickStream;
}

std::vector<int> TopologyContext::component_tasks(const std::string& component) const {
  auto it = component_tasks_.find(component);
  if (it == component_tasks_.end()) return {};
  return it->second;
}

}  // namespace brook::streams
