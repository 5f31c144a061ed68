// The recorder's hot path allocates nothing: acquiring a pool buffer,
// filling it, freezing it, record() (queue, writer thread, pwrite of prefix
// and tail, entry) and the view's return to the pool: 0 calls to operator
// new and 0 to malloc, counted process-wide (the writer threads included),
// over hundreds of frames. Construction and close() may allocate.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/recording/dqr_reader.hpp>
#include <daq_pool/recording/recorder.hpp>

#include <cstddef>
#include <cstdint>
#include <thread>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "catch.hpp"
#include "dqr_files.hpp"
#include "recorder_under_test.hpp"
#include "watchdog.hpp"

using daq_pool::BufferPool;
using Recorder = test_support::RecorderUnderTest;
using daq_pool::recording::RecorderOptions;

TEST_CASE("recording a frame allocates nothing, on any thread") {
  if (!alloc_counter::enabled) {
    WARN("allocations are not counted in this build (sanitizer): skipped");
    return;
  }
  test_support::Watchdog dog("recorder zero allocation", std::chrono::seconds(120));
  test_support::TempDir dir("recorder_alloc");
  constexpr std::size_t capacity = 64 * 1024 + 1000;  // every frame has a tail
  BufferPool pool(6, capacity);
  RecorderOptions o;
  o.frame_capacity = capacity;
  o.queue_depth = 4;
  Recorder rec(dir.file("alloc.dqr"), o);
  constexpr std::uint64_t frames = 400;
  std::uint64_t news = 0;
  std::uint64_t mallocs = 0;
  {
    alloc_counter::Scope scope;
    for (std::uint64_t f = 0; f < frames; ++f) {
      auto b = pool.acquire();
      for (std::size_t i = 0; i < capacity; i += 512) b.data()[i] = test_support::pattern(f, i);
      b.set_size(capacity - (f % 3) * 333);
      if (!rec.record(std::move(b).freeze(), f, 0)) break;
    }
    // Wait (without allocating) for the writers to finish every frame.
    while (rec.stats().in_flight != 0) std::this_thread::yield();
    news = scope.news();
    mallocs = scope.mallocs();
  }
  rec.close();
  CHECK(news == 0);
  CHECK(mallocs == 0);
  CHECK(rec.stats().frames_written == frames);
  CHECK(pool.available() == pool.size());
  CHECK(daq_pool::recording::DqrReader(dir.file("alloc.dqr")).size() == frames);
}
