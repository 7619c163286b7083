// Producer: Send appends to the RecordAccumulator; a sender thread groups
// sendable batches per leader broker into PRODUCE requests; responses (and
// every callback) run on the producer's IoThread.
//
// Threads: callers of Send/Flush/Close; the sender thread (owns routing,
// connecting and metadata refreshes, which may block); the IoThread (runs RPC
// completions and user callbacks, never blocks).
#include "brook/producer.h"

#include <utility>  // must precede Asio headers (Boost 1.74 + g++ 12)

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/post.hpp"
#include "client/address.h"
#include "client/connection_pool.h"
#include "client/metadata_cache.h"
#include "common/errors.h"
#include "common/rpc/client.h"
#include "producer/accumulator.h"
#include "proto/brook.pb.h"

namespace brook::client {

std::future<absl::StatusOr<RecordMetadata>> Producer::Send(ProducerRecord record) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<RecordMetadata>>>();
  auto future = promise->get_future();
  Send(std::move(record),
       [promise](const absl::StatusOr<RecordMetadata>& r) { promise->set_value(r); });
  return future;
}

namespace {

using Clock = ProducerClock;

// Most bytes of batches one PRODUCE request carries (at least one batch per
// partition goes regardless).
constexpr size_t kMaxRequestBytes = 8 * 1024 * 1024;
// Routes are refreshed at least this often even when nothing fails.
constexpr auto kMetadataMaxAge = std::chrono::minutes(5);
// The sender looks at its batches at least this often.
constexpr auto kSenderTick = std::chrono::milliseconds(100);

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Runs each record's callback with `result` (for failures).
void FailBatch(ProducerBatch& b, const absl::Status& status) {
  const absl::StatusOr<RecordMetadata> r(status);
  for (auto& e : b.entries) {
    if (e.callback) e.callback(r);
  }
}

AccumulatorConfig AccumulatorConfigFor(const ProducerConfig& c) {
  AccumulatorConfig a;
  a.batch_bytes = c.batch_bytes;
  a.linger = c.linger;
  a.buffer_memory = c.buffer_memory;
  a.max_block = c.max_block;
  a.retry_backoff = c.retry_backoff;
  a.retry_backoff_max = c.retry_backoff_max;
  a.delivery_timeout = c.delivery_timeout;
  a.builder_options.compression =
      c.compression == CompressionType::kZstd ? Compression::kZstd : Compression::kNone;
  // Reserve a whole batch up front (bounded): regrowing the buffer while it
  // fills costs a copy and fresh pages per doubling.
  a.builder_options.initial_capacity = std::min<size_t>(c.batch_bytes, 1 << 20);
  a.builder_options.producer_id = c.producer_id;
  a.builder_options.producer_epoch = c.producer_epoch;
  a.builder_options.base_sequence = c.producer_id >= 0 ? 0 : -1;
  return a;
}

rpc::ClientOptions ClientOptionsFor(const ProducerConfig& c) {
  rpc::ClientOptions o;
  o.connect_timeout = std::min(c.request_timeout, std::chrono::milliseconds(5000));
  return o;
}

class ProducerImpl final : public Producer {
 public:
  ProducerImpl(ProducerConfig config, std::vector<HostPort> nameservers)
      : config_(std::move(config)),
        io_(std::make_unique<rpc::IoThread>()),
        pool_(io_->io(), ClientOptionsFor(config_)),
        metadata_(&pool_, std::move(nameservers), config_.request_timeout),
        acc_(AccumulatorConfigFor(config_)) {
    sender_ = std::thread([this] { SenderLoop(); });
  }

  ~ProducerImpl() override { Close(std::chrono::hours(24 * 365)).IgnoreError(); }

  using Producer::Send;

  void Send(ProducerRecord record, Callback callback) override {
    const int64_t ts = record.timestamp_ms ? *record.timestamp_ms : NowMs();
    auto r = acc_.Append(record, ts, callback, Clock::now());
    if (!r.ok() && !record.partition && ToErrorCode(r.status()) == proto::UNKNOWN_TOPIC_OR_PARTITION) {
      // First record of a topic: learn its partition count (blocks up to max_block).
      auto n = ResolvePartitionCount(record.topic, Clock::now() + config_.max_block);
      if (n.ok()) {
        acc_.SetPartitionCount(record.topic, *n);
        r = acc_.Append(record, ts, callback, Clock::now());
      } else {
        r = n.status();
      }
    }
    if (!r.ok() && callback) {
      auto fail = [cb = std::move(callback), failed = absl::StatusOr<RecordMetadata>(r.status())] {
        cb(failed);
      };
      if (!RunOnIo(fail)) fail();
    }
  }

