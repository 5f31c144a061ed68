// Bytes raw handles (into_raw / release_raw / from_raw), the mechanism behind
// every C-callback integration: a view moved into a `void*`, dropped later
// on another thread, or turned back into a view. Ownership (one reference per
// handle, consumed exactly once), range checks, zero allocation for pooled
// views, and release from many threads while the producer keeps reusing
// buffers (no buffer reused while a handle lives).
#include <daq_pool/buffer_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

namespace {

/// A frozen view of one buffer of `pool` holding `n` bytes of `fill`.
Bytes frozen(BufferPool& pool, std::size_t n, unsigned char fill) {
  PooledBuffer b = pool.acquire();
  std::memset(b.data(), fill, n);
  b.set_size(n);
  return std::move(b).freeze();
}

}  // namespace

TEST_CASE("into_raw moves the reference out; release_raw drops it, the last one returns the buffer") {
  BufferPool pool(2, 256);
  Bytes v = frozen(pool, 100, 0x5A);
  Bytes other = v;
  const std::byte* data = v.data();
  REQUIRE(v.use_count() == 2);

  void* raw = std::move(v).into_raw();
  CHECK(raw != nullptr);
  CHECK(v.empty());
  CHECK(v.data() == nullptr);
  CHECK(v.use_count() == 0);
  CHECK(other.use_count() == 2);  // the handle still counts
  CHECK(pool.available() == 1);

  other.reset();
  CHECK(pool.available() == 1);  // the handle alone keeps the buffer out
  CHECK(static_cast<unsigned char>(data[99]) == 0x5A);

  Bytes::release_raw(raw);
  CHECK(pool.available() == 2);
}

TEST_CASE("from_raw gives the view back: the whole storage, or a part of it") {
  BufferPool pool(1, 256);
  Bytes v = frozen(pool, 64, 0x11);
  const std::byte* data = v.data();

  SECTION("whole") {
    Bytes back = Bytes::from_raw(std::move(v).into_raw());
    CHECK(back.data() == data);
    CHECK(back.size() == 64);
    CHECK(back.use_count() == 1);
    CHECK(back.is_pooled());
    // The only view again: it can become writable.
    auto mut = std::move(back).try_into_mut();
    REQUIRE(mut);
    CHECK(mut->data() == data);
  }
  SECTION("a slice comes back as the same slice") {
    Bytes slice = v.slice(8, 16);
    v.reset();
    const std::byte* at = slice.data();
    void* raw = std::move(slice).into_raw();
    Bytes back = Bytes::from_raw(raw, std::span<const std::byte>(at, 16));
    CHECK(back.data() == data + 8);
    CHECK(back.size() == 16);
    CHECK(back.use_count() == 1);
    CHECK(pool.available() == 0);
  }
  SECTION("an empty part consumes the handle and holds nothing") {
    void* raw = std::move(v).into_raw();
    Bytes back = Bytes::from_raw(raw, std::span<const std::byte>(data + 64, 0));
    CHECK(back.empty());
    CHECK(back.use_count() == 0);
    CHECK(pool.available() == 1);
  }
  SECTION("a part outside the storage throws and leaves the handle intact") {
    void* raw = std::move(v).into_raw();
    CHECK_THROWS_AS(Bytes::from_raw(raw, std::span<const std::byte>(data + 60, 5)), std::out_of_range);
    CHECK_THROWS_AS(Bytes::from_raw(raw, std::span<const std::byte>(data - 1, 2)), std::out_of_range);
    std::byte elsewhere[4]{};
    CHECK_THROWS_AS(Bytes::from_raw(raw, std::span<const std::byte>(elsewhere, 4)), std::out_of_range);
    try {
      (void)Bytes::from_raw(raw, std::span<const std::byte>(data, 65));
      FAIL("no exception");
    } catch (const std::out_of_range& e) {
      CHECK(std::string(e.what()).find("65 bytes") != std::string::npos);
      CHECK(std::string(e.what()).find("64 bytes") != std::string::npos);
    }
    CHECK(pool.available() == 0);  // still held by the handle
    Bytes::release_raw(raw);
    CHECK(pool.available() == 1);
  }
  CHECK(pool.available() == 1);
}

