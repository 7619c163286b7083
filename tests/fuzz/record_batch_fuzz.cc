// Fuzz target for the RecordBatch v2 decoders: whatever the bytes, splitting,
// validating and reading must not crash, read out of bounds, or allocate
// without bound, and their answers must agree with each other.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/check.h"
#include "common/record_batch.h"

namespace {

// Touches every byte a view claims, so a sanitizer flags a view that points
// outside live memory.
size_t Touch(std::string_view s) {
  size_t sum = 0;
  for (char c : s) sum += static_cast<uint8_t>(c);
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  auto batches = brook::SplitBatches(input, /*allow_partial_tail=*/true);
  if (!batches.ok()) return 0;
  brook::RecordReader reader;
  size_t sum = 0;
  for (const brook::RecordBatchView& batch : *batches) {
    const bool valid = batch.Validate().ok();
    std::vector<brook::RecordView> records;
    const absl::Status read = reader.Read(batch, &records);
    if (read.ok()) {
      BROOK_CHECK(records.size() == static_cast<size_t>(batch.record_count()));
      for (const brook::RecordView& r : records) {
        if (r.key) sum += Touch(*r.key);
        if (r.value) sum += Touch(*r.value);
        for (const brook::HeaderView& h : r.headers) {
          sum += Touch(h.key);
          if (h.value) sum += Touch(*h.value);
        }
      }
    } else {
      BROOK_CHECK(records.empty());
    }
    // Validate decodes uncompressed records the same way Read does.
    if (valid && batch.compression() == brook::Compression::kNone) BROOK_CHECK(read.ok());

    // The broker's in-place patches keep a valid batch valid.
    std::vector<uint8_t> copy(batch.bytes().begin(), batch.bytes().end());
    brook::SetBaseOffset(copy, 42);
    brook::SetPartitionLeaderEpoch(copy, 7);
    brook::SetLogAppendTime(copy, 1234);
    auto patched = brook::RecordBatchView::Parse(copy);
    BROOK_CHECK(patched.ok());
    BROOK_CHECK(patched->VerifyCrc().ok());
    if (valid) BROOK_CHECK(patched->Validate().ok());
  }
  // The zstd decoder alone, on the raw input, under a small cap.
  auto plain = brook::ZstdDecompress(input, 1 << 20);
  if (plain.ok()) BROOK_CHECK(plain->size() <= (1u << 20));
  (void)sum;
  return 0;
}
