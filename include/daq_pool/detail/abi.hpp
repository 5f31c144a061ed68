// The build mode and the inline ABI namespace every daq_pool declaration
// lives in.
//
// DAQ_POOL_DEBUG (the debug checks, see daq_pool/debug.hpp) changes the
// layout of pool slots and what the acquire functions record. So that
// translation units built with and without it can't be linked into one
// program and silently share one definition of Pool<T> (an ODR violation
// that would corrupt memory), everything is declared in
// `daq_pool::DAQ_POOL_ABI_NAMESPACE`, an inline namespace named after the
// major version and the mode: `daq_pool::v0` or `daq_pool::v0_debug`. Users
// still write `daq_pool::Pool<int>`; the mangled names differ, so mixing
// modes fails to link (a ctest case checks it). unordered_dense does the
// same with its versioned inline namespace.
#pragma once

#include "daq_pool/version.hpp"

// 1 by default when NDEBUG is not defined (Debug builds), 0 otherwise;
// define it to 0 or 1 to choose.
#if !defined(DAQ_POOL_DEBUG)
#if defined(NDEBUG)
#define DAQ_POOL_DEBUG 0
#else
#define DAQ_POOL_DEBUG 1
#endif
#endif

#define DAQ_POOL_DETAIL_ABI_JOIN2(major, mode) v##major##mode
#define DAQ_POOL_DETAIL_ABI_JOIN(major, mode) DAQ_POOL_DETAIL_ABI_JOIN2(major, mode)
#if DAQ_POOL_DEBUG
#define DAQ_POOL_ABI_NAMESPACE DAQ_POOL_DETAIL_ABI_JOIN(DAQ_POOL_VERSION_MAJOR, _debug)
#else
#define DAQ_POOL_ABI_NAMESPACE DAQ_POOL_DETAIL_ABI_JOIN(DAQ_POOL_VERSION_MAJOR, )
#endif
