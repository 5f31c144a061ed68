// daq_pool/ffmpeg.hpp without an encoder: a view as an AVBufferRef and as a
// gray AVFrame. Zero copy; read-only (FFmpeg copies before it writes); the
// view's reference held by FFmpeg's buffer until its last av_buffer_unref,
// on whichever thread, and dropped then; bad input refused with a message
// naming the argument and the limit, and no buffer lost; daq-pool adds no
// allocation to FFmpeg's own two per wrapped buffer.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/ffmpeg.hpp>

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "catch.hpp"
#include "foreign_handoff.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;
namespace ffmpeg = daq_pool::ffmpeg;

namespace {

using test_support::holds_pattern;
using test_support::invalid_argument_of;
using test_support::patterned_frame;

}  // namespace

TEST_CASE("wrap_buffer: zero copy, read-only, the pool buffer returns at the last unref") {
  BufferPool pool(2, 4096);
  Bytes view = patterned_frame(pool, 1000, 7);
  const std::byte* data = view.data();

  AVBufferRef* ref = ffmpeg::wrap_buffer(view);  // a copy: our view stays
  REQUIRE(ref != nullptr);
  CHECK(reinterpret_cast<const std::byte*>(ref->data) == data);
  CHECK(ref->size == 1000);
  CHECK(view.use_count() == 2);  // ours + FFmpeg's
  // Read-only even with a single reference: FFmpeg will copy before writing.
  CHECK(av_buffer_is_writable(ref) == 0);
  CHECK(av_buffer_get_ref_count(ref) == 1);

  AVBufferRef* second = av_buffer_ref(ref);
  REQUIRE(second != nullptr);
  CHECK(second->data == ref->data);
  CHECK(view.use_count() == 2);  // FFmpeg counts its own references; one for us
  CHECK(av_buffer_is_writable(second) == 0);

  view.reset();
  CHECK(pool.available() == 1);  // FFmpeg still holds it
  av_buffer_unref(&ref);
  CHECK(ref == nullptr);
  CHECK(pool.available() == 1);
  CHECK(holds_pattern(second->data, 1000, 7));
  av_buffer_unref(&second);
  CHECK(pool.available() == 2);  // the last unref returned it
}

TEST_CASE("wrap_buffer takes a moved view without touching the count; slices wrap their own range") {
  BufferPool pool(1, 4096);
  Bytes view = patterned_frame(pool, 4096, 1);
  const Bytes part = view.slice(100, 50);
  AVBufferRef* ref = ffmpeg::wrap_buffer(std::move(view));
  CHECK(view.empty());  // NOLINT(bugprone-use-after-move): moved into FFmpeg's buffer
  AVBufferRef* slice_ref = ffmpeg::wrap_buffer(part);
  CHECK(reinterpret_cast<const std::byte*>(slice_ref->data) == part.data());
  CHECK(slice_ref->size == 50);
  CHECK(part.use_count() == 3);  // part, and one per AVBuffer
  av_buffer_unref(&ref);
  av_buffer_unref(&slice_ref);
  CHECK(part.use_count() == 1);
}

TEST_CASE("FFmpeg copies before it writes: make_writable leaves the pool's bytes alone") {
  BufferPool pool(1, 4096);
  SECTION("FFmpeg's was the only reference: the copy returns the buffer") {
    AVBufferRef* ref = ffmpeg::wrap_buffer(patterned_frame(pool, 512, 3));
    const std::uint8_t* pooled = ref->data;
    CHECK(pool.available() == 0);
    REQUIRE(av_buffer_make_writable(&ref) == 0);
    CHECK(ref->data != pooled);               // a copy in FFmpeg's memory...
    CHECK(holds_pattern(ref->data, 512, 3));  // ...of our bytes
    CHECK(av_buffer_is_writable(ref) != 0);
    CHECK(pool.available() == 1);  // our only reference was dropped by the copy
    av_buffer_unref(&ref);
  }
  SECTION("writing into the copy leaves the pool's bytes, still viewed by us, alone") {
    const Bytes ours = patterned_frame(pool, 512, 3);
    AVBufferRef* ref = ffmpeg::wrap_buffer(ours);
    REQUIRE(av_buffer_make_writable(&ref) == 0);
    CHECK(reinterpret_cast<const std::byte*>(ref->data) != ours.data());
    CHECK(ours.use_count() == 1);  // FFmpeg's reference went with the copy
    std::memset(ref->data, 0, 512);
    CHECK(holds_pattern(reinterpret_cast<const std::uint8_t*>(ours.data()), 512, 3));
    av_buffer_unref(&ref);
  }
  CHECK(pool.available() == 1);
}

