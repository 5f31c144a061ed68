// CameraSource on Aravis's in-process Fake interface: every pixel of every
// frame checked against the fake camera's pattern, zero copy (each view's
// data() is one of the pool's buffers: the camera wrote there), zero
// allocations per frame on daq-pool's side, failed buffers counted and never
// delivered, starvation turned into camera underruns, and every error path:
// payload too big, a pool buffer out, bad options, an unknown camera, a
// closed pool, a source destroyed while views are out.
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "aravis_test_support.hpp"
#include "catch.hpp"
#include "watchdog.hpp"

using namespace std::chrono_literals;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::aravis::CameraSource;
using daq_pool::aravis::FakeCameraPattern;
using daq_pool::aravis::FakeCameraSettings;
using daq_pool::aravis::Frame;

namespace {

FakeCameraSettings small_fast(std::uint32_t width = 512, std::uint32_t height = 512) {
  FakeCameraSettings s;
  s.width = width;
  s.height = height;
  s.frame_rate = 200;
  return s;
}

/// The next frame, failing the test if none comes within 5 s.
Frame next_frame(CameraSource& source) {
  std::optional<Frame> frame = source.next(5s);
  REQUIRE(frame);
  return std::move(*frame);
}

}  // namespace

TEST_CASE("fake interface: 250 frames, every pixel verified, zero copy, no allocation on our path") {
  test_support::Watchdog watchdog("fake interface frames", std::chrono::seconds(120));
  auto camera = aravis_test::open_fake_camera(small_fast());
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  BufferPool pool(4, daq_pool::aravis::payload_bytes(camera.get()));
  const std::vector<const std::byte*> addresses = aravis_test::buffer_addresses(pool);
  CameraSource source(camera.get(), pool);
  source.start();

  constexpr std::uint64_t frames = 250, warmup = 20;
  std::uint64_t verified = 0, previous_id = 0, ids_skipped = 0;
  std::optional<alloc_counter::Scope> process;
  std::optional<alloc_counter::ThreadScope> ours;
  for (std::uint64_t n = 0; n < frames; ++n) {
    if (n == warmup) {
      process.emplace();
      ours.emplace();
    }
    std::optional<Frame> frame = source.next(5s);
    if (!frame) break;
    // Zero copy: the camera wrote into one of the pool's buffers.
    if (!aravis_test::is_one_of(addresses, frame->data.data()) || !frame->data.is_pooled()) {
      FAIL_CHECK("frame " << frame->frame_id << " is not in a pool buffer");
      break;
    }
    if (const char* why = pattern.check(*frame)) {
      FAIL_CHECK("frame " << frame->frame_id << ": " << why);
      break;
    }
    if (n > 0) ids_skipped += aravis_test::frame_id_distance(previous_id, frame->frame_id) - 1;
    previous_id = frame->frame_id;
    ++verified;
  }
  const std::uint64_t process_allocs = process ? process->total() : 0;
  const std::uint64_t our_allocs = ours ? ours->total() : 0;
  source.stop();
  const daq_pool::aravis::CameraSourceStats st = source.stats();
  std::printf("fake interface: %llu frames verified, %llu ids skipped, underruns %llu, failed %llu, requeued %llu\n",
              static_cast<unsigned long long>(verified), static_cast<unsigned long long>(ids_skipped),
              static_cast<unsigned long long>(st.underruns), static_cast<unsigned long long>(st.failed),
              static_cast<unsigned long long>(st.requeued));
  CHECK(verified == frames);
  CHECK(st.delivered == frames);
  CHECK(st.failed == 0);
  CHECK(st.buffers == 4);
  // Frames the camera skipped were lost to underruns (Aravis counts them),
  // never delivered stale or twice.
  CHECK(ids_skipped <= st.underruns);
  if (alloc_counter::enabled) {
    std::printf(
        "allocations over %llu frames: ours (this thread: next, freeze, drop, re-queue) %llu; "
        "whole process (Aravis's fill thread included) %llu\n",
        static_cast<unsigned long long>(frames - warmup), static_cast<unsigned long long>(our_allocs),
        static_cast<unsigned long long>(process_allocs));
    CHECK(our_allocs == 0);
    CHECK(process_allocs == 0);  // the Fake interface's stream allocates nothing per frame either
  } else {
    WARN("allocations are not counted in this build (sanitizer): checked in the plain build");
  }
}

