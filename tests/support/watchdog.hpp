// Watchdog: turns a hang into a fast, named failure.
//
// A test that might deadlock creates one on entry; if it is not dismissed (by
// dismiss() or its destructor) within the given time, it prints which test
// hung and calls std::abort(), instead of letting ctest's timeout kill the
// process minutes later without a word.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace test_support {

/// Aborts the process with a message naming `what` unless dismissed within
/// `limit`. Starts one thread (so it allocates: create it before any
/// allocation-counting window). Not thread-safe: one owner dismisses it.
class Watchdog {
 public:
  explicit Watchdog(std::string what, std::chrono::seconds limit = std::chrono::seconds(60))
      : what_(std::move(what)), thread_([this, limit] { run(limit); }) {}

  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  /// Stops the watchdog (idempotent); joins its thread.
  void dismiss() {
    {
      std::lock_guard lock(mutex_);
      dismissed_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  ~Watchdog() { dismiss(); }

 private:
  void run(std::chrono::seconds limit) {
    std::unique_lock lock(mutex_);
    // steady_clock: a wall-clock jump must not trigger (or delay) the alarm.
    if (cv_.wait_until(lock, std::chrono::steady_clock::now() + limit, [this] { return dismissed_; })) return;
    std::fprintf(stderr, "\nWATCHDOG: '%s' did not finish within %lld s: it hangs. Aborting.\n", what_.c_str(),
                 static_cast<long long>(limit.count()));
    std::fflush(stderr);
    std::abort();
  }

  std::string what_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool dismissed_ = false;
  std::thread thread_;  // last: starts after the other members exist
};

}  // namespace test_support
