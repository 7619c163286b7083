# The streams examples; include()d from examples/CMakeLists.txt.
# Word count in process (LocalCluster, in-memory spout) and its benchmark,
# also over a topic of a running server (--source=topic).
add_executable(example-streams-word-count ${CMAKE_CURRENT_LIST_DIR}/streams_word_count.cc)
target_link_libraries(example-streams-word-count PRIVATE brook::streams_topics)
# Word count over topics of a running server (topic spout, keyed state with a
# changelog topic, topic bolt).
add_executable(example-streams-topic-word-count ${CMAKE_CURRENT_LIST_DIR}/streams_topic_word_count.cc)
target_link_libraries(example-streams-topic-word-count PRIVATE brook::streams_topics brook::http)
# A join of two topics by key within event-time windows.
add_executable(example-streams-join ${CMAKE_CURRENT_LIST_DIR}/streams_join.cc)
target_link_libraries(example-streams-join PRIVATE brook::streams_topics)
# Windowed top-N over topics: sliding event-time windows counted per word,
# then ranked per window.
add_executable(example-streams-windowed-top-n ${CMAKE_CURRENT_LIST_DIR}/streams_windowed_top_n.cc)
target_link_libraries(example-streams-windowed-top-n PRIVATE brook::streams_topics)
