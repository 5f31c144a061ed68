# Dependencies: find_package first (distro or a prior install), FetchContent
# from upstream second, so a user with internet needs nothing installed.
# With DAQ_POOL_FETCH_DEPENDENCIES=OFF (the presets' choice: this project's
# machines have no internet) a missing dependency stops the configuration
# with the Debian package to install, instead of a failed git clone.
include(FetchContent)
option(DAQ_POOL_FETCH_DEPENDENCIES "Download missing dependencies (concurrentqueue, Catch2, Google Benchmark) with FetchContent" ON)

# Without fetching: find_package(<package>) or stop, naming what to install.
macro(_daq_pool_find_or_explain package apt)
  find_package(${package} ${ARGN} QUIET)
  if(NOT ${package}_FOUND)
    message(FATAL_ERROR "daq_pool: ${package} not found. Install it (Debian/Ubuntu: apt-get install ${apt}), "
                        "or configure with -DDAQ_POOL_FETCH_DEPENDENCIES=ON to download it.")
  endif()
endmacro()

# moodycamel concurrentqueue -> always the target concurrentqueue::concurrentqueue.
# Upstream's install config, Debian's bare headers (through our
# Findconcurrentqueue.cmake) and upstream's source tree all end up there.
function(daq_pool_find_concurrentqueue)
  if(TARGET concurrentqueue::concurrentqueue)
    return()
  endif()
  if(NOT DAQ_POOL_FETCH_DEPENDENCIES)
    _daq_pool_find_or_explain(concurrentqueue libconcurrentqueue-dev)
    return()
  endif()
  FetchContent_Declare(concurrentqueue
    GIT_REPOSITORY https://github.com/cameron314/concurrentqueue.git
    GIT_TAG v1.0.4
    GIT_SHALLOW TRUE
    FIND_PACKAGE_ARGS)
  FetchContent_MakeAvailable(concurrentqueue)
  if(NOT TARGET concurrentqueue::concurrentqueue)
    # Upstream's subproject target has no namespaced alias.
    add_library(concurrentqueue::concurrentqueue ALIAS concurrentqueue)
  endif()
endfunction()

# Catch2 v3 (or Debian's v2) -> the target daq_pool_catch2 with a main().
function(daq_pool_find_catch2)
  if(TARGET daq_pool_catch2)
    return()
  endif()
  if(NOT DAQ_POOL_FETCH_DEPENDENCIES)
    _daq_pool_find_or_explain(Catch2 catch2)
  endif()
  FetchContent_Declare(Catch2
    GIT_REPOSITORY https://github.com/catchorg/Catch2.git
    GIT_TAG v3.5.4
    GIT_SHALLOW TRUE
    FIND_PACKAGE_ARGS)
  FetchContent_MakeAvailable(Catch2)
  add_library(daq_pool_catch2 STATIC "${PROJECT_SOURCE_DIR}/tests/support/catch_main.cpp")
  if(TARGET Catch2::Catch2WithMain)
    target_link_libraries(daq_pool_catch2 PUBLIC Catch2::Catch2WithMain)
  else()
    target_link_libraries(daq_pool_catch2 PUBLIC Catch2::Catch2)
  endif()
  target_include_directories(daq_pool_catch2 PUBLIC "${PROJECT_SOURCE_DIR}/tests/support")
  target_compile_features(daq_pool_catch2 PUBLIC cxx_std_20)
endfunction()

# Google Benchmark -> benchmark::benchmark.
function(daq_pool_find_benchmark)
  if(TARGET benchmark::benchmark)
    return()
  endif()
  if(NOT DAQ_POOL_FETCH_DEPENDENCIES)
    _daq_pool_find_or_explain(benchmark libbenchmark-dev)
    return()
  endif()
  set(BENCHMARK_ENABLE_TESTING OFF CACHE BOOL "" FORCE)
  set(BENCHMARK_ENABLE_GTEST_TESTS OFF CACHE BOOL "" FORCE)
  FetchContent_Declare(benchmark
    GIT_REPOSITORY https://github.com/google/benchmark.git
    GIT_TAG v1.8.3
    GIT_SHALLOW TRUE
    FIND_PACKAGE_ARGS)
  FetchContent_MakeAvailable(benchmark)
endfunction()
