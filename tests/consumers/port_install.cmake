# cmake -P: what `vcpkg install daq-pool` runs, without vcpkg. Configures
# SOURCE_DIR with the -D options the portfile passes (read from PORTFILE) and
# those vcpkg_cmake_configure adds itself, as a Release build; installs to
# INSTALL_PREFIX; deletes lib/ and debug/ as the portfile does; checks the
# prefix. Parameters: those of run_project.cmake plus -DPORTFILE=.
file(READ "${PORTFILE}" portfile)
string(REGEX MATCH "vcpkg_cmake_configure\\(([^)]*)\\)" call "${portfile}")
if(NOT call)
  message(FATAL_ERROR "${PORTFILE}: no vcpkg_cmake_configure(...) call")
endif()
string(REGEX MATCHALL "-D[A-Za-z0-9_]+(:[A-Z]+)?=[^ \t\r\n]+" port_options "${CMAKE_MATCH_1}")
if(NOT port_options)
  message(FATAL_ERROR "${PORTFILE}: vcpkg_cmake_configure passes no -D options")
endif()
message(STATUS "portfile options: ${port_options}")
set(vcpkg_defaults
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON  # vcpkg provides every dependency; no downloads
  -DCMAKE_EXPORT_NO_PACKAGE_REGISTRY=ON
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON
  -DCMAKE_INSTALL_LIBDIR:STRING=lib
  -DCMAKE_INSTALL_BINDIR:STRING=bin)
list(JOIN port_options "|" ARGS)
list(JOIN vcpkg_defaults "|" defaults)
string(APPEND ARGS "|${defaults}")
set(BUILD_TYPE Release)  # set(VCPKG_BUILD_TYPE release)
set(RUN_TESTS OFF)
set(REMOVE_AFTER_INSTALL "lib|debug")
include("${CMAKE_CURRENT_LIST_DIR}/run_project.cmake")
