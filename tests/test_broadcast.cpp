// Broadcast (daq_pool/broadcast.hpp): the policies, counters, close, leave,
// lifetimes and bad use, on one thread; then the same under real threads:
// a slow block subscriber never delays the drop/keep-latest ones and loses
// nothing, subscribers join and leave while frames flow, the eventfd wait,
// and the in-hands count is never below the buffers out of the pool.
#include <daq_pool/broadcast.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::Broadcast;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::CloseMode;
using daq_pool::OnFull;
using daq_pool::Received;
using daq_pool::Subscriber;
using daq_pool::SubscriberOptions;
using namespace std::chrono_literals;

namespace {

/// A frame from `pool` whose first 8 bytes are `n` (and the rest a pattern).
Bytes frame(BufferPool& pool, std::uint64_t n, std::size_t size = 64) {
  daq_pool::PooledBuffer b = pool.acquire();
  b.set_size(size);
  std::memcpy(b.data(), &n, sizeof n);
  for (std::size_t i = sizeof n; i < size; ++i) b.data()[i] = std::byte(static_cast<std::uint8_t>(n + i));
  return std::move(b).freeze();
}

/// The frame number of a received frame, and whether its bytes are intact.
std::uint64_t number(const Bytes& b) {
  std::uint64_t n = 0;
  std::memcpy(&n, b.data(), sizeof n);
  for (std::size_t i = sizeof n; i < b.size(); ++i)
    if (b[i] != std::byte(static_cast<std::uint8_t>(n + i))) return ~std::uint64_t{0};
  return n;
}

SubscriberOptions opts(OnFull p, std::size_t capacity, const char* name = "") {
  SubscriberOptions o;
  o.on_full = p;
  o.capacity = capacity;
  o.name = name;
  return o;
}

}  // namespace

TEST_CASE("broadcast: every subscriber gets every frame, in order, as its own view") {
  BufferPool pool(8, 64);
  Broadcast ch(4);
  Subscriber a = ch.subscribe(opts(OnFull::block, 4, "a"));
  Subscriber b = ch.subscribe(opts(OnFull::drop_newest, 4, "b"));
  for (std::uint64_t i = 0; i < 3; ++i) {
    const auto r = ch.publish(frame(pool, i), 100 + i);  // the tag travels with the view
    CHECK(r.queued == 2);
    CHECK(r.dropped == 0);
  }
  CHECK(ch.in_hands() == 6);
  CHECK(pool.available() == 5);  // 3 buffers, each shared by both queues
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto fa = a.try_receive();
    auto fb = b.try_receive();
    REQUIRE(fa);
    REQUIRE(fb);
    CHECK(number(fa->bytes()) == i);
    CHECK(fa->tag() == 100 + i);
    CHECK(fb->tag() == 100 + i);
    CHECK(fa->data() == fb->data());  // the same buffer, no copy
  }
  CHECK_FALSE(a.try_receive());
  CHECK_FALSE(a.ended());
  CHECK(a.stats().delivered == 3);
  CHECK(a.stats().high_water == 3);
  CHECK(ch.in_hands() == 0);
  CHECK(pool.available() == 8);
}

TEST_CASE("broadcast: a full queue follows its subscriber's policy, counted") {
  BufferPool pool(16, 64);
  Broadcast ch(4);
  Subscriber block = ch.subscribe(opts(OnFull::block, 2));
  Subscriber drop = ch.subscribe(opts(OnFull::drop_newest, 2));
  Subscriber latest = ch.subscribe(opts(OnFull::keep_latest, 2));
  for (std::uint64_t i = 0; i < 5; ++i) ch.publish_for(frame(pool, i), 0ms);  // block: no waiting
  // drop_newest keeps 0 1, keep_latest keeps 3 4, block timed out on 2 3 4.
  const auto take_all = [](Subscriber& s) {
    std::vector<std::uint64_t> got;
    while (auto f = s.try_receive()) got.push_back(number(f->bytes()));
    return got;
  };
  CHECK(take_all(block) == std::vector<std::uint64_t>{0, 1});
  CHECK(take_all(drop) == std::vector<std::uint64_t>{0, 1});
  CHECK(take_all(latest) == std::vector<std::uint64_t>{3, 4});
  CHECK(block.stats().dropped == 3);
  CHECK(block.stats().timed_out == 3);
  CHECK(drop.stats().dropped == 3);
  CHECK(drop.stats().timed_out == 0);
  CHECK(latest.stats().dropped == 3);
  CHECK(latest.stats().delivered == 2);
  CHECK(latest.stats().high_water == 2);
  CHECK(ch.in_hands() == 0);
  CHECK(pool.available() == 16);
}

