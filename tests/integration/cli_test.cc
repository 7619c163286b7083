// Integration tests of the `brook` command-line tool: the real binary run as
// a subprocess against a real brook-server (ports chosen at run time).

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/cli_runner.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using ::testing::HasSubstr;

// A minimal JSON reader, enough to check that the bench output is one valid
// JSON object and to pick out its top-level numbers.
class JsonReader {
 public:
  explicit JsonReader(const std::string& s) : s_(s) {}

  // Parses one object spanning the whole input (surrounding whitespace and
  // one trailing newline allowed); fills numbers with its top-level numbers.
  bool ParseObjectDocument(std::map<std::string, double>* numbers) {
    SkipWs();
    if (!Object(numbers)) return false;
    SkipWs();
    return i_ == s_.size();
  }

 private:
  void SkipWs() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool String(std::string* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (static_cast<unsigned char>(s_[i_]) < 0x20) return false;
      if (s_[i_] == '\\') {
        if (++i_ >= s_.size()) return false;
        if (s_[i_] == 'u') {
          if (i_ + 4 >= s_.size()) return false;
          i_ += 4;
        } else if (!std::strchr("\"\\/bfnrt", s_[i_])) {
          return false;
        }
      }
      if (out) out->push_back(s_[i_]);
      ++i_;
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  bool Number(double* out) {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    size_t digits = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ == digits) return false;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      size_t frac = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (i_ == frac) return false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      size_t exp = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (i_ == exp) return false;
    }
    *out = std::strtod(s_.substr(start, i_ - start).c_str(), nullptr);
    return true;
  }
  bool Literal(const char* word) {
    size_t n = std::strlen(word);
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }
  bool Value(double* number, bool* is_number) {
    *is_number = false;
    SkipWs();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return Object(nullptr);
    if (c == '[') {
      ++i_;
      SkipWs();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      while (true) {
        double d;
        bool n;
        if (!Value(&d, &n)) return false;
        SkipWs();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
        return false;
      }
    }
    if (c == '"') return String(nullptr);
    if (c == 't') return Literal("true");
    if (c == 'f') return Literal("false");
    if (c == 'n') return Literal("null");
    *is_number = true;
    return Number(number);
  }
  bool Object(std::map<std::string, double>* numbers) {
    if (i_ >= s_.size() || s_[i_] != '{') return false;
    ++i_;
    SkipWs();
    if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
    while (true) {
      SkipWs();
      std::string key;
      if (!String(&key)) return false;
      SkipWs();
      if (i_ >= s_.size() || s_[i_] != ':') return false;
      ++i_;
      double d = 0;
      bool is_number = false;
      if (!Value(&d, &is_number)) return false;
      if (numbers && is_number) (*numbers)[key] = d;
      SkipWs();
      if (i_ < s_.size() && s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      return false;
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok()) << server_.LogTail();
    ns_ = server_.nameserver().ToString();
  }

  // `brook --nameserver <ns> args...`
  CliResult Brook(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"--nameserver", ns_});
    return RunCli(args, input);
  }

  ServerProcess server_;
  std::string ns_;
};

