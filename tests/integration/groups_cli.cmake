# `brook group` (list, describe, delete, reset-offsets) against a real
# brook-server; groups and offsets are made through the raw protocol.
# Included from tests/integration/CMakeLists.txt.
brook_integration_test(NAME integration_groups_cli_test
  SRCS groups_cli_test.cc cli_runner.cc
  DEPS absl::strings absl::time)
target_compile_definitions(integration_groups_cli_test PRIVATE BROOK_CLI_BIN="$<TARGET_FILE:brook>")
add_dependencies(integration_groups_cli_test brook)
