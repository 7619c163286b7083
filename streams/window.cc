// Windowed bolts: count windows kept as a FIFO of tuples, event-time windows
// kept as one time-ordered buffer of tuples from which each window's tuples
// are read when it fires (so a tuple is stored once however many sliding
// windows contain it).
#include "brook/streams/window.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "common/http/metrics.h"
#include "spdlog/spdlog.h"

namespace brook::streams {
namespace {

constexpr int64_t kMinTime = std::numeric_limits<int64_t>::min();

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class WindowedBoltImpl : public IBolt {
 public:
  WindowedBoltImpl(std::shared_ptr<const WindowOptions> options,
                   std::shared_ptr<const WindowFunction> fn)
      : o_(std::move(options)), fn_(std::move(fn)) {}

  void prepare(const TopologyContext& context, OutputCollector* collector) override {
    absl::Status s = ValidateWindowOptions(*o_, *fn_);
    if (!s.ok()) throw std::invalid_argument(std::string(s.message()));
    collector_ = collector;
    component_ = context.component();
    length_ = o_->spec.length;
    slide_ = o_->spec.slide;
    lag_ = o_->lag.count();
    lateness_ = o_->allowed_lateness.count();
    clock_ = o_->clock ? o_->clock : std::function<int64_t()>(SteadyNowMs);
    next_end_ = slide_;
    if (!context.topology().empty()) {
      metrics::Labels labels{{"topology", context.topology()}, {"component", component_}};
      auto& reg = metrics::Registry::Global();
      for (int k = 0; k < kNumKinds; ++k) {
        metrics_[k] = reg.GetCounter(kMetricNames[k], labels, kMetricHelp[k]);
      }
    }
  }

  void execute(const Tuple& input) override {
    if (o_->spec.kind == WindowSpec::Kind::kCount) {
      if (!input.is_tick()) CountTuple(input);
      return;
    }
    if (input.is_tick()) {
      Tick();
    } else {
      EventTuple(input);
    }
  }

  void declare_outputs(OutputDeclarer& d) override {
    if (o_->output.size() > 0) d.declare(o_->output);
    for (const auto& s : o_->streams) d.declare_stream(s.name, s.fields, s.direct);
    if (!o_->late_stream.empty()) d.declare_stream(o_->late_stream, o_->late_fields);
  }

 private:
  // What WindowCounters and the window metrics count.
  enum Kind {
    kFired,
    kRefired,
    kLateAccepted,
    kLatePartial,
    kLateEmitted,
    kLateDropped,
    kErrors,
    kNumKinds
  };
  static constexpr const char* kMetricNames[kNumKinds] = {
      "brook_streams_window_fired_total",         "brook_streams_window_refired_total",
      "brook_streams_window_late_accepted_total", "brook_streams_window_late_partial_total",
      "brook_streams_window_late_emitted_total",  "brook_streams_window_late_dropped_total",
      "brook_streams_window_errors_total"};
  static constexpr const char* kMetricHelp[kNumKinds] = {
      "Window function calls of a windowed bolt, re-fires included.",
      "Window re-fires caused by late tuples.",
      "Late tuples that re-fired a window.",
      "Tuples too late for some of their windows, added to the others.",
      "Tuples too late for every window, sent to the late stream.",
      "Tuples too late for every window, dropped.",
      "Window function calls that threw."};

  void Count(Kind k) {
    if (metrics_[k] != nullptr) metrics_[k]->Inc();
    if (!o_->counters) return;
    WindowCounters& c = *o_->counters;
    std::atomic<uint64_t>* fields[kNumKinds] = {&c.fired,        &c.refired,      &c.late_accepted,
                                                &c.late_partial, &c.late_emitted, &c.late_dropped,
                                                &c.errors};
    ++*fields[k];
  }

  // ---- count windows ----
  // Tuple seq s is in the windows ending at multiples e of slide with
  // e - length <= s < e. next_end_ is the end of the next window to fire;
  // count_buf_ holds tuples with seq >= next_end_ - length.
  void CountTuple(const Tuple& t) {
    int64_t seq = seq_++;
    if (seq < next_end_ - length_) {  // falls between windows (slide > length)
      collector_->ack(t);
      return;
    }
    count_buf_.push_back({seq, t});
    if (seq + 1 < next_end_) return;
    int64_t end = next_end_;
    int64_t start = std::max<int64_t>(0, end - length_);
    scratch_.clear();
    for (const auto& [s, tuple] : count_buf_) {
      if (s >= start && s < end) scratch_.push_back(tuple);
    }
    Fire(start, end, /*refire=*/false, kMinTime);
    next_end_ += slide_;
    while (!count_buf_.empty() && count_buf_.front().first < next_end_ - length_) {
      collector_->ack(count_buf_.front().second);
      count_buf_.pop_front();
    }
  }

  // ---- event-time windows ----
  // Window starts are multiples of slide_; window [s, s + length_).
  int64_t LastStart(int64_t ts) const { return FloorDiv(ts, slide_) * slide_; }
  // First start whose window contains ts (may be > LastStart: in no window).
  int64_t FirstStart(int64_t ts) const { return LastStart(ts - length_) + slide_; }
  bool Purged(int64_t end) const { return watermark_ != kMinTime && watermark_ >= end + lateness_; }
  bool Fired(int64_t end) const { return watermark_ != kMinTime && watermark_ >= end; }

  void EventTuple(const Tuple& t) {
    const int64_t ts = t.get(o_->timestamp_field).as_int64();
    const int64_t first = FirstStart(ts);
    const int64_t last = LastStart(ts);
    last_arrival_ = clock_();
    if (first > last) {  // between windows (slide > length)
      collector_->ack(t);
    } else if (Purged(last + length_)) {  // too late for every window
      TooLate(t);
    } else {
      buffer_.emplace(ts, t);
      std::vector<int64_t> refire;
      bool missed = false;
      for (int64_t s = first; s <= last; s += slide_) {
        const int64_t end = s + length_;
        if (!Fired(end)) {
          pending_.insert(s);
        } else if (!Purged(end)) {
          refire.push_back(s);
        } else {
          missed = true;
        }
      }
      if (missed) Count(kLatePartial);
      if (!refire.empty()) {
        Count(kLateAccepted);
        for (int64_t s : refire) FireEvent(s, /*refire=*/true);
      }
    }
    if (ts > max_ts_ || !seen_) {
      max_ts_ = ts;
      seen_ = true;
    }
    Advance(max_ts_ - lag_);
  }

  void Tick() {
    if (!seen_ || !o_->ticks_advance_watermark) return;
    int64_t idle = std::max<int64_t>(0, clock_() - last_arrival_);
    Advance(max_ts_ + idle - lag_);
  }

  void TooLate(const Tuple& t) {
    if (!o_->late_stream.empty()) {
      collector_->emit_to(o_->late_stream, t, t.values());
      Count(kLateEmitted);
    } else {
      Count(kLateDropped);
    }
    collector_->ack(t);
  }

  // Moves the watermark forward to `w` (never back), fires the windows whose
  // end it reaches and acks the tuples whose last window is purged.
  void Advance(int64_t w) {
    if (w <= watermark_) return;
    watermark_ = w;
    while (!pending_.empty() && *pending_.begin() + length_ <= watermark_) {
      int64_t s = *pending_.begin();
      pending_.erase(pending_.begin());
      FireEvent(s, /*refire=*/false);
    }
    // A tuple's last window ends at LastStart(ts) + length_, nondecreasing in
    // ts, so purgeable tuples are a prefix of the time-ordered buffer.
    while (!buffer_.empty() && Purged(LastStart(buffer_.begin()->first) + length_)) {
      collector_->ack(buffer_.begin()->second);
      buffer_.erase(buffer_.begin());
    }
  }

  void FireEvent(int64_t start, bool refire) {
    scratch_.clear();
    for (auto it = buffer_.lower_bound(start); it != buffer_.end() && it->first < start + length_;
         ++it) {
      scratch_.push_back(it->second);
    }
    if (scratch_.empty()) return;
    Fire(start, start + length_, refire, watermark_);
  }

  // Calls the function with scratch_ as the window's tuples.
  void Fire(int64_t start, int64_t end, bool refire, int64_t watermark) {
    Window w;
    w.start = start;
    w.end = end;
    w.tuples = std::span<const Tuple>(scratch_.data(), scratch_.size());
    w.refire = refire;
    w.watermark = watermark;
    WindowEmitter emitter(collector_, w.tuples);
    Count(kFired);
    if (refire) Count(kRefired);
    try {
      (*fn_)(w, emitter);
    } catch (const std::exception& e) {
      OnError(e.what());
    } catch (...) {
      OnError("unknown exception");
    }
  }

  void OnError(const char* what) {
    Count(kErrors);
    if (errors_++ < 10 || errors_ % 1000 == 0) {
      spdlog::warn("windowed bolt '{}': window function threw ({} so far): {}", component_, errors_,
                   what);
    }
    for (const Tuple& t : scratch_) collector_->fail(t);
  }

  metrics::Counter* metrics_[kNumKinds] = {};
  std::shared_ptr<const WindowOptions> o_;
  std::shared_ptr<const WindowFunction> fn_;
  OutputCollector* collector_ = nullptr;
  std::string component_;
  int64_t length_ = 1, slide_ = 1, lag_ = 0, lateness_ = 0;
  std::function<int64_t()> clock_;
  std::vector<Tuple> scratch_;  // the tuples of the window being fired
  uint64_t errors_ = 0;

  // Count windows.
  int64_t seq_ = 0;
  int64_t next_end_ = 1;
  std::deque<std::pair<int64_t, Tuple>> count_buf_;

  // Event time.
  bool seen_ = false;
  int64_t max_ts_ = kMinTime;
  int64_t watermark_ = kMinTime;
  int64_t last_arrival_ = 0;
  std::multimap<int64_t, Tuple> buffer_;  // by event time; kept until purged
  std::set<int64_t> pending_;             // starts of windows with tuples, not yet fired
};

}  // namespace

absl::Status ValidateWindowOptions(const WindowOptions& o, const WindowFunction& fn) {
  if (!fn) return absl::InvalidArgumentError("windowed bolt: no window function");
  if (o.spec.length < 1 || o.spec.slide < 1) {
    return absl::InvalidArgumentError(absl::StrCat("windowed bolt: window length (", o.spec.length,
                                                   ") and slide (", o.spec.slide,
                                                   ") must be >= 1"));
  }
  if (o.spec.kind == WindowSpec::Kind::kEventTime) {
    if (o.timestamp_field.empty()) {
      return absl::InvalidArgumentError("windowed bolt: event-time window needs a timestamp field");
    }
    if (o.lag.count() < 0 || o.allowed_lateness.count() < 0) {
      return absl::InvalidArgumentError("windowed bolt: lag and allowed lateness must be >= 0");
    }
  }
  if (o.late_stream.empty() != (o.late_fields.size() == 0)) {
    return absl::InvalidArgumentError(
        "windowed bolt: a late stream needs late fields, and late fields a late stream");
  }
  return absl::OkStatus();
}

BoltFactory WindowedBolt(WindowOptions options, WindowFunction fn) {
  auto o = std::make_shared<const WindowOptions>(std::move(options));
  auto f = std::make_shared<const WindowFunction>(std::move(fn));
  return [o, f] { return std::make_unique<WindowedBoltImpl>(o, f); };
}

}  // namespace brook::streams
