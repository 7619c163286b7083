// Process-wide metrics in the Prometheus text format. Counters, gauges and
// histograms are created once (Get* returns the same object for the same name
// and labels) and updated lock-free on hot paths. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace brook::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(double v = 1) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative-bucket histogram with fixed upper bounds.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Snapshot: per-bucket counts (non-cumulative, last is +Inf), sum, count.
  void Snapshot(std::vector<uint64_t>* buckets, double* sum, uint64_t* count) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Latency buckets in seconds, 50 us .. 10 s.
std::vector<double> DefaultLatencyBuckets();

class Registry {
 public:
  // The process-wide registry used by every component.
  static Registry& Global();

  Counter* GetCounter(const std::string& name, const Labels& labels, const std::string& help);
  Gauge* GetGauge(const std::string& name, const Labels& labels, const std::string& help);
  Histogram* GetHistogram(const std::string& name, const Labels& labels, const std::string& help,
                          std::vector<double> bounds = DefaultLatencyBuckets());

  // Called at the start of every Render, e.g. to refresh gauges of storage
  // sizes. Must be thread-safe and quick.
  void AddCollector(std::function<void()> collector);

  // Removes every metric with this name and label set (e.g. a deleted topic).
  void Remove(const std::string& name, const Labels& labels);

  // Prometheus text exposition format 0.0.4.
  std::string RenderPrometheus() const;

  Registry();
  ~Registry();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brook::metrics
