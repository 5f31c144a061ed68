# cmake -P driver for the packaging tests: configures SOURCE_DIR in a fresh
# BINARY_DIR with the given compiler and generator, builds it, then runs its
# ctest cases, or installs it to INSTALL_PREFIX, or (EXPECT_CONFIGURE_FAILURE,
# EXPECT_BUILD_FAILURE) checks that the configure or build step fails with
# output matching that regex.
#
#   -DSOURCE_DIR= -DBINARY_DIR= -DGENERATOR= [-DMAKE_PROGRAM=] -DCXX_COMPILER=
#   [-DBUILD_TYPE=] [-DARGS=-Da=1|-Db=2] ('|' separates extra configure args)
#   [-DINSTALL_PREFIX= [-DREMOVE_AFTER_INSTALL=lib|debug]]
#   [-DEXPECT_CONFIGURE_FAILURE=regex] [-DEXPECT_BUILD_FAILURE=regex] [-DRUN_TESTS=OFF]
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS SOURCE_DIR BINARY_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_project.cmake: ${var} is not set")
  endif()
endforeach()

function(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${ARGN}\n${out}")
  endif()
  message(STATUS "${name}: ok")
endfunction()

file(REMOVE_RECURSE "${BINARY_DIR}")
string(REPLACE "|" ";" extra_args "${ARGS}")
set(configure "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
if(MAKE_PROGRAM)
  list(APPEND configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
list(APPEND configure ${extra_args})

if(DEFINED EXPECT_CONFIGURE_FAILURE)
  execute_process(COMMAND ${configure} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "configure succeeded but must fail:\n${out}")
  endif()
  if(NOT out MATCHES "${EXPECT_CONFIGURE_FAILURE}")
    message(FATAL_ERROR "configure failed, but not with /${EXPECT_CONFIGURE_FAILURE}/:\n${out}")
  endif()
  message(STATUS "configure refused as expected")
  return()
endif()

set(config "")
set(ctest_config "")
if(BUILD_TYPE)
  set(config --config "${BUILD_TYPE}")
  set(ctest_config -C "${BUILD_TYPE}")
endif()
step(configure ${configure})
if(DEFINED EXPECT_BUILD_FAILURE)
  execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BINARY_DIR}" ${config}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "the build succeeded but must fail:\n${out}")
  endif()
  if(NOT out MATCHES "${EXPECT_BUILD_FAILURE}")
    message(FATAL_ERROR "the build failed, but not with /${EXPECT_BUILD_FAILURE}/:\n${out}")
  endif()
  message(STATUS "build refused as expected")
  return()
endif()
step(build "${CMAKE_COMMAND}" --build "${BINARY_DIR}" ${config})
if(DEFINED INSTALL_PREFIX)
  file(REMOVE_RECURSE "${INSTALL_PREFIX}")
  step(install "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${INSTALL_PREFIX}" ${config})
  set(PREFIX "${INSTALL_PREFIX}")
  set(BUILD_TREES "${BINARY_DIR}")
  include("${CMAKE_CURRENT_LIST_DIR}/check_prefix.cmake")
  # What a portfile deletes after installing (lib/ and debug/ for header-only
  # ports; check_prefix.cmake has just made sure none of it is ours).
  string(REPLACE "|" ";" remove "${REMOVE_AFTER_INSTALL}")
  foreach(dir IN LISTS remove)
    file(REMOVE_RECURSE "${INSTALL_PREFIX}/${dir}")
  endforeach()
endif()
if(NOT DEFINED RUN_TESTS OR RUN_TESTS)
  execute_process(COMMAND "${CMAKE_CTEST_COMMAND}" --test-dir "${BINARY_DIR}" ${ctest_config}
                          --output-on-failure --no-tests=error
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "the consumer's tests failed (${rc})")
  endif()
endif()
