// Helpers for the concurrency tests: an allocation-free start gate and the
// work budget, scaled down under sanitizers.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DAQ_POOL_TEST_SLOW 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DAQ_POOL_TEST_SLOW 1
#endif
#endif

namespace test_support {

/// True in sanitizer builds, where every atomic operation costs 5-20x more.
#if defined(DAQ_POOL_TEST_SLOW)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

/// `n` in a plain build, `n / 4` (at least 1) under a sanitizer: keeps every
/// stress test to a few seconds on 2 cores either way.
constexpr std::size_t scaled(std::size_t n) noexcept { return sanitized ? (n / 4 > 0 ? n / 4 : 1) : n; }

/// A one-shot barrier for `count` threads that never allocates (std::barrier
/// may), so it can sit inside an allocation-counting window. Spins with
/// yield: fine for the handful of threads of a test. Thread-safe.
class StartGate {
 public:
  explicit StartGate(std::size_t count) noexcept : count_(count) {}
  /// Blocks until `count` threads have arrived.
  void arrive_and_wait() noexcept {
    arrived_.fetch_add(1, std::memory_order_acq_rel);
    while (arrived_.load(std::memory_order_acquire) < count_) std::this_thread::yield();
  }
  /// Threads arrived so far.
  std::size_t arrived() const noexcept { return arrived_.load(std::memory_order_acquire); }

 private:
  std::size_t count_;
  std::atomic<std::size_t> arrived_{0};
};

/// Runs `body(i)` on `n` new threads, i = 0..n-1, and joins them all.
inline void run_threads(std::size_t n, const std::function<void(std::size_t)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (std::size_t i = 0; i < n; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
}

}  // namespace test_support