TEST_CASE("broadcast: held frames are counted until dropped, also after leave and after the channel") {
  BufferPool pool(4, 64);
  std::optional<Received> kept;
  {
    Broadcast ch(2);
    Subscriber s = ch.subscribe(opts(OnFull::block, 2));
    ch.publish(frame(pool, 7));
    ch.publish(frame(pool, 8));
    kept = s.try_receive();
    REQUIRE(kept);
    CHECK(s.stats().held == 1);
    CHECK(s.stats().queued == 1);
    CHECK(ch.in_hands() == 2);
    s.leave();  // frame 8 is dropped (discarded), frame 7 stays with us
    CHECK(ch.in_hands() == 1);
    CHECK(pool.available() == 3);
  }  // the channel goes too
  CHECK(number(kept->bytes()) == 7);
  kept.reset();
  CHECK(pool.available() == 4);

  // A Received taken out as a plain view is no longer counted.
  Broadcast ch(1);
  Subscriber s = ch.subscribe(opts(OnFull::block, 1));
  ch.publish(frame(pool, 9));
  std::optional<Received> r = s.try_receive();
  REQUIRE(r);
  Bytes mine = std::move(*r).take();
  CHECK(ch.in_hands() == 0);
  CHECK(number(mine) == 9);
}

TEST_CASE("broadcast: close(drain) delivers what is queued, then the end; close(discard) drops it") {
  BufferPool pool(8, 64);
  Broadcast ch(2);
  Subscriber a = ch.subscribe(opts(OnFull::block, 3));
  Subscriber b = ch.subscribe(opts(OnFull::block, 3));
  for (std::uint64_t i = 0; i < 3; ++i) ch.publish(frame(pool, i));  // both queues full
  ch.close();
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto f = a.receive();
    REQUIRE(f);
    CHECK(number(f->bytes()) == i);
  }
  CHECK_FALSE(a.receive());
  CHECK(a.ended());
  CHECK_FALSE(a.receive_for(1s));  // stays ended, at once
  ch.close(CloseMode::discard);    // b's three frames go now
  CHECK(b.stats().discarded == 3);
  CHECK_FALSE(b.receive());
  CHECK(b.ended());
  CHECK(ch.in_hands() == 0);
  CHECK(pool.available() == 8);
}

TEST_CASE("broadcast: a subscriber outlives its channel and receives the rest") {
  BufferPool pool(4, 64);
  Subscriber s;
  {
    Broadcast ch(1);
    s = ch.subscribe(opts(OnFull::keep_latest, 2));
    ch.publish(frame(pool, 1));
    ch.publish(frame(pool, 2));
  }
  auto f1 = s.receive();
  auto f2 = s.receive();
  REQUIRE(f1);
  REQUIRE(f2);
  CHECK(number(f1->bytes()) == 1);
  CHECK(number(f2->bytes()) == 2);
  CHECK_FALSE(s.receive());
  CHECK(s.ended());
}

TEST_CASE("broadcast: bad use gets a clear error") {
  BufferPool pool(2, 64);
  CHECK_THROWS_AS(Broadcast(0), std::invalid_argument);
  CHECK_THROWS_AS(Broadcast(Broadcast::max_subscribers_limit + 1), std::invalid_argument);
  Broadcast ch(2);
  CHECK_THROWS_AS(ch.subscribe(opts(OnFull::block, 0)), std::invalid_argument);
  CHECK_THROWS_AS(ch.subscribe(opts(OnFull::block, Broadcast::max_capacity + 1)), std::invalid_argument);
  try {
    ch.subscribe(opts(OnFull::block, 0, "recorder"));
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("recorder") != std::string::npos);
    CHECK(std::string(e.what()).find("capacity is 0") != std::string::npos);
  }
  Subscriber a = ch.subscribe();
  Subscriber b = ch.subscribe();
  CHECK_THROWS_AS(ch.subscribe(), std::length_error);
  CHECK_THROWS_AS(ch.publish(Bytes()), std::invalid_argument);
  CHECK_THROWS_AS(a.arm(), std::logic_error);  // not pollable
  a.leave();
  CHECK_THROWS_AS(a.receive(), std::logic_error);
  CHECK_THROWS_AS(a.try_receive(), std::logic_error);
  CHECK_THROWS_AS(a.receive_for(1ms), std::logic_error);
  CHECK(a.stats().delivered == 0);
  ch.publish(frame(pool, 1));  // reaps a's place
  Subscriber c = ch.subscribe();  // ... which a new subscriber takes
  ch.close();
  CHECK_THROWS_AS(ch.publish(frame(pool, 2)), std::logic_error);
  CHECK_THROWS_AS(ch.subscribe(), std::logic_error);
  Broadcast moved = std::move(ch);
  CHECK_THROWS_AS(ch.subscribe(), std::logic_error);  // NOLINT(bugprone-use-after-move): the point
}

