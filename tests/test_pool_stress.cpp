// Concurrency stress for Pool<T>: exclusive ownership of every slot under a
// mix of blocking, non-blocking and timed acquisitions, more waiters than
// slots (never hangs: a watchdog aborts with a message), and close() while
// threads are blocked. Built twice: with the Linux futex parking and with
// the portable (moodycamel semaphore) parking (-DDAQ_POOL_PORTABLE_PARKING).
// Work is bounded for 2 cores and scaled down under sanitizers.
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::PoolOptions;
using test_support::StartGate;
using test_support::Watchdog;
using namespace std::chrono_literals;

namespace {

#if defined(DAQ_POOL_PORTABLE_PARKING)
constexpr const char* backend = " [portable parking]";
#else
constexpr const char* backend = " [futex parking]";
#endif

std::string named(const char* what) { return std::string(what) + backend; }

// What a holder writes into the item: its thread number and a sequence
// number, in plain (non-atomic) fields so that TSan reports any overlap of
// two holders and the re-read detects it in a plain build.
struct Item {
  std::uint64_t owner = 0;
  std::uint64_t sequence = 0;
  std::uint64_t uses = 0;
};

// Per-slot bookkeeping kept outside the pool: a busy flag that each holder
// sets with exchange and must find clear, and whether the slot was ever seen.
struct Ledger {
  explicit Ledger(std::size_t slots) : busy(slots), seen(slots) {}
  std::vector<std::atomic<bool>> busy;
  std::vector<std::atomic<bool>> seen;
  std::atomic<std::uint64_t> violations{0};
  std::atomic<std::uint64_t> successes{0};

  // Called right after a successful acquisition; false means two holders.
  void enter(Loaned<Item>& l, std::uint64_t me, std::uint64_t seq) {
    const std::size_t i = l.slot_index();
    if (i >= busy.size() || busy[i].exchange(true, std::memory_order_acq_rel)) ++violations;
    if (i < seen.size()) seen[i].store(true, std::memory_order_relaxed);
    l->owner = me;
    l->sequence = seq;
    ++l->uses;
    ++successes;
  }
  // Called right before the release.
  void leave(Loaned<Item>& l, std::uint64_t me, std::uint64_t seq) {
    if (l->owner != me || l->sequence != seq) ++violations;
    const std::size_t i = l.slot_index();
    if (i >= busy.size() || !busy[i].exchange(false, std::memory_order_acq_rel)) ++violations;
  }
  std::size_t seen_count() const {
    std::size_t n = 0;
    for (const auto& s : seen) n += s.load() ? 1 : 0;
    return n;
  }
};

// The end-of-run conservation checks shared by every stress test.
// `all_seen`: every slot must have been lent at least once during the run.
void check_conservation(const Pool<Item>& pool, const Ledger& ledger, std::size_t expected_slots,
                        bool all_seen = true) {
  const auto st = pool.stats();
  CHECK(ledger.violations.load() == 0);
  CHECK(pool.size() == expected_slots);
  CHECK(pool.available() == pool.size());
  CHECK(st.in_use == 0);
  CHECK(st.acquires == st.releases);
  CHECK(st.acquires == ledger.successes.load());
  CHECK(st.high_water <= expected_slots);
  if (all_seen) CHECK(ledger.seen_count() == expected_slots);
  std::uint64_t uses = 0;
  std::vector<Loaned<Item>> all;
  for (std::size_t i = 0; i < expected_slots; ++i) {
    auto l = const_cast<Pool<Item>&>(pool).try_acquire();
    REQUIRE(l);
    uses += (*l)->uses;
    all.push_back(std::move(*l));
  }
  CHECK(uses == ledger.successes.load());  // every use left its mark in an item
}

}  // namespace

TEST_CASE("stress: exclusive ownership under mixed acquire kinds") {
  Watchdog dog(named("stress: exclusive ownership"), std::chrono::seconds(120));
  constexpr std::size_t slots = 3;
  constexpr std::size_t threads = 5;
  const std::size_t per_thread = test_support::scaled(20000);
  Pool<Item> pool(slots, [] { return Item{}; });
  Ledger ledger(slots);
  StartGate gate(threads);
  test_support::run_threads(threads, [&](std::size_t id) {
    const std::uint64_t me = id + 1;
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      std::optional<Loaned<Item>> l;
      switch ((i + id) % 5) {
        case 0:
          l = pool.acquire();
          break;
        case 1:
          l = pool.try_acquire();
          break;
        case 2:
          l = pool.try_acquire_for(std::chrono::microseconds(i % 50));
          break;
        case 3:
          l = pool.try_acquire_until(std::chrono::steady_clock::now() + std::chrono::microseconds(20));
          break;
        default:
          l = pool.try_acquire_for(0ns);
          break;
      }
      if (!l) continue;
      ledger.enter(*l, me, i);
      if (i % 16 == 0) std::this_thread::yield();  // hold it a little, sometimes
      ledger.leave(*l, me, i);
      if (i % 3 == 0) {
        l->reset();
      } else {
        Loaned<Item> moved = std::move(*l);  // returned through a moved-to loan
      }
    }
  });
  check_conservation(pool, ledger, slots);
}

