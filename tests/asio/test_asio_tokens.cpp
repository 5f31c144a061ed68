// daq_pool/asio.hpp with every completion token kind asio 1.22 offers
// (callbacks, use_awaitable, use_future, deferred, as_tuple, redirect_error),
// for Pool<T> and BufferPool, completing at once and after a wait; and where
// completions run: never inside the initiating call, never inside the thread
// that released the slot, always through the handler's executor.
#include "asio_test.hpp"

#include <future>
#include <string>

#include "catch.hpp"
#include "watchdog.hpp"

using namespace asio_test;
using daq_pool::BufferPool;
using daq_pool::PooledBuffer;
using test_support::Watchdog;

TEST_CASE("callback: completes through its executor, never inside the initiating call") {
  Watchdog dog("asio callback immediate");
  asio::io_context io;
  Pool<int> pool(2, [] { return 5; });
  bool called = false;
  Loaned<int> got;
  daq_pool::async_acquire(pool, asio::bind_executor(io, [&](error_code ec, Loaned<int> l) {
                            CHECK(!ec);
                            called = true;
                            got = std::move(l);
                          }));
  // A slot was free, but the handler waits for the io_context.
  CHECK(!called);
  CHECK(pool.available() == 1);  // taken by the operation already
  io.run();
  REQUIRE(called);
  REQUIRE(got);
  CHECK(*got == 5);
  got.reset();
  CHECK(pool.available() == 2);
}

TEST_CASE("callback: a release on another thread posts the handler to the waiter's io_context thread") {
  Watchdog dog("asio callback after release");
  asio::io_context io;
  Pool<int> pool(1, [] { return 1; });
  std::optional<Loaned<int>> held(pool.acquire());
  std::atomic<bool> called{false};
  std::thread::id handler_thread;
  Runner runner(io, 1);
  daq_pool::async_acquire(pool, asio::bind_executor(io, [&](error_code ec, Loaned<int> l) {
                            CHECK(!ec);
                            CHECK(l);
                            handler_thread = std::this_thread::get_id();
                            called = true;
                          }));
  std::this_thread::sleep_for(5ms);
  CHECK(!called);  // waiting: the only slot is held
  std::thread releaser([&] { held.reset(); });
  const std::thread::id releaser_id = releaser.get_id();
  releaser.join();
  REQUIRE(wait_for([&] { return called.load(); }));
  CHECK(handler_thread != releaser_id);
  runner.stop();
  CHECK(pool.available() == 1);
}

TEST_CASE("a release inside a handler of the same io_context does not run the waiter inline") {
  Watchdog dog("asio not inline in releaser");
  asio::io_context io;  // one thread: anything inline would show as reentrancy
  Pool<int> pool(1, [] { return 1; });
  std::optional<Loaned<int>> held(pool.acquire());
  int step = 0;
  daq_pool::async_acquire(pool, asio::bind_executor(io, [&](error_code ec, Loaned<int>) {
                            CHECK(!ec);
                            CHECK(step == 1);  // after the releasing handler returned
                            step = 2;
                          }));
  asio::post(io, [&] {
    held.reset();      // hands the slot to the waiter...
    CHECK(step == 0);  // ...whose handler has not run
    step = 1;
  });
  io.run();
  CHECK(step == 2);
}

TEST_CASE("use_awaitable: co_await for Pool and BufferPool, at once and after a wait") {
  Watchdog dog("asio use_awaitable");
  asio::io_context io;
  Pool<int> pool(1, [] { return 3; });
  BufferPool buffers(1, 256);
  std::optional<Loaned<int>> held(pool.acquire());
  std::optional<PooledBuffer> held_buffer(buffers.acquire());
  int seen = 0;
  std::size_t buffer_capacity = 0, buffer_size = 99;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        Loaned<int> a = co_await daq_pool::async_acquire(pool, asio::use_awaitable);  // waits
        seen = *a;
        a.reset();
        Loaned<int> b = co_await daq_pool::async_acquire(pool, asio::use_awaitable);  // at once
        seen += *b;
        PooledBuffer buf = co_await daq_pool::async_acquire(buffers, asio::use_awaitable);  // waits
        buffer_capacity = buf.capacity();
        buffer_size = buf.size();
      },
      asio::detached);
  Runner runner(io, 1, false);
  std::this_thread::sleep_for(2ms);
  held.reset();
  std::this_thread::sleep_for(2ms);
  held_buffer->set_size(10);
  held_buffer.reset();
  runner.finish();
  CHECK(seen == 6);
  CHECK(buffer_capacity == 256);
  CHECK(buffer_size == 0);  // a fresh buffer
  CHECK(pool.available() == 1);
  CHECK(buffers.available() == 1);
}

