// Kafka's murmur2 key hash, so that a key lands on the same partition as with
// Kafka's default partitioner.
#pragma once

#include <cstdint>
#include <string_view>

namespace brook {

// Kafka's Utils.murmur2 (seed 0x9747b28c), returned as the same 32 bits.
int32_t Murmur2(std::string_view key);

// Kafka's default partition for a non-null key: toPositive(murmur2(key)) % n.
int32_t PartitionForKey(std::string_view key, int32_t num_partitions);

}  // namespace brook
