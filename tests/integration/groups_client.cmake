# Group consumers (brook/consumer.h Subscribe) against a real brook-server:
# sharing, moving, cooperative and static rebalances, patterns, commits,
# pause/resume; a kill -9 fault test over consumer processes; and the
# group consumer benchmark (bench/groups_bench.cc). Included from
# tests/integration/CMakeLists.txt.
brook_integration_test(NAME integration_groups_client_test SRCS groups_client_test.cc
  TIMEOUT 180 DEPS brook::consumer brook::producer brook::client absl::strings)

add_executable(groups_client_worker groups_client_worker.cc)
target_include_directories(groups_client_worker PRIVATE ${PROJECT_SOURCE_DIR}
  ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(groups_client_worker PRIVATE brook::consumer absl::strings)

brook_integration_test(NAME integration_groups_client_fault_test SRCS groups_client_fault_test.cc
  TIMEOUT 150 DEPS brook::consumer brook::producer brook::client absl::strings)
target_compile_definitions(integration_groups_client_fault_test PRIVATE
  BROOK_GROUPS_WORKER_BIN="$<TARGET_FILE:groups_client_worker>")
add_dependencies(integration_groups_client_fault_test groups_client_worker)

# brook-bench-groups (bench/groups_bench.cc): group vs assign-mode consume
# throughput on 8 partitions, and the rebalance time after a member leaves.
add_executable(brook-bench-groups ${PROJECT_SOURCE_DIR}/bench/groups_bench.cc)
target_include_directories(brook-bench-groups PRIVATE ${PROJECT_SOURCE_DIR}
  ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(brook-bench-groups PRIVATE brook::test_harness brook::consumer
  brook::producer brook::client absl::strings)