TEST_CASE("stress: more blocked waiters than slots never hang") {
  Watchdog dog(named("stress: more waiters than slots"), std::chrono::seconds(120));
  constexpr std::size_t slots = 2;
  constexpr std::size_t threads = 6;
  const std::size_t per_thread = test_support::scaled(4000);
  Pool<Item> pool(slots, [] { return Item{}; });
  Ledger ledger(slots);
  StartGate gate(threads);
  test_support::run_threads(threads, [&](std::size_t id) {
    const std::uint64_t me = id + 1;
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      Loaned<Item> l = pool.acquire();
      ledger.enter(l, me, i);
      // Hold it across a yield: the others find the pool empty and park.
      if (i % 2 == 0) std::this_thread::yield();
      ledger.leave(l, me, i);
    }
  });
  check_conservation(pool, ledger, slots);
  const auto st = pool.stats();
  INFO("waits " << st.waits << ", misses " << st.misses);
  CHECK(st.waits <= st.misses);
  CHECK(st.high_water == slots);
  if (st.waits == 0) WARN("no acquirer had to sleep this run: the parking path went unexercised");
}

TEST_CASE("stress: a single slot handed between many timed and blocking waiters") {
  Watchdog dog(named("stress: single slot"), std::chrono::seconds(120));
  constexpr std::size_t threads = 4;
  const std::size_t per_thread = test_support::scaled(10000);
  Pool<Item> pool(1, [] { return Item{}; });
  Ledger ledger(1);
  std::atomic<std::uint64_t> timeouts{0};
  StartGate gate(threads);
  test_support::run_threads(threads, [&](std::size_t id) {
    const std::uint64_t me = id + 1;
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      // Half the threads wait with tiny timeouts that often expire just as
      // the slot is handed over: a wake-up meant for a timed-out waiter must
      // not leave the blocking ones asleep.
      std::optional<Loaned<Item>> l;
      if (id % 2 == 0) {
        l = pool.acquire();
      } else {
        l = pool.try_acquire_for(std::chrono::microseconds(1 + i % 100));
        if (!l) {
          ++timeouts;
          continue;
        }
      }
      ledger.enter(*l, me, i);
      ledger.leave(*l, me, i);
    }
  });
  check_conservation(pool, ledger, 1);
  INFO("timeouts " << timeouts.load());
  SUCCEED();
}

TEST_CASE("stress: growth while others acquire and release") {
  Watchdog dog(named("stress: growth under load"), std::chrono::seconds(120));
  constexpr std::size_t max = 40;
  constexpr std::size_t threads = 4;
  const std::size_t per_thread = test_support::scaled(20000);
  Pool<Item> pool(
      2, [] { return Item{}; }, {}, PoolOptions{max});
  Ledger ledger(max);
  StartGate gate(threads);
  test_support::run_threads(threads, [&](std::size_t id) {
    const std::uint64_t me = id + 1;
    gate.arrive_and_wait();
    for (std::uint64_t i = 0; i < per_thread; ++i) {
      std::optional<Loaned<Item>> l;
      if (id == 0 && i % 500 == 0) pool.grow(1);
      if (id == 1) {
        l = pool.acquire_or_grow();
      } else {
        l = pool.try_acquire_for(std::chrono::microseconds(10));
      }
      if (!l) continue;
      ledger.enter(*l, me, i);
      ledger.leave(*l, me, i);
    }
  });
  const std::size_t size = pool.size();
  CHECK(size <= max);
  CHECK(size >= 2);
  // A slot grown near the end may not have been lent yet: not required.
  check_conservation(pool, ledger, size, false);
}

