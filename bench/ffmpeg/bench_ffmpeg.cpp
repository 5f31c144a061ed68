// ffmpeg: what handing one 8 MiB frame to FFmpeg costs, per hand-off
// (creating the reference FFmpeg will hold, then dropping it):
//   wrap_buffer        a Bytes view wrapped as a read-only AVBufferRef
//                      (daq_pool::ffmpeg), zero copy, then av_buffer_unref
//   wrap_gray_frame    the same as the plane of a GRAY8 AVFrame, then
//                      av_frame_unref
//   copy_in            what FFmpeg users do without it: av_buffer_alloc of
//                      8 MiB + memcpy of the frame, then unref
//   av_buffer_ref      FFmpeg's own zero-copy reference: av_buffer_ref of an
//                      AVBufferPool buffer, then unref
//   av_buffer_create   FFmpeg's own cost of wrapping foreign memory at all
//                      (av_buffer_create of a plain array + unref): what
//                      wrap_buffer costs minus daq_pool's part
// Goal: wrap_buffer >= 100x cheaper than copy_in and within 2x of
// av_buffer_ref.
#include <benchmark/benchmark.h>

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/ffmpeg.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "baselines.hpp"
#include "bench_support.hpp"
#include "frame_handoff.hpp"

namespace daq_bench {
namespace {

constexpr int width = 1024;
constexpr int height = static_cast<int>(frame_bytes / width);

void wrap_buffer(benchmark::State& state) {
  daq_pool::BufferPool pool(1, frame_bytes);
  const daq_pool::Bytes frame = frozen_frame(pool);
  measure_handoffs(state, [&] {
    AVBufferRef* ref = daq_pool::ffmpeg::wrap_buffer(frame);  // one more view, moved into FFmpeg's buffer
    escape(ref);
    av_buffer_unref(&ref);  // the free callback drops the view
  });
}

void wrap_gray_frame(benchmark::State& state) {
  daq_pool::BufferPool pool(1, frame_bytes);
  const daq_pool::Bytes frame = frozen_frame(pool);
  AVFrame* av_frame = av_frame_alloc();
  measure_handoffs(state, [&] {
    daq_pool::ffmpeg::wrap_gray_frame(av_frame, frame, {.width = width, .height = height, .stride = width});
    escape(av_frame);
    av_frame_unref(av_frame);
  });
  av_frame_free(&av_frame);
}

void copy_in(benchmark::State& state) {
  const PageBuffer sdk_frame(frame_bytes);
  measure_handoffs(state, [&] {
    AVBufferRef* ref = av_buffer_alloc(frame_bytes);
    std::memcpy(ref->data, sdk_frame.data(), frame_bytes);
    escape(ref);
    av_buffer_unref(&ref);
  });
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(frame_bytes));
}

void plain_create(benchmark::State& state) {
  PageBuffer plain(frame_bytes);
  const auto data = reinterpret_cast<std::uint8_t*>(plain.data());
  measure_handoffs(state, [&] {
    AVBufferRef* ref = av_buffer_create(
        data, frame_bytes, [](void*, std::uint8_t*) {}, nullptr, AV_BUFFER_FLAG_READONLY);
    escape(ref);
    av_buffer_unref(&ref);
  });
}

#if defined(DAQ_BENCH_FFMPEG)
void pool_ref(benchmark::State& state) {
  AvPool pool(1, frame_bytes, false);
  auto frame = pool.acquire();
  measure_handoffs(state, [&] {
    AVBufferRef* ref = av_buffer_ref(frame.get());
    escape(ref);
    av_buffer_unref(&ref);
  });
}
#endif

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("ffmpeg/handoff_8MiB/wrap_buffer", wrap_buffer);
  RegisterBenchmark("ffmpeg/handoff_8MiB/wrap_gray_frame", wrap_gray_frame);
  RegisterBenchmark("ffmpeg/handoff_8MiB/copy_in", copy_in);
  RegisterBenchmark("ffmpeg/handoff_8MiB/av_buffer_create_plain", plain_create);
#if defined(DAQ_BENCH_FFMPEG)
  RegisterBenchmark("ffmpeg/handoff_8MiB/av_buffer_ref_of_pool_buffer", pool_ref);
#endif
  return true;
}();

}  // namespace
}  // namespace daq_bench
