// daq_pool/gstreamer.hpp without a pipeline: a view as a GstBuffer of one
// read-only GstMemory. Zero copy; read-only (GStreamer copies before it
// writes); the view's reference held until the memory's last unref, on
// whichever thread, and dropped then; bad input refused with a message
// naming the argument, and no buffer lost; daq-pool adds no allocation to
// GStreamer's own per wrapped buffer.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/gstreamer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>
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
namespace gstreamer = daq_pool::gstreamer;

namespace {

/// gst_init once per process. The first test to call it checks that the
/// helpers refuse to run before it.
void init_gstreamer() {
  if (gst_is_initialized() == FALSE) {
    CHECK_THROWS_WITH(gstreamer::wrap_buffer(Bytes::copy_from(std::as_bytes(std::span("x", 1)))),
                      "daq_pool::gstreamer::wrap_buffer: call gst_init() first");
    gst_init(nullptr, nullptr);
  }
}

using test_support::holds_pattern;
using test_support::invalid_argument_of;
using test_support::patterned_frame;

}  // namespace

TEST_CASE("wrap_buffer: one read-only GstMemory over the view, zero copy") {
  init_gstreamer();
  BufferPool pool(2, 4096);
  Bytes view = patterned_frame(pool, 1000, 7);
  GstBuffer* buffer = gstreamer::wrap_buffer(view);  // a copy: our view stays
  REQUIRE(buffer != nullptr);
  CHECK(view.use_count() == 2);
  CHECK(gst_buffer_n_memory(buffer) == 1);
  CHECK(gst_buffer_get_size(buffer) == 1000);
  GstMemory* memory = gst_buffer_peek_memory(buffer, 0);
  CHECK(GST_MEMORY_IS_READONLY(memory));
  CHECK(memory->maxsize == 1000);
  CHECK(memory->offset == 0);
  CHECK(GST_BUFFER_PTS(buffer) == GST_CLOCK_TIME_NONE);

  GstMapInfo info;
  REQUIRE(gst_buffer_map(buffer, &info, GST_MAP_READ));
  CHECK(reinterpret_cast<const std::byte*>(info.data) == view.data());
  CHECK(info.size == 1000);
  gst_buffer_unmap(buffer, &info);
  // Mapping the memory itself for writing is refused.
  CHECK(gst_memory_map(memory, &info, GST_MAP_WRITE) == FALSE);

  view.reset();
  CHECK(pool.available() == 1);
  gst_buffer_unref(buffer);
  CHECK(pool.available() == 2);  // the memory's destroy notify returned it
}

TEST_CASE("GStreamer copies before it writes: map(WRITE) replaces our memory by a copy") {
  init_gstreamer();
  BufferPool pool(1, 4096);
  SECTION("GStreamer's was the only reference: the copy returns the buffer") {
    GstBuffer* buffer = gstreamer::wrap_buffer(patterned_frame(pool, 512, 3));
    CHECK(pool.available() == 0);
    GstMapInfo info;
    REQUIRE(gst_buffer_map(buffer, &info, GST_MAP_WRITE));  // the buffer is writable, its memory is not
    CHECK(holds_pattern(info.data, 512, 3));
    std::memset(info.data, 0, info.size);
    gst_buffer_unmap(buffer, &info);
    CHECK(pool.available() == 1);  // the copy replaced our memory, which was freed
    gst_buffer_unref(buffer);
  }
  SECTION("writing into the copy leaves the pool's bytes, still viewed by us, alone") {
    const Bytes ours = patterned_frame(pool, 512, 3);
    GstBuffer* buffer = gstreamer::wrap_buffer(ours);
    GstMapInfo info;
    REQUIRE(gst_buffer_map(buffer, &info, GST_MAP_WRITE));
    CHECK(reinterpret_cast<const std::byte*>(info.data) != ours.data());
    std::memset(info.data, 0, info.size);
    gst_buffer_unmap(buffer, &info);
    CHECK(ours.use_count() == 1);
    CHECK(holds_pattern(reinterpret_cast<const std::uint8_t*>(ours.data()), 512, 3));
    gst_buffer_unref(buffer);
  }
  CHECK(pool.available() == 1);
}

TEST_CASE("refs, copies and sub-buffers share the memory; the last one returns the buffer") {
  init_gstreamer();
  BufferPool pool(1, 4096);
  GstBuffer* buffer = gstreamer::wrap_buffer(patterned_frame(pool, 4096, 1));
  GstBuffer* shared = gst_buffer_ref(buffer);
  GstBuffer* copy = gst_buffer_copy(buffer);  // a new GstBuffer, the same memory
  GstBuffer* region = gst_buffer_copy_region(buffer, GST_BUFFER_COPY_MEMORY, 100, 50);
  GstMapInfo info;
  REQUIRE(gst_buffer_map(region, &info, GST_MAP_READ));
  CHECK(holds_pattern(info.data, 50, 101));
  gst_buffer_unmap(region, &info);
  gst_buffer_unref(buffer);
  gst_buffer_unref(shared);
  gst_buffer_unref(copy);
  CHECK(pool.available() == 0);
  std::size_t seen_before = 0, seen_after = 0;
  std::thread other([&] {
    seen_before = pool.available();
    gst_buffer_unref(region);  // the last holder of the memory
    seen_after = pool.available();
  });
  other.join();
  CHECK(seen_before == 0);
  CHECK(seen_after == 1);
}

