// Generated input for the word-count examples: sentences of about 100 bytes
// from a small vocabulary. Header-only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace brook::examples {

// `n` sentences of words from a 30-word vocabulary, each as long as fits in
// 100 bytes; `seed` varies them; `pad` fills each with spaces to exactly 100
// bytes.
inline std::vector<std::string> MakeSentences(int n, uint64_t seed = 0, bool pad = false) {
  static const char* kWords[] = {
      "the",    "cow",  "jumped", "over",  "moon", "an",    "apple",  "a",     "day",    "keeps",
      "doctor", "away", "four",   "score", "and",  "seven", "years",  "ago",   "snow",   "white",
      "dwarfs", "i",    "am",     "at",    "two",  "with",  "nature", "brook", "stream", "river"};
  const int kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  std::vector<std::string> out;
  uint64_t x = 88172645463325252ull ^ (seed * 0x9e3779b97f4a7c15ull);
  for (int i = 0; i < n; ++i) {
    std::string s;
    for (;;) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::string w = kWords[x % kNumWords];
      if (s.size() + 1 + w.size() > 100) break;
      if (!s.empty()) s += ' ';
      s += w;
    }
    if (pad) s.append(100 - s.size(), ' ');
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace brook::examples
