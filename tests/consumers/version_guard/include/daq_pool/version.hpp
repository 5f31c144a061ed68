// A stand-in version.hpp for the version_guard_* tests (cmake/DaqPoolVersion.cmake).
#pragma once

#define DAQ_POOL_VERSION_MAJOR 9
#define DAQ_POOL_VERSION_MINOR 8
#define DAQ_POOL_VERSION_PATCH 7
#define DAQ_POOL_VERSION_STRING "9.8.7"
