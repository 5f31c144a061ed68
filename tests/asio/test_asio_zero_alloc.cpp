// Zero allocation in steady state: a coroutine hand-off loop (a producer
// co_awaits a buffer of a BufferPool, fills it, freezes it and passes the
// view through an asio channel to a consumer coroutine, which checks and
// drops it) makes no call to malloc or operator new per frame after warm-up,
// with asio's recycling allocator for the coroutine frames and the
// operations' states. Both paths: acquisitions that complete at once (the
// consumer drops every view) and acquisitions that wait (the consumer keeps
// every view until it holds all 8, and drops the oldest only after
// yielding, so the producer's acquisition waits for that drop, which hands
// the buffer over). On one io_context thread (exactly zero) and on two (see
// below for what asio itself does there).
#include "alloc_counter.hpp"  // this executable's one counting TU
#include "asio_test.hpp"

#include <asio/experimental/concurrent_channel.hpp>

#include <array>
#include <cstdint>
#include <cstring>

#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using namespace asio_test;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

namespace {

constexpr std::size_t pool_size = 8;
constexpr std::size_t frame_bytes = 4096;

struct Result {
  std::uint64_t allocations = 0;
  std::uint64_t frames = 0;
  std::uint64_t bad = 0;
};

/// Runs the loop: `warmup` frames, then `frames` frames counted; the
/// consumer drops each view at once, or (`hold`) keeps them as described.
Result run_loop(std::size_t threads, bool hold, std::uint64_t warmup, std::uint64_t frames) {
  asio::io_context io;
  BufferPool pool(pool_size, frame_bytes);
  // Unbuffered: a buffered asio channel keeps its values in a std::deque,
  // which allocates as it cycles.
  asio::experimental::concurrent_channel<void(error_code, Bytes)> views(io, 0);
  Result r;
  std::optional<alloc_counter::Scope> window;
  const std::uint64_t total = warmup + frames;

  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::uint64_t f = 0; f < total; ++f) {
          if (f == warmup) window.emplace();
          PooledBuffer b = co_await daq_pool::async_acquire(pool, asio::use_awaitable);
          std::memset(b.data(), static_cast<int>(f & 0xFF), frame_bytes);
          b.set_size(frame_bytes);
          co_await views.async_send(error_code{}, std::move(b).freeze(), asio::use_awaitable);
        }
        r.allocations = window->total();
        r.frames = frames;
        views.close();
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::array<Bytes, pool_size> ring{};
        std::size_t next = 0, held = 0;
        for (std::uint64_t f = 0;; ++f) {
          auto [ec, v] = co_await views.async_receive(asio::experimental::as_tuple(asio::use_awaitable));
          if (ec) break;
          const auto want = static_cast<std::byte>(f & 0xFF);
          if (v.size() != frame_bytes || v.data()[0] != want || v.data()[frame_bytes - 1] != want) ++r.bad;
          if (!hold) continue;  // dropped here: the buffer returns
          ring[next] = std::move(v);
          next = (next + 1) % pool_size;
          if (++held < pool_size) continue;
          // All 8 held: let the producer run (and wait), then drop the oldest.
          co_await asio::post(asio::use_awaitable);
          ring[next].reset();
          --held;
        }
      },
      asio::detached);
  Runner runner(io, threads, false);
  runner.finish();
  return r;
}

}  // namespace

TEST_CASE("coroutine hand-off loop: zero allocations per frame after warm-up") {
  test_support::Watchdog dog("asio zero allocation", std::chrono::seconds(120));
  const std::uint64_t warmup = 200, frames = test_support::scaled(20000);
  struct Case {
    std::size_t threads;
    bool hold;
    const char* what;
  };
  for (const Case c : {Case{1, false, "1 thread, immediate"}, Case{1, true, "1 thread, acquisitions wait"},
                       Case{2, false, "2 threads, immediate"}, Case{2, true, "2 threads, acquisitions wait"}}) {
    INFO(c.what);
    const Result r = run_loop(c.threads, c.hold, warmup, frames);
    CHECK(r.bad == 0);
    CHECK(r.frames == frames);
    if (!alloc_counter::enabled) {
      WARN("allocations are not counted in this build (sanitizer): loop run, count not checked");
    } else if (c.threads == 1) {
      CHECK(r.allocations == 0);
    } else {
      // Two threads: daq_pool's side still allocates nothing (its operation
      // states come from asio's recycling allocator), but asio's own
      // per-thread caches of freed blocks miss when a block freed on one
      // thread is wanted, bigger, on the other: measured 0-10 in 20000
      // frames on a quiet machine, up to ~2 % with other jobs on both cores
      // (threads migrate more). A per-frame allocation anywhere would be
      // 20000 or more.
      INFO("allocations in " << frames << " frames: " << r.allocations);
      CHECK(r.allocations * 10 <= frames);
    }
  }
}

TEST_CASE("the counter sees allocations (positive control)") {
  if (!alloc_counter::enabled) return;
  alloc_counter::Scope window;
  auto* p = new int(3);
  delete p;
  CHECK(window.total() >= 1);
}
