// The FFmpeg example of docs/ffmpeg.md: camera frames in pool buffers, encoded
// losslessly with FFV1 without copying them into FFmpeg. Each frozen view
// becomes the plane of a GRAY8 AVFrame in place (wrap_gray_frame); the
// encoder takes its own reference; the pool buffer comes back when FFmpeg
// drops the last one, on whichever thread that is.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/ffmpeg.hpp>

extern "C" {
#include <libavcodec/avcodec.h>
}

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <utility>

int main() {
  constexpr int width = 640, height = 480;
  constexpr std::size_t frame_bytes = std::size_t{width} * height;
  daq_pool::BufferPool pool(4, frame_bytes);

  const AVCodec* ffv1 = avcodec_find_encoder(AV_CODEC_ID_FFV1);
  AVCodecContext* encoder = ffv1 != nullptr ? avcodec_alloc_context3(ffv1) : nullptr;
  if (encoder == nullptr) return 1;
  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_GRAY8;
  encoder->time_base = AVRational{1, 100};
  if (avcodec_open2(encoder, ffv1, nullptr) < 0) return 1;
  AVFrame* frame = av_frame_alloc();
  AVPacket* packet = av_packet_alloc();

  std::size_t packets = 0, bytes_out = 0;
  const auto drain = [&] {
    while (avcodec_receive_packet(encoder, packet) == 0) {
      ++packets;
      bytes_out += static_cast<std::size_t>(packet->size);
      av_packet_unref(packet);  // a real program writes it (av_interleaved_write_frame)
    }
  };
  for (int n = 0; n < 20; ++n) {
    // Camera thread: fill a pool buffer (here: a moving gradient) and freeze it.
    daq_pool::PooledBuffer buffer = pool.acquire();  // waits while FFmpeg holds all 4
    auto* pixels = reinterpret_cast<std::uint8_t*>(buffer.data());
    for (std::size_t i = 0; i < frame_bytes; ++i) pixels[i] = static_cast<std::uint8_t>(i % width + n);
    buffer.set_size(frame_bytes);
    daq_pool::Bytes view = std::move(buffer).freeze();

    // Hand it to FFmpeg: the AVFrame's plane *is* the pool buffer.
    daq_pool::ffmpeg::wrap_gray_frame(frame, std::move(view), {.width = width, .height = height, .stride = width});
    frame->pts = n;
    if (avcodec_send_frame(encoder, frame) < 0) return 1;
    av_frame_unref(frame);  // our reference; the encoder keeps its own while it needs the pixels
    drain();
  }
  avcodec_send_frame(encoder, nullptr);  // flush
  drain();
  std::printf("%zu packets, %zu bytes; %zu of %zu buffers back before the encoder is freed\n", packets, bytes_out,
              pool.available(), pool.size());
  avcodec_free_context(&encoder);  // FFV1 holds its last frame until here
  av_packet_free(&packet);
  av_frame_free(&frame);
  std::printf("%zu of %zu buffers back after\n", pool.available(), pool.size());
  return packets == 20 && pool.available() == pool.size() ? 0 : 1;
}
