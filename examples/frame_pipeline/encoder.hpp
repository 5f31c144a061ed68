// The --encode consumer: every frame encoded losslessly with FFV1 into a
// file (Matroska, NUT, ... chosen by its name), without a copy. Each pooled
// frame's Bytes view becomes the plane of a GRAY8 AVFrame in place
// (daq_pool::ffmpeg::wrap_gray_frame); the pool buffer returns when FFmpeg
// drops its last reference to it.
//
// The demo's frames are raw bytes; the encoder sees each as a GRAY8 image
// 1024 pixels wide with one row per 1024 bytes (an 8 MiB frame: 1024 x 8192;
// the frame header is the first 32 pixels). A frame size that is not a
// multiple of 1024 leaves its last bytes out of the picture.
//
// Compiled only with FFmpeg (FRAME_PIPELINE_HAVE_FFMPEG: libavutil,
// libavcodec, libavformat).
#pragma once

#include "alloc_hook.hpp"
#include "stage.hpp"
#include "frame_pattern.hpp"

#include <daq_pool/bytes.hpp>
#include <daq_pool/ffmpeg.hpp>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
}

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>

namespace frame_pipeline {

/// Frames queued for the encoder at most. Like the preview, the encoder
/// takes the frames it has time for and the others are skipped (counted):
/// a lossless encoder is far slower than a camera delivering 800 MB/s, and
/// it must hold back neither the acquisition nor a shutdown, which waits
/// for at most these few frames.
inline constexpr std::size_t encoder_queue_frames = 4;

/// Pixels per row of the encoded picture (GRAY8: bytes per row).
inline constexpr int encode_width = 1024;

/// Rows of the picture for frames of `frame_bytes`.
inline int encode_height(std::size_t frame_bytes) noexcept {
  return static_cast<int>(frame_bytes / static_cast<std::size_t>(encode_width));
}

/// Why frames of `frame_bytes` cannot be encoded (a message naming the flags
/// and the allowed range), or nothing. FFmpeg limits a picture to about
/// INT_MAX / 8 bytes with its padding (av_image_check_size).
inline std::optional<std::string> encode_geometry_error(std::size_t frame_bytes) {
  // Setup only (single-threaded): silence av_image_check_size's own log
  // lines while probing.
  const int log_level = av_log_get_level();
  av_log_set_level(AV_LOG_QUIET);
  const auto fits = [](std::size_t rows) {
    return rows <= static_cast<std::size_t>(INT_MAX) &&
           av_image_check_size(encode_width, static_cast<unsigned>(rows), 0, nullptr) >= 0;
  };
  constexpr std::size_t min_rows = 16;
  const std::size_t rows = frame_bytes / static_cast<std::size_t>(encode_width);
  std::optional<std::string> error;
  if (rows < min_rows || !fits(rows)) {
    std::size_t lo = min_rows, hi = std::size_t{1} << 31;  // fits(lo), !fits(hi)
    while (hi - lo > 1) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (fits(mid)) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    error = "--frame-bytes=" + std::to_string(frame_bytes) + " with --encode: a " + std::to_string(encode_width) +
            " x " + std::to_string(rows) + " GRAY8 picture; allowed: " + std::to_string(min_rows * encode_width) +
            " to " + std::to_string(lo * encode_width) + " bytes (" + std::to_string(min_rows) + " to " +
            std::to_string(lo) + " rows of " + std::to_string(encode_width) + " pixels)";
  }
  av_log_set_level(log_level);
  return error;
}

/// What the encoder did, for the summary.
struct EncoderStats {
  std::string path;
  std::uint64_t frames = 0;       ///< frames encoded (sent and accepted)
  std::uint64_t skipped = 0;      ///< frames not queued: the encoder was busy (its subscriber counts them)
  std::uint64_t packets = 0;      ///< packets written
  std::uint64_t bytes = 0;        ///< bytes of packets written
  std::uint64_t lost = 0;         ///< frames not encoded after an error
  std::uint64_t allocations = 0;  ///< FFmpeg's own heap allocations on the encoder thread (counted apart)
  double busy_s = 0;              ///< time spent in FFmpeg (wrap, send, receive, write)
  double frames_per_s = 0;        ///< frames / busy_s: what the encoder can sustain
  int width = 0, height = 0;
  std::string error;  ///< the first error, empty if none
};

inline std::string encoder_text(const EncoderStats& e, std::uint64_t offered);
inline std::string encoder_json(const EncoderStats& e, const std::string& quoted_path,
                                const std::string& quoted_error);

/// Encodes every frame it is given into one file. open() (setup, may
/// allocate), then consume() and finish() on the encoder thread, then
/// stats(). A drop_newest subscriber by default: frames that arrive while
/// it is busy are skipped (counted), never waited for.
class Encoder final : public Stage {
 public:
  Encoder() = default;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  ~Encoder() override { release(); }

