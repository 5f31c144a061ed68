# daq_pool's optional integrations: finding each one's dependency and making
# the target users link, daq_pool::<name>. Used twice: by the build tree
# (CMakeLists.txt) and, installed beside daq_poolConfig.cmake, by
# find_package(daq_pool COMPONENTS <name>...). One place, so that both agree.
#
#   name       header                    dependency (found with)             Debian packages
#   aravis     daq_pool/aravis.hpp       aravis-0.8 (pkg-config)             libaravis-dev libusb-1.0-0-dev
#   zmq        daq_pool/zmq.hpp, zmq/    libzmq (pkg-config), or libzmq's /  libzmq3-dev
#                                        cppzmq's CMake config
#   ffmpeg     daq_pool/ffmpeg.hpp       libavutil (pkg-config)              libavutil-dev
#   gstreamer  daq_pool/gstreamer.hpp    gstreamer-1.0, gstreamer-app-1.0    libgstreamer1.0-dev
#                                        (pkg-config)                        libgstreamer-plugins-base1.0-dev
#   asio       daq_pool/asio.hpp         asio.hpp (find_path; standalone),   libasio-dev
#                                        or Boost.Asio with
#                                        DAQ_POOL_ASIO_USE_BOOST
#   shm        daq_pool/shm.hpp          Linux (memfd_create, SCM_RIGHTS)    -
#   uring      daq_pool/uring.hpp        liburing (pkg-config)               liburing-dev
#   hdf5       daq_pool/hdf5.hpp         hdf5 (pkg-config), or               libhdf5-dev
#                                        find_package(HDF5 COMPONENTS C)
#
# Each daq_pool::<name> is an INTERFACE IMPORTED target that brings
# daq_pool::daq_pool, the dependency's include directories and its link
# flags: linking it is all a user does. It exists only when the dependency
# was found; the core never needs any of them.

set(DAQ_POOL_INTEGRATIONS aravis zmq ffmpeg gstreamer asio shm uring hdf5)

# The Debian packages that provide integration `name`'s dependency.
function(daq_pool_integration_packages name out_var)
  set(aravis "libaravis-dev libusb-1.0-0-dev")
  set(zmq "libzmq3-dev")
  set(ffmpeg "libavutil-dev")
  set(gstreamer "libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev")
  set(asio "libasio-dev")
  set(shm "(Linux only)")
  set(uring "liburing-dev")
  set(hdf5 "libhdf5-dev")
  set(${out_var} "${${name}}" PARENT_SCOPE)
endfunction()

# pkg_check_modules into an imported target PkgConfig::<prefix>; sets
# <out_var> to the target or to "" when a module is missing.
function(_daq_pool_pkg_target prefix out_var global)
  find_package(PkgConfig QUIET)
  set(${out_var} "" PARENT_SCOPE)
  if(NOT PkgConfig_FOUND)
    return()
  endif()
  set(scope "")
  if(global)
    set(scope GLOBAL)
  endif()
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${scope} ${ARGN})
  if(${prefix}_FOUND AND TARGET PkgConfig::${prefix})
    set(${out_var} PkgConfig::${prefix} PARENT_SCOPE)
    # One module: <prefix>_VERSION; several: <prefix>_<module>_VERSION.
    list(GET ARGN 0 first)
    set(version "${${prefix}_VERSION}")
    if(NOT version)
      set(version "${${prefix}_${first}_VERSION}")
    endif()
    set(${prefix}_VERSION "${version}" PARENT_SCOPE)
  endif()
endfunction()

