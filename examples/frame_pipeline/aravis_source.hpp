// --source=aravis: the demo's frames come from a real camera stack, Aravis,
// and are never copied: the camera (Aravis's fake camera in-process by
// default, or any GenICam camera by device id or IP) writes each frame into a
// BufferPool buffer, and the same consumers (writer, preview, ...) get views
// of it. The verifier checks every pixel against the fake camera's pattern (for
// another camera the check is off, and the summary says so).
//
// Compiled only where daq_pool::aravis exists (FRAME_PIPELINE_HAVE_ARAVIS).
#pragma once

#include "cli.hpp"
#include "verifier.hpp"

#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace frame_pipeline {

namespace arv = daq_pool::aravis;

/// The device id in --source=aravis[:<device>] ("Fake_1" for plain aravis).
inline std::string aravis_device(const std::string& source) {
  return source.size() > 7 ? source.substr(7) : std::string("Fake_1");
}

/// The fake camera's settings for frames of at most `frame_bytes` at `fps`:
/// Mono8 up to its 2048 x 2048 sensor (4 MiB), Mono16 above (at most 8 MiB),
/// as square as powers of two allow (8M -> 2048 x 2048 Mono16, 1M -> 1024 x
/// 1024 Mono8, 256K -> 512 x 512 Mono8).
inline arv::FakeCameraSettings fake_camera_settings(std::size_t frame_bytes, double fps) {
  constexpr std::size_t sensor = 2048;
  arv::FakeCameraSettings s;
  const std::size_t bytes_per_pixel = frame_bytes > sensor * sensor ? 2 : 1;
  s.pixel_format = bytes_per_pixel == 2 ? ARV_PIXEL_FORMAT_MONO_16 : ARV_PIXEL_FORMAT_MONO_8;
  const std::size_t pixels = frame_bytes / bytes_per_pixel;
  std::size_t width = sensor;
  while (width > 1 && width * width > pixels) width /= 2;
  s.width = static_cast<std::uint32_t>(width);
  s.height = static_cast<std::uint32_t>(std::min(sensor, pixels / width));
  s.frame_rate = fps;
  return s;
}

/// Checks each frame against the fake camera's pattern on its own thread;
/// with no pattern (not the fake camera), only counts them. The frame's id
/// comes as the broadcast tag, its geometry from the pattern (the camera's
/// configuration): a frame of another size fails the check.
class CameraVerifier final : public Verifier {
 public:
  CameraVerifier(const arv::FakeCameraPattern* pattern, std::size_t capacity) noexcept
      : Verifier(capacity), pattern_(pattern) {}

  void consume(daq_pool::Received& received) override {
    if (pattern_ == nullptr) {
      skip();
      return;
    }
    arv::Frame frame;
    frame.frame_id = received.tag();
    frame.width = pattern_->width();
    frame.height = pattern_->height();
    frame.pixel_format = pattern_->pixel_format();
    frame.image_size = received.size();
    frame.data = received.bytes();  // a second view, dropped with `frame`
    if (const char* why = pattern_->check(frame)) {
      fail({frame.frame_id, why, 0});
    } else {
      pass();
    }
  }

 private:
  const arv::FakeCameraPattern* pattern_;
};

/// The camera side of --source=aravis: opens the camera (configuring the
/// fake one from --frame-bytes and --fps), a pool of --pool buffers of its
/// payload, and a CameraSource over them.
class CameraAcquisition {
 public:
  /// Throws (aravis_error, std::invalid_argument, std::bad_alloc) with a
  /// message saying what could not be set up.
  explicit CameraAcquisition(const Options& opt) : device_(aravis_device(opt.source)), frames_(opt.frames) {
    if (device_.rfind("Fake", 0) == 0) arv_enable_interface("Fake");
    camera_ = arv::open_camera(device_);
    if (arv::is_fake_camera(camera_.get())) {
      arv::configure_fake_camera(camera_.get(), fake_camera_settings(opt.frame_bytes, opt.fps));
      pattern_.emplace(arv::FakeCameraPattern::of(camera_.get()));
    }
    GError* error = nullptr;
    const char* model = arv_camera_get_model_name(camera_.get(), &error);
    g_clear_error(&error);
    const char* vendor = arv_camera_get_vendor_name(camera_.get(), &error);
    g_clear_error(&error);
    model_ = std::string(vendor != nullptr ? vendor : "?") + " " + (model != nullptr ? model : "?");
    daq_pool::BufferPoolOptions pool_options;
    pool_options.shared_memory = !opt.serve.empty();  // --serve: the camera writes into memory other processes map
    pool_.emplace(opt.pool, arv::payload_bytes(camera_.get()), pool_options);
    arv::CameraSourceOptions options;
    options.gv_socket_buffer_bytes = std::size_t{4} << 20;  // GigE Vision: loopback bursts fit without root
    options.silence_limit = std::chrono::seconds(2);        // a free-running camera silent for 2 s is gone
    source_.emplace(camera_.get(), *pool_, options);
  }

