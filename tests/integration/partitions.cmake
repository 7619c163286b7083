# Growing a topic's partition count (API_CREATE_PARTITIONS): Admin, the
# `brook topic alter` CLI, a group consumer and a topic spout picking the new
# partitions up. Included from tests/integration/CMakeLists.txt.
brook_integration_test(NAME integration_partitions_test
  SRCS partitions_test.cc cli_runner.cc
  TIMEOUT 180
  DEPS brook::streams_topics brook::consumer brook::producer brook::client absl::strings)
target_compile_definitions(integration_partitions_test PRIVATE BROOK_CLI_BIN="$<TARGET_FILE:brook>")
add_dependencies(integration_partitions_test brook)
