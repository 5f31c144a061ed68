# Shared by the consumer projects: the program, its warnings and its ctest case.
# Expects the target daq_pool::daq_pool to exist already.
if(NOT TARGET daq_pool::daq_pool)
  message(FATAL_ERROR "daq_pool::daq_pool is missing")
endif()
add_executable(daq_pool_consumer "${CMAKE_CURRENT_LIST_DIR}/consumer.cpp")
target_link_libraries(daq_pool_consumer PRIVATE daq_pool::daq_pool)
target_compile_options(daq_pool_consumer PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Werror>)
if(DAQ_POOL_CONSUMER_EXPECT_BUFFER_POOL)
  target_compile_definitions(daq_pool_consumer PRIVATE DAQ_POOL_CONSUMER_EXPECT_BUFFER_POOL)
endif()
enable_testing()
add_test(NAME daq_pool_consumer COMMAND daq_pool_consumer)
