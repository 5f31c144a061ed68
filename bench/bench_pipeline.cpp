// pipeline: the camera loop. A producer acquires a buffer, copies an 8 MiB
// "SDK frame" into it, freezes it and hands it to a consumer thread, which
// reads one byte per page and drops it (the buffer returns to the pool).
// Pool of 8. Beside it, in the same run: the same loop over each baseline
// pool; the same loop with a fresh new[] per frame while glibc's mmap
// threshold is pinned at 128 KiB (a fresh mmap and 2048 page faults per
// frame, what a naive pipeline gets); and plain serial 8 MiB memcpys: into
// one buffer (source and destination stay in the last-level cache, which no
// pipeline with two frames in flight can match), into 2, and into 8 (the
// fair ceiling: the memory footprint of the pool of 8, against which the
// 96 % goal is measured).
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <memory>
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

using Frame = std::vector<std::byte>;
Frame make_frame() { return Frame(frame_bytes); }

/// The camera SDK's ring buffer slot: where every frame is copied from.
const PageBuffer& sdk_frame() {
  static const PageBuffer frame(frame_bytes, 0x3c);
  return frame;
}

std::atomic<std::uint64_t> sink{0};

/// Runs producer (this thread) -> channel -> consumer. `produce()` returns a
/// filled item; `consume(item&)` reads it (then the item is dropped).
template <class Produce, class Consume>
void run_pipeline(benchmark::State& state, Produce produce, Consume consume) {
  using Item = decltype(produce());
  Channel<Item> channel(64);
  std::thread consumer([&] {
    std::uint64_t sum = 0;
    for (;;) {
      Item item = channel.pop();
      if (is_end(item)) break;
      sum += consume(item);
    }
    sink.fetch_add(sum, std::memory_order_relaxed);
  });
  OpMeter meter;
  for (auto _ : state) channel.push(produce());
  channel.push(Item{});
  consumer.join();
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()), frame_bytes);
}

template <class P, class... Args>
void pooled(benchmark::State& state, Args... args) {
  P pool(args...);
  const std::byte* src = sdk_frame().data();
  run_pipeline(
      state,
      [&] {
        auto h = pool.acquire();
        P::fill(h, src, frame_bytes);
        return h;
      },
      [](auto& h) { return P::read_pages(h, frame_bytes); });
}

#if defined(DAQ_BENCH_BUFFER_POOL)
void buffer_pool(benchmark::State& state) {
  daq_pool::BufferPool pool(pool_size, frame_bytes);
  const std::span<const std::byte> src(sdk_frame().data(), frame_bytes);
  run_pipeline(
      state,
      [&] {
        daq_pool::PooledBuffer buffer = pool.acquire();
        buffer.copy_from(src);
        return std::move(buffer).freeze();
      },
      [](const daq_pool::Bytes& b) { return touch_pages(b.data(), b.size()); });
}
#endif

/// A fresh heap block per frame: new[] -> copy -> consumer -> delete[].
/// glibc's mmap threshold is pinned at 128 KiB for this whole binary (see
/// `registered`), so every frame is a fresh mmap whose 2048 pages fault on
/// the first write, then a munmap.
void fresh_heap(benchmark::State& state) {
  const std::byte* src = sdk_frame().data();
  run_pipeline(
      state,
      [&] {
        std::unique_ptr<std::byte[]> frame(new std::byte[frame_bytes]);
        std::memcpy(frame.get(), src, frame_bytes);
        return frame;
      },
      [](const std::unique_ptr<std::byte[]>& frame) { return touch_pages(frame.get(), frame_bytes); });
}

