// The one place daq_pool's atomics come from, so that a model checker can
// substitute its own (moodycamel does the same with MCDBGQ_USE_RELACY).
#pragma once

#include "daq_pool/detail/abi.hpp"

#if defined(DAQ_POOL_USE_RELACY)
#include <relacy/relacy.hpp>
#else
#include <atomic>
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

#if defined(DAQ_POOL_USE_RELACY)
template <class T>
using atomic = rl::atomic<T>;
#else
template <class T>
using atomic = std::atomic<T>;
#endif

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
