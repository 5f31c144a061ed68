// Tracked: a lifetime-tracking element type for pool tests. Every
// construction (default, value, copy, move) and destruction is counted, so a
// test can prove that a pool destroys each item exactly once and leaks none
// (constructed() == destroyed() once everything is gone).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace test_support {

/// An int-sized payload that counts its lifetimes in process-wide atomics and
/// detects use after destruction (a poisoned marker). Thread-safe counters;
/// the object itself is as thread-safe as an int.
struct Tracked {
  static constexpr std::uint32_t live_marker = 0x11FE'CAFEu;
  static constexpr std::uint32_t dead_marker = 0xDEAD'BEEFu;

  static inline std::atomic<long> constructions{0};
  static inline std::atomic<long> destructions{0};

  /// Objects alive right now (constructions - destructions).
  static long alive() noexcept { return constructions.load() - destructions.load(); }
  /// Zeroes both counters (call only when no Tracked is alive).
  static void reset_counters() noexcept {
    constructions.store(0);
    destructions.store(0);
  }

  explicit Tracked(int v = 0) noexcept : value(v) { constructions.fetch_add(1); }
  Tracked(const Tracked& o) noexcept : value(o.checked().value) { constructions.fetch_add(1); }
  Tracked(Tracked&& o) noexcept : value(o.checked().value) { constructions.fetch_add(1); }
  Tracked& operator=(const Tracked& o) noexcept {
    checked();
    value = o.checked().value;
    return *this;
  }
  Tracked& operator=(Tracked&& o) noexcept {
    checked();
    value = o.checked().value;
    return *this;
  }
  ~Tracked() {
    checked();
    marker = dead_marker;
    destructions.fetch_add(1);
  }

  /// *this, after aborting if it was destroyed already (double destruction
  /// or use after destruction: ASan would catch freed memory, this catches
  /// a slot whose object was destroyed but whose storage is still alive).
  const Tracked& checked() const noexcept {
    if (marker != live_marker) std::abort();
    return *this;
  }

  int value = 0;
  std::uint32_t marker = live_marker;
};

}  // namespace test_support