/// One thread copying 8 MiB frames round-robin into `buffers` warm
/// destination buffers. One buffer is the cache-resident ceiling (source and
/// destination, 16 MiB, stay in a 32 MiB last-level cache); two is what a
/// LIFO pool cycles through while the consumer still holds the previous
/// frame (24 MiB); eight is the fair ceiling, the footprint of a pool of 8
/// (72 MiB: DRAM speed), and what a FIFO pool cycles through.
void serial_memcpy(benchmark::State& state, std::size_t buffers) {
  const std::byte* src = sdk_frame().data();
  std::vector<PageBuffer> dst;
  for (std::size_t i = 0; i < buffers; ++i) dst.emplace_back(frame_bytes);
  OpMeter meter;
  std::size_t next = 0;
  for (auto _ : state) {
    std::memcpy(dst[next].data(), src, frame_bytes);
    next = next + 1 == buffers ? 0 : next + 1;
    benchmark::ClobberMemory();
  }
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()), frame_bytes);
}

#if defined(DAQ_BENCH_BUFFER_POOL)
/// The pool-exhausted fallback: a heap copy per frame (Bytes::copy_from).
void heap_bytes(benchmark::State& state) {
  const std::span<const std::byte> src(sdk_frame().data(), frame_bytes);
  run_pipeline(
      state, [&] { return daq_pool::Bytes::copy_from(src); },
      [](const daq_pool::Bytes& b) { return touch_pages(b.data(), b.size()); });
}
#endif

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  // Before any allocation of the benchmarks, as the environment variable
  // GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 would do at start-up:
  // blocks of 128 KiB and more are mmap'ed, and glibc no longer raises the
  // threshold after the first free (which would otherwise let it recycle
  // 8 MiB blocks from the heap). The pools' buffers are allocated once, so
  // only the fresh-allocation cases feel it.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  RegisterBenchmark("pipeline/frame_8MiB/memcpy", serial_memcpy, 1)->UseRealTime();
  RegisterBenchmark("pipeline/frame_8MiB/memcpy_2_buffers", serial_memcpy, 2)->UseRealTime();
  // The fair ceiling: the same memory footprint as a pool of 8 (every
  // buffer of the pool in use over time). The 96 % goal is against this row.
  RegisterBenchmark("pipeline/frame_8MiB/fair_ceiling_memcpy_8_buffers", serial_memcpy, pool_size)->UseRealTime();
#if defined(DAQ_BENCH_BUFFER_POOL)
  RegisterBenchmark("pipeline/frame_8MiB/BufferPool", buffer_pool)->UseRealTime();
#endif
  RegisterBenchmark("pipeline/frame_8MiB/daq_pool", pooled<DaqPool<Frame>, std::size_t, Frame (*)()>, pool_size,
                    make_frame)
      ->UseRealTime();
  RegisterBenchmark("pipeline/frame_8MiB/mutex_freelist", pooled<MutexPool<Frame>, std::size_t, Frame (*)()>, pool_size,
                    make_frame)
      ->UseRealTime();
#if defined(DAQ_BENCH_MOODYCAMEL)
  RegisterBenchmark("pipeline/frame_8MiB/moodycamel", pooled<MoodycamelPool<Frame>, std::size_t, Frame (*)()>,
                    pool_size, make_frame)
      ->UseRealTime();
#endif
#if defined(DAQ_BENCH_FFMPEG)
  RegisterBenchmark("pipeline/frame_8MiB/AVBufferPool", pooled<AvPool, std::size_t, std::size_t, bool>, pool_size,
                    frame_bytes, true)
      ->UseRealTime();
#endif
#if defined(DAQ_BENCH_GSTREAMER)
  RegisterBenchmark("pipeline/frame_8MiB/GstBufferPool", pooled<GstPool, std::size_t, std::size_t>, pool_size,
                    frame_bytes)
      ->UseRealTime();
#endif
  RegisterBenchmark("pipeline/frame_8MiB/new_delete_mmap", fresh_heap)->UseRealTime();
#if defined(DAQ_BENCH_BUFFER_POOL)
  RegisterBenchmark("pipeline/frame_8MiB/Bytes_copy_from_mmap", heap_bytes)->UseRealTime();
#endif
  return true;
}();

}  // namespace
}  // namespace daq_bench
