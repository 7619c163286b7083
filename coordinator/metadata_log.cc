// Metadata records and snapshots as Raft entry / snapshot data.
#include "coordinator/metadata_log.h"

#include "absl/status/status.h"

namespace brook::coordinator {

std::string EncodeMetadataRecord(const proto::MetadataRecord& record) {
  return record.SerializeAsString();
}

absl::StatusOr<proto::MetadataRecord> DecodeMetadataRecord(std::string_view data) {
  proto::MetadataRecord record;
  if (!record.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    return absl::DataLossError("metadata record does not parse");
  }
  if (record.record_case() == proto::MetadataRecord::RECORD_NOT_SET) {
    return absl::DataLossError("metadata record has no known content");
  }
  return record;
}

std::string EncodeMetadataSnapshot(const proto::MetadataSnapshot& snapshot) {
  return snapshot.SerializeAsString();
}

absl::StatusOr<proto::MetadataSnapshot> DecodeMetadataSnapshot(std::string_view data) {
  proto::MetadataSnapshot snapshot;
  if (!snapshot.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    return absl::DataLossError("metadata snapshot does not parse");
  }
  return snapshot;
}

}  // namespace brook::coordinator
