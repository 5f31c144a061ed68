// cycle: one thread acquires an item and gives it back, over and over. The
// cost of a pool when nobody competes: what every frame pays twice.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <memory>
#include <vector>

#include "baselines.hpp"
#include "bench_support.hpp"

#if defined(DAQ_BENCH_BUFFER_POOL)
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/pooled_buffer.hpp>
#endif

namespace daq_bench {
namespace {

constexpr std::size_t pool_size = 8;

template <class P>
void run_cycle(benchmark::State& state, P& pool) {
  OpMeter meter;
  for (auto _ : state) {
    auto loan = pool.acquire();
    escape(loan);
  }
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()));
}

template <class P, class... Args>
void cycle(benchmark::State& state, Args... args) {
  P pool(args...);
  run_cycle(state, pool);
}

using Frame = std::vector<std::byte>;
Frame make_frame() { return Frame(frame_bytes); }
int make_int() { return 0; }

void new_delete_frame(benchmark::State& state) {
  OpMeter meter;
  for (auto _ : state) {
    // Default-initialised, like a pooled buffer's contents: nothing written.
    auto* p = new std::byte[frame_bytes];
    escape(p);
    delete[] p;
  }
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()));
}

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  // Pool<int>: the pool's own cost and nothing else.
  RegisterBenchmark("cycle/int/daq_pool", cycle<DaqPool<int>, std::size_t, int (*)()>, pool_size, make_int);
  RegisterBenchmark("cycle/int/mutex_freelist", cycle<MutexPool<int>, std::size_t, int (*)()>, pool_size, make_int);
#if defined(DAQ_BENCH_ATOMIC_QUEUE)
  RegisterBenchmark("cycle/int/atomic_queue", cycle<AtomicQueuePool<int>, std::size_t, int (*)()>, pool_size, make_int);
#endif
#if defined(DAQ_BENCH_MOODYCAMEL)
  RegisterBenchmark("cycle/int/moodycamel", cycle<MoodycamelPool<int>, std::size_t, int (*)()>, pool_size, make_int);
#endif

  // 8 MiB frames: the same, with items a camera would pool.
  RegisterBenchmark("cycle/frame_8MiB/daq_pool", cycle<DaqPool<Frame>, std::size_t, Frame (*)()>, pool_size,
                    make_frame);
#if defined(DAQ_BENCH_BUFFER_POOL)
  RegisterBenchmark("cycle/frame_8MiB/BufferPool", [](benchmark::State& state) {
    daq_pool::BufferPool pool(pool_size, frame_bytes);
    run_cycle(state, pool);
  });
#endif
  RegisterBenchmark("cycle/frame_8MiB/mutex_freelist", cycle<MutexPool<Frame>, std::size_t, Frame (*)()>, pool_size,
                    make_frame);
#if defined(DAQ_BENCH_MOODYCAMEL)
  RegisterBenchmark("cycle/frame_8MiB/moodycamel", cycle<MoodycamelPool<Frame>, std::size_t, Frame (*)()>, pool_size,
                    make_frame);
#endif
  RegisterBenchmark("cycle/frame_8MiB/new_delete", new_delete_frame);
#if defined(DAQ_BENCH_FFMPEG)
  RegisterBenchmark("cycle/frame_8MiB/AVBufferPool", cycle<AvPool, std::size_t, std::size_t, bool>, pool_size,
                    frame_bytes, false);
#endif
#if defined(DAQ_BENCH_GSTREAMER)
  RegisterBenchmark("cycle/frame_8MiB/GstBufferPool", cycle<GstPool, std::size_t, std::size_t>, pool_size, frame_bytes);
#endif
  return true;
}();

}  // namespace
}  // namespace daq_bench
