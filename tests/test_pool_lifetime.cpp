// Lifetime: items are built once and destroyed exactly once, and the pool's
// storage outlives every handle for as long as a loan is out (ASan checks
// that nothing is touched after it is freed).
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <optional>
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

namespace {
auto make_tracked() {
  return [n = 0]() mutable { return Tracked(n++); };
}
}  // namespace

TEST_CASE("items are built at construction and destroyed with the pool, once each") {
  Tracked::reset_counters();
  {
    Pool<Tracked> pool(5, make_tracked());
    // The factory's temporary is moved into the slot and destroyed: 5 live.
    CHECK(Tracked::alive() == 5);
    {
      auto a = pool.acquire();
      auto b = pool.acquire();
      a->value = 10;
      CHECK(Tracked::alive() == 5);  // lending never copies or builds
    }
    CHECK(Tracked::alive() == 5);  // returning never destroys
  }
  CHECK(Tracked::alive() == 0);
  CHECK(Tracked::constructions.load() == Tracked::destructions.load());
}

TEST_CASE("grown items are destroyed with the pool too") {
  Tracked::reset_counters();
  {
    Pool<Tracked> pool(2, make_tracked(), {}, PoolOptions{70});  // spans three buckets
    CHECK(pool.grow(68) == 68);
    CHECK(Tracked::alive() == 70);
    auto l = pool.acquire_or_grow();
    REQUIRE(l);
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("dropping every Pool handle while loans are out is safe") {
  Tracked::reset_counters();
  std::optional<Loaned<Tracked>> a, b;
  {
    Pool<Tracked> pool(3, make_tracked());
    Pool<Tracked> copy = pool;
    a = pool.acquire();
    b = copy.try_acquire();
    REQUIRE(b);
    (*a)->value = 1;
    (*b)->value = 2;
  }  // both handles gone: the pool is closed but its storage lives on
  CHECK(Tracked::alive() == 3);
  CHECK((*a)->value == 1);  // still readable and writable
  (*b)->value = 3;
  CHECK((*b)->value == 3);
  auto c = a->try_clone();  // the last handle closed the pool
  CHECK_FALSE(c);
  a.reset();
  CHECK(Tracked::alive() == 3);  // one loan still out: nothing destroyed
  b.reset();                     // the last loan frees everything, here
  CHECK(Tracked::alive() == 0);
  CHECK(Tracked::constructions.load() == Tracked::destructions.load());
}

TEST_CASE("a loan outliving its pool runs the reset function when it returns") {
  Tracked::reset_counters();
  int resets = 0;
  std::optional<Loaned<Tracked>> loan;
  {
    Pool<Tracked> pool(2, make_tracked(), [&resets](Tracked& t) {
      ++resets;
      t.value = -1;
    });
    loan = pool.acquire();
  }
  CHECK(resets == 0);
  loan.reset();
  CHECK(resets == 1);
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("loans moved to other threads are returned there; last one frees the pool") {
  test_support::Watchdog dog("loans moved across threads", std::chrono::seconds(60));
  Tracked::reset_counters();
  constexpr std::size_t n = 4;
  std::vector<Loaned<Tracked>> loans;
  {
    Pool<Tracked> pool(n, make_tracked());
    for (std::size_t i = 0; i < n; ++i) {
      loans.push_back(pool.acquire());
      loans.back()->value = static_cast<int>(100 + i);
    }
  }  // no handle left
  CHECK(Tracked::alive() == static_cast<long>(n));
  std::atomic<int> good{0};
  test_support::StartGate gate(n);
  // Each thread takes one loan, checks it, and drops it: the core dies on
  // whichever thread returns last.
  test_support::run_threads(n, [&](std::size_t i) {
    Loaned<Tracked> mine = std::move(loans[i]);
    gate.arrive_and_wait();
    if (mine->value == static_cast<int>(100 + i)) ++good;
    mine->value = 0;
    mine.reset();
  });
  CHECK(good.load() == static_cast<int>(n));
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("a pool handle and loans dropped concurrently on many threads") {
  test_support::Watchdog dog("concurrent teardown", std::chrono::seconds(60));
  Tracked::reset_counters();
  const std::size_t rounds = test_support::scaled(400);
  constexpr std::size_t threads = 3;
  for (std::size_t r = 0; r < rounds; ++r) {
    std::optional<Pool<Tracked>> pool(std::in_place, threads, make_tracked());
    std::vector<std::optional<Pool<Tracked>>> handles(threads, *pool);
    std::vector<Loaned<Tracked>> loans;
    for (std::size_t i = 0; i < threads; ++i) loans.push_back(pool->acquire());
    pool.reset();
    test_support::StartGate gate(threads);
    // Every thread drops one handle and one loan at the same moment: the
    // race between the last handle (close + unref) and the last loan
    // (give_back + unref) must free the core exactly once.
    test_support::run_threads(threads, [&](std::size_t i) {
      Loaned<Tracked> mine = std::move(loans[i]);
      gate.arrive_and_wait();
      if (i % 2 == 0) {
        handles[i].reset();
        mine.reset();
      } else {
        mine.reset();
        handles[i].reset();
      }
    });
    REQUIRE(Tracked::alive() == 0);
  }
}

TEST_CASE("copies of the item by try_clone and clone_item are separate objects") {
  Tracked::reset_counters();
  {
    Pool<Tracked> pool(2, make_tracked());
    auto a = pool.acquire();
    a->value = 77;
    {
      Tracked out = std::move(a).clone_item();
      CHECK(out.value == 77);
      CHECK(Tracked::alive() == 3);
    }
    CHECK(Tracked::alive() == 2);
    auto b = pool.acquire();
    auto c = b.try_clone();
    REQUIRE(c);
    CHECK((*c)->value == b->value);
    CHECK(Tracked::alive() == 2);  // copy-assigned into the existing item
  }
  CHECK(Tracked::alive() == 0);
}
