// CameraSource over real GigE Vision: Aravis's fake camera as a child process
// (arv-fake-gv-camera-0.8 -i 127.0.0.1), opened by IP. Aravis's receive
// thread writes every packet's payload straight into the pool's buffers. As
// non-root (no packet socket) some frames can be lost on loopback, so: at
// least 90 % of the frames the camera sent arrive complete, every complete
// frame is verified pixel by pixel and lies in a pool buffer, and the
// acquisition thread allocates nothing per frame (Aravis's receive thread
// does; measured and reported).
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "aravis_test_support.hpp"
#include "catch.hpp"
#include "watchdog.hpp"

using namespace std::chrono_literals;
using daq_pool::aravis::CameraSource;
using daq_pool::aravis::FakeCameraPattern;
using daq_pool::aravis::Frame;

TEST_CASE("GigE Vision fake camera on 127.0.0.1: >= 90 % of frames complete, every complete frame verified") {
  test_support::Watchdog watchdog("GigE Vision frames", std::chrono::seconds(100));
  aravis_test::FakeGvCamera process(DAQ_POOL_ARV_FAKE_GV_CAMERA);
  auto camera = process.open_camera();
  process.release_device();
  daq_pool::aravis::FakeCameraSettings settings;  // 512 x 512 Mono8, packet size 8192
  settings.frame_rate = 100;
  daq_pool::aravis::configure_fake_camera(camera.get(), settings);
  REQUIRE(daq_pool::aravis::is_fake_camera(camera.get()));
  REQUIRE(arv_camera_gv_get_packet_size(camera.get(), nullptr) >= 8192);
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());

  daq_pool::BufferPool pool(8, daq_pool::aravis::payload_bytes(camera.get()));
  const std::vector<const std::byte*> addresses = aravis_test::buffer_addresses(pool);
  daq_pool::aravis::CameraSourceOptions options;
  options.gv_socket_buffer_bytes = 4194304;  // fixed 4 MiB: loopback bursts fit without root
  CameraSource source(camera.get(), pool, options);
  source.start();

  constexpr std::uint64_t frames = 200, warmup = 20;
  std::uint64_t verified = 0, first_id = 0, last_id = 0;
  std::optional<alloc_counter::Scope> process_allocs;
  std::optional<alloc_counter::ThreadScope> our_allocs;
  for (std::uint64_t n = 0; n < frames; ++n) {
    if (n == warmup) {
      process_allocs.emplace();
      our_allocs.emplace();
    }
    std::optional<Frame> frame = source.next(5s);
    if (!frame) break;
    if (!aravis_test::is_one_of(addresses, frame->data.data())) {
      FAIL_CHECK("frame " << frame->frame_id << " is not in a pool buffer");
      break;
    }
    if (const char* why = pattern.check(*frame)) {
      FAIL_CHECK("frame " << frame->frame_id << ": " << why);
      break;
    }
    if (n == 0) first_id = frame->frame_id;
    last_id = frame->frame_id;
    ++verified;
  }
  const std::uint64_t process_count = process_allocs ? process_allocs->total() : 0;
  const std::uint64_t our_count = our_allocs ? our_allocs->total() : 0;
  source.stop();
  const daq_pool::aravis::CameraSourceStats st = source.stats();
  // Frames the camera sent from the first delivered one to the last.
  const std::uint64_t sent = aravis_test::frame_id_distance(first_id, last_id) + 1;
  std::printf(
      "GigE Vision: %llu of %llu frames complete and verified (%.1f %%); failed %llu (missing packets %llu, "
      "timeout %llu), underruns %llu\n",
      static_cast<unsigned long long>(verified), static_cast<unsigned long long>(sent),
      100.0 * static_cast<double>(verified) / static_cast<double>(sent), static_cast<unsigned long long>(st.failed),
      static_cast<unsigned long long>(st.failed_with(ARV_BUFFER_STATUS_MISSING_PACKETS)),
      static_cast<unsigned long long>(st.failed_with(ARV_BUFFER_STATUS_TIMEOUT)),
      static_cast<unsigned long long>(st.underruns));
  CHECK(verified == frames);
  CHECK(verified * 10 >= sent * 9);
  if (alloc_counter::enabled) {
    const double per_frame = static_cast<double>(process_count) / static_cast<double>(frames - warmup);
    std::printf(
        "allocations over %llu frames: ours (acquisition thread) %llu; whole process %llu = %.2f per frame "
        "(Aravis's receive thread: frame bookkeeping; its heartbeat)\n",
        static_cast<unsigned long long>(frames - warmup), static_cast<unsigned long long>(our_count),
        static_cast<unsigned long long>(process_count), per_frame);
    CHECK(our_count == 0);
  } else {
    WARN("allocations are not counted in this build (sanitizer): checked in the plain build");
  }
}