TEST_CASE("the last unref returns the buffer on the thread that makes it") {
  BufferPool pool(2, 4096);
  AVBufferRef* ref = ffmpeg::wrap_buffer(patterned_frame(pool, 4096, 9));
  AVBufferRef* other = av_buffer_ref(ref);
  av_buffer_unref(&ref);
  CHECK(pool.available() == 1);
  std::size_t seen_before = 0, seen_after = 0;
  std::thread consumer([&] {
    seen_before = pool.available();
    av_buffer_unref(&other);  // the last reference: release_view runs here
    seen_after = pool.available();
  });
  consumer.join();
  CHECK(seen_before == 1);
  CHECK(seen_after == 2);
}

TEST_CASE("views wrapped for consumer threads while the producer reuses every buffer") {
  // 3 buffers, 2 consumers: each frame goes to both as separate AVBufferRefs (one wrap_buffer each), through
  // mutex-protected queues; each consumer checks every byte (a buffer reused
  // too early would hold a later frame) and drops its reference; whichever
  // is last returns the buffer, on its thread.
  const test_support::StressResult r = test_support::wrapped_views_stress<AVBufferRef*>(
      "ffmpeg wrap stress", [](const Bytes& view) { return ffmpeg::wrap_buffer(view); },
      [](AVBufferRef* ref, std::size_t n, unsigned seed) {
        return ref->size == n && holds_pattern(ref->data, n, seed);
      },
      [](AVBufferRef* ref) { av_buffer_unref(&ref); });
  CHECK(r.bad == 0);
  CHECK(r.received[0] == r.frames);
  CHECK(r.received[1] == r.frames);
  CHECK(r.available_after == r.buffers);
  CHECK(r.releases_after == r.frames);
}

TEST_CASE("wrap_gray_frame: GRAY8 and GRAY16LE frames over the view, padded rows") {
  BufferPool pool(2, 64 * 1024);
  AVFrame* frame = av_frame_alloc();
  REQUIRE(frame != nullptr);

  SECTION("GRAY8, packed rows") {
    Bytes view = patterned_frame(pool, 64 * 48, 5);
    const std::byte* data = view.data();
    ffmpeg::wrap_gray_frame(frame, std::move(view), {64, 48, 64, AV_PIX_FMT_GRAY8});
    CHECK(reinterpret_cast<const std::byte*>(frame->data[0]) == data);
    CHECK(frame->buf[0] != nullptr);
    CHECK(frame->buf[0]->data == frame->data[0]);
    CHECK(frame->linesize[0] == 64);
    CHECK(frame->width == 64);
    CHECK(frame->height == 48);
    CHECK(frame->format == AV_PIX_FMT_GRAY8);
    CHECK(av_frame_is_writable(frame) == 0);
  }
  SECTION("GRAY16LE with padded rows; the last row needs no padding") {
    const ffmpeg::GrayImage image{100, 30, 256, AV_PIX_FMT_GRAY16LE};
    CHECK(ffmpeg::gray_image_bytes(image) == 256 * 29 + 200);
    ffmpeg::wrap_gray_frame(frame, patterned_frame(pool, 256 * 29 + 200, 6), image);
    CHECK(frame->linesize[0] == 256);
    CHECK(frame->format == AV_PIX_FMT_GRAY16LE);
    CHECK(frame->width == 100);
  }
  CHECK(pool.available() == 1);

  // av_frame_ref shares the buffer (no copy); the frame is returned when
  // both are unreferenced.
  AVFrame* copy = av_frame_alloc();
  REQUIRE(av_frame_ref(copy, frame) == 0);
  CHECK(copy->data[0] == frame->data[0]);
  av_frame_unref(frame);
  CHECK(pool.available() == 1);
  av_frame_free(&copy);
  CHECK(pool.available() == 2);
  av_frame_free(&frame);
}

