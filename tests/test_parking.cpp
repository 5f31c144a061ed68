// detail::Parking, the event count blocked acquirers sleep on, with real
// threads and the real sleeping primitive: Linux futexes, or (built a second
// time, -DDAQ_POOL_PORTABLE_PARKING) the portable moodycamel semaphore. The
// Relacy models check the protocol against a model of a futex; these check
// the code that only runs outside the model: the system calls, the timeout
// conversion, the semaphore's permits, and the waiter count that lets a
// notify with nobody waiting skip the kernel.
//
// A lost wake-up leaves a thread asleep forever: every case that sleeps runs
// under a watchdog that aborts with the case's name instead.
#include <daq_pool/detail/parking.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "watchdog.hpp"

using daq_pool::detail::Parking;
using test_support::Watchdog;
using namespace std::chrono_literals;

namespace {

#if defined(DAQ_POOL_PORTABLE_PARKING)
constexpr const char* backend = " [portable parking]";
#else
constexpr const char* backend = " [futex parking]";
#endif

std::string named(const char* what) { return std::string(what) + backend; }

constexpr auto forever = std::optional<std::chrono::nanoseconds>{};

/// The epoch a new waiter would sleep on right now (announces and withdraws
/// a waiter: no side effect on the count).
std::uint32_t epoch_now(Parking& p) {
  const std::uint32_t key = p.prepare_wait();
  p.cancel_wait();
  return key;
}

/// Starts `n` threads that announce themselves and sleep with no timeout;
/// returns once all have announced, plus a pause so that (on any sane
/// scheduler) they are asleep in the kernel rather than about to be. The
/// pause only makes a lost wake-up likelier to show; it decides nothing.
std::vector<std::thread> sleepers(Parking& p, std::size_t n, std::atomic<std::size_t>& woken) {
  std::atomic<std::size_t> announced{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&p, &announced, &woken] {
      const std::uint32_t key = p.prepare_wait();
      announced.fetch_add(1);
      p.wait(key, forever);
      woken.fetch_add(1);
    });
  }
  while (announced.load() < n) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);
  return threads;
}

}  // namespace

TEST_CASE("notify_one wakes a thread asleep in wait()") {
  Watchdog dog(named("notify_one wakes a sleeper"), std::chrono::seconds(10));
  Parking p;
  for (int round = 0; round < 5; ++round) {
    std::atomic<std::size_t> woken{0};
    auto threads = sleepers(p, 1, woken);
    p.notify_one();
    for (auto& t : threads) t.join();
    CHECK(woken.load() == 1);
  }
}

TEST_CASE("two notify_one calls wake two sleepers") {
  Watchdog dog(named("two notify_one wake two"), std::chrono::seconds(10));
  Parking p;
  for (int round = 0; round < 3; ++round) {
    std::atomic<std::size_t> woken{0};
    auto threads = sleepers(p, 2, woken);
    p.notify_one();
    p.notify_one();
    for (auto& t : threads) t.join();
    CHECK(woken.load() == 2);
  }
}

TEST_CASE("notify_all wakes every sleeper") {
  Watchdog dog(named("notify_all wakes every sleeper"), std::chrono::seconds(10));
  Parking p;
  std::atomic<std::size_t> woken{0};
  auto threads = sleepers(p, 3, woken);
  p.notify_all();
  for (auto& t : threads) t.join();
  CHECK(woken.load() == 3);
}

TEST_CASE("a notify between prepare_wait and wait is not lost") {
  Watchdog dog(named("notify before wait"), std::chrono::seconds(10));
  Parking p;
  const std::uint32_t key = p.prepare_wait();
  p.notify_one();        // the epoch moves away from key...
  p.wait(key, forever);  // ...so this returns at once
  SUCCEED("wait returned");
}

TEST_CASE("a timed wait ends by itself when nobody notifies") {
  Watchdog dog(named("timed wait ends"), std::chrono::seconds(10));
  Parking p;
  for (const auto timeout : {std::chrono::nanoseconds(1ms), std::chrono::nanoseconds(1'200ms)}) {
    const std::uint32_t key = p.prepare_wait();
    p.wait(key, timeout);
  }
  SUCCEED("both waits returned");
}

TEST_CASE("the waiter count: notify with nobody announced leaves the epoch alone") {
  Parking p;
  const std::uint32_t start = epoch_now(p);
  // Nobody announced (the probes withdrew themselves): no bump, no syscall.
  p.notify_one();
  CHECK(epoch_now(p) == start);

  // An announced waiter makes notify_one move the epoch...
  const std::uint32_t key = p.prepare_wait();
  p.notify_one();
  CHECK(epoch_now(p) != key);
  // ...and once that waiter has been through wait(), it no longer counts.
  p.wait(key, std::chrono::nanoseconds(1ms));
  const std::uint32_t after = epoch_now(p);
  p.notify_one();
  CHECK(epoch_now(p) == after);

  // A waiter that timed out without a notify no longer counts either.
  const std::uint32_t key2 = p.prepare_wait();
  p.wait(key2, std::chrono::nanoseconds(1ms));
  p.notify_one();
  CHECK(epoch_now(p) == key2);

  // notify_all moves the epoch whether or not anyone waits.
  p.notify_all();
  CHECK(epoch_now(p) != key2);
}
