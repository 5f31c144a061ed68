# Findconcurrentqueue.cmake: moodycamel's concurrentqueue, header-only.
#
# Tries upstream's own package config first (it installs
# concurrentqueueConfig.cmake with <moodycamel/...> headers); otherwise looks
# for the headers as Debian/Ubuntu lay them out (<concurrentqueue/...>, no
# CMake config) or bare in an include directory.
#
# Defines the IMPORTED target concurrentqueue::concurrentqueue and
# concurrentqueue_FOUND / concurrentqueue_INCLUDE_DIR.

find_package(concurrentqueue CONFIG QUIET NO_MODULE)
if(TARGET concurrentqueue::concurrentqueue)
  set(concurrentqueue_FOUND TRUE)
  return()
endif()

find_path(concurrentqueue_INCLUDE_DIR
  NAMES moodycamel/lightweightsemaphore.h
        concurrentqueue/moodycamel/lightweightsemaphore.h
        concurrentqueue/lightweightsemaphore.h
        lightweightsemaphore.h
  DOC "Directory above moodycamel's lightweightsemaphore.h")

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(concurrentqueue REQUIRED_VARS concurrentqueue_INCLUDE_DIR)

if(concurrentqueue_FOUND AND NOT TARGET concurrentqueue::concurrentqueue)
  add_library(concurrentqueue::concurrentqueue INTERFACE IMPORTED)
  set_target_properties(concurrentqueue::concurrentqueue PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${concurrentqueue_INCLUDE_DIR}")
endif()
mark_as_advanced(concurrentqueue_INCLUDE_DIR)
