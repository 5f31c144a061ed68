// Acquisition from a real camera stack, Aravis's in-process fake camera, at a
// fixed frame rate and size (2048 x 2048 Mono16 = 8 MiB at 50 fps), three
// ways, in the same run:
//
//   zero_copy       daq_pool::aravis::CameraSource: the camera writes into a
//                   pool buffer, next() hands it out as a Bytes view;
//   copy_to_vector  what most Aravis programs do: pop the ArvBuffer, copy its
//                   data into a new std::vector, push the ArvBuffer back;
//   copy_to_pooled  the seed's way: pop, copy into a PooledBuffer, freeze,
//                   push back.
//
// Each iteration takes one frame and drops it (a consumer that needs the
// frame for longer would hold the view, or the copy). The camera sets the
// pace, so frames/s is about the same for all three; what differs is what
// the acquisition thread spends per frame. Counters:
//   cpu_us/frame       the acquisition thread's CPU time per frame
//   process_cpu_us/frame  the whole process's (Aravis's fill thread included)
//   copied_MB/s        frame bytes our side copied per second
//   allocs/op, faults/op  per frame (allocations: the whole process)
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <sys/resource.h>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "bench_support.hpp"

namespace {

namespace arv = daq_pool::aravis;
using namespace std::chrono_literals;

constexpr std::size_t buffers = 4;

/// The fake camera at the benchmark's fixed rate and size.
arv::GObjectPtr<ArvCamera> fake_camera() {
  static const bool enabled = [] {
    arv_enable_interface("Fake");
    return true;
  }();
  (void)enabled;
  arv::GObjectPtr<ArvCamera> camera = arv::open_camera("Fake_1");
  arv::FakeCameraSettings s;
  s.width = 2048;
  s.height = 2048;
  s.pixel_format = ARV_PIXEL_FORMAT_MONO_16;  // 8 MiB
  s.frame_rate = 50;
  arv::configure_fake_camera(camera.get(), s);
  return camera;
}

/// CPU time of the whole process, in seconds.
double process_cpu_seconds() noexcept {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

/// Times the loop's frames: CPU of this thread and of the process, bytes
/// copied, and the usual per-operation counters.
class FrameMeter {
 public:
  FrameMeter() noexcept
      : thread0_(daq_bench::thread_cpu_seconds()), process0_(process_cpu_seconds()), wall0_(Clock::now()) {}

  void report(benchmark::State& state, std::size_t frame_bytes, std::size_t copied_per_frame) const {
    const double frames = static_cast<double>(state.iterations());
    const double wall = std::chrono::duration<double>(Clock::now() - wall0_).count();
    state.counters["cpu_us/frame"] = (daq_bench::thread_cpu_seconds() - thread0_) / frames * 1e6;
    state.counters["process_cpu_us/frame"] = (process_cpu_seconds() - process0_) / frames * 1e6;
    state.counters["frames/s"] = frames / wall;
    state.counters["copied_MB/s"] = frames * static_cast<double>(copied_per_frame) / wall / 1e6;
    ops_.report(state);
    daq_bench::report_throughput(state, frames, static_cast<double>(frame_bytes));
  }

 private:
  using Clock = std::chrono::steady_clock;
  double thread0_;
  double process0_;
  Clock::time_point wall0_;
  daq_bench::OpMeter ops_;
};

/// The benchmark loop: `take` takes one frame and drops it. A few frames
/// first, untimed: the first of a stream come in a burst from buffers
/// filled before the loop.
template <class Take>
void measure(benchmark::State& state, Take&& take, std::size_t frame_bytes, std::size_t copied_per_frame) {
  for (int i = 0; i < 3; ++i) take();
  FrameMeter meter;
  for (auto _ : state) take();
  meter.report(state, frame_bytes, copied_per_frame);
}

void zero_copy(benchmark::State& state) {
  auto camera = fake_camera();
  daq_pool::BufferPool pool(buffers, arv::payload_bytes(camera.get()));
  arv::CameraSource source(camera.get(), pool);
  source.start();
  std::uint64_t sum = 0;
  const auto take = [&] {
    std::optional<arv::Frame> frame = source.next(2s);
    if (!frame) throw std::runtime_error("no frame within 2 s");
    sum += static_cast<std::uint8_t>(frame->data[0]);
  };
  measure(state, take, source.payload(), 0);
  daq_bench::escape(sum);
}

/// A raw Aravis stream with `buffers` buffers of its own (arv_buffer_new).
struct RawStream {
  arv::GObjectPtr<ArvCamera> camera = fake_camera();
  std::size_t payload = arv::payload_bytes(camera.get());
  arv::GObjectPtr<ArvStream> stream;

  RawStream() {
    GError* error = nullptr;
    stream.reset(arv_camera_create_stream(camera.get(), nullptr, nullptr, &error));
    arv::detail::throw_if_error(error, "arv_camera_create_stream");
    for (std::size_t i = 0; i < buffers; ++i) arv_stream_push_buffer(stream.get(), arv_buffer_new(payload, nullptr));
    arv_camera_start_acquisition(camera.get(), &error);
    arv::detail::throw_if_error(error, "arv_camera_start_acquisition");
  }
  RawStream(const RawStream&) = delete;
  RawStream& operator=(const RawStream&) = delete;
  ~RawStream() { arv_camera_stop_acquisition(camera.get(), nullptr); }

  /// Pops the next complete buffer, hands its data to `use`, pushes it back.
  template <class Use>
  void take(Use&& use) {
    for (;;) {
      ArvBuffer* b = arv_stream_timeout_pop_buffer(stream.get(), 2000000);
      if (b == nullptr) throw std::runtime_error("no frame within 2 s");
      if (arv_buffer_get_status(b) == ARV_BUFFER_STATUS_SUCCESS) {
        std::size_t size = 0;
        const void* data = arv_buffer_get_data(b, &size);
        use(static_cast<const std::byte*>(data), size);
        arv_stream_push_buffer(stream.get(), b);
        return;
      }
      arv_stream_push_buffer(stream.get(), b);
    }
  }
};

void copy_to_vector(benchmark::State& state) {
  RawStream raw;
  std::uint64_t sum = 0;
  const auto take = [&] {
    raw.take([&](const std::byte* data, std::size_t size) {
      std::vector<std::byte> frame(data, data + size);  // a fresh copy per frame
      sum += static_cast<std::uint8_t>(frame[size / 2]);
    });
  };
  measure(state, take, raw.payload, raw.payload);
  daq_bench::escape(sum);
}

void copy_to_pooled(benchmark::State& state) {
  RawStream raw;
  daq_pool::BufferPool pool(buffers, raw.payload);
  std::uint64_t sum = 0;
  const auto take = [&] {
    raw.take([&](const std::byte* data, std::size_t size) {
      daq_pool::PooledBuffer buffer = pool.acquire();
      buffer.copy_from_ptr(data, size);
      const daq_pool::Bytes frame = std::move(buffer).freeze();
      sum += static_cast<std::uint8_t>(frame[size / 2]);
    });
  };
  measure(state, take, raw.payload, raw.payload);
  daq_bench::escape(sum);
}

}  // namespace

BENCHMARK(zero_copy)->Name("aravis_fake_8MiB_50fps/zero_copy")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(copy_to_vector)
    ->Name("aravis_fake_8MiB_50fps/copy_to_vector")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(copy_to_pooled)
    ->Name("aravis_fake_8MiB_50fps/copy_to_pooled")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