TEST_CASE("frame metadata: ids count up by one (wrapping 65535 -> 1), sizes and timestamps") {
  test_support::Watchdog watchdog("metadata", std::chrono::seconds(60));
  FakeCameraSettings settings = small_fast(640, 480);
  settings.pixel_format = ARV_PIXEL_FORMAT_MONO_16;
  auto camera = aravis_test::open_fake_camera(settings);
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  CameraSource source(camera.get(), BufferPool(8, daq_pool::aravis::payload_bytes(camera.get())));
  CHECK(source.payload() == 640u * 480u * 2u);
  source.start();
  std::uint64_t previous = 0;
  std::uint64_t previous_ts = 0;
  for (int i = 0; i < 30; ++i) {
    Frame f = next_frame(source);
    CHECK(pattern.check(f) == nullptr);
    CHECK(f.width == 640);
    CHECK(f.height == 480);
    CHECK(f.pixel_format == ARV_PIXEL_FORMAT_MONO_16);
    CHECK(f.data.size() == source.payload());
    CHECK(f.image().size() == f.image_size);
    CHECK(f.frame_id >= 1);
    CHECK(f.frame_id <= 65535);
    CHECK(f.timestamp_ns != 0);
    CHECK(f.system_timestamp_ns != 0);
    if (i > 0) {
      // Eight buffers at 200 fps, dropped at once: no underrun, so no gap.
      CHECK(aravis_test::frame_id_distance(previous, f.frame_id) >= 1);
      CHECK(f.timestamp_ns >= previous_ts);
    }
    previous = f.frame_id;
    previous_ts = f.timestamp_ns;
  }
}

TEST_CASE("held views starve the camera: it underruns, and a dropped view feeds it again") {
  test_support::Watchdog watchdog("starvation", std::chrono::seconds(60));
  auto camera = aravis_test::open_fake_camera(small_fast(256, 256));
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  BufferPool pool(3, daq_pool::aravis::payload_bytes(camera.get()));
  CameraSource source(camera.get(), pool);
  source.start();
  std::vector<Frame> held;
  for (int i = 0; i < 3; ++i) held.push_back(next_frame(source));
  CHECK(pool.available() == 0);
  const std::uint64_t underruns_before = source.stats().underruns;
  // Nothing in the camera: next() waits on the pool and times out.
  CHECK_FALSE(source.next(100ms));
  const daq_pool::aravis::CameraSourceStats starved = source.stats();
  CHECK(starved.queued == 0);
  CHECK(starved.starved == 1);
  CHECK(starved.underruns > underruns_before);  // 20 frame periods passed with no buffer
  // Every held view still shows its own frame: nothing was overwritten.
  for (const Frame& f : held) CHECK(pattern.check(f) == nullptr);

  // A view dropped on another thread wakes the waiting next().
  std::thread consumer([&held] {
    std::this_thread::sleep_for(20ms);
    held.erase(held.begin());
  });
  Frame again = next_frame(source);
  consumer.join();
  CHECK(pattern.check(again) == nullptr);
  CHECK(source.stats().requeued >= 1);
}

