// Pool<T>: a fixed (optionally growable) set of pre-built items, lent out
// without locks and without heap allocation.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <utility>

#include "daq_pool/debug.hpp"
#include "daq_pool/detail/pool_core.hpp"
#include "daq_pool/errors.hpp"
#include "daq_pool/loaned.hpp"
#include "daq_pool/options.hpp"
#include "daq_pool/stats.hpp"

#if DAQ_POOL_DEBUG
#include <vector>
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

namespace detail {
struct PoolAccess;
}

/// A pool of `size` items of type T, built once by `factory`, then lent out as
/// `Loaned<T>` and returned when the loan is destroyed.
///
/// Pool is a cheap handle: copies share one pool (copying is one relaxed
/// atomic increment). Every member function is thread-safe. Acquiring and
/// releasing never allocate and are lock-free while nobody waits (one CAS
/// each); a release that finds waiters serves the oldest under the pool's
/// waiter lock. Only construction and growth allocate. The pool's storage
/// lives until the last handle *and* the last loan are gone; destroying the
/// last handle closes the pool. Asynchronous acquisition (asio, coroutines):
/// daq_pool/asio.hpp.
///
/// Every acquire function ends with a defaulted `where` parameter (callers
/// never pass it): the caller's source location, which debug builds record
/// for Pool::outstanding(); release builds make it an empty object.
template <class T>
class Pool {
 public:
  /// Largest number of slots a pool can have.
  static constexpr std::size_t max_slots = detail::SlotTable<T>::max_slots;

  /// Builds `size` items with `factory` (seed `new_simple`). Throws
  /// std::invalid_argument if size is 0 or above max_slots or factory is
  /// empty; propagates the factory's exceptions (nothing leaks).
  Pool(std::size_t size, std::function<T()> factory) : Pool(size, std::move(factory), {}, {}) {}

  /// Builds `size` items with `factory`; `reset` (may be empty) runs on every
  /// returned item, on the returning thread, before anyone else can take it
  /// (seed `new` / `new_with_reset`). `options.max_size` allows growth.
  /// Throws as above, and std::invalid_argument if options.max_size is neither
  /// 0 nor >= size.
  Pool(std::size_t size, std::function<T()> factory, std::function<void(T&)> reset, PoolOptions options = {})
      : core_(new detail::PoolCore<T>(size, std::move(factory), std::move(reset), options)) {}

  /// Another handle to the same pool. Thread-safe, never allocates.
  Pool(const Pool& other) noexcept : core_(other.core_) { core_->retain_handle(); }
  /// Makes this handle share `other`'s pool (dropping its own handle).
  /// Thread-safe, never allocates.
  Pool& operator=(const Pool& other) noexcept {
    if (this != &other) {
      Pool copy(other);  // copy and swap: `copy` drops the old handle
      std::swap(core_, copy.core_);
    }
    return *this;
  }
  /// Drops this handle; the last one closes the pool.
  ~Pool() { core_->release_handle(); }

  /// A free item, waiting as long as it takes. Spins briefly, then sleeps.
  /// Throws pool_closed once the pool is closed (also while waiting).
  /// Thread-safe; lock-free fast path; never allocates.
  Loaned<T> acquire(source_location where = source_location::current()) {
    detail::Slot<T>* s = core_->take_blocking();
    if (s == nullptr) throw pool_closed();
    core_->note_acquired(*s, where);
    return Loaned<T>(core_, s);
  }

  /// A free item if there is one right now, else nothing (also when closed).
  /// Thread-safe, lock-free, never blocks, never allocates.
  std::optional<Loaned<T>> try_acquire(source_location where = source_location::current()) noexcept {
    return wrap(core_->try_take_counted(), where);
  }

  /// A free item, waiting at most `timeout` (seed `try_acquire_timeout`).
  /// Nothing on timeout or close. Zero or negative: one try; too long to
  /// represent (e.g. duration::max()): until closed. Thread-safe, never
  /// allocates.
  template <class Rep, class Period>
  std::optional<Loaned<T>> try_acquire_for(std::chrono::duration<Rep, Period> timeout,
                                           source_location where = source_location::current()) noexcept {
    return try_acquire_until(detail::deadline_after(timeout), where);
  }

  /// A free item, waiting until `deadline` at the latest (an absolute time:
  /// wake-ups and retries never extend it). Nothing on timeout or close.
  /// Thread-safe, never allocates.
  template <class Clock, class Duration>
  std::optional<Loaned<T>> try_acquire_until(std::chrono::time_point<Clock, Duration> deadline,
                                             source_location where = source_location::current()) noexcept {
    return wrap(core_->take_until(deadline), where);
  }

  /// A free item; else, if the pool may still grow, a newly built one for the
  /// caller alone; else nothing. Never blocks. Thread-safe; lock-free while an
  /// item is free, takes the growth mutex otherwise. Allocates only when it
  /// grows; the factory's exceptions propagate.
  std::optional<Loaned<T>> acquire_or_grow(source_location where = source_location::current()) {
    return wrap(core_->take_or_grow(), where);
  }

  /// Adds up to `count` items without passing max_size(); returns how many
  /// were added (0 when closed or at the bound). Waiting acquirers are woken.
  /// Thread-safe (growers are serialized); allocates.
  std::size_t grow(std::size_t count) { return core_->grow(count); }

  /// Live items (initial + grown - retired). Thread-safe; may be stale.
  std::size_t size() const noexcept { return core_->size(); }
  /// The most items the pool may hold (its initial size if it can't grow).
  std::size_t max_size() const noexcept { return core_->max_size(); }
  /// Items free right now (the free list's depth, O(1)). Thread-safe; stale
  /// the moment it is read.
  std::size_t available() const noexcept { return core_->available(); }

  /// Closes the pool: wakes every waiting acquirer at once (acquire throws
  /// pool_closed, try_* return nothing), completes every asynchronous waiter
  /// with errc::pool_closed, and fails all later acquisitions. Loans already
  /// out stay valid and return normally. Idempotent. Thread-safe, never
  /// allocates.
  void close() noexcept { core_->close(); }
  /// True once close() was called (on any handle). Thread-safe, never
  /// allocates.
  bool is_closed() const noexcept { return core_->is_closed(); }

  /// The pool's counters. Thread-safe; O(size()); see PoolStats on staleness.
  PoolStats stats() const noexcept { return core_->stats(); }

#if DAQ_POOL_DEBUG
  /// Debug builds only (DAQ_POOL_DEBUG): the loans out right now, each with
  /// the slot and where it was acquired. Thread-safe; allocates; stale the
  /// moment it returns.
  std::vector<OutstandingLoan> outstanding() const { return core_->outstanding(); }
#endif

 private:
  friend struct detail::PoolAccess;

  std::optional<Loaned<T>> wrap(detail::Slot<T>* s, const source_location& where) noexcept {
    if (s == nullptr) return std::nullopt;
    core_->note_acquired(*s, where);
    return std::optional<Loaned<T>>(Loaned<T>(core_, s));
  }

  detail::PoolCore<T>* core_;
};

namespace detail {
/// Lets daq_pool's adapters (daq_pool/asio.hpp) reach a handle's core.
struct PoolAccess {
  template <class T>
  static PoolCore<T>* core(const Pool<T>& pool) noexcept {
    return pool.core_;
  }
};
}  // namespace detail

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