  CameraAcquisition(const CameraAcquisition&) = delete;
  CameraAcquisition& operator=(const CameraAcquisition&) = delete;

  ~CameraAcquisition() = default;

  /// The acquisition thread: starts the camera and hands every complete
  /// frame to `deliver` until request_stop(), --frames frames, or the camera
  /// is lost. Allocates nothing per frame. The camera is stopped by the
  /// destructor (its CameraSource's), after the demo has counted the
  /// pipeline's allocations: Aravis allocates to send the command.
  template <class Deliver>
  void run(Deliver&& deliver) {
    try {
      source_->start();
      while (!stop_.load(std::memory_order_relaxed) && (frames_ == 0 || delivered_ < frames_)) {
        // Short waits, so that a stop request is seen promptly.
        std::optional<arv::Frame> frame = source_->next(std::chrono::milliseconds(100));
        if (!frame) continue;
        ++delivered_;
        deliver(std::move(*frame));
      }
    } catch (const std::exception& e) {
      std::lock_guard lock(mutex_);
      error_ = e.what();
    }
    done_.store(true, std::memory_order_release);
  }

  /// Asks run() to return (within ~100 ms). Thread-safe.
  void request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  /// True once run() returned (--frames reached, stopped, or lost).
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }
  /// Why run() ended early (camera lost, ...), or "".
  std::string error() const {
    std::lock_guard lock(mutex_);
    return error_;
  }

  daq_pool::BufferPool& pool() noexcept { return *pool_; }
  /// The source's statistics. Thread-safe.
  arv::CameraSourceStats stats() const noexcept { return source_->stats(); }
  /// Bytes per frame.
  std::size_t payload() const noexcept { return source_->payload(); }
  /// The fake camera's pattern, or nullptr for another camera.
  const arv::FakeCameraPattern* pattern() const noexcept { return pattern_ ? &*pattern_ : nullptr; }
  const std::string& device() const noexcept { return device_; }  ///< Aravis device id
  const std::string& model() const noexcept { return model_; }    ///< vendor and model
  /// "2048 x 2048 Mono16" for the fake camera, "" otherwise.
  std::string geometry() const {
    if (!pattern_) return "";
    return std::to_string(pattern_->width()) + " x " + std::to_string(pattern_->height()) +
           (pattern_->pixel_format() == ARV_PIXEL_FORMAT_MONO_16 ? " Mono16" : " Mono8");
  }

 private:
  /// Releases Aravis's global state last (also when the constructor fails),
  /// so that a leak checker sees a clean exit; the demo opens one camera.
  struct AravisRuntime {
    AravisRuntime() = default;
    AravisRuntime(const AravisRuntime&) = delete;
    AravisRuntime& operator=(const AravisRuntime&) = delete;
    ~AravisRuntime() { arv_shutdown(); }
  } runtime_;
  std::string device_;
  std::string model_;
  std::uint64_t frames_;
  std::uint64_t delivered_ = 0;
  arv::GObjectPtr<ArvCamera> camera_;
  std::optional<arv::FakeCameraPattern> pattern_;
  std::optional<daq_pool::BufferPool> pool_;
  std::optional<arv::CameraSource> source_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  mutable std::mutex mutex_;
  std::string error_;
};

}  // namespace frame_pipeline
