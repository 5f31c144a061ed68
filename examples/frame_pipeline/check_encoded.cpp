// Decodes a file written by `frame_pipeline --encode=FILE` and checks every
// frame with the demo's own verifier: each decoded 1024-pixel-wide GRAY8
// picture, row after row, must be the camera frame byte for byte (header,
// per-frame pattern, checksum), frame numbers must increase, and each
// frame's timestamp must be its frame number / FPS (to half a frame: the
// container may count in milliseconds). Used by the ctest case
// frame_pipeline_encode (check_run.py).
//
// usage: check_encoded FILE FRAME_BYTES FPS
// Prints one JSON object; exit 0 if at least one frame was decoded and all
// verified, 1 otherwise, 2 on bad arguments or an unreadable file.
#include "frame_pattern.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, buf, sizeof buf);
  return buf;
}

struct Result {
  std::uint64_t frames = 0, verified = 0, failures = 0;
  std::string first_failure;
};

/// Checks one decoded picture against the frame it must be.
void check(const AVFrame* picture, AVRational time_base, double fps, std::size_t frame_bytes,
           std::vector<std::byte>& bytes, bool& has_previous, std::uint64_t& previous, Result& r) {
  ++r.frames;
  const auto row = static_cast<std::size_t>(picture->width);
  std::string failure;
  if (picture->format != AV_PIX_FMT_GRAY8 || row * static_cast<std::size_t>(picture->height) > bytes.size()) {
    failure = "not a GRAY8 picture of the frame's size";
  } else {
    for (int y = 0; y < picture->height; ++y)
      std::memcpy(bytes.data() + static_cast<std::size_t>(y) * row, picture->data[0] + y * picture->linesize[0], row);
    const frame_pipeline::FrameCheck c = frame_pipeline::verify_frame(
        std::span<const std::byte>(bytes.data(), frame_bytes), frame_bytes, has_previous, previous);
    if (c.fault != frame_pipeline::FrameFault::ok) {
      failure = std::string(frame_pipeline::to_string(c.fault)) + " at byte " + std::to_string(c.offset);
    } else if (const double t = static_cast<double>(picture->pts) * av_q2d(time_base),
               want = static_cast<double>(r.frames - 1) / fps;
               picture->pts == AV_NOPTS_VALUE || std::fabs(t - want) > 0.5 / fps) {
      // The n-th encoded frame is at n / fps: no gap where the camera's
      // frames were skipped, so stock tools see exactly the frames encoded.
      failure = "timestamp " + std::to_string(t) + " s is not picture " + std::to_string(r.frames - 1) + " / fps";
    } else {
      has_previous = true;
      previous = c.frame_number;
    }
  }
  if (failure.empty()) {
    ++r.verified;
  } else if (r.failures++ == 0) {
    r.first_failure = "picture " + std::to_string(r.frames - 1) + ": " + failure;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s FILE FRAME_BYTES FPS\n", argv[0]);
    return 2;
  }
  const char* path = argv[1];
  const auto frame_bytes = static_cast<std::size_t>(std::strtoull(argv[2], nullptr, 10));
  const double fps = std::strtod(argv[3], nullptr);
  if (!(fps > 0)) {
    std::fprintf(stderr, "check_encoded: FPS must be positive, got '%s'\n", argv[3]);
    return 2;
  }
  if (frame_bytes < frame_pipeline::frame_header_bytes || frame_bytes % 1024 != 0) {
    std::fprintf(stderr, "check_encoded: FRAME_BYTES must be a multiple of 1024 (whole rows), got '%s'\n", argv[2]);
    return 2;
  }
  av_log_set_level(AV_LOG_ERROR);
  AVFormatContext* format = nullptr;
  if (const int r = avformat_open_input(&format, path, nullptr, nullptr); r < 0) {
    std::fprintf(stderr, "check_encoded: cannot open %s: %s\n", path, av_error(r).c_str());
    return 2;
  }
  int status = 2;
  AVCodecContext* codec = nullptr;
  AVPacket* packet = av_packet_alloc();
  AVFrame* picture = av_frame_alloc();
  Result result;
  std::vector<std::byte> bytes(frame_bytes);
  bool has_previous = false;
  std::uint64_t previous = 0;
  AVRational time_base{1, 1};
  const auto receive_all = [&] {
    while (avcodec_receive_frame(codec, picture) == 0) {
      check(picture, time_base, fps, frame_bytes, bytes, has_previous, previous, result);
      av_frame_unref(picture);
    }
  };
  do {
    if (avformat_find_stream_info(format, nullptr) < 0) break;
    const int stream = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (stream < 0) break;
    const AVCodecParameters* par = format->streams[stream]->codecpar;
    const AVCodec* decoder = avcodec_find_decoder(par->codec_id);
    codec = decoder != nullptr ? avcodec_alloc_context3(decoder) : nullptr;
    if (codec == nullptr || packet == nullptr || picture == nullptr) break;
    if (avcodec_parameters_to_context(codec, par) < 0) break;
    time_base = format->streams[stream]->time_base;
    codec->pkt_timebase = time_base;
    if (avcodec_open2(codec, decoder, nullptr) < 0) break;
    while (av_read_frame(format, packet) >= 0) {
      if (packet->stream_index == stream && avcodec_send_packet(codec, packet) == 0) receive_all();
      av_packet_unref(packet);
    }
    avcodec_send_packet(codec, nullptr);
    receive_all();
    status = result.frames > 0 && result.failures == 0 ? 0 : 1;
    std::printf(
        "{\"codec\": \"%s\", \"frames\": %llu, \"verified\": %llu, \"failures\": %llu, \"first_failure\": \"%s\"}\n",
        decoder->name, static_cast<unsigned long long>(result.frames), static_cast<unsigned long long>(result.verified),
        static_cast<unsigned long long>(result.failures), result.first_failure.c_str());
  } while (false);
  if (status == 2) std::fprintf(stderr, "check_encoded: %s has no decodable video stream\n", path);
  av_frame_free(&picture);
  av_packet_free(&packet);
  avcodec_free_context(&codec);
  avformat_close_input(&format);
  return status;
}
