// The acquisition thread of the simulated camera: the code an application
// writes around an SDK. Each frame is copied out of the SDK's ring into a
// BufferPool buffer (waiting at most --timeout, then --on-exhausted
// decides), frozen into a Bytes view and published to every consumer.
#pragma once

#include "alloc_hook.hpp"
#include "cli.hpp"
#include "latency_histogram.hpp"
#include "pipeline.hpp"
#include "simulated_camera.hpp"

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/bytes.hpp>
#include <daq_pool/errors.hpp>
#include <daq_pool/pooled_buffer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>
#include <optional>

namespace frame_pipeline {

using Clock = std::chrono::steady_clock;

/// Frames delivered before allocation counting starts: enough for every
/// thread to have run its loop once (first-use allocations, e.g. stdio's
/// buffer, belong to start-up, not to the steady state).
constexpr std::uint64_t warmup_frames = 10;

/// Counters of the acquisition thread. The atomics feed the live progress
/// line (relaxed: statistics, exact once the thread is joined); the rest is
/// read only after the join.
struct AcquisitionStats {
  std::atomic<std::uint64_t> delivered{0};  ///< frames published to the consumers
  std::atomic<std::uint64_t> pooled{0};     ///< ... of which in a pool buffer
  std::atomic<std::uint64_t> fallbacks{0};  ///< ... of which copied to the heap (Bytes::copy_from)
  std::atomic<std::uint64_t> dropped{0};    ///< frames dropped (--on-exhausted=drop, or a failed fallback)
  std::atomic<std::uint64_t> exhausted{0};  ///< times no buffer freed up within --timeout
  std::atomic<std::uint64_t> blocked{0};    ///< ... after which --on-exhausted=block kept waiting
  LatencyHistogram acquire_wait;            ///< time spent getting a buffer (including blocking)
  bool warmed_up = false;                   ///< warmup_frames were delivered
  std::uint64_t allocs_at_warmup = 0;       ///< alloc_hook::unexpected() then
  std::uint64_t expected_allocs_at_warmup = 0;
  std::uint64_t library_allocs_at_warmup = 0;
  Clock::time_point end;  ///< when the last frame was published
};

/// Publishes `bytes` (tagged `tag`) and counts it; allocation counting
/// starts after warmup_frames.
inline void deliver(Pipeline& pipeline, const daq_pool::Bytes& bytes, std::uint64_t tag, AcquisitionStats& st,
                    std::uint64_t& delivered) {
  pipeline.publish(bytes, tag);  // waits while a block consumer's queue is full: backpressure
  ++delivered;
  st.delivered.store(delivered, std::memory_order_relaxed);
  if (delivered == warmup_frames) {
    st.warmed_up = true;
    st.allocs_at_warmup = alloc_hook::unexpected();
    st.expected_allocs_at_warmup = alloc_hook::expected();
    st.library_allocs_at_warmup = alloc_hook::library();
  }
}

/// The acquisition thread of --source=sim.
inline void acquisition_loop(SimulatedCamera& camera, daq_pool::BufferPool& pool, const Options& opt,
                             Pipeline& pipeline, AcquisitionStats& st) {
  const auto timeout = std::chrono::milliseconds(opt.timeout_ms);
  std::uint64_t delivered = 0;
  while (const std::optional<SimulatedCamera::Frame> frame = camera.next_frame()) {
    // The SDK slot is ours until release_frame(); the camera will overrun if
    // we hold it too long, so the wait for a buffer is bounded.
    const auto t0 = Clock::now();
    std::optional<daq_pool::PooledBuffer> buffer = pool.try_acquire_for(timeout);
    auto t1 = Clock::now();  // end of the wait for a buffer (moved on by a blocking wait)
    daq_pool::Bytes bytes;
    if (!buffer) {
      st.exhausted.fetch_add(1, std::memory_order_relaxed);
      switch (opt.on_exhausted) {
        case OnExhausted::fallback:
          try {
            const alloc_hook::Expected expected;  // the one allocating path, counted apart
            bytes = daq_pool::Bytes::copy_from(frame->data);
            st.fallbacks.fetch_add(1, std::memory_order_relaxed);
          } catch (const std::bad_alloc&) {
            st.dropped.fetch_add(1, std::memory_order_relaxed);
          }
          break;
        case OnExhausted::drop:
          st.dropped.fetch_add(1, std::memory_order_relaxed);
          break;
        case OnExhausted::block:
          st.blocked.fetch_add(1, std::memory_order_relaxed);
          try {
            buffer.emplace(pool.acquire());
            t1 = Clock::now();
          } catch (const daq_pool::pool_closed&) {
            st.dropped.fetch_add(1, std::memory_order_relaxed);
          }
          break;
      }
    }
    st.acquire_wait.record(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
    if (buffer) {
      buffer->copy_from_ptr(frame->data.data(), frame->data.size());
      bytes = std::move(*buffer).freeze();  // zero-copy, allocation-free
      buffer.reset();
      st.pooled.fetch_add(1, std::memory_order_relaxed);
    }
    camera.release_frame();  // the frame is safe in `bytes` (or dropped)
    if (bytes.empty()) continue;
    deliver(pipeline, bytes, delivered, st, delivered);
  }
  st.end = Clock::now();
}

}  // namespace frame_pipeline