# daq_pool_find_integration(<name> [GLOBAL])
# Finds integration <name>'s dependency and, if found, defines the target
# daq_pool::<name> (GLOBAL: visible in the whole build tree). Sets
# daq_pool_<name>_FOUND and daq_pool_<name>_DETAIL (the version found, or why
# not) in the caller's scope. Needs the target daq_pool::daq_pool.
function(daq_pool_find_integration name)
  set(global FALSE)
  if("GLOBAL" IN_LIST ARGN)
    set(global TRUE)
  endif()
  set(scope "")
  if(global)
    set(scope GLOBAL)
  endif()
  set(found FALSE)
  set(detail "")
  set(libs "")
  set(defs "")

  if(TARGET daq_pool::${name})
    set(daq_pool_${name}_FOUND TRUE PARENT_SCOPE)
    return()
  endif()

  if(name STREQUAL "aravis")
    # aravis-0.8.pc lists libusb-1.0 as Requires.private: without
    # libusb-1.0-0-dev pkg-config refuses aravis-0.8 as a whole.
    _daq_pool_pkg_target(daq_pool_dep_aravis dep ${global} aravis-0.8)
    if(dep)
      set(found TRUE)
      set(libs ${dep})
      set(detail "aravis ${daq_pool_dep_aravis_VERSION}")
    else()
      set(detail "pkg-config module aravis-0.8 not found")
    endif()
  elseif(name STREQUAL "zmq")
    _daq_pool_pkg_target(daq_pool_dep_zmq dep ${global} libzmq)
    if(dep)
      set(found TRUE)
      set(libs ${dep})
      set(detail "libzmq ${daq_pool_dep_zmq_VERSION}")
    else()
      # Without pkg-config: libzmq's own CMake package (vcpkg's zeromq
      # port installs it), or cppzmq's, which finds libzmq.
      find_package(ZeroMQ CONFIG QUIET)
      find_package(cppzmq CONFIG QUIET)
      if(TARGET libzmq)
        set(found TRUE)
        set(libs libzmq)
        set(detail "libzmq ${ZeroMQ_VERSION} (CMake package)")
      elseif(TARGET cppzmq)
        set(found TRUE)
        set(libs cppzmq)
        set(detail "libzmq through cppzmq ${cppzmq_VERSION}")
      else()
        set(detail "pkg-config module libzmq (or libzmq's or cppzmq's CMake config) not found")
      endif()
    endif()
  elseif(name STREQUAL "ffmpeg")
    _daq_pool_pkg_target(daq_pool_dep_ffmpeg dep ${global} libavutil)
    if(dep)
      set(found TRUE)
      set(libs ${dep})
      set(detail "libavutil ${daq_pool_dep_ffmpeg_VERSION}")
    else()
      set(detail "pkg-config module libavutil not found")
    endif()
  elseif(name STREQUAL "gstreamer")
    _daq_pool_pkg_target(daq_pool_dep_gstreamer dep ${global} gstreamer-1.0 gstreamer-app-1.0)
    if(dep)
      set(found TRUE)
      set(libs ${dep})
      set(detail "gstreamer ${daq_pool_dep_gstreamer_VERSION}")
    else()
      set(detail "pkg-config modules gstreamer-1.0 and gstreamer-app-1.0 not found")
    endif()
  elseif(name STREQUAL "asio")
    if(DAQ_POOL_ASIO_USE_BOOST)
      find_package(Boost QUIET)
      if(Boost_FOUND)
        set(found TRUE)
        set(libs Boost::headers)
        set(defs DAQ_POOL_ASIO_USE_BOOST=1)
        set(detail "Boost.Asio (Boost ${Boost_VERSION})")
      else()
        set(detail "Boost (for DAQ_POOL_ASIO_USE_BOOST) not found")
      endif()
    else()
      # Standalone asio has no CMake or pkg-config file (Debian's libasio-dev
      # installs only headers): look for the header.
      find_path(DAQ_POOL_ASIO_INCLUDE_DIR asio.hpp DOC "Directory holding standalone asio's asio.hpp")
      mark_as_advanced(DAQ_POOL_ASIO_INCLUDE_DIR)
      if(NOT DAQ_POOL_ASIO_INCLUDE_DIR AND DAQ_POOL_FETCH_ASIO)
        # Opt-in fallback (build tree only; an installed package never
        # downloads): upstream's headers, which need no build.
        include(FetchContent)
        FetchContent_Declare(daq_pool_asio
          GIT_REPOSITORY https://github.com/chriskohlhoff/asio.git
          GIT_TAG asio-1-22-1
          GIT_SHALLOW TRUE)
        FetchContent_GetProperties(daq_pool_asio)
        if(NOT daq_pool_asio_POPULATED)
          FetchContent_Populate(daq_pool_asio)
        endif()
        if(EXISTS "${daq_pool_asio_SOURCE_DIR}/asio/include/asio.hpp")
          set(DAQ_POOL_ASIO_INCLUDE_DIR "${daq_pool_asio_SOURCE_DIR}/asio/include" CACHE PATH
              "Directory holding standalone asio's asio.hpp" FORCE)
        endif()
      endif()
      if(DAQ_POOL_ASIO_INCLUDE_DIR)
        set(found TRUE)
        set(libs ${DAQ_POOL_ASIO_INCLUDE_DIR})
        set(detail "standalone asio in ${DAQ_POOL_ASIO_INCLUDE_DIR}")
      else()
        set(detail "asio.hpp (standalone asio) not found")
      endif()
    endif()
  elseif(name STREQUAL "shm")
    if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
      set(found TRUE)
      set(detail "Linux")
    else()
      set(detail "Linux only (memfd_create, SCM_RIGHTS)")
    endif()
  elseif(name STREQUAL "uring")
    # The recorder's io_uring backend (issue 21).
    _daq_pool_pkg_target(daq_pool_dep_uring dep ${global} liburing)
    if(dep)
      set(found TRUE)
      set(libs ${dep})
      set(detail "liburing ${daq_pool_dep_uring_VERSION}")
    else()
      set(detail "pkg-config module liburing not found")
    endif()
  elseif(name STREQUAL "hdf5")
    # HDF5's C library, 1.10.2 or later (H5Dwrite_chunk), for daq_pool/hdf5.hpp
    # (issue 21). Debian's serial build is found by pkg-config as hdf5.
    _daq_pool_pkg_target(daq_pool_dep_hdf5 dep ${global} hdf5>=1.10.2)
    if(dep)
      set(found TRUE)
      set(libs ${dep})
      set(detail "hdf5 ${daq_pool_dep_hdf5_VERSION}")
    else()
      find_package(HDF5 1.10.2 QUIET COMPONENTS C)
      if(HDF5_FOUND AND TARGET hdf5::hdf5)
        set(found TRUE)
        set(libs hdf5::hdf5)
        set(detail "hdf5 ${HDF5_VERSION} (FindHDF5)")
      else()
        set(detail "pkg-config module hdf5 (>= 1.10.2) or find_package(HDF5) not found")
      endif()
    endif()
  else()
    message(FATAL_ERROR "daq_pool: unknown integration '${name}' (known: ${DAQ_POOL_INTEGRATIONS})")
  endif()

  if(found)
    add_library(daq_pool::${name} INTERFACE IMPORTED ${scope})
    set(link daq_pool::daq_pool)
    if(name STREQUAL "asio" AND NOT DAQ_POOL_ASIO_USE_BOOST)
      set_target_properties(daq_pool::${name} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${libs}")
    else()
      list(APPEND link ${libs})
    endif()
    set_target_properties(daq_pool::${name} PROPERTIES INTERFACE_LINK_LIBRARIES "${link}")
    if(defs)
      set_target_properties(daq_pool::${name} PROPERTIES INTERFACE_COMPILE_DEFINITIONS "${defs}")
    endif()
  endif()
  set(daq_pool_${name}_FOUND ${found} PARENT_SCOPE)
  set(daq_pool_${name}_DETAIL "${detail}" PARENT_SCOPE)
endfunction()
