# Included by the install steps: checks what `cmake --install` put in PREFIX.
#   every header of SOURCE_DIR/include/daq_pool/, byte for byte;
#   the CMake package in share/daq_pool/, the pkg-config file in share/pkgconfig/;
#   nothing of daq_pool's under lib/ (header-only: vcpkg deletes lib/);
#   no path of the source or build tree in the installed package files.
foreach(var IN ITEMS PREFIX SOURCE_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_prefix.cmake: ${var} is not set")
  endif()
endforeach()

set(problems "")
file(GLOB_RECURSE headers RELATIVE "${SOURCE_DIR}/include" "${SOURCE_DIR}/include/daq_pool/*.hpp")
if(NOT headers)
  string(APPEND problems "\n  no headers found in ${SOURCE_DIR}/include")
endif()
foreach(header IN LISTS headers)
  set(installed "${PREFIX}/include/${header}")
  if(NOT EXISTS "${installed}")
    string(APPEND problems "\n  missing include/${header}")
    continue()
  endif()
  file(SHA256 "${SOURCE_DIR}/include/${header}" want)
  file(SHA256 "${installed}" got)
  if(NOT want STREQUAL got)
    string(APPEND problems "\n  include/${header} differs from the source")
  endif()
endforeach()

set(package_files
  share/daq_pool/daq_poolConfig.cmake
  share/daq_pool/daq_poolConfigVersion.cmake
  share/daq_pool/daq_poolTargets.cmake
  share/daq_pool/Findconcurrentqueue.cmake
  share/pkgconfig/daq_pool.pc)
foreach(file IN LISTS package_files)
  if(NOT EXISTS "${PREFIX}/${file}")
    string(APPEND problems "\n  missing ${file}")
    continue()
  endif()
  file(READ "${PREFIX}/${file}" text)
  foreach(tree IN ITEMS "${SOURCE_DIR}" ${BUILD_TREES})
    string(FIND "${text}" "${tree}" at)
    if(NOT at EQUAL -1)
      string(APPEND problems "\n  ${file} names ${tree} (not relocatable)")
    endif()
  endforeach()
endforeach()

file(GLOB_RECURSE in_lib "${PREFIX}/lib/*daq_pool*" "${PREFIX}/lib64/*daq_pool*")
if(in_lib)
  string(APPEND problems "\n  header-only, yet installed under lib/: ${in_lib}")
endif()

if(problems)
  message(FATAL_ERROR "install prefix ${PREFIX}:${problems}")
endif()
list(LENGTH headers count)
message(STATUS "install prefix ${PREFIX}: ${count} headers, CMake package and pkg-config file ok")
