// Per-operation cancellation and timeouts of daq_pool/asio.hpp: a cancelled
// waiter completes with operation_aborted; cancellation racing a release,
// thousands of times, on a 2-thread io_context and with releases from a
// second io_context, loses no slot (every slot back, every slot seen);
// timeouts with a past deadline, duration::max(), a deadline that expires,
// and a deadline racing a release.
#include "asio_test.hpp"

#include <algorithm>
#include <memory>
#include <set>

#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using namespace asio_test;
using test_support::scaled;
using test_support::Watchdog;

namespace {

/// Checks that every slot is back and distinct: acquiring all of them gives
/// indices 0..n-1.
void check_every_slot_back(Pool<int>& pool) {
  REQUIRE(pool.available() == pool.size());
  std::vector<Loaned<int>> all;
  std::set<std::size_t> seen;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    auto l = pool.try_acquire();
    REQUIRE(l);
    seen.insert(l->slot_index());
    all.push_back(std::move(*l));
  }
  CHECK(!pool.try_acquire());
  CHECK(seen.size() == pool.size());
  const auto st = pool.stats();
  CHECK(st.acquires - st.releases == pool.size());
}

/// Outcomes of racing operations.
struct Outcomes {
  std::atomic<std::size_t> acquired{0}, aborted{0}, timed_out{0}, other{0}, done{0};
};

}  // namespace

TEST_CASE("terminal cancellation: the waiter completes with operation_aborted; the pool is unaffected") {
  Watchdog dog("asio cancel basic");
  asio::io_context io;
  Pool<int> pool(1, [] { return 0; });
  std::optional<Loaned<int>> held(pool.acquire());
  asio::cancellation_signal sig;
  error_code first_ec;
  bool first_loan = true, second_got = false;
  daq_pool::async_acquire(
      pool, asio::bind_cancellation_slot(sig.slot(), asio::bind_executor(io, [&](error_code ec, Loaned<int> l) {
                                           first_ec = ec;
                                           first_loan = static_cast<bool>(l);
                                         })));
  daq_pool::async_acquire(pool, asio::bind_executor(io, [&](error_code ec, Loaned<int> l) { second_got = !ec && l; }));
  sig.emit(asio::cancellation_type::terminal);
  io.poll();  // the aborted completion runs; the second still waits (run() would not return)
  CHECK(first_ec == asio::error::operation_aborted);
  CHECK(!first_loan);
  CHECK(!second_got);
  held.reset();  // goes to the second waiter, not to the cancelled one
  io.run();
  CHECK(second_got);
  // A signal emitted after its operation completed does nothing.
  sig.emit(asio::cancellation_type::terminal);
  CHECK(pool.available() == 1);
}

TEST_CASE("partial and total cancellation are honoured too; none is ignored") {
  Watchdog dog("asio cancel types");
  asio::io_context io;
  Pool<int> pool(1, [] { return 0; });
  auto held = pool.acquire();
  for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
    asio::cancellation_signal sig;
    error_code ec_seen;
    daq_pool::async_acquire(
        pool, asio::bind_cancellation_slot(sig.slot(),
                                           asio::bind_executor(io, [&](error_code ec, Loaned<int>) { ec_seen = ec; })));
    sig.emit(asio::cancellation_type::none);  // no cancellation requested
    sig.emit(type);
    io.restart();
    io.run();
    CHECK(ec_seen == asio::error::operation_aborted);
  }
  CHECK(pool.available() == 0);
}

