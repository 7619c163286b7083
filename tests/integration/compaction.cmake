# Log compaction (cleanup.policy=compact) against a real brook-server: the
# broker's log cleaner shrinks the partition and consumers see the latest
# value per key. Included from tests/integration/CMakeLists.txt.
brook_integration_test(NAME integration_compaction_test
  SRCS compaction_test.cc
  DEPS brook::client brook::producer brook::consumer absl::strings
  TIMEOUT 120)
