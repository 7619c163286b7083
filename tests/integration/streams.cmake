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