TEST_CASE("cancellation racing a release on a 2-thread io_context: no slot lost") {
  Watchdog dog("asio cancel races release (2 threads)", std::chrono::seconds(120));
  constexpr std::size_t slots = 4, ops = 8;
  const std::size_t rounds = scaled(600);
  asio::io_context io;
  Runner runner(io, 2);
  Pool<int> pool(slots, [] { return 0; });
  Outcomes out;
  for (std::size_t round = 0; round < rounds; ++round) {
    std::vector<std::optional<Loaned<int>>> held;
    for (std::size_t i = 0; i < slots; ++i) held.emplace_back(pool.acquire());
    // Each operation on its own strand, where its signal is emitted (asio's
    // rule: a slot's signal is emitted in its handler's context).
    std::vector<asio::strand<asio::io_context::executor_type>> strands;
    std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
    out.done = 0;
    for (std::size_t k = 0; k < ops; ++k) {
      strands.push_back(asio::make_strand(io));
      signals.push_back(std::make_unique<asio::cancellation_signal>());
      daq_pool::async_acquire(
          pool, asio::bind_cancellation_slot(signals[k]->slot(),
                                             asio::bind_executor(strands[k], [&out](error_code ec, Loaned<int> l) {
                                               if (!ec && l)
                                                 out.acquired.fetch_add(1);
                                               else if (ec == asio::error::operation_aborted && !l)
                                                 out.aborted.fetch_add(1);
                                               else
                                                 out.other.fetch_add(1);
                                               out.done.fetch_add(1);
                                               // `l` returns here: to the next waiter or the free list.
                                             })));
    }
    // Releases on any io thread, cancellations on the strands, interleaved.
    for (std::size_t k = 0; k < ops; ++k) {
      if (k < slots) asio::post(io, [&held, k] { held[k].reset(); });
      asio::post(strands[k], [&signals, k] { signals[k]->emit(asio::cancellation_type::terminal); });
    }
    REQUIRE(wait_for([&] { return out.done.load() == ops; }));
    // Drain the strands before their signals go away.
    std::atomic<std::size_t> drained{0};
    for (auto& s : strands) asio::post(s, [&drained] { drained.fetch_add(1); });
    REQUIRE(wait_for([&] { return drained.load() == ops; }));
    // The releases may still be queued behind the cancellations.
    REQUIRE(wait_for([&] { return pool.available() == slots; }));
  }
  runner.stop();
  CHECK(out.other == 0);
  CHECK(out.acquired + out.aborted == rounds * ops);
  INFO("acquired " << out.acquired.load() << ", aborted " << out.aborted.load());
  CHECK(out.aborted > 0);
  check_every_slot_back(pool);
}

TEST_CASE("cancellation racing releases made by a second io_context: no slot lost") {
  Watchdog dog("asio cancel races release (second io_context)", std::chrono::seconds(120));
  constexpr std::size_t slots = 3;
  const std::size_t rounds = scaled(3000);
  asio::io_context waiters_io, releasers_io;
  Runner waiters(waiters_io, 2), releasers(releasers_io, 1);
  Pool<int> pool(slots, [] { return 0; });
  Outcomes out;
  auto strand = asio::make_strand(waiters_io);
  for (std::size_t round = 0; round < rounds; ++round) {
    auto held = std::make_shared<std::optional<Loaned<int>>>();
    // Wait until a slot is free, then hold every slot but let one go from
    // the other io_context while the waiter is being cancelled.
    std::vector<Loaned<int>> rest;
    while (rest.size() < slots) rest.push_back(pool.acquire());
    held->emplace(std::move(rest.back()));
    rest.pop_back();
    auto sig = std::make_shared<asio::cancellation_signal>();
    out.done = 0;
    daq_pool::async_acquire(pool, asio::bind_cancellation_slot(
                                      sig->slot(), asio::bind_executor(strand, [&out](error_code ec, Loaned<int> l) {
                                        if (!ec && l)
                                          out.acquired.fetch_add(1);
                                        else if (ec == asio::error::operation_aborted)
                                          out.aborted.fetch_add(1);
                                        else
                                          out.other.fetch_add(1);
                                        out.done.fetch_add(1);
                                      })));
    asio::post(releasers_io, [held] { held->reset(); });
    asio::post(strand, [sig] { sig->emit(asio::cancellation_type::terminal); });
    REQUIRE(wait_for([&] { return out.done.load() == 1; }));
    std::atomic<bool> drained{false};
    asio::post(strand, [&drained] { drained = true; });
    REQUIRE(wait_for([&] { return drained.load(); }));
    rest.clear();
    // The release may still be queued on the second io_context.
    REQUIRE(wait_for([&] { return pool.available() == slots; }));
  }
  waiters.stop();
  releasers.stop();
  CHECK(out.other == 0);
  CHECK(out.acquired + out.aborted == rounds);
  INFO("acquired " << out.acquired.load() << ", aborted " << out.aborted.load());
  check_every_slot_back(pool);
}

