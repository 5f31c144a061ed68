// The shared state behind every handle of one Pool<T>: the slots, the free
// list, the waiter list of blocked threads and asynchronous operations, the
// counters, and the lifetime protocol that keeps all of it alive until the
// last handle, the last loan and the last asynchronous operation are gone.
//
// Lifetime, without a count on the acquire/release path. `refs_` counts
// one reference while any Pool handle exists, one per reference an adapter
// holds (retain(): an asynchronous operation, a cancellation handler) and,
// once the last handle is gone, one per loan still out. While a handle
// exists, loans are not counted at all: a release is one CAS on the free
// list's head, after which the releaser never touches the core again (a
// releaser that must do more, because the head says someone waits or the
// pool is orphaned, does it before its slot is free, under the waiter lock).
// When the last handle goes, the pool is closed and then *orphaned*: under
// the waiter lock the orphan flag is set in the free list's head with one
// CAS, which freezes the list (pops fail on a closed list; pushes see the
// flag), so `size() - free slots` read from that same head is exactly the
// number of loans still out; that many references are added. Every later
// release sees the flag in the head (its push CAS fails against it) and
// drops one reference instead of pushing. Whoever drops the last reference
// destroys the core. tests/relacy/model_pool_lifetime.cpp model-checks it.
//
// Waiting. A thread first spins (an adaptive budget, at most 50 us: see
// detail/adaptive_spin.hpp), then queues a node on its
// stack in the waiter list and sleeps on the node's parking spot; an
// asynchronous operation queues a node inside its operation state
// (daq_pool/asio.hpp). One FIFO list for both kinds. Queueing sets the
// `waiters` flag in the head with a CAS that also checks that no slot is
// free (the re-check and the announcement in one atomic step); a release
// that sees the flag takes the waiter lock and serves the oldest waiter:
//  - an asynchronous waiter gets the slot directly (it never becomes free,
//    so a spinning thread can't steal it); its completion is scheduled
//    after the lock is released, on the waiter's own executor;
//  - a thread, on its first turn, gets a *wake-up*: the slot is freed and
//    the thread woken to take it, competing with running threads (barging:
//    a futex wake-up costs 30-50 us, and handing the slot to a sleeping
//    thread would leave it idle that long while running threads spin). A
//    thread that loses that race queues again at the front, marked
//    starving, and its next turn hands it the slot directly.
// So no waiter of either kind starves: FIFO across kinds, and a thread loses
// at most one turn. README "Blocked threads and coroutines on one pool".
//
// Over 600 lines, one concept: the pool's shared state and its lifetime
// protocol, which must be read together (every path that touches refs_).
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <algorithm>
#include <chrono>
#if DAQ_POOL_DEBUG
#include <cstdio>
#include <cstdlib>
#include <vector>
#endif
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "daq_pool/debug.hpp"
#include "daq_pool/detail/adaptive_spin.hpp"
#include "daq_pool/detail/atomic.hpp"
#include "daq_pool/detail/config.hpp"
#include "daq_pool/detail/deadline.hpp"
#include "daq_pool/detail/free_list.hpp"
#include "daq_pool/detail/index_stack.hpp"
#include "daq_pool/detail/mutex.hpp"
#include "daq_pool/detail/parking.hpp"
#include "daq_pool/detail/slot_table.hpp"
#include "daq_pool/detail/waiter_list.hpp"
#include "daq_pool/options.hpp"
#include "daq_pool/stats.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// What PoolCore::start_wait() did with a waiter.
enum class WaitStart {
  acquired,  // a slot was free: the waiter's `slot` holds the loan (state granted); not queued
  closed,    // the pool is closed (state closed): not queued
  aborted,   // abort_wait() came first (state says why): not queued
  queued,    // in the list: it will be served, closed or aborted later
};

template <class T>
class PoolCore {
 public:
  using Factory = std::function<T()>;
  using Reset = std::function<void(T&)>;
  using Waiter = WaiterNode<T>;


