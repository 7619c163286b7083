// Prometheus text rendering of counters, gauges and histograms.
#include "common/http/metrics.h"

#include <thread>

#include "gtest/gtest.h"

namespace brook::metrics {
namespace {

TEST(MetricsTest, RendersCounterGaugeHistogramExactly) {
  Registry r;
  Counter* c = r.GetCounter("brook_requests_total", {{"api", "produce"}}, "Requests served.");
  c->Inc();
  c->Inc(2);
  r.GetCounter("brook_requests_total", {{"api", "fetch"}}, "Requests served.")->Inc(5);
  EXPECT_EQ(r.GetCounter("brook_requests_total", {{"api", "produce"}}, "ignored"), c);
  r.GetGauge("brook_bytes", {}, "Bytes held.\nSecond line")->Set(1.5);
  Histogram* h =
      r.GetHistogram("brook_latency_seconds", {{"path", "a\"b\\c\nd"}}, "Latency.", {0.5, 1});
  h->Observe(0.25);
  h->Observe(0.5);  // on the bound: counted in le="0.5"
  h->Observe(0.75);
  h->Observe(7);

  const std::string want =
      "# HELP brook_bytes Bytes held.\\nSecond line\n"
      "# TYPE brook_bytes gauge\n"
      "brook_bytes 1.5\n"
      "# HELP brook_latency_seconds Latency.\n"
      "# TYPE brook_latency_seconds histogram\n"
      "brook_latency_seconds_bucket{path=\"a\\\"b\\\\c\\nd\",le=\"0.5\"} 2\n"
      "brook_latency_seconds_bucket{path=\"a\\\"b\\\\c\\nd\",le=\"1\"} 3\n"
      "brook_latency_seconds_bucket{path=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 4\n"
      "brook_latency_seconds_sum{path=\"a\\\"b\\\\c\\nd\"} 8.5\n"
      "brook_latency_seconds_count{path=\"a\\\"b\\\\c\\nd\"} 4\n"
      "# HELP brook_requests_total Requests served.\n"
      "# TYPE brook_requests_total counter\n"
      "brook_requests_total{api=\"fetch\"} 5\n"
      "brook_requests_total{api=\"produce\"} 3\n";
  EXPECT_EQ(r.RenderPrometheus(), want);
}

TEST(MetricsTest, HistogramSnapshotIsPerBucket) {
  Histogram h({1, 2, 3});
  for (double v : {0.5, 1.5, 1.7, 2.5, 10.0}) h.Observe(v);
  std::vector<uint64_t> buckets;
  double sum;
  uint64_t count;
  h.Snapshot(&buckets, &sum, &count);
  EXPECT_EQ(buckets, (std::vector<uint64_t>{1, 2, 1, 1}));
  EXPECT_DOUBLE_EQ(sum, 16.2);
  EXPECT_EQ(count, 5u);
}

TEST(MetricsTest, CollectorsRunAtRenderAndRemoveDropsSeries) {
  Registry r;
  int runs = 0;
  r.AddCollector([&] {
    ++runs;
    r.GetGauge("brook_partition_bytes", {{"topic", "t"}}, "Size.")->Set(runs * 10);
  });
  EXPECT_NE(r.RenderPrometheus().find("brook_partition_bytes{topic=\"t\"} 10\n"),
            std::string::npos);
  EXPECT_NE(r.RenderPrometheus().find("brook_partition_bytes{topic=\"t\"} 20\n"),
            std::string::npos);
  EXPECT_EQ(runs, 2);
  Registry r2;
  r2.GetCounter("x_total", {{"k", "1"}}, "X.")->Inc();
  r2.GetCounter("x_total", {{"k", "2"}}, "X.")->Inc();
  r2.Remove("x_total", {{"k", "1"}});
  EXPECT_EQ(r2.RenderPrometheus(),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total{k=\"2\"} 1\n");
  r2.Remove("x_total", {{"k", "2"}});
  EXPECT_EQ(r2.RenderPrometheus(), "");
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  Registry r;
  Counter* c = r.GetCounter("c_total", {}, "C.");
  Histogram* h = r.GetHistogram("h", {}, "H.", {1});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Inc();
        h->Observe(0.5);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(c->value(), 40000);
  std::vector<uint64_t> b;
  double sum;
  uint64_t count;
  h->Snapshot(&b, &sum, &count);
  EXPECT_EQ(count, 40000u);
  EXPECT_EQ(b[0], 40000u);
}

TEST(MetricsTest, GlobalIsASingleton) {
  EXPECT_EQ(&Registry::Global(), &Registry::Global());
  EXPECT_EQ(DefaultLatencyBuckets().front(), 0.00005);
  EXPECT_EQ(DefaultLatencyBuckets().back(), 10);
}

}  // namespace
}  // namespace brook::metrics
