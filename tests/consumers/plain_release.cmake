# cmake -P: the build a newcomer types before reading about presets,
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build
# (1) its configuration makes no warning an error (warnings are errors only
# in the presets, CMAKE_COMPILE_WARNING_AS_ERROR), and (2) with warnings as
# errors switched on, what once warned only at -O3 compiles:
# test_asio_tokens.cpp (GCC 12 -Wmaybe-uninitialized in Loaned::reset inside
# std::optional's destructor). The whole core in Release is the core-only
# preset's job in CI.
#
#   -DSOURCE_DIR= -DBINARY_DIR= -DGENERATOR= [-DMAKE_PROGRAM=] -DCXX_COMPILER=
#   [-DOBJECTS=a.o;b.o] (object files to build, if this configuration has
#   them; needs the Ninja generator)
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${BINARY_DIR}")
set(configure "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
    -DDAQ_POOL_BUILD_BENCH=OFF -DDAQ_POOL_INSTALL=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
execute_process(COMMAND ${configure} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "plain Release configure failed:\n${out}")
endif()
file(READ "${BINARY_DIR}/compile_commands.json" commands)
string(REGEX MATCH "\"command\": \"[^\"]*(-Werror|/WX)[^\"]*\"" werror "${commands}")
if(werror)
  message(FATAL_ERROR "a plain build makes warnings errors (they belong to the presets):\n${werror}")
endif()
message(STATUS "plain Release configure: no -Werror")

execute_process(COMMAND ${configure} -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "Release configure with CMAKE_COMPILE_WARNING_AS_ERROR failed:\n${out}")
endif()
# Object files only (Ninja names them as targets): no link, no test main.
file(READ "${BINARY_DIR}/build.ninja" ninja_rules)
foreach(object IN LISTS OBJECTS)
  string(FIND "${ninja_rules}" "build ${object}:" at)
  if(at EQUAL -1)
    message(STATUS "${object}: not in this configuration")
    continue()
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BINARY_DIR}" --target "${object}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${object} does not build in Release with warnings as errors:\n${out}")
  endif()
  message(STATUS "${object}: builds in Release with warnings as errors")
endforeach()
file(REMOVE_RECURSE "${BINARY_DIR}")
