// Where threads sleep while a pool is empty: an event count.
//
// A waiter announces itself (prepare_wait), re-checks its condition, and only
// then sleeps on the epoch it read. A notifier first makes the condition true,
// then checks for announced waiters and, only if there are any, bumps the
// epoch and wakes one. Because both sides use seq_cst operations, in the single
// total order either the waiter's re-check sees the notifier's change, or the
// notifier sees the waiter's announcement: a wake-up can't be lost. With no
// waiter, notify is one load and never enters the kernel.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>

#include "daq_pool/detail/atomic.hpp"

#if defined(__linux__) && !defined(DAQ_POOL_USE_RELACY) && !defined(DAQ_POOL_PORTABLE_PARKING)
#define DAQ_POOL_DETAIL_FUTEX 1
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ctime>
#elif !defined(DAQ_POOL_USE_RELACY)
#include "daq_pool/detail/moodycamel.hpp"
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

class Parking {
 public:
  /// Announces the calling thread as a waiter and returns the epoch to sleep
  /// on. Must be followed by exactly one cancel_wait() or wait().
  std::uint32_t prepare_wait() noexcept {
    // seq_cst: pairs with the seq_cst load in notify_one (see the file comment).
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    return epoch_.load(std::memory_order_seq_cst);
  }

  /// Withdraws the announcement of prepare_wait() without sleeping.
  void cancel_wait() noexcept { waiters_.fetch_sub(1, std::memory_order_relaxed); }

  /// Sleeps until the epoch moves away from `key` or `timeout` passes (none:
  /// forever). May wake spuriously; callers re-check their condition.
  void wait(std::uint32_t key, std::optional<std::chrono::nanoseconds> timeout) noexcept {
#if defined(DAQ_POOL_DETAIL_FUTEX)
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout) {
      ts.tv_sec = static_cast<time_t>(timeout->count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(timeout->count() % 1'000'000'000);
      tsp = &ts;
    }
    // FUTEX_WAIT checks `epoch_ == key` and sleeps atomically, so a notify
    // between our load of the epoch and this call is never missed.
    ::syscall(SYS_futex, futex_word(), FUTEX_WAIT_PRIVATE, key, tsp, nullptr, 0);
#elif defined(DAQ_POOL_USE_RELACY)
    // The model of FUTEX_WAIT under the Relacy model checker: compare the
    // epoch with `key` and park on it with no preemption point in between
    // (the kernel does both under its lock), so a notify that moved the epoch
    // first is seen and one that comes later finds us parked. A timed wait
    // may time out at any point of the schedule. Spurious wake-ups are off:
    // Relacy would use them to rescue a thread whose wake-up was lost,
    // hiding the very bug this model is for; a lost wake-up instead leaves
    // the thread parked forever, which Relacy reports as a deadlock.
    rl::context& c = rl::ctx();
    c.sched();
    bool same = false;
    {
      rl::preemption_disabler no_switch(c);
      same = epoch_.load(std::memory_order_seq_cst) == key;
    }
    if (same) epoch_.wait(c, timeout.has_value(), false, $);
#else
    if (epoch_.load(std::memory_order_seq_cst) == key) {
      // The semaphore may hold stale permits from earlier notifies; that only
      // costs a spurious wake-up, which callers tolerate.
      if (timeout)
        sleepers_.wait(std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::microseconds>(*timeout).count()));
      else
        sleepers_.wait();
    }
#endif
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

  /// Wakes one waiter if any is announced. Lock-free; no system call when
  /// nobody waits.
  void notify_one() noexcept {
    // seq_cst: pairs with prepare_wait's fetch_add (see the file comment).
    if (waiters_.load(std::memory_order_seq_cst) == 0) return;
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    wake(1);
  }

  /// Wakes every waiter, announced or about to sleep.
  void notify_all() noexcept {
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    wake(INT_MAX);
  }

 private:
  void wake([[maybe_unused]] int count) noexcept {
#if defined(DAQ_POOL_DETAIL_FUTEX)
    ::syscall(SYS_futex, futex_word(), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
#elif defined(DAQ_POOL_USE_RELACY)
    // The model of FUTEX_WAKE: unparks up to `count` threads parked in wait().
    rl::context& c = rl::ctx();
    c.sched();
    epoch_.wake(c, static_cast<rl::thread_id_t>(count), $);
#else
    const auto n = std::min<std::uint32_t>(static_cast<std::uint32_t>(count), waiters_.load(std::memory_order_relaxed));
    if (n > 0) sleepers_.signal(static_cast<moodycamel::LightweightSemaphore::ssize_t>(n));
#endif
  }

#if defined(DAQ_POOL_DETAIL_FUTEX)
  std::uint32_t* futex_word() noexcept {
    static_assert(sizeof(atomic<std::uint32_t>) == sizeof(std::uint32_t));
    return reinterpret_cast<std::uint32_t*>(&epoch_);
  }
#elif !defined(DAQ_POOL_USE_RELACY)
  moodycamel::LightweightSemaphore sleepers_;
#endif

  atomic<std::uint32_t> waiters_{0};
  atomic<std::uint32_t> epoch_{0};
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
