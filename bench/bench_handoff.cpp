// handoff: a producer thread acquires items and passes them through one
// channel to a consumer thread, which drops them (returning them to the
// pool). A pool of 8, so the producer regularly finds the pool empty and
// must wait for the consumer: this measures blocking and waking, where
// spinning before sleeping matters more than the free list. The channel (a
// moodycamel BlockingConcurrentQueue) is the same for every pool.
#include <benchmark/benchmark.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>
#include <vector>

#include "baselines.hpp"
#include "bench_support.hpp"

#if defined(DAQ_BENCH_BUFFER_POOL)
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/bytes.hpp>
#include <daq_pool/pooled_buffer.hpp>
#endif

namespace daq_bench {
namespace {

constexpr std::size_t pool_size = 8;
constexpr std::size_t small_bytes = 64;

using Frame = std::vector<std::byte>;
using Small = std::array<std::byte, small_bytes>;
Frame make_frame() { return Frame(frame_bytes); }
Small make_small() { return Small{}; }

/// `produce()` makes one item (a loan, or a frozen view) for the consumer.
template <class Produce>
void run_handoff(benchmark::State& state, Produce produce) {
  using Handle = decltype(produce());
  Channel<Handle> channel(64);
  std::atomic<double> consumer_cpu{0};
  std::thread consumer([&] {
    const double cpu0 = thread_cpu_seconds();
    for (;;) {
      Handle h = channel.pop();
      if (is_end(h)) break;  // the empty handle ends the run
    }
    consumer_cpu.store(thread_cpu_seconds() - cpu0);
  });

  OpMeter meter;
  const double cpu0 = thread_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) channel.push(produce());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double producer_cpu = thread_cpu_seconds() - cpu0;
  channel.push(Handle{});
  consumer.join();

  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()));
  // Fraction of the wall time each thread spent on a CPU (1.0: never slept).
  state.counters["cpu_producer"] = wall > 0 ? producer_cpu / wall : 0;
  state.counters["cpu_consumer"] = wall > 0 ? consumer_cpu.load() / wall : 0;
}

template <class P, class... Args>
void handoff(benchmark::State& state, Args... args) {
  P pool(args...);
  run_handoff(state, [&pool] { return pool.acquire(); });
}

template <class T>
void register_item(const char* item, T (*make)(), std::size_t bytes) {
  using benchmark::RegisterBenchmark;
  const std::string prefix = std::string("handoff/") + item + "/";
  auto reg = [&](const char* impl, auto fn) { RegisterBenchmark((prefix + impl).c_str(), fn)->UseRealTime(); };
  reg("daq_pool", [make](benchmark::State& s) { handoff<DaqPool<T>>(s, pool_size, make); });
#if defined(DAQ_BENCH_BUFFER_POOL)
  // A BufferPool buffer travels frozen, as a Bytes view (3 words).
  reg("BufferPool", [bytes](benchmark::State& s) {
    daq_pool::BufferPool pool(pool_size, bytes);
    run_handoff(s, [&pool] { return pool.acquire().freeze(); });
  });
#endif
  reg("mutex_freelist", [make](benchmark::State& s) { handoff<MutexPool<T>>(s, pool_size, make); });
#if defined(DAQ_BENCH_MOODYCAMEL)
  reg("moodycamel", [make](benchmark::State& s) { handoff<MoodycamelPool<T>>(s, pool_size, make); });
#endif
#if defined(DAQ_BENCH_FFMPEG)
  reg("AVBufferPool", [bytes](benchmark::State& s) { handoff<AvPool>(s, pool_size, bytes, true); });
#endif
#if defined(DAQ_BENCH_GSTREAMER)
  reg("GstBufferPool", [bytes](benchmark::State& s) { handoff<GstPool>(s, pool_size, bytes); });
#endif
  (void)bytes;
}

const bool registered = [] {
  register_item<Frame>("frame_8MiB", make_frame, frame_bytes);
  register_item<Small>("item_64B", make_small, small_bytes);
  return true;
}();

}  // namespace
}  // namespace daq_bench