TEST_CASE("stress: close() wakes every blocked acquirer at once") {
  Watchdog dog(named("stress: close while waiting"), std::chrono::seconds(120));
  const std::size_t rounds = test_support::scaled(100);
  constexpr std::size_t slots = 2;
  constexpr std::size_t waiters = 5;
  for (std::size_t r = 0; r < rounds; ++r) {
    INFO("round " << r);
    Pool<Item> pool(slots, [] { return Item{}; });
    std::vector<Loaned<Item>> out;
    for (std::size_t i = 0; i < slots; ++i) out.push_back(pool.acquire());
    out[0]->owner = 99;

    std::atomic<std::size_t> threw{0}, got{0}, timed_nothing{0};
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < waiters; ++i) {
      threads.emplace_back([&, i] {
        if (i % 3 == 2) {
          // A timed waiter with a deadline far away: close must end it too.
          if (pool.try_acquire_for(std::chrono::hours(1)))
            ++got;
          else
            ++timed_nothing;
          return;
        }
        try {
          auto l = pool.acquire();
          ++got;
        } catch (const daq_pool::pool_closed&) {
          ++threw;
        }
      });
    }
    // In some rounds close at once (waiters may not have slept yet), in the
    // others once every waiter has announced its sleep.
    if (r % 2 == 1) {
      while (pool.stats().waits < waiters) std::this_thread::yield();
    }
    pool.close();
    for (auto& t : threads) t.join();
    REQUIRE(got.load() == 0);
    REQUIRE(threw.load() + timed_nothing.load() == waiters);
    REQUIRE(threw.load() == waiters - waiters / 3);
    // After close: try_* return nothing at once, acquire throws.
    CHECK_FALSE(pool.try_acquire());
    CHECK_FALSE(pool.try_acquire_for(1h));
    REQUIRE_THROWS_AS(pool.acquire(), daq_pool::pool_closed);
    // Loans made before the close are valid and return normally.
    CHECK(out[0]->owner == 99);
    out.clear();
    CHECK(pool.available() == slots);
    const auto st = pool.stats();
    CHECK(st.acquires == slots);
    CHECK(st.releases == slots);
  }
}

TEST_CASE("stress: close() during heavy churn ends every thread") {
  Watchdog dog(named("stress: close during churn"), std::chrono::seconds(120));
  const std::size_t rounds = test_support::scaled(40);
  constexpr std::size_t slots = 2;
  constexpr std::size_t threads = 4;
  for (std::size_t r = 0; r < rounds; ++r) {
    INFO("round " << r);
    Pool<Item> pool(slots, [] { return Item{}; });
    Ledger ledger(slots);
    std::atomic<std::size_t> ended{0};
    StartGate gate(threads + 1);
    std::vector<std::thread> workers;
    for (std::size_t id = 0; id < threads; ++id) {
      workers.emplace_back([&, id] {
        const std::uint64_t me = id + 1;
        gate.arrive_and_wait();
        for (std::uint64_t i = 0;; ++i) {
          std::optional<Loaned<Item>> l;
          try {
            if (id % 2 == 0) {
              l = pool.acquire();
            } else {
              l = pool.try_acquire_for(std::chrono::microseconds(50));
              if (!l && pool.is_closed()) break;
              if (!l) continue;
            }
          } catch (const daq_pool::pool_closed&) {
            break;
          }
          ledger.enter(*l, me, i);
          ledger.leave(*l, me, i);
        }
        ++ended;
      });
    }
    gate.arrive_and_wait();
    // Let them churn for a while (counted in acquisitions, not time).
    const std::uint64_t target = ledger.successes.load() + 200 + r * 37;
    while (ledger.successes.load() < target) std::this_thread::yield();
    pool.close();
    for (auto& t : workers) t.join();
    REQUIRE(ended.load() == threads);
    CHECK(ledger.violations.load() == 0);
    CHECK(pool.available() == slots);
    const auto st = pool.stats();
    CHECK(st.acquires == st.releases);
    CHECK(st.acquires == ledger.successes.load());
  }
}

TEST_CASE("stress: close() ends waits made through other handles; the last loan frees the pool") {
  Watchdog dog(named("stress: close with waiters on other handles"), std::chrono::seconds(120));
  const std::size_t rounds = test_support::scaled(50);
  for (std::size_t r = 0; r < rounds; ++r) {
    auto pool = std::make_unique<Pool<Item>>(1, [] { return Item{}; });
    auto held = pool->acquire();
    std::atomic<int> threw{0};
    std::vector<std::thread> waiters;
    // Each waiter works on its own handle; main drops the others.
    for (int i = 0; i < 3; ++i) {
      waiters.emplace_back([&threw, handle = *pool]() mutable {
        try {
          (void)handle.acquire();
        } catch (const daq_pool::pool_closed&) {
          ++threw;
        }
      });
    }
    while (pool->stats().waits < 3) std::this_thread::yield();
    // Only an explicit close ends the waits: waiters hold handles, so
    // dropping ours doesn't close the pool.
    pool->close();
    pool.reset();
    for (auto& t : waiters) t.join();
    REQUIRE(threw.load() == 3);
    held.reset();  // the last reference: frees the pool (ASan-checked)
  }
}
