// daq_pool/asio/broadcast.hpp: a coroutine co_awaits a Broadcast subscriber
// (its eventfd watched by the io_context) while the publisher runs on
// another thread: every frame of a block subscriber arrives, in order, then
// the end; a keep-latest one ends with the newest frame; cancel() ends a
// pending wait with operation_aborted; a subscriber that is not pollable is
// refused.
#include <daq_pool/asio/broadcast.hpp>

#include <cstring>

#include "asio_test.hpp"
#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using namespace asio_test;
using daq_pool::AsyncSubscriber;
using daq_pool::Broadcast;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::OnFull;
using daq_pool::Received;
using daq_pool::SubscriberOptions;
using test_support::Watchdog;

namespace {

SubscriberOptions pollable(OnFull p, std::size_t capacity) {
  SubscriberOptions o;
  o.on_full = p;
  o.capacity = capacity;
  o.pollable = true;
  return o;
}

Bytes numbered(BufferPool& pool, std::uint64_t n) {
  daq_pool::PooledBuffer b = pool.acquire();
  b.set_size(sizeof n);
  std::memcpy(b.data(), &n, sizeof n);
  return std::move(b).freeze();
}

std::uint64_t number_of(const Received& r) {
  std::uint64_t n = 0;
  std::memcpy(&n, r.data(), sizeof n);
  return n;
}

}  // namespace

TEST_CASE("asio broadcast: co_await receives every frame of a block subscriber, then the end") {
  Watchdog dog("asio broadcast co_await");
  const std::uint64_t frames = test_support::scaled(4000);
  BufferPool pool(16, 64);
  Broadcast ch(4);
  asio::io_context io;
  AsyncSubscriber block(io.get_executor(), ch.subscribe(pollable(OnFull::block, 4)));
  AsyncSubscriber latest(io.get_executor(), ch.subscribe(pollable(OnFull::keep_latest, 1)));
  std::uint64_t got = 0, bad = 0, last_latest = 0, latest_got = 0;
  bool block_ended = false, latest_ended = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        while (std::optional<Received> f = co_await block.async_receive(asio::use_awaitable)) {
          if (number_of(*f) != got || f->tag() != got) ++bad;
          ++got;
        }
        block_ended = true;
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        while (std::optional<Received> f = co_await latest.async_receive(asio::use_awaitable)) {
          if (latest_got != 0 && number_of(*f) <= last_latest) ++bad;
          last_latest = number_of(*f);
          ++latest_got;
        }
        latest_ended = true;
      },
      asio::detached);
  {
    Runner runner(io, 1, false);
    for (std::uint64_t i = 0; i < frames; ++i) ch.publish(numbered(pool, i), i);
    ch.close();
    runner.finish();  // the coroutines end with the stream
  }
  dog.dismiss();
  CHECK(block_ended);
  CHECK(latest_ended);
  CHECK(bad == 0);
  CHECK(got == frames);
  CHECK(latest_got > 0);
  CHECK(last_latest == frames - 1);  // keep_latest: the newest frame is never lost
  CHECK(ch.in_hands() == 0);
  CHECK(pool.available() == pool.size());
}

TEST_CASE("asio broadcast: cancel() ends a pending wait; a subscriber that is not pollable is refused") {
  Watchdog dog("asio broadcast cancel");
  Broadcast ch(2);
  asio::io_context io;
  AsyncSubscriber s(io.get_executor(), ch.subscribe(pollable(OnFull::drop_newest, 2)));
  error_code result;
  bool done = false;
  s.async_receive([&](error_code ec, std::optional<Received> f) {
    result = ec;
    done = !f.has_value();
  });
  io.poll();  // the operation starts and waits on the eventfd
  CHECK_FALSE(done);
  s.cancel();
  io.run();
  CHECK(done);
  CHECK(result == asio::error::operation_aborted);
  CHECK_THROWS_AS(AsyncSubscriber(io.get_executor(), ch.subscribe()), std::invalid_argument);
}
