# clang-tidy (the checks in /.clang-tidy) over every test and example, one
# ctest case per file, reading the flags from this build's compile database
# (CMAKE_EXPORT_COMPILE_COMMANDS, ON in the presets). Library headers are
# linted through them (HeaderFilterRegex). Non-sanitizer configurations only
# (the caller returns early under sanitizers).
find_program(DAQ_POOL_CLANG_TIDY NAMES clang-tidy-14 clang-tidy)
if(NOT DAQ_POOL_CLANG_TIDY OR NOT CMAKE_EXPORT_COMPILE_COMMANDS)
  message(STATUS "daq_pool: clang-tidy cases not registered (needs clang-tidy and CMAKE_EXPORT_COMPILE_COMMANDS=ON)")
  return()
endif()

file(GLOB_RECURSE lint_sources CONFIGURE_DEPENDS
  "${PROJECT_SOURCE_DIR}/tests/test_*.cpp"
  "${PROJECT_SOURCE_DIR}/examples/*.cpp")
foreach(source IN LISTS lint_sources)
  file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${source}")
  string(REGEX REPLACE "\\.cpp$" "" id "${rel}")
  string(MAKE_C_IDENTIFIER "${id}" id)
  add_test(NAME clang_tidy_${id}
           COMMAND "${CMAKE_COMMAND}" "-DCLANG_TIDY=${DAQ_POOL_CLANG_TIDY}" "-DBUILD_DIR=${PROJECT_BINARY_DIR}"
                   "-DSOURCE=${source}" -P "${CMAKE_CURRENT_LIST_DIR}/clang_tidy_file.cmake")
  set_tests_properties(clang_tidy_${id} PROPERTIES
    LABELS lint TIMEOUT 300
    SKIP_REGULAR_EXPRESSION "daq_pool-clang-tidy: not in the compile database")
endforeach()
