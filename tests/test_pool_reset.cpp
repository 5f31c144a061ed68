// The reset function: runs on the releasing thread before anyone else can
// take the slot; a throwing reset rebuilds the item from the factory; reset
// and factory both throwing retire the slot, counted, never lost silently.
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "tracked.hpp"
#include "watchdog.hpp"

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::PoolOptions;
using test_support::Tracked;

TEST_CASE("reset runs once per return, on the returning thread") {
  std::vector<std::thread::id> ran_on;
  Pool<int> pool(
      2, [] { return 0; },
      [&ran_on](int& v) {
        ran_on.push_back(std::this_thread::get_id());
        v = 0;
      });
  {
    auto a = pool.acquire();
    *a = 5;
  }
  REQUIRE(ran_on.size() == 1);
  CHECK(ran_on[0] == std::this_thread::get_id());
  CHECK(*pool.acquire() == 0);  // (and that return ran it again)
  CHECK(ran_on.size() == 2);

  auto loan = pool.acquire();
  std::thread::id other;
  std::thread t([&] {
    other = std::this_thread::get_id();
    Loaned<int> moved = std::move(loan);
  });
  t.join();
  REQUIRE(ran_on.size() == 3);
  CHECK(ran_on[2] == other);

  // Moves, clone_item and try_clone run it only when a slot goes back.
  auto b = pool.acquire();
  auto c = std::move(b);
  CHECK(ran_on.size() == 3);
  (void)std::move(c).clone_item();
  CHECK(ran_on.size() == 4);
}

TEST_CASE("reset completes before the slot is visible to other threads") {
  test_support::Watchdog dog("reset before visible", std::chrono::seconds(60));
  // The reset writes the item slowly, field by field; an acquirer that could
  // see the slot before reset finished would observe a half-reset item.
  struct Item {
    int a = 0, b = 0, c = 0;
    std::atomic<int> in_reset{0};
    Item() = default;
    Item(const Item&) : Item() {}
  };
  Pool<Item> pool(
      1, [] { return Item(); },
      [](Item& it) {
        it.in_reset.store(1, std::memory_order_relaxed);
        it.a = 0;
        std::this_thread::yield();
        it.b = 0;
        std::this_thread::yield();
        it.c = 0;
        it.in_reset.store(0, std::memory_order_relaxed);
      });
  const int per_thread = static_cast<int>(test_support::scaled(4000));
  std::atomic<int> bad{0};
  test_support::StartGate gate(2);
  test_support::run_threads(2, [&](std::size_t id) {
    gate.arrive_and_wait();
    for (int i = 0; i < per_thread; ++i) {
      auto l = pool.acquire();
      // Plain (non-atomic) reads: if the reset could overlap the loan, TSan
      // flags the race, and the values show it too.
      if (l->a != 0 || l->b != 0 || l->c != 0 || l->in_reset.load(std::memory_order_relaxed) != 0) ++bad;
      l->a = l->b = l->c = static_cast<int>(id) + 1;
    }
  });
  CHECK(bad.load() == 0);
}

