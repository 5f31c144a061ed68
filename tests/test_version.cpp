// include/daq_pool/version.hpp must mirror CMake's project(VERSION), which
// this test receives as compile definitions (tests/CMakeLists.txt).
#include <daq_pool/version.hpp>

#include <string>

#include "catch.hpp"

#if !defined(DAQ_POOL_PROJECT_VERSION_MAJOR) || !defined(DAQ_POOL_PROJECT_VERSION_MINOR) || \
    !defined(DAQ_POOL_PROJECT_VERSION_PATCH) || !defined(DAQ_POOL_PROJECT_VERSION)
#error "tests/CMakeLists.txt must pass project(VERSION) as DAQ_POOL_PROJECT_VERSION*"
#endif

static_assert(DAQ_POOL_VERSION_MAJOR == DAQ_POOL_PROJECT_VERSION_MAJOR, "version.hpp: major != project(VERSION)");
static_assert(DAQ_POOL_VERSION_MINOR == DAQ_POOL_PROJECT_VERSION_MINOR, "version.hpp: minor != project(VERSION)");
static_assert(DAQ_POOL_VERSION_PATCH == DAQ_POOL_PROJECT_VERSION_PATCH, "version.hpp: patch != project(VERSION)");

TEST_CASE("version.hpp agrees with project(VERSION)") {
  CHECK(DAQ_POOL_VERSION_MAJOR == DAQ_POOL_PROJECT_VERSION_MAJOR);
  CHECK(DAQ_POOL_VERSION_MINOR == DAQ_POOL_PROJECT_VERSION_MINOR);
  CHECK(DAQ_POOL_VERSION_PATCH == DAQ_POOL_PROJECT_VERSION_PATCH);
  CHECK(std::string(DAQ_POOL_VERSION_STRING) == DAQ_POOL_PROJECT_VERSION);
}

TEST_CASE("the version string is built from the numbers") {
  const std::string expected = std::to_string(DAQ_POOL_VERSION_MAJOR) + "." + std::to_string(DAQ_POOL_VERSION_MINOR) +
                               "." + std::to_string(DAQ_POOL_VERSION_PATCH);
  CHECK(std::string(DAQ_POOL_VERSION_STRING) == expected);
}
