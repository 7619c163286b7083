// Blocking LIST_OFFSETS against partition leaders, shared by Admin and the
// consumer's position lookups.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/connection_pool.h"
#include "client/metadata_cache.h"

namespace brook::client {

struct OffsetQuery {
  std::string topic;
  int32_t partition = 0;
  int64_t timestamp = -1;  // -2 earliest, -1 latest, else a time in ms
  // Filled in by ListOffsets:
  absl::Status status = absl::UnknownError("not asked");
  int64_t offset = -1;
};

// Asks each query's leader (per `metadata`), one request per leader. Each
// query gets its own status; a missing route or a failed connection fails
// the queries it concerns. Blocking; not on the pool's io_context thread.
void ListOffsets(ConnectionPool* pool, const MetadataCache& metadata,
                 std::vector<OffsetQuery>* queries, std::chrono::milliseconds timeout);

}  // namespace brook::client
