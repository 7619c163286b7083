// The metrics registry and its Prometheus text exposition (format 0.0.4).
#include "common/http/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/check.h"

namespace brook::metrics {
namespace {

enum class Type { kCounter, kGauge, kHistogram };

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// Shortest text that reads back as the same double; Prometheus spellings
// for the special values.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[32];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (quote && c == '"') {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

// `{a="x",b="y"}` with an optional extra label (le for histogram buckets);
// empty when there are no labels at all.
void AppendLabels(std::string* out, const Labels& labels, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  out->push_back('{');
  bool first = true;
  auto add = [&](std::string_view k, std::string_view v) {
    if (!first) out->push_back(',');
    first = false;
    out->append(k);
    out->append("=\"");
    AppendEscaped(out, v, true);
    out->push_back('"');
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (!extra_name.empty()) add(extra_name, extra_value);
  out->push_back('}');
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // Bucket i counts bounds_[i-1] < v <= bounds_[i]; the last is +Inf.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::Snapshot(std::vector<uint64_t>* buckets, double* sum, uint64_t* count) const {
  buckets->resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    (*buckets)[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  *sum = sum_.load(std::memory_order_relaxed);
  *count = count_.load(std::memory_order_relaxed);
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

struct Registry::Impl {
  struct Family {
    Type type;
    std::string help;
    // Metric objects never move once created (callers keep raw pointers).
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Gauge>> gauges;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
  };

  Family* GetFamily(const std::string& name, Type type, const std::string& help)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto [it, inserted] = families.try_emplace(name);
    if (inserted) {
      it->second.type = type;
      it->second.help = help;
    } else if (it->second.type != type) {
      std::fprintf(stderr, "metric %s registered as %s and as %s\n", name.c_str(),
                   TypeName(it->second.type), TypeName(type));
      BROOK_CHECK(it->second.type == type);
    }
    return &it->second;
  }

  mutable absl::Mutex mu;
  std::map<std::string, Family> families ABSL_GUARDED_BY(mu);
  mutable absl::Mutex collectors_mu;
  std::vector<std::function<void()>> collectors ABSL_GUARDED_BY(collectors_mu);
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Registry& Registry::Global() {
  static Registry* const kGlobal = new Registry();  // never destroyed
  return *kGlobal;
}

Counter* Registry::GetCounter(const std::string& name, const Labels& labels,
                              const std::string& help) {
  absl::MutexLock l(&impl_->mu);
  auto& slot = impl_->GetFamily(name, Type::kCounter, help)->counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* Registry::GetGauge(const std::string& name, const Labels& labels, const std::string& help) {
  absl::MutexLock l(&impl_->mu);
  auto& slot = impl_->GetFamily(name, Type::kGauge, help)->gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* Registry::GetHistogram(const std::string& name, const Labels& labels,
                                  const std::string& help, std::vector<double> bounds) {
  absl::MutexLock l(&impl_->mu);
  auto& slot = impl_->GetFamily(name, Type::kHistogram, help)->histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return slot.get();
}

void Registry::AddCollector(std::function<void()> collector) {
  absl::MutexLock l(&impl_->collectors_mu);
  impl_->collectors.push_back(std::move(collector));
}

void Registry::Remove(const std::string& name, const Labels& labels) {
  absl::MutexLock l(&impl_->mu);
  auto it = impl_->families.find(name);
  if (it == impl_->families.end()) return;
  Impl::Family& f = it->second;
  f.counters.erase(labels);
  f.gauges.erase(labels);
  f.histograms.erase(labels);
  if (f.counters.empty() && f.gauges.empty() && f.histograms.empty()) {
    impl_->families.erase(it);
  }
}

std::string Registry::RenderPrometheus() const {
  // Collectors may create or update metrics, so they run without mu held.
  {
    absl::MutexLock l(&impl_->collectors_mu);
    for (const auto& c : impl_->collectors) c();
  }
  std::string out;
  absl::MutexLock l(&impl_->mu);
  std::vector<uint64_t> buckets;
  for (const auto& [name, f] : impl_->families) {
    out.append("# HELP ").append(name).push_back(' ');
    AppendEscaped(&out, f.help, false);
    out.append("\n# TYPE ").append(name).push_back(' ');
    out.append(TypeName(f.type)).push_back('\n');
    for (const auto& [labels, c] : f.counters) {
      out.append(name);
      AppendLabels(&out, labels);
      absl::StrAppend(&out, " ", FormatValue(c->value()), "\n");
    }
    for (const auto& [labels, g] : f.gauges) {
      out.append(name);
      AppendLabels(&out, labels);
      absl::StrAppend(&out, " ", FormatValue(g->value()), "\n");
    }
    for (const auto& [labels, h] : f.histograms) {
      double sum = 0;
      uint64_t count = 0;
      h->Snapshot(&buckets, &sum, &count);
      uint64_t cumulative = 0;
      for (size_t i = 0; i < buckets.size(); ++i) {
        cumulative += buckets[i];
        std::string le = i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf";
        out.append(name).append("_bucket");
        AppendLabels(&out, labels, "le", le);
        absl::StrAppend(&out, " ", cumulative, "\n");
      }
      out.append(name).append("_sum");
      AppendLabels(&out, labels);
      absl::StrAppend(&out, " ", FormatValue(sum), "\n");
      out.append(name).append("_count");
      AppendLabels(&out, labels);
      // The +Inf bucket and _count agree even while observations race.
      (void)count;
      absl::StrAppend(&out, " ", cumulative, "\n");
    }
  }
  return out;
}

}  // namespace brook::metrics
