// Exceptions thrown by daq_pool.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <stdexcept>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// Thrown by the blocking `acquire()` of a pool that has been closed (by
/// `close()` or by the destruction of its last handle). Loans already out stay
/// valid. Other errors use the standard exceptions: `std::invalid_argument`
/// for bad construction arguments, `std::length_error` / `std::out_of_range`
/// for out-of-bounds sizes, `std::bad_alloc` for failed allocations.
class pool_closed : public std::runtime_error {
 public:
  pool_closed() : std::runtime_error("daq_pool: the pool is closed") {}
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
