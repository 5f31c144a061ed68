// The shared state behind every handle of one Pool<T>: the slots, the free
// list, the parking lot for blocked acquirers, the counters, and the lifetime
// protocol that keeps all of it alive until the last handle *and* the last
// loan are gone.
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
#include "daq_pool/detail/atomic.hpp"
#include "daq_pool/detail/config.hpp"
#include "daq_pool/detail/deadline.hpp"
#include "daq_pool/detail/index_stack.hpp"
#include "daq_pool/detail/parking.hpp"
#include "daq_pool/detail/slot_table.hpp"
#include "daq_pool/options.hpp"
#include "daq_pool/stats.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

template <class T>
class PoolCore {
 public:
  using Factory = std::function<T()>;
  using Reset = std::function<void(T&)>;

  /// How long an acquirer spins before it sleeps. A futex sleep + wake round
  /// trip costs 30-50 us on a virtualized host, and a hand-off partner usually
  /// returns a slot sooner than that. Bounded in time, not in iterations: one
  /// `pause` takes ~10 ns on some CPUs and ~55-140 ns on others.
  static constexpr std::chrono::microseconds spin_budget{50};

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
    for (std::size_t i = size; i-- > 0;) free_.push(table_.slot(static_cast<std::uint32_t>(i)));
  }

  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;

  ~PoolCore() {
    const std::size_t n = created_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) {
      auto& s = table_.slot(static_cast<std::uint32_t>(i));
      if (s.alive) s.value.~T();
    }
  }

  // ---- lifetime: refs_ = 2 * loans out + (1 while any Pool handle exists) --

  void retain_handle() noexcept { handles_.fetch_add(1, std::memory_order_relaxed); }

  /// Drops one Pool handle; the last one closes the pool and gives up the
  /// handles' reference, which may destroy the core if no loan is out.
  void release_handle() noexcept {
    // acq_rel: like shared_ptr, the thread that destroys must see every
    // other handle's writes.
    if (handles_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      close();
      unref(1);
    }
  }

  // ---- acquiring --------------------------------------------------------

  /// Pops a free slot and lends it, or returns nullptr. Lock-free.
  Slot<T>* try_take() noexcept {
    if (is_closed()) return nullptr;
    Slot<T>* s = free_.pop(slots());
    return s == nullptr ? nullptr : &lend(*s);
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
    return &lend(*s);
  }

  /// Adds up to `count` slots (reviving retired ones first) without passing
  /// the bound; returns how many. Serialized by a mutex: growth is rare and
  /// never on the acquire/release path. If the factory throws, the slots made
  /// so far stay and the exception propagates.
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

  // ---- releasing --------------------------------------------------------

  /// Returns a lent slot: runs the reset on this thread, then makes the slot
  /// free and wakes one sleeper. Lock-free; may destroy the core if this was
  /// the last reference. Never throws: a throwing reset rebuilds the item
  /// from the factory, and if that throws too the slot is retired (counted).
  void give_back(Slot<T>& s) noexcept {
#if DAQ_POOL_DEBUG
    debug_returning(s);
#endif
    s.returns.store(s.returns.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (reset_ && !run_reset(s)) {
      // Counted before the push: once pushed, a grower may revive the slot
      // and decrement the count at once; counting after the push would let
      // that decrement come first and wrap the count below 0 (size() would
      // then briefly read above max_size()).
      retired_count_.fetch_add(1, std::memory_order_relaxed);
      retired_.push(s);
    } else {
      publish(s);
    }
    // Last: after this the core may be gone (see unref).
    unref(2);
  }

  // ---- state and counters ----------------------------------------------

  void close() noexcept {
    // seq_cst: pairs with the waiters' seq_cst re-check after prepare_wait.
    closed_.store(true, std::memory_order_seq_cst);
    parking_.notify_all();
#if DAQ_POOL_DEBUG
    debug_report_at_close();
#endif
  }
  bool is_closed() const noexcept { return closed_.load(std::memory_order_seq_cst); }

  std::size_t size() const noexcept {
    return created_.load(std::memory_order_acquire) - retired_count_.load(std::memory_order_relaxed);
  }
  std::size_t max_size() const noexcept { return table_.capacity(); }
  std::size_t in_use() const noexcept {
    return std::min(static_cast<std::size_t>(refs_.load(std::memory_order_relaxed) >> 1), size());
  }
  std::size_t available() const noexcept { return size() - in_use(); }

  PoolStats stats() const noexcept {
    PoolStats st;
    const std::size_t n = created_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& s = table_.slot(static_cast<std::uint32_t>(i));
      st.acquires += s.loans.load(std::memory_order_relaxed);
      st.releases += s.returns.load(std::memory_order_relaxed);
    }
    st.size = size();
    st.in_use = in_use();
    st.available = st.size - st.in_use;
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

  auto slots() const noexcept {
    return [this](std::uint32_t i) noexcept -> Slot<T>& { return table_.slot(i); };
  }

  void construct_item(Slot<T>& s, std::size_t index) {
    ::new (static_cast<void*>(&s.value)) T(factory_());
    s.index = static_cast<std::uint32_t>(index);
    s.alive = true;
  }

  /// Bookkeeping for a slot just taken off the free list (or made for the
  /// caller): counts the loan, takes a core reference, tracks high water.
  Slot<T>& lend(Slot<T>& s) noexcept {
#if DAQ_POOL_DEBUG
    debug_lending(s);
#endif
    s.loans.store(s.loans.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // relaxed: the caller holds a Pool handle, so the core can't die here.
    const std::size_t out = static_cast<std::size_t>(refs_.fetch_add(2, std::memory_order_relaxed) >> 1) + 1;
    // A release that already pushed but hasn't yet decremented refs_ makes
    // `out` one too high for a moment; capping at size() keeps the high water
    // meaningful.
    const std::size_t seen = std::min(out, size());
    std::size_t hw = high_water_.load(std::memory_order_relaxed);
    while (seen > hw && !high_water_.compare_exchange_weak(hw, seen, std::memory_order_relaxed)) {
    }
    return s;
  }

  /// Frees a slot and wakes one sleeper, if any.
  void publish(Slot<T>& s) noexcept {
    free_.push(s);
    // After the push: the sleeper that wakes must find the slot.
    parking_.notify_one();
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

  /// Spins until a slot looks free, the pool closes, or spin_budget (or the
  /// caller's time left, if shorter) has passed.
  void spin_while_empty([[maybe_unused]] std::optional<std::chrono::nanoseconds> left) noexcept {
#if defined(DAQ_POOL_USE_RELACY)
    // The model check must reach the sleep path: two looks, no clock.
    for (int i = 0; i < 2 && free_.looks_empty() && !is_closed(); ++i) cpu_relax();
#else
    using clock = std::chrono::steady_clock;
    const auto until = clock::now() + (left ? std::min<std::chrono::nanoseconds>(*left, spin_budget) : spin_budget);
    do {
      // Read the clock (~20 ns through the vDSO) only every 32 pauses.
      for (int i = 0; i < 32; ++i) {
        if (!free_.looks_empty() || is_closed()) return;
        cpu_relax();
      }
    } while (clock::now() < until);
#endif
  }

  template <class Remaining>
  Slot<T>* take_waiting(Remaining remaining) noexcept {
    if (Slot<T>* s = try_take()) return s;
    if (is_closed()) return nullptr;
    misses_.fetch_add(1, std::memory_order_relaxed);
    spin_while_empty(remaining());
    bool slept = false;
    for (;;) {
      if (Slot<T>* s = try_take()) return s;
      if (is_closed()) return nullptr;
      const std::optional<std::chrono::nanoseconds> left = remaining();
      if (left && left->count() <= 0) return nullptr;
      const std::uint32_t key = parking_.prepare_wait();
      // The re-check after announcing ourselves: a release or close that
      // this misses will see us in notify and move the epoch.
      if (!free_.looks_empty() || is_closed()) {
        parking_.cancel_wait();
        continue;
      }
      if (!slept) {
        waits_.fetch_add(1, std::memory_order_relaxed);
        slept = true;
      }
      parking_.wait(key, left);
    }
  }

  /// Drops `n` from refs_; the one that reaches zero destroys the core.
  void unref(std::uint64_t n) noexcept {
    // acq_rel: the destroying thread must see every write made by the others
    // while they held references (the shared_ptr protocol).
    if (refs_.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
  }

  // Read-mostly.
  SlotTable<T> table_;
  Factory factory_;
  Reset reset_;
  atomic<bool> closed_{false};

  // Written on every acquire and release: together, so that an uncontended
  // cycle touches one cache line.
  alignas(cache_line) IndexStack free_;
  atomic<std::uint64_t> refs_{1};

  alignas(cache_line) Parking parking_;

  alignas(cache_line) atomic<std::size_t> created_{0};
  atomic<std::size_t> retired_count_{0};
  atomic<std::size_t> handles_{1};
  atomic<std::size_t> high_water_{0};
  atomic<std::uint64_t> misses_{0};
  atomic<std::uint64_t> waits_{0};
  atomic<std::uint64_t> grows_{0};
  atomic<std::uint64_t> reset_failures_{0};
  IndexStack retired_;
  std::mutex grow_mutex_;
#if DAQ_POOL_DEBUG
  mutable std::mutex debug_mutex_;
  bool close_reported_ = false;
#endif
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
