// Windowed bolts: a bolt adapter that groups its input tuples into count or
// event-time windows (tumbling or sliding) and calls a user function once per
// window with the window's tuples. Event-time windows use watermarks (max
// event time seen minus a maximum out-of-orderness), allowed lateness with
// re-firing, and a late stream for tuples later than that.
//
// Threading: like any bolt, one instance per task, called from one task at a
// time; the window function runs on that task's thread and, being shared by
// all tasks of a factory, must be safe to call concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "brook/streams/topology.h"

namespace brook::streams {

// What a window is made of and how often it fires.
struct WindowSpec {
  enum class Kind { kCount, kEventTime };
  Kind kind = Kind::kCount;
  // Count windows: tuples. Event-time windows: milliseconds.
  int64_t length = 1;
  int64_t slide = 1;  // == length: tumbling

  // Fires after every n tuples with those n tuples.
  static WindowSpec TumblingCount(int64_t n) { return {Kind::kCount, n, n}; }
  // Fires after every `every` tuples with the last n tuples (fewer for the
  // first windows, before n tuples arrived).
  static WindowSpec SlidingCount(int64_t n, int64_t every) { return {Kind::kCount, n, every}; }
  // Event-time windows [k*length, (k+1)*length), aligned to the epoch.
  static WindowSpec Tumbling(std::chrono::milliseconds length) {
    return {Kind::kEventTime, length.count(), length.count()};
  }
  // Event-time windows [k*every, k*every + length), aligned to the epoch.
  static WindowSpec Sliding(std::chrono::milliseconds length, std::chrono::milliseconds every) {
    return {Kind::kEventTime, length.count(), every.count()};
  }
};

// Totals of a windowed bolt (all tasks of a factory share one), readable from
// any thread.
struct WindowCounters {
  std::atomic<uint64_t> fired{0};          // window function calls, re-fires included
  std::atomic<uint64_t> refired{0};        // of which re-fires caused by late tuples
  std::atomic<uint64_t> late_accepted{0};  // late tuples that re-fired a window
  // Tuples too late for some of their windows (purged, so they miss them)
  // but added to the others, still open.
  std::atomic<uint64_t> late_partial{0};
  std::atomic<uint64_t> late_emitted{0};  // too-late tuples sent to the late stream
  std::atomic<uint64_t> late_dropped{0};  // too-late tuples dropped (no late stream)
  std::atomic<uint64_t> errors{0};        // window function calls that threw
};

struct WindowOptions {
  WindowSpec spec;

  // Event time only. The input field holding the event time as int64
  // milliseconds; a tuple without it (or not int64) fails.
  std::string timestamp_field = "ts";
  // Maximum out-of-orderness: watermark = max event time seen - lag. A tuple
  // at most `lag` older than the newest one seen still lands in its windows
  // before they fire.
  std::chrono::milliseconds lag{0};
  // A window fires when the watermark reaches its end; its tuples are kept
  // until the watermark reaches end + allowed_lateness. A tuple arriving for
  // a window in between re-fires it (Window::refire) with the tuple added.
  std::chrono::milliseconds allowed_lateness{0};
  // Tuples too late for every window that would contain them are emitted
  // with their own values on this stream (declared with late_fields, which
  // must have as many fields as the input tuples) and acked. Empty: they are
  // acked and counted in WindowCounters::late_dropped.
  std::string late_stream;
  Fields late_fields;
  // On a tick tuple (configure Config::tick_intervals for the bolt), assume
  // event time moved on with processing time since the last tuple arrived:
  // watermark = max(watermark, max event time + idle time - lag). This lets
  // windows fire when input pauses. Turn off for inputs whose event time does
  // not follow the clock (replays of old data).
  bool ticks_advance_watermark = true;
  // Processing time in ms for the above; default: steady clock. Tests inject
  // their own.
  std::function<int64_t()> clock;

  // Declared outputs: the default stream (if `output` is not empty) and any
  // other streams the window function emits on.
  Fields output;
  std::vector<StreamSpec> streams;

  // Optional shared totals.
  std::shared_ptr<WindowCounters> counters;
};

// One firing of a window. Count windows: [start, end) are the sequence
// numbers (0-based, per task) of the tuples. Event-time windows: [start, end)
// in event-time ms, tuples ordered by event time (then arrival).
struct Window {
  int64_t start = 0;
  int64_t end = 0;
  std::span<const Tuple> tuples;
  // Event time: fired after the watermark had passed `end` because a late
  // tuple arrived (within the allowed lateness). The tuples include it and
  // every earlier tuple of the window.
  bool refire = false;
  // Event time: the watermark at the firing (INT64_MIN for count windows).
  int64_t watermark = 0;
};

// What the window function emits through: every emit is anchored to all the
// tuples of the window, so (with acking) their spout tuples complete only once
// the emitted tuples are acked downstream.
class WindowEmitter {
 public:
  WindowEmitter(OutputCollector* collector, std::span<const Tuple> anchors)
      : collector_(collector), anchors_(anchors) {}
  void emit(Values values) { emit(std::string(kDefaultStream), std::move(values)); }
  void emit(const std::string& stream, Values values) {
    collector_->emit(stream, anchors_, std::move(values));
  }
  // For unanchored emits or emit_direct.
  OutputCollector* collector() const { return collector_; }

 private:
  OutputCollector* collector_;
  std::span<const Tuple> anchors_;
};

using WindowFunction = std::function<void(const Window&, WindowEmitter&)>;

// InvalidArgument for a bad spec (length or slide < 1), negative lag or
// lateness, an empty timestamp field for event time, a late stream without
// fields (or late fields without a stream), or a missing function.
absl::Status ValidateWindowOptions(const WindowOptions& options, const WindowFunction& fn);

// A bolt calling `fn` for each window. Input tuples are acked once every
// window containing them has fired and, for event time, passed its allowed
// lateness; a tuple in no window (slide > length) is acked at once. If `fn`
// throws, the window's tuples are failed (and replayed by a replaying spout),
// the error is logged and counted, and the bolt goes on. Invalid options
// make prepare throw, so LocalCluster::Submit fails with the reason.
//
// With acking, Config::message_timeout must exceed the processing time a
// tuple spends in its windows, or its tree times out and is replayed.
BoltFactory WindowedBolt(WindowOptions options, WindowFunction fn);

}  // namespace brook::streams
