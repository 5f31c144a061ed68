// BufferPool: pre-allocated, aligned byte buffers for frame pipelines, lent
// out as PooledBuffer and shared as Bytes views, without allocating.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "daq_pool/bytes.hpp"
#include "daq_pool/debug.hpp"
#include "daq_pool/detail/buffer.hpp"
#include "daq_pool/errors.hpp"
#include "daq_pool/options.hpp"
#include "daq_pool/pool.hpp"
#include "daq_pool/pooled_buffer.hpp"
#include "daq_pool/stats.hpp"

#if DAQ_POOL_DEBUG
#include <vector>
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// Where the buffers of a shared-memory BufferPool live
/// (BufferPoolOptions::shared_memory): one memfd of `size` bytes holding
/// buffer i at offset i * stride, for i < count, each `capacity` bytes long.
/// What a frame server sends another process so that it can map the file
/// and find a frame by its offset (daq_pool/shm.hpp).
struct SharedMemoryRegion {
  /// The memfd. Owned by the pool: open while any handle, PooledBuffer or
  /// view of the pool lives; don't close it. Pass it on with SCM_RIGHTS.
  int fd = -1;
  std::size_t size = 0;             ///< the file's size: what another process maps
  std::size_t count = 0;            ///< buffers
  std::size_t capacity = 0;         ///< bytes each buffer holds
  std::size_t stride = 0;           ///< distance between buffers (debug builds: canary room included)
  const std::byte* base = nullptr;  ///< this process's (writable) mapping of the file
  /// True if the file refuses every new writable mapping
  /// (F_SEAL_FUTURE_WRITE, Linux >= 5.1): nobody else can write into it.
  bool write_sealed = false;
};

/// `pool_size` byte buffers of `buffer_capacity` bytes each, allocated,
/// aligned and (by default) prefaulted once at construction, then lent out
/// as `PooledBuffer`s. A buffer returns to the pool when its PooledBuffer is
/// destroyed unfrozen, or when the last `Bytes` view of it is destroyed;
/// either way its size goes back to 0 (and, with zero_on_release, its bytes
/// to zero) on the returning thread.
///
/// Built on `Pool<T>`: the same lock-free slots, blocking and timed waits,
/// close semantics and counters. BufferPool is a cheap handle: copies share
/// one pool. Every member function is thread-safe. Only construction
/// allocates; acquiring, freezing, copying views and returning never do.
/// The buffers' memory lives until the last handle, PooledBuffer and view
/// are all gone; destroying the last handle closes the pool.
class BufferPool {
 public:
  /// Reserves the buffers. Throws std::invalid_argument naming the argument
  /// if pool_size or buffer_capacity is 0, pool_size * buffer_capacity
  /// overflows, options.alignment is not a power of two, only one of
  /// options.allocate / options.deallocate is given, or
  /// options.shared_memory is asked with an allocator or outside Linux;
  /// std::bad_alloc (with a
  /// message naming the sizes) if the memory can't be had. Whatever was
  /// allocated before a failure is released.
  BufferPool(std::size_t pool_size, std::size_t buffer_capacity, BufferPoolOptions options = {})
      : BufferPool(std::make_shared<detail::BufferMemory>(pool_size, buffer_capacity, std::move(options)), pool_size,
                   buffer_capacity) {}

  /// A free buffer (size 0), waiting as long as it takes. Throws pool_closed
  /// once the pool is closed (also while waiting). Thread-safe; lock-free
  /// fast path; never allocates.
  PooledBuffer acquire(source_location where = source_location::current()) { return fresh(pool_.acquire(where)); }

  /// A free buffer if there is one right now, else nothing (also when
  /// closed). Thread-safe, lock-free, never blocks, never allocates.
  std::optional<PooledBuffer> try_acquire(source_location where = source_location::current()) noexcept {
    return wrap(pool_.try_acquire(where));
  }

  /// A free buffer, waiting at most `timeout` (seed `try_acquire_timeout`);
  /// nothing on timeout or close. Thread-safe, never allocates.
  template <class Rep, class Period>
  std::optional<PooledBuffer> try_acquire_for(std::chrono::duration<Rep, Period> timeout,
                                              source_location where = source_location::current()) noexcept {
    return wrap(pool_.try_acquire_for(timeout, where));
  }

  /// A free buffer, waiting until `deadline` at the latest; nothing on
  /// timeout or close. Thread-safe, never allocates.
  template <class Clock, class Duration>
  std::optional<PooledBuffer> try_acquire_until(std::chrono::time_point<Clock, Duration> deadline,
                                                source_location where = source_location::current()) noexcept {
    return wrap(pool_.try_acquire_until(deadline, where));
  }

  /// Number of buffers. Thread-safe; never allocates.
  std::size_t size() const noexcept { return pool_.size(); }
  /// Buffers free right now (neither acquired nor held by a view).
  /// Thread-safe; stale the moment it is read.
  std::size_t available() const noexcept { return pool_.available(); }
  /// Bytes each buffer holds. Thread-safe; never allocates.
  std::size_t buffer_capacity() const noexcept { return capacity_; }

