// detail::AdaptiveSpin, the spin-before-sleep budget of pool acquirers and
// broadcast waiters: a spin that succeeds doubles the budget (up to 50 us),
// one that runs out halves it (down to 2 us), one cut short by the caller's
// limit teaches nothing, and a budget at the bottom grows back once spins
// succeed again. Deterministic: the "other side" is a predicate that is
// either ready at once or never. (What the adaptation buys is measured by
// bench_handoff, not asserted here: no timing assertions.)
#include <daq_pool/detail/adaptive_spin.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "catch.hpp"

using daq_pool::detail::AdaptiveSpin;
using namespace std::chrono_literals;

namespace {

const auto ready = [] { return true; };
const auto never = [] { return false; };

}  // namespace

TEST_CASE("AdaptiveSpin starts at the maximum; a failed spin halves the budget down to the minimum") {
  AdaptiveSpin spin;
  CHECK(spin.budget() == AdaptiveSpin::max_budget);
  CHECK_FALSE(spin.spin(never));
  CHECK(spin.budget() == AdaptiveSpin::max_budget / 2);
  for (int i = 0; i < 20; ++i) CHECK_FALSE(spin.spin(never));
  CHECK(spin.budget() == AdaptiveSpin::min_budget);  // never below: a spin can still succeed
}

TEST_CASE("AdaptiveSpin a successful spin doubles the budget back up to the maximum") {
  AdaptiveSpin spin;
  for (int i = 0; i < 20; ++i) (void)spin.spin(never);
  REQUIRE(spin.budget() == AdaptiveSpin::min_budget);
  CHECK(spin.spin(ready));
  CHECK(spin.budget() == 2 * AdaptiveSpin::min_budget);
  for (int i = 0; i < 20; ++i) CHECK(spin.spin(ready));
  CHECK(spin.budget() == AdaptiveSpin::max_budget);  // never above
}

TEST_CASE("AdaptiveSpin a spin cut short by the caller's limit teaches nothing when it fails") {
  AdaptiveSpin spin;
  CHECK_FALSE(spin.spin(never, 1us));
  CHECK(spin.budget() == AdaptiveSpin::max_budget);
  CHECK_FALSE(spin.spin(never, 0ns));
  CHECK(spin.budget() == AdaptiveSpin::max_budget);
}

TEST_CASE("AdaptiveSpin a spin returns as soon as the other side is ready") {
  AdaptiveSpin spin;
  std::atomic<bool> flag{false};
  std::thread other([&] {
    std::this_thread::sleep_for(1ms);
    flag.store(true);
  });
  // Spins until the flag flips or the budget runs out, many times: bounded
  // by the other thread's 1 ms and the budget, whichever comes first.
  bool seen = false;
  for (int i = 0; i < 100000 && !seen; ++i) seen = spin.spin([&] { return flag.load(); });
  other.join();
  CHECK(seen);
}
