// CoordinatorClient: finds the active coordinator and retries (see the header).
#include "client/coordinator_client.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/rpc/client.h"

namespace brook::client {

std::vector<HostPort> CoordinatorClient::Candidates() {
  std::vector<HostPort> out;
  auto add = [&out](const HostPort& hp) {
    if (hp.port == 0) return;
    for (const auto& o : out) {
      if (o == hp) return;
    }
    out.push_back(hp);
  };
  {
    absl::MutexLock lock(&mu_);
    if (hinted_) add(*hinted_);
    if (preferred_) add(*preferred_);
  }
  for (const auto& c : metadata_->Coordinators()) add(c.address);
  return out;
}

std::optional<HostPort> CoordinatorClient::LeaderFromMessage(std::string_view message) {
  const size_t at = message.rfind(" at ");
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = message.substr(at + 4);
  const size_t end = rest.find_first_of(" ;,)\n");
  if (end != std::string_view::npos) rest = rest.substr(0, end);
  auto hp = ParseHostPort(rest);
  if (!hp.ok()) return std::nullopt;
  return *hp;
}

absl::Status CoordinatorClient::Call(proto::Api api, const google::protobuf::Message& req,
                                   google::protobuf::Message* resp, Clock::time_point deadline) {
  auto backoff = std::chrono::milliseconds(50);
  absl::Status last = MakeError(proto::NOT_COORDINATOR, "no coordinator is known");
  while (true) {
    std::vector<HostPort> candidates = Candidates();
    if (candidates.empty()) {
      if (auto s = metadata_->Refresh(); !s.ok()) last = s;
      candidates = Candidates();
    }
    bool stop_round = false;
    for (size_t i = 0; i < candidates.size() && !stop_round; ++i) {
      const HostPort& c = candidates[i];
      auto conn = pool_->Get(c);
      if (!conn.ok()) {
        last = absl::Status(conn.status().code(), absl::StrCat("coordinator ", c.ToString(), ": ",
                                                               conn.status().message()));
        continue;
      }
      const auto remaining =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      // A stopped or partitioned member must not eat the whole deadline.
      const auto wait = std::clamp(remaining, std::chrono::milliseconds(1), kAttemptTimeout);
      resp->Clear();
      auto r = (*conn)->CallSync(api, 0, req, {}, resp, wait);
      if (r.ok()) {
        absl::MutexLock lock(&mu_);
        preferred_ = c;
        hinted_.reset();
        return absl::OkStatus();
      }
      last = r.status();
      const auto code = ToErrorCode(last);
      if (code == proto::NOT_COORDINATOR) {
        const absl::string_view msg = last.message();
        if (auto leader = LeaderFromMessage(std::string_view(msg.data(), msg.size()));
            leader && !(*leader == c)) {
          {
            absl::MutexLock lock(&mu_);
            hinted_ = *leader;
          }
          // Try the named leader next, ahead of the remaining candidates.
          candidates.insert(candidates.begin() + static_cast<long>(i) + 1, *leader);
        }
        continue;
      }
      if (absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last)) {
        pool_->Invalidate(*conn);
        {
          absl::MutexLock lock(&mu_);
          if (preferred_ && *preferred_ == c) preferred_.reset();
          if (hinted_ && *hinted_ == c) hinted_.reset();
        }
        continue;
      }
      stop_round = true;  // an answer from the coordinator: no other member would differ
    }
    if (!IsRetriable(ToErrorCode(last))) return last;
    // Only the serving coordinator answers with anything but NOT_COORDINATOR,
    // and its metadata is the source of truth: a topic unknown there is
    // unknown (a broker, by contrast, may not have learned a new topic yet).
    if (stop_round && ToErrorCode(last) == proto::UNKNOWN_TOPIC_OR_PARTITION) return last;
    if (Clock::now() + backoff >= deadline) return last;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    metadata_->Invalidate();
    if (auto s = metadata_->Refresh(); !s.ok() && ToErrorCode(last) == proto::NOT_COORDINATOR) {
      last = s;
    }
  }
}

void CoordinatorClient::Prefer(const HostPort& coordinator) {
  absl::MutexLock lock(&mu_);
  preferred_ = coordinator;
  hinted_.reset();
}

}  // namespace brook::client
