// The library's version; CMake's project(VERSION) is the source of truth and
// a test checks that the two agree.
#pragma once

#define DAQ_POOL_VERSION_MAJOR 0
#define DAQ_POOL_VERSION_MINOR 1
#define DAQ_POOL_VERSION_PATCH 0
#define DAQ_POOL_VERSION_STRING "0.1.0"