  /// Creates `path` and writes the container header for FFV1 GRAY8 frames
  /// of `frame_bytes` at `fps`. On failure returns false with `error` set
  /// and leaves no file behind.
  bool open(const std::string& path, std::size_t frame_bytes, double fps, std::string& error) {
    av_log_set_level(AV_LOG_ERROR);
    path_ = path;
    width_ = encode_width;
    height_ = encode_height(frame_bytes);
    const auto fail = [&](const std::string& what) {
      error = what;
      discard();
      return false;
    };
    av_log_set_level(AV_LOG_QUIET);  // our message says it better than FFmpeg's log line
    const int guessed = avformat_alloc_output_context2(&format_, nullptr, nullptr, path.c_str());
    av_log_set_level(AV_LOG_ERROR);
    if (guessed < 0 || format_ == nullptr)
      return fail("cannot tell the container from the file name; allowed: a name ending in .mkv, .nut or .avi");
    if (avformat_query_codec(format_->oformat, AV_CODEC_ID_FFV1, FF_COMPLIANCE_NORMAL) != 1)
      return fail(std::string("the ") + format_->oformat->name +
                  " container cannot hold FFV1; allowed: .mkv, .nut, .avi");
    const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_FFV1);
    if (codec == nullptr) return fail("this FFmpeg has no FFV1 encoder");
    codec_ = avcodec_alloc_context3(codec);
    stream_ = avformat_new_stream(format_, nullptr);
    frame_ = av_frame_alloc();
    packet_ = av_packet_alloc();
    if (codec_ == nullptr || stream_ == nullptr || frame_ == nullptr || packet_ == nullptr)
      return fail("out of memory");
    codec_->width = width_;
    codec_->height = height_;
    codec_->pix_fmt = AV_PIX_FMT_GRAY8;
    // pts are the camera's frame numbers: gaps (drops, overruns) keep their time.
    codec_->time_base = av_inv_q(av_d2q(fps, 1'000'000));
    codec_->level = 3;         // FFV1 version 3: slices, coded by FFmpeg's slice threads
    codec_->thread_count = 0;  // one per core
    codec_->thread_type = FF_THREAD_SLICE;
    if ((format_->oformat->flags & AVFMT_GLOBALHEADER) != 0) codec_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    // Golomb-Rice coding: about twice as fast as the range coder here (the
    // demo's payload is noise: nothing to gain from the better model).
    av_opt_set(codec_->priv_data, "coder", "rice", 0);
    if (const int r = avcodec_open2(codec_, codec, nullptr); r < 0) return fail("cannot open FFV1: " + av_error(r));
    if (avcodec_parameters_from_context(stream_->codecpar, codec_) < 0) return fail("out of memory");
    stream_->time_base = codec_->time_base;
    created_ = ::access(path.c_str(), F_OK) != 0;
    if (const int r = avio_open(&format_->pb, path.c_str(), AVIO_FLAG_WRITE); r < 0)
      return fail("cannot open for writing: " + av_error(r) + "; allowed: a writable file path");
    if (const int r = avformat_write_header(format_, nullptr); r < 0)
      return fail("cannot write the container header: " + av_error(r));
    stream_time_base_ = stream_->time_base;  // the muxer may have changed it
    return true;
  }

  const char* name() const noexcept override { return "encoder"; }
  daq_pool::SubscriberOptions subscription() const override {
    daq_pool::SubscriberOptions o;
    o.on_full = daq_pool::OnFull::drop_newest;
    o.capacity = encoder_queue_frames;
    return o;
  }

