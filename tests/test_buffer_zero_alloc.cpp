// The zero-allocation proof: acquire, fill, freeze, copy, slice, move views to
// consumer threads, and drop the last view there: 0 calls to operator new and
// 0 to malloc, counted process-wide (every thread). Bytes::copy_from, the one
// allocating path, allocates exactly once.
#include <daq_pool/buffer_pool.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

/// A one-view mailbox that never allocates: the producer puts a view in when
/// it is empty, the consumer takes it out.
struct Mailbox {
  std::atomic<int> full{0};
  Bytes view;

  void put(Bytes&& v, const std::atomic<bool>& stop) noexcept {
    // acquire: pairs with the consumer's release after it moved the view out.
    while (full.load(std::memory_order_acquire) != 0 && !stop.load(std::memory_order_relaxed))
      std::this_thread::yield();
    view = std::move(v);
    full.store(1, std::memory_order_release);  // pairs with the acquire in take()
  }
  bool take(Bytes& out) noexcept {
    if (full.load(std::memory_order_acquire) == 0) return false;
    out = std::move(view);
    full.store(0, std::memory_order_release);
    return true;
  }
};

std::uint8_t expected(std::uint64_t frame, std::size_t i) noexcept {
  return static_cast<std::uint8_t>(frame * 31 + i * 7 + (i >> 8));
}

}  // namespace

TEST_CASE("acquire to last drop allocates nothing, on any thread") {
  if (!alloc_counter::enabled) {
    WARN("allocations are not counted in this build (sanitizer): skipped");
    return;
  }
  constexpr std::size_t consumers = 2;
  constexpr std::size_t capacity = 64 * 1024;
  const std::size_t frames = test_support::scaled(4000);

  // Everything that allocates happens before the counting window: the pool,
  // the threads, the watchdog, the source frame.
  test_support::Watchdog dog("zero allocation", std::chrono::seconds(120));
  BufferPool pool(3, capacity);
  std::vector<std::uint8_t> sdk(capacity);
  Mailbox boxes[consumers];
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0};
  std::atomic<std::uint64_t> checked{0};
  std::atomic<std::uint64_t> last_drops{0};  // drops that returned the buffer (consumer side)
  test_support::StartGate gate(consumers + 1);

  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      gate.arrive_and_wait();
      Bytes held;
      for (;;) {
        Bytes v;
        if (!boxes[c].take(v)) {
          if (stop.load(std::memory_order_acquire) && boxes[c].full.load(std::memory_order_acquire) == 0) break;
          std::this_thread::yield();
          continue;
        }
        const std::uint64_t frame = std::to_integer<std::uint64_t>(v[0]) | std::to_integer<std::uint64_t>(v[1]) << 8;
        for (std::size_t i = 2; i < v.size(); ++i) {
          if (std::to_integer<std::uint8_t>(v[i]) != expected(frame, i)) bad.fetch_add(1);
        }
        Bytes copy = v;                                       // copy
        Bytes part = copy.slice(v.size() / 2, v.size() / 4);  // slice
        if (part.size() != v.size() / 4) bad.fetch_add(1);
        Bytes moved = std::move(copy);  // move
        swap(moved, held);              // keep one frame a little longer
        v.reset();
        part.reset();
        if (moved.use_count() == 1) last_drops.fetch_add(1);
        moved.reset();  // often the last view: the buffer returns from here
        checked.fetch_add(1);
      }
      held.reset();
    });
  }

  gate.arrive_and_wait();
  alloc_counter::Scope window;
  for (std::uint64_t f = 0; f < frames; ++f) {
    sdk[0] = static_cast<std::uint8_t>(f);
    sdk[1] = static_cast<std::uint8_t>(f >> 8);
    const std::size_t len = 1024 + (f * 4099) % (capacity - 1024);
    for (std::size_t i = 2; i < len; i += 997) sdk[i] = expected(f & 0xFFFF, i);  // a few changed bytes per frame
    PooledBuffer b = (f % 2 == 0) ? pool.acquire() : *pool.try_acquire_for(std::chrono::hours(1));
    b.copy_from_ptr(sdk.data(), len);
    for (std::size_t i = 2; i < len; ++i) b.data()[i] = std::byte{expected(f & 0xFFFF, i)};
    Bytes v = std::move(b).freeze();
    for (std::size_t c = 0; c < consumers; ++c) boxes[c].put(Bytes(v), stop);
    if (f % 8 == 0) {
      // The sole-owner round trip allocates nothing either.
      Bytes solo = pool.acquire().freeze();
      auto again = std::move(solo).try_into_mut();
      if (!again) bad.fetch_add(1);
    }
  }  // the producer's own view drops here, usually before the consumers'
  stop.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  const std::uint64_t news = window.news();
  const std::uint64_t mallocs = window.mallocs();
  dog.dismiss();

  CHECK(news == 0);
  CHECK(mallocs == 0);
  CHECK(bad.load() == 0);
  CHECK(checked.load() == frames * consumers);
  CHECK(last_drops.load() > 0);  // the last drop did happen on consumer threads
  CHECK(pool.available() == 3);
  const auto st = pool.stats();
  CHECK(st.acquires == st.releases);
}

TEST_CASE("Bytes::copy_from, the heap fallback, allocates exactly once; its copies never") {
  if (!alloc_counter::enabled) {
    WARN("allocations are not counted in this build (sanitizer): skipped");
    return;
  }
  std::vector<std::byte> src(100000, std::byte{9});
  std::uint64_t total = 0;
  std::uint64_t after_copy = 0;
  {
    alloc_counter::Scope window;
    Bytes h = Bytes::copy_from(src);
    after_copy = window.total();
    Bytes c = h;
    Bytes s = c.slice(10, 10);
    Bytes m = std::move(c);
    total = window.total();
  }
  CHECK(after_copy == 1);
  CHECK(total == 1);
}
