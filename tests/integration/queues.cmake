# Queue subscriptions (brook/queue.h) against a real brook-server: the client
# tests, the multi-process fault test with its worker program, the example
# worker and the queue benchmark. Included from tests/integration/CMakeLists.txt.
brook_integration_test(NAME integration_queue_test
  SRCS queue_test.cc
  DEPS brook::client brook::producer brook::consumer absl::strings
  TIMEOUT 300)

add_executable(queue_fault_worker queue_fault_worker.cc)
target_include_directories(queue_fault_worker PRIVATE ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(queue_fault_worker PRIVATE brook::consumer absl::strings)

brook_integration_test(NAME integration_queue_fault_test
  SRCS queue_fault_test.cc
  DEPS brook::client brook::producer brook::consumer absl::strings
  TIMEOUT 120)
target_compile_definitions(integration_queue_fault_test PRIVATE
  QUEUE_FAULT_WORKER_BIN="$<TARGET_FILE:queue_fault_worker>")
add_dependencies(integration_queue_fault_test queue_fault_worker)

# brook-bench-queue (bench/queue_bench.cc): acks/s with 4 consumers, and a
# million delayed records (broker RSS, delivery lateness). Starts its own
# brook-server through the test harness.
add_executable(brook-bench-queue ${PROJECT_SOURCE_DIR}/bench/queue_bench.cc)
target_include_directories(brook-bench-queue PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(brook-bench-queue PRIVATE
  brook::test_harness brook::client brook::producer brook::consumer absl::strings)
