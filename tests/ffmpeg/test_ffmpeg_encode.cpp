// A real FFmpeg client: pooled frames encoded losslessly without a copy.
// 60 frames of 640 x 480 GRAY8 (and GRAY16LE) carrying the demo's
// deterministic pattern are wrapped in place (daq_pool::ffmpeg::
// wrap_gray_frame) and passed to avcodec_send_frame as they are; the packets
// are decoded again and every pixel is compared with the source. Run with
// FFV1 on one thread and with slice threads (FFmpeg's threads read the pool's
// memory; the encoder drops its references on the calling thread), and with
// FFVHUFF frame-threaded (the encoder's worker threads drop the last
// reference, so the pool buffers return on FFmpeg's threads). Every buffer
// is back in the pool once the encoder is flushed and freed.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/ffmpeg.hpp>

extern "C" {
#include <libavcodec/avcodec.h>
}

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "catch.hpp"
#include "frame_pattern.hpp"  // examples/frame_pipeline: the demo's frame content and its check
#include "watchdog.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;
namespace ffmpeg = daq_pool::ffmpeg;

namespace {

constexpr int frame_count = 60;

/// "Resource temporarily unavailable"-style text for an FFmpeg error code.
std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

/// Throws (failing the test with FFmpeg's message) unless `code` >= 0.
int check_av(int code, const char* what) {
  if (code < 0) throw std::runtime_error(std::string(what) + ": " + av_error(code));
  return code;
}

/// One encoder configuration.
struct Setup {
  const char* name;
  AVCodecID codec;
  AVPixelFormat format;
  int width, height;
  int threads;      ///< AVCodecContext::thread_count
  int thread_type;  ///< FF_THREAD_SLICE or FF_THREAD_FRAME
  int slices;       ///< FFV1 slices (0: encoder default)
  bool record_release_threads;
};

/// Which threads dropped the last reference of a wrapped frame (test
/// instrumentation, see record_releases).
struct ReleaseLog {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::size_t count = 0;
};

struct Recorded {
  AVBufferRef* inner;
  ReleaseLog* log;
};

/// Free callback of the recording wrapper: runs where FFmpeg drops the
/// frame's last reference (any thread, e.g. a frame-threaded encoder's
/// worker); notes the thread, then drops the inner reference right here, so
/// daq_pool's release_view runs on the same thread.
void record_release(void* opaque, std::uint8_t* /*data*/) {
  // As daq_pool's own callbacks do: the hand-off through FFmpeg's (under
  // TSan, ignored) synchronisation, made visible to ThreadSanitizer.
  daq_pool::detail::handle_received(opaque);
  auto* r = static_cast<Recorded*>(opaque);
  {
    std::lock_guard lock(r->log->mutex);
    r->log->threads.insert(std::this_thread::get_id());
    ++r->log->count;
  }
  av_buffer_unref(&r->inner);
  delete r;
}

/// Wraps frame->buf[0] (ours) in an outer AVBufferRef whose free callback
/// records the releasing thread. FFmpeg sees the same data pointer.
void record_releases(AVFrame* frame, ReleaseLog& log) {
  AVBufferRef* inner = frame->buf[0];
  auto* r = new Recorded{inner, &log};
  daq_pool::detail::handle_published(r);
  frame->buf[0] = av_buffer_create(inner->data, inner->size, &record_release, r, AV_BUFFER_FLAG_READONLY);
  REQUIRE(frame->buf[0] != nullptr);
}

/// RAII for an AVCodecContext.
struct Codec {
  AVCodecContext* ctx = nullptr;
  Codec() = default;
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;
  ~Codec() { avcodec_free_context(&ctx); }
};

void open_encoder(Codec& enc, const Setup& s) {
  const AVCodec* codec = avcodec_find_encoder(s.codec);
  REQUIRE(codec != nullptr);  // Debian's libavcodec has FFV1 and FFVHUFF
  enc.ctx = avcodec_alloc_context3(codec);
  REQUIRE(enc.ctx != nullptr);
  enc.ctx->width = s.width;
  enc.ctx->height = s.height;
  enc.ctx->pix_fmt = s.format;
  enc.ctx->time_base = AVRational{1, 30};
  enc.ctx->thread_count = s.threads;
  enc.ctx->thread_type = s.thread_type;
  if (s.codec == AV_CODEC_ID_FFV1) {
    enc.ctx->level = 3;  // FFV1 version 3: slices, so that slice threads have work
    enc.ctx->slices = s.slices;
  }
  check_av(avcodec_open2(enc.ctx, codec, nullptr), "avcodec_open2 (encoder)");
}

void open_decoder(Codec& dec, const Codec& enc, const Setup& s) {
  const AVCodec* codec = avcodec_find_decoder(s.codec);
  REQUIRE(codec != nullptr);
  dec.ctx = avcodec_alloc_context3(codec);
  REQUIRE(dec.ctx != nullptr);
  dec.ctx->width = s.width;
  dec.ctx->height = s.height;
  dec.ctx->pix_fmt = s.format;
  dec.ctx->thread_count = 1;
  if (enc.ctx->extradata_size > 0) {  // FFV1 v3 and FFVHUFF keep their tables there
    const auto n = static_cast<std::size_t>(enc.ctx->extradata_size);
    dec.ctx->extradata = static_cast<std::uint8_t*>(av_mallocz(n + AV_INPUT_BUFFER_PADDING_SIZE));
    REQUIRE(dec.ctx->extradata != nullptr);
    std::memcpy(dec.ctx->extradata, enc.ctx->extradata, n);
    dec.ctx->extradata_size = enc.ctx->extradata_size;
  }
  check_av(avcodec_open2(dec.ctx, codec, nullptr), "avcodec_open2 (decoder)");
}

/// What the decoder gave back, checked against the source pattern.
struct Decoded {
  std::vector<std::int64_t> pts;
  std::size_t mismatched_frames = 0;
  std::string first_mismatch;
};

/// Compares a decoded frame, row by row, with the source frame `pts`.
void compare(const AVFrame* out, const Setup& s, std::size_t row_bytes, std::vector<std::byte>& expected,
             std::vector<std::byte>& got, Decoded& d) {
  d.pts.push_back(out->pts);
  const std::size_t image_bytes = row_bytes * static_cast<std::size_t>(s.height);
  frame_pipeline::fill_frame(expected, static_cast<std::uint64_t>(out->pts));
  bool same = out->width == s.width && out->height == s.height && out->format == s.format;
  if (same) {
    for (int y = 0; y < s.height; ++y)
      std::memcpy(got.data() + static_cast<std::size_t>(y) * row_bytes, out->data[0] + y * out->linesize[0], row_bytes);
    same = std::memcmp(got.data(), expected.data(), image_bytes) == 0;
  }
  if (!same && d.mismatched_frames++ == 0) {
    const frame_pipeline::FrameCheck c = frame_pipeline::verify_frame(got, image_bytes, false, 0);
    d.first_mismatch = "frame pts " + std::to_string(out->pts) + ": " + frame_pipeline::to_string(c.fault) +
                       " at byte " + std::to_string(c.offset);
  }
}

/// Sends `packet` (nullptr: flush) to the decoder and compares every frame
/// it returns.
void decode(Codec& dec, const AVPacket* packet, AVFrame* out, const Setup& s, std::size_t row_bytes,
            std::vector<std::byte>& expected, std::vector<std::byte>& got, Decoded& d) {
  check_av(avcodec_send_packet(dec.ctx, packet), "avcodec_send_packet");
  for (;;) {
    const int r = avcodec_receive_frame(dec.ctx, out);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
    check_av(r, "avcodec_receive_frame");
    compare(out, s, row_bytes, expected, got, d);
    av_frame_unref(out);
  }
}

/// Encodes frame_count pooled frames with `s`, decodes them, checks them.
void round_trip(const Setup& s) {
  INFO("setup: " << s.name);
  const std::size_t bpp = ffmpeg::gray_bytes_per_pixel(s.format);
  const std::size_t row_bytes = static_cast<std::size_t>(s.width) * bpp;
  const std::size_t image_bytes = row_bytes * static_cast<std::size_t>(s.height);
  constexpr std::size_t pool_size = 8;
  const test_support::Watchdog watchdog(std::string("ffmpeg round trip: ") + s.name, std::chrono::seconds(120));
  BufferPool pool(pool_size, image_bytes);

  ReleaseLog log;
  Decoded decoded;
  std::vector<std::byte> expected(image_bytes), got(image_bytes);
  std::uint64_t packets = 0, packet_bytes = 0, allocations = 0, decoder_allocations = 0, test_allocations = 0;
  {
    Codec enc, dec;
    open_encoder(enc, s);
    open_decoder(dec, enc, s);
    AVFrame* frame = av_frame_alloc();
    AVFrame* out = av_frame_alloc();
    AVPacket* packet = av_packet_alloc();
    REQUIRE((frame != nullptr && out != nullptr && packet != nullptr));

    const auto drain = [&] {
      for (;;) {
        const int r = avcodec_receive_packet(enc.ctx, packet);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
        check_av(r, "avcodec_receive_packet");
        ++packets;
        packet_bytes += static_cast<std::uint64_t>(packet->size);
        {
          const alloc_counter::Scope decoding;
          decode(dec, packet, out, s, row_bytes, expected, got, decoded);
          decoder_allocations += decoding.total();
        }
        av_packet_unref(packet);
      }
    };

    const alloc_counter::Scope counted;
    for (int i = 0; i < frame_count; ++i) {
      // The encoder holds frames for a while (delay, worker threads); a
      // pool it never gave back would stop here, not hang.
      std::optional<PooledBuffer> buffer = pool.try_acquire_for(std::chrono::seconds(30));
      REQUIRE(buffer.has_value());
      frame_pipeline::fill_frame(buffer->get_mut().first(image_bytes), static_cast<std::uint64_t>(i));
      buffer->set_size(image_bytes);
      Bytes view = std::move(*buffer).freeze();
      const std::byte* pixels = view.data();

      ffmpeg::wrap_gray_frame(frame, std::move(view),
                              {.width = s.width, .height = s.height, .stride = row_bytes, .format = s.format});
      CHECK(reinterpret_cast<const std::byte*>(frame->data[0]) == pixels);  // zero copy
      if (s.record_release_threads) {
        const alloc_counter::Scope instrumentation;  // the test's own wrapper, not counted as FFmpeg's
        record_releases(frame, log);
        test_allocations += instrumentation.total();
      }
      frame->pts = i;
      check_av(avcodec_send_frame(enc.ctx, frame), "avcodec_send_frame");
      av_frame_unref(frame);  // our reference; the encoder holds its own
      drain();
    }
    check_av(avcodec_send_frame(enc.ctx, nullptr), "avcodec_send_frame (flush)");
    drain();
    allocations = counted.total() - decoder_allocations - test_allocations;
    decode(dec, nullptr, out, s, row_bytes, expected, got, decoded);

    std::printf("%s: %llu packets, %.1f%% of the raw size; pool %zu of %zu back after the flush, before freeing\n",
                s.name, static_cast<unsigned long long>(packets),
                100.0 * static_cast<double>(packet_bytes) / static_cast<double>(image_bytes * frame_count),
                pool.available(), pool.size());
    if (alloc_counter::enabled)
      std::printf(
          "%s: heap allocations per frame, all FFmpeg's: %.1f encoding (2 of them wrap the frame), %.1f decoding\n",
          s.name, static_cast<double>(allocations) / frame_count,
          static_cast<double>(decoder_allocations) / frame_count);
    av_packet_free(&packet);
    av_frame_free(&out);
    av_frame_free(&frame);
  }                                        // the encoder and decoder are freed here
  CHECK(pool.available() == pool.size());  // every buffer back once the encoder is gone
  const daq_pool::BufferPoolStats st = pool.stats();
  CHECK(st.acquires == static_cast<std::uint64_t>(frame_count));
  CHECK(st.releases == st.acquires);

  INFO(decoded.first_mismatch);
  CHECK(decoded.mismatched_frames == 0);
  REQUIRE(decoded.pts.size() == static_cast<std::size_t>(frame_count));
  for (int i = 0; i < frame_count; ++i) CHECK(decoded.pts[static_cast<std::size_t>(i)] == i);

  if (s.record_release_threads) {
    CHECK(log.count == static_cast<std::size_t>(frame_count));
    // Frame-threaded: FFmpeg's workers drop the references they encoded;
    // the test's thread (av_frame_unref after each send) only sometimes
    // has the last word.
    std::printf("%s: the last references were dropped on %zu threads\n", s.name, log.threads.size());
    const bool on_ffmpeg_thread =
        log.threads.size() > 1 || (log.threads.size() == 1 && *log.threads.begin() != std::this_thread::get_id());
    CHECK(on_ffmpeg_thread);
  }
}

}  // namespace

TEST_CASE("FFV1 encodes pooled GRAY8 frames in place, losslessly, one thread") {
  round_trip({"ffv1 gray8 1 thread", AV_CODEC_ID_FFV1, AV_PIX_FMT_GRAY8, 640, 480, 1, FF_THREAD_SLICE, 0, false});
}

TEST_CASE("FFV1 with slice threads: FFmpeg's threads read the pool's memory") {
  round_trip(
      {"ffv1 gray8 2 slice threads", AV_CODEC_ID_FFV1, AV_PIX_FMT_GRAY8, 640, 480, 2, FF_THREAD_SLICE, 4, false});
}

TEST_CASE("FFV1 encodes GRAY16LE frames in place") {
  round_trip({"ffv1 gray16le", AV_CODEC_ID_FFV1, AV_PIX_FMT_GRAY16LE, 320, 240, 1, FF_THREAD_SLICE, 0, false});
}

TEST_CASE("FFVHUFF frame-threaded: the pool buffers return on FFmpeg's worker threads") {
  round_trip(
      {"ffvhuff gray8 2 frame threads", AV_CODEC_ID_FFVHUFF, AV_PIX_FMT_GRAY8, 640, 480, 2, FF_THREAD_FRAME, 0, true});
}
