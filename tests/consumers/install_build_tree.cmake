# cmake -P: installs the build tree BUILD_DIR (the one running these tests)
# into a fresh PREFIX, then checks it. -DBUILD_DIR= -DPREFIX= -DSOURCE_DIR= [-DCONFIG=]
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" --config "${CONFIG}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc}):\n${out}")
endif()
set(BUILD_TREES "${BUILD_DIR}")
include("${CMAKE_CURRENT_LIST_DIR}/check_prefix.cmake")
