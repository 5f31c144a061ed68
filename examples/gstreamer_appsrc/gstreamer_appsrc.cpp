// The GStreamer example of docs/gstreamer.md: camera frames in pool buffers pushed into
// a pipeline without a copy. Each frozen view becomes a GstBuffer holding
// one read-only GstMemory over the pool's bytes (push_to_appsrc); the pool
// buffer comes back when GStreamer frees that memory, on whichever of its
// threads that is. Swap `fakesink` for `videoconvert ! autovideosink`, an
// encoder or an RTSP sink: the hand-off is the same.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/gstreamer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <utility>

int main() {
  gst_init(nullptr, nullptr);
  constexpr int width = 640, height = 480;
  constexpr std::size_t frame_bytes = std::size_t{width} * height;
  constexpr GstClockTime frame_duration = GST_SECOND / 100;
  daq_pool::BufferPool pool(4, frame_bytes);

  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(
      "appsrc name=camera format=time block=true max-bytes=1000000 "
      "caps=video/x-raw,format=GRAY8,width=640,height=480,framerate=100/1 "
      "! queue ! fakesink sync=false enable-last-sample=false",
      &error);
  if (pipeline == nullptr) {
    std::fprintf(stderr, "gst_parse_launch: %s\n", error->message);
    g_error_free(error);
    return 1;
  }
  GstElement* appsrc = gst_bin_get_by_name(GST_BIN(pipeline), "camera");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);

  int pushed = 0;
  for (int n = 0; n < 50; ++n) {
    // Camera thread: fill a pool buffer (here: a moving gradient) and freeze it.
    daq_pool::PooledBuffer buffer = pool.acquire();  // waits while the pipeline holds all 4
    auto* pixels = reinterpret_cast<std::uint8_t*>(buffer.data());
    for (std::size_t i = 0; i < frame_bytes; ++i) pixels[i] = static_cast<std::uint8_t>(i % width + n);
    buffer.set_size(frame_bytes);

    // Hand it to GStreamer: appsrc takes the buffer whatever it answers.
    const daq_pool::gstreamer::PushResult r = daq_pool::gstreamer::push_to_appsrc(
        appsrc, std::move(buffer).freeze(), static_cast<GstClockTime>(n) * frame_duration, frame_duration);
    if (!r.ok()) {  // flushing (pipeline stopped) or eos: the frame was dropped, its buffer is back
      std::fprintf(stderr, "frame %d refused: %s\n", n, r.name());
      break;
    }
    ++pushed;
  }
  gst_app_src_end_of_stream(GST_APP_SRC(appsrc));
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* done = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND,
                                                static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const bool eos = done != nullptr && GST_MESSAGE_TYPE(done) == GST_MESSAGE_EOS;
  if (done != nullptr) gst_message_unref(done);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);  // every element lets go of what it holds
  gst_object_unref(appsrc);
  gst_object_unref(pipeline);
  std::printf("%d frames pushed, end of stream %s; %zu of %zu buffers back\n", pushed, eos ? "reached" : "NOT reached",
              pool.available(), pool.size());
  return pushed == 50 && eos && pool.available() == pool.size() ? 0 : 1;
}
