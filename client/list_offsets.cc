// ListOffsets: queries grouped per leader broker.
#include "client/list_offsets.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "proto/brook.pb.h"

namespace brook::client {

void ListOffsets(ConnectionPool* pool, const MetadataCache& metadata,
                 std::vector<OffsetQuery>* queries, std::chrono::milliseconds timeout) {
  std::map<std::string, std::pair<HostPort, std::vector<size_t>>> by_leader;
  for (size_t i = 0; i < queries->size(); ++i) {
    auto& q = (*queries)[i];
    auto leader = metadata.Leader(q.topic, q.partition);
    if (!leader.ok()) {
      q.status = leader.status();
      continue;
    }
    auto& entry = by_leader[leader->ToString()];
    entry.first = *leader;
    entry.second.push_back(i);
  }
  for (auto& [key, entry] : by_leader) {
    auto& [addr, idxs] = entry;
    auto fail_all = [&](const absl::Status& s) {
      for (size_t i : idxs) (*queries)[i].status = s;
    };
    auto conn = pool->Get(addr);
    if (!conn.ok()) {
      fail_all(conn.status());
      continue;
    }
    proto::ListOffsetsRequest req;
    for (size_t i : idxs) {
      auto* p = req.add_partitions();
      p->set_topic((*queries)[i].topic);
      p->set_partition((*queries)[i].partition);
      p->set_timestamp((*queries)[i].timestamp);
    }
    proto::ListOffsetsResponse resp;
    auto r = (*conn)->CallSync(proto::API_LIST_OFFSETS, 0, req, {}, &resp, timeout);
    if (!r.ok()) {
      if (absl::IsUnavailable(r.status())) pool->Invalidate(*conn);
      fail_all(r.status());
      continue;
    }
    // Results come in request order; a partition may be asked twice (with
    // different timestamps), so match by position and check the names.
    for (size_t j = 0; j < idxs.size(); ++j) {
      auto& q = (*queries)[idxs[j]];
      if (static_cast<int>(j) < resp.partitions_size() && resp.partitions(j).topic() == q.topic &&
          resp.partitions(j).partition() == q.partition) {
        const auto& res = resp.partitions(j);
        q.status = FromErrorCode(res.error_code(), res.error_message());
        q.offset = res.offset();
      } else {
        q.status = MakeError(proto::UNKNOWN,
                             absl::StrCat("no answer for ", q.topic, "-", q.partition));
      }
    }
  }
}

}  // namespace brook::client