TEST_CASE("broadcast threads: a slow block subscriber delays neither drop nor keep-latest ones, and loses nothing") {
  test_support::Watchdog dog("slow subscriber", std::chrono::seconds(120));
  constexpr std::size_t capacity = 4;
  const std::uint64_t frames = test_support::scaled(4000);
  BufferPool pool(3 * capacity + 8, 64);
  Broadcast ch(4);
  Subscriber slow = ch.subscribe(opts(OnFull::block, capacity, "slow"));
  // The fast ones have room for frame `capacity` even if they have not
  // taken a frame yet.
  Subscriber drop = ch.subscribe(opts(OnFull::drop_newest, 2 * capacity, "drop"));
  Subscriber latest = ch.subscribe(opts(OnFull::keep_latest, 2 * capacity, "latest"));
  std::atomic<bool> release_slow{false};
  std::atomic<int> fast_saw_blocked_frame{0};
  std::atomic<std::uint64_t> bad{0};

  // The slow subscriber takes nothing until both fast ones received frame
  // `capacity` (0-based), which the publisher can only hand out while it is
  // still waiting for the slow one's room: if publish waited for the slow
  // subscriber before queueing for the others, they would never see it and
  // the check below fails (after 30 s).
  const auto fast = [&](Subscriber& s, bool strictly_consecutive_tail) {
    std::uint64_t last = 0;
    bool first = true;
    while (auto f = s.receive()) {
      const std::uint64_t n = number(f->bytes());
      if (n == ~std::uint64_t{0} || (!first && n <= last)) bad.fetch_add(1);
      if (n == capacity) fast_saw_blocked_frame.fetch_add(1);
      first = false;
      last = n;
    }
    if (strictly_consecutive_tail && last != frames - 1) bad.fetch_add(1);  // keep_latest ends with the newest
  };
  std::thread t_drop([&] { fast(drop, false); });
  std::thread t_latest([&] { fast(latest, true); });
  std::vector<std::uint64_t> slow_got;
  slow_got.reserve(frames);
  std::thread t_slow([&] {
    while (!release_slow.load()) std::this_thread::sleep_for(1ms);
    while (auto f = slow.receive()) {
      slow_got.push_back(number(f->bytes()));
      if (slow_got.size() % 64 == 0) std::this_thread::sleep_for(100us);  // slow, now and then
    }
  });
  std::atomic<bool> fast_first{false};  // both fast ones had frame `capacity` before the slow one moved
  std::thread releaser([&] {
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (fast_saw_blocked_frame.load() < 2 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(1ms);
    fast_first.store(fast_saw_blocked_frame.load() == 2);
    release_slow.store(true);
  });
  std::uint64_t timed_out = 0;
  for (std::uint64_t i = 0; i < frames; ++i) timed_out += ch.publish_for(frame(pool, i), 60s).timed_out;
  ch.close();
  releaser.join();
  t_drop.join();
  t_latest.join();
  t_slow.join();
  dog.dismiss();

  CHECK(fast_first.load());
  CHECK(fast_saw_blocked_frame.load() == 2);
  CHECK(bad.load() == 0);
  CHECK(timed_out == 0);
  CHECK(slow_got.size() == frames);  // block: nothing lost, nothing twice
  std::uint64_t out_of_order = 0;
  for (std::uint64_t i = 0; i < std::min<std::uint64_t>(frames, slow_got.size()); ++i) {
    if (slow_got[i] != i && out_of_order++ == 0) UNSCOPED_INFO("slow subscriber: frame " << slow_got[i] << " at " << i);
  }
  CHECK(out_of_order == 0);
  const auto ds = drop.stats();
  const auto ls = latest.stats();
  CHECK(ds.delivered + ds.dropped == frames);
  CHECK(ls.delivered + ls.dropped == frames);
  CHECK(slow.stats().dropped == 0);
  CHECK(ch.in_hands() == 0);
  CHECK(pool.available() == pool.size());
}

TEST_CASE("broadcast threads: subscribers join and leave while frames flow; in_hands never below the buffers out") {
  test_support::Watchdog dog("join/leave", std::chrono::seconds(120));
  const std::uint64_t frames = test_support::scaled(20000);
  BufferPool pool(64, 64);
  Broadcast ch(8);
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> bad{0};
  std::atomic<std::uint64_t> sessions{0};
  const OnFull policies[] = {OnFull::block, OnFull::drop_newest, OnFull::keep_latest};
  std::vector<std::thread> churners;
  for (std::size_t t = 0; t < 3; ++t) {
    churners.emplace_back([&, t] {
      for (std::uint64_t round = 0; !done.load(); ++round) {
        Subscriber s;
        try {
          s = ch.subscribe(opts(policies[(t + round) % 3], 1 + round % 5));
        } catch (const std::logic_error&) {
          break;  // closed
        }
        std::uint64_t last = 0;
        bool first = true;
        std::optional<Received> held;
        for (std::uint64_t k = 0; k < 1 + round % 50; ++k) {
          auto f = s.receive_for(100ms);
          if (!f) break;
          const std::uint64_t n = number(f->bytes());
          // block: consecutive frames; the others: increasing.
          if (n == ~std::uint64_t{0} || (!first && n <= last)) bad.fetch_add(1);
          if (!first && s.stats().on_full == OnFull::block && n != last + 1) bad.fetch_add(1);
          first = false;
          last = n;
          if (k % 3 == 0) held = std::move(f);  // keep one across receives, sometimes
        }
        sessions.fetch_add(1);
        s.leave();  // with `held` still alive: it stays valid and counted
        held.reset();
      }
    });
  }
  std::uint64_t violations = 0;
  // At least `frames` frames, and on until 30 sessions were held (bounded).
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  for (std::uint64_t i = 0; i < frames || (sessions.load() < 30 && std::chrono::steady_clock::now() < give_up); ++i) {
    ch.publish_for(frame(pool, i), 5s);
    // Only this thread takes buffers from the pool and raises in_hands;
    // everybody else only returns buffers (view first) and then lowers it.
    // So a count read first bounds the buffers out read after.
    const std::uint64_t counted = ch.in_hands();
    const std::size_t out = pool.size() - pool.available();
    if (out > counted) ++violations;
  }
  done.store(true);
  ch.close();
  for (auto& t : churners) t.join();
  dog.dismiss();
  CHECK(violations == 0);
  CHECK(bad.load() == 0);
  CHECK(sessions.load() >= 30);
  CHECK(ch.in_hands() == 0);
  CHECK(pool.available() == pool.size());
}

TEST_CASE("broadcast threads: a pollable subscriber waits in poll() on its eventfd") {
  test_support::Watchdog dog("eventfd", std::chrono::seconds(120));
  const std::uint64_t frames = test_support::scaled(2000);
  BufferPool pool(16, 64);
  Broadcast ch(2);
  SubscriberOptions o = opts(OnFull::block, 4, "poller");
  o.pollable = true;
  Subscriber s = ch.subscribe(o);
  REQUIRE(s.fd() >= 0);
  std::uint64_t got = 0, bad = 0, polls = 0;
  std::thread consumer([&] {
    for (;;) {
      while (auto f = s.try_receive()) {
        if (number(f->bytes()) != got) ++bad;
        ++got;
      }
      if (s.ended()) break;
      if (s.arm()) {
        pollfd p{s.fd(), POLLIN, 0};
        if (::poll(&p, 1, 10000) <= 0) {
          ++bad;  // 10 s without a frame: a lost wake-up
          break;
        }
        ++polls;
      }
    }
  });
  for (std::uint64_t i = 0; i < frames; ++i) {
    ch.publish(frame(pool, i));
    if (i % 128 == 0) std::this_thread::sleep_for(200us);  // let it sleep now and then
  }
  ch.close();
  consumer.join();
  dog.dismiss();
  CHECK(bad == 0);
  CHECK(got == frames);
  CHECK(polls > 0);
}

TEST_CASE("broadcast threads: consumers that sleep are woken for every frame and for close") {
  test_support::Watchdog dog("sleep/wake", std::chrono::seconds(120));
  const std::uint64_t frames = test_support::scaled(3000);
  BufferPool pool(16, 64);
  Broadcast ch(2);
  Subscriber s = ch.subscribe(opts(OnFull::block, 1));
  std::uint64_t got = 0, bad = 0;
  std::thread consumer([&] {
    while (auto f = s.receive()) {
      if (number(f->bytes()) != got) ++bad;
      ++got;
    }
  });
  for (std::uint64_t i = 0; i < frames; ++i) {
    ch.publish(frame(pool, i));
    if (i % 16 == 0) std::this_thread::sleep_for(50us);  // past the spin: the futex path
  }
  std::this_thread::sleep_for(5ms);  // the consumer sleeps: close must wake it
  ch.close();
  consumer.join();
  dog.dismiss();
  CHECK(bad == 0);
  CHECK(got == frames);
}