TEST_CASE("av_frame_make_writable copies the frame out of the pool") {
  BufferPool pool(1, 4096);
  AVFrame* frame = av_frame_alloc();
  ffmpeg::wrap_gray_frame(frame, patterned_frame(pool, 32 * 32, 11), {32, 32, 32, AV_PIX_FMT_GRAY8});
  const std::uint8_t* pooled = frame->data[0];
  REQUIRE(av_frame_make_writable(frame) == 0);
  CHECK(frame->data[0] != pooled);
  CHECK(pool.available() == 1);
  for (int y = 0; y < 32; ++y)
    CHECK(holds_pattern(frame->data[0] + y * frame->linesize[0], 32, 11 + static_cast<unsigned>(y) * 32));
  av_frame_free(&frame);
}

TEST_CASE("bad input: a clear error naming the argument and its limit; nothing lost") {
  BufferPool pool(1, 1 << 20);
  AVFrame* frame = av_frame_alloc();
  REQUIRE(frame != nullptr);
  using ffmpeg::GrayImage;
  const auto wrap = [&](std::size_t view_bytes, GrayImage image) {
    return invalid_argument_of([&] { ffmpeg::wrap_gray_frame(frame, patterned_frame(pool, view_bytes, 0), image); });
  };
  const auto contains = [](const std::string& message, const char* part) {
    INFO(message);
    CHECK(message.find(part) != std::string::npos);
  };

  contains(invalid_argument_of([] { (void)ffmpeg::wrap_buffer(Bytes()); }), "wrap_buffer: view is empty");
  contains(invalid_argument_of([&] {
             ffmpeg::wrap_gray_frame(frame, Bytes(), {8, 8, 8});
           }),
           "wrap_gray_frame: view is empty");
  contains(invalid_argument_of([&] {
             ffmpeg::wrap_gray_frame(nullptr, patterned_frame(pool, 64, 0), {8, 8, 8});
           }),
           "frame is null");
  contains(wrap(64, {0, 8, 8}), "width must be at least 1 (got 0)");
  contains(wrap(64, {8, -3, 8}), "height must be at least 1 (got -3)");
  contains(wrap(64, {8, 8, 8, AV_PIX_FMT_RGB24}), "format must be AV_PIX_FMT_GRAY8 or AV_PIX_FMT_GRAY16LE (got rgb24)");
  contains(wrap(64, {8, 8, 8, AV_PIX_FMT_NONE}), "(got -1)");
  contains(wrap(64, {8, 8, 7}), "stride (7 bytes) is less than a row of 8 pixels of 1 bytes (8 bytes)");
  contains(wrap(256, {8, 8, 15, AV_PIX_FMT_GRAY16LE}), "stride (15 bytes) is less than a row of 8 pixels of 2 bytes");
  contains(wrap(64, {8, 8, 0}), "stride (0 bytes)");
  contains(wrap(64, {8, 8, std::size_t{INT_MAX} + 1}), "exceeds INT_MAX, the limit of AVFrame::linesize");
  contains(wrap(64, {8, 3, std::size_t{INT_MAX} / 2}), "stride * height (1073741823 * 3) exceeds INT_MAX bytes");
  contains(wrap(64, {INT_MAX, 1, std::size_t{INT_MAX}, AV_PIX_FMT_GRAY16LE}), "stride (2147483647 bytes) is less than");
  // One byte short of stride * (height - 1) + width.
  contains(wrap(10 * 7 + 8 - 1, {8, 8, 10}),
           "view holds 77 bytes; a 8 x 8 gray image with stride 10 needs 78 (stride * (height - 1) + width * bytes");
  CHECK(frame->buf[0] == nullptr);  // unchanged by every failure
  CHECK(frame->data[0] == nullptr);

  // A frame that already holds data is refused, and keeps its data.
  ffmpeg::wrap_gray_frame(frame, patterned_frame(pool, 64, 0), {8, 8, 8});
  BufferPool other(1, 64);
  contains(invalid_argument_of([&] {
             ffmpeg::wrap_gray_frame(frame, patterned_frame(other, 64, 0), {8, 8, 8});
           }),
           "frame already holds data (buf[0] or data[0] is set): av_frame_unref() it first");
  CHECK(frame->width == 8);
  CHECK(other.available() == 1);  // the refused view was dropped
  CHECK(pool.available() == 0);
  av_frame_free(&frame);
  // Every refused view was dropped: the one buffer is back.
  CHECK(pool.available() == 1);
  CHECK(pool.stats().releases == pool.stats().acquires);

  // The layout check alone.
  contains(invalid_argument_of([] {
             (void)ffmpeg::gray_image_bytes({8, 8, 4});
           }),
           "gray_image_bytes: stride (4 bytes)");
}

