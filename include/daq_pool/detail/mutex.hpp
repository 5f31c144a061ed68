// The lock of a pool's slow paths (its waiter list), from the same place as
// the atomics so that the Relacy model checker can substitute its own model
// (a std::mutex would block the one OS thread Relacy's fibers run on).
#pragma once

#include "daq_pool/detail/abi.hpp"

#if defined(DAQ_POOL_USE_RELACY)
#include <relacy/relacy.hpp>
#else
#include <mutex>
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

#if defined(DAQ_POOL_USE_RELACY)
/// rl::mutex with std::mutex's member names (so std::lock_guard works).
class Mutex {
 public:
  void lock() { m_.lock($); }
  void unlock() { m_.unlock($); }

 private:
  rl::mutex m_;
};
#else
using Mutex = std::mutex;
#endif

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