  absl::Status Flush(std::chrono::milliseconds timeout) override {
    const uint64_t mark = acc_.BeginFlush();
    if (acc_.WaitFlushed(mark, Clock::now() + timeout)) return absl::OkStatus();
    return absl::DeadlineExceededError(
        absl::StrCat("flush did not complete within ", timeout.count(), " ms"));
  }

  absl::Status Close(std::chrono::milliseconds timeout) override {
    absl::MutexLock close_lock(&close_mu_);
    if (closed_) return absl::OkStatus();
    closed_ = true;
    absl::Status status = Flush(timeout);
    acc_.Close();
    stopping_.store(true);
    acc_.Wake();
    sender_.join();
    // In-flight requests fail with Unavailable, and their batches fail too
    // (stopping_ forbids retries).
    pool_.CloseAll();
    {
      absl::MutexLock lock(&mu_);
      auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; };
      mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(10));
    }
    std::unique_ptr<rpc::IoThread> io;
    {
      absl::MutexLock lock(&mu_);
      io = std::move(io_);
    }
    io.reset();  // joins the io thread; no callback runs after this
    const absl::Status closed = absl::FailedPreconditionError(
        status.ok() ? "the producer was closed before the record was sent"
                    : absl::StrCat("the producer was closed before the record was sent: ",
                                   status.message()));
    auto rest = acc_.DrainAll();
    for (auto& b : rest) FailBatch(*b, closed);
    acc_.Release(rest);
    return status;
  }

  absl::StatusOr<int32_t> PartitionCount(const std::string& topic) override {
    return ResolvePartitionCount(topic, Clock::now() + config_.request_timeout);
  }

 private:
  struct Request {
    HostPort addr;
    std::shared_ptr<rpc::RpcClient> conn;
    std::vector<std::pair<TopicPartition, std::vector<BatchPtr>>> parts;
  };

  // Moves `fn` to the io thread to run there; false (and `fn` untouched)
  // when the producer is closing.
  template <typename Fn>
  bool RunOnIo(Fn& fn) {
    absl::MutexLock lock(&mu_);
    if (stopping_.load() || io_ == nullptr) return false;
    ++outstanding_;
    boost::asio::post(io_->io(), [this, fn = std::move(fn)]() mutable {
      fn();
      absl::MutexLock l(&mu_);
      --outstanding_;
    });
    return true;
  }

  absl::StatusOr<int32_t> ResolvePartitionCount(const std::string& topic,
                                                Clock::time_point deadline) {
    auto n = metadata_.WaitForPartitionCount(topic, deadline, config_.retry_backoff,
                                             config_.retry_backoff_max);
    if (n.ok()) return n;
    return absl::Status(n.status().code(), absl::StrCat("cannot learn the partitions of topic '",
                                                        topic, "': ", n.status().message()));
  }

  void SenderLoop() {
    while (!stopping_.load()) {
      auto now = Clock::now();
      metadata_.MaybeRefresh(kMetadataMaxAge, config_.retry_backoff).IgnoreError();
      now = Clock::now();
      auto expired = acc_.Expired(now);
      if (!expired.empty()) FailExpired(std::move(expired));

      Clock::time_point next;
      std::map<std::string, std::pair<HostPort, std::vector<TopicPartition>>> by_leader;
      for (auto& tp : acc_.Ready(now, &next)) {
        auto leader = metadata_.Leader(tp.topic, tp.partition);
        if (!leader.ok()) {
          acc_.Backoff(tp, now, leader.status());
          metadata_.Track({tp.topic});
          metadata_.Invalidate();
          next = std::min(next, now + config_.retry_backoff);
          continue;
        }
        auto& g = by_leader[leader->ToString()];
        g.first = *leader;
        g.second.push_back(std::move(tp));
      }
      for (auto& [key, group] : by_leader) SendTo(group.first, group.second);
      acc_.WaitForWork(std::min(next, Clock::now() + kSenderTick));
    }
  }

  void FailExpired(std::vector<BatchPtr> batches) {
    auto shared = std::make_shared<std::vector<BatchPtr>>(std::move(batches));
    auto fail = [this, shared] {
      for (auto& b : *shared) {
        FailBatch(*b, absl::DeadlineExceededError(absl::StrCat(
                          "record to ", b->tp.topic, "-", b->tp.partition,
                          " not delivered within delivery_timeout (", config_.delivery_timeout.count(),
                          " ms); last error: ",
                          b->last_error.ok() ? "none" : b->last_error.ToString())));
      }
      acc_.Release(*shared);
    };
    if (!RunOnIo(fail)) fail();
  }

  // Sends the ready batches of `tps` (all led by `addr`) in one request.
  void SendTo(const HostPort& addr, const std::vector<TopicPartition>& tps) {
    const std::string key = addr.ToString();
    {
      absl::MutexLock lock(&mu_);
      if (in_flight_[key] >= config_.max_in_flight) return;  // a completion wakes us
    }
    const auto now = Clock::now();
    auto conn = pool_.Get(addr);
    if (!conn.ok()) {
      for (const auto& tp : tps) acc_.Backoff(tp, now, conn.status());
      metadata_.Invalidate();
      return;
    }
    SendOn(addr, *conn, tps);
  }

  // Sends the ready batches of `tps` in one request on `conn` (to `addr`).
  // Called by the sender thread, and on the io thread by OnResponse; the
  // accumulator's per-partition in-flight flag (Take) keeps the two from
  // sending one partition's batches twice or out of order.
  void SendOn(const HostPort& addr, const std::shared_ptr<rpc::RpcClient>& conn,
              const std::vector<TopicPartition>& tps) {
    const std::string key = addr.ToString();
    {
      // Checked again here for the io-thread caller. The two callers may
      // race past it together, so a connection can briefly carry one
      // request more than max_in_flight.
      absl::MutexLock lock(&mu_);
      if (in_flight_[key] >= config_.max_in_flight) return;
    }
    auto req = std::make_shared<Request>();
    req->addr = addr;
    req->conn = conn;
    proto::ProduceRequest header;
    header.set_acks(config_.acks);
    header.set_timeout_ms(static_cast<int32_t>(config_.request_timeout.count()));
    size_t total = 0;
    for (const auto& tp : tps) {
      if (total >= kMaxRequestBytes) break;
      auto batches = acc_.Take(tp, kMaxRequestBytes - total);
      if (batches.empty()) continue;
      uint32_t size = 0;
      for (auto& b : batches) {
        b->Build();
        size += static_cast<uint32_t>(b->bytes.size());
      }
      total += size;
      auto* p = header.add_partitions();
      p->set_topic(tp.topic);
      p->set_partition(tp.partition);
      p->set_size(size);
      req->parts.emplace_back(tp, std::move(batches));
    }
    if (req->parts.empty()) return;
    std::vector<uint8_t> payload;
    payload.reserve(total);
    for (const auto& [tp, batches] : req->parts) {
      for (const auto& b : batches) payload.insert(payload.end(), b->bytes.begin(), b->bytes.end());
    }
    {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
      if (config_.acks != 0) ++in_flight_[key];
    }
    const auto timeout = config_.request_timeout + std::chrono::milliseconds(1000);
    if (config_.acks == 0) {
      // The server answers nothing: the records count as sent once queued on
      // a live connection.
      req->conn->Call(proto::API_PRODUCE, 0, header, std::move(payload), timeout,
                      [](absl::StatusOr<rpc::Response>) {});
      const bool live = req->conn->connected();
      boost::asio::post(io_->io(), [this, req, live] {
        OnResponse(req, live ? absl::StatusOr<rpc::Response>(rpc::Response{})
                             : absl::StatusOr<rpc::Response>(absl::UnavailableError(
                                   absl::StrCat("connection to ", req->addr.ToString(), " lost"))));
      });
      return;
    }
    req->conn->Call(proto::API_PRODUCE, 0, header, std::move(payload), timeout,
                    [this, req](absl::StatusOr<rpc::Response> r) { OnResponse(req, std::move(r)); });
  }

  // On the io thread.
  void OnResponse(const std::shared_ptr<Request>& req, absl::StatusOr<rpc::Response> r) {
    absl::Status top;
    proto::ProduceResponse resp;
    if (!r.ok()) {
      top = r.status();
      if (absl::IsUnavailable(top)) pool_.Invalidate(req->conn);
    } else if (config_.acks != 0) {
      if (!resp.ParseFromString(r->header)) {
        top = MakeError(proto::UNKNOWN, "unparsable ProduceResponse");
      } else {
        top = FromErrorCode(resp.error_code(), resp.error_message());
      }
    }
    const auto now = Clock::now();
    bool refresh = false;
    for (size_t i = 0; i < req->parts.size(); ++i) {
      auto& [tp, batches] = req->parts[i];
      absl::Status s = top;
      const proto::ProducePartitionResult* res = nullptr;
      if (s.ok() && config_.acks != 0) {
        if (static_cast<int>(i) < resp.partitions_size() && resp.partitions(i).topic() == tp.topic &&
            resp.partitions(i).partition() == tp.partition) {
          res = &resp.partitions(i);
        } else {
          for (const auto& p : resp.partitions()) {
            if (p.topic() == tp.topic && p.partition() == tp.partition) res = &p;
          }
        }
        if (res == nullptr) {
          s = MakeError(proto::UNKNOWN, absl::StrCat("no result for ", tp.topic, "-", tp.partition));
        } else {
          s = FromErrorCode(res->error_code(), res->error_message());
        }
      }
      if (s.ok()) {
        Acknowledge(tp, batches, res);
        acc_.Complete(tp, batches);
      } else if (IsRetriable(ToErrorCode(s)) && !stopping_.load()) {
        // NOT_LEADER, FENCED/UNKNOWN_LEADER_EPOCH, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
        // timeouts, a lost connection: the batches go back to the head of
        // their partition's queue (one request per partition in flight keeps
        // the order) and routes are refreshed; a broker's hint of the new
        // leader is used until the name servers catch up.
        refresh = true;
        if (res != nullptr && res->error_code() == proto::NOT_LEADER) {
          metadata_.SetLeaderHint(tp.topic, tp.partition, res->leader_hint());
        }
        acc_.Requeue(tp, std::move(batches), now, s);
      } else {
        for (auto& b : batches) FailBatch(*b, s);
        acc_.Complete(tp, batches);
      }
    }
    if (refresh) metadata_.Invalidate();
    {
      absl::MutexLock lock(&mu_);
      if (config_.acks != 0) --in_flight_[req->addr.ToString()];
      --outstanding_;
    }
    // Send what became ready for this broker right here, on the connection
    // that just answered, instead of waking the sender thread: that saves two
    // thread hand-offs (io -> sender -> io) per request, which is most of
    // the latency a record waits behind the previous request of its
    // partition. Anything else (other brokers, retries, reconnects) stays
    // with the sender thread, which is woken as before.
    if (r.ok() && config_.acks != 0 && !stopping_.load() && req->conn->connected()) {
      Clock::time_point next;
      std::vector<TopicPartition> mine;
      for (auto& tp : acc_.Ready(Clock::now(), &next)) {
        auto leader = metadata_.Leader(tp.topic, tp.partition);
        if (leader.ok() && *leader == req->addr) mine.push_back(std::move(tp));
      }
      if (!mine.empty()) SendOn(req->addr, req->conn, mine);
    }
    acc_.Wake();
  }

  void Acknowledge(const TopicPartition& tp, std::vector<BatchPtr>& batches,
                   const proto::ProducePartitionResult* res) {
    // One result object reused for every record: no allocation per record.
    absl::StatusOr<RecordMetadata> md(RecordMetadata{tp.topic, tp.partition, -1, -1});
    const bool acked = res != nullptr;
    int64_t offset = acked ? res->base_offset() : -1;
    const int64_t append_time = acked && res->log_append_time() > 0 ? res->log_append_time() : -1;
    for (auto& b : batches) {
      for (auto& e : b->entries) {
        md->offset = acked ? offset++ : -1;
        md->timestamp_ms = append_time >= 0 ? append_time : e.timestamp_ms;
        if (e.callback) e.callback(md);
      }
    }
  }

  const ProducerConfig config_;
  std::unique_ptr<rpc::IoThread> io_;  // reset by Close, after the sender stopped
  ConnectionPool pool_;
  MetadataCache metadata_;
  RecordAccumulator acc_;
  std::thread sender_;
  std::atomic<bool> stopping_{false};

  absl::Mutex close_mu_;
  bool closed_ ABSL_GUARDED_BY(close_mu_) = false;

  absl::Mutex mu_;
  // Requests and posted callbacks not yet finished on the io thread.
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> in_flight_ ABSL_GUARDED_BY(mu_);  // per broker address
};

}  // namespace

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(ProducerConfig config) {
  auto ns = ParseNameservers(config.nameservers);
  if (!ns.ok()) return ns.status();
  if (config.acks != 0 && config.acks != 1 && config.acks != -1) {
    return absl::InvalidArgumentError(absl::StrCat("acks must be 0, 1 or -1, not ", config.acks));
  }
  if (config.batch_bytes == 0 || config.buffer_memory == 0 || config.max_in_flight < 1) {
    return absl::InvalidArgumentError("batch_bytes, buffer_memory and max_in_flight must be > 0");
  }
  if (config.linger.count() < 0 || config.retry_backoff.count() < 0 ||
      config.retry_backoff_max < config.retry_backoff || config.delivery_timeout.count() <= 0 ||
      config.request_timeout.count() <= 0 || config.max_block.count() < 0) {
    return absl::InvalidArgumentError("invalid producer timing configuration");
  }
  return std::unique_ptr<Producer>(new ProducerImpl(std::move(config), *std::move(ns)));
}

}  // namespace brook::client
