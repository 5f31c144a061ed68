# Install rules: headers, the CMake package (config, version, targets, our
# Findconcurrentqueue.cmake) and a pkg-config file.
#
#   <prefix>/include/daq_pool/...            the headers (FILE_SET HEADERS)
#   <prefix>/share/daq_pool/*.cmake          find_package(daq_pool CONFIG)
#   <prefix>/share/pkgconfig/daq_pool.pc     pkg-config --cflags daq_pool
#
# Everything is architecture-independent (header-only), hence share/ rather
# than lib/: one install serves every triplet, and vcpkg's header-only
# convention (delete lib/) removes nothing of ours.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(DAQ_POOL_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/daq_pool"
    CACHE STRING "Where to install daq_pool's CMake package files (relative to the prefix)")
set(DAQ_POOL_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig"
    CACHE STRING "Where to install daq_pool.pc (relative to the prefix)")
mark_as_advanced(DAQ_POOL_INSTALL_CMAKEDIR DAQ_POOL_INSTALL_PKGCONFIGDIR)

install(TARGETS daq_pool EXPORT daq_poolTargets FILE_SET HEADERS DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT daq_poolTargets NAMESPACE daq_pool:: DESTINATION "${DAQ_POOL_INSTALL_CMAKEDIR}")

list(JOIN DAQ_POOL_INTEGRATIONS ", " DAQ_POOL_INTEGRATIONS_TEXT)
if(NOT DAQ_POOL_ASIO_USE_BOOST)
  set(DAQ_POOL_ASIO_USE_BOOST OFF)
endif()
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/daq_poolConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/daq_poolConfig.cmake"
  INSTALL_DESTINATION "${DAQ_POOL_INSTALL_CMAKEDIR}")
# 0.x.y accepts requests for 0.*; a request for 1.0 or 99.0 is refused.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/daq_poolConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion
  ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_BINARY_DIR}/daq_poolConfig.cmake"
  "${PROJECT_BINARY_DIR}/daq_poolConfigVersion.cmake"
  # Debian/Ubuntu ship concurrentqueue without a CMake package: the config
  # puts this directory on CMAKE_MODULE_PATH so find_dependency finds them.
  "${PROJECT_SOURCE_DIR}/cmake/Findconcurrentqueue.cmake"
  # The optional integrations' finder (components of the package).
  "${PROJECT_SOURCE_DIR}/cmake/daq_poolIntegrations.cmake"
  DESTINATION "${DAQ_POOL_INSTALL_CMAKEDIR}")

# pkg-config. Cflags carry the concurrentqueue include directories the build
# used, minus the compiler's implicit ones: nothing extra with Debian's
# /usr/include/concurrentqueue/ (our detail/moodycamel.hpp includes
# <concurrentqueue/...>), <prefix>/include/concurrentqueue with upstream's
# installed layout (<moodycamel/...>). Build-tree-only paths (a fetched source
# tree) are dropped: upstream installs into the same prefix, which
# -I${includedir} already covers.
function(daq_pool_pkgconfig_dependency_cflags out_var)
  set(target concurrentqueue::concurrentqueue)
  get_target_property(aliased ${target} ALIASED_TARGET)
  if(aliased)
    set(target ${aliased})
  endif()
  get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  get_target_property(imported ${target} IMPORTED)
  set(flags "")
  if(dirs AND imported)
    foreach(dir IN LISTS dirs)
      if(dir MATCHES "\\$<" OR dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
        continue()
      endif()
      # Inside the install prefix: relative to ${prefix}, so the .pc stays relocatable.
      file(RELATIVE_PATH below_prefix "${CMAKE_INSTALL_PREFIX}" "${dir}")
      if(NOT below_prefix MATCHES "^\\.\\./" AND NOT IS_ABSOLUTE "${below_prefix}")
        set(dir "\${prefix}/${below_prefix}")
      endif()
      string(APPEND flags " -I${dir}")
    endforeach()
  endif()
  set(${out_var} "${flags}" PARENT_SCOPE)
endfunction()
daq_pool_pkgconfig_dependency_cflags(DAQ_POOL_PC_DEPENDENCY_CFLAGS)
# Relocatable: ${pcfiledir} is the directory holding the .pc file.
file(RELATIVE_PATH DAQ_POOL_PC_TO_PREFIX
     "${CMAKE_INSTALL_PREFIX}/${DAQ_POOL_INSTALL_PKGCONFIGDIR}" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" DAQ_POOL_PC_TO_PREFIX "${DAQ_POOL_PC_TO_PREFIX}")
configure_file("${PROJECT_SOURCE_DIR}/cmake/daq_pool.pc.in" "${PROJECT_BINARY_DIR}/daq_pool.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/daq_pool.pc" DESTINATION "${DAQ_POOL_INSTALL_PKGCONFIGDIR}")

# One pkg-config file per integration, daq_pool-<name>.pc: daq_pool's flags
# plus the dependency's (Requires), e.g. `pkg-config --cflags --libs daq_pool-zmq`.
set(_daq_pool_pc_requires_aravis "aravis-0.8")
set(_daq_pool_pc_requires_zmq "libzmq")
set(_daq_pool_pc_requires_ffmpeg "libavutil")
set(_daq_pool_pc_requires_gstreamer "gstreamer-1.0 gstreamer-app-1.0")
set(_daq_pool_pc_requires_asio "")
set(_daq_pool_pc_requires_shm "")
set(_daq_pool_pc_requires_uring "liburing")
set(_daq_pool_pc_requires_hdf5 "hdf5")
foreach(integration IN LISTS DAQ_POOL_INTEGRATIONS)
  set(DAQ_POOL_PC_INTEGRATION "${integration}")
  set(DAQ_POOL_PC_REQUIRES "daq_pool ${_daq_pool_pc_requires_${integration}}")
  string(STRIP "${DAQ_POOL_PC_REQUIRES}" DAQ_POOL_PC_REQUIRES)
  set(DAQ_POOL_PC_EXTRA_CFLAGS "")
  if(integration STREQUAL "asio" AND DAQ_POOL_ASIO_INCLUDE_DIR
     AND NOT DAQ_POOL_ASIO_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    set(DAQ_POOL_PC_EXTRA_CFLAGS " -I${DAQ_POOL_ASIO_INCLUDE_DIR}")
  endif()
  configure_file("${PROJECT_SOURCE_DIR}/cmake/daq_pool-integration.pc.in"
                 "${PROJECT_BINARY_DIR}/daq_pool-${integration}.pc" @ONLY)
  install(FILES "${PROJECT_BINARY_DIR}/daq_pool-${integration}.pc" DESTINATION "${DAQ_POOL_INSTALL_PKGCONFIGDIR}")
endforeach()
