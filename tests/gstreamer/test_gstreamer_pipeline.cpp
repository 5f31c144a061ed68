// Real GStreamer pipelines fed with pooled frames, without a copy:
//   appsrc ! queue ! fakesink                       100 frames; the sink (on
//     its streaming thread) sees the same bytes at the same address
//   appsrc ! queue ! videoconvert ! appsink          passthrough: a sample
//     held by the application keeps its pool buffer out, intact, while the
//     other buffers cycle; released, it comes back; the last one returns
//     only when the pipeline is freed
//   appsrc ! queue ! videoconvert ! GRAY16_LE ! appsink   a real conversion:
//     videoconvert drops our buffers on its streaming thread
// and appsrc's flow results (flushing before the pipeline runs, EOS after
// end-of-stream), with the frame's buffer back in the pool either way.
//
// Checks that run on GStreamer's threads read the frames through GLib
// (g_compute_checksum_for_data), whose code is uninstrumented: GLib's
// futex-based GMutex/GCond, which order those reads after our writes, are
// invisible to ThreadSanitizer (see tsan.supp).
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/gstreamer.hpp>

#include <gst/app/gstappsink.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "watchdog.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;
namespace gstreamer = daq_pool::gstreamer;
using namespace std::chrono_literals;

namespace {

constexpr int width = 640;
constexpr int height = 480;
constexpr std::size_t frame_bytes = static_cast<std::size_t>(width) * height;
constexpr GstClockTime frame_duration = GST_SECOND / 30;
constexpr char gray8_caps[] = "video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1";

/// Frame `n`'s pixels: a gradient that moves with the frame number, so that
/// every frame differs from every other in every row.
void fill(std::byte* p, std::size_t n) {
  for (std::size_t y = 0; y < static_cast<std::size_t>(height); ++y)
    for (std::size_t x = 0; x < static_cast<std::size_t>(width); ++x)
      p[y * width + x] = static_cast<std::byte>((x + 3 * y + 7 * n + (x * y >> 6)) & 0xFF);
}

/// SHA-1 of `n` bytes at `p`, by GLib (uninstrumented; see the file comment).
std::string sha1(const void* p, std::size_t n) {
  gchar* hex = g_compute_checksum_for_data(G_CHECKSUM_SHA1, static_cast<const guchar*>(p), n);
  std::string s(hex);
  g_free(hex);
  return s;
}

/// A frozen pooled frame `n`, or nothing if no buffer came back within 10 s
/// (a pipeline that never releases would fail here instead of hanging).
std::optional<Bytes> next_frame(BufferPool& pool, std::size_t n) {
  std::optional<PooledBuffer> b = pool.try_acquire_for(10s);
  if (!b) return std::nullopt;
  fill(b->data(), n);
  b->set_size(frame_bytes);
  return std::move(*b).freeze();
}

/// Waits (bounded) until `pool.available()` reaches `n`; returns what it saw.
std::size_t wait_available(const BufferPool& pool, std::size_t n, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (pool.available() < n && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  return pool.available();
}

/// A parsed pipeline with its appsrc (and sink), stopped and freed at the end.
class Pipeline {
 public:
  explicit Pipeline(const std::string& description) {
    if (gst_is_initialized() == FALSE) gst_init(nullptr, nullptr);
    GError* error = nullptr;
    pipeline_ = gst_parse_launch(description.c_str(), &error);
    if (error != nullptr) {
      const std::string message = error->message;
      g_error_free(error);
      FAIL("gst_parse_launch: " << message);
    }
    REQUIRE(pipeline_ != nullptr);
    src_ = gst_bin_get_by_name(GST_BIN(pipeline_), "src");
    sink_ = gst_bin_get_by_name(GST_BIN(pipeline_), "sink");
    REQUIRE(src_ != nullptr);
    REQUIRE(sink_ != nullptr);
  }
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline() {
    stop();
    gst_object_unref(sink_);
    gst_object_unref(src_);
    gst_object_unref(pipeline_);
  }

  GstElement* src() const noexcept { return src_; }
  GstElement* sink() const noexcept { return sink_; }

  void play() { REQUIRE(gst_element_set_state(pipeline_, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE); }
  /// To NULL: every element drops what it holds (queued and prerolled buffers).
  void stop() { gst_element_set_state(pipeline_, GST_STATE_NULL); }

  /// Waits (at most `limit`) for EOS on the bus; fails on an error message.
  void wait_eos(std::chrono::seconds limit = 20s) {
    GstBus* bus = gst_element_get_bus(pipeline_);
    GstMessage* msg =
        gst_bus_timed_pop_filtered(bus, static_cast<GstClockTime>(std::chrono::nanoseconds(limit).count()),
                                   static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    gst_object_unref(bus);
    REQUIRE(msg != nullptr);  // nullptr: timed out
    std::string error;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      GError* e = nullptr;
      gst_message_parse_error(msg, &e, nullptr);
      error = e->message;
      g_error_free(e);
    }
    gst_message_unref(msg);
    INFO(error);
    REQUIRE(error.empty());
  }

 private:
  GstElement* pipeline_ = nullptr;
  GstElement* src_ = nullptr;
  GstElement* sink_ = nullptr;
};

/// What fakesink's handoff saw, in arrival order (a queue keeps the order).
struct Seen {
  std::mutex mutex;
  std::vector<std::string> sha1;
  std::vector<const void*> data;
  std::set<std::thread::id> threads;
};

/// fakesink's "handoff" signal: runs on the sink's streaming thread (the
/// queue's) for every buffer, before it is released. Touches the buffer
/// only through GStreamer / GLib calls (not even GST_BUFFER_PTS: a plain
/// field the producer wrote, ordered by GLib's invisible locks), and `Seen`
/// under its mutex.
void on_handoff(GstElement* /*sink*/, GstBuffer* buffer, GstPad* /*pad*/, gpointer user_data) {
  auto* seen = static_cast<Seen*>(user_data);
  GstMapInfo info;
  if (gst_buffer_map(buffer, &info, GST_MAP_READ) == FALSE) return;
  const std::string digest = sha1(info.data, info.size);
  const void* data = info.data;
  gst_buffer_unmap(buffer, &info);
  std::lock_guard lock(seen->mutex);
  seen->sha1.push_back(digest);
  seen->data.push_back(data);
  seen->threads.insert(std::this_thread::get_id());
}

}  // namespace

TEST_CASE("appsrc ! queue ! fakesink: 100 pooled frames, the same bytes at the same address") {
  constexpr std::size_t frames = 100;
  constexpr std::size_t pool_size = 4;  // 100 frames through 4 buffers: each is returned ~25 times
  const test_support::Watchdog watchdog("appsrc ! queue ! fakesink", 120s);
  BufferPool pool(pool_size, frame_bytes);
  Seen seen;
  std::vector<std::string> sent_sha1;
  std::vector<const void*> sent_data;
  {
    Pipeline p(std::string("appsrc name=src format=time block=true max-bytes=") + std::to_string(2 * frame_bytes) +
               " caps=" + gray8_caps +
               " ! queue max-size-buffers=2 ! fakesink name=sink sync=false signal-handoffs=true"
               " enable-last-sample=false");
    g_signal_connect(p.sink(), "handoff", G_CALLBACK(on_handoff), &seen);
    p.play();
    for (std::size_t n = 0; n < frames; ++n) {
      std::optional<Bytes> frame = next_frame(pool, n);
      REQUIRE(frame.has_value());
      sent_sha1.push_back(sha1(frame->data(), frame->size()));
      sent_data.push_back(frame->data());
      const gstreamer::PushResult r =
          gstreamer::push_to_appsrc(p.src(), std::move(*frame), n * frame_duration, frame_duration);
      INFO("frame " << n << ": " << r.name());
      REQUIRE(r.ok());
    }
    REQUIRE(gst_app_src_end_of_stream(GST_APP_SRC(p.src())) == GST_FLOW_OK);
    p.wait_eos();
    // fakesink keeps nothing (no last sample): every buffer is back once
    // the streaming thread has let go of the last one.
    CHECK(wait_available(pool, pool_size) == pool_size);
  }
  CHECK(pool.available() == pool_size);
  CHECK(pool.stats().releases == frames);

  std::lock_guard lock(seen.mutex);
  REQUIRE(seen.sha1.size() == frames);
  std::size_t same_bytes = 0, same_address = 0;
  for (std::size_t n = 0; n < frames; ++n) {
    same_bytes += seen.sha1[n] == sent_sha1[n] ? 1 : 0;
    same_address += seen.data[n] == sent_data[n] ? 1 : 0;
  }
  CHECK(same_bytes == frames);
  CHECK(same_address == frames);                               // zero copy end to end
  CHECK(seen.threads.count(std::this_thread::get_id()) == 0);  // the sink ran on a streaming thread
}

TEST_CASE("appsrc ! queue ! videoconvert ! appsink: a held sample keeps its pool buffer out, intact") {
  constexpr std::size_t frames = 100;
  constexpr std::size_t pool_size = 4;
  constexpr std::size_t held_frame = 5;
  const test_support::Watchdog watchdog("appsrc ! videoconvert ! appsink", 120s);
  BufferPool pool(pool_size, frame_bytes);
  std::vector<std::byte> expected(frame_bytes);
  {
    // GRAY8 to GRAY8: videoconvert passes our buffers through, untouched.
    Pipeline p(std::string("appsrc name=src format=time block=true caps=") + gray8_caps +
               " ! queue ! videoconvert ! video/x-raw,format=GRAY8 ! appsink name=sink sync=false"
               " enable-last-sample=false max-buffers=2");
    p.play();
    GstSample* held = nullptr;
    const void* held_data = nullptr;
    std::size_t same_bytes = 0, same_address = 0;
    for (std::size_t n = 0; n < frames; ++n) {
      std::optional<Bytes> frame = next_frame(pool, n);
      REQUIRE(frame.has_value());  // 4 buffers: one held by us, one kept by appsink, two cycling
      const void* data = frame->data();
      REQUIRE(gstreamer::push_to_appsrc(p.src(), std::move(*frame), n * frame_duration, frame_duration).ok());
      GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink()), 10 * GST_SECOND);
      REQUIRE(sample != nullptr);
      GstBuffer* buffer = gst_sample_get_buffer(sample);
      CHECK(GST_BUFFER_PTS(buffer) == n * frame_duration);
      GstMapInfo info;
      REQUIRE(gst_buffer_map(buffer, &info, GST_MAP_READ));
      fill(expected.data(), n);
      same_bytes += info.size == frame_bytes && std::memcmp(info.data, expected.data(), frame_bytes) == 0 ? 1 : 0;
      same_address += info.data == data ? 1 : 0;
      gst_buffer_unmap(buffer, &info);
      if (n == held_frame) {
        held = sample;  // the application keeps this frame
        held_data = data;
      } else {
        gst_sample_unref(sample);
      }
    }
    CHECK(same_bytes == frames);
    CHECK(same_address == frames);  // passthrough: appsink hands out our memory

    // 94 later frames went through the other buffers; the held one was
    // never handed out again: its bytes are still frame 5's.
    GstMapInfo info;
    REQUIRE(gst_buffer_map(gst_sample_get_buffer(held), &info, GST_MAP_READ));
    CHECK(info.data == held_data);
    fill(expected.data(), held_frame);
    CHECK(std::memcmp(info.data, expected.data(), frame_bytes) == 0);
    gst_buffer_unmap(gst_sample_get_buffer(held), &info);

    REQUIRE(gst_app_src_end_of_stream(GST_APP_SRC(p.src())) == GST_FLOW_OK);
    p.wait_eos();
    // Still out: the held sample's buffer, and the last one appsink handed
    // out (GStreamer 1.22's appsink keeps its last sample, for reuse, until
    // the next pull or until it is disposed).
    const std::size_t while_held = wait_available(pool, pool_size - 1, 500ms);
    CHECK(while_held <= pool_size - 1);
    gst_sample_unref(held);  // the last reference: the buffer returns here, on this thread
    CHECK(pool.available() == while_held + 1);
    p.stop();
    CHECK(pool.available() < pool_size);  // the pipeline still holds appsink's last buffer...
  }
  CHECK(pool.available() == pool_size);  // ...until it is freed
  CHECK(pool.stats().releases == frames);
}

