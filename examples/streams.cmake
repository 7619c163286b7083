# The streams word-count example (in-process LocalCluster); include()d from
# examples/CMakeLists.txt.
add_executable(example-streams-word-count ${CMAKE_CURRENT_LIST_DIR}/streams_word_count.cc)
target_link_libraries(example-streams-word-count PRIVATE brook::streams)