TEST_CASE("a throwing reset rebuilds the item from the factory") {
  Tracked::reset_counters();
  {
    int built = 0;
    bool fail_next_reset = false;
    Pool<Tracked> pool(
        2, [&built] { return Tracked(1000 + built++); },
        [&fail_next_reset](Tracked& t) {
          if (std::exchange(fail_next_reset, false)) throw std::runtime_error("reset failed");
          t.value = 0;
        });
    CHECK(built == 2);
    auto a = pool.acquire();
    const auto slot = a.slot_index();
    a->value = 42;
    fail_next_reset = true;
    a.reset();  // never throws, never terminates
    CHECK(built == 3);
    CHECK(Tracked::alive() == 2);  // the old item was destroyed, a new one built
    const auto st = pool.stats();
    CHECK(st.reset_failures == 1);
    CHECK(st.retired == 0);
    CHECK(st.size == 2);
    CHECK(st.available == 2);
    // The rebuilt item is in the same slot (LIFO: lent next).
    auto again = pool.acquire();
    CHECK(again.slot_index() == slot);
    CHECK(again->value == 1002);
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("reset and factory both throwing retire the slot; grow() revives it") {
  Tracked::reset_counters();
  {
    bool factory_fails = false;
    bool reset_fails = false;
    Pool<Tracked> pool(
        3,
        [&factory_fails] {
          if (factory_fails) throw std::runtime_error("factory failed");
          return Tracked(7);
        },
        [&reset_fails](Tracked&) {
          if (reset_fails) throw std::runtime_error("reset failed");
        });
    CHECK(pool.max_size() == 3);
    auto a = pool.acquire();
    auto b = pool.acquire();
    const auto retired_slot = a.slot_index();
    factory_fails = reset_fails = true;
    a.reset();  // reset throws, the rebuild throws: retired, no terminate
    CHECK(Tracked::alive() == 2);

    auto st = pool.stats();
    CHECK(st.reset_failures == 1);
    CHECK(st.retired == 1);
    CHECK(st.size == 2);
    CHECK(pool.size() == 2);
    CHECK(st.in_use == 1);
    CHECK(st.available == 1);
    CHECK(st.available + st.in_use == st.size);
    CHECK(st.releases == 1);

    // The retired slot is never lent again.
    factory_fails = reset_fails = false;
    {
      auto c = pool.acquire();
      CHECK(c.slot_index() != retired_slot);
      CHECK_FALSE(pool.try_acquire());
    }
    b.reset();
    CHECK(pool.available() == 2);

    // grow() revives the retired slot, even though the pool has no room to
    // grow beyond its initial size: the bound is on live slots.
    CHECK(pool.grow(5) == 1);
    CHECK(Tracked::alive() == 3);
    st = pool.stats();
    CHECK(st.size == 3);
    CHECK(st.retired == 0);
    CHECK(st.available == 3);
    CHECK(st.grows == 1);
    CHECK(st.reset_failures == 1);  // history is kept
    std::set<std::size_t> slots;
    std::vector<Loaned<Tracked>> all;
    for (int i = 0; i < 3; ++i) {
      all.push_back(pool.acquire());
      slots.insert(all.back().slot_index());
    }
    CHECK(slots.count(retired_slot) == 1);
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("acquire_or_grow revives a retired slot for its caller") {
  Tracked::reset_counters();
  {
    bool fail = false;
    Pool<Tracked> pool(
        1,
        [&fail] {
          if (fail) throw std::runtime_error("factory failed");
          return Tracked(1);
        },
        [&fail](Tracked&) {
          if (fail) throw std::runtime_error("reset failed");
        });
    fail = true;
    pool.acquire().reset();
    CHECK(pool.size() == 0);
    CHECK(pool.available() == 0);
    CHECK_FALSE(pool.try_acquire());
    fail = false;
    auto revived = pool.acquire_or_grow();
    REQUIRE(revived);
    CHECK(revived->slot_index() == 0);
    CHECK(pool.size() == 1);
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("a blocked acquirer is not stranded when every slot is retired, and is woken by grow()") {
  test_support::Watchdog dog("acquirer woken by grow after retire", std::chrono::seconds(60));
  std::atomic<bool> fail{false};
  Pool<int> pool(
      1,
      [&fail] {
        if (fail.load()) throw std::runtime_error("factory failed");
        return 1;
      },
      [&fail](int&) {
        if (fail.load()) throw std::runtime_error("reset failed");
      });
  auto held = pool.acquire();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto l = pool.acquire();
    got = true;
  });
  while (pool.stats().waits == 0) std::this_thread::yield();
  fail = true;
  held.reset();  // retired: the waiter must keep waiting, not get a dead slot
  CHECK(pool.size() == 0);
  fail = false;
  CHECK(pool.grow(1) == 1);  // revives it and wakes the waiter
  waiter.join();
  CHECK(got.load());
}

TEST_CASE("threads returning loans while reset throws every Nth time lose no slot") {
  test_support::Watchdog dog("concurrent throwing resets", std::chrono::seconds(120));
  Tracked::reset_counters();
  {
    constexpr std::size_t slots = 4;
    constexpr std::size_t threads = 4;
    const std::size_t per_thread = test_support::scaled(20000);
    std::atomic<std::uint64_t> resets{0};
    std::atomic<std::uint64_t> factory_calls{0};
    std::atomic<std::uint64_t> expected_failures{0};
    std::atomic<std::uint64_t> factory_failures{0};
    std::atomic<bool> armed{false};  // construction must succeed
    // Reset throws every 7th call; the rebuild after it throws every 3rd
    // time (so about 1 in 21 returns retires a slot).
    Pool<Tracked> pool(
        slots,
        [&] {
          if (armed.load() && factory_calls.fetch_add(1) % 3 == 2) {
            factory_failures.fetch_add(1);
            throw std::runtime_error("factory failed");
          }
          return Tracked(0);
        },
        [&](Tracked& t) {
          if (resets.fetch_add(1) % 7 == 6) {
            expected_failures.fetch_add(1);
            throw std::runtime_error("reset failed");
          }
          t.value = 0;
        },
        PoolOptions{slots});
    armed = true;
    std::atomic<std::uint64_t> acquired{0};
    std::atomic<int> dirty{0};
    test_support::StartGate gate(threads);
    test_support::run_threads(threads, [&](std::size_t id) {
      gate.arrive_and_wait();
      for (std::size_t i = 0; i < per_thread; ++i) {
        std::optional<Loaned<Tracked>> l = pool.try_acquire_for(std::chrono::milliseconds(1));
        if (!l) {
          // Every slot may be retired (or held): bring one back. grow()
          // itself may throw when the factory does; that's fine here.
          try {
            pool.grow(1);
          } catch (const std::runtime_error&) {
          }
          continue;
        }
        ++acquired;
        if ((*l)->value != 0) ++dirty;  // reset or rebuild must have cleaned it
        (*l)->value = static_cast<int>(id) + 1;
      }
    });
    const auto st = pool.stats();
    INFO("acquired " << acquired.load() << ", factory failures " << factory_failures.load());
    CHECK(dirty.load() == 0);
    CHECK(st.acquires == acquired.load());
    CHECK(st.acquires == st.releases);
    CHECK(st.reset_failures == expected_failures.load());
    CHECK(st.in_use == 0);
    // Conservation: every slot is free, retired, or (counted) revived; none
    // vanished. Retirements came from releases plus grow()'s own failures,
    // which put the slot straight back on the retired list.
    CHECK(st.size + st.retired == slots);
    CHECK(st.available == st.size);
    CHECK(pool.available() == pool.size());
    CHECK(Tracked::alive() == static_cast<long>(st.size));
    // Bring every retired slot back: all of them are reachable.
    while (pool.size() < slots) {
      try {
        pool.grow(slots);
      } catch (const std::runtime_error&) {
      }
    }
    CHECK(pool.stats().retired == 0);
    std::set<std::size_t> seen;
    std::vector<Loaned<Tracked>> all;
    for (std::size_t i = 0; i < slots; ++i) {
      auto l = pool.try_acquire();
      REQUIRE(l);
      seen.insert(l->slot_index());
      all.push_back(std::move(*l));
    }
    CHECK(seen.size() == slots);
    CHECK_FALSE(pool.try_acquire());
  }
  CHECK(Tracked::alive() == 0);
}
