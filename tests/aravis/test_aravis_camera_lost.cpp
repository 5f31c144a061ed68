// Fault: the GigE Vision fake camera is killed (SIGKILL) mid-stream while
// consumers hold views. next() never waits longer than its timeout, reports
// the loss (camera_lost) once Aravis's heartbeat gives up on the camera, the
// held views stay valid, every buffer returns to the pool when they drop, and
// the source and camera are torn down without hanging.
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "aravis_test_support.hpp"
#include "catch.hpp"
#include "watchdog.hpp"

using namespace std::chrono_literals;
using daq_pool::aravis::CameraSource;
using daq_pool::aravis::FakeCameraPattern;
using daq_pool::aravis::Frame;
using Clock = std::chrono::steady_clock;

TEST_CASE("the camera dies mid-stream: next() reports it within its timeout; views and buffers survive") {
  test_support::Watchdog watchdog("camera lost", std::chrono::seconds(100));
  aravis_test::FakeGvCamera process(DAQ_POOL_ARV_FAKE_GV_CAMERA);
  auto camera = process.open_camera();
  process.release_device();
  daq_pool::aravis::FakeCameraSettings settings;
  settings.width = 256;
  settings.height = 256;
  settings.frame_rate = 100;
  daq_pool::aravis::configure_fake_camera(camera.get(), settings);
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  daq_pool::BufferPool pool(4, daq_pool::aravis::payload_bytes(camera.get()));
  std::vector<Frame> held;
  {
    daq_pool::aravis::CameraSourceOptions options;
    options.gv_socket_buffer_bytes = 4194304;
    options.silence_limit = 1s;  // a 100 fps camera silent for 1 s is gone
    std::optional<CameraSource> owner;
    owner.emplace(camera.get(), pool, options);
    CameraSource& source = *owner;
    source.start();
    for (int i = 0; i < 20; ++i) {
      std::optional<Frame> f = source.next(5s);
      REQUIRE(f);
      if (i >= 18) held.push_back(std::move(*f));  // two views held across the crash
    }

    process.kill_now();  // SIGKILL, reaped
    const auto killed = Clock::now();
    const auto since_kill = [&killed] { return std::chrono::duration<double>(Clock::now() - killed).count(); };
    constexpr auto timeout = 250ms;
    bool reported = false;
    std::uint64_t after_kill = 0, timeouts = 0;
    auto longest = Clock::duration::zero();
    while (!reported && Clock::now() - killed < 30s) {
      const auto t0 = Clock::now();
      try {
        std::optional<Frame> f = source.next(timeout);
        if (f) {
          ++after_kill;  // sent before the kill, still in flight
          CHECK(pattern.check(*f) == nullptr);
        } else {
          ++timeouts;
        }
      } catch (const daq_pool::aravis::camera_lost& e) {
        reported = true;
        std::printf("camera_lost after %.2f s: %s\n", since_kill(), e.what());
      }
      longest = std::max(longest, Clock::now() - t0);
    }
    std::printf("after the kill: %llu frames still delivered, %llu timeouts, longest next() %.3f s\n",
                static_cast<unsigned long long>(after_kill), static_cast<unsigned long long>(timeouts),
                std::chrono::duration<double>(longest).count());
    // First the source's own silence limit (1 s of nothing)...
    CHECK(reported);
    CHECK(source.loss() == daq_pool::aravis::CameraLoss::silent);
    // ... within next()'s timeout (plus scheduling slack on a loaded 2-core
    // machine): never a hang.
    CHECK(longest < timeout + 2s);
    // ... then Aravis's own verdict: its heartbeat (every 1 s) gives up after
    // 5 s without an answer and emits "control-lost" on its thread.
    while (source.loss() != daq_pool::aravis::CameraLoss::control_lost && Clock::now() - killed < 30s)
      std::this_thread::sleep_for(50ms);
    std::printf("control-lost after %.2f s\n", since_kill());
    CHECK(source.loss() == daq_pool::aravis::CameraLoss::control_lost);
    try {
      (void)source.next(1s);
      FAIL("no camera_lost");
    } catch (const daq_pool::aravis::camera_lost& e) {
      CHECK(std::string(e.what()).find("control-lost") != std::string::npos);
    }
    // Sticky: later calls report it at once, start() too.
    CHECK_THROWS_AS(source.next(1s), daq_pool::aravis::camera_lost);
    CHECK_THROWS_AS(source.start(), daq_pool::aravis::camera_lost);
    // Views still out while the source goes. Aravis's register writes to
    // the dead camera (stop the stream channel) time out during teardown.
    const auto t0 = Clock::now();
    owner.reset();
    std::printf("source destroyed in %.2f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
  }
  for (const Frame& f : held) CHECK(pattern.check(f) == nullptr);
  CHECK(pool.available() == pool.size() - held.size());
  held.clear();
  CHECK(pool.available() == pool.size());
  const auto t0 = Clock::now();
  camera.reset();
  std::printf("camera released in %.2f s\n", std::chrono::duration<double>(Clock::now() - t0).count());
}
