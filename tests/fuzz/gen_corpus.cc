// Writes the seed corpora under tests/fuzz/corpus/ (run by hand after a format
// change: gen_corpus <record_batch dir> <frame dir>). Seeds are built with the
// real builder, then cut, corrupted or padded so that every decoder branch has
// a nearby starting point.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/record_batch.h"

namespace {

namespace bl = brook::batch_layout;
using Bytes = std::vector<uint8_t>;

void Write(const std::string& dir, const std::string& name, const Bytes& b) {
  std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void FixCrc(Bytes* b) {
  brook::wire::PutBE32(b->data() + bl::kCrc,
                       brook::Crc32c(b->data() + bl::kAttributes, b->size() - bl::kAttributes));
}

Bytes Mixed(brook::Compression c) {
  brook::RecordBatchBuilder builder({.compression = c, .producer_id = 5, .producer_epoch = 1,
                                     .base_sequence = 0});
  const brook::HeaderView headers[] = {{"trace", "abc"}, {"empty", std::nullopt}};
  builder.Append(1000, "key", "value", headers);
  builder.Append(1001, std::nullopt, "no key");
  builder.Append(999, "tombstone", std::nullopt);
  for (int i = 0; i < 6; ++i) builder.Append(1002 + i, "k", std::string(24, 'x'));
  return builder.Build();
}

Bytes Frame(uint32_t size, uint16_t api, uint16_t version, uint32_t corr, uint32_t header_size,
            const std::string& rest) {
  Bytes b(16);
  brook::wire::PutBE32(b.data(), size);
  brook::wire::PutBE16(b.data() + 4, api);
  brook::wire::PutBE16(b.data() + 6, version);
  brook::wire::PutBE32(b.data() + 8, corr);
  brook::wire::PutBE32(b.data() + 12, header_size);
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <record_batch corpus dir> <frame corpus dir>\n", argv[0]);
    return 2;
  }
  const std::string rb = argv[1], fr = argv[2];

  const Bytes plain = Mixed(brook::Compression::kNone);
  const Bytes zstd = Mixed(brook::Compression::kZstd);
  Write(rb, "valid_uncompressed", plain);
  Write(rb, "valid_zstd", zstd);
  Bytes two = plain;
  two.insert(two.end(), zstd.begin(), zstd.end());
  Write(rb, "two_batches_cut_tail", Bytes(two.begin(), two.end() - 9));
  Bytes log_append = plain;
  brook::SetLogAppendTime(log_append, 1700000000000);
  Write(rb, "log_append_time", log_append);
  Write(rb, "empty_batch", brook::RecordBatchBuilder({}).Build());
  Write(rb, "truncated_header", Bytes(plain.begin(), plain.begin() + 30));
  Bytes bad_crc = plain;
  bad_crc[bl::kHeaderSize + 3] ^= 0x10;
  Write(rb, "bad_crc", bad_crc);
  Bytes huge_count = plain;
  brook::wire::PutBE32(huge_count.data() + bl::kRecordCount, 0x7fffffff);
  brook::wire::PutBE32(huge_count.data() + bl::kLastOffsetDelta, 0x7ffffffe);
  FixCrc(&huge_count);
  Write(rb, "huge_record_count", huge_count);
  Bytes zstd_cut(zstd.begin(), zstd.end() - 4);  // a cut zstd frame under a good CRC
  brook::wire::PutBE32(zstd_cut.data() + bl::kBatchLength,
                       static_cast<uint32_t>(zstd_cut.size() - bl::kLogOverhead));
  FixCrc(&zstd_cut);
  Write(rb, "zstd_truncated_frame", zstd_cut);
  std::mt19937 rng(2024);
  Bytes garbage(200);
  for (auto& x : garbage) x = static_cast<uint8_t>(rng());
  Write(rb, "garbage", garbage);

  Write(fr, "valid_request", Frame(12 + 3 + 5, 1, 0, 7, 3, "abchello"));
  Write(fr, "valid_response", Frame(12 + 2, 0x8001, 1, 7, 2, "hi"));
  Write(fr, "size_below_fixed_header", Frame(5, 1, 0, 1, 0, ""));
  Write(fr, "size_too_large", Frame(0xfffffff0u, 1, 0, 1, 0, ""));
  Write(fr, "header_size_overruns", Frame(12 + 4, 2, 0, 9, 100, "abcd"));
  Write(fr, "cut_body", Frame(12 + 50, 3, 0, 9, 10, "short"));
  return 0;
}
