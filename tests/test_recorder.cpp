// The recorder (daq_pool/recording/recorder.hpp), portable backend: frames
// from a BufferPool written with O_DIRECT to a real filesystem ($TMPDIR or
// /var/tmp), read back with DqrReader and checked byte for byte; sizes that
// are whole blocks, have a tail, or are tiny; views not aligned for O_DIRECT
// (heap copies); an oversized frame; the buffered mode; several producer
// threads; every buffer back in the pool at the end.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/recording/dqr_reader.hpp>
#include <daq_pool/recording/recorder.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "dqr_files.hpp"
#include "recorder_under_test.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::recording::DqrReader;
using Recorder = test_support::RecorderUnderTest;
using daq_pool::recording::RecorderOptions;
using test_support::pattern;
using test_support::TempDir;

namespace {

Bytes make_frame(BufferPool& pool, std::uint64_t frame, std::size_t size) {
  auto b = pool.acquire();
  for (std::size_t i = 0; i < size; ++i) b.data()[i] = pattern(frame, i);
  b.set_size(size);
  return std::move(b).freeze();
}

/// Every frame of `path` is frame `first + k` with the size `size_of(frame)`
/// and its pattern; returns how many there are.
template <class SizeOf>
std::size_t verify(const std::string& path, SizeOf size_of) {
  DqrReader r(path);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const auto& e = r.index()[i];
    const std::vector<std::byte> v = r.read(i);
    bool same = v.size() == size_of(e.frame_number);
    for (std::size_t k = 0; same && k < v.size(); ++k) same = v[k] == pattern(e.frame_number, k);
    if (!same) ++bad;
  }
  CHECK(bad == 0);
  CHECK(r.holes() == 0);
  return r.size();
}

}  // namespace

TEST_CASE("frames of every size go to the disk with O_DIRECT and read back") {
  test_support::Watchdog dog("recorder sizes", std::chrono::seconds(120));
  TempDir dir("recorder");
  const std::string path = dir.file("sizes.dqr");
  constexpr std::size_t capacity = 3 * 65536 + 100;
  const auto size_of = [](std::uint64_t f) -> std::size_t {
    switch (f % 5) {
      case 0: return capacity;        // a tail of 100 bytes
      case 1: return 65536;           // whole blocks
      case 2: return 1;               // tail only
      case 3: return 4096 * 3 + 4095; // almost a block more
      default: return 0;              // empty
    }
  };
  BufferPool pool(6, capacity);
  constexpr std::uint64_t frames = 200;
  {
    RecorderOptions o;
    o.frame_capacity = capacity;
    o.queue_depth = 4;
    o.layout.dtype = "|u1";
    Recorder rec(path, o);
    for (std::uint64_t f = 0; f < frames; ++f) REQUIRE(rec.record(make_frame(pool, f, size_of(f)), f, static_cast<std::int64_t>(f)));
    rec.close();
    const auto st = rec.stats();
    CHECK(st.frames_written == frames);
    CHECK(st.frames_lost == 0);
    CHECK(st.errors == 0);
    CHECK(st.frames_copied == 0);
    CHECK(st.in_flight == 0);
    CHECK(st.direct_io);  // ext4 / xfs under TMPDIR or /var/tmp: O_DIRECT works
    CHECK(rec.fallback_reason().empty());
    CHECK_FALSE(rec.error());
    CHECK(st.block_size >= 4096);
  }
  CHECK(pool.available() == pool.size());
  CHECK(verify(path, size_of) == frames);
  DqrReader r(path);
  for (std::size_t i = 0; i < r.size(); ++i) CHECK(r.index()[i].timestamp_ns == static_cast<std::int64_t>(i));
}

