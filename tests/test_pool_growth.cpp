// Growth: opt-in, bounded by max_size even with concurrent growers, a grower
// never loses the slot it made, growth wakes blocked acquirers, and slots
// never move (pointers cached by loans stay valid).
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::PoolOptions;

TEST_CASE("grow adds up to count slots within max_size and reports how many") {
  int built = 0;
  Pool<int> pool(
      2, [&built] { return built++; }, {}, PoolOptions{10});
  CHECK(pool.grow(0) == 0);
  CHECK(pool.grow(3) == 3);
  CHECK(built == 5);
  CHECK(pool.size() == 5);
  CHECK(pool.available() == 5);
  CHECK(pool.grow(100) == 5);  // capped at the bound
  CHECK(pool.size() == 10);
  CHECK(pool.grow(1) == 0);
  CHECK(built == 10);
  CHECK(pool.max_size() == 10);
  CHECK(pool.stats().grows == 8);
  // Every slot, old and new, can be lent; the new ones got new indices.
  std::set<std::size_t> seen;
  std::vector<Loaned<int>> all;
  for (int i = 0; i < 10; ++i) {
    all.push_back(pool.acquire());
    seen.insert(all.back().slot_index());
  }
  CHECK(seen.size() == 10);
  CHECK(*seen.rbegin() == 9);
  CHECK_FALSE(pool.try_acquire());
}

TEST_CASE("a closed pool does not grow") {
  int built = 0;
  Pool<int> pool(2, [&built] { return built++; }, {}, PoolOptions{10});
  auto held = pool.acquire();
  pool.close();
  CHECK(pool.grow(3) == 0);
  CHECK_FALSE(pool.acquire_or_grow());
  CHECK(built == 2);
  CHECK(pool.size() == 2);
  CHECK(pool.stats().grows == 0);
}

TEST_CASE("acquire_or_grow takes a free slot first, grows only when none is free") {
  Pool<int> pool(
      1, [] { return 0; }, {}, PoolOptions{3});
  auto a = pool.acquire_or_grow();
  REQUIRE(a);
  CHECK(pool.size() == 1);  // didn't grow: a slot was free
  auto b = pool.acquire_or_grow();
  REQUIRE(b);
  CHECK(pool.size() == 2);
  CHECK(b->slot_index() == 1);
  auto c = pool.acquire_or_grow();
  REQUIRE(c);
  CHECK_FALSE(pool.acquire_or_grow());  // at the bound, all out: nothing, no blocking
  CHECK(pool.size() == 3);
  CHECK(pool.stats().grows == 2);
  CHECK(pool.stats().misses == 1);
  b.reset();
  auto d = pool.acquire_or_grow();
  REQUIRE(d);
  CHECK(d->slot_index() == 1);
}

TEST_CASE("a pool without max_size never grows") {
  Pool<int> pool(2, [] { return 0; });
  auto a = pool.acquire();
  auto b = pool.acquire();
  CHECK_FALSE(pool.acquire_or_grow());
  CHECK(pool.grow(5) == 0);
  CHECK(pool.size() == 2);
}

TEST_CASE("concurrent growers never exceed max_size") {
  test_support::Watchdog dog("concurrent growers", std::chrono::seconds(60));
  const std::size_t rounds = test_support::scaled(200);
  for (std::size_t r = 0; r < rounds; ++r) {
    constexpr std::size_t max = 37;  // spans two buckets
    std::atomic<int> built{0};
    Pool<int> pool(
        3, [&built] { return built++; }, {}, PoolOptions{max});
    std::atomic<std::size_t> added{0};
    constexpr std::size_t threads = 4;
    test_support::StartGate gate(threads);
    test_support::run_threads(threads, [&](std::size_t) {
      gate.arrive_and_wait();
      for (int i = 0; i < 4; ++i) added += pool.grow(5);
    });
    INFO("round " << r);
    REQUIRE(added.load() == max - 3);  // 4 threads * 4 * 5 = 80 asked for; 34 fit
    REQUIRE(pool.size() == max);
    REQUIRE(built.load() == static_cast<int>(max));
    REQUIRE(pool.stats().grows == max - 3);
  }
}

