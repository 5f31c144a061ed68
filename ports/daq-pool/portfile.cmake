# Overlay port for daq-pool, header-only. It builds the checkout it lives in:
#   vcpkg install daq-pool --overlay-ports=<checkout>/ports
# (For a registry, replace SOURCE_PATH with vcpkg_from_github(OUT_SOURCE_PATH
# SOURCE_PATH REPO ... REF "v${VERSION}" SHA512 ...).)
# tests/consumers/ configures the project with the -D options below, read
# from this file, installs it and builds a consumer against the result.

set(VCPKG_BUILD_TYPE release)  # header-only: one build, no debug tree

# The features (aravis asio ffmpeg gstreamer hdf5 shm uring zmq) only bring their
# dependencies: every integration header is installed either way, and the
# installed package config defines daq_pool::<feature> for each
# find_package(daq_pool COMPONENTS <feature>) whose dependency it finds.

get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DDAQ_POOL_BUILD_TESTS=OFF
    -DDAQ_POOL_BUILD_BENCH=OFF
    -DDAQ_POOL_BUILD_EXAMPLES=OFF
    -DDAQ_POOL_INSTALL=ON
    -DDAQ_POOL_REQUIRE_INTEGRATIONS=OFF
)
vcpkg_cmake_install()
# The CMake package is daq_pool (the port is daq-pool), in share/daq_pool.
vcpkg_cmake_config_fixup(PACKAGE_NAME daq_pool)
vcpkg_fixup_pkgconfig()

# Header-only: nothing belongs in lib/ or a debug tree.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
