// Asynchronous waiters: more waiters than slots (exclusive ownership, every
// slot back at the end), FIFO service, close() and the destruction of the
// last handle with waiters pending (all complete with pool_closed, nothing
// leaks), completions that never run (their loans still return), and
// blocked threads and coroutines on one pool (both kinds make progress).
#include "asio_test.hpp"

#include <memory>
#include <mutex>
#include <string>

#include "catch.hpp"
#include "threads.hpp"
#include "tracked.hpp"
#include "watchdog.hpp"

using namespace asio_test;
using test_support::scaled;
using test_support::Tracked;
using test_support::Watchdog;

namespace {

/// One flag per slot: set while someone holds it. Two holders at once fail.
struct Ownership {
  explicit Ownership(std::size_t n) : held(n) {}
  void take(std::size_t slot) {
    const bool was = held[slot].exchange(true);
    if (was) double_holds.fetch_add(1);
  }
  void give(std::size_t slot) { held[slot].store(false); }
  std::vector<std::atomic<bool>> held;
  std::atomic<int> double_holds{0};
};

}  // namespace

TEST_CASE("more coroutines than slots on a 2-thread io_context: exclusive ownership, every slot back") {
  Watchdog dog("asio waiters > slots", std::chrono::seconds(120));
  constexpr std::size_t slots = 2, coroutines = 16;
  const std::size_t rounds = scaled(400);
  asio::io_context io;
  Pool<int> pool(slots, [] { return 0; });
  Ownership own(slots);
  std::atomic<std::size_t> finished{0};
  for (std::size_t c = 0; c < coroutines; ++c) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          for (std::size_t r = 0; r < rounds; ++r) {
            Loaned<int> l = co_await daq_pool::async_acquire(pool, asio::use_awaitable);
            own.take(l.slot_index());
            ++*l;
            // Hold it across a suspension, so that others queue meanwhile.
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            own.give(l.slot_index());
          }
          finished.fetch_add(1);
        },
        asio::detached);
  }
  Runner runner(io, 2, false);
  runner.finish();
  CHECK(finished == coroutines);
  CHECK(own.double_holds == 0);
  CHECK(pool.available() == pool.size());
  const auto st = pool.stats();
  CHECK(st.acquires == coroutines * rounds);
  CHECK(st.acquires == st.releases);
  int total = 0;
  {
    auto a = pool.acquire();
    auto b = pool.acquire();
    total = *a + *b;
  }
  CHECK(total == static_cast<int>(coroutines * rounds));
}

TEST_CASE("waiters are served in FIFO order") {
  Watchdog dog("asio FIFO");
  asio::io_context io;
  Pool<int> pool(1, [] { return 0; });
  std::optional<Loaned<int>> held(pool.acquire());
  std::vector<int> order;
  for (int i = 0; i < 6; ++i) {
    daq_pool::async_acquire(pool, asio::bind_executor(io, [&order, i](error_code ec, Loaned<int> l) {
                              CHECK(!ec);
                              CHECK(l);
                              order.push_back(i);
                              // `l` returns here and goes to the next waiter.
                            }));
  }
  held.reset();
  io.run();
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});
  CHECK(pool.available() == 1);
}

TEST_CASE("close() completes every pending waiter with pool_closed at once") {
  Watchdog dog("asio close with N waiters");
  constexpr int waiters = 64;
  asio::io_context io;
  Pool<int> pool(2, [] { return 0; });
  auto a = pool.acquire();
  auto b = pool.acquire();
  std::atomic<int> closed{0}, other{0};
  Runner runner(io, 2);
  for (int i = 0; i < waiters / 2; ++i) {
    daq_pool::async_acquire(pool, asio::bind_executor(io, [&](error_code ec, Loaned<int> l) {
                              (ec == daq_pool::errc::pool_closed && !l ? closed : other).fetch_add(1);
                            }));
    daq_pool::async_try_acquire_for(pool, 1h, asio::bind_executor(io, [&](error_code ec, std::optional<Loaned<int>> l) {
                                      (ec == daq_pool::errc::pool_closed && !l ? closed : other).fetch_add(1);
                                    }));
  }
  std::this_thread::sleep_for(2ms);
  pool.close();
  REQUIRE(wait_for([&] { return closed.load() + other.load() == waiters; }));
  CHECK(closed == waiters);
  CHECK(other == 0);
  // Loans out stay valid and return normally; later acquisitions fail.
  *a = 1;
  a.reset();
  b.reset();
  CHECK(pool.available() == 2);
  std::atomic<bool> later_closed{false};
  daq_pool::async_acquire(pool, asio::bind_executor(io, [&](error_code ec, Loaned<int>) {
                            later_closed = ec == daq_pool::errc::pool_closed;
                          }));
  REQUIRE(wait_for([&] { return later_closed.load(); }));
}

