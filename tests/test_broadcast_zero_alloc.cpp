// Broadcast's frame path allocates nothing: publish to three subscribers (one
// of each policy, one of them sleeping on its eventfd in poll(), the others
// on the futex), receive, hold, drop, evict, time out and close: 0 calls to
// operator new and 0 to malloc, counted process-wide (every thread).
#include <daq_pool/broadcast.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::Broadcast;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::OnFull;
using daq_pool::Received;
using daq_pool::Subscriber;
using daq_pool::SubscriberOptions;

TEST_CASE("broadcast: publish, receive, drop and close allocate nothing, on any thread") {
  if (!alloc_counter::enabled) {
    WARN("allocations are not counted in this build (sanitizer): skipped");
    return;
  }
  const std::uint64_t frames = test_support::scaled(20000);
  test_support::Watchdog dog("broadcast zero allocation", std::chrono::seconds(120));
  BufferPool pool(32, 4096);
  Broadcast ch(4);
  SubscriberOptions o;
  o.capacity = 4;
  o.on_full = OnFull::block;
  Subscriber block = ch.subscribe(o);
  o.on_full = OnFull::drop_newest;
  o.pollable = true;
  Subscriber drop = ch.subscribe(o);
  o.pollable = false;
  o.on_full = OnFull::keep_latest;
  o.capacity = 2;
  Subscriber latest = ch.subscribe(o);
  std::atomic<std::uint64_t> bad{0};
  std::uint64_t got[3] = {};
  test_support::StartGate gate(4);

  std::thread t_block([&] {
    gate.arrive_and_wait();
    std::optional<Received> keep;  // holds one frame across receives
    while (auto f = block.receive()) {
      if (f->size() != 4096) bad.fetch_add(1);
      ++got[0];
      if (got[0] % 2 == 0) keep = std::move(f);
    }
  });
  std::thread t_drop([&] {
    gate.arrive_and_wait();
    for (;;) {
      while (auto f = drop.try_receive()) ++got[1];
      if (drop.ended()) break;
      if (drop.arm()) {
        pollfd p{drop.fd(), POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) {
          bad.fetch_add(1);
          break;
        }
      }
    }
  });
  std::thread t_latest([&] {
    gate.arrive_and_wait();
    while (auto f = latest.receive_for(std::chrono::seconds(10))) {
      ++got[2];
      Bytes taken = std::move(*f).take();  // handed on, untracked
    }
  });

  gate.arrive_and_wait();
  alloc_counter::Scope window;
  for (std::uint64_t i = 0; i < frames; ++i) {
    daq_pool::PooledBuffer b = pool.acquire();
    b.set_size(4096);
    std::memcpy(b.data(), &i, sizeof i);
    const Bytes v = std::move(b).freeze();
    ch.publish_for(v, std::chrono::seconds(10));
    if (i % 1000 == 0) ch.publish_for(v, std::chrono::seconds(0));  // a timed-out block now and then
  }
  ch.close();
  t_block.join();
  t_drop.join();
  t_latest.join();
  const std::uint64_t news = window.news();
  const std::uint64_t mallocs = window.mallocs();
  dog.dismiss();

  CHECK(news == 0);
  CHECK(mallocs == 0);
  CHECK(bad.load() == 0);
  CHECK(got[0] > 0);
  CHECK(got[1] > 0);
  CHECK(got[2] > 0);
  CHECK(ch.in_hands() == 0);
  CHECK(pool.available() == pool.size());
}
