// Internal constants and tiny helpers shared by every daq_pool header.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>

#if defined(_MSC_VER)
#include <intrin.h>
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

// A fixed cache-line size rather than std::hardware_destructive_interference_size:
// g++ warns that the latter may change between compiler versions (ABI).
inline constexpr std::size_t cache_line = 64;

/// Tells the CPU we are in a spin loop (frees pipeline resources for the
/// sibling hyper-thread). Never allocates, never blocks.
inline void cpu_relax() noexcept {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_ia32_pause();
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
