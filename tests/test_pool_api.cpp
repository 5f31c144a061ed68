// Every call of Pool<T> and Loaned<T>, single-threaded where possible so that
// the statistics can be checked exactly.
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "watchdog.hpp"

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::PoolOptions;
using daq_pool::PoolStats;
using namespace std::chrono_literals;

static_assert(!std::is_copy_constructible_v<Loaned<int>>, "a loan is move-only");
static_assert(!std::is_copy_assignable_v<Loaned<int>>, "a loan is move-only");
static_assert(std::is_nothrow_move_constructible_v<Loaned<int>>);
static_assert(std::is_nothrow_move_assignable_v<Loaned<int>>);
static_assert(std::is_copy_constructible_v<Pool<int>>, "a pool is a copyable handle");
static_assert(noexcept(std::declval<Pool<int>&>().try_acquire()));
static_assert(noexcept(std::declval<Pool<int>&>().try_acquire_for(std::declval<std::chrono::milliseconds>())));
static_assert(noexcept(std::declval<Loaned<int>&>().reset()));

namespace {

// The counters that must hold for any quiet pool.
void check_quiet(const PoolStats& st) {
  CHECK(st.available + st.in_use == st.size);
  CHECK(st.acquires - st.releases == st.in_use);
  CHECK(st.high_water <= st.size);
}

}  // namespace

TEST_CASE("a new pool holds size items built by the factory, handed out from slot 0") {
  int built = 0;
  Pool<int> pool(3, [&built] { return 100 + built++; });
  CHECK(built == 3);
  CHECK(pool.size() == 3);
  CHECK(pool.max_size() == 3);
  CHECK(pool.available() == 3);
  CHECK_FALSE(pool.is_closed());

  auto a = pool.acquire();
  auto b = pool.acquire();
  auto c = pool.acquire();
  CHECK(a.slot_index() == 0);
  CHECK(b.slot_index() == 1);
  CHECK(c.slot_index() == 2);
  // Each slot holds the item the factory built for it.
  CHECK(*a == 100);
  CHECK(*b == 101);
  CHECK(*c == 102);
  CHECK(pool.available() == 0);
  CHECK(built == 3);  // acquiring never builds
}

TEST_CASE("acquire, get, operator*, operator-> reach the same item") {
  Pool<std::string> pool(1, [] { return std::string("abc"); });
  auto loan = pool.acquire();
  REQUIRE(loan);
  CHECK(&loan.get() == &*loan);
  CHECK(loan.operator->() == &loan.get());
  CHECK(loan->size() == 3);
  loan.get() += "d";
  CHECK(*loan == "abcd");
  const auto& cref = loan;
  CHECK(&cref.get() == &loan.get());
  CHECK(&*cref == &loan.get());
  CHECK(cref->size() == 4);
}

TEST_CASE("without a reset function, a returned item keeps its state") {
  Pool<int> pool(1, [] { return 0; });
  {
    auto loan = pool.acquire();
    *loan = 41;
  }
  auto again = pool.acquire();
  CHECK(*again == 41);
}

TEST_CASE("the most recently returned slot is lent next (LIFO: warm in cache)") {
  Pool<int> pool(4, [] { return 0; });
  auto a = pool.acquire();
  auto b = pool.acquire();
  const auto ia = a.slot_index();
  a.reset();
  CHECK(pool.acquire().slot_index() == ia);
  (void)b;
}

TEST_CASE("try_acquire takes a free item or returns nothing") {
  Pool<int> pool(2, [] { return 5; });
  auto a = pool.try_acquire();
  auto b = pool.try_acquire();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->slot_index() != b->slot_index());
  CHECK(**a == 5);
  CHECK_FALSE(pool.try_acquire());
  a.reset();  // the optional's reset destroys the loan
  CHECK(pool.available() == 1);
  auto c = pool.try_acquire();
  REQUIRE(c);
}

