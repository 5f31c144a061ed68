// Soak (issue 6): a frame-pipeline workload on a BufferPool and a Pool<T> at
// once, with random hold times, for a bounded time, under a watchdog; then a
// shutdown under load (close() while threads wait). Checks every byte every
// consumer sees, exclusive ownership of every loan, and that every slot and
// buffer is back at the end.
//
// Duration: 60 s in a ThreadSanitizer build (the soak), 3 s in any
// other; DAQ_POOL_SOAK_SECONDS in the environment overrides it (e.g. 3600 for
// an overnight run). Nothing here asserts on timing.
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

#if defined(__SANITIZE_THREAD__)
#define DAQ_POOL_SOAK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DAQ_POOL_SOAK_TSAN 1
#endif
#endif

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::Pool;

namespace {

#if defined(DAQ_POOL_SOAK_TSAN)
constexpr long default_seconds = 60;
#else
constexpr long default_seconds = 3;
#endif

long soak_seconds() {
  // Read once, before any thread starts.
  if (const char* s = std::getenv("DAQ_POOL_SOAK_SECONDS")) {  // NOLINT(concurrency-mt-unsafe)
    const long n = std::atol(s);
    if (n > 0) return n;
  }
  return default_seconds;
}

/// The byte at offset `i` of frame `seq`: every byte depends on both, so a
/// buffer overwritten by a later frame (a premature reuse) is caught at any
/// offset.
std::byte pattern(std::uint64_t seq, std::size_t i) noexcept {
  return static_cast<std::byte>((seq * 131 + i * 7 + (seq >> 8)) & 0xFF);
}

/// A bounded queue of views between the pipeline's stages (allocates; the
/// soak is about correctness, not allocation).
class ViewQueue {
 public:
  explicit ViewQueue(std::size_t capacity) : capacity_(capacity) {}
  bool push(Bytes v) {
    std::unique_lock lock(m_);
    not_full_.wait(lock, [&] { return q_.size() < capacity_ || closed_; });
    if (closed_) return false;
    q_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }
  std::optional<Bytes> pop() {
    std::unique_lock lock(m_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    Bytes v = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }
  void close() {
    std::lock_guard lock(m_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Bytes> q_;
  std::size_t capacity_;
  bool closed_ = false;
};

/// The first failure seen by any worker thread (Catch2's assertions are for
/// the main thread only); checked after the join.
struct Failures {
  std::mutex m;
  std::string first;
  std::atomic<int> count{0};
  void report(std::string what) {
    if (count.fetch_add(1) == 0) {
      std::lock_guard lock(m);
      first = std::move(what);
    }
  }
};
Failures failures;

/// Verifies a whole frame view; returns its sequence number.
std::uint64_t verify_frame(const Bytes& v) {
  std::uint64_t seq = 0;
  if (v.size() < sizeof seq) {
    failures.report("a frame view shorter than its header");
    return 0;
  }
  std::memcpy(&seq, v.data(), sizeof seq);
  for (std::size_t i = sizeof seq; i < v.size(); ++i)
    if (v[i] != pattern(seq, i)) {
      failures.report("frame " + std::to_string(seq) + ": byte " + std::to_string(i) + " changed while a view held it");
      break;
    }
  return seq;
}

void hold(std::mt19937& rng) {
  const unsigned r = rng() % 100;
  if (r < 60) return;  // most frames move straight on
  if (r < 90) {
    std::this_thread::yield();
    return;
  }
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
}

struct Item {
  std::uint64_t owner = 0;  // who holds it (0: nobody)
  std::uint64_t uses = 0;
};

}  // namespace

TEST_CASE("soak: frame pipeline on a BufferPool plus Pool<T> churn, then shutdown under load") {
  const long seconds = soak_seconds();
  std::printf("soak: %ld s\n", seconds);
  std::fflush(stdout);
  test_support::Watchdog watchdog("soak", std::chrono::seconds(seconds + 120));

  constexpr std::size_t buffers = 3;
  constexpr std::size_t capacity = 2048;
  BufferPool frames(buffers, capacity);
  // One item for three users (growing to two): they contend and wait.
  Pool<Item> items(
      1, [] { return Item{}; }, [](Item& it) { it.owner = 0; }, daq_pool::PoolOptions{2});
  ViewQueue to_writer(4), to_analysis(4);

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> produced{0}, written{0}, analysed{0}, dropped{0}, item_cycles{0}, closed_seen{0};
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);

  std::vector<std::thread> threads;
  // Camera: acquires (blocking, timed or non-blocking with the heap
  // fallback), fills, freezes, fans out one view to each consumer.
  threads.emplace_back([&] {
    std::mt19937 rng(1);
    std::uint64_t seq = 0;
    while (!stop.load()) {
      std::optional<daq_pool::PooledBuffer> b;
      const unsigned mode = rng() % 4;
      try {
        if (mode == 0)
          b.emplace(frames.acquire());
        else if (mode == 1)
          b = frames.try_acquire_for(std::chrono::microseconds(rng() % 500));
        else
          b = frames.try_acquire();
      } catch (const daq_pool::pool_closed&) {
        closed_seen.fetch_add(1);
        break;
      }
      ++seq;
      const std::size_t len = sizeof seq + rng() % (capacity - sizeof seq + 1);
      Bytes frame;
      if (b) {
        auto span = b->get_mut();
        std::memcpy(span.data(), &seq, sizeof seq);
        for (std::size_t i = sizeof seq; i < len; ++i) span[i] = pattern(seq, i);
        b->set_size(len);
        frame = std::move(*b).freeze();
      } else if (mode == 3) {
        // Exhausted: keep the frame on the heap (the documented fallback).
        std::vector<std::byte> tmp(len);
        std::memcpy(tmp.data(), &seq, sizeof seq);
        for (std::size_t i = sizeof seq; i < len; ++i) tmp[i] = pattern(seq, i);
        frame = Bytes::copy_from(tmp);
      } else {
        dropped.fetch_add(1);
        continue;
      }
      produced.fetch_add(1);
      if (!to_writer.push(frame) || !to_analysis.push(std::move(frame))) break;
      if (std::chrono::steady_clock::now() >= until) stop.store(true);
    }
    to_writer.close();
    to_analysis.close();
  });
  // Consumers: verify every byte, slice and copy, hold for random times.
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(100 + static_cast<unsigned>(c));
      ViewQueue& q = c == 0 ? to_writer : to_analysis;
      std::vector<Bytes> kept;
      while (auto v = q.pop()) {
        const std::uint64_t seq = verify_frame(*v);
        const std::size_t off = sizeof seq + rng() % (v->size() - sizeof seq + 1);
        Bytes part = v->slice(off, v->size() - off);
        for (std::size_t i = 0; i < part.size(); ++i)
          if (part[i] != pattern(seq, off + i)) {
            failures.report("a slice of frame " + std::to_string(seq) + " changed");
            break;
          }
        kept.push_back(*v);  // a few extra views live a while longer
        if (kept.size() > 2 || rng() % 2 == 0) kept.erase(kept.begin());
        hold(rng);
        verify_frame(*v);  // still intact after the hold
        (c == 0 ? written : analysed).fetch_add(1);
      }
      for (const auto& k : kept) verify_frame(k);
    });
  }
  // Pool<T> churn: exclusive ownership under random holds, every acquire
  // flavour, growth; ends by waiting in acquire() until the close.
  for (std::uint64_t id = 1; id <= 3; ++id) {
    threads.emplace_back([&, id] {
      std::mt19937 rng(static_cast<unsigned>(1000 + id));
      for (;;) {
        std::optional<daq_pool::Loaned<Item>> l;
        try {
          switch (rng() % 4) {
            case 0:
              l.emplace(items.acquire());  // throws pool_closed at shutdown
              break;
            case 1:
              l = items.try_acquire_for(std::chrono::microseconds(rng() % 200));
              break;
            case 2:
              l = items.acquire_or_grow();
              break;
            default:
              l = items.try_acquire();
          }
        } catch (const daq_pool::pool_closed&) {
          closed_seen.fetch_add(1);
          return;
        }
        if (!l) {
          if (items.is_closed()) return;
          continue;
        }
        if ((*l)->owner != 0) failures.report("an item handed out while another loan held it");
        (*l)->owner = id;
        ++(*l)->uses;
        hold(rng);
        if ((*l)->owner != id) failures.report("an item changed hands during a loan");
        item_cycles.fetch_add(1);
      }
    });
  }

  // Shutdown under load: once the pipeline has stopped, close the item pool
  // while its users may be waiting in acquire(); they must all come out.
  threads[0].join();
  threads[1].join();
  threads[2].join();
  items.close();
  frames.close();
  for (std::size_t i = 3; i < threads.size(); ++i) threads[i].join();
  watchdog.dismiss();

  INFO(failures.first);
  CHECK(failures.count.load() == 0);
  INFO("produced " << produced << ", dropped " << dropped << ", item cycles " << item_cycles);
  CHECK(produced.load() > 0);
  CHECK(written.load() == produced.load());
  CHECK(analysed.load() == produced.load());
  CHECK(item_cycles.load() > 0);
  // Every buffer and slot is back; the counters agree.
  CHECK(frames.available() == buffers);
  const auto fs = frames.stats();
  CHECK(fs.in_use == 0);
  CHECK(fs.acquires == fs.releases);
  CHECK(items.available() == items.size());
  const auto is = items.stats();
  CHECK(is.in_use == 0);
  CHECK(is.acquires == is.releases);
  CHECK(is.acquires == item_cycles.load());
  std::printf("soak: %llu frames (%llu dropped), %llu item cycles, %llu waiters released by close\n",
              static_cast<unsigned long long>(produced.load()), static_cast<unsigned long long>(dropped.load()),
              static_cast<unsigned long long>(item_cycles.load()), static_cast<unsigned long long>(closed_seen.load()));
}
