// No reuse while any view lives. A producer writes a sequence number and a
// pattern derived from it into every frame of a pool of 3 buffers, and fans
// the views out to consumer threads that hold them for random times, slice
// them, and verify every byte of every view and slice, again right before
// dropping them. A buffer handed out again while some view still lives is
// overwritten with another frame's pattern: the check fails (and TSan sees
// the race).
#include <daq_pool/buffer_pool.hpp>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

namespace {

constexpr std::size_t capacity = 4096;
constexpr std::size_t header = 8;  // the sequence number

/// Frame `seq`'s length and byte `i` (i >= header): both derived from seq, so
/// any view can be checked on its own.
std::size_t frame_length(std::uint64_t seq) noexcept { return header + (seq * 2654435761u) % (capacity - header + 1); }
std::uint8_t frame_byte(std::uint64_t seq, std::size_t i) noexcept {
  return static_cast<std::uint8_t>((seq * 167) ^ (i * 31) ^ (i >> 7));
}

std::uint64_t read_seq(const std::byte* p) noexcept {
  std::uint64_t s = 0;
  std::memcpy(&s, p, sizeof s);
  return s;
}

/// A view of frame `seq` starting at byte `offset` of the frame: every byte
/// must be the frame's. Returns the number of wrong bytes.
std::size_t verify(const Bytes& v, std::uint64_t seq, std::size_t offset) noexcept {
  std::size_t wrong = 0;
  for (std::size_t k = 0; k < v.size(); ++k) {
    const std::size_t i = offset + k;
    if (i < header) {
      std::uint64_t s = seq;
      std::uint8_t want = 0;
      std::memcpy(&want, reinterpret_cast<const std::byte*>(&s) + i, 1);
      if (std::to_integer<std::uint8_t>(v[k]) != want) ++wrong;
    } else if (std::to_integer<std::uint8_t>(v[k]) != frame_byte(seq, i)) {
      ++wrong;
    }
  }
  return wrong;
}

struct Held {
  Bytes view;
  std::uint64_t seq;
  std::size_t offset;  // of view within the frame
};

/// A plain locked queue of views (allocation is fine in this test).
class Channel {
 public:
  void push(Bytes v) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(v));
    }
    cv_.notify_one();
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    cv_.notify_one();
  }
  /// A view if one is queued; nothing if none (and !wait), or closed and drained.
  bool pop(Bytes& out, bool wait) {
    std::unique_lock lock(mutex_);
    if (wait) cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }
  bool closed_and_empty() {
    std::lock_guard lock(mutex_);
    return closed_ && queue_.empty();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Bytes> queue_;
  bool closed_ = false;
};

}  // namespace

