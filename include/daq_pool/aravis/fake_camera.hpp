// daq_pool/aravis/fake_camera.hpp: Aravis's fake camera as a test rig.
//
// Aravis ships a fake GenICam camera, in-process (arv_enable_interface("Fake"),
// device "Fake_1") or as a GigE Vision device (`arv-fake-gv-camera-0.8 -i
// 127.0.0.1`, then open "127.0.0.1"). Its image is deterministic, so every
// pixel of every frame can be checked: this header sets the camera up
// explicitly (its settings persist across connections) and checks frames
// against its pattern.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "daq_pool/aravis.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::aravis {

/// Everything the fake camera's image depends on, set explicitly by
/// configure_fake_camera (a fresh camera is 512x512 Mono8 at 25 fps, but it
/// keeps whatever the previous client set).
struct FakeCameraSettings {
  std::uint32_t width = 512;                              ///< in [1, 2048]
  std::uint32_t height = 512;                             ///< in [1, 2048]
  ArvPixelFormat pixel_format = ARV_PIXEL_FORMAT_MONO_8;  ///< Mono8 or Mono16 (what FakeCameraPattern checks)
  double frame_rate = 25.0;                               ///< frames per second, in [0.1, 1000]
  double exposure_us = 10000.0;                           ///< with gain 0: pattern scale 1
  double gain = 0.0;                                      ///< in [0, 10]
  /// GigE Vision only: stream packet size in bytes (>= 8192 keeps loopback
  /// packet rates sane). Set before the stream is created.
  std::uint32_t gv_packet_size = 8192;
};

/// True if `camera` is Aravis's fake camera (vendor "Aravis", model "Fake"),
/// in-process or over GigE Vision. Never throws.
inline bool is_fake_camera(ArvCamera* camera) noexcept {
  if (camera == nullptr) return false;
  GError* error = nullptr;
  const char* vendor = arv_camera_get_vendor_name(camera, &error);
  g_clear_error(&error);
  const char* model = arv_camera_get_model_name(camera, &error);
  g_clear_error(&error);
  return vendor != nullptr && model != nullptr && std::strcmp(vendor, "Aravis") == 0 && std::strcmp(model, "Fake") == 0;
}

/// Applies `settings` to the fake camera: free-running (triggers off,
/// continuous), region at offset 0, pixel format, frame rate, exposure,
/// gain, and (GigE Vision) packet size. Call it before making a
/// CameraSource. Throws aravis_error naming the setting Aravis refused.
inline void configure_fake_camera(ArvCamera* camera, const FakeCameraSettings& settings) {
  if (camera == nullptr) throw std::invalid_argument("daq_pool::aravis::configure_fake_camera: camera is null");
  GError* error = nullptr;
  if (arv_camera_is_gv_device(camera)) {
    arv_camera_gv_set_packet_size(camera, static_cast<gint>(settings.gv_packet_size), &error);
    detail::throw_if_error(error, "fake camera: packet size " + std::to_string(settings.gv_packet_size));
  }
  arv_camera_clear_triggers(camera, &error);
  detail::throw_if_error(error, "fake camera: clear triggers");
  arv_camera_set_acquisition_mode(camera, ARV_ACQUISITION_MODE_CONTINUOUS, &error);
  detail::throw_if_error(error, "fake camera: continuous acquisition");
  arv_camera_set_pixel_format(camera, settings.pixel_format, &error);
  detail::throw_if_error(error, "fake camera: pixel format");
  arv_camera_set_region(camera, 0, 0, static_cast<gint>(settings.width), static_cast<gint>(settings.height), &error);
  detail::throw_if_error(
      error, "fake camera: region " + std::to_string(settings.width) + "x" + std::to_string(settings.height));
  arv_camera_set_frame_rate(camera, settings.frame_rate, &error);
  detail::throw_if_error(error, "fake camera: frame rate");
  arv_camera_set_exposure_time(camera, settings.exposure_us, &error);
  detail::throw_if_error(error, "fake camera: exposure time");
  arv_camera_set_gain(camera, settings.gain, &error);
  detail::throw_if_error(error, "fake camera: gain");
}