TEST_CASE("try_acquire_for and try_acquire_until: free slot, timeouts, past deadlines") {
  Pool<int> pool(1, [] { return 1; });

  SECTION("a free slot is taken at once, whatever the timeout") {
    CHECK(pool.try_acquire_for(0ms));
    CHECK(pool.try_acquire_for(-5s));
    CHECK(pool.try_acquire_for(std::chrono::nanoseconds::min()));
    CHECK(pool.try_acquire_for(1h));
    CHECK(pool.try_acquire_for(std::chrono::duration<double>(0.001)));
    CHECK(pool.try_acquire_until(std::chrono::steady_clock::now() - 1h));
    CHECK(pool.try_acquire_until(std::chrono::steady_clock::time_point::min()));
    CHECK(pool.try_acquire_until(std::chrono::system_clock::now() + 1s));
    CHECK(pool.try_acquire_for(std::chrono::hours::max()));
    CHECK(pool.try_acquire_until(std::chrono::steady_clock::time_point::max()));
    CHECK(pool.stats().misses == 0);
    CHECK(pool.stats().acquires == 10);
  }

  SECTION("an exhausted pool times out: zero, negative, past, short") {
    auto held = pool.acquire();
    CHECK_FALSE(pool.try_acquire_for(0ms));
    CHECK_FALSE(pool.try_acquire_for(-1s));
    CHECK_FALSE(pool.try_acquire_for(std::chrono::nanoseconds::min()));
    CHECK_FALSE(pool.try_acquire_for(std::chrono::duration<double>(-1.5)));
    CHECK_FALSE(pool.try_acquire_for(std::chrono::microseconds(1)));
    CHECK_FALSE(pool.try_acquire_for(2ms));
    CHECK_FALSE(pool.try_acquire_until(std::chrono::steady_clock::now()));
    CHECK_FALSE(pool.try_acquire_until(std::chrono::steady_clock::now() - 1h));
    CHECK_FALSE(pool.try_acquire_until(std::chrono::steady_clock::time_point::min()));
    CHECK_FALSE(pool.try_acquire_until(std::chrono::system_clock::time_point::min()));
    CHECK_FALSE(pool.try_acquire_until(std::chrono::system_clock::now() + 2ms));
    // A deadline on a clock with a coarse duration type.
    CHECK_FALSE(pool.try_acquire_until(
        std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()) - 1s));
    const auto st = pool.stats();
    CHECK(st.misses == 12);  // each timed-out call missed once
    CHECK(st.acquires == 1);
    CHECK(pool.available() == 0);
  }
}

TEST_CASE("try_acquire_for wakes when a slot is returned from another thread") {
  test_support::Watchdog dog("try_acquire_for wakes on release", std::chrono::seconds(60));
  Pool<int> pool(1, [] { return 1; });
  auto held = pool.acquire();
  std::atomic<bool> waiting{false};
  std::thread releaser([&] {
    while (!waiting.load()) std::this_thread::yield();
    std::this_thread::sleep_for(5ms);  // likely (not necessarily) asleep by now
    held.reset();
  });
  waiting = true;
  // Effectively unbounded: only the release can end this wait.
  auto got = pool.try_acquire_for(std::chrono::hours(24 * 365));
  releaser.join();
  REQUIRE(got);
  CHECK(got->slot_index() == 0);
}