TEST_CASE("views wrapped for consumer threads while the producer reuses every buffer") {
  // 3 buffers, 2 consumers: each frame goes to both as separate GstBuffers (one wrap_buffer each), through
  // mutex-protected queues; each consumer checks every byte (a buffer reused
  // too early would hold a later frame) and drops its reference; whichever
  // is last returns the buffer, on its thread.
  init_gstreamer();
  const test_support::StressResult r = test_support::wrapped_views_stress<GstBuffer*>(
      "gstreamer wrap stress", [](const Bytes& view) { return gstreamer::wrap_buffer(view); },
      [](GstBuffer* buffer, std::size_t n, unsigned seed) {
        GstMapInfo info;
        if (gst_buffer_map(buffer, &info, GST_MAP_READ) == FALSE) return false;
        const bool ok = info.size == n && holds_pattern(info.data, n, seed);
        gst_buffer_unmap(buffer, &info);
        return ok;
      },
      [](GstBuffer* buffer) { gst_buffer_unref(buffer); });
  CHECK(r.bad == 0);
  CHECK(r.received[0] == r.frames);
  CHECK(r.received[1] == r.frames);
  CHECK(r.available_after == r.buffers);
  CHECK(r.releases_after == r.frames);
}

TEST_CASE("bad input: a clear error naming the argument; nothing lost") {
  init_gstreamer();
  BufferPool pool(1, 4096);
  const auto contains = [](const std::string& message, const char* part) {
    INFO(message);
    CHECK(message.find(part) != std::string::npos);
  };
  contains(invalid_argument_of([] { (void)gstreamer::wrap_buffer(Bytes()); }),
           "daq_pool::gstreamer::wrap_buffer: view is empty");
  contains(invalid_argument_of([&] {
             (void)gstreamer::push_to_appsrc(static_cast<GstElement*>(nullptr), patterned_frame(pool, 64, 0));
           }),
           "daq_pool::gstreamer::push_to_appsrc: appsrc is null");
  GstElement* not_appsrc = gst_element_factory_make("fakesink", nullptr);
  REQUIRE(not_appsrc != nullptr);
  contains(invalid_argument_of([&] { (void)gstreamer::push_to_appsrc(not_appsrc, patterned_frame(pool, 64, 0)); }),
           "appsrc is a GstFakeSink, not a GstAppSrc");
  gst_object_unref(not_appsrc);
  GstElement* appsrc = gst_element_factory_make("appsrc", nullptr);
  REQUIRE(appsrc != nullptr);
  contains(invalid_argument_of([&] { (void)gstreamer::push_to_appsrc(appsrc, Bytes()); }),
           "push_to_appsrc: view is empty");
  gst_object_unref(appsrc);
  CHECK(pool.available() == 1);  // every refused view was dropped
  CHECK(pool.stats().releases == pool.stats().acquires);
}

TEST_CASE("allocations: GStreamer's own per wrapped buffer, none from daq-pool") {
  init_gstreamer();
  if (!alloc_counter::enabled) {
    WARN("allocations are not counted in this build (sanitizer): skipped");
    return;
  }
  BufferPool pool(1, 640 * 480);
  const Bytes view = patterned_frame(pool, 640 * 480, 1);
  std::vector<std::uint8_t> plain(640 * 480);
  constexpr int rounds = 1000;
  // Warm GLib's slice magazines (per thread) up first.
  for (int i = 0; i < rounds; ++i) gst_buffer_unref(gstreamer::wrap_buffer(view));

  // GStreamer's cost of wrapping foreign memory at all: a plain array with
  // a no-op destroy notify.
  std::uint64_t gstreamer_only = 0, wrapped = 0;
  {
    const alloc_counter::Scope scope;
    for (int i = 0; i < rounds; ++i)
      gst_buffer_unref(gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, plain.data(), plain.size(), 0,
                                                   plain.size(), nullptr, [](gpointer) {}));
    gstreamer_only = scope.total();
  }
  {
    const alloc_counter::Scope scope;
    for (int i = 0; i < rounds; ++i) gst_buffer_unref(gstreamer::wrap_buffer(view));
    wrapped = scope.total();
  }
  std::printf(
      "heap allocations per hand-off: gst_buffer_new_wrapped_full + unref %.3f, wrap_buffer + unref %.3f "
      "(GLib %u.%u: GStreamer's GstBuffer and GstMemory come from g_slice)\n",
      static_cast<double>(gstreamer_only) / rounds, static_cast<double>(wrapped) / rounds, glib_major_version,
      glib_minor_version);
  CHECK(wrapped == gstreamer_only);  // daq-pool adds nothing
}