TEST_CASE("videoconvert GRAY8 -> GRAY16_LE: the converter drops our buffers on its streaming thread") {
  constexpr std::size_t frames = 30;
  constexpr std::size_t pool_size = 3;
  const test_support::Watchdog watchdog("videoconvert to GRAY16_LE", 120s);
  BufferPool pool(pool_size, frame_bytes);
  std::vector<std::byte> source(frame_bytes), widened(2 * frame_bytes);
  std::size_t converted_right = 0;
  {
    Pipeline p(std::string("appsrc name=src format=time block=true caps=") + gray8_caps +
               " ! queue ! videoconvert ! video/x-raw,format=GRAY16_LE ! appsink name=sink sync=false"
               " enable-last-sample=false max-buffers=2");
    p.play();
    for (std::size_t n = 0; n < frames; ++n) {
      std::optional<Bytes> frame = next_frame(pool, n);
      REQUIRE(frame.has_value());
      REQUIRE(gstreamer::push_to_appsrc(p.src(), std::move(*frame), n * frame_duration, frame_duration).ok());
      GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(p.sink()), 10 * GST_SECOND);
      REQUIRE(sample != nullptr);
      GstMapInfo info;
      GstBuffer* buffer = gst_sample_get_buffer(sample);
      REQUIRE(gst_buffer_map(buffer, &info, GST_MAP_READ));
      // videoconvert widens v to v * 257 (v in both bytes); rows of 1280
      // bytes, already 4-byte aligned. Compared by digest: the output was
      // written on the streaming thread (see the file comment).
      fill(source.data(), n);
      for (std::size_t i = 0; i < frame_bytes; ++i) widened[2 * i] = widened[2 * i + 1] = source[i];
      converted_right +=
          info.size == widened.size() && sha1(info.data, info.size) == sha1(widened.data(), widened.size()) ? 1 : 0;
      gst_buffer_unmap(buffer, &info);
      gst_sample_unref(sample);
    }
    REQUIRE(gst_app_src_end_of_stream(GST_APP_SRC(p.src())) == GST_FLOW_OK);
    p.wait_eos();
    // The converted buffers are GStreamer's own: ours were all released by
    // the converter, with the pipeline still playing.
    CHECK(wait_available(pool, pool_size) == pool_size);
  }
  CHECK(converted_right == frames);
  CHECK(pool.stats().releases == frames);
}

