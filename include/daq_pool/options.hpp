// Construction options of the pools.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <functional>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// Options of a `Pool<T>`. Plain data; copy freely.
struct PoolOptions {
  /// Upper bound for `grow()` / `acquire_or_grow()`. 0 means the pool never
  /// grows past its initial size; otherwise it must be >= the initial size.
  std::size_t max_size = 0;
};

/// Options of a `BufferPool`. Plain data; copy freely. Validated by the
/// BufferPool constructor (std::invalid_argument naming the bad field).
struct BufferPoolOptions {
  /// Alignment of every buffer's first byte: a power of two. Page-aligned
  /// (the default) suits DMA and O_DIRECT.
  std::size_t alignment = 4096;
  /// Touch every page of every buffer at construction, so that the hot path
  /// never takes a page fault (a first write to fresh memory faults once per
  /// page).
  bool prefault = true;
  /// Zero a buffer's whole capacity when it returns to the pool, on the
  /// returning thread: no data leaks from one user to the next. Costs a
  /// memset of the capacity per cycle.
  bool zero_on_release = false;
  /// Ask for transparent huge pages (`madvise(MADV_HUGEPAGE)`) where the
  /// platform has them; ignored elsewhere. Fewer TLB misses on large frames.
  bool huge_pages = false;
  /// Linux: place every buffer in one memfd (`memfd_create`), sealed against
  /// resizing and against new writable mappings, so that other processes
  /// can map the buffers read-only and see frames in place
  /// (`daq_pool/shm.hpp`; `BufferPool::shared_memory()` gives the fd and the
  /// geometry). Still aligned and prefaulted as asked; everything else is
  /// unchanged. Not with `allocate`/`deallocate`, nor outside Linux
  /// (std::invalid_argument).
  bool shared_memory = false;
  /// Optional: allocates one buffer of `bytes` bytes aligned to `alignment`
  /// (e.g. pinned or DMA memory). Called once per buffer, only during
  /// construction; must return non-null aligned memory or throw. Give both
  /// `allocate` and `deallocate` or neither (then the pool maps one region
  /// for all buffers itself).
  std::function<void*(std::size_t bytes, std::size_t alignment)> allocate;
  /// Releases a buffer from `allocate`, with the same bytes and alignment.
  /// Called once per buffer when the pool's storage goes away: after the
  /// last BufferPool handle and the last view or PooledBuffer are gone,
  /// possibly on another thread. Must not throw.
  std::function<void(void* p, std::size_t bytes, std::size_t alignment)> deallocate;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
