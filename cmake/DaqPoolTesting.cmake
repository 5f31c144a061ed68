# Helpers for the optional integrations' tests, examples and benchmarks
# (tests/<integration>/, examples/<integration>_*/, bench/<integration>/).
#
# A missing prerequisite (a library, a tool such as the fake camera, a Python
# module) removes what needs it and prints one line. With
# DAQ_POOL_REQUIRE_INTEGRATIONS (on when CI=true) it stops the configuration
# instead: CI installs everything, so a skip there would hide a broken
# integration.

# Reports a missing prerequisite: one status line, or an error when
# integrations are required.
function(daq_pool_missing_prerequisite text)
  if(DAQ_POOL_REQUIRE_INTEGRATIONS)
    message(FATAL_ERROR "daq_pool: ${text}\n"
                        "DAQ_POOL_REQUIRE_INTEGRATIONS is on (CI=true): every integration and its tests must run. "
                        "Install the packages named above, or configure with -DDAQ_POOL_REQUIRE_INTEGRATIONS=OFF.")
  endif()
  message(STATUS "daq_pool: ${text}")
endfunction()

# daq_pool_find_python_with(<out_var> MODULES <module>...)
# A Python 3 interpreter that can import every module (e.g. zmq numpy), or
# "" if none can. Tries the interpreter CMake finds, then Debian's
# /usr/bin/python3: a pyenv or venv python3 first on PATH does not see the
# python3-* packages that apt installs.
function(daq_pool_find_python_with out_var)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "MODULES")
  set(cache_var "DAQ_POOL_PYTHON_WITH")
  foreach(m IN LISTS arg_MODULES)
    string(APPEND cache_var "_${m}")
  endforeach()
  if(DEFINED ${cache_var})
    set(${out_var} "${${cache_var}}" PARENT_SCOPE)
    return()
  endif()
  find_package(Python3 QUIET COMPONENTS Interpreter)
  set(candidates "")
  if(Python3_EXECUTABLE)
    list(APPEND candidates "${Python3_EXECUTABLE}")
  endif()
  list(APPEND candidates /usr/bin/python3)
  find_program(_daq_pool_path_python3 python3)
  if(_daq_pool_path_python3)
    list(APPEND candidates "${_daq_pool_path_python3}")
  endif()
  list(JOIN arg_MODULES ", " imports)
  set(found "")
  foreach(python IN LISTS candidates)
    if(NOT EXISTS "${python}")
      continue()
    endif()
    execute_process(COMMAND "${python}" -c "import ${imports}" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(found "${python}")
      break()
    endif()
  endforeach()
  set(${cache_var} "${found}" CACHE INTERNAL "Python 3 that imports ${imports}")
  set(${out_var} "${found}" PARENT_SCOPE)
endfunction()

# daq_pool_add_integration_test(<integration> <source.cpp>
#     [LIBS <targets>...] [ARGS <args>...] [TIMEOUT <s>] [RESOURCE_LOCK <name>...])
# One Catch2 executable (named after the source file) linking
# daq_pool::<integration>, and its ctest case, labelled
# "integration;<integration>".
function(daq_pool_add_integration_test integration source)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "TIMEOUT" "LIBS;ARGS;RESOURCE_LOCK")
  get_filename_component(name "${source}" NAME_WE)
  add_executable(${name} "${source}")
  target_link_libraries(${name} PRIVATE daq_pool::${integration} daq_pool_test_support ${arg_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${arg_ARGS})
  if(NOT arg_TIMEOUT)
    set(arg_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${arg_TIMEOUT} LABELS "integration;${integration}")
  if(arg_RESOURCE_LOCK)
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK "${arg_RESOURCE_LOCK}")
  endif()
endfunction()
