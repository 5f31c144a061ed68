// first touch: the first pass over a freshly built BufferPool (every buffer
// acquired and filled with a frame once) against the same pass over a pool
// that has been used before (steady state), with prefault on and off.
// Without prefault, the first write to each page of a buffer takes a page
// fault (2048 per 8 MiB buffer); prefault takes them at construction.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "bench_support.hpp"

#if defined(DAQ_BENCH_BUFFER_POOL)
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/bytes.hpp>
#include <daq_pool/pooled_buffer.hpp>
#endif

namespace daq_bench {
namespace {

#if defined(DAQ_BENCH_BUFFER_POOL)
constexpr std::size_t pool_size = 8;

/// One pass: acquire every buffer, copy a frame into each, drop them all.
void fill_every_buffer(daq_pool::BufferPool& pool, std::span<const std::byte> src) {
  std::array<std::optional<daq_pool::PooledBuffer>, pool_size> held;
  for (auto& h : held) {
    h.emplace(pool.acquire());
    h->copy_from(src);
  }
  benchmark::ClobberMemory();
}

daq_pool::BufferPoolOptions with_prefault(bool prefault) {
  daq_pool::BufferPoolOptions options;
  options.prefault = prefault;
  return options;
}

/// Counters for the timed passes only (pool construction excluded).
struct PassMeter {
  std::uint64_t allocs = 0, faults = 0;
  template <class F>
  void timed(F&& pass) {
    const std::uint64_t a0 = allocations(), f0 = minor_faults();
    pass();
    allocs += allocations() - a0;
    faults += minor_faults() - f0;
  }
  void report(benchmark::State& state) const {
    const auto passes = static_cast<double>(state.iterations() > 0 ? state.iterations() : 1);
    const double buffers = passes * pool_size;
    state.counters["allocs/op"] = counting_allocations() ? static_cast<double>(allocs) / buffers : -1.0;
    state.counters["faults/op"] = static_cast<double>(faults) / buffers;
    report_throughput(state, buffers, frame_bytes);
  }
};

/// Each iteration builds a new pool (untimed) and times its first pass.
void first_pass(benchmark::State& state, bool prefault) {
  const PageBuffer src(frame_bytes);
  std::unique_ptr<daq_pool::BufferPool> pool;
  PassMeter meter;
  for (auto _ : state) {
    state.PauseTiming();
    pool.reset();
    pool = std::make_unique<daq_pool::BufferPool>(pool_size, frame_bytes, with_prefault(prefault));
    state.ResumeTiming();
    meter.timed([&] { fill_every_buffer(*pool, {src.data(), src.size()}); });
  }
  pool.reset();  // after the loop: untimed
  meter.report(state);
}

/// The same pass over a pool that has been through it before.
void steady_state(benchmark::State& state, bool prefault) {
  const PageBuffer src(frame_bytes);
  daq_pool::BufferPool pool(pool_size, frame_bytes, with_prefault(prefault));
  fill_every_buffer(pool, {src.data(), src.size()});
  PassMeter meter;
  for (auto _ : state) meter.timed([&] { fill_every_buffer(pool, {src.data(), src.size()}); });
  meter.report(state);
}

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  // Items are buffers: one item = one 8 MiB frame copied into a buffer.
  RegisterBenchmark("first_touch/prefault_on/steady_state", steady_state, true)->UseRealTime();
  RegisterBenchmark("first_touch/prefault_on/first_pass", first_pass, true)->UseRealTime();
  RegisterBenchmark("first_touch/prefault_off/steady_state", steady_state, false)->UseRealTime();
  RegisterBenchmark("first_touch/prefault_off/first_pass", first_pass, false)->UseRealTime();
  return true;
}();
#endif

}  // namespace
}  // namespace daq_bench
