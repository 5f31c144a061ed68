// The pool's waiter list without asio (what daq_pool/asio.hpp adapts, and
// any other event loop could): asynchronous waiters are served in FIFO order
// together with blocked threads, a release hands its slot straight to the
// oldest one (a spinning try_acquire can't take it), a waiter removed by
// cancellation or deadline loses nothing, close() and the last handle
// complete every waiter, and completion callbacks run outside the lock (they
// may use the pool again).
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "tracked.hpp"
#include "watchdog.hpp"

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::detail::LoanAccess;
using daq_pool::detail::PoolAccess;
using daq_pool::detail::PoolCore;
using daq_pool::detail::WaiterNode;
using daq_pool::detail::WaitStart;
using daq_pool::detail::WaitState;
using test_support::Watchdog;
using namespace std::chrono_literals;

namespace {

/// An asynchronous waiter that records its completion (and, optionally,
/// does something with the pool from inside its callback).
struct Waiter : WaiterNode<int> {
  Waiter() noexcept : WaiterNode<int>(&Waiter::complete) {}
  static void complete(WaiterNode<int>& n) noexcept {
    auto& w = static_cast<Waiter&>(n);
    w.completions.fetch_add(1);
    w.completed_on = std::this_thread::get_id();
    if (w.then) w.then(w);
    w.done.store(true, std::memory_order_release);
  }
  /// The loan this waiter was granted (empty otherwise).
  Loaned<int> take(PoolCore<int>* core) {
    if (state != WaitState::granted || slot == nullptr) return {};
    return LoanAccess::from_raw(core, std::exchange(slot, nullptr));
  }
  std::atomic<int> completions{0};
  std::atomic<bool> done{false};
  std::thread::id completed_on;
  std::function<void(Waiter&)> then;
};

}  // namespace

