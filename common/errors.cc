// Mapping between absl::Status and wire error codes.
#include "common/errors.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace brook {

absl::Status WithErrorCode(absl::Status s, proto::ErrorCode code) {
  if (s.ok()) return s;
  s.SetPayload(kErrorCodePayload, absl::Cord(std::to_string(static_cast<int>(code))));
  return s;
}

static absl::StatusCode CanonicalFor(proto::ErrorCode code) {
  using proto::ErrorCode;
  switch (code) {
    case ErrorCode::NONE: return absl::StatusCode::kOk;
    case ErrorCode::UNKNOWN_TOPIC_OR_PARTITION: return absl::StatusCode::kNotFound;
    case ErrorCode::TOPIC_ALREADY_EXISTS: return absl::StatusCode::kAlreadyExists;
    case ErrorCode::OFFSET_OUT_OF_RANGE: return absl::StatusCode::kOutOfRange;
    case ErrorCode::STORAGE_FULL: return absl::StatusCode::kResourceExhausted;
    case ErrorCode::STORAGE_ERROR: return absl::StatusCode::kDataLoss;
    case ErrorCode::CORRUPT_MESSAGE: return absl::StatusCode::kDataLoss;
    case ErrorCode::REQUEST_TIMED_OUT: return absl::StatusCode::kDeadlineExceeded;
    case ErrorCode::UNSUPPORTED_API:
    case ErrorCode::UNSUPPORTED_VERSION: return absl::StatusCode::kUnimplemented;
    case ErrorCode::NOT_LEADER:
    case ErrorCode::NOT_COORDINATOR:
    case ErrorCode::LEADER_NOT_AVAILABLE:
    case ErrorCode::NOT_ENOUGH_REPLICAS:
    case ErrorCode::BROKER_NOT_AVAILABLE:
    case ErrorCode::FENCED_LEADER_EPOCH:
    case ErrorCode::UNKNOWN_LEADER_EPOCH:
    case ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case ErrorCode::SHUTTING_DOWN: return absl::StatusCode::kUnavailable;
    case ErrorCode::STALE_BROKER_EPOCH: return absl::StatusCode::kFailedPrecondition;
    case ErrorCode::UNKNOWN_MEMBER_ID:
    case ErrorCode::ILLEGAL_GENERATION:
    case ErrorCode::FENCED_INSTANCE_ID:
    case ErrorCode::NON_EMPTY_GROUP:
    case ErrorCode::MEMBER_ID_REQUIRED: return absl::StatusCode::kFailedPrecondition;
    case ErrorCode::REBALANCE_IN_PROGRESS: return absl::StatusCode::kAborted;
    case ErrorCode::GROUP_ID_NOT_FOUND: return absl::StatusCode::kNotFound;
    case ErrorCode::GROUP_MAX_SIZE_REACHED: return absl::StatusCode::kResourceExhausted;
    case ErrorCode::INCONSISTENT_GROUP_PROTOCOL:
    case ErrorCode::INVALID_SESSION_TIMEOUT:
    case ErrorCode::INVALID_GROUP_ID:
    case ErrorCode::OFFSET_METADATA_TOO_LARGE: return absl::StatusCode::kInvalidArgument;
    case ErrorCode::INVALID_REPLICATION_FACTOR:
    case ErrorCode::INVALID_TOPIC:
    case ErrorCode::FRAME_TOO_LARGE:
    case ErrorCode::INVALID_REQUEST:
    case ErrorCode::INVALID_PARTITIONS:
    case ErrorCode::INVALID_CONFIG:
    case ErrorCode::RECORD_TOO_LARGE:
    case ErrorCode::INVALID_RECORD:
    case ErrorCode::INVALID_REQUIRED_ACKS: return absl::StatusCode::kInvalidArgument;
    default: return absl::StatusCode::kUnknown;
  }
}

absl::Status MakeError(proto::ErrorCode code, std::string_view message) {
  if (code == proto::ErrorCode::NONE) return absl::OkStatus();
  absl::StatusCode canonical = CanonicalFor(code);
  if (canonical == absl::StatusCode::kOk) canonical = absl::StatusCode::kUnknown;
  return WithErrorCode(absl::Status(canonical, absl::string_view(message.data(), message.size())),
                       code);
}

proto::ErrorCode ToErrorCode(const absl::Status& s) {
  using proto::ErrorCode;
  if (s.ok()) return ErrorCode::NONE;
  if (auto payload = s.GetPayload(kErrorCodePayload)) {
    int v = 0;
    if (absl::SimpleAtoi(std::string(*payload), &v) && proto::ErrorCode_IsValid(v)) {
      return static_cast<ErrorCode>(v);
    }
  }
  switch (s.code()) {
    case absl::StatusCode::kNotFound: return ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
    case absl::StatusCode::kAlreadyExists: return ErrorCode::TOPIC_ALREADY_EXISTS;
    case absl::StatusCode::kOutOfRange: return ErrorCode::OFFSET_OUT_OF_RANGE;
    case absl::StatusCode::kResourceExhausted: return ErrorCode::STORAGE_FULL;
    case absl::StatusCode::kDataLoss: return ErrorCode::STORAGE_ERROR;
    case absl::StatusCode::kDeadlineExceeded: return ErrorCode::REQUEST_TIMED_OUT;
    case absl::StatusCode::kUnimplemented: return ErrorCode::UNSUPPORTED_API;
    case absl::StatusCode::kUnavailable: return ErrorCode::BROKER_NOT_AVAILABLE;
    case absl::StatusCode::kInvalidArgument: return ErrorCode::INVALID_REQUEST;
    default: return ErrorCode::UNKNOWN;
  }
}

absl::Status FromErrorCode(proto::ErrorCode code, std::string_view message) {
  if (code == proto::ErrorCode::NONE) return absl::OkStatus();
  std::string text = proto::ErrorCode_Name(code);
  if (!message.empty()) {
    text += ": ";
    text += message;
  }
  return MakeError(code, text);
}

bool IsRetriable(proto::ErrorCode code) {
  using proto::ErrorCode;
  switch (code) {
    case ErrorCode::UNKNOWN_TOPIC_OR_PARTITION:
    case ErrorCode::NOT_LEADER:
    case ErrorCode::STORAGE_FULL:
    case ErrorCode::NOT_COORDINATOR:
    case ErrorCode::REQUEST_TIMED_OUT:
    case ErrorCode::NOT_ENOUGH_REPLICAS:
    case ErrorCode::LEADER_NOT_AVAILABLE:
    case ErrorCode::BROKER_NOT_AVAILABLE:
    case ErrorCode::FENCED_LEADER_EPOCH:
    case ErrorCode::UNKNOWN_LEADER_EPOCH:
    case ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case ErrorCode::REBALANCE_IN_PROGRESS:
    case ErrorCode::SHUTTING_DOWN: return true;
    default: return false;
  }
}

}  // namespace brook