TEST_CASE("destroying the last handle with waiters pending completes them with pool_closed; nothing leaks") {
  Watchdog dog("asio last handle dropped");
  Tracked::reset_counters();
  {
    asio::io_context io;
    std::optional<Pool<Tracked>> pool;
    pool.emplace(2, [] { return Tracked(7); });
    std::optional<Loaned<Tracked>> kept(pool->acquire());  // outlives the pool's handles
    auto other = pool->acquire();
    std::atomic<int> closed{0};
    for (int i = 0; i < 10; ++i)
      daq_pool::async_acquire(*pool, asio::bind_executor(io, [&](error_code ec, Loaned<Tracked> l) {
        if (ec == daq_pool::errc::pool_closed && !l) closed.fetch_add(1);
      }));
    other.reset();  // served to the first waiter: its handler holds the loan
    pool.reset();   // the last handle: closes; the others complete closed
    io.run();
    CHECK(closed == 9);
    CHECK(Tracked::alive() == 2);  // `kept` keeps the storage
    CHECK(kept->get().value == 7);
    kept.reset();  // the last loan: destroys the pool's storage
    CHECK(Tracked::alive() == 0);
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("completions that never run still return their slots (io_context destroyed)") {
  Watchdog dog("asio completions destroyed");
  Pool<int> pool(1, [] { return 0; });
  {
    asio::io_context io;
    std::optional<Loaned<int>> held(pool.acquire());
    bool ran = false;
    daq_pool::async_acquire(pool, asio::bind_executor(io, [&](error_code, Loaned<int>) { ran = true; }));
    daq_pool::async_try_acquire_for(
        pool, 1h, asio::bind_executor(io, [&](error_code, std::optional<Loaned<int>>) { ran = true; }));
    held.reset();  // granted to the first waiter; its completion is queued
    CHECK(!ran);
    // The io_context goes without running: the queued handler (holding the
    // loan) and the waiting timed operation are destroyed.
    pool.close();
  }
  CHECK(pool.available() == 1);
  CHECK(pool.stats().acquires == pool.stats().releases);
}

TEST_CASE("blocked threads and coroutines on one pool both make progress") {
  Watchdog dog("asio mixed threads and coroutines", std::chrono::seconds(120));
  constexpr std::size_t slots = 2, threads = 2, coroutines = 4;
  // Every worker keeps going until both kinds have done their share, so the
  // two kinds really compete all along; a starved kind never gets there and
  // the watchdog fires. (The coroutines do far more rounds: a thread that
  // queues has spun 50 us first and then waits for a futex wake-up; what is
  // checked is that it gets its turns.)
  const std::size_t share = scaled(2000);
  asio::io_context io;
  Pool<int> pool(slots, [] { return 0; });
  Ownership own(slots);
  std::atomic<std::size_t> thread_rounds{0}, coroutine_rounds{0}, timed_misses{0};
  auto both_done = [&] { return thread_rounds.load() >= share && coroutine_rounds.load() >= share; };
  for (std::size_t c = 0; c < coroutines; ++c) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          while (!both_done()) {
            Loaned<int> l = co_await daq_pool::async_acquire(pool, asio::use_awaitable);
            own.take(l.slot_index());
            // Hold it across a suspension: the pool runs empty, both kinds queue.
            co_await asio::post(asio::use_awaitable);
            own.give(l.slot_index());
            coroutine_rounds.fetch_add(1);
          }
        },
        asio::detached);
  }
  test_support::StartGate gate(threads + 1);
  std::thread io_thread([&] {
    gate.arrive_and_wait();
    Runner runner(io, 2, false);
    runner.finish();
  });
  test_support::run_threads(threads, [&](std::size_t t) {
    gate.arrive_and_wait();
    while (!both_done()) {
      std::optional<Loaned<int>> l;
      if (t == 0) {
        l.emplace(pool.acquire());
      } else {
        // The timed kind, retried until it gets one.
        while (!(l = pool.try_acquire_for(20ms))) timed_misses.fetch_add(1);
      }
      own.take(l->slot_index());
      std::this_thread::yield();
      own.give(l->slot_index());
      thread_rounds.fetch_add(1);
    }
  });
  io_thread.join();
  CHECK(thread_rounds >= share);
  CHECK(coroutine_rounds >= share);
  CHECK(own.double_holds == 0);
  CHECK(pool.available() == slots);
  const auto st = pool.stats();
  CHECK(st.acquires == st.releases);
  INFO("threads " << thread_rounds.load() << ", coroutines " << coroutine_rounds.load() << ", timed misses "
                  << timed_misses.load() << ", waits " << st.waits);
  CHECK(st.waits > 0);  // the threads did queue behind the coroutines
}
