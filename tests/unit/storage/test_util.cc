// Storage test helpers.
#include "tests/unit/storage/test_util.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/record_batch.h"
#include "gtest/gtest.h"

namespace brook::storage::testing {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                     "/brook-storage-test-XXXXXX";
  char* made = mkdtemp(tmpl.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<uint8_t> MakeBatch(int records, int64_t ts, size_t value_bytes, uint32_t seed) {
  RecordBatchBuilder::Options opts;
  opts.compression = Compression::kNone;
  RecordBatchBuilder b(opts);
  for (int i = 0; i < records; ++i) {
    std::string value(value_bytes, '\0');
    for (size_t j = 0; j < value_bytes; ++j) {
      value[j] = static_cast<char>('a' + (seed * 31 + static_cast<uint32_t>(i) * 7 + j) % 26);
    }
    std::string key = "k" + std::to_string(i);
    b.Append(ts + i, key, value);
  }
  return b.Build();
}

std::vector<uint8_t> ReadAll(const PartitionLog& log, Offset from, size_t chunk) {
  std::vector<uint8_t> all;
  Offset next = from;
  const Offset end = log.log_end_offset();
  while (next < end) {
    auto r = log.Read(next, chunk, end);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || r->empty()) break;
    auto views = SplitBatches(std::span<const uint8_t>(*r));
    EXPECT_TRUE(views.ok()) << views.status();
    if (!views.ok()) break;
    size_t skip = 0;
    // The first batch may start before `next` (read from inside a batch);
    // keep it only when it is new.
    for (const RecordBatchView& v : *views) {
      if (v.last_offset() < next.value()) {
        skip += v.size();
        continue;
      }
      break;
    }
    all.insert(all.end(), r->begin() + static_cast<std::ptrdiff_t>(skip), r->end());
    next = Offset(views->back().last_offset() + 1);
  }
  return all;
}

std::vector<int64_t> BaseOffsets(const std::vector<uint8_t>& bytes) {
  std::vector<int64_t> out;
  auto views = SplitBatches(std::span<const uint8_t>(bytes));
  EXPECT_TRUE(views.ok()) << views.status();
  if (!views.ok()) return out;
  for (const RecordBatchView& v : *views) out.push_back(v.base_offset());
  return out;
}

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteFileBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

uint64_t FileSize(const std::string& path) { return std::filesystem::file_size(path); }

}  // namespace brook::storage::testing
