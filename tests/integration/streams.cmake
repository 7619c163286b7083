# Streams over real topics: the word-count example (a topology process) run
# against a real brook-server, with and without a kill -9 of the topology.
# Included from tests/integration/CMakeLists.txt.
brook_integration_test(NAME integration_streams_word_count_test
  SRCS streams_word_count_test.cc
  DEPS brook::client brook::producer brook::consumer absl::strings
  TIMEOUT 120)
target_compile_definitions(integration_streams_word_count_test PRIVATE
  BROOK_STREAMS_WORD_COUNT_BIN="$<TARGET_FILE:example-streams-topic-word-count>")
add_dependencies(integration_streams_word_count_test example-streams-topic-word-count)

# The windowed top-N and join examples run against a real brook-server; each
# checks its own output against an exact computation and exits non-zero if
# it differs.
brook_integration_test(NAME integration_streams_examples_test
  SRCS streams_examples_test.cc cli_runner.cc
  TIMEOUT 180)
target_compile_definitions(integration_streams_examples_test PRIVATE
  BROOK_CLI_BIN="$<TARGET_FILE:brook>"
  BROOK_STREAMS_TOP_N_BIN="$<TARGET_FILE:example-streams-windowed-top-n>"
  BROOK_STREAMS_JOIN_BIN="$<TARGET_FILE:example-streams-join>")
add_dependencies(integration_streams_examples_test
  brook example-streams-windowed-top-n example-streams-join)