TEST_CASE("buffers that fail (any status but success) go back to the camera, counted, never delivered") {
  test_support::Watchdog watchdog("failed buffers", std::chrono::seconds(60));
  auto camera = aravis_test::open_fake_camera(small_fast(256, 128));
  CameraSource source(camera.get(), BufferPool(3, daq_pool::aravis::payload_bytes(camera.get())));
  source.start();
  (void)next_frame(source);
  // The camera's frames grow past the pool's buffers: the fake camera marks
  // every buffer "size mismatch" (a register write, as a misbehaving camera
  // would do).
  ArvDevice* device = arv_camera_get_device(camera.get());
  GError* error = nullptr;
  arv_device_write_register(device, ARV_FAKE_CAMERA_REGISTER_HEIGHT, 256, &error);
  REQUIRE(error == nullptr);
  const auto until = std::chrono::steady_clock::now() + 10s;
  std::uint64_t bad_frames = 0;
  while (source.stats().failed < 5 && std::chrono::steady_clock::now() < until) {
    if (std::optional<Frame> f = source.next(50ms)) ++bad_frames;  // a frame filled before the change, at most
  }
  const daq_pool::aravis::CameraSourceStats st = source.stats();
  CHECK(st.failed >= 5);
  CHECK(st.failed_with(ARV_BUFFER_STATUS_SIZE_MISMATCH) == st.failed);
  CHECK(bad_frames <= 3);
  CHECK(st.queued == 3);  // each one went straight back
  // The camera shrinks again: frames flow and check out.
  arv_device_write_register(device, ARV_FAKE_CAMERA_REGISTER_HEIGHT, 128, &error);
  REQUIRE(error == nullptr);
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  bool good = false;
  for (int i = 0; i < 10 && !good; ++i) good = pattern.check(next_frame(source)) == nullptr;
  CHECK(good);
}

TEST_CASE("views outlive the source: they stay valid, and their buffers go back to the pool") {
  test_support::Watchdog watchdog("views outlive the source", std::chrono::seconds(60));
  auto camera = aravis_test::open_fake_camera(small_fast(256, 256));
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  BufferPool pool(4, daq_pool::aravis::payload_bytes(camera.get()));
  std::vector<Frame> held;
  {
    CameraSource source(camera.get(), pool);
    source.start();
    for (int i = 0; i < 3; ++i) held.push_back(next_frame(source));
  }  // stream and ArvBuffers gone; the queued buffer went back to the pool
  CHECK(pool.available() == 1);
  for (const Frame& f : held) CHECK(pattern.check(f) == nullptr);
  std::thread consumer([&held] { held.clear(); });  // the last views die on another thread
  consumer.join();
  CHECK(pool.available() == 4);
  const daq_pool::BufferPoolStats st = pool.stats();
  CHECK(st.acquires == st.releases);
}

TEST_CASE("a source opened by device id, with a pool of its own: views outlive source and every pool handle") {
  aravis_test::enable_fake_interface();
  Frame kept;
  std::optional<FakeCameraPattern> pattern;
  {
    CameraSource source("Fake_1", 2);  // opens a camera of its own (a new fake device) and sizes its pool
    CHECK(source.pool().size() == 2);
    CHECK(source.pool().buffer_capacity() == source.payload());
    daq_pool::aravis::configure_fake_camera(source.camera(), small_fast(128, 64));
    pattern.emplace(FakeCameraPattern::of(source.camera()));
    source.start();
    // Frames of the old (larger) geometry may come first; take a new one.
    for (int i = 0; i < 10; ++i) {
      kept = next_frame(source);
      if (pattern->check(kept) == nullptr) break;
    }
  }
  CHECK(pattern->check(kept) == nullptr);
  CHECK(kept.data.use_count() == 1);
}

TEST_CASE("a closed pool: next() reports it once no buffer can go back to the camera") {
  auto camera = aravis_test::open_fake_camera(small_fast(128, 64));
  BufferPool pool(2, daq_pool::aravis::payload_bytes(camera.get()));
  CameraSource source(camera.get(), pool);
  source.start();
  Frame a = next_frame(source);
  Frame b = next_frame(source);
  pool.close();
  CHECK_THROWS_AS(source.next(200ms), daq_pool::pool_closed);
  a = Frame{};
  b = Frame{};
  CHECK(pool.available() == 2);  // returned to the (closed) pool, not lost
}

