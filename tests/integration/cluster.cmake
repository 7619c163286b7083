# Cluster tests: brook-server processes per role (name servers, a coordinator
# quorum, brokers) on loopback, driven through cluster.h. Included from
# tests/integration/CMakeLists.txt (after brook_integration_test is defined).
brook_cc_library(NAME test_cluster
  SRCS cluster.cc
  DEPS brook::test_harness brook::rpc brook::common brook::proto brook::storage brook::client
       brook::producer brook::consumer absl::status absl::statusor absl::strings
       absl::synchronization absl::time)

function(brook_cluster_test NAME)
  cmake_parse_arguments(ARG "" "TIMEOUT" "DEPS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  brook_integration_test(NAME integration_${NAME} SRCS ${NAME}.cc TIMEOUT ${ARG_TIMEOUT}
    DEPS brook::test_cluster brook::client brook::producer brook::consumer brook::common
         absl::strings ${ARG_DEPS})
endfunction()

brook_cluster_test(cluster_basic_test)
target_compile_definitions(integration_cluster_basic_test PRIVATE BROOK_CLI_BIN="$<TARGET_FILE:brook>")
add_dependencies(integration_cluster_basic_test brook)
brook_cluster_test(cluster_leader_kill_test TIMEOUT 150)
brook_cluster_test(cluster_coordinator_failover_test TIMEOUT 90)
brook_cluster_test(cluster_stopped_leader_test TIMEOUT 90)
brook_cluster_test(cluster_restart_test TIMEOUT 120)
brook_cluster_test(cluster_network_partition_test TIMEOUT 90)

# brook-bench-failover (bench/failover.cc): kill -9 a partition leader and the
# coordinator leader repeatedly on a local cluster; fail-over time p50/p99.
# bench/failover.sh builds and runs it.
add_executable(brook-bench-failover ${PROJECT_SOURCE_DIR}/bench/failover.cc)
target_include_directories(brook-bench-failover PRIVATE ${PROJECT_SOURCE_DIR}
  ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(brook-bench-failover PRIVATE brook::test_cluster absl::strings)

# Log compaction on a replicated topic across leader kills.
brook_cluster_test(cluster_compaction_test TIMEOUT 120)
