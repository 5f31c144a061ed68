// How long a waiter spins before it sleeps, learned from how spinning went.
//
// A waiter (a thread acquiring from an empty pool, a broadcast subscriber
// with nothing to receive, a publisher waiting for a block subscriber's
// room) spins before it sleeps because a futex sleep and wake round trip
// costs 30-50 us on a virtualized host and the other side usually comes
// sooner. It does, while both threads stay on a CPU (bench_handoff: ~150 ns
// per hand-off). But when the other side is not running (asleep itself, or
// preempted on a loaded machine), every spin ends in the sleep anyway, and a
// fixed 50 us spin is 50 us of a CPU taken from the very thread being
// waited for: on this project's 2-CPU VM, with a load average of 3,
// bench_handoff's pool hand-off ran at 95-125 k items/s with the fixed spin
// and 235-370 k items/s with no spin at all, level with a plain mutex and
// condition variable (issue 19, item 4).
//
// So the budget adapts, per pool or channel: a spin that succeeded doubles
// it (up to max_budget), a spin that ended in a sleep halves it (down to
// min_budget, kept so that a spin can succeed again and the budget grow back
// when the other side runs again). Waits shorter than the budget are the
// common case while both sides run, and the budget stays high; when spins
// mostly fail, they cost ~2 us before the sleep instead of 50.
//
// The budget is one relaxed 32-bit word: a heuristic, which concurrent
// waiters may update over each other (a lost update only blurs it); no
// ordering of anything else depends on it. Under the Relacy model checker,
// two looks and no clock: the sleep path is what the models must explore.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "daq_pool/detail/atomic.hpp"
#include "daq_pool/detail/config.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// A spin-then-sleep budget that learns (see the file comment). Thread-safe;
/// never allocates; spin() costs what it spins, budget() one relaxed load.
class AdaptiveSpin {
 public:
  /// The longest spin: a futex round trip's cost on a virtualized host.
  static constexpr std::chrono::nanoseconds max_budget = std::chrono::microseconds(50);
  /// The shortest: a probe, so that a budget at the bottom can grow again.
  static constexpr std::chrono::nanoseconds min_budget = std::chrono::microseconds(2);

  /// The budget now (starts at max_budget).
  std::chrono::nanoseconds budget() const noexcept {
#if defined(DAQ_POOL_USE_RELACY)
    return max_budget;
#else
    return std::chrono::nanoseconds(budget_ns_.load(std::memory_order_relaxed));
#endif
  }

  /// Spins until `ready()` or the budget (or `limit`, if shorter) has
  /// passed; true if ready. A spin cut short by `limit` (a deadline) that
  /// fails teaches nothing: the budget was not tried.
  template <class Ready>
  bool spin(Ready&& ready, std::chrono::nanoseconds limit = max_budget) noexcept {
#if defined(DAQ_POOL_USE_RELACY)
    (void)limit;
    for (int i = 0; i < 2; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    return false;
#else
    using clock = std::chrono::steady_clock;
    const std::chrono::nanoseconds own = budget();
    const std::chrono::nanoseconds allowed = std::min(own, limit);
    const auto until = clock::now() + allowed;
    do {
      // Read the clock (~20 ns through the vDSO) only every 32 pauses.
      for (int i = 0; i < 32; ++i) {
        if (ready()) {
          learn(std::min(own * 2, max_budget));
          return true;
        }
        cpu_relax();
      }
    } while (clock::now() < until);
    if (allowed == own) learn(std::max(own / 2, min_budget));
    return false;
#endif
  }

 private:
#if !defined(DAQ_POOL_USE_RELACY)
  void learn(std::chrono::nanoseconds next) noexcept {
    // Skips the store when nothing changes: while spins keep succeeding at
    // the top, waiters on other CPUs don't write the shared line.
    const auto n = static_cast<std::uint32_t>(next.count());
    if (budget_ns_.load(std::memory_order_relaxed) != n) budget_ns_.store(n, std::memory_order_relaxed);
  }

  atomic<std::uint32_t> budget_ns_{static_cast<std::uint32_t>(max_budget.count())};
#endif
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