TEST_CASE("construction errors name the problem") {
  auto camera = aravis_test::open_fake_camera(small_fast(256, 256));
  const std::size_t payload = daq_pool::aravis::payload_bytes(camera.get());
  REQUIRE(payload == 256u * 256u);

  SECTION("payload larger than the pool's buffers") {
    try {
      CameraSource source(camera.get(), BufferPool(2, payload - 1));
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      CHECK(what.find(std::to_string(payload) + " bytes") != std::string::npos);
      CHECK(what.find(std::to_string(payload - 1) + " bytes") != std::string::npos);
      CHECK(what.find("buffer_capacity") != std::string::npos);
    }
  }
  SECTION("a pool buffer is out") {
    BufferPool pool(2, payload);
    daq_pool::PooledBuffer out = pool.acquire();
    try {
      CameraSource source(camera.get(), pool);
      FAIL("no exception");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("every buffer of the pool must be free") != std::string::npos);
    }
    CHECK(pool.available() == 1);  // what the failed constructor took, it gave back
  }
  SECTION("null camera, negative silence limit") {
    CHECK_THROWS_AS(CameraSource(nullptr, BufferPool(1, 64)), std::invalid_argument);
    daq_pool::aravis::CameraSourceOptions options;
    options.silence_limit = std::chrono::milliseconds(-1);
    CHECK_THROWS_AS(CameraSource(camera.get(), BufferPool(1, payload), options), std::invalid_argument);
  }
  SECTION("an unknown camera") {
    try {
      CameraSource source("no-such-camera", 2);
      FAIL("no exception");
    } catch (const daq_pool::aravis::aravis_error& e) {
      CHECK(std::string(e.what()).find("no-such-camera") != std::string::npos);
    }
  }
  SECTION("a pattern the fake camera can't draw") {
    CHECK_THROWS_AS(FakeCameraPattern(0, 10, ARV_PIXEL_FORMAT_MONO_8, 10000, 0), std::invalid_argument);
    CHECK_THROWS_AS(FakeCameraPattern(10, 10, ARV_PIXEL_FORMAT_BAYER_BG_8, 10000, 0), std::invalid_argument);
  }
}

TEST_CASE("the stream-thread hook runs once, on Aravis's thread") {
  auto camera = aravis_test::open_fake_camera(small_fast(128, 64));
  struct Seen {
    std::atomic<int> calls{0};
    std::atomic<bool> on_test_thread{false};
    std::thread::id test_thread = std::this_thread::get_id();
  } seen;
  daq_pool::aravis::CameraSourceOptions options;
  options.hook_context = &seen;
  options.on_stream_thread_start = [](void* context) {
    auto* s = static_cast<Seen*>(context);
    s->calls.fetch_add(1);
    if (std::this_thread::get_id() == s->test_thread) s->on_test_thread.store(true);
  };
  {
    CameraSource source(camera.get(), BufferPool(2, daq_pool::aravis::payload_bytes(camera.get())), options);
    source.start();
    (void)next_frame(source);
  }  // the stream thread has ended: `seen` may go
  CHECK(seen.calls.load() == 1);
  CHECK_FALSE(seen.on_test_thread.load());
}

TEST_CASE("a pattern check catches a changed pixel") {
  auto camera = aravis_test::open_fake_camera(small_fast(64, 32));
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  CameraSource source(camera.get(), BufferPool(2, daq_pool::aravis::payload_bytes(camera.get())));
  source.start();
  Frame f = next_frame(source);
  REQUIRE(pattern.check(f) == nullptr);
  std::vector<std::byte> copy(f.data.begin(), f.data.end());
  copy[1000] ^= std::byte{1};
  CHECK(pattern.first_mismatch(copy, f.frame_id) == std::optional<std::size_t>(1000));
  CHECK(pattern.first_mismatch(f.data.span(), f.frame_id + 1) == std::optional<std::size_t>(0));
  CHECK(pattern.first_mismatch(f.data.span().first(100), f.frame_id).has_value());
}