TEST_CASE("views not aligned for O_DIRECT are copied through the bounce buffer, and counted") {
  TempDir dir("recorder");
  const std::string path = dir.file("heap.dqr");
  std::vector<std::byte> src(700001);
  RecorderOptions o;
  o.frame_capacity = src.size();
  o.queue_depth = 2;
  Recorder rec(path, o);
  for (std::uint64_t f = 0; f < 5; ++f) {
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = pattern(f, i);
    // A slice one byte in: never aligned.
    Bytes heap = Bytes::copy_from(src);
    REQUIRE(rec.record(heap.slice(1, src.size() - 1 - f), f, 0));
  }
  rec.close();
  CHECK(rec.stats().frames_copied == 5);
  CHECK(rec.stats().frames_written == 5);
  DqrReader r(path);
  REQUIRE(r.size() == 5);
  for (std::size_t f = 0; f < 5; ++f) {
    const auto v = r.read(f);
    REQUIRE(v.size() == src.size() - 1 - f);
    bool same = true;
    for (std::size_t i = 0; i < v.size(); ++i) same = same && v[i] == pattern(f, i + 1);
    CHECK(same);
  }
}

TEST_CASE("a frame larger than frame_capacity is refused, counted lost, released") {
  TempDir dir("recorder");
  BufferPool pool(2, 10000);
  RecorderOptions o;
  o.frame_capacity = 5000;
  Recorder rec(dir.file("big.dqr"), o);
  CHECK_FALSE(rec.record(make_frame(pool, 0, 6000), 0, 0));
  CHECK(rec.record(make_frame(pool, 1, 5000), 1, 0));
  rec.close();
  CHECK(rec.stats().frames_lost == 1);
  CHECK(rec.stats().frames_written == 1);
  REQUIRE(rec.oversize());
  CHECK(rec.oversize()->find("exceeds frame_capacity 5000") != std::string::npos);
  CHECK(pool.available() == 2);
}

TEST_CASE("buffered mode (direct = false) writes the same file, flagged") {
  TempDir dir("recorder");
  const std::string path = dir.file("buffered.dqr");
  BufferPool pool(3, 10000);
  RecorderOptions o;
  o.frame_capacity = 10000;
  o.direct = false;
  {
    Recorder rec(path, o);
    for (std::uint64_t f = 0; f < 20; ++f) REQUIRE(rec.record(make_frame(pool, f, 9999 - f), f, 0));
    rec.close();
    CHECK_FALSE(rec.stats().direct_io);
    CHECK(rec.stats().frames_written == 20);
  }
  CHECK((DqrReader(path).header().flags & daq_pool::recording::dqr::kFlagBuffered) != 0);
  CHECK(verify(path, [](std::uint64_t f) { return static_cast<std::size_t>(9999 - f); }) == 20);
}

TEST_CASE("producers on several threads, a pool just big enough: nothing lost, nothing held") {
  test_support::Watchdog dog("recorder producers", std::chrono::seconds(120));
  TempDir dir("recorder");
  const std::string path = dir.file("threads.dqr");
  constexpr std::size_t capacity = 128 * 1024;
  // queue_depth frames held by the recorder + one being filled per producer.
  constexpr std::size_t producers = 2;
  constexpr std::size_t depth = 3;
  BufferPool pool(depth + producers, capacity);
  const std::uint64_t per = test_support::scaled(400);
  RecorderOptions o;
  o.frame_capacity = capacity;
  o.queue_depth = depth;
  o.writer_threads = 2;
  Recorder rec(path, o);
  test_support::StartGate gate(producers);
  std::vector<std::thread> threads;
  std::atomic<std::uint64_t> refused{0};
  for (std::size_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      gate.arrive_and_wait();
      for (std::uint64_t k = 0; k < per; ++k) {
        const std::uint64_t f = p * 1'000'000 + k;
        if (!rec.record(make_frame(pool, f, capacity - (f % 4096)), f, 0)) refused.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  rec.close();
  CHECK(refused.load() == 0);
  CHECK(rec.stats().frames_written == producers * per);
  CHECK(pool.available() == pool.size());
  CHECK(verify(path, [](std::uint64_t f) { return static_cast<std::size_t>(capacity - (f % 4096)); }) == producers * per);
}

TEST_CASE("bad options name the option") {
  TempDir dir("recorder");
  RecorderOptions o;
  const auto message = [&] {
    try {
      Recorder r(dir.file("x.dqr"), o);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(message().find("frame_capacity is 0") != std::string::npos);
  o.frame_capacity = 10;
  o.queue_depth = 0;
  CHECK(message().find("queue_depth is 0") != std::string::npos);
  o.queue_depth = 1;
  CHECK_THROWS_AS(Recorder(dir.file("no/such/dir/x.dqr"), o), daq_pool::recording::recording_error);
}
