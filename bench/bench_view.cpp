// view: what sharing one frame with several consumers costs. Copying and
// dropping a Bytes view (and slicing one) beside std::shared_ptr, FFmpeg's
// av_buffer_ref and GStreamer's gst_buffer_ref; and the whole life of a
// view: acquire, freeze, one copy, drop both.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <memory>
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

constexpr std::size_t view_bytes = 64 * KiB;
constexpr std::size_t slice_offset = 4096;
constexpr std::size_t slice_length = 16 * KiB;

template <class Body>
void run(benchmark::State& state, Body&& body) {
  OpMeter meter;
  for (auto _ : state) body();
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()));
}

// ---- copy + drop ----------------------------------------------------------

void shared_ptr_copy(benchmark::State& state) {
  auto frame = std::make_shared<std::vector<std::byte>>(view_bytes);
  run(state, [&] {
    std::shared_ptr<std::vector<std::byte>> copy = frame;
    escape(copy);
  });
}

void shared_ptr_slice(benchmark::State& state) {
  auto frame = std::make_shared<std::vector<std::byte>>(view_bytes);
  run(state, [&] {
    // The aliasing constructor: shares ownership, points inside.
    std::shared_ptr<const std::byte> slice(frame, frame->data() + slice_offset);
    escape(slice);
  });
}

#if defined(DAQ_BENCH_BUFFER_POOL)
daq_pool::Bytes frozen(daq_pool::BufferPool& pool) {
  daq_pool::PooledBuffer buffer = pool.acquire();
  buffer.set_size(view_bytes);
  return std::move(buffer).freeze();
}

void bytes_copy(benchmark::State& state) {
  daq_pool::BufferPool pool(2, view_bytes);
  const daq_pool::Bytes frame = frozen(pool);
  run(state, [&] {
    daq_pool::Bytes copy = frame;
    escape(copy);
  });
}

void bytes_slice(benchmark::State& state) {
  daq_pool::BufferPool pool(2, view_bytes);
  const daq_pool::Bytes frame = frozen(pool);
  run(state, [&] {
    daq_pool::Bytes slice = frame.slice(slice_offset, slice_length);
    escape(slice);
  });
}

void bytes_lifecycle(benchmark::State& state) {
  daq_pool::BufferPool pool(2, view_bytes);
  run(state, [&] {
    daq_pool::PooledBuffer buffer = pool.acquire();
    buffer.set_size(view_bytes);
    daq_pool::Bytes first = std::move(buffer).freeze();
    daq_pool::Bytes second = first;
    escape(first);
    escape(second);
  });
}
#endif

#if defined(DAQ_BENCH_FFMPEG)
void av_ref(benchmark::State& state) {
  AvPool pool(2, view_bytes, false);
  auto frame = pool.acquire();
  run(state, [&] {
    AVBufferRef* copy = av_buffer_ref(frame.get());
    escape(copy);
    av_buffer_unref(&copy);
  });
}

void av_slice(benchmark::State& state) {
  AvPool pool(2, view_bytes, false);
  auto frame = pool.acquire();
  run(state, [&] {
    AVBufferRef* slice = av_buffer_ref(frame.get());
    slice->data += slice_offset;
    slice->size = slice_length;
    escape(slice);
    av_buffer_unref(&slice);
  });
}

void av_lifecycle(benchmark::State& state) {
  AvPool pool(2, view_bytes, false);
  run(state, [&] {
    auto first = pool.acquire();
    AVBufferRef* second = av_buffer_ref(first.get());
    escape(second);
    av_buffer_unref(&second);
  });
}
#endif

#if defined(DAQ_BENCH_GSTREAMER)
void gst_ref(benchmark::State& state) {
  GstPool pool(2, view_bytes);
  auto frame = pool.acquire();
  run(state, [&] {
    GstBuffer* copy = gst_buffer_ref(frame.get());
    escape(copy);
    gst_buffer_unref(copy);
  });
}

void gst_slice(benchmark::State& state) {
  GstPool pool(2, view_bytes);
  auto frame = pool.acquire();
  run(state, [&] {
    // GStreamer's sub-buffer: a new GstBuffer sharing the memory.
    GstBuffer* slice = gst_buffer_copy_region(frame.get(), GST_BUFFER_COPY_MEMORY, slice_offset, slice_length);
    escape(slice);
    gst_buffer_unref(slice);
  });
}

void gst_lifecycle(benchmark::State& state) {
  GstPool pool(2, view_bytes);
  run(state, [&] {
    auto first = pool.acquire();
    GstBuffer* second = gst_buffer_ref(first.get());
    escape(second);
    gst_buffer_unref(second);
  });
}
#endif

const bool registered = [] {
  using benchmark::RegisterBenchmark;
#if defined(DAQ_BENCH_BUFFER_POOL)
  RegisterBenchmark("view/copy_drop/Bytes", bytes_copy);
#endif
  RegisterBenchmark("view/copy_drop/shared_ptr", shared_ptr_copy);
#if defined(DAQ_BENCH_FFMPEG)
  RegisterBenchmark("view/copy_drop/av_buffer_ref", av_ref);
#endif
#if defined(DAQ_BENCH_GSTREAMER)
  RegisterBenchmark("view/copy_drop/gst_buffer_ref", gst_ref);
#endif

#if defined(DAQ_BENCH_BUFFER_POOL)
  RegisterBenchmark("view/slice_drop/Bytes", bytes_slice);
#endif
  RegisterBenchmark("view/slice_drop/shared_ptr", shared_ptr_slice);
#if defined(DAQ_BENCH_FFMPEG)
  RegisterBenchmark("view/slice_drop/av_buffer_ref", av_slice);
#endif
#if defined(DAQ_BENCH_GSTREAMER)
  RegisterBenchmark("view/slice_drop/gst_buffer_copy_region", gst_slice);
#endif

  // acquire -> freeze -> one more view -> drop both (the buffer returns).
#if defined(DAQ_BENCH_BUFFER_POOL)
  RegisterBenchmark("view/acquire_freeze_copy_drop/Bytes", bytes_lifecycle);
#endif
#if defined(DAQ_BENCH_FFMPEG)
  RegisterBenchmark("view/acquire_freeze_copy_drop/AVBufferPool", av_lifecycle);
#endif
#if defined(DAQ_BENCH_GSTREAMER)
  RegisterBenchmark("view/acquire_freeze_copy_drop/GstBufferPool", gst_lifecycle);
#endif
  return true;
}();

}  // namespace
}  // namespace daq_bench