TEST_CASE("no buffer is reused while any view of it lives") {
  test_support::Watchdog dog("no reuse while any view lives", std::chrono::seconds(120));
  constexpr std::size_t consumers = 2;
  const std::uint64_t frames = test_support::scaled(16000);
  BufferPool pool(3, capacity);

  std::vector<Channel> channels(consumers);
  std::atomic<std::uint64_t> wrong{0};
  std::atomic<std::uint64_t> views_checked{0};
  std::atomic<std::uint64_t> out_of_order{0};
  std::atomic<std::uint64_t> max_held{0};
  test_support::StartGate gate(consumers + 1);

  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937_64 rng(c * 7919 + 1);
      std::deque<Held> held;
      std::uint64_t next_seq = 0;
      std::uint64_t local_wrong = 0;
      auto drop_oldest = [&] {
        // Checked again right before the drop: a premature reuse between
        // receipt and now has overwritten the bytes.
        const Held& h = held.front();
        local_wrong += verify(h.view, h.seq, h.offset);
        views_checked.fetch_add(1, std::memory_order_relaxed);
        held.pop_front();
      };
      gate.arrive_and_wait();
      for (;;) {
        Bytes v;
        // Wait for a frame only when holding nothing: a consumer that holds
        // views while the producer waits for a buffer would deadlock both.
        if (!channels[c].pop(v, held.empty())) {
          if (!held.empty()) {
            drop_oldest();
            continue;
          }
          break;  // closed and drained
        }
        const std::uint64_t seq = read_seq(v.data());
        if (seq != next_seq) out_of_order.fetch_add(1, std::memory_order_relaxed);
        next_seq = seq + 1;
        if (v.size() != frame_length(seq)) ++local_wrong;
        local_wrong += verify(v, seq, 0);
        views_checked.fetch_add(1, std::memory_order_relaxed);

        // Keep a random slice (and sometimes the whole view, or a copy of a
        // copy) for a random number of later frames.
        const std::size_t off = rng() % (v.size() + 1);
        const std::size_t len = rng() % (v.size() - off + 1);
        Bytes s = v.slice(off, len);
        local_wrong += verify(s, seq, off);
        held.push_back({std::move(s), seq, off});
        if (rng() % 4 == 0) held.push_back({Bytes(v), seq, 0});
        v.reset();
        const std::size_t keep = rng() % 4;  // 0..3 views held on
        while (held.size() > keep) drop_oldest();
        std::uint64_t m = max_held.load(std::memory_order_relaxed);
        while (held.size() > m && !max_held.compare_exchange_weak(m, held.size())) {
        }
        if (rng() % 16 == 0) std::this_thread::yield();
      }
      wrong.fetch_add(local_wrong, std::memory_order_relaxed);
    });
  }

  gate.arrive_and_wait();
  std::mt19937_64 rng(42);
  for (std::uint64_t seq = 0; seq < frames; ++seq) {
    PooledBuffer b = pool.acquire();
    if (b.size() != 0) wrong.fetch_add(1);  // reuse is clean
    const std::size_t len = frame_length(seq);
    std::byte* p = b.get_mut().data();
    std::memcpy(p, &seq, header);
    for (std::size_t i = header; i < len; ++i) p[i] = std::byte{frame_byte(seq, i)};
    b.set_size(len);
    Bytes v = std::move(b).freeze();
    for (auto& ch : channels) ch.push(v);
    // Sometimes the producer keeps its view until after the next acquire.
    if (rng() % 8 == 0) std::this_thread::yield();
  }
  for (auto& ch : channels) ch.close();
  for (auto& t : threads) t.join();
  dog.dismiss();

  INFO("views checked " << views_checked.load() << ", most held by one consumer " << max_held.load());
  CHECK(wrong.load() == 0);
  CHECK(out_of_order.load() == 0);
  CHECK(views_checked.load() >= 2 * frames * consumers);
  CHECK(max_held.load() >= 2);
  CHECK(pool.available() == 3);
  const auto st = pool.stats();
  CHECK(st.acquires == frames);
  CHECK(st.releases == frames);
  CHECK(st.high_water == 3);  // the pool was exhausted: reuse was heavy
}

TEST_CASE("views dropped on many threads at once return each buffer exactly once") {
  test_support::Watchdog dog("concurrent last drops", std::chrono::seconds(120));
  const std::size_t rounds = test_support::scaled(3000);
  constexpr std::size_t threads_n = 3;
  BufferPool pool(2, 256);
  std::vector<Bytes> slots(threads_n);
  std::atomic<std::size_t> round_ready{0};
  std::atomic<std::size_t> done{0};
  std::atomic<std::uint64_t> wrong{0};

  test_support::run_threads(threads_n + 1, [&](std::size_t t) {
    for (std::size_t r = 1; r <= rounds; ++r) {
      if (t == threads_n) {  // the producer
        while (done.load(std::memory_order_acquire) != (r - 1) * threads_n) std::this_thread::yield();
        PooledBuffer b = pool.acquire();
        std::memset(b.get_mut().data(), static_cast<int>(r & 0xFF), 256);
        b.set_size(256);
        Bytes v = std::move(b).freeze();
        for (auto& s : slots) s = v;
        round_ready.store(r, std::memory_order_release);
      } else {
        while (round_ready.load(std::memory_order_acquire) != r) std::this_thread::yield();
        Bytes mine = std::move(slots[t]);
        for (std::byte x : mine) {
          if (x != std::byte(r & 0xFF)) wrong.fetch_add(1);
        }
        mine.reset();  // three threads race for the last decrement
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  });
  dog.dismiss();
  CHECK(wrong.load() == 0);
  CHECK(pool.available() == 2);
  const auto st = pool.stats();
  CHECK(st.acquires == rounds);
  CHECK(st.releases == rounds);
}
