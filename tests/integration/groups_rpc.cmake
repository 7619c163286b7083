# Consumer group APIs 50..58 end to end over the raw RPC client: one
# brook-server with every role (join/sync/heartbeat, offsets, errors, kill -9)
# and a three-member coordinator quorum (kill -9 of the coordinator leader).
# Included from tests/integration/CMakeLists.txt.
brook_integration_test(NAME integration_groups_rpc_single_test SRCS groups_rpc_single_test.cc
  TIMEOUT 60 DEPS brook::rpc brook::proto absl::strings)
if(COMMAND brook_cluster_test)
  brook_integration_test(NAME integration_groups_rpc_cluster_test SRCS groups_rpc_cluster_test.cc
    TIMEOUT 90 DEPS brook::test_cluster brook::client brook::rpc brook::proto absl::strings)
endif()