TEST_CASE("timeouts: a past deadline is one try, duration::max() never expires") {
  Watchdog dog("asio timeouts basic");
  asio::io_context io;
  Pool<int> pool(1, [] { return 0; });
  std::optional<std::optional<Loaned<int>>> r1, r2, r3;
  error_code e1, e2, e3;
  auto keep = [](error_code& e, std::optional<std::optional<Loaned<int>>>& r) {
    return [&e, &r](error_code ec, std::optional<Loaned<int>> l) {
      e = ec;
      r.emplace(std::move(l));
    };
  };
  // Free slot, deadline in the past: the one try gets it.
  daq_pool::async_try_acquire_until(pool, std::chrono::steady_clock::now() - 1s, asio::bind_executor(io, keep(e1, r1)));
  io.run();
  REQUIRE(r1);
  CHECK(!e1);
  CHECK(r1->has_value());
  // No slot, zero and negative timeouts: nothing, no error, no wait.
  daq_pool::async_try_acquire_for(pool, 0ms, asio::bind_executor(io, keep(e2, r2)));
  daq_pool::async_try_acquire_for(pool, -5s, asio::bind_executor(io, keep(e3, r3)));
  io.restart();
  io.run();
  REQUIRE(r2);
  REQUIRE(r3);
  CHECK((!e2 && !r2->has_value()));
  CHECK((!e3 && !r3->has_value()));
  // duration::max() and time_point::max(): wait (no timer) until a release.
  std::optional<std::optional<Loaned<int>>> r4, r5;
  error_code e4, e5;
  daq_pool::async_try_acquire_for(pool, std::chrono::nanoseconds::max(), asio::bind_executor(io, keep(e4, r4)));
  daq_pool::async_try_acquire_until(pool, std::chrono::system_clock::time_point::max(),
                                    asio::bind_executor(io, keep(e5, r5)));
  io.restart();
  io.poll();
  CHECK(!r4);
  r1.reset();  // releases: served to the first
  io.restart();
  io.poll();
  REQUIRE(r4);
  CHECK((!e4 && r4->has_value()));
  CHECK(!r5);
  pool.close();
  io.restart();
  io.run();
  REQUIRE(r5);
  CHECK(e5 == daq_pool::errc::pool_closed);
}

TEST_CASE("timeouts: a deadline expires no earlier than asked, on steady and system clocks") {
  Watchdog dog("asio timeouts expire");
  asio::io_context io;
  Pool<int> pool(1, [] { return 0; });
  auto held = pool.acquire();
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> steady_done, system_done;
  daq_pool::async_try_acquire_for(pool, 20ms, asio::bind_executor(io, [&](error_code ec, std::optional<Loaned<int>> l) {
                                    CHECK(!ec);
                                    CHECK(!l);
                                    steady_done = std::chrono::steady_clock::now();
                                  }));
  daq_pool::async_try_acquire_until(pool, std::chrono::system_clock::now() + 10ms,
                                    asio::bind_executor(io, [&](error_code ec, std::optional<Loaned<int>> l) {
                                      CHECK(!ec);
                                      CHECK(!l);
                                      system_done = std::chrono::steady_clock::now();
                                    }));
  io.run();
  REQUIRE(steady_done);
  REQUIRE(system_done);
  CHECK(*steady_done - t0 >= 20ms);
  CHECK(*system_done - t0 >= 9ms);  // system_clock ticks may round a little
  CHECK(pool.available() == 0);
  CHECK(pool.stats().acquires == 1);
}

TEST_CASE("a deadline racing a release, many times: either outcome, no slot lost") {
  Watchdog dog("asio timeout races release", std::chrono::seconds(120));
  const std::size_t rounds = scaled(1500);
  asio::io_context io;
  Runner runner(io, 2);
  Pool<int> pool(2, [] { return 0; });
  Outcomes out;
  for (std::size_t round = 0; round < rounds; ++round) {
    auto a = std::make_shared<std::optional<Loaned<int>>>(pool.acquire());
    auto b = pool.acquire();
    out.done = 0;
    daq_pool::async_try_acquire_for(pool, std::chrono::microseconds(round % 50),
                                    asio::bind_executor(io, [&out](error_code ec, std::optional<Loaned<int>> l) {
                                      if (ec)
                                        out.other.fetch_add(1);
                                      else if (l)
                                        out.acquired.fetch_add(1);
                                      else
                                        out.timed_out.fetch_add(1);
                                      out.done.fetch_add(1);
                                    }));
    asio::post(io, [a] { a->reset(); });
    REQUIRE(wait_for([&] { return out.done.load() == 1; }));
    b.reset();
    REQUIRE(wait_for([&] { return pool.available() == 2; }));
  }
  runner.stop();
  CHECK(out.other == 0);
  CHECK(out.acquired + out.timed_out == rounds);
  INFO("acquired " << out.acquired.load() << ", timed out " << out.timed_out.load());
  check_every_slot_back(pool);
}

TEST_CASE("a timed acquisition can be cancelled, and its timer does not outlive it") {
  Watchdog dog("asio timed cancel");
  asio::io_context io;
  Pool<int> pool(1, [] { return 0; });
  auto held = pool.acquire();
  asio::cancellation_signal sig;
  error_code seen;
  bool called = false;
  daq_pool::async_try_acquire_for(
      pool, 1h,
      asio::bind_cancellation_slot(sig.slot(),
                                   asio::bind_executor(io, [&](error_code ec, std::optional<Loaned<int>> l) {
                                     seen = ec;
                                     called = true;
                                     CHECK(!l);
                                   })));
  sig.emit(asio::cancellation_type::terminal);
  io.run();  // returns: the timer was cancelled with the operation
  CHECK(called);
  CHECK(seen == asio::error::operation_aborted);
}