TEST_CASE("unbounded waits (duration::max, time_point::max) don't overflow and end on close()") {
  test_support::Watchdog dog("unbounded waits end on close", std::chrono::seconds(60));
  Pool<int> pool(1, [] { return 1; });
  auto held = pool.acquire();
  std::atomic<int> started{0};

  std::optional<Loaned<int>> r1, r2, r3, r4, r5;
  bool threw = false;
  std::vector<std::thread> waiters;
  waiters.emplace_back([&] {
    ++started;
    r1 = pool.try_acquire_for(std::chrono::nanoseconds::max());
  });
  waiters.emplace_back([&] {
    ++started;
    r2 = pool.try_acquire_for(std::chrono::hours::max());
  });
  waiters.emplace_back([&] {
    ++started;
    r3 = pool.try_acquire_until(std::chrono::steady_clock::time_point::max());
  });
  waiters.emplace_back([&] {
    ++started;
    r4 = pool.try_acquire_until(std::chrono::system_clock::time_point::max());
  });
  waiters.emplace_back([&] {
    ++started;
    r5 = pool.try_acquire_for(std::chrono::duration<double>(std::numeric_limits<double>::infinity()));
  });
  waiters.emplace_back([&] {
    ++started;
    try {
      (void)pool.acquire();
    } catch (const daq_pool::pool_closed&) {
      threw = true;
    }
  });
  while (started.load() < 6) std::this_thread::yield();
  std::this_thread::sleep_for(20ms);  // let them reach their sleep (not required for correctness)
  // None of them may have returned: an overflowed deadline would be in the past.
  pool.close();
  for (auto& t : waiters) t.join();
  CHECK_FALSE(r1);
  CHECK_FALSE(r2);
  CHECK_FALSE(r3);
  CHECK_FALSE(r4);
  CHECK_FALSE(r5);
  CHECK(threw);
  // The loan made before close() is still valid and goes back normally.
  CHECK(*held == 1);
  held.reset();
  CHECK(pool.available() == 1);
}

TEST_CASE("an unbounded timed wait is not cut short by an overflowed deadline") {
  // If duration::max() overflowed into the past the call would return nothing
  // at once; here the slot comes back only after the waiter started, so it
  // must get it.
  test_support::Watchdog dog("unbounded timed wait gets the slot", std::chrono::seconds(60));
  Pool<int> pool(1, [] { return 1; });
  for (int round = 0; round < 4; ++round) {
    auto held = pool.acquire();
    std::atomic<bool> started{false};
    std::optional<Loaned<int>> got;
    std::thread waiter([&] {
      started = true;
      switch (round) {
        case 0:
          got = pool.try_acquire_for(std::chrono::nanoseconds::max());
          break;
        case 1:
          got = pool.try_acquire_for(std::chrono::seconds::max());
          break;
        case 2:
          got = pool.try_acquire_until(std::chrono::steady_clock::time_point::max());
          break;
        default:
          got = pool.try_acquire_until(std::chrono::system_clock::time_point::max());
          break;
      }
    });
    while (!started.load()) std::this_thread::yield();
    std::this_thread::sleep_for(10ms);
    held.reset();
    waiter.join();
    INFO("round " << round);
    REQUIRE(got);
  }
}

TEST_CASE("close(): acquire throws pool_closed, try_* return nothing, loans out stay valid") {
  Pool<int> pool(
      2, [] { return 9; }, {}, PoolOptions{4});
  auto out = pool.acquire();
  pool.close();
  CHECK(pool.is_closed());
  REQUIRE_THROWS_AS(pool.acquire(), daq_pool::pool_closed);
  REQUIRE_THROWS_WITH(pool.acquire(), "daq_pool: the pool is closed");
  CHECK_FALSE(pool.try_acquire());
  CHECK_FALSE(pool.try_acquire_for(0ms));
  CHECK_FALSE(pool.try_acquire_for(1h));  // closed: returns at once
  CHECK_FALSE(pool.try_acquire_until(std::chrono::steady_clock::time_point::max()));
  CHECK_FALSE(pool.acquire_or_grow());
  CHECK(pool.grow(1) == 0);
  CHECK_FALSE(out.try_clone());
  pool.close();  // idempotent
  CHECK(pool.is_closed());
  CHECK(*out == 9);
  *out = 10;
  out.reset();
  CHECK(pool.available() == 2);
  CHECK(pool.size() == 2);
  const auto st = pool.stats();
  CHECK(st.acquires == 1);
  CHECK(st.releases == 1);
  check_quiet(st);
}