TEST_CASE("raw handles of empty views and heap copies") {
  Bytes empty;
  CHECK(std::move(empty).into_raw() == nullptr);
  Bytes::release_raw(nullptr);  // a no-op
  CHECK(Bytes::from_raw(nullptr).empty());
  CHECK(Bytes::from_raw(nullptr, {}).empty());
  std::byte one{1};
  CHECK_THROWS_AS(Bytes::from_raw(nullptr, std::span<const std::byte>(&one, 1)), std::out_of_range);

  const std::vector<std::byte> src(300, std::byte{0x77});
  Bytes heap = Bytes::copy_from(src);
  const std::byte* data = heap.data();
  void* raw = std::move(heap).into_raw();
  Bytes back = Bytes::from_raw(raw);
  CHECK(back.data() == data);
  CHECK(back.size() == 300);
  CHECK(!back.is_pooled());
  CHECK(back == Bytes::copy_from(src));
  Bytes part = Bytes::from_raw(std::move(back).into_raw(), std::span<const std::byte>(data + 100, 200));
  CHECK(part.size() == 200);
  // Released through the handle: ASan's leak check sees the block freed.
  Bytes::release_raw(std::move(part).into_raw());
}

TEST_CASE("raw handles of pooled views allocate nothing") {
  if (!alloc_counter::enabled) {
    WARN("allocations are not counted in this build (sanitizer): skipped");
    return;
  }
  BufferPool pool(2, 4096);
  Bytes warm = frozen(pool, 10, 1);  // first use of every path before counting
  Bytes::release_raw(std::move(warm).into_raw());
  const alloc_counter::Scope scope;
  for (int i = 0; i < 1000; ++i) {
    Bytes v = frozen(pool, 4096, static_cast<unsigned char>(i));
    Bytes copy = v;
    void* raw = std::move(copy).into_raw();
    Bytes back = Bytes::from_raw(raw, v.span().subspan(10, 100));
    void* again = std::move(back).into_raw();
    Bytes::release_raw(again);
  }
  CHECK(scope.total() == 0);
  CHECK(pool.available() == 2);
}

TEST_CASE("handles released on other threads while the producer reuses every buffer") {
  // 3 buffers, 2 releasing threads: each frame's views leave as raw handles
  // through a fixed ring; a releaser checks the frame's bytes (the producer
  // would overwrite a buffer reused too early) and drops the handle.
  constexpr std::size_t buffers = 3;
  constexpr std::size_t capacity = 4096;
  constexpr std::size_t releasers = 2;
  const std::uint64_t frames = test_support::scaled(20000);
  BufferPool pool(buffers, capacity);
  const test_support::Watchdog watchdog("raw handle stress", std::chrono::seconds(120));

  struct Handoff {
    std::atomic<int> full{0};
    void* raw = nullptr;
    const std::byte* data = nullptr;
    std::uint64_t frame = 0;
  };
  std::vector<Handoff> slots(releasers * 4);
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> bad{0}, released{0};

  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < releasers; ++t) {
    threads.emplace_back([&, t] {
      for (;;) {
        bool any = false;
        for (std::size_t i = t; i < slots.size(); i += releasers) {
          Handoff& h = slots[i];
          // acquire: pairs with the producer's release store of `full`.
          if (h.full.load(std::memory_order_acquire) == 0) continue;
          any = true;
          const auto expect = static_cast<std::byte>(h.frame & 0xFF);
          if (h.data[0] != expect || h.data[capacity - 1] != expect) bad.fetch_add(1);
          void* raw = h.raw;
          h.full.store(0, std::memory_order_release);
          Bytes::release_raw(raw);
          released.fetch_add(1, std::memory_order_relaxed);
        }
        if (!any) {
          if (done.load(std::memory_order_acquire)) {
            bool empty = true;
            for (std::size_t i = t; i < slots.size(); i += releasers) empty = empty && slots[i].full.load() == 0;
            if (empty) return;
          }
          std::this_thread::yield();
        }
      }
    });
  }

  std::uint64_t sent = 0;
  for (std::uint64_t f = 0; f < frames; ++f) {
    Bytes v = frozen(pool, capacity, static_cast<unsigned char>(f & 0xFF));
    // Two handles per frame, to two different releasers.
    for (std::size_t k = 0; k < releasers; ++k) {
      Handoff& h = slots[(f * releasers + k) % slots.size()];
      while (h.full.load(std::memory_order_acquire) != 0) std::this_thread::yield();
      h.data = v.data();
      h.frame = f;
      h.raw = Bytes(v).into_raw();
      h.full.store(1, std::memory_order_release);
      ++sent;
    }
  }
  done.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  CHECK(released.load() == sent);
  CHECK(pool.available() == buffers);
  const auto st = pool.stats();
  CHECK(st.acquires == frames);
  CHECK(st.releases == frames);
}
