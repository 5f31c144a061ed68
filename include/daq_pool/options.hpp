// Construction options of the pools.
#pragma once

#include <cstddef>

namespace daq_pool {

/// Options of a `Pool<T>`. Plain data; copy freely.
struct PoolOptions {
  /// Upper bound for `grow()` / `acquire_or_grow()`. 0 means the pool never
  /// grows past its initial size; otherwise it must be >= the initial size.
  std::size_t max_size = 0;
};

}  // namespace daq_pool
