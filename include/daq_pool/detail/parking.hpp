// Where one blocked thread sleeps while it waits in a pool's waiter list: a
// parking spot, i.e. a 32-bit word the sleeper waits on and the thread that
// serves it changes (0: not served yet).
//
// The sleeper loops `while (state() == 0) wait_while(0, timeout)`; the
// server sets the word and wakes the sleeper with set_and_wake().
// A wake can't be lost: FUTEX_WAIT compares the word with the expected value
// and sleeps atomically (the portable and model backends do the same). Each
// spot has exactly one sleeper, so a wake never goes to the wrong thread.
//
// Lifetime: the spot lives on the sleeper's stack. The server calls
// set_and_wake() while it holds the pool's waiter lock, and the sleeper takes
// that lock before its spot goes out of scope, so the spot outlives every
// access by the server (no futex wake on a dead stack frame).
//
// Backends: a Linux futex on the word; elsewhere (or with
// DAQ_POOL_PORTABLE_PARKING) a moodycamel LightweightSemaphore per spot;
// under the Relacy model checker, Relacy's model of a futex.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <algorithm>
#include <chrono>
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

class ParkingSpot {
 public:
  explicit ParkingSpot(std::uint32_t initial) noexcept : word_(initial) {}
  ParkingSpot(const ParkingSpot&) = delete;
  ParkingSpot& operator=(const ParkingSpot&) = delete;

  /// The state now. acquire: pairs with set_and_wake()'s release, so what the
  /// server wrote before (e.g. the granted slot) is visible.
  std::uint32_t state() const noexcept { return word_.load(std::memory_order_acquire); }

  /// Sets the state without waking anybody (no sleeper yet, or an async
  /// waiter, which never sleeps here).
  void set(std::uint32_t s) noexcept { word_.store(s, std::memory_order_release); }

  /// Sets the state and wakes the sleeper, if it sleeps. release: everything
  /// the caller wrote before is visible to the sleeper that sees the state.
  void set_and_wake(std::uint32_t s) noexcept {
    set(s);
#if defined(DAQ_POOL_DETAIL_FUTEX)
    ::syscall(SYS_futex, futex_word(), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#elif defined(DAQ_POOL_USE_RELACY)
    // The model of FUTEX_WAKE: unparks the thread parked in wait_while().
    rl::context& c = rl::ctx();
    c.sched();
    word_.wake(c, 1, $);
#else
    sleeper_.signal();
#endif
  }

  /// Adds 1 to the state and wakes the sleeper, if it sleeps: for a spot
  /// used as a wake-up counter by several wakers (daq_pool/broadcast.hpp),
  /// where a store of a fixed value could be lost between two of them.
  /// release: as set_and_wake().
  void advance_and_wake() noexcept {
    word_.fetch_add(1, std::memory_order_release);
#if defined(DAQ_POOL_DETAIL_FUTEX)
    ::syscall(SYS_futex, futex_word(), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
#elif defined(DAQ_POOL_USE_RELACY)
    rl::context& c = rl::ctx();
    c.sched();
    word_.wake(c, 1, $);
#else
    sleeper_.signal();
#endif
  }

  /// Sleeps while the state is `s`, at most `timeout` (none: no limit). May
  /// return early (spurious wake-up, timeout): callers re-check the state.
  void wait_while(std::uint32_t s, std::optional<std::chrono::nanoseconds> timeout) noexcept {
#if defined(DAQ_POOL_DETAIL_FUTEX)
    timespec ts{};
    timespec* tsp = nullptr;
    if (timeout) {
      ts.tv_sec = static_cast<time_t>(timeout->count() / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(timeout->count() % 1'000'000'000);
      tsp = &ts;
    }
    // FUTEX_WAIT checks `word_ == s` and sleeps atomically: a set_and_wake()
    // between our last look at the state and this call is never missed.
    ::syscall(SYS_futex, futex_word(), FUTEX_WAIT_PRIVATE, s, tsp, nullptr, 0);
#elif defined(DAQ_POOL_USE_RELACY)
    // The model of FUTEX_WAIT: compare and park with no preemption point in
    // between (the kernel does both under its lock). A timed wait may time
    // out at any point of the schedule. Spurious wake-ups are off: Relacy
    // would use them to rescue a thread whose wake-up was lost, hiding the
    // very bug the models look for; a lost wake-up instead leaves the thread
    // parked forever, which Relacy reports as a deadlock.
    rl::context& c = rl::ctx();
    c.sched();
    bool same = false;
    {
      rl::preemption_disabler no_switch(c);
      // A read-modify-write reads the latest value, as the kernel's compare
      // does (a plain load may legally return an older one).
      same = word_.fetch_add(0, std::memory_order_acquire) == s;
    }
    if (same) word_.wait(c, timeout.has_value(), false, $);
#else
    if (state() != s) return;
    // One signal per set_and_wake(), one sleeper per spot: a stale permit
    // can only cost a spurious wake-up, which callers tolerate.
    if (timeout)
      sleeper_.wait(std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::microseconds>(*timeout).count()));
    else
      sleeper_.wait();
#endif
  }

 private:
#if defined(DAQ_POOL_DETAIL_FUTEX)
  std::uint32_t* futex_word() noexcept {
    static_assert(sizeof(atomic<std::uint32_t>) == sizeof(std::uint32_t));
    return reinterpret_cast<std::uint32_t*>(&word_);
  }
#elif !defined(DAQ_POOL_USE_RELACY)
  moodycamel::LightweightSemaphore sleeper_{0, 0};
#endif

  atomic<std::uint32_t> word_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
