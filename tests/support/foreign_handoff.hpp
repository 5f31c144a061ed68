// What the C-library integration tests share (FFmpeg's AVBufferRef,
// GStreamer's GstBuffer, ...): patterned pool frames, the message of an
// expected std::invalid_argument, and the two-consumer stress in which
// every frame is wrapped once per consumer thread while the producer keeps
// reusing the pool's few buffers.
#pragma once

#include <daq_pool/buffer_pool.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "threads.hpp"
#include "watchdog.hpp"

namespace test_support {

/// A frozen view of one buffer of `pool`: `n` bytes, byte i = (seed + i) & 0xFF.
/// Waits while every buffer is out.
inline daq_pool::Bytes patterned_frame(daq_pool::BufferPool& pool, std::size_t n, unsigned seed) {
  daq_pool::PooledBuffer b = pool.acquire();
  auto* p = reinterpret_cast<unsigned char*>(b.data());
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>((seed + i) & 0xFF);
  b.set_size(n);
  return std::move(b).freeze();
}

/// True if the `n` bytes at `p` are patterned_frame's pattern for `seed`.
inline bool holds_pattern(const std::uint8_t* p, std::size_t n, unsigned seed) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != static_cast<std::uint8_t>((seed + i) & 0xFF)) return false;
  return true;
}

/// The message of the std::invalid_argument `f` throws ("" if none).
template <class F>
std::string invalid_argument_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

/// What wrapped_views_stress saw.
struct StressResult {
  std::size_t frames = 0;            ///< frames produced
  std::size_t received[2] = {0, 0};  ///< handles each consumer got
  std::size_t bad = 0;               ///< handles whose bytes were not their frame's
  std::size_t available_after = 0;   ///< pool.available() once both consumers are done
  std::uint64_t releases_after = 0;  ///< pool.stats().releases then
  std::size_t buffers = 0;           ///< pool.size()
};

/// 3 buffers of 2 KiB, 2 consumer threads: every frame is wrapped twice by
/// `wrap(const Bytes&) -> Handle` (the C library's reference, e.g. an
/// AVBufferRef*) and handed to both consumers through mutex-protected
/// queues; each consumer calls `check(Handle, bytes, seed) -> bool` (read
/// every byte) and then `release(Handle)` (the library's unref), at varying
/// moments, so that either may drop the last reference and return the
/// buffer on its thread. A buffer handed out again while a handle still
/// lived would hold a later frame: `bad` counts those.
template <class Handle, class Wrap, class Check, class Release>
StressResult wrapped_views_stress(const char* name, Wrap wrap, Check check, Release release) {
  constexpr std::size_t buffers = 3;
  constexpr std::size_t bytes = 2048;
  StressResult result;
  result.frames = scaled(4000);
  result.buffers = buffers;
  daq_pool::BufferPool pool(buffers, bytes);
  const Watchdog watchdog(name, std::chrono::seconds(120));

  struct Item {
    Handle handle;
    unsigned seed;
  };
  struct Queue {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Item> items;
    bool done = false;
  };
  Queue queues[2];
  std::size_t bad[2] = {0, 0};
  std::vector<std::thread> consumers;
  for (std::size_t c = 0; c < 2; ++c) {
    consumers.emplace_back([&, c] {
      Queue& q = queues[c];
      for (;;) {
        Item item{};
        {
          std::unique_lock lock(q.mutex);
          q.ready.wait(lock, [&] { return q.done || !q.items.empty(); });
          if (q.items.empty()) return;
          item = q.items.front();
          q.items.pop_front();
        }
        if (!check(item.handle, bytes, item.seed)) ++bad[c];
        ++result.received[c];
        if ((item.seed + c) % 5 == 0) std::this_thread::yield();  // vary which consumer is last
        release(item.handle);
      }
    });
  }
  for (std::size_t f = 0; f < result.frames; ++f) {
    const auto seed = static_cast<unsigned>(f * 31);
    const daq_pool::Bytes view = patterned_frame(pool, bytes, seed);  // waits while the consumers hold all 3
    for (Queue& q : queues) {
      Handle handle = wrap(view);
      {
        std::lock_guard lock(q.mutex);
        q.items.push_back({handle, seed});
      }
      q.ready.notify_one();
    }
  }
  for (Queue& q : queues) {
    {
      std::lock_guard lock(q.mutex);
      q.done = true;
    }
    q.ready.notify_one();
  }
  for (auto& t : consumers) t.join();
  result.bad = bad[0] + bad[1];
  result.available_after = pool.available();
  result.releases_after = pool.stats().releases;
  return result;
}

}  // namespace test_support