TEST_CASE("allocations: FFmpeg's own two per wrapped buffer, none from daq-pool") {
  if (!alloc_counter::enabled) {
    WARN("allocations are not counted in this build (sanitizer): skipped");
    return;
  }
  BufferPool pool(2, 640 * 480);
  Bytes view = patterned_frame(pool, 640 * 480, 1);
  AVFrame* frame = av_frame_alloc();
  std::vector<std::uint8_t> plain(640 * 480);
  constexpr int rounds = 100;

  // FFmpeg's cost of wrapping foreign memory at all: av_buffer_create of a
  // plain array with a no-op free callback, then the unref.
  std::uint64_t ffmpeg_only = 0;
  {
    const alloc_counter::Scope scope;
    for (int i = 0; i < rounds; ++i) {
      AVBufferRef* ref = av_buffer_create(
          plain.data(), plain.size(), [](void*, std::uint8_t*) {}, nullptr, AV_BUFFER_FLAG_READONLY);
      av_buffer_unref(&ref);
    }
    ffmpeg_only = scope.total();
  }
  std::uint64_t wrapped = 0, framed = 0;
  {
    const alloc_counter::Scope scope;
    for (int i = 0; i < rounds; ++i) {
      AVBufferRef* ref = ffmpeg::wrap_buffer(view);
      av_buffer_unref(&ref);
    }
    wrapped = scope.total();
  }
  {
    const alloc_counter::Scope scope;
    for (int i = 0; i < rounds; ++i) {
      ffmpeg::wrap_gray_frame(frame, view, {640, 480, 640});
      av_frame_unref(frame);
    }
    framed = scope.total();
  }
  std::printf(
      "allocations per hand-off: av_buffer_create + unref %.1f, wrap_buffer + unref %.1f, "
      "wrap_gray_frame + av_frame_unref %.1f\n",
      static_cast<double>(ffmpeg_only) / rounds, static_cast<double>(wrapped) / rounds,
      static_cast<double>(framed) / rounds);
  CHECK(ffmpeg_only == 2 * rounds);  // libavutil 57: the AVBuffer and the AVBufferRef
  CHECK(wrapped == ffmpeg_only);     // daq-pool adds nothing
  CHECK(framed == ffmpeg_only);
  av_frame_free(&frame);
}