TEST_CASE("Loaned: move construction, move assignment, operator bool, reset") {
  Pool<int> pool(3, [] { return 0; });
  Loaned<int> empty;
  CHECK_FALSE(empty);
  empty.reset();  // no-op on an empty loan
  CHECK_FALSE(empty);

  auto a = pool.acquire();
  CHECK(a);
  const auto slot_a = a.slot_index();
  *a = 1;
  Loaned<int> b(std::move(a));
  CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  CHECK(b);
  CHECK(b.slot_index() == slot_a);
  CHECK(*b == 1);
  CHECK(pool.available() == 2);  // a move doesn't return anything

  auto c = pool.acquire();
  *c = 2;
  CHECK(pool.available() == 1);
  b = std::move(c);  // b's old item goes back, b takes c's
  CHECK_FALSE(c);    // NOLINT(bugprone-use-after-move)
  CHECK(*b == 2);
  CHECK(pool.available() == 2);

  auto& self = b;
  b = std::move(self);  // self-move keeps the loan
  CHECK(b);
  CHECK(pool.available() == 2);

  b = Loaned<int>();  // assigning an empty loan returns the item
  CHECK_FALSE(b);
  CHECK(pool.available() == 3);

  auto d = pool.acquire();
  d.reset();
  CHECK_FALSE(d);
  CHECK(pool.available() == 3);
  d.reset();  // twice: still a no-op
  CHECK(pool.available() == 3);
  const auto st = pool.stats();
  CHECK(st.acquires == 3);
  CHECK(st.releases == 3);
}

