// The Aravis example of docs/aravis.md: a camera writes every frame straight into a
// BufferPool buffer; the frame travels to a consumer thread as a Bytes view;
// the buffer goes back to the camera when the last view is dropped.
//
//   aravis_camera              Aravis's in-process fake camera ("Fake_1")
//   aravis_camera 127.0.0.1    a GigE Vision camera at that address (e.g.
//                              `arv-fake-gv-camera-0.8 -i 127.0.0.1`)
//   aravis_camera --help       this usage; exit codes 0 pass, 1 a frame
//                              differed from the fake camera's pattern,
//                              2 bad arguments or a camera error
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace arv = daq_pool::aravis;

constexpr const char* usage =
    "usage: aravis_camera [DEVICE]\n"
    "  DEVICE  an Aravis device id or a GigE Vision camera's IP address (arv-tool-0.8 lists them);\n"
    "          default Fake_1, Aravis's in-process fake camera, whose every pixel is checked\n"
    "exit codes: 0 pass; 1 a frame differed from the fake camera's pattern; 2 bad arguments or a camera error\n";

int main(int argc, char** argv) try {
  const std::string arg = argc > 1 ? argv[1] : "";
  if (arg == "--help" || arg == "-h") {
    std::fputs(usage, stdout);
    return 0;
  }
  if (argc > 2 || (!arg.empty() && arg[0] == '-')) {  // no device id starts with '-'
    std::fprintf(stderr, "aravis_camera: unexpected argument '%s'\n%s", argc > 2 ? argv[2] : arg.c_str(), usage);
    return 2;
  }
  const std::string device = arg.empty() ? "Fake_1" : arg;
  if (device == "Fake_1") arv_enable_interface("Fake");

  // 1. Open and configure the camera first: the payload sizes the pool.
  arv::GObjectPtr<ArvCamera> camera = arv::open_camera(device);
  GError* error = nullptr;
  const char* vendor = arv_camera_get_vendor_name(camera.get(), &error);
  g_clear_error(&error);
  const char* model = arv_camera_get_model_name(camera.get(), &error);
  g_clear_error(&error);
  std::printf("camera: %s %s (device %s)\n", vendor != nullptr ? vendor : "?", model != nullptr ? model : "?",
              device.c_str());
  std::optional<arv::FakeCameraPattern> pattern;  // set for Aravis's fake camera: every pixel is known
  if (arv::is_fake_camera(camera.get())) {
    arv::FakeCameraSettings settings;  // 512 x 512 Mono8
    settings.frame_rate = 100;
    arv::configure_fake_camera(camera.get(), settings);
    pattern.emplace(arv::FakeCameraPattern::of(camera.get()));
  }

  // 2. Eight buffers of exactly one frame, allocated once. The source makes
  //    one ArvBuffer over each and queues them all in the camera's stream.
  daq_pool::BufferPool pool(8, arv::payload_bytes(camera.get()));
  arv::CameraSourceOptions options;
  options.gv_socket_buffer_bytes = 4 << 20;  // GigE Vision only
  options.silence_limit = 2s;                // a free-running camera silent for 2 s is gone
  arv::CameraSource source(camera.get(), pool, options);

  // 3. A consumer thread: frames arrive as views of pool memory (no copy).
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<arv::Frame> queue;
  bool done = false;
  unsigned checked = 0, bad = 0;
  std::thread consumer([&] {
    for (;;) {
      std::unique_lock lock(mutex);
      ready.wait(lock, [&] { return !queue.empty() || done; });
      if (queue.empty()) return;
      arv::Frame frame = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      if (pattern && pattern->check(frame) != nullptr) ++bad;
      ++checked;
      // `frame` dies here: its buffer goes back to the pool, and the source
      // re-queues it to the camera on its next call.
    }
  });

  // 4. Acquire: next() hands out complete frames, re-queues returned
  //    buffers, and counts (never delivers) incomplete ones.
  source.start();
  constexpr unsigned frames = 200;
  unsigned delivered = 0;
  while (delivered < frames) {
    std::optional<arv::Frame> frame = source.next(1s);
    if (!frame) {
      std::printf("no frame within 1 s\n");
      continue;
    }
    ++delivered;
    {
      std::lock_guard lock(mutex);
      queue.push_back(std::move(*frame));
    }
    ready.notify_one();
  }
  source.stop();
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  ready.notify_one();
  consumer.join();

  const arv::CameraSourceStats st = source.stats();
  std::printf("%u frames of %zu bytes: delivered %llu, failed %llu, camera underruns %llu, re-queued %llu\n", delivered,
              source.payload(), static_cast<unsigned long long>(st.delivered),
              static_cast<unsigned long long>(st.failed), static_cast<unsigned long long>(st.underruns),
              static_cast<unsigned long long>(st.requeued));
  if (!pattern) {
    std::printf("not Aravis's fake camera: pixels not checked\n");
    return 0;
  }
  std::printf("all %u frames checked: %s\n", checked, bad == 0 && checked == frames ? "PASS" : "FAIL");
  return bad == 0 && checked == frames ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "aravis_camera: %s\n", e.what());
  return 2;
}