  PoolCore(std::size_t size, Factory factory, Reset reset, PoolOptions options)
      : table_(checked_capacity(size, factory, options)), factory_(std::move(factory)), reset_(std::move(reset)) {
    table_.ensure(size);
    std::size_t built = 0;
    try {
      for (; built < size; ++built) construct_item(table_.slot(static_cast<std::uint32_t>(built)), built);
    } catch (...) {
      for (std::size_t i = 0; i < built; ++i) table_.slot(static_cast<std::uint32_t>(i)).value.~T();
      throw;
    }
    created_.store(size, std::memory_order_relaxed);
    // Pushed in reverse so that slot 0 is handed out first.
    for (std::size_t i = size; i-- > 0;) free_.push_unless_flagged(table_.slot(static_cast<std::uint32_t>(i)), slots());
#if defined(DAQ_POOL_USE_RELACY)
    model_alive_($) = true;
#endif
  }

  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  ~PoolCore() {
#if defined(DAQ_POOL_USE_RELACY)
    // The model's "delete": any access not ordered before this write is a
    // data race on model_alive_, any later one an access to freed memory.
    touch();
    model_alive_($) = false;
#endif
    const std::size_t n = created_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) {
      auto& s = table_.slot(static_cast<std::uint32_t>(i));
      if (s.alive) s.value.~T();
    }
  }

#if defined(DAQ_POOL_USE_RELACY)
  // Under the model checker the core lives in Relacy's heap, which reports
  // a leak (never destroyed), a double free (destroyed twice) and, with the
  // signatures of rl::atomic and rl::var, any access after the delete.
  static void* operator new(std::size_t n, std::align_val_t a) {
    const auto align = static_cast<std::size_t>(a);
    auto* raw = static_cast<unsigned char*>(rl::rl_malloc(n + align + sizeof(void*), $));
    auto addr = reinterpret_cast<std::uintptr_t>(raw + sizeof(void*));
    addr = (addr + align - 1) / align * align;
    reinterpret_cast<void**>(addr)[-1] = raw;
    return reinterpret_cast<void*>(addr);
  }
  static void operator delete(void* p, std::align_val_t) noexcept { rl::rl_free(static_cast<void**>(p)[-1], $); }
