// The asio example of docs/asio.md: an acquisition loop as a coroutine. It waits for
// a free buffer without holding a thread (at most 50 ms, as a camera SDK's
// ring allows), fills it with a frame, freezes it, and hands one view each to
// two consumer coroutines (a "disk writer" and a "preview"); the buffer
// returns to the pool when the slower of the two drops its view. Then
// close() ends the loop: the pending acquisition completes with
// daq_pool::errc::pool_closed. One io_context, two threads.
#include <daq_pool/asio.hpp>
#include <daq_pool/daq_pool.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using Views = asio::experimental::concurrent_channel<void(daq_pool::asio_error_code, daq_pool::Bytes)>;

namespace {

constexpr std::size_t frame_bytes = 64 * 1024;
constexpr std::uint64_t frames = 2000;

struct Counters {
  std::atomic<std::uint64_t> produced{0}, dropped{0}, written{0}, previewed{0};
};

/// The acquisition loop: one frame per iteration until the pool closes.
awaitable<void> acquire_frames(daq_pool::BufferPool& pool, Views& disk, Views& preview, Counters& n) {
  for (std::uint64_t frame = 0;; ++frame) {
    // Suspends (no thread blocked) until a buffer is free, 50 ms at most.
    auto [ec, buffer] = co_await daq_pool::async_try_acquire_for(pool, 50ms, as_tuple(use_awaitable));
    if (ec == daq_pool::errc::pool_closed) break;  // close(): the end of the run
    if (!buffer) {                                 // no buffer within 50 ms: drop the frame
      ++n.dropped;
      continue;
    }
    std::memset(buffer->data(), static_cast<int>(frame & 0xFF), frame_bytes);  // "the SDK's frame"
    buffer->set_size(frame_bytes);
    daq_pool::Bytes view = std::move(*buffer).freeze();  // zero-copy, refcounted
    co_await disk.async_send({}, view, use_awaitable);   // a copy of the view: one increment
    co_await preview.async_send({}, std::move(view), use_awaitable);
    ++n.produced;
  }
  disk.close();
  preview.close();
}

/// A consumer: receives views and drops them when done. The last drop of a
/// frame returns its buffer to the pool and, if the acquisition loop waits,
/// hands the buffer to it (its resumption is posted, never run here).
awaitable<void> consume(Views& views, std::atomic<std::uint64_t>& count) {
  for (;;) {
    auto [ec, view] = co_await views.async_receive(as_tuple(use_awaitable));
    if (ec) break;  // the channel was closed
    if (view.size() == frame_bytes) ++count;
  }
}

}  // namespace

int main() {
  asio::io_context io;
  daq_pool::BufferPool pool(4, frame_bytes);
  Views disk(io, 0), preview(io, 0);  // unbuffered: each send meets a receive
  Counters n;
  asio::co_spawn(io, acquire_frames(pool, disk, preview, n), asio::detached);
  asio::co_spawn(io, consume(disk, n.written), asio::detached);
  asio::co_spawn(io, consume(preview, n.previewed), asio::detached);

  // Stop after `frames` frames: close() completes the loop's pending wait.
  asio::steady_timer poll(io);
  std::function<void()> watch = [&] {
    if (n.produced.load() >= frames) return pool.close();
    poll.expires_after(1ms);
    poll.async_wait([&](auto) { watch(); });
  };
  watch();

  std::thread second([&] { io.run(); });
  io.run();
  second.join();

  std::printf("produced %llu frames (%llu dropped), written %llu, previewed %llu, %zu of %zu buffers free\n",
              static_cast<unsigned long long>(n.produced.load()), static_cast<unsigned long long>(n.dropped.load()),
              static_cast<unsigned long long>(n.written.load()), static_cast<unsigned long long>(n.previewed.load()),
              pool.available(), pool.size());
  const bool ok =
      n.produced >= frames && n.written == n.produced && n.previewed == n.produced && pool.available() == pool.size();
  return ok ? 0 : 1;
}