TEST(CliUsageTest, HelpAndUsageErrors) {
  CliResult help = RunCli({"help"});
  EXPECT_EQ(help.exit_code, 0) << Describe(help);
  EXPECT_THAT(help.out, HasSubstr("usage: brook"));

  CliResult topic_help = RunCli({"topic", "--help"});
  EXPECT_EQ(topic_help.exit_code, 0) << Describe(topic_help);
  EXPECT_THAT(topic_help.out, HasSubstr("brook topic create TOPIC"));

  CliResult none = RunCli({});
  EXPECT_EQ(none.exit_code, 2) << Describe(none);

  CliResult unknown = RunCli({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2) << Describe(unknown);
  EXPECT_THAT(unknown.err, HasSubstr("brook: unknown command 'frobnicate'"));

  CliResult bad_flag = RunCli({"consume", "t", "--no-such-flag"});
  EXPECT_EQ(bad_flag.exit_code, 2) << Describe(bad_flag);
  EXPECT_THAT(bad_flag.err, HasSubstr("unknown flag --no-such-flag"));
  EXPECT_THAT(bad_flag.err, HasSubstr("usage: brook consume"));

  CliResult bad_value = RunCli({"topic", "create", "t", "--partitions", "many"});
  EXPECT_EQ(bad_value.exit_code, 2) << Describe(bad_value);
}

TEST_F(CliTest, TopicCreateListDescribeDelete) {
  CliResult created = Brook({"topic", "create", "cli-orders", "--partitions", "3", "--config",
                             "segment.bytes=1048576"});
  ASSERT_EQ(created.exit_code, 0) << Describe(created);
  EXPECT_THAT(created.out, HasSubstr("cli-orders"));

  CliResult listed = Brook({"topic", "list"});
  ASSERT_EQ(listed.exit_code, 0) << Describe(listed);
  std::vector<std::string> names = absl::StrSplit(listed.out, '\n', absl::SkipEmpty());
  EXPECT_THAT(names, ::testing::Contains("cli-orders"));

  CliResult described = Brook({"topic", "describe", "cli-orders"});
  ASSERT_EQ(described.exit_code, 0) << Describe(described);
  std::vector<std::string> lines = absl::StrSplit(described.out, '\n', absl::SkipEmpty());
  size_t header = 0;
  while (header < lines.size() && !absl::StartsWith(lines[header], "PARTITION")) ++header;
  ASSERT_LT(header, lines.size()) << described.out;
  EXPECT_THAT(lines[header], HasSubstr("HIGH-WATERMARK"));
  ASSERT_EQ(lines.size(), header + 4) << described.out;
  for (int p = 0; p < 3; ++p) {
    std::vector<std::string> cells =
        absl::StrSplit(lines[header + 1 + p], ' ', absl::SkipEmpty());
    ASSERT_EQ(cells.size(), 7u) << lines[header + 1 + p];
    EXPECT_EQ(cells[0], std::to_string(p));
    EXPECT_EQ(cells[5], "0");  // log start of an empty partition
    EXPECT_EQ(cells[6], "0");  // high watermark
  }

  CliResult deleted = Brook({"topic", "delete", "cli-orders"});
  ASSERT_EQ(deleted.exit_code, 0) << Describe(deleted);
  // Deletion is applied by the coordinator; the listing follows shortly.
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    CliResult after = Brook({"topic", "list"});
    ASSERT_EQ(after.exit_code, 0) << Describe(after);
    std::vector<std::string> left = absl::StrSplit(after.out, '\n', absl::SkipEmpty());
    gone = std::find(left.begin(), left.end(), "cli-orders") == left.end();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone);

  CliResult missing = Brook({"topic", "describe", "cli-orders"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_THAT(missing.err, ::testing::StartsWith("brook: "));
}

TEST_F(CliTest, ProduceThenConsumeFromBeginning) {
  ASSERT_EQ(Brook({"topic", "create", "cli-lines", "--partitions", "1"}).exit_code, 0);
  const std::string input = "first line\nsecond\n\nfourth, after an empty one\n";
  CliResult produced = Brook({"produce", "cli-lines", "--acks", "all"}, input);
  ASSERT_EQ(produced.exit_code, 0) << Describe(produced);
  EXPECT_THAT(produced.err, HasSubstr("sent 4 record(s)"));

  CliResult consumed =
      Brook({"consume", "cli-lines", "--from-beginning", "--max-messages", "4"});
  ASSERT_EQ(consumed.exit_code, 0) << Describe(consumed);
  EXPECT_EQ(consumed.out, input);

  // From an offset, uncompressed this time.
  CliResult more = Brook({"produce", "cli-lines", "--compression", "none"}, "fifth\n");
  ASSERT_EQ(more.exit_code, 0) << Describe(more);
  CliResult tail =
      Brook({"consume", "cli-lines", "--offset", "3", "--max-messages", "2", "--print-offset"});
  ASSERT_EQ(tail.exit_code, 0) << Describe(tail);
  EXPECT_EQ(tail.out, "0:3\tfourth, after an empty one\n0:4\tfifth\n");
}

TEST_F(CliTest, PrintKeyAndOffset) {
  ASSERT_EQ(Brook({"topic", "create", "cli-keys", "--partitions", "2"}).exit_code, 0);
  CliResult produced = Brook({"produce", "cli-keys", "--partition", "1", "--key-separator", ":"},
                             "k1:v1\nk2:v:2\nno key here\n");
  ASSERT_EQ(produced.exit_code, 0) << Describe(produced);

  CliResult consumed = Brook({"consume", "cli-keys", "--partition", "1", "--from-beginning",
                              "--max-messages", "3", "--print-key", "--print-offset"});
  ASSERT_EQ(consumed.exit_code, 0) << Describe(consumed);
  EXPECT_EQ(consumed.out, "1:0\tk1\tv1\n1:1\tk2\tv:2\n1:2\tnull\tno key here\n");

  CliResult keys_only = Brook({"consume", "cli-keys", "--from-beginning", "--max-messages", "1",
                               "--print-key"});
  ASSERT_EQ(keys_only.exit_code, 0) << Describe(keys_only);
  EXPECT_EQ(keys_only.out, "k1\tv1\n");
}

TEST_F(CliTest, ConsumeStopsAfterIdleTimeout) {
  ASSERT_EQ(Brook({"topic", "create", "cli-idle", "--partitions", "1"}).exit_code, 0);
  const auto start = std::chrono::steady_clock::now();
  CliResult consumed = Brook({"consume", "cli-idle", "--from-beginning", "--timeout-ms", "500"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(consumed.exit_code, 0) << Describe(consumed);
  EXPECT_EQ(consumed.out, "");
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(CliTest, BadTopicNameIsAnError) {
  CliResult created = Brook({"topic", "create", "no spaces/allowed"});
  EXPECT_EQ(created.exit_code, 1) << Describe(created);
  EXPECT_THAT(created.err, HasSubstr("brook: invalid topic name 'no spaces/allowed'"));

  CliResult produced = Brook({"produce", "bad*name"}, "x\n");
  EXPECT_EQ(produced.exit_code, 1) << Describe(produced);
  EXPECT_THAT(produced.err, HasSubstr("invalid topic name"));

  CliResult missing = Brook({"consume", "never-created", "--max-messages", "1",
                             "--timeout-ms", "500"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_THAT(missing.err, ::testing::StartsWith("brook: "));
}

TEST_F(CliTest, BenchProduceEmitsJson) {
  CliResult bench = Brook({"bench", "produce", "cli-bench", "--records", "2000", "--record-size",
                           "100", "--partitions", "2", "--producers", "2", "--json"});
  ASSERT_EQ(bench.exit_code, 0) << Describe(bench);
  std::map<std::string, double> numbers;
  ASSERT_TRUE(JsonReader(bench.out).ParseObjectDocument(&numbers)) << bench.out;
  EXPECT_EQ(numbers["records"], 2000);
  EXPECT_EQ(numbers["record_size"], 100);
  EXPECT_EQ(numbers["producers"], 2);
  EXPECT_EQ(numbers["errors"], 0);
  EXPECT_GT(numbers["records_per_sec"], 0);
  EXPECT_GT(numbers["mb_per_sec"], 0);
  EXPECT_THAT(bench.out, HasSubstr("\"mode\":\"produce\""));

  // The topic was created with 2 partitions and now holds the records.
  CliResult described = Brook({"topic", "describe", "cli-bench"});
  ASSERT_EQ(described.exit_code, 0) << Describe(described);
  EXPECT_THAT(described.out, HasSubstr("Partitions: 2"));

  CliResult consumed = Brook({"bench", "consume", "cli-bench", "--records", "2000",
                              "--record-size", "100", "--json"});
  ASSERT_EQ(consumed.exit_code, 0) << Describe(consumed);
  numbers.clear();
  ASSERT_TRUE(JsonReader(consumed.out).ParseObjectDocument(&numbers)) << consumed.out;
  EXPECT_EQ(numbers["records"], 2000);
  EXPECT_GT(numbers["records_per_sec"], 0);
}

TEST_F(CliTest, BenchEndToEndReportsLatency) {
  CliResult bench = Brook({"bench", "e2e", "cli-e2e", "--records", "500", "--record-size", "64",
                           "--rate", "5000", "--json"});
  ASSERT_EQ(bench.exit_code, 0) << Describe(bench);
  std::map<std::string, double> numbers;
  ASSERT_TRUE(JsonReader(bench.out).ParseObjectDocument(&numbers)) << bench.out;
  EXPECT_EQ(numbers["records"], 500);
  EXPECT_THAT(bench.out, HasSubstr("\"latency_ms\":{\"p50\":"));
}

}  // namespace
}  // namespace brook::testing