  /// Encoder thread: one frame. FFmpeg's own allocations on this thread are
  /// counted apart (alloc_hook::Library): they are FFmpeg's per-frame
  /// wrappers, packets and muxing, not daq_pool's. After an error it keeps
  /// taking frames (so the producer never stalls on it), counting those it
  /// could not encode.
  void consume(daq_pool::Received& frame) override {
    const alloc_hook::Library library_scope;
    if (!started_) {
      started_ = true;
      allocations0_ = alloc_hook::library();
    }
    if (!failed()) {
      const auto t0 = std::chrono::steady_clock::now();
      encode(std::move(frame).take());  // FFmpeg holds the view from here
      busy_ += std::chrono::steady_clock::now() - t0;
    } else {
      lost_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  /// Encoder thread, after the last frame: flushes the encoder and writes
  /// the trailer.
  void finish() override {
    const alloc_hook::Library library_scope;
    if (!started_) allocations0_ = alloc_hook::library();
    const auto t0 = std::chrono::steady_clock::now();
    if (!failed()) {
      if (const int r = avcodec_send_frame(codec_, nullptr); r < 0) set_error("flushing the encoder: " + av_error(r));
      drain();
    }
    if (format_ != nullptr && format_->pb != nullptr) {
      if (!failed()) {
        if (const int r = av_write_trailer(format_); r < 0) set_error("writing the trailer: " + av_error(r));
      }
      avio_closep(&format_->pb);
    }
    // FFV1 keeps a reference to the last frame it encoded until the codec
    // is freed: free it now, so that every pool buffer is back when the
    // encoder thread ends.
    avcodec_free_context(&codec_);
    busy_ += std::chrono::steady_clock::now() - t0;
    allocations_ = alloc_hook::library() - allocations0_;
  }

  /// After the encoder thread was joined: frees FFmpeg's contexts.
  void close() override { release(); }

  std::string error() const override {
    const EncoderStats e = stats();
    if (e.error.empty()) return "";
    return "--encode=" + e.path + " failed: " + e.error + " (" + std::to_string(e.lost) + " frames not encoded)";
  }

  std::string text(const daq_pool::SubscriberStats& counts) const override {
    EncoderStats e = stats();
    e.skipped = counts.dropped;
    return encoder_text(e, counts.delivered + counts.dropped);
  }

  std::string json(const daq_pool::SubscriberStats& counts) const override {
    EncoderStats e = stats();
    e.skipped = counts.dropped;
    return "\"encoder\": " + encoder_json(e, json_string(e.path), e.error.empty() ? "null" : json_string(e.error));
  }

  /// Frames encoded so far. Thread-safe.
  std::uint64_t frames() const noexcept { return frames_.load(std::memory_order_relaxed); }

  /// The totals; call after finish() returned.
  EncoderStats stats() const {
    EncoderStats s;
    s.path = path_;
    s.frames = frames();
    s.packets = packets_;
    s.bytes = bytes_;
    s.lost = lost_.load(std::memory_order_relaxed);
    s.allocations = allocations_;
    s.busy_s = std::chrono::duration<double>(busy_).count();
    s.frames_per_s = s.busy_s > 0 ? static_cast<double>(s.frames) / s.busy_s : 0.0;
    s.width = width_;
    s.height = height_;
    {
      std::lock_guard lock(error_mutex_);
      s.error = error_;
    }
    return s;
  }

  /// Setup failed: free everything, and remove the file if we created it.
  void discard() {
    const bool had_file = format_ != nullptr && format_->pb != nullptr;
    release();
    if (had_file && created_) ::unlink(path_.c_str());
  }

 private:
  static std::string av_error(int code) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {};
    av_strerror(code, buf, sizeof buf);
    return buf;
  }

  bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }

  void set_error(const std::string& what) {
    std::lock_guard lock(error_mutex_);
    if (error_.empty()) error_ = what;
    failed_.store(true, std::memory_order_relaxed);
  }

