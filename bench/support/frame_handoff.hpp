// What the frame hand-off benchmarks (bench/ffmpeg, bench/gstreamer) share:
// the timed loop with its per-operation counters, and one frozen 8 MiB pool
// frame to hand over.
#pragma once

#include <benchmark/benchmark.h>

#include <daq_pool/buffer_pool.hpp>

#include <cstring>
#include <utility>

#include "bench_support.hpp"

namespace daq_bench {

/// Runs `body` once per iteration and reports allocations, faults and
/// sleeps per hand-off (OpMeter) and hand-offs per second.
template <class Body>
void measure_handoffs(benchmark::State& state, Body&& body) {
  OpMeter meter;
  for (auto _ : state) body();
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()));
}

/// A frozen view of a frame_bytes frame in one of `pool`'s buffers.
inline daq_pool::Bytes frozen_frame(daq_pool::BufferPool& pool) {
  daq_pool::PooledBuffer buffer = pool.acquire();
  std::memset(buffer.data(), 0x5a, frame_bytes);
  buffer.set_size(frame_bytes);
  return std::move(buffer).freeze();
}

}  // namespace daq_bench
