// CRC32C (Castagnoli), as Kafka's RecordBatch v2 uses: the SSE4.2 `crc32`
// instruction where the CPU has it, a slicing table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace brook {

// Extends `crc` (0 to start) over `n` bytes at `data`.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32c(0, data, n); }

// The portable table implementation, exposed for tests.
uint32_t Crc32cPortable(uint32_t crc, const void* data, size_t n);

}  // namespace brook