TEST_CASE("clone_item copies the item out and returns the slot at once") {
  Pool<std::vector<int>> pool(1, [] { return std::vector<int>{1, 2, 3}; });
  auto loan = pool.acquire();
  loan->push_back(4);
  CHECK(pool.available() == 0);
  std::vector<int> copy = std::move(loan).clone_item();
  CHECK(copy == std::vector<int>{1, 2, 3, 4});
  CHECK_FALSE(loan);  // NOLINT(bugprone-use-after-move)
  CHECK(pool.available() == 1);
  // The pooled item itself is untouched by the copy.
  CHECK(*pool.acquire() == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("try_clone lends a second slot holding a copy, or nothing when none is free") {
  Pool<std::string> pool(2, [] { return std::string(); });
  auto a = pool.acquire();
  *a = "payload";
  auto b = a.try_clone();
  REQUIRE(b);
  CHECK(b->slot_index() != a.slot_index());
  CHECK(**b == "payload");
  CHECK(&**b != &*a);
  **b += "!";
  CHECK(*a == "payload");  // independent copies
  CHECK(pool.available() == 0);
  CHECK_FALSE(a.try_clone());  // pool exhausted: nothing, and a is untouched
  CHECK(*a == "payload");
  const auto st = pool.stats();
  CHECK(st.acquires == 2);
  CHECK(st.misses == 1);
}

TEST_CASE("try_clone returns the new slot if the copy assignment throws") {
  struct Fussy {
    bool refuse_copy = false;
    Fussy() = default;
    Fussy(const Fussy&) = default;
    Fussy& operator=(const Fussy& o) {
      if (o.refuse_copy) throw std::runtime_error("no copies");
      refuse_copy = o.refuse_copy;
      return *this;
    }
  };
  Pool<Fussy> pool(2, [] { return Fussy(); });
  auto a = pool.acquire();
  a->refuse_copy = true;
  REQUIRE_THROWS_AS(a.try_clone(), std::runtime_error);
  CHECK(pool.available() == 1);
  CHECK(a);
  const auto st = pool.stats();
  CHECK(st.acquires == 2);
  CHECK(st.releases == 1);
}

TEST_CASE("slot_index is stable for the pool's life and covers 0..size-1") {
  Pool<int> pool(5, [] { return 0; });
  std::set<std::size_t> seen;
  std::vector<Loaned<int>> loans;
  for (int i = 0; i < 5; ++i) {
    loans.push_back(pool.acquire());
    *loans.back() = static_cast<int>(loans.back().slot_index());
    seen.insert(loans.back().slot_index());
  }
  CHECK(seen == std::set<std::size_t>{0, 1, 2, 3, 4});
  loans.clear();
  for (int i = 0; i < 5; ++i) {
    auto l = pool.acquire();
    // Same slot, same item: the value written for this index is still there.
    CHECK(*l == static_cast<int>(l.slot_index()));
    loans.push_back(std::move(l));
  }
}

TEST_CASE("copies of a Pool share one pool") {
  Pool<int> a(2, [] { return 3; });
  Pool<int> b = a;
  Pool<int> c(1, [] { return 4; });
  c = b;  // copy assignment: c drops its own pool, joins a's
  CHECK(c.size() == 2);
  auto l1 = b.acquire();
  CHECK(a.available() == 1);
  CHECK(c.available() == 1);
  auto l2 = c.acquire();
  CHECK(a.available() == 0);
  CHECK_FALSE(a.try_acquire());
  CHECK(a.stats().acquires == 2);
  a.close();
  CHECK(b.is_closed());
  CHECK(c.is_closed());
  const Pool<int>& same = c;
  c = same;  // self-assignment is harmless
  CHECK(c.size() == 2);
}

TEST_CASE("copy-assigning over the last handle of another pool closes and frees it") {
  Pool<int> a(1, [] { return 1; });
  Pool<int> b(1, [] { return 2; });
  Pool<int> b_view = b;
  auto loan_b = b.acquire();
  b = a;  // b_view still holds the old pool open
  CHECK_FALSE(b_view.is_closed());
  b_view = a;  // last handle of the old pool: closed; its loan keeps it alive
  CHECK(*loan_b == 2);
  loan_b.reset();  // ASan: the old pool is freed here, exactly once
  CHECK(*b.acquire() == 1);
}

TEST_CASE("stats: exact counters in a single-threaded sequence") {
  Pool<int> pool(
      3, [] { return 0; }, [](int& v) { v = 0; }, PoolOptions{5});
  PoolStats st = pool.stats();
  CHECK(st.size == 3);
  CHECK(st.available == 3);
  CHECK(st.in_use == 0);
  CHECK(st.high_water == 0);
  CHECK(st.acquires == 0);
  CHECK(st.releases == 0);
  CHECK(st.misses == 0);
  CHECK(st.waits == 0);
  CHECK(st.grows == 0);
  CHECK(st.reset_failures == 0);
  CHECK(st.retired == 0);

  {
    auto a = pool.acquire();
    auto b = pool.try_acquire();
    st = pool.stats();
    CHECK(st.in_use == 2);
    CHECK(st.available == 1);
    CHECK(st.high_water == 2);
    CHECK(st.acquires == 2);
    CHECK(st.releases == 0);
  }
  st = pool.stats();
  CHECK(st.in_use == 0);
  CHECK(st.high_water == 2);  // a high-water mark stays
  CHECK(st.releases == 2);

  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    auto c = pool.try_acquire_for(1ms);
    REQUIRE(c);
    CHECK_FALSE(pool.try_acquire());         // miss 1
    CHECK_FALSE(pool.try_acquire_for(0ms));  // miss 2
    CHECK_FALSE(pool.try_acquire_for(1ms));  // miss 3 (may sleep: waits <= 1)
    auto d = pool.acquire_or_grow();         // grows to 4
    REQUIRE(d);
    CHECK(d->slot_index() == 3);
    CHECK(pool.grow(10) == 1);  // only one more fits
    CHECK(pool.grow(1) == 0);
    auto e = pool.acquire_or_grow();  // the grown, free slot
    REQUIRE(e);
    CHECK_FALSE(pool.acquire_or_grow());  // miss 4: at the bound
    st = pool.stats();
    CHECK(st.size == 5);
    CHECK(st.in_use == 5);
    CHECK(st.available == 0);
    CHECK(st.high_water == 5);
    CHECK(st.acquires == 2 + 5);
    CHECK(st.releases == 2);
    CHECK(st.misses == 4);
    CHECK(st.waits <= 1);
    CHECK(st.grows == 2);
  }
  st = pool.stats();
  CHECK(st.size == 5);
  CHECK(st.available == 5);
  CHECK(st.in_use == 0);
  CHECK(st.acquires == 7);
  CHECK(st.releases == 7);
  CHECK(st.reset_failures == 0);
  CHECK(st.retired == 0);
  check_quiet(st);
  CHECK(st.available == pool.available());
  CHECK(st.size == pool.size());
}

TEST_CASE("stats: a blocking acquire that sleeps counts one miss and one wait") {
  test_support::Watchdog dog("stats waits", std::chrono::seconds(60));
  Pool<int> pool(1, [] { return 0; });
  auto held = pool.acquire();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto l = pool.acquire();
    got = true;
  });
  // Wait (without a time bound) until the waiter is really asleep: the stat
  // is bumped just before it parks.
  while (pool.stats().waits == 0) std::this_thread::yield();
  CHECK_FALSE(got.load());
  held.reset();
  waiter.join();
  CHECK(got.load());
  const auto st = pool.stats();
  CHECK(st.waits == 1);
  CHECK(st.misses == 1);
  CHECK(st.acquires == 2);
  CHECK(st.releases == 2);
  CHECK(st.high_water == 1);
}