  /// Closes the pool: waiting acquirers wake (acquire throws pool_closed,
  /// try_* return nothing), asynchronous ones complete with
  /// errc::pool_closed, and later acquisitions fail. Buffers and views
  /// already out stay valid and return normally. Idempotent; thread-safe.
  void close() noexcept { pool_.close(); }
  /// True once close() was called or the last handle was destroyed.
  /// Thread-safe; never allocates.
  bool is_closed() const noexcept { return pool_.is_closed(); }

  /// The pool's counters plus its geometry. Thread-safe; O(size()); see
  /// PoolStats on staleness. Never allocates.
  BufferPoolStats stats() const noexcept {
    BufferPoolStats st;
    static_cast<PoolStats&>(st) = pool_.stats();
    st.buffer_capacity = capacity_;
    st.bytes_reserved = bytes_reserved_;
    return st;
  }

  /// The memfd and geometry of a pool made with
  /// BufferPoolOptions::shared_memory; nothing for any other pool.
  /// Thread-safe; never allocates.
  std::optional<SharedMemoryRegion> shared_memory() const noexcept {
    if (shared_.fd < 0) return std::nullopt;
    return shared_;
  }

  /// Where `view` starts in the shared-memory file: the offset of its first
  /// byte, if the pool is shared and `view` is a non-empty view of one of its
  /// buffers (a heap copy or another pool's view gives nothing). With the
  /// view's size, that is what another process needs to find the bytes.
  /// Thread-safe; never allocates.
  std::optional<std::size_t> shared_offset(const Bytes& view) const noexcept {
    if (shared_.fd < 0 || view.empty()) return std::nullopt;
    // Compare addresses as integers: pointers into different objects have no
    // order in C++.
    const auto first = reinterpret_cast<std::uintptr_t>(shared_.base);
    const auto at = reinterpret_cast<std::uintptr_t>(view.data());
    if (at < first || at - first >= shared_.size || view.size() > shared_.size - (at - first)) return std::nullopt;
    return static_cast<std::size_t>(at - first);
  }

#if DAQ_POOL_DEBUG
  /// Debug builds only (DAQ_POOL_DEBUG): the buffers out right now (as
  /// PooledBuffer, or frozen with a view alive), each with its slot and
  /// where it was acquired. Thread-safe; allocates; stale when it returns.
  std::vector<OutstandingLoan> outstanding() const { return pool_.outstanding(); }
#endif

 private:
  friend struct detail::BufferPoolAccess;  // daq_pool/asio.hpp: the Pool underneath

  BufferPool(const std::shared_ptr<detail::BufferMemory>& memory, std::size_t pool_size, std::size_t capacity)
      : pool_(pool_size, factory(memory, capacity), reset(memory->zero_on_release())),
        capacity_(capacity),
        bytes_reserved_(memory->bytes_reserved()) {
    if (memory->shared_fd() >= 0) {
      shared_.fd = memory->shared_fd();
      shared_.size = memory->shared_size();
      shared_.count = pool_size;
      shared_.capacity = capacity;
      shared_.stride = memory->buffer_stride();
      shared_.base = memory->region();
      shared_.write_sealed = memory->write_sealed();
    }
  }

  static std::function<detail::Buffer()> factory(const std::shared_ptr<detail::BufferMemory>& memory,
                                                 std::size_t capacity) {
    // Each buffer keeps the memory alive; the region goes after the last one.
    return [memory, capacity, next = std::size_t{0}]() mutable {
      return detail::Buffer(memory->make(next++), capacity, memory);
    };
  }

  static std::function<void(detail::Buffer&)> reset(bool zero_on_release) {
#if DAQ_POOL_DEBUG
    // Debug builds always check a returning buffer: an overrun past its
    // capacity aborts here, naming the buffer; the bytes its last user saw
    // are poisoned (or zeroed, with zero_on_release), so a stale read
    // through a dangling pointer shows.
    return [zero_on_release](detail::Buffer& b) noexcept {
      b.memory->check_canary(b.data);
      if (zero_on_release)
        std::memset(b.data, 0, b.capacity);
      else
        std::memset(b.data, debug::poison_byte, b.size);
    };
#else
    // Only a scrub needs a reset: without one the pool skips the indirect
    // call on every return (24% of a BufferPool cycle), and fresh() sets the
    // size instead.
    if (!zero_on_release) return {};
    // Runs on the returning thread before the buffer is free again.
    return [](detail::Buffer& b) noexcept { std::memset(b.data, 0, b.capacity); };
#endif
  }

  /// A buffer just taken from the pool, as its new user must find it: size 0
  /// and the full capacity writable (the seed cleared its Vec on return, so
  /// the next user's set_len + freeze panicked).
  static PooledBuffer fresh(Loaned<detail::Buffer>&& loan) noexcept {
    loan->size = 0;
    return PooledBuffer(std::move(loan));
  }

  static std::optional<PooledBuffer> wrap(std::optional<Loaned<detail::Buffer>>&& loan) noexcept {
    if (!loan) return std::nullopt;
    return std::optional<PooledBuffer>(fresh(std::move(*loan)));
  }

  Pool<detail::Buffer> pool_;
  std::size_t capacity_;
  std::size_t bytes_reserved_;
  SharedMemoryRegion shared_;  // fd -1 unless shared_memory
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
