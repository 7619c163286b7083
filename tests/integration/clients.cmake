# Integration tests of the client libraries and the `brook` CLI against a real
# brook-server. Included from tests/integration/CMakeLists.txt (after
# brook_integration_test is defined).
brook_integration_test(NAME integration_client_test
  SRCS client_test.cc
  DEPS brook::client brook::producer brook::consumer brook::common absl::strings)

brook_integration_test(NAME integration_cli_test
  SRCS cli_test.cc cli_runner.cc
  DEPS absl::strings)
target_compile_definitions(integration_cli_test PRIVATE BROOK_CLI_BIN="$<TARGET_FILE:brook>")
add_dependencies(integration_cli_test brook)
