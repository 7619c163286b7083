# The streams examples; include()d from examples/CMakeLists.txt.
# In-process word count (LocalCluster, in-memory spout; also the benchmark).
add_executable(example-streams-word-count ${CMAKE_CURRENT_LIST_DIR}/streams_word_count.cc)
target_link_libraries(example-streams-word-count PRIVATE brook::streams)
# Word count over topics of a running server (topic spout, keyed state with a
# changelog topic, topic bolt).
add_executable(example-streams-topic-word-count ${CMAKE_CURRENT_LIST_DIR}/streams_topic_word_count.cc)
target_link_libraries(example-streams-topic-word-count PRIVATE brook::streams_topics brook::http)
# A join of two topics by key within event-time windows.
add_executable(example-streams-join ${CMAKE_CURRENT_LIST_DIR}/streams_join.cc)
target_link_libraries(example-streams-join PRIVATE brook::streams_topics)
