// gstreamer: what handing one 8 MiB frame to GStreamer costs, per hand-off
// (creating the buffer GStreamer will hold, then dropping it):
//   wrap_buffer        a Bytes view wrapped as a GstBuffer of one read-only
//                      GstMemory (daq_pool::gstreamer), zero copy, unref
//   copy_in            what GStreamer users do without it:
//                      gst_buffer_new_allocate of 8 MiB, map, memcpy, unmap,
//                      unref
//   gst_buffer_ref     GStreamer's own zero-copy reference to a buffer it
//                      already has, then unref
//   GstBufferPool      GStreamer's own pooled buffer: acquire + release (no
//                      fill)
// Goal: wrap_buffer >= 100x cheaper than copy_in and within 2x of the
// library's own zero-copy hand-off.
#include <benchmark/benchmark.h>

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/gstreamer.hpp>

#include <cstddef>
#include <cstring>

#include "baselines.hpp"
#include "bench_support.hpp"
#include "frame_handoff.hpp"

namespace daq_bench {
namespace {

void init() {
  static const bool done = [] {
    gst_init(nullptr, nullptr);
    return true;
  }();
  (void)done;
}

void wrap_buffer(benchmark::State& state) {
  init();
  daq_pool::BufferPool pool(1, frame_bytes);
  const daq_pool::Bytes frame = frozen_frame(pool);
  measure_handoffs(state, [&] {
    GstBuffer* buffer = daq_pool::gstreamer::wrap_buffer(frame);  // one more view, moved into the GstMemory
    escape(buffer);
    gst_buffer_unref(buffer);  // the destroy notify drops the view
  });
}

void copy_in(benchmark::State& state) {
  init();
  const PageBuffer sdk_frame(frame_bytes);
  measure_handoffs(state, [&] {
    GstBuffer* buffer = gst_buffer_new_allocate(nullptr, frame_bytes, nullptr);
    GstMapInfo info;
    gst_buffer_map(buffer, &info, GST_MAP_WRITE);
    std::memcpy(info.data, sdk_frame.data(), frame_bytes);
    gst_buffer_unmap(buffer, &info);
    escape(buffer);
    gst_buffer_unref(buffer);
  });
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(frame_bytes));
}

void buffer_ref(benchmark::State& state) {
  init();
  daq_pool::BufferPool pool(1, frame_bytes);
  GstBuffer* frame = daq_pool::gstreamer::wrap_buffer(frozen_frame(pool));
  measure_handoffs(state, [&] {
    GstBuffer* ref = gst_buffer_ref(frame);
    escape(ref);
    gst_buffer_unref(ref);
  });
  gst_buffer_unref(frame);
}

#if defined(DAQ_BENCH_GSTREAMER)
void buffer_pool(benchmark::State& state) {
  GstPool pool(2, frame_bytes);
  measure_handoffs(state, [&] {
    auto buffer = pool.acquire();
    escape(buffer);
  });
}
#endif

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("gstreamer/handoff_8MiB/wrap_buffer", wrap_buffer);
  RegisterBenchmark("gstreamer/handoff_8MiB/copy_in", copy_in);
  RegisterBenchmark("gstreamer/handoff_8MiB/gst_buffer_ref", buffer_ref);
#if defined(DAQ_BENCH_GSTREAMER)
  RegisterBenchmark("gstreamer/handoff_8MiB/GstBufferPool_acquire_release", buffer_pool);
#endif
  return true;
}();

}  // namespace
}  // namespace daq_bench
