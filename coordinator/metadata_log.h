// The coordinator's metadata log is the Raft log (coordinator/raft_host.h):
// each normal Raft entry carries one MetadataRecord, and a Raft snapshot's
// data is a MetadataSnapshot (docs/formats/metadata-log.md). These are the
// encodings of both, shared by the coordinator and its tests.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "proto/metadata.pb.h"

namespace brook::coordinator {

// The Raft entry data of one record (its protobuf serialization).
std::string EncodeMetadataRecord(const proto::MetadataRecord& record);
// DataLoss when `data` does not parse or holds no known record kind.
absl::StatusOr<proto::MetadataRecord> DecodeMetadataRecord(std::string_view data);

// The Raft snapshot data of a metadata image.
std::string EncodeMetadataSnapshot(const proto::MetadataSnapshot& snapshot);
// DataLoss when `data` does not parse.
absl::StatusOr<proto::MetadataSnapshot> DecodeMetadataSnapshot(std::string_view data);

}  // namespace brook::coordinator
