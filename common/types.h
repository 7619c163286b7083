// Strong types for the numbers that must not be confused: offsets, epochs,
// partition ids, node ids. A term cannot be passed where an offset is expected.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace brook {

template <typename T, typename Tag>
class NamedType {
 public:
  using value_type = T;
  constexpr NamedType() = default;
  constexpr explicit NamedType(T v) : v_(v) {}
  constexpr T value() const { return v_; }
  constexpr auto operator<=>(const NamedType&) const = default;
  constexpr NamedType operator+(T d) const { return NamedType(v_ + d); }
  constexpr NamedType operator-(T d) const { return NamedType(v_ - d); }
  constexpr T operator-(NamedType o) const { return v_ - o.v_; }
  constexpr NamedType& operator++() {
    ++v_;
    return *this;
  }
  constexpr NamedType& operator+=(T d) {
    v_ += d;
    return *this;
  }
  template <typename H>
  friend H AbslHashValue(H h, const NamedType& n) {
    return H::combine(std::move(h), n.v_);
  }
  friend std::ostream& operator<<(std::ostream& os, const NamedType& n) { return os << n.v_; }

 private:
  T v_{};
};

using Offset = NamedType<int64_t, struct OffsetTag>;
using LeaderEpoch = NamedType<int32_t, struct LeaderEpochTag>;
using PartitionId = NamedType<int32_t, struct PartitionIdTag>;
using NodeId = NamedType<int32_t, struct NodeIdTag>;
using ProducerId = NamedType<int64_t, struct ProducerIdTag>;
using Term = NamedType<int64_t, struct TermTag>;

// A topic and partition, the unit of storage and replication.
struct TopicPartition {
  std::string topic;
  PartitionId partition;
  auto operator<=>(const TopicPartition&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const TopicPartition& tp) {
    return H::combine(std::move(h), tp.topic, tp.partition);
  }
  std::string ToString() const { return topic + "-" + std::to_string(partition.value()); }
};

}  // namespace brook