TEST_CASE("a grower in acquire_or_grow never fails while below the bound") {
  test_support::Watchdog dog("acquire_or_grow never fails below bound", std::chrono::seconds(60));
  const std::size_t rounds = test_support::scaled(200);
  constexpr std::size_t threads = 4;
  constexpr std::size_t per_thread = 5;
  constexpr std::size_t max = threads * per_thread;
  for (std::size_t r = 0; r < rounds; ++r) {
    Pool<int> pool(
        1, [] { return 0; }, {}, PoolOptions{max});
    std::atomic<std::size_t> failures{0};
    std::atomic<std::size_t> extra{0};
    test_support::StartGate gate(threads);
    test_support::StartGate done(threads);
    test_support::StartGate checked(threads);
    test_support::run_threads(threads, [&](std::size_t) {
      std::vector<Loaned<int>> mine;
      gate.arrive_and_wait();
      // Loans are held, so the threads together never ask for more than
      // max: every call must succeed, whether it finds a free slot or grows.
      for (std::size_t i = 0; i < per_thread; ++i) {
        if (auto l = pool.acquire_or_grow()) {
          mine.push_back(std::move(*l));
        } else {
          ++failures;
        }
      }
      done.arrive_and_wait();  // everyone holds everything: the pool is full
      if (pool.acquire_or_grow()) ++extra;
      checked.arrive_and_wait();  // nobody returns a loan before all have tried
    });
    INFO("round " << r);
    REQUIRE(failures.load() == 0);
    REQUIRE(extra.load() == 0);
    REQUIRE(pool.size() == max);
    REQUIRE(pool.available() == max);
  }
}

TEST_CASE("growth wakes blocked acquirers") {
  test_support::Watchdog dog("growth wakes blocked acquirers", std::chrono::seconds(60));
  Pool<int> pool(
      1, [] { return 0; }, {}, PoolOptions{4});
  auto held = pool.acquire();
  constexpr int waiters = 3;
  std::atomic<int> got{0};
  std::vector<Loaned<int>> loans(waiters);
  std::vector<std::thread> threads;
  for (int i = 0; i < waiters; ++i) {
    threads.emplace_back([&, i] {
      if (i == 2) {
        // One timed waiter with a huge timeout: growth must wake it too.
        if (auto l = pool.try_acquire_for(std::chrono::hours(1))) loans[static_cast<std::size_t>(i)] = std::move(*l);
      } else {
        loans[static_cast<std::size_t>(i)] = pool.acquire();
      }
      ++got;
    });
  }
  // Nobody returns anything: only growth can satisfy them.
  while (pool.stats().waits < static_cast<std::uint64_t>(waiters)) std::this_thread::yield();
  CHECK(got.load() == 0);
  CHECK(pool.grow(3) == 3);
  for (auto& t : threads) t.join();
  CHECK(got.load() == waiters);
  std::set<std::size_t> slots;
  for (auto& l : loans) {
    REQUIRE(l);
    slots.insert(l.slot_index());
  }
  CHECK(slots == std::set<std::size_t>{1, 2, 3});
  CHECK(pool.available() == 0);
}

TEST_CASE("pointers cached by earlier loans stay valid while the pool grows") {
  test_support::Watchdog dog("pointers stable under growth", std::chrono::seconds(60));
  constexpr std::size_t max = 2000;  // many buckets
  Pool<std::size_t> pool(
      2, [] { return std::size_t{0}; }, {}, PoolOptions{max});
  auto first = pool.acquire();
  std::size_t* const cached = &*first;
  *first = 12345;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> corrupt{0};
  // One thread writes through the cached pointer while others grow and churn
  // through the new slots.
  std::thread writer([&] {
    std::size_t v = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      *cached = ++v;
      if (*cached != v) ++corrupt;
    }
  });
  test_support::run_threads(2, [&](std::size_t id) {
    std::vector<Loaned<std::size_t>> mine;
    mine.reserve(max);
    // Loans are mostly kept (so the pool must grow to serve the next one),
    // and every 8th step one is returned (so free slots get reused too).
    for (std::size_t step = 0; pool.size() < max; ++step) {
      if (auto l = pool.acquire_or_grow()) {
        **l = 1000000 + id;
        mine.push_back(std::move(*l));
      }
      if (step % 8 == 7 && !mine.empty()) mine.erase(mine.begin());
    }
  });
  stop = true;
  writer.join();
  CHECK(corrupt.load() == 0);
  CHECK(&*first == cached);
  CHECK(pool.size() == max);
  *first = 7;
  first.reset();
  // Every slot's item is where its index says: the pooled values survived.
  std::set<std::size_t> seen;
  std::vector<Loaned<std::size_t>> all;
  while (auto l = pool.try_acquire()) {
    seen.insert(l->slot_index());
    all.push_back(std::move(*l));
  }
  CHECK(seen.size() == max);
}