TEST_CASE("appsrc's flow results: EOS after end-of-stream, flushing once stopped; the frame is back either way") {
  BufferPool pool(2, frame_bytes);
  Pipeline p(std::string("appsrc name=src format=time caps=") + gray8_caps +
             " ! fakesink name=sink sync=false enable-last-sample=false");
  p.play();
  std::optional<Bytes> frame = next_frame(pool, 0);
  REQUIRE(frame.has_value());
  gstreamer::PushResult r = gstreamer::push_to_appsrc(GST_APP_SRC(p.src()), std::move(*frame), 0, frame_duration);
  CHECK(r.ok());
  CHECK(static_cast<bool>(r));
  CHECK(std::string(r.name()) == "ok");
  REQUIRE(gst_app_src_end_of_stream(GST_APP_SRC(p.src())) == GST_FLOW_OK);
  p.wait_eos();

  // After end-of-stream: refused, dropped at once by the push itself.
  frame = next_frame(pool, 1);
  REQUIRE(frame.has_value());
  r = gstreamer::push_to_appsrc(p.src(), std::move(*frame), frame_duration, frame_duration);
  CHECK_FALSE(r.ok());
  CHECK(r.eos());
  CHECK(std::string(r.name()) == "eos");
  CHECK(wait_available(pool, 2) == 2);

  // Stopped: appsrc is flushing.
  p.stop();
  frame = next_frame(pool, 2);
  REQUIRE(frame.has_value());
  r = gstreamer::push_to_appsrc(p.src(), std::move(*frame));
  CHECK_FALSE(static_cast<bool>(r));
  CHECK(r.flushing());
  CHECK(std::string(r.name()) == "flushing");
  CHECK(pool.available() == 2);
  CHECK(pool.stats().releases == 3);
}
