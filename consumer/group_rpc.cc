// Group requests to the active coordinator (see group_rpc.h).
#include "consumer/group_rpc.h"

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace brook::client::group {

bool PendingCall::Wait(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
  return mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
}

bool PendingCall::done() const {
  absl::MutexLock lock(&mu_);
  return done_;
}

bool PendingCall::transport_failed() const {
  absl::MutexLock lock(&mu_);
  return transport_failed_;
}

absl::Status PendingCall::Result(google::protobuf::Message* resp) const {
  absl::MutexLock lock(&mu_);
  if (!done_) return absl::UnavailableError("the request is still in flight");
  if (transport_failed_) return status_;
  resp->Clear();
  if (!resp->ParseFromString(header_)) {
    return MakeError(proto::UNKNOWN, absl::StrCat("unparsable ", resp->GetTypeName()));
  }
  return status_;
}

void PendingCall::Complete(absl::StatusOr<rpc::Response> r) {
  absl::MutexLock lock(&mu_);
  if (done_) return;
  done_ = true;
  if (!r.ok()) {
    transport_failed_ = true;
    status_ = absl::Status(r.status().code(), absl::StrCat("coordinator ", address_.ToString(),
                                                           ": ", r.status().message()));
    return;
  }
  status_ = rpc::ResponseStatus(*r);
  header_ = std::move(r->header);
}

std::shared_ptr<PendingCall> GroupRpc::Start(proto::Api api, const google::protobuf::Message& req,
                                             std::chrono::milliseconds timeout) {
  auto call = std::make_shared<PendingCall>();
  std::vector<HostPort> candidates;
  {
    absl::MutexLock lock(&mu_);
    if (hinted_) candidates.push_back(*hinted_);
  }
  for (auto& c : coordinator_.Candidates()) {
    if (std::find(candidates.begin(), candidates.end(), c) == candidates.end()) {
      candidates.push_back(std::move(c));
    }
  }
  if (candidates.empty()) {
    metadata_->Refresh().IgnoreError();
    candidates = coordinator_.Candidates();
  }
  if (candidates.empty()) {
    call->Complete(MakeError(proto::NOT_COORDINATOR, "no coordinator is known"));
    return call;
  }
  {
    absl::MutexLock lock(&mu_);
    call->address_ = candidates[rotation_ % candidates.size()];
  }
  auto conn = pool_->Get(call->address_);
  if (!conn.ok()) {
    call->Complete(conn.status());
    return call;
  }
  call->conn_ = *conn;
  (*conn)->Call(api, 0, req, {}, timeout,
                [call](absl::StatusOr<rpc::Response> r) { call->Complete(std::move(r)); });
  return call;
}

bool GroupRpc::Settle(const PendingCall& call, const absl::Status& outcome) {
  const bool transport = call.transport_failed();
  const auto code = ToErrorCode(outcome);
  if (!transport && code != proto::NOT_COORDINATOR) {
    if (call.address().port != 0) coordinator_.Prefer(call.address());
    absl::MutexLock lock(&mu_);
    rotation_ = 0;
    hinted_.reset();
    return true;
  }
  if (transport && call.conn_ != nullptr) pool_->Invalidate(call.conn_);
  absl::MutexLock lock(&mu_);
  if (!transport) {
    const absl::string_view msg = outcome.message();
    auto leader = CoordinatorClient::LeaderFromMessage(std::string_view(msg.data(), msg.size()));
    if (leader && !(*leader == call.address())) {
      hinted_ = *leader;
      rotation_ = 0;
      return false;
    }
  }
  if (hinted_ && *hinted_ == call.address()) hinted_.reset();
  ++rotation_;
  return false;
}

absl::Status GroupRpc::Call(proto::Api api, const google::protobuf::Message& req,
                            google::protobuf::Message* resp, absl::Time deadline,
                            std::chrono::milliseconds attempt_timeout) {
  auto backoff = absl::Milliseconds(50);
  absl::Status last = MakeError(proto::NOT_COORDINATOR, "no coordinator answered");
  int failures = 0;
  while (true) {
    const absl::Duration remaining = deadline - absl::Now();
    if (remaining <= absl::ZeroDuration()) return last;
    const auto wait = std::clamp(absl::ToChronoMilliseconds(remaining),
                                 std::chrono::milliseconds(1), attempt_timeout);
    auto call = Start(api, req, wait);
    call->Wait(absl::InfiniteFuture());  // the rpc layer times it out after `wait`
    absl::Status s = call->Result(resp);
    if (Settle(*call, s)) return s;
    last = s;
    // After a full round of failures, back off and refresh the routes.
    if (++failures % std::max<size_t>(1, coordinator_.Candidates().size()) == 0) {
      if (absl::Now() + backoff >= deadline) return last;
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      metadata_->Invalidate();
      metadata_->Refresh().IgnoreError();
    }
  }
}

}  // namespace brook::client::group