TEST_CASE("max_size: initial size without growth, the bound with it") {
  CHECK(Pool<int>(4, [] { return 0; }).max_size() == 4);
  CHECK(Pool<int>(
            4, [] { return 0; }, {}, PoolOptions{0})
            .max_size() == 4);
  CHECK(Pool<int>(
            4, [] { return 0; }, {}, PoolOptions{4})
            .max_size() == 4);
  CHECK(Pool<int>(
            4, [] { return 0; }, {}, PoolOptions{100})
            .max_size() == 100);
  Pool<int> fixed(2, [] { return 0; });
  CHECK(fixed.grow(3) == 0);
  CHECK(fixed.size() == 2);
}

TEST_CASE("the pool works with move-only and over-aligned item types") {
  struct alignas(128) Wide {
    unsigned char bytes[128];
  };
  Pool<Wide> wide(3, [] { return Wide{}; });
  auto w1 = wide.acquire();
  auto w2 = wide.acquire();
  CHECK(reinterpret_cast<std::uintptr_t>(&*w1) % 128 == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(&*w2) % 128 == 0);

  Pool<std::unique_ptr<int>> owning(2, [] { return std::make_unique<int>(7); });
  auto p = owning.acquire();
  CHECK(**p == 7);
}

namespace {
// A clock that advances 10 us every time it is read: a deadline on it is
// reached after a known number of reads, whatever the real time. If a wait
// recomputed its deadline on each retry (now + remaining), it would never
// reach it.
struct TickingClock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<TickingClock>;
  [[maybe_unused]] static constexpr bool is_steady = true;
  static inline std::atomic<std::int64_t> reads{0};
  static time_point now() noexcept { return time_point(std::chrono::microseconds(10) * (1 + reads++)); }
};
}  // namespace

TEST_CASE("a deadline is absolute: reached after the clock passes it, never extended by retries") {
  test_support::Watchdog dog("absolute deadline on a user clock", std::chrono::seconds(60));
  Pool<int> pool(1, [] { return 0; });
  auto held = pool.acquire();
  TickingClock::reads = 0;
  const auto deadline = TickingClock::now() + std::chrono::microseconds(200);  // 20 reads away
  CHECK_FALSE(pool.try_acquire_until(deadline));
  // Each retry reads the clock once: about 20 reads, never unbounded.
  INFO("clock reads " << TickingClock::reads.load());
  CHECK(TickingClock::reads.load() >= 20);
  CHECK(TickingClock::reads.load() <= 40);
  // A deadline already passed on this clock: one try, one read at most.
  held.reset();
  CHECK(pool.try_acquire_until(TickingClock::time_point(std::chrono::nanoseconds(0))));
}
