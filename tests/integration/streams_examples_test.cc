// The windowed top-N and join examples (examples/streams_windowed_top_n.cc,
// streams_join.cc) run as child processes against a real brook-server, as
// the README runs them against `make run`'s. Each works out the exact answer
// for the records it produced and exits 0 only when the topology's output
// topic holds it.
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/cli_runner.h"
#include "tests/integration/harness.h"

namespace brook::testing {
namespace {

using namespace std::chrono_literals;

class StreamsExamplesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    start_status_ = server_->Start();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(start_status_.ok()) << start_status_ << "\n" << server_->LogTail();
  }
  std::string Nameservers() const { return "--nameservers=" + server_->nameserver().ToString(); }

  static ServerProcess* server_;
  static absl::Status start_status_;
};

ServerProcess* StreamsExamplesTest::server_ = nullptr;
absl::Status StreamsExamplesTest::start_status_;

TEST_F(StreamsExamplesTest, WindowedTopNIsExactForEveryWindow) {
  // Two runs: the second resumes from the spout group's committed offsets,
  // on topics that already hold the first run's words and rankings.
  for (int run = 0; run < 2; ++run) {
    CliResult r = RunProgram(BROOK_STREAMS_TOP_N_BIN,
                             {Nameservers(), "--words=4000", "--seconds=2", "--timeout=90"}, "",
                             120s);
    ASSERT_EQ(r.exit_code, 0) << "run " << run << ": " << Describe(r) << "\n"
                              << server_->LogTail();
    EXPECT_NE(r.out.find("OK: the top 3 of"), std::string::npos) << Describe(r);
  }
}

TEST_F(StreamsExamplesTest, JoinFindsExactlyThePairs) {
  CliResult r = RunProgram(BROOK_STREAMS_JOIN_BIN,
                           {Nameservers(), "--records=300", "--seconds=2", "--timeout=90"}, "",
                           120s);
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\n" << server_->LogTail();
  EXPECT_NE(r.out.find("OK: "), std::string::npos) << Describe(r);
}

TEST_F(StreamsExamplesTest, UnknownFlagIsRefused) {
  CliResult r = RunProgram(BROOK_STREAMS_TOP_N_BIN, {Nameservers(), "--wordz=5"}, "", 30s);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("unknown argument --wordz=5"), std::string::npos) << Describe(r);
}

}  // namespace
}  // namespace brook::testing