#endif

  // ---- lifetime -----------------------------------------------------------

  void retain_handle() noexcept { handles_.fetch_add(1, std::memory_order_relaxed); }

  /// Drops one Pool handle; the last one closes and orphans the pool and
  /// gives up the handles' reference, which destroys the core if no loan,
  /// operation or adapter reference is left.
  void release_handle() noexcept {
    touch();
    // acq_rel: like shared_ptr, the thread that orphans must see every
    // other handle's writes (growth, closing).
    if (handles_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      close();
      orphan();
      unref();
    }
  }

  /// Takes one more reference for an adapter (an asynchronous operation, a
  /// cancellation handler) that must outlive every Pool handle. The caller
  /// must already keep the core alive (a handle, a loan, a reference).
  void retain() noexcept {
    touch();
    // relaxed: the caller already holds a reference (the shared_ptr rule).
    refs_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Drops a reference from retain() (or a post-orphan loan's); the last one
  /// destroys the core. Must be the caller's last access to the core.
  void unref() noexcept {
    touch();
    // acq_rel: the destroying thread must see every write made by the others
    // while they held references (the shared_ptr protocol).
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

  // ---- acquiring --------------------------------------------------------

  /// Pops a free slot and lends it, or returns nullptr (none free, or
  /// closed). Lock-free: one CAS when uncontended.
  Slot<T>* try_take() noexcept {
    touch();
    const auto popped = free_.pop(slots());
    return popped.node == nullptr ? nullptr : &lend(*popped.node, popped.free_after);
  }

  /// try_take() that counts a miss when it fails.
  Slot<T>* try_take_counted() noexcept {
    Slot<T>* s = try_take();
    if (s == nullptr) misses_.fetch_add(1, std::memory_order_relaxed);
    return s;
  }

  /// Blocks until a slot is free (nullptr only once closed). Lock-free fast
  /// path; spins, then sleeps.
  Slot<T>* take_blocking() noexcept {
    return take_waiting([]() noexcept { return std::optional<std::chrono::nanoseconds>{}; });
  }

  /// Blocks until a slot is free, the pool closes, or `deadline` passes
  /// (then nullptr). The deadline is absolute: wake-ups never extend it.
  template <class Clock, class Duration>
  Slot<T>* take_until(const std::chrono::time_point<Clock, Duration>& deadline) noexcept {
    return take_waiting(
        [&deadline]() noexcept { return std::optional<std::chrono::nanoseconds>{sleep_before(deadline)}; });
  }

  /// A free slot if there is one, else a new one made for the caller (never
  /// visible to other threads, so a grower can't lose it), else nullptr.
  Slot<T>* take_or_grow() {
    if (Slot<T>* s = try_take()) return s;
    std::lock_guard lock(grow_mutex_);
    if (Slot<T>* s = try_take()) return s;
    if (is_closed()) return nullptr;
    Slot<T>* s = add_slot();
    if (s == nullptr) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    return &lend(*s, FreeList::depth(free_.load(), slots()));
  }

  /// Adds up to `count` slots (reviving retired ones first) without passing
  /// the bound; returns how many. Serialized by a mutex: growth is rare and
  /// never on the acquire/release path. If the factory throws, the slots made
  /// so far stay and the exception propagates. New slots go to waiters first.
  std::size_t grow(std::size_t count) {
    std::lock_guard lock(grow_mutex_);
    std::size_t added = 0;
    for (; added < count && !is_closed(); ++added) {
      Slot<T>* s = add_slot();
      if (s == nullptr) break;
      publish(*s);
    }
    return added;
  }

  // ---- waiting without a thread (asynchronous operations) ---------------

  /// Takes a free slot for `w` (WaitStart::acquired: w.slot is the loan) or
  /// queues `w` (WaitStart::queued), in one step under the waiter lock, so a
  /// release can't slip in between the check and the queueing. A queued
  /// asynchronous waiter is later served exactly once, by a release
  /// (granted), close() (closed) or abort_wait (cancelled, timed_out), each
  /// calling w.on_complete after releasing the lock. Never allocates.
  WaitStart start_wait(Waiter& w) noexcept {
    touch();
    std::lock_guard lock(waiters_mutex_);
    if (w.state != WaitState::idle) return WaitStart::aborted;
    std::uint64_t h = free_.load();
    for (;;) {
      if (FreeList::is_closed(h)) {
        w.state = WaitState::closed;
        return WaitStart::closed;
      }
      if (!FreeList::is_empty(h)) {
        // A slot is free (right now, or freed for a woken thread that has
        // not taken it yet): take it.
        const auto popped = free_.pop(slots());
        if (popped.node != nullptr) {
          w.slot = &lend(*popped.node, popped.free_after);
          w.state = WaitState::granted;
          return WaitStart::acquired;
        }
        h = free_.load();
        continue;
      }
      // Empty: announce the waiter in the head, unless a push or a close
      // comes first (then the CAS fails and we look again).
      if (FreeList::has_waiters(h) || free_.try_update_flags(h, FreeList::waiters_bit, 0)) break;
    }
    if (w.starving)
      waiters_.push_front(w);
    else
      waiters_.push_back(w);
    w.state = WaitState::queued;
    return WaitStart::queued;
  }

  /// Removes a queued waiter (a cancellation, a deadline), setting its state
  /// to `why`, and calls its on_complete after releasing the lock; true if it
  /// did. False if `w` was already served (its completion is under way) or
  /// not queued yet (then start_wait() will return WaitStart::aborted).
  bool abort_wait(Waiter& w, WaitState why) noexcept {
    touch();
    {
      std::lock_guard lock(waiters_mutex_);
      if (w.state == WaitState::idle) {
        w.state = why;
        return false;
      }
      if (w.state != WaitState::queued) return false;
      remove_queued(w, why);
    }
    w.on_complete(w);
    return true;
  }

  /// abort_wait() for the queued waiter whose cancel_key is `key` (a
  /// cancellation handler that can't know whether its operation still
  /// exists). O(waiters).
  bool abort_wait_by_key(const void* key, WaitState why) noexcept {
    touch();
    Waiter* w = nullptr;
    {
      std::lock_guard lock(waiters_mutex_);
      w = waiters_.find(key);
      if (w == nullptr) return false;
      remove_queued(*w, why);
    }
    w->on_complete(*w);
    return true;
  }

  // ---- releasing --------------------------------------------------------

  /// Returns a lent slot: runs the reset on this thread, then frees the slot
  /// or hands it to the oldest waiter. Lock-free while nobody waits (one CAS,
  /// after which the core may be gone); takes the waiter lock otherwise. Never
  /// throws: a throwing reset rebuilds the item from the factory, and if that
  /// throws too the slot is retired (counted).
  void give_back(Slot<T>& s) noexcept {
    touch();
#if DAQ_POOL_DEBUG
    debug_returning(s);
#endif
    s.returns.store(s.returns.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (reset_ && !run_reset(s)) {
      retire(s);
      return;
    }
    publish(s);
  }

  // ---- state and counters ----------------------------------------------

  /// Closes the pool: later pops fail, every queued thread wakes (and gives
  /// up) and every queued asynchronous waiter completes (closed). Idempotent.
  void close() noexcept {
    touch();
    Waiter* completed = nullptr;  // asynchronous waiters, linked through `next`
    {
      std::lock_guard lock(waiters_mutex_);
      free_.update_flags(FreeList::closed_bit, FreeList::waiters_bit);
      while (Waiter* w = waiters_.front()) {
        waiters_.unlink(*w);
        w->state = WaitState::closed;
        if (w->is_async()) {
          w->next = completed;
          completed = w;
        } else {
          w->parker->set_and_wake(1);
        }
      }
    }
    while (completed != nullptr) {
      Waiter* w = std::exchange(completed, completed->next);
      w->next = nullptr;
      w->on_complete(*w);  // may free w
    }
#if DAQ_POOL_DEBUG
    debug_report_at_close();
#endif
  }
  bool is_closed() const noexcept { return FreeList::is_closed(free_.load()); }

  /// Waiters (threads and asynchronous) queued now, stale the moment it is
  /// read: for tests and diagnostics. Takes the waiter lock; O(waiters),
  /// never allocates.
  std::size_t queued_waiters() noexcept {
    std::lock_guard lock(waiters_mutex_);
    std::size_t n = 0;
    for (const Waiter* w = waiters_.front(); w != nullptr; w = w->next) ++n;
    return n;
  }

  std::size_t size() const noexcept {
    return created_.load(std::memory_order_acquire) - retired_count_.load(std::memory_order_relaxed);
  }
  std::size_t max_size() const noexcept { return table_.capacity(); }
  /// Free slots: the free list's depth. O(1), stale the moment it is read.
  std::size_t available() const noexcept {
    return std::min<std::size_t>(FreeList::depth(free_.load(), slots()), size());
  }
  std::size_t in_use() const noexcept { return size() - available(); }

  PoolStats stats() const noexcept {
    PoolStats st;
    const std::size_t n = created_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& s = table_.slot(static_cast<std::uint32_t>(i));
      st.acquires += s.loans.load(std::memory_order_relaxed);
      st.releases += s.returns.load(std::memory_order_relaxed);
    }
    st.size = size();
    st.available = std::min(available(), st.size);
    st.in_use = st.size - st.available;
    st.high_water = high_water_.load(std::memory_order_relaxed);
    st.misses = misses_.load(std::memory_order_relaxed);
    st.waits = waits_.load(std::memory_order_relaxed);
    st.grows = grows_.load(std::memory_order_relaxed);
    st.reset_failures = reset_failures_.load(std::memory_order_relaxed);
    st.retired = retired_count_.load(std::memory_order_relaxed);
    return st;
  }

#if DAQ_POOL_DEBUG
  // ---- debug checks (DAQ_POOL_DEBUG; see daq_pool/debug.hpp) ------------
  // One mutex guards every slot's debug_lent / debug_acquired_at: debug
  // builds trade the lock-free hand-off for simple, race-free bookkeeping.

  /// Records where the loan of `s` (just lent to the caller) was acquired.
  void note_acquired(Slot<T>& s, const source_location& where) noexcept {
    std::lock_guard lock(debug_mutex_);
    s.debug_acquired_at = where;
  }
#else
  /// Release builds record nothing (`where` is an empty object).
  void note_acquired(Slot<T>&, const source_location&) noexcept {}
#endif
#if DAQ_POOL_DEBUG

  /// The loans out right now (frozen buffers included), by slot. Allocates.
  std::vector<OutstandingLoan> outstanding() const {
    std::vector<OutstandingLoan> out;
    std::lock_guard lock(debug_mutex_);
    const std::size_t n = created_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& s = table_.slot(static_cast<std::uint32_t>(i));
      if (s.debug_lent) out.push_back(OutstandingLoan{i, s.debug_acquired_at});
    }
    return out;
  }
#endif

 private:
  auto slots() const noexcept {
    return [this](std::uint32_t i) noexcept -> Slot<T>& { return table_.slot(i); };
  }

  /// Under the model checker: asserts the core is alive, and makes every
  /// access a read that Relacy orders against the destructor's write.
  void touch() const noexcept {
#if defined(DAQ_POOL_USE_RELACY)
    RL_ASSERT(model_alive_($));
#endif
  }

#if DAQ_POOL_DEBUG
  [[noreturn]] static void debug_fail(const char* what, std::size_t slot) noexcept {
    std::fprintf(stderr, "daq_pool: slot %zu %s\n", slot, what);
    std::fflush(stderr);
    std::abort();
  }

  /// A slot leaving the free list must not be on loan already.
  void debug_lending(Slot<T>& s) noexcept {
    std::lock_guard lock(debug_mutex_);
    if (s.debug_lent) debug_fail("was handed out while still on loan (the free list is corrupt)", s.index);
    s.debug_lent = true;
    s.debug_acquired_at = source_location{};
  }

  /// A returned slot must be one of ours, and on loan.
  void debug_returning(Slot<T>& s) noexcept {
    const std::size_t n = created_.load(std::memory_order_acquire);
    if (s.index >= n || &table_.slot(s.index) != &s)
      debug_fail("was returned to a pool it does not belong to (a slot of another pool)", s.index);
    std::lock_guard lock(debug_mutex_);
    if (!s.debug_lent) debug_fail("was returned twice (it is not on loan)", s.index);
    s.debug_lent = false;
  }

  /// The first close() lists the loans still out on stderr.
  void debug_report_at_close() noexcept {
    if (!debug::print_outstanding_at_close.load(std::memory_order_relaxed)) return;
    std::lock_guard lock(debug_mutex_);
    if (close_reported_) return;
    close_reported_ = true;
    const std::size_t n = created_.load(std::memory_order_acquire);
    std::size_t out = 0;
    for (std::size_t i = 0; i < n; ++i) out += table_.slot(static_cast<std::uint32_t>(i)).debug_lent ? 1 : 0;
    if (out == 0) return;
    std::fprintf(stderr, "daq_pool: pool closed with %zu loan(s) outstanding:\n", out);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& s = table_.slot(static_cast<std::uint32_t>(i));
      if (!s.debug_lent) continue;
      const source_location& w = s.debug_acquired_at;
      if (w.line() == 0)
        std::fprintf(stderr, "  slot %zu (where it was acquired is not recorded)\n", i);
      else
        std::fprintf(stderr, "  slot %zu acquired at %s:%u in %s\n", i, w.file_name(), static_cast<unsigned>(w.line()),
                     w.function_name());
    }
    std::fflush(stderr);
  }
#endif

  static std::size_t checked_capacity(std::size_t size, const Factory& factory, const PoolOptions& options) {
    constexpr auto limit = SlotTable<T>::max_slots;
    if (size == 0) throw std::invalid_argument("daq_pool::Pool: size must be at least 1 (got 0)");
    if (size > limit)
      throw std::invalid_argument("daq_pool::Pool: size (" + std::to_string(size) + ") exceeds the limit of " +
                                  std::to_string(limit) + " slots");
    if (!factory) throw std::invalid_argument("daq_pool::Pool: factory must not be empty");
    if (options.max_size != 0 && options.max_size < size)
      throw std::invalid_argument("daq_pool::Pool: options.max_size (" + std::to_string(options.max_size) +
                                  ") must be 0 or at least size (" + std::to_string(size) + ")");
    if (options.max_size > limit)
      throw std::invalid_argument("daq_pool::Pool: options.max_size (" + std::to_string(options.max_size) +
                                  ") exceeds the limit of " + std::to_string(limit) + " slots");
    return std::max(size, options.max_size);
  }

  void construct_item(Slot<T>& s, std::size_t index) {
    ::new (static_cast<void*>(&s.value)) T(factory_());
    s.index = static_cast<std::uint32_t>(index);
    s.alive = true;
  }

  /// Bookkeeping for a slot just lent (popped, handed over, or made for the
  /// caller), with `free_after` slots still free: counts the loan, tracks the
  /// high-water mark. No atomic read-modify-write unless the mark rises.
  Slot<T>& lend(Slot<T>& s, std::uint32_t free_after) noexcept {
#if DAQ_POOL_DEBUG
    debug_lending(s);
#endif
    s.loans.store(s.loans.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    const std::size_t live = size();
    const std::size_t out = live > free_after ? live - free_after : 0;
    std::size_t hw = high_water_.load(std::memory_order_relaxed);
    while (out > hw && !high_water_.compare_exchange_weak(hw, out, std::memory_order_relaxed)) {
    }
    return s;
  }

  /// Frees a slot, or hands it to the oldest waiter. The fast path is one
  /// CAS that fails if anybody waits or the pool is orphaned; after it the
  /// slot is free and this thread must not touch the core again.
  void publish(Slot<T>& s) noexcept {
    if (free_.push_unless_flagged(s, slots())) return;
    serve(s);
  }

  /// The release slow path: the head says somebody waits, or the pool is
  /// orphaned. Everything here happens under the waiter lock, while the
  /// slot is not free yet, so the core can't go away underneath (the orphan
  /// takes the same lock); an asynchronous waiter's completion is scheduled
  /// after the lock is released, and touches only the waiter.
  void serve(Slot<T>& s) noexcept {
    Waiter* completed = nullptr;
    bool orphaned = false;
    {
      std::lock_guard lock(waiters_mutex_);
      std::uint64_t h = free_.load();
      for (;;) {
        if (FreeList::is_orphaned(h)) {
          // A loan counted by orphan(): its reference goes below, after the
          // lock (which orphan() held until it had added the references).
          orphaned = true;
          break;
        }
        Waiter* w = waiters_.front();
        if (w == nullptr) {
          // The waiters left (timed out, cancelled) and cleared the flag.
          if (free_.try_push(h, s, slots(), 0)) break;
          continue;
        }
        // The last waiter leaves the list: the flag goes in the same CAS.
        const std::uint64_t clear = w->next == nullptr ? FreeList::waiters_bit : 0;
        if (w->is_async() || w->starving) {
          // Direct hand-off: the slot never becomes free.
          if (clear != 0 && !free_.try_update_flags(h, 0, clear)) continue;
          waiters_.unlink(*w);
          w->slot = &lend(s, FreeList::depth(h, slots()));
          w->state = WaitState::granted;
        } else {
          // A thread's first turn: free the slot and wake the thread to
          // take it (barging; see the file comment).
          if (!free_.try_push(h, s, slots(), clear)) continue;
          waiters_.unlink(*w);
          w->state = WaitState::woken;
        }
        if (w->is_async())
          completed = w;
        else
          w->parker->set_and_wake(1);
        break;
      }
    }
    if (orphaned) {
      unref();
      return;
    }
    if (completed != nullptr) completed->on_complete(*completed);
  }

  /// A slot whose item could not be rebuilt: it leaves the pool until grow()
  /// revives it. Under the waiter lock, so that orphan() counts it exactly
  /// once (as retired, or as a loan whose reference this drops).
  void retire(Slot<T>& s) noexcept {
    bool orphaned = false;
    {
      std::lock_guard lock(waiters_mutex_);
      if (FreeList::is_orphaned(free_.load())) {
        orphaned = true;
      } else {
        retired_count_.fetch_add(1, std::memory_order_relaxed);
        retired_.push(s);
      }
    }
    if (orphaned) unref();
  }

  /// The last handle is gone (and the pool closed): from now on, the loans
  /// out keep the core alive. One CAS sets the orphan flag and reads the free
  /// list's depth at that instant; pops fail (closed) and pushes see the
  /// flag, so `size() - free` loans are out, each of which will drop one
  /// reference. Under the waiter lock, so that serve() and retire() see the
  /// references added before they drop theirs.
  void orphan() noexcept {
    std::lock_guard lock(waiters_mutex_);
    const std::uint64_t h = free_.update_flags(FreeList::orphaned_bit, 0);
    const std::size_t out = size() - std::min<std::size_t>(FreeList::depth(h, slots()), size());
    refs_.fetch_add(static_cast<std::int64_t>(out), std::memory_order_relaxed);
  }

  /// The last reference is gone. The lock is taken once more so that a
  /// thread still inside an unlock of it has left it.
  void destroy() noexcept {
    { std::lock_guard lock(waiters_mutex_); }
    delete this;
  }

  /// Under the waiter lock: unlinks queued `w`, sets its state, and clears
  /// the head's waiters flag when the list becomes empty.
  void remove_queued(Waiter& w, WaitState why) noexcept {
    waiters_.unlink(w);
    w.state = why;
    if (waiters_.empty()) free_.update_flags(0, FreeList::waiters_bit);
  }

  /// Runs the reset; on a throw rebuilds from the factory. False: the slot
  /// holds no item any more and must be retired.
  bool run_reset(Slot<T>& s) noexcept {
    try {
      reset_(s.value);
      return true;
    } catch (...) {
      reset_failures_.fetch_add(1, std::memory_order_relaxed);
    }
    s.value.~T();
    s.alive = false;
    try {
      ::new (static_cast<void*>(&s.value)) T(factory_());
      s.alive = true;
      return true;
    } catch (...) {
      return false;
    }
  }

  /// Under grow_mutex_: revives a retired slot or creates one, within the
  /// bound. Returns it not yet published, or nullptr at the bound.
  Slot<T>* add_slot() {
    if (Slot<T>* revived = retired_.pop(slots())) {
      Slot<T>& s = *revived;
      try {
        ::new (static_cast<void*>(&s.value)) T(factory_());
      } catch (...) {
        retired_.push(s);
        throw;
      }
      s.alive = true;
      retired_count_.fetch_sub(1, std::memory_order_relaxed);
      grows_.fetch_add(1, std::memory_order_relaxed);
      return &s;
    }
    const std::size_t n = created_.load(std::memory_order_relaxed);
    if (n >= table_.capacity()) return nullptr;
    table_.ensure(n + 1);
    construct_item(table_.slot(static_cast<std::uint32_t>(n)), n);
    // release: stats() and size() readers that see the new count see the slot.
    created_.store(n + 1, std::memory_order_release);
    grows_.fetch_add(1, std::memory_order_relaxed);
    return &table_.slot(static_cast<std::uint32_t>(n));
  }

  /// True if no slot looks free (or the pool is closed: stop spinning).
  bool looks_empty() const noexcept {
    const std::uint64_t h = free_.load();
    return FreeList::is_empty(h) && !FreeList::is_closed(h);
  }

  /// Spins until a slot looks free, the pool closes, or the spin budget (or
  /// the caller's time left, if shorter) has passed. The budget adapts to
  /// how spinning went on this pool (detail/adaptive_spin.hpp): a hand-off
  /// partner usually returns a slot within microseconds while it runs, and
  /// when it does not run, spinning only takes its CPU.
  void spin_while_empty(std::optional<std::chrono::nanoseconds> left) noexcept {
    spin_.spin([this] { return !looks_empty(); }, left ? *left : AdaptiveSpin::max_budget);
  }

  /// A blocked thread: try, spin, then queue a node on this stack frame and
  /// sleep on its parking spot until served, closed or out of time.
  template <class Remaining>
  Slot<T>* take_waiting(Remaining remaining) noexcept {
    if (Slot<T>* s = try_take()) return s;
    if (is_closed()) return nullptr;
    misses_.fetch_add(1, std::memory_order_relaxed);
    spin_while_empty(remaining());
    bool counted = false;
    bool starving = false;
    for (;;) {
      if (Slot<T>* s = try_take()) return s;
      if (is_closed()) return nullptr;
      std::optional<std::chrono::nanoseconds> left = remaining();
      if (left && left->count() <= 0) return nullptr;
      ParkingSpot spot(0);
      Waiter w(spot);
      w.starving = starving;
      switch (start_wait(w)) {
        case WaitStart::acquired:
          return w.slot;
        case WaitStart::closed:
        case WaitStart::aborted:
          return nullptr;
        case WaitStart::queued:
          break;
      }
      if (!counted) {
        waits_.fetch_add(1, std::memory_order_relaxed);
        counted = true;
      }
      while (spot.state() == 0) {
        left = remaining();
        if (left && left->count() <= 0) break;
        spot.wait_while(0, left);
      }
      // Under the lock: either still queued (out of time: leave), or served,
      // and then the server has finished with `spot` (it wakes under the
      // lock), so the frame may go.
      WaitState st;
      {
        std::lock_guard lock(waiters_mutex_);
        if (w.state == WaitState::queued) remove_queued(w, WaitState::timed_out);
        st = w.state;
      }
      switch (st) {
        case WaitState::granted:
          return w.slot;
        case WaitState::woken:
          // A slot was freed for us; take it at the top of the loop. If
          // another thread was quicker, queue again at the front, and the
          // next release hands us its slot directly.
          starving = true;
          continue;
        default:  // closed, timed out
          return nullptr;
      }
    }
  }

  // Read-mostly.
  SlotTable<T> table_;
  Factory factory_;
  Reset reset_;

  // The one word every acquire and release writes (the free list's head
  // with the pool's flags): an uncontended cycle touches this cache line,
  // the slot's, and the read-mostly ones.
  static_assert(SlotTable<T>::max_slots <= FreeList::max_nodes,
                "a slot index must leave the free list's tentative bit free");
  alignas(cache_line) FreeList free_;

  // The slow paths: waiters, lifetime.
  alignas(cache_line) Mutex waiters_mutex_;
  WaiterList<T> waiters_;
  atomic<std::int64_t> refs_{1};
  atomic<std::size_t> handles_{1};
  IndexStack retired_;

  // Read on every acquire (size(), the high-water mark), written rarely.
  alignas(cache_line) atomic<std::size_t> created_{0};
  atomic<std::size_t> retired_count_{0};
  atomic<std::size_t> high_water_{0};

  alignas(cache_line) atomic<std::uint64_t> misses_{0};
  atomic<std::uint64_t> waits_{0};
  AdaptiveSpin spin_;  // read and written only by acquirers that missed, like the counters here
  atomic<std::uint64_t> grows_{0};
  atomic<std::uint64_t> reset_failures_{0};
  std::mutex grow_mutex_;
#if DAQ_POOL_DEBUG
  mutable std::mutex debug_mutex_;
  bool close_reported_ = false;
#endif
#if defined(DAQ_POOL_USE_RELACY)
  rl::var<bool> model_alive_;
#endif
};

/// A counted reference to a core, for adapters whose objects may outlive
/// every Pool handle (asynchronous operations, cancellation handlers).
/// Move-only. Never allocates.
template <class T>
class CoreRef {
 public:
  CoreRef() noexcept = default;
  /// Takes a new reference; `core` must be kept alive by the caller now.
  explicit CoreRef(PoolCore<T>* core) noexcept : core_(core) { core_->retain(); }
  CoreRef(CoreRef&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  CoreRef& operator=(CoreRef&& o) noexcept {
    if (this != &o) {
      reset();
      core_ = std::exchange(o.core_, nullptr);
    }
    return *this;
  }
  CoreRef(const CoreRef&) = delete;
  CoreRef& operator=(const CoreRef&) = delete;
  ~CoreRef() { reset(); }

  PoolCore<T>* get() const noexcept { return core_; }
  PoolCore<T>* operator->() const noexcept { return core_; }
  /// Drops the reference (possibly destroying the core). Must be the
  /// holder's last access to the core.
  void reset() noexcept {
    if (core_ != nullptr) std::exchange(core_, nullptr)->unref();
  }

 private:
  PoolCore<T>* core_ = nullptr;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
