# cmake -P: clang-tidy on one file of this build's compile database; any
# diagnostic fails. Files this configuration does not build are skipped.
#   -DCLANG_TIDY= -DBUILD_DIR= -DSOURCE=
cmake_minimum_required(VERSION 3.25)
file(READ "${BUILD_DIR}/compile_commands.json" database)
string(FIND "${database}" "\"file\": \"${SOURCE}\"" at)
if(at EQUAL -1)
  message("daq_pool-clang-tidy: not in the compile database: ${SOURCE}")
  return()
endif()
execute_process(COMMAND "${CLANG_TIDY}" -p "${BUILD_DIR}" --quiet --warnings-as-errors=* "${SOURCE}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
# clang-tidy prints "N warnings generated." for suppressed system-header
# warnings even when clean; only its diagnostics matter.
if(NOT rc EQUAL 0 OR out MATCHES "(warning|error):")
  message(FATAL_ERROR "clang-tidy ${SOURCE} (${rc}):\n${out}\n${err}")
endif()
message(STATUS "clang-tidy ${SOURCE}: clean")
