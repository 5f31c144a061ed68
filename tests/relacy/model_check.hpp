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

/// True if `text` is a schedule count (all digits).
inline bool is_count(const char* text) {
  if (text == nullptr || *text == '\0') return false;
  for (const char* c = text; *c != '\0'; ++c)
    if (*c < '0' || *c > '9') return false;
  return true;
}

/// How hard to search: the first command-line argument, if it is a number,
/// or else `DAQ_POOL_MODEL_ITERATIONS` in the environment, overrides the
/// default number of random schedules per model. 0: none (only the
/// exhaustive, preemption-bounded searches run).
inline rl::iteration_t iterations(int argc, char** argv, rl::iteration_t fallback) {
  const char* text = argc > 1 && is_count(argv[1]) ? argv[1] : std::getenv("DAQ_POOL_MODEL_ITERATIONS");
  if (!is_count(text)) return fallback;
  return static_cast<rl::iteration_t>(std::atoll(text));
}

/// Explores `Suite` with `iterations` random schedules, then exhaustively
/// with every schedule of at most `context_bound` preemptions (0: skip).
/// Prints Relacy's report (the failing schedule's history) on failure, and
/// how many schedules it took to find it.
template <class Suite>
bool check(const char* name, rl::iteration_t random_iterations, unsigned context_bound) {
  std::printf("model %s: %llu random schedules", name, static_cast<unsigned long long>(random_iterations));
  if (context_bound > 0) std::printf(", then all schedules with <= %u preemptions", context_bound);
  std::printf("\n");
  std::fflush(stdout);
  // Relacy's stop_iteration is the index of the failing schedule.
  const auto failed = [name](const char* search, const rl::test_params& p) {
    std::printf("model %s FAILED: %s, %s search, schedule %llu\n", name, rl::test_result_str(p.test_result), search,
                static_cast<unsigned long long>(p.stop_iteration) + 1);
    std::fflush(stdout);
    return false;
  };
  if (random_iterations > 0) {
    rl::test_params p;
    p.iteration_count = random_iterations;
    // Spinning acquirers and the growth of counters make long executions; a
    // genuine livelock still exceeds this.
    p.execution_depth_limit = 20000;
    p.search_type = rl::random_scheduler_type;
    if (!rl::simulate<Suite>(p)) return failed("random", p);
  }
  if (context_bound > 0) {
    rl::test_params b;
    b.execution_depth_limit = 20000;
    b.search_type = rl::fair_context_bound_scheduler_type;
    b.context_bound = context_bound;
    if (!rl::simulate<Suite>(b)) return failed("exhaustive (bounded preemptions)", b);
    std::printf("model %s: %llu schedules with <= %u preemptions, all passed\n", name,
                static_cast<unsigned long long>(b.stop_iteration), context_bound);
  }
  return true;
}

/// A model file's main(): runs the models the command line selects and
/// reports. Arguments: an optional schedule count (a number; see
/// iterations()), then optional model names: only those run, and a name
/// that matches no model is an error (a stale reference, e.g. in the
/// mutation table, must not pass silently). With DAQ_POOL_MODEL_FAIL_FAST
/// set (the mutation suite sets it), the first failing model ends the run.
class Runner {
 public:
  Runner(int argc, char** argv, rl::iteration_t fallback)
      : iterations_(iterations(argc, argv, fallback)), fail_fast_(std::getenv("DAQ_POOL_MODEL_FAIL_FAST") != nullptr) {
    for (int i = 1; i < argc; ++i) {
      if (i == 1 && is_count(argv[i])) continue;
      if (names_ < max_names) selected_[names_++] = argv[i];
    }
  }

  /// Runs model `Suite` (if selected) with `factor` times the random
  /// schedules, then every schedule with at most `context_bound`
  /// preemptions (0: none).
  template <class Suite>
  void check(const char* name, rl::iteration_t factor, unsigned context_bound) {
    if (!selected(name)) return;
    if (!ok_ && fail_fast_) {
      std::printf("model %s: not run (an earlier model failed; DAQ_POOL_MODEL_FAIL_FAST)\n", name);
      return;
    }
    ++ran_;
    if (!model::check<Suite>(name, factor * iterations_, context_bound)) ok_ = false;
  }

  /// Prints the verdict; the process's exit status.
  int finish() const {
    for (int i = 0; i < names_; ++i) {
      if (!matched_[i]) {
        std::printf("no model named '%s' in this file\n", selected_[i]);
        return 2;
      }
    }
    if (ran_ == 0) {
      std::printf("no model ran\n");
      return 2;
    }
    std::printf(ok_ ? "all models passed\n" : "MODEL CHECK FAILED\n");
    return ok_ ? 0 : 1;
  }

 private:
  static constexpr int max_names = 16;

  bool selected(const char* name) {
    if (names_ == 0) return true;
    bool any = false;
    for (int i = 0; i < names_; ++i) {
      if (std::strcmp(selected_[i], name) == 0) matched_[i] = any = true;
    }
    return any;
  }

  rl::iteration_t iterations_;
  const char* selected_[max_names] = {};
  bool matched_[max_names] = {};
  int names_ = 0;
  int ran_ = 0;
  bool ok_ = true;
  bool fail_fast_;
};

}  // namespace model
