// contended: two threads acquire and release items of one shared pool as
// fast as they can (the pool never runs dry: 8 items, 2 threads). Measures
// the free list under contention, and fairness: each thread's share of the
// operations and of the CPU. A mutex tends to convoy here (one thread
// sleeps while the other runs), which looks fast but starves a thread.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "baselines.hpp"
#include "bench_support.hpp"

namespace daq_bench {
namespace {

constexpr std::size_t pool_size = 8;

int make_int() { return 0; }

template <class P>
void run_contended(benchmark::State& state, P& pool) {
  std::atomic<int> phase{0};  // 0: wait, 1: run, 2: stop
  std::atomic<std::uint64_t> helper_ops{0};
  std::atomic<double> helper_cpu{0};
  std::thread helper([&] {
    while (phase.load(std::memory_order_acquire) == 0) std::this_thread::yield();
    const double cpu0 = thread_cpu_seconds();
    std::uint64_t n = 0;
    while (phase.load(std::memory_order_relaxed) == 1) {
      auto loan = pool.acquire();
      escape(loan);
      ++n;
    }
    helper_cpu.store(thread_cpu_seconds() - cpu0);
    helper_ops.store(n);
  });

  OpMeter meter;
  const double cpu0 = thread_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  phase.store(1, std::memory_order_release);
  for (auto _ : state) {
    auto loan = pool.acquire();
    escape(loan);
  }
  phase.store(2, std::memory_order_relaxed);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double main_cpu = thread_cpu_seconds() - cpu0;
  helper.join();

  const auto main_ops = static_cast<double>(state.iterations());
  const auto other_ops = static_cast<double>(helper_ops.load());
  const double total = main_ops + other_ops;
  meter.report(state, total);
  report_throughput(state, total);
  // Each thread's share of the operations (0.5 each is perfectly fair) and
  // its time on a CPU (1.0: never slept).
  state.counters["share_t1"] = main_ops / total;
  state.counters["share_t2"] = other_ops / total;
  state.counters["cpu_t1"] = wall > 0 ? main_cpu / wall : 0;
  state.counters["cpu_t2"] = wall > 0 ? helper_cpu.load() / wall : 0;
}

template <class P, class... Args>
void contended(benchmark::State& state, Args... args) {
  P pool(args...);
  run_contended(state, pool);
}

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("contended/int/daq_pool", contended<DaqPool<int>, std::size_t, int (*)()>, pool_size, make_int)
      ->UseRealTime();
  RegisterBenchmark("contended/int/mutex_freelist", contended<MutexPool<int>, std::size_t, int (*)()>, pool_size,
                    make_int)
      ->UseRealTime();
#if defined(DAQ_BENCH_ATOMIC_QUEUE)
  RegisterBenchmark("contended/int/atomic_queue", contended<AtomicQueuePool<int>, std::size_t, int (*)()>, pool_size,
                    make_int)
      ->UseRealTime();
#endif
#if defined(DAQ_BENCH_MOODYCAMEL)
  RegisterBenchmark("contended/int/moodycamel", contended<MoodycamelPool<int>, std::size_t, int (*)()>, pool_size,
                    make_int)
      ->UseRealTime();
#endif
#if defined(DAQ_BENCH_FFMPEG)
  RegisterBenchmark("contended/int/AVBufferPool", contended<AvPool, std::size_t, std::size_t, bool>, pool_size,
                    sizeof(int), false)
      ->UseRealTime();
#endif
#if defined(DAQ_BENCH_GSTREAMER)
  RegisterBenchmark("contended/int/GstBufferPool", contended<GstPool, std::size_t, std::size_t>, pool_size, sizeof(int))
      ->UseRealTime();
#endif
  return true;
}();

}  // namespace
}  // namespace daq_bench
