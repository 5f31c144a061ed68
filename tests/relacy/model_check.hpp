// Shared pieces of the Relacy model checks: a deterministic clock for timed
// waits, "shadow" variables that stand for a slot's or a buffer's contents,
// and the runner that explores each model with Relacy's schedulers.
#pragma once

#include "relacy_prelude.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace model {

/// A clock for timed acquires under the model checker: every now() by a
/// thread advances that thread's time by one tick, so a deadline of N ticks
/// expires after N looks at the clock, however the threads are scheduled
/// (real time does not pass inside a model). Reset by each model's before().
struct TickClock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<TickClock>;
  static constexpr bool is_steady = true;

  static inline std::int64_t ticks[16] = {};

  static time_point now() noexcept { return time_point(duration(++ticks[rl::thread_index()])); }
  static void reset() noexcept {
    for (auto& t : ticks) t = 0;
  }
  /// A deadline `n` ticks after the start of a thread.
  static time_point after(rep n) noexcept { return time_point(duration(n)); }
};

/// Plain (non-atomic) memory that stands for the contents of slot or buffer
/// `i`: the model writes it while holding the slot exclusively and reads it
/// while holding a view. Relacy tracks happens-before through the library's
/// atomics and reports a data race if a slot is handed out again before its
/// previous user's accesses are ordered before the new user's, i.e. a
/// premature return or a missing release/acquire pair.
template <std::size_t N>
struct Shadow {
  rl::var<int> cell[N];
  void write(std::size_t i, int v) { cell[i]($) = v; }
  int read(std::size_t i) const { return cell[i]($); }
};

/// How hard to search: `DAQ_POOL_MODEL_ITERATIONS` in the environment (or the
/// first command-line argument) overrides the default number of random
/// schedules per model.
inline rl::iteration_t iterations(int argc, char** argv, rl::iteration_t fallback) {
  const char* text = argc > 1 ? argv[1] : std::getenv("DAQ_POOL_MODEL_ITERATIONS");
  if (text == nullptr || *text == '\0') return fallback;
  const long long n = std::atoll(text);
  return n > 0 ? static_cast<rl::iteration_t>(n) : fallback;
}

/// Explores `Suite` with `iterations` random schedules, then exhaustively
/// with every schedule of at most `context_bound` preemptions (0: skip).
/// Prints Relacy's report (the failing schedule's history) on failure.
template <class Suite>
bool check(const char* name, rl::iteration_t random_iterations, unsigned context_bound) {
  std::printf("model %s: %llu random schedules", name, static_cast<unsigned long long>(random_iterations));
  if (context_bound > 0) std::printf(", then all schedules with <= %u preemptions", context_bound);
  std::printf("\n");
  std::fflush(stdout);
  rl::test_params p;
  p.iteration_count = random_iterations;
  // Spinning acquirers and the growth of counters make long executions; a
  // genuine livelock still exceeds this.
  p.execution_depth_limit = 20000;
  p.search_type = rl::random_scheduler_type;
  if (!rl::simulate<Suite>(p)) return false;
  if (context_bound > 0) {
    rl::test_params b;
    b.execution_depth_limit = 20000;
    b.search_type = rl::fair_context_bound_scheduler_type;
    b.context_bound = context_bound;
    if (!rl::simulate<Suite>(b)) return false;
  }
  return true;
}

}  // namespace model