TEST_CASE("waiters: a free slot is taken at once, otherwise the waiter queues") {
  Pool<int> pool(1, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  Waiter a, b;
  REQUIRE(core->start_wait(a) == WaitStart::acquired);
  CHECK(a.state == WaitState::granted);
  CHECK(a.completions == 0);  // immediate results are the caller's to deliver
  Loaned<int> la = a.take(core);
  REQUIRE(la);
  REQUIRE(core->start_wait(b) == WaitStart::queued);
  CHECK(b.state == WaitState::queued);
  CHECK(!pool.try_acquire());
  la.reset();  // served: straight to b
  CHECK(b.completions == 1);
  CHECK(b.state == WaitState::granted);
  CHECK(pool.available() == 0);
  Loaned<int> lb = b.take(core);
  CHECK(lb);
  lb.reset();
  CHECK(pool.available() == 1);
  const auto st = pool.stats();
  CHECK(st.acquires == 2);
  CHECK(st.releases == 2);
  CHECK(st.high_water == 1);
}

TEST_CASE("waiters: FIFO across asynchronous waiters and a blocked thread") {
  Watchdog dog("waiters FIFO with a thread");
  Pool<int> pool(1, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  std::optional<Loaned<int>> held(pool.acquire());
  std::vector<int> order;
  std::mutex order_mutex;
  auto record = [&](int who) {
    std::lock_guard lock(order_mutex);
    order.push_back(who);
  };
  Waiter first;
  first.then = [&](Waiter& w) {
    record(1);
    w.take(core);  // returns at once: the next waiter's turn
  };
  REQUIRE(core->start_wait(first) == WaitStart::queued);
  // A blocked thread queues second (after its spin).
  std::atomic<bool> thread_queued{false};
  std::thread blocked([&] {
    thread_queued = true;
    Loaned<int> l = pool.acquire();
    record(2);
  });
  while (pool.stats().waits == 0) std::this_thread::sleep_for(100us);
  Waiter third;
  third.then = [&](Waiter&) { record(3); };
  REQUIRE(core->start_wait(third) == WaitStart::queued);
  held.reset();
  blocked.join();
  while (!third.done.load()) std::this_thread::sleep_for(100us);
  CHECK(order == std::vector<int>{1, 2, 3});
  third.take(core).reset();
  CHECK(pool.available() == 1);
}

TEST_CASE("waiters: a spinning try_acquire can't take a slot handed to a waiter") {
  Watchdog dog("waiters no stealing");
  Pool<int> pool(1, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  for (int round = 0; round < 200; ++round) {
    std::optional<Loaned<int>> held(pool.acquire());
    Waiter w;
    REQUIRE(core->start_wait(w) == WaitStart::queued);
    std::atomic<bool> stop{false};
    std::atomic<int> stolen{0};
    std::thread thief([&] {
      while (!stop.load())
        if (auto l = pool.try_acquire()) stolen.fetch_add(1);
    });
    held.reset();
    stop = true;
    thief.join();
    CHECK(stolen == 0);
    REQUIRE(w.state == WaitState::granted);
    w.take(core).reset();
  }
}

TEST_CASE("waiters: abort by key and by node, before and after service") {
  Pool<int> pool(1, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  std::optional<Loaned<int>> held(pool.acquire());
  const int key_a = 0, key_b = 0;
  Waiter a, b, c;
  a.cancel_key = &key_a;
  b.cancel_key = &key_b;
  REQUIRE(core->start_wait(a) == WaitStart::queued);
  REQUIRE(core->start_wait(b) == WaitStart::queued);
  CHECK(core->abort_wait_by_key(&key_a, WaitState::cancelled));
  CHECK(a.state == WaitState::cancelled);
  CHECK(a.completions == 1);
  CHECK(!core->abort_wait_by_key(&key_a, WaitState::cancelled));  // gone: nothing
  held.reset();                                                   // goes to b, the cancelled a is skipped
  CHECK(b.state == WaitState::granted);
  CHECK(!core->abort_wait(b, WaitState::timed_out));  // served already
  CHECK(b.completions == 1);
  // A deadline that fires before the wait starts: the start fails.
  CHECK(!core->abort_wait(c, WaitState::timed_out));
  CHECK(core->start_wait(c) == WaitStart::aborted);
  CHECK(c.state == WaitState::timed_out);
  b.take(core).reset();
  CHECK(pool.available() == 1);
  CHECK(pool.stats().acquires == pool.stats().releases);
}

TEST_CASE("waiters: close() completes every waiter; later starts fail at once") {
  Pool<int> pool(2, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  auto a = pool.acquire();
  auto b = pool.acquire();
  std::vector<Waiter> waiters(20);
  for (auto& w : waiters) REQUIRE(core->start_wait(w) == WaitStart::queued);
  pool.close();
  for (auto& w : waiters) {
    CHECK(w.completions == 1);
    CHECK(w.state == WaitState::closed);
  }
  Waiter late;
  CHECK(core->start_wait(late) == WaitStart::closed);
  CHECK(late.state == WaitState::closed);
  a.reset();
  b.reset();
  CHECK(pool.available() == 2);
}

TEST_CASE("waiters: the last handle's destruction completes them (closed); the storage outlives the loans") {
  test_support::Tracked::reset_counters();
  std::optional<Pool<test_support::Tracked>> pool;
  pool.emplace(1, [] { return test_support::Tracked(1); });
  PoolCore<test_support::Tracked>* core = PoolAccess::core(*pool);
  std::optional<Loaned<test_support::Tracked>> held(pool->acquire());
  struct TWaiter : WaiterNode<test_support::Tracked> {
    TWaiter() noexcept : WaiterNode(&TWaiter::complete) {}
    static void complete(WaiterNode& n) noexcept { static_cast<TWaiter&>(n).completed = true; }
    bool completed = false;
  } w;
  REQUIRE(core->start_wait(w) == WaitStart::queued);
  pool.reset();
  CHECK(w.completed);
  CHECK(w.state == WaitState::closed);
  CHECK(test_support::Tracked::alive() == 1);
  held.reset();  // the last loan: the core goes
  CHECK(test_support::Tracked::alive() == 0);
}

TEST_CASE("waiters: callbacks run after the lock is released, on the serving thread") {
  Pool<int> pool(1, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  std::optional<Loaned<int>> held(pool.acquire());
  Waiter a, b;
  // a's callback uses the pool: it returns its slot, which serves b, whose
  // callback checks the pool too. A callback under the lock would deadlock.
  a.then = [&](Waiter& w) { w.take(core).reset(); };
  b.then = [&](Waiter&) { CHECK(pool.available() == 0); };
  REQUIRE(core->start_wait(a) == WaitStart::queued);
  REQUIRE(core->start_wait(b) == WaitStart::queued);
  std::thread::id releaser;
  std::thread t([&] {
    releaser = std::this_thread::get_id();
    held.reset();
  });
  t.join();
  CHECK(a.completed_on == releaser);
  CHECK(b.completed_on == releaser);
  CHECK(b.state == WaitState::granted);
  b.take(core).reset();
  CHECK(pool.available() == 1);
}

TEST_CASE("waiters: growth serves the waiters first") {
  Pool<int> pool(
      1, [] { return 0; }, {}, daq_pool::PoolOptions{4});
  PoolCore<int>* core = PoolAccess::core(pool);
  auto held = pool.acquire();
  Waiter a, b;
  REQUIRE(core->start_wait(a) == WaitStart::queued);
  REQUIRE(core->start_wait(b) == WaitStart::queued);
  CHECK(pool.grow(3) == 3);
  CHECK(a.state == WaitState::granted);
  CHECK(b.state == WaitState::granted);
  CHECK(pool.available() == 1);
  a.take(core).reset();
  b.take(core).reset();
  CHECK(pool.available() == 3);
  CHECK(pool.stats().high_water == 3);
}

TEST_CASE("waiters: threads and asynchronous waiters hammering one slot lose nothing") {
  Watchdog dog("waiters stress", std::chrono::seconds(120));
  Pool<int> pool(2, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  const std::size_t rounds = test_support::scaled(3000);
  std::atomic<std::size_t> async_done{0}, thread_done{0};
  test_support::run_threads(4, [&](std::size_t t) {
    for (std::size_t r = 0; r < rounds; ++r) {
      if (t < 2) {
        Loaned<int> l = pool.acquire();
        ++*l;
        thread_done.fetch_add(1);
        continue;
      }
      // An asynchronous waiter whose "executor" is this thread, polling.
      Waiter w;
      const WaitStart s = core->start_wait(w);
      if (s == WaitStart::queued) {
        if (r % 3 == 0) core->abort_wait(w, WaitState::cancelled);
        while (!w.done.load(std::memory_order_acquire)) std::this_thread::yield();
      }
      if (Loaned<int> l = w.take(core)) ++*l;
      async_done.fetch_add(1);
    }
  });
  CHECK(thread_done == 2 * rounds);
  CHECK(async_done == 2 * rounds);
  CHECK(pool.available() == 2);
  const auto st = pool.stats();
  CHECK(st.acquires == st.releases);
}

TEST_CASE("waiters: a blocked thread that loses its turn to a running thread gets the next slot directly") {
  // The barging rule (PoolCore, "Waiting"): a sleeping thread's first turn
  // frees the slot and wakes it, and a running thread may take the slot
  // first; the loser queues again at the front, marked starving, and the
  // next release hands it the slot without freeing it. Each round: the
  // blocked thread sleeps in acquire(); the main thread releases and takes
  // the slot back at once (quicker than any futex wake-up), so the sleeper
  // wakes to nothing and queues again; the main thread's next release must
  // then go straight to the sleeper: its own try_acquire right after fails
  // (or finds the slot the sleeper has already used and returned).
  Watchdog dog("waiters barging", std::chrono::seconds(60));
  Pool<int> pool(1, [] { return 0; });
  PoolCore<int>* core = PoolAccess::core(pool);
  const int rounds = 200;
  std::atomic<int> go{0}, got{0};
  std::optional<Loaned<int>> held(pool.acquire());
  std::thread blocked([&] {
    for (int r = 1; r <= rounds; ++r) {
      while (go.load() < r) std::this_thread::yield();
      Loaned<int> l = pool.acquire();
      ++*l;
      got.store(r);
    }
  });
  // Bounded waits: for the sleeper to be queued, or to have been served.
  auto wait_for = [](auto&& condition) {
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (!condition() && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(20us);
    return condition();
  };
  int barged = 0, handed_over = 0;
  for (int r = 1; r <= rounds; ++r) {
    go.store(r);
    REQUIRE(wait_for([&] { return core->queued_waiters() == 1; }));  // asleep (after its spin)
    held.reset();  // its first turn: the slot is freed, the sleeper woken...
    // ...and taken first by this running thread. (If the sleeper had not
    // gone to sleep yet, it may have used the slot and returned it first:
    // then it has counted its round, which the pop here sees.)
    std::optional<Loaned<int>> first = pool.try_acquire();
    if (first && got.load() != r) {
      held = std::move(first);
      ++barged;
      // It wakes to nothing and queues again, at the front (it can't have
      // the slot: this thread holds it).
      REQUIRE(wait_for([&] { return core->queued_waiters() == 1; }));
      held.reset();  // its second turn: handed over, never free
      // Free again only after the sleeper had it (same reasoning as above).
      std::optional<Loaned<int>> after = pool.try_acquire();
      const bool stolen = after.has_value() && got.load() != r;
      after.reset();
      CHECK_FALSE(stolen);
      if (!stolen) ++handed_over;
    }
    first.reset();
    REQUIRE(wait_for([&] { return got.load() == r; }));
    held.emplace(pool.acquire());  // it returned the slot; the next round starts held
  }
  INFO("rounds " << rounds << ", barged " << barged << ", handed over " << handed_over);
  CHECK(barged > 0);  // the race was run, not dodged
  CHECK(handed_over == barged);
  held.reset();
  blocked.join();
  CHECK(pool.available() == 1);
}