/// The fake camera's image, a diagonal ramp, and a check of frames against
/// it. Pixel (x, y) of frame `id`, with `scale = 1 + gain + log10(exposure_us
/// / 10000)` (1 at the defaults), exactly as Aravis's fill function computes
/// it: Mono8 `clamp(((x + y + id) % 255) * scale, 0, 255)`, Mono16
/// `clamp(((256 * (x + y + id)) % 65535) * scale, 0, 65535)` in host byte
/// order.
///
/// Construction allocates one row-sized table (a ramp of expected pixels, so
/// that a row is checked with one memcmp); the checks never allocate and
/// are thread-safe (const).
class FakeCameraPattern {
 public:
  /// The pattern of `width` x `height` frames in `pixel_format` (Mono8 or
  /// Mono16), for the camera's exposure register (us) and gain register.
  /// Throws std::invalid_argument for another format or a size out of
  /// [1, 2048].
  FakeCameraPattern(std::uint32_t width, std::uint32_t height, ArvPixelFormat pixel_format, std::uint32_t exposure_us,
                    std::uint32_t gain)
      : width_(width), height_(height), pixel_format_(pixel_format) {
    if (width == 0 || width > 2048 || height == 0 || height > 2048)
      throw std::invalid_argument("daq_pool::aravis::FakeCameraPattern: " + std::to_string(width) + "x" +
                                  std::to_string(height) + " is outside the fake sensor's 1..2048 x 1..2048");
    // As arv_fake_camera_diagonal_ramp: integer registers, double maths.
    const double scale = 1.0 + gain + std::log10(static_cast<double>(exposure_us) / 10000.0);
    if (pixel_format == ARV_PIXEL_FORMAT_MONO_8) {
      period_ = 255;
      bytes_per_pixel_ = 1;
    } else if (pixel_format == ARV_PIXEL_FORMAT_MONO_16) {
      period_ = 65535;
      bytes_per_pixel_ = 2;
    } else {
      throw std::invalid_argument("daq_pool::aravis::FakeCameraPattern: pixel format 0x" + hex(pixel_format) +
                                  " is not checked (only Mono8 and Mono16)");
    }
    // ramp_[k] is the pixel for x + y + id == k (mod period): row y of frame
    // id is ramp_[(y + id) % period ...] for width pixels.
    ramp_.resize((period_ + width_) * bytes_per_pixel_);
    for (std::size_t k = 0; k < period_ + width_; ++k) {
      const std::size_t v = k % period_;
      if (bytes_per_pixel_ == 1) {
        ramp_[k] =
            static_cast<std::byte>(static_cast<std::uint8_t>(std::clamp(static_cast<double>(v) * scale, 0.0, 255.0)));
      } else {
        const auto value = static_cast<double>((256 * v) % 65535);
        const auto pixel = static_cast<std::uint16_t>(std::clamp(value * scale, 0.0, 65535.0));
        std::memcpy(&ramp_[k * 2], &pixel, 2);
      }
    }
  }

  /// The pattern the fake camera `camera` draws now (geometry, format,
  /// exposure and gain read from its registers). Throws aravis_error, or
  /// std::invalid_argument as the constructor.
  static FakeCameraPattern of(ArvCamera* camera) {
    if (camera == nullptr) throw std::invalid_argument("daq_pool::aravis::FakeCameraPattern::of: camera is null");
    ArvDevice* device = arv_camera_get_device(camera);
    const auto reg = [device](guint64 address, const char* name) {
      GError* error = nullptr;
      guint32 value = 0;
      arv_device_read_register(device, address, &value, &error);
      detail::throw_if_error(error, std::string("fake camera: read register ") + name);
      return value;
    };
    return FakeCameraPattern(reg(ARV_FAKE_CAMERA_REGISTER_WIDTH, "Width"),
                             reg(ARV_FAKE_CAMERA_REGISTER_HEIGHT, "Height"),
                             reg(ARV_FAKE_CAMERA_REGISTER_PIXEL_FORMAT, "PixelFormat"),
                             reg(ARV_FAKE_CAMERA_REGISTER_EXPOSURE_TIME_US, "ExposureTime"),
                             reg(ARV_FAKE_CAMERA_REGISTER_GAIN_RAW, "GainRaw"));
  }

  /// Offset of the first byte of `image` that differs from frame
  /// `frame_id`'s pattern (or the end of the shorter one, if the sizes
  /// differ); nothing if every byte matches. Never allocates.
  std::optional<std::size_t> first_mismatch(std::span<const std::byte> image, std::uint64_t frame_id) const noexcept {
    const std::size_t row = static_cast<std::size_t>(width_) * bytes_per_pixel_;
    for (std::size_t y = 0; y < height_; ++y) {
      const std::size_t offset = y * row;
      if (offset + row > image.size()) return std::min(offset, image.size());
      const std::size_t start = static_cast<std::size_t>((y + frame_id) % period_) * bytes_per_pixel_;
      if (std::memcmp(image.data() + offset, &ramp_[start], row) != 0) {
        std::size_t i = 0;
        while (image[offset + i] == ramp_[start + i]) ++i;
        return offset + i;
      }
    }
    if (image.size() != frame_bytes()) return frame_bytes();
    return std::nullopt;
  }

  /// Why `frame` is not the fake camera's frame `frame.frame_id`, or nullptr
  /// if every pixel, the geometry and the pixel format match. Never
  /// allocates.
  const char* check(const Frame& frame) const noexcept {
    if (frame.width != width_ || frame.height != height_) return "geometry differs from the camera's";
    if (frame.pixel_format != pixel_format_) return "pixel format differs from the camera's";
    if (frame.image_size != frame_bytes()) return "image size differs from width x height x pixel size";
    if (first_mismatch(frame.data.span().subspan(frame.image_offset, frame.image_size), frame.frame_id))
      return "pixels differ from the fake camera's pattern";
    return nullptr;
  }

  std::uint32_t width() const noexcept { return width_; }                 ///< pixels per row
  std::uint32_t height() const noexcept { return height_; }               ///< rows
  ArvPixelFormat pixel_format() const noexcept { return pixel_format_; }  ///< Mono8 or Mono16
  /// Bytes of one frame: width x height x bytes per pixel.
  std::size_t frame_bytes() const noexcept { return static_cast<std::size_t>(width_) * height_ * bytes_per_pixel_; }

 private:
  static std::string hex(std::uint32_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xf];
    return s;
  }

  std::uint32_t width_;
  std::uint32_t height_;
  ArvPixelFormat pixel_format_;
  std::size_t period_ = 255;
  std::size_t bytes_per_pixel_ = 1;
  std::vector<std::byte> ramp_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::aravis