  // Wraps the view as the frame's plane (zero copy), sends it, writes what
  // comes out. pts: the frame number from the frame's header.
  void encode(daq_pool::Bytes view) {
    FrameHeader header{};
    if (view.size() >= sizeof header) std::memcpy(&header, view.data(), sizeof header);
    try {
      daq_pool::ffmpeg::wrap_gray_frame(
          frame_, std::move(view),
          {.width = width_, .height = height_, .stride = static_cast<std::size_t>(width_), .format = AV_PIX_FMT_GRAY8});
    } catch (const std::exception& e) {
      set_error(e.what());
      lost_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    frame_->pts = static_cast<std::int64_t>(header.frame_number);
    const int r = avcodec_send_frame(codec_, frame_);
    av_frame_unref(frame_);  // our reference; the encoder holds its own until it is done
    if (r < 0) {
      set_error("encoding frame " + std::to_string(header.frame_number) + ": " + av_error(r));
      lost_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    frames_.fetch_add(1, std::memory_order_relaxed);
    drain();
  }

  void drain() {
    for (;;) {
      const int r = avcodec_receive_packet(codec_, packet_);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0) {
        set_error("encoding: " + av_error(r));
        return;
      }
      ++packets_;
      bytes_ += static_cast<std::uint64_t>(packet_->size);
      av_packet_rescale_ts(packet_, codec_->time_base, stream_time_base_);
      packet_->stream_index = stream_->index;
      if (const int w = av_interleaved_write_frame(format_, packet_); w < 0) {  // takes the packet's data
        set_error("writing " + path_ + ": " + av_error(w));
        return;
      }
    }
  }

  void release() noexcept {
    av_packet_free(&packet_);
    av_frame_free(&frame_);
    avcodec_free_context(&codec_);
    if (format_ != nullptr) {
      if (format_->pb != nullptr) avio_closep(&format_->pb);
      avformat_free_context(format_);
      format_ = nullptr;
    }
    stream_ = nullptr;
  }

  std::string path_;
  int width_ = 0, height_ = 0;
  bool created_ = false;
  AVFormatContext* format_ = nullptr;
  AVCodecContext* codec_ = nullptr;
  AVStream* stream_ = nullptr;
  AVRational stream_time_base_{1, 1};
  AVFrame* frame_ = nullptr;
  AVPacket* packet_ = nullptr;
  // Encoder-thread state, read by stats() after the thread is joined.
  std::uint64_t packets_ = 0, bytes_ = 0, allocations_ = 0, allocations0_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::duration busy_{};
  // relaxed: statistics for the progress line, exact after join.
  std::atomic<std::uint64_t> frames_{0}, lost_{0};
  std::atomic<bool> failed_{false};
  mutable std::mutex error_mutex_;
  std::string error_;
};

/// The summary lines of the encoder (text); `offered`: frames published to it.
inline std::string encoder_text(const EncoderStats& e, std::uint64_t offered) {
  char buf[2048];
  int n = std::snprintf(
      buf, sizeof buf,
      "  encoder              %llu of %llu frames (%llu skipped while busy), FFV1 %d x %d GRAY8 (zero copy), "
      "%.1f MB (%.1f%% of raw) to %s\n"
      "  encoder rate         %.1f frames/s while busy (%.2f s in FFmpeg); FFmpeg's own heap allocations "
      "%.1f per frame (counted apart)\n",
      static_cast<unsigned long long>(e.frames), static_cast<unsigned long long>(offered),
      static_cast<unsigned long long>(e.skipped), e.width, e.height, static_cast<double>(e.bytes) / 1e6,
      e.frames > 0 ? 100.0 * static_cast<double>(e.bytes) /
                         (static_cast<double>(e.frames) * e.width * static_cast<double>(e.height))
                   : 0.0,
      e.path.c_str(), e.frames_per_s, e.busy_s,
      e.frames > 0 ? static_cast<double>(e.allocations) / static_cast<double>(e.frames) : 0.0);
  std::string out(buf, n > 0 ? std::min(static_cast<std::size_t>(n), sizeof buf - 1) : 0);
  if (!e.error.empty())
    out += "  encoder ERROR        " + e.error + "; " + std::to_string(e.lost) + " frames not encoded\n";
  return out;
}

/// The encoder's JSON object (one line, no trailing comma).
inline std::string encoder_json(const EncoderStats& e, const std::string& quoted_path,
                                const std::string& quoted_error) {
  char numbers[512];  // the numbers only: the path and the error may be long
  std::snprintf(numbers, sizeof numbers,
                "\"codec\": \"ffv1\", \"width\": %d, \"height\": %d, \"frames\": %llu, \"skipped\": %llu, "
                "\"packets\": %llu, \"bytes\": %llu, \"lost\": %llu, \"busy_s\": %.3f, \"frames_per_s\": %.3f, "
                "\"ffmpeg_allocations\": %llu",
                e.width, e.height, static_cast<unsigned long long>(e.frames),
                static_cast<unsigned long long>(e.skipped), static_cast<unsigned long long>(e.packets),
                static_cast<unsigned long long>(e.bytes), static_cast<unsigned long long>(e.lost), e.busy_s,
                e.frames_per_s, static_cast<unsigned long long>(e.allocations));
  return "{\"path\": " + quoted_path + ", " + numbers + ", \"error\": " + quoted_error + "}";
}

}  // namespace frame_pipeline
