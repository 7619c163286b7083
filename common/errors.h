// The one place that maps internal absl::Status values to wire error codes
// and says which codes a client may retry.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "proto/brook.pb.h"

namespace brook {

// Statuses carry a wire code in their payload under this URL when the
// canonical code alone is ambiguous (see WithErrorCode).
inline constexpr char kErrorCodePayload[] = "brook.dev/error-code";

// Returns `s` tagged with a specific wire error code.
absl::Status WithErrorCode(absl::Status s, proto::ErrorCode code);
absl::Status MakeError(proto::ErrorCode code, std::string_view message);

// The wire code for a status: the tagged code if any, else one derived from
// the canonical code (OK -> NONE).
proto::ErrorCode ToErrorCode(const absl::Status& s);

// The status a client sees for a wire error (NONE -> OK), tagged with `code`.
absl::Status FromErrorCode(proto::ErrorCode code, std::string_view message);

// Whether a client may retry a request that failed with `code`.
bool IsRetriable(proto::ErrorCode code);

}  // namespace brook
