// Counters describing a pool.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <cstdint>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// A snapshot of a pool's counters, taken by `Pool::stats()`.
/// The fields are read one after another while other threads keep working, so
/// under concurrency they may be stale and not add up exactly; once every
/// thread is quiet they are exact: `available + in_use == size` and
/// `acquires - releases == in_use`.
struct PoolStats {
  std::size_t size = 0;              ///< live slots (created by construction or growth, minus retired)
  std::size_t available = 0;         ///< slots free right now
  std::size_t in_use = 0;            ///< loans out right now
  std::size_t high_water = 0;        ///< most loans out at once since construction (never above size)
  std::uint64_t acquires = 0;        ///< successful acquisitions (every kind)
  std::uint64_t releases = 0;        ///< loans returned
  std::uint64_t misses = 0;          ///< acquisitions that found no free slot at first try
  std::uint64_t waits = 0;           ///< acquisitions that had to sleep
  std::uint64_t grows = 0;           ///< slots added by growth
  std::uint64_t reset_failures = 0;  ///< reset functions that threw (item then rebuilt or retired)
  std::uint64_t retired = 0;         ///< slots retired because reset and factory both threw
};

/// A snapshot of a BufferPool's counters (`BufferPool::stats()`): every
/// PoolStats field (same staleness rules: a "loan" is a PooledBuffer or a
/// frozen buffer that some view still holds) plus the fixed geometry.
struct BufferPoolStats : PoolStats {
  std::size_t buffer_capacity = 0;  ///< bytes each buffer holds
  std::size_t bytes_reserved = 0;   ///< buffer memory reserved at construction (with alignment padding)
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