TEST_CASE("use_awaitable: a closed pool throws std::system_error with errc::pool_closed") {
  Watchdog dog("asio use_awaitable closed");
  asio::io_context io;
  Pool<int> pool(1, [] { return 0; });
  pool.close();
  std::error_code caught;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          (void)co_await daq_pool::async_acquire(pool, asio::use_awaitable);
        } catch (const std::system_error& e) {
          caught = e.code();
        }
      },
      asio::detached);
  io.run();
  CHECK(caught == daq_pool::errc::pool_closed);
  CHECK(caught.category().name() == std::string("daq_pool"));
  CHECK(caught.message() == "the pool is closed");
  // The blocking acquire throws the same code.
  try {
    (void)pool.acquire();
    FAIL("acquire() on a closed pool returned");
  } catch (const daq_pool::pool_closed& e) {
    CHECK(e.code() == daq_pool::errc::pool_closed);
    CHECK(std::string(e.what()) == "daq_pool: the pool is closed");
  }
}

TEST_CASE("use_future: Pool and BufferPool, completed by a release from another thread") {
  Watchdog dog("asio use_future");
  Pool<int> pool(1, [] { return 8; });
  BufferPool buffers(1, 64);
  std::optional<Loaned<int>> held(pool.acquire());
  // use_future's handlers run on the completing thread's executor (asio's
  // promise executor): no io_context needed.
  std::future<Loaned<int>> f = daq_pool::async_acquire(pool, asio::use_future);
  std::future<PooledBuffer> fb = daq_pool::async_acquire(buffers, asio::use_future);
  CHECK(f.wait_for(5ms) == std::future_status::timeout);
  std::thread([&] { held.reset(); }).join();
  Loaned<int> got = f.get();
  CHECK(*got == 8);
  PooledBuffer b = fb.get();
  CHECK(b.capacity() == 64);
  pool.close();
  std::future<Loaned<int>> closed = daq_pool::async_acquire(pool, asio::use_future);
  try {
    (void)closed.get();
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(e.code() == daq_pool::errc::pool_closed);
  }
}

TEST_CASE("deferred: initiated only when launched, with any token") {
  Watchdog dog("asio deferred");
  asio::io_context io;
  Pool<int> pool(1, [] { return 4; });
  auto op = daq_pool::async_acquire(pool, asio::experimental::deferred);
  CHECK(pool.available() == 1);  // nothing happened yet
  int got = 0;
  op(asio::bind_executor(io, [&](error_code ec, Loaned<int> l) {
    CHECK(!ec);
    got = *l;
  }));
  CHECK(pool.available() == 0);
  io.run();
  CHECK(got == 4);
  CHECK(pool.available() == 1);
  // Deferred, launched inside a coroutine, and timed.
  io.restart();
  std::optional<Loaned<int>> timed;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto later = daq_pool::async_try_acquire_for(pool, 1s, asio::experimental::deferred);
        timed = co_await later(asio::use_awaitable);
      },
      asio::detached);
  io.run();
  REQUIRE(timed.has_value());
  CHECK(**timed == 4);
}

TEST_CASE("as_tuple and redirect_error: errors as values") {
  Watchdog dog("asio as_tuple redirect_error");
  asio::io_context io;
  Pool<int> pool(1, [] { return 2; });
  BufferPool buffers(1, 32);
  error_code redirected;
  error_code tuple_ec;
  bool tuple_loan = true;
  bool buffer_ok = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec, loan] = co_await daq_pool::async_acquire(pool, asio::experimental::as_tuple(asio::use_awaitable));
        CHECK(!ec);
        CHECK(*loan == 2);
        auto [bec, buf] = co_await daq_pool::async_acquire(buffers, asio::experimental::as_tuple(asio::use_awaitable));
        buffer_ok = !bec && buf.capacity() == 32;
        loan.reset();
        pool.close();
        auto [ec2, loan2] = co_await daq_pool::async_acquire(pool, asio::experimental::as_tuple(asio::use_awaitable));
        tuple_ec = ec2;
        tuple_loan = static_cast<bool>(loan2);
        Loaned<int> none =
            co_await daq_pool::async_acquire(pool, asio::redirect_error(asio::use_awaitable, redirected));
        CHECK(!none);
      },
      asio::detached);
  io.run();
  CHECK(buffer_ok);
  CHECK(tuple_ec == daq_pool::errc::pool_closed);
  CHECK(!tuple_loan);
  CHECK(redirected == daq_pool::errc::pool_closed);
}

TEST_CASE("a strand: completions run on the handler's strand") {
  Watchdog dog("asio strand");
  asio::io_context io;
  auto strand = asio::make_strand(io);
  Pool<int> pool(1, [] { return 0; });
  std::optional<Loaned<int>> held(pool.acquire());
  std::atomic<bool> on_strand{false};
  std::atomic<bool> done{false};
  daq_pool::async_acquire(pool, asio::bind_executor(strand, [&](error_code, Loaned<int>) {
                            on_strand = strand.running_in_this_thread();
                            done = true;
                          }));
  Runner runner(io, 2);
  held.reset();
  REQUIRE(wait_for([&] { return done.load(); }));
  CHECK(on_strand);
}
