// detail::ParkingSpot, the word one blocked acquirer sleeps on while it waits
// in a pool's waiter list, with real threads and the real sleeping
// primitive: Linux futexes, or (built a second time,
// -DDAQ_POOL_PORTABLE_PARKING) the portable moodycamel semaphore. The Relacy
// models check the protocol against a model of a futex; these check the code
// that only runs outside the model: the system calls, the timeout
// conversion, the semaphore's permits.
//
// What a spot promises: set_and_wake() wakes the thread sleeping in
// wait_while() on it, and only that one; a set_and_wake() before the sleep is
// not lost (the sleep compares the word first); a timed wait ends by itself;
// what the server wrote before set_and_wake() is visible to the sleeper that
// sees the new state (release/acquire; TSan checks it in the tsan preset).
//
// A lost wake-up leaves a thread asleep forever: every case that sleeps runs
// under a watchdog that aborts with the case's name instead.
#include <daq_pool/detail/parking.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "watchdog.hpp"

using daq_pool::detail::ParkingSpot;
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

/// A sleeper as PoolCore::take_waiting has one: sleeps on `spot` until its
/// state leaves 0 (spurious wake-ups and timeouts go round the loop).
/// Returns the state it saw.
std::uint32_t sleep_until_served(ParkingSpot& spot, std::optional<std::chrono::nanoseconds> timeout = forever) {
  std::uint32_t s = 0;
  while ((s = spot.state()) == 0) spot.wait_while(0, timeout);
  return s;
}

/// Waits until `n` threads have said they are about to sleep, plus a pause
/// so that (on any sane scheduler) they are asleep in the kernel rather than
/// about to be. The pause only makes a lost wake-up likelier to show; it
/// decides nothing.
void until_asleep(const std::atomic<std::size_t>& started, std::size_t n) {
  while (started.load() < n) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);
}

}  // namespace

TEST_CASE("set_and_wake wakes a thread asleep in wait_while") {
  Watchdog dog(named("set_and_wake wakes a sleeper"), std::chrono::seconds(10));
  for (int round = 0; round < 5; ++round) {
    ParkingSpot spot(0);
    std::atomic<std::size_t> started{0};
    std::uint32_t seen = 0;
    std::thread sleeper([&] {
      started.fetch_add(1);
      seen = sleep_until_served(spot);
    });
    until_asleep(started, 1);
    spot.set_and_wake(static_cast<std::uint32_t>(round + 1));
    sleeper.join();
    CHECK(seen == static_cast<std::uint32_t>(round + 1));
  }
}

TEST_CASE("set_and_wake wakes a thread in a timed wait before its timeout") {
  // The sleeper's only timeout is longer than the watchdog's bound: it must
  // be the wake-up that ends the wait.
  Watchdog dog(named("set_and_wake ends a timed wait"), std::chrono::seconds(10));
  ParkingSpot spot(0);
  std::atomic<std::size_t> started{0};
  std::uint32_t seen = 0;
  std::thread sleeper([&] {
    started.fetch_add(1);
    seen = sleep_until_served(spot, std::chrono::nanoseconds(60s));
  });
  until_asleep(started, 1);
  spot.set_and_wake(1);
  sleeper.join();
  CHECK(seen == 1);
}

TEST_CASE("each spot wakes its own sleeper only") {
  Watchdog dog(named("each spot wakes its own sleeper"), std::chrono::seconds(10));
  constexpr std::size_t n = 3;
  std::vector<std::unique_ptr<ParkingSpot>> spots;
  for (std::size_t i = 0; i < n; ++i) spots.push_back(std::make_unique<ParkingSpot>(0));
  std::atomic<std::size_t> started{0};
  std::atomic<std::size_t> served{0};
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      started.fetch_add(1);
      sleep_until_served(*spots[i]);
      served.fetch_add(1);
    });
  }
  until_asleep(started, n);
  // Served in reverse order of arrival; a sleeper whose spot is not set goes
  // back to sleep whatever wakes it, so `served` counts exactly the spots set.
  for (std::size_t k = n; k-- > 0;) {
    spots[k]->set_and_wake(1);
    threads[k].join();
    CHECK(served.load() == n - k);
  }
}

TEST_CASE("a set_and_wake before the sleep is not lost") {
  Watchdog dog(named("set_and_wake before the sleep"), std::chrono::seconds(10));
  ParkingSpot spot(0);
  spot.set_and_wake(7);         // nobody sleeps yet...
  spot.wait_while(0, forever);  // ...so this returns at once: the word is not 0
  CHECK(sleep_until_served(spot) == 7);

  // The same with the server racing the sleeper: every round, the set lands
  // anywhere between the sleeper's last look at the state and its sleep.
  for (int round = 0; round < 200; ++round) {
    ParkingSpot racing(0);
    std::thread server([&racing] { racing.set_and_wake(1); });
    CHECK(sleep_until_served(racing) == 1);
    server.join();
  }
}

TEST_CASE("wait_while returns at once when the state differs") {
  Watchdog dog(named("wait_while with another state"), std::chrono::seconds(10));
  ParkingSpot spot(3);
  spot.wait_while(0, forever);
  spot.wait_while(2, forever);
  CHECK(spot.state() == 3);
  ParkingSpot unserved(0);
  unserved.wait_while(1, forever);  // the word is 0, not 1: no sleep
  CHECK(unserved.state() == 0);
  spot.set(5);  // no sleeper: a plain store
  spot.wait_while(3, forever);
  CHECK(spot.state() == 5);
}

TEST_CASE("a timed wait ends by itself when nobody sets the state") {
  Watchdog dog(named("timed wait ends"), std::chrono::seconds(10));
  ParkingSpot spot(0);
  // Below a microsecond (the portable backend rounds up), a millisecond, and
  // more than a second (the futex timespec's seconds field).
  for (const auto timeout :
       {std::chrono::nanoseconds(300), std::chrono::nanoseconds(1ms), std::chrono::nanoseconds(1'200ms)}) {
    spot.wait_while(0, timeout);
    CHECK(spot.state() == 0);
  }
}

TEST_CASE("the sleeper sees what the server wrote before set_and_wake") {
  Watchdog dog(named("set_and_wake publishes"), std::chrono::seconds(20));
  for (int round = 0; round < 100; ++round) {
    ParkingSpot spot(0);
    std::uint64_t payload = 0;  // plain memory: the spot's release/acquire orders it
    std::atomic<std::size_t> started{0};
    std::uint64_t seen = 0;
    std::thread sleeper([&] {
      started.fetch_add(1);
      sleep_until_served(spot);
      seen = payload;
    });
    if (round % 2 == 0) until_asleep(started, 1);  // asleep, or racing the sleep
    payload = 1000 + static_cast<std::uint64_t>(round);
    spot.set_and_wake(1);
    sleeper.join();
    CHECK(seen == 1000 + static_cast<std::uint64_t>(round));
  }
}
