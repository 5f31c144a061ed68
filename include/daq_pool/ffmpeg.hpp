// FFmpeg integration: a Bytes view handed to FFmpeg without a copy, as a
// read-only AVBufferRef or as the plane of a gray AVFrame. The view's buffer
// goes back to its pool when FFmpeg drops its last reference, on whichever
// thread that happens.
//
// Needs libavutil only (pkg-config libavutil; CMake target daq_pool::ffmpeg).
// Encoding and decoding (libavcodec) are the application's business: the
// AVFrame filled here is passed to avcodec_send_frame() like any other.
#pragma once

#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/foreign_handoff.hpp"

extern "C" {
#include <libavutil/buffer.h>
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
#include <libavutil/pixfmt.h>
#include <libavutil/version.h>
}

#include <climits>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::ffmpeg {

// Ownership, in one place:
//  - wrap_buffer(view) moves the view's reference into the AVBuffer it
//    creates (Bytes::into_raw as its opaque): from then on FFmpeg owns it.
//    The caller owns the returned AVBufferRef (av_buffer_unref it, or hand it
//    to an AVFrame, which then owns it); every av_buffer_ref / av_frame_ref /
//    av_packet_ref made from it shares the same AVBuffer.
//  - The free callback below runs once, inside the last av_buffer_unref of
//    that AVBuffer, and drops the view's reference; the pooled buffer returns
//    to its pool if that was its last view.
//  - The buffer is marked AV_BUFFER_FLAG_READONLY: av_buffer_is_writable()
//    and av_frame_is_writable() say no, so av_buffer_make_writable() /
//    av_frame_make_writable() copy the bytes into FFmpeg memory before anyone
//    writes (and drop our reference then). FFmpeg never writes into the pool.

namespace detail {

/// The AVBuffer's free callback (av_buffer_create's `free`); `opaque` is the
/// view's raw handle, `data` the wrapped pointer (unused: the handle knows
/// its storage).
///
/// Thread: whichever thread makes the last av_buffer_unref of the buffer.
/// That is the application's own thread for av_frame_unref / av_frame_free /
/// avcodec_free_context, the thread calling avcodec_send_frame /
/// avcodec_receive_packet when an encoder drops a frame it is done with
/// (FFV1, also with slice threads), or one of FFmpeg's worker threads when
/// an encoder runs frame-threaded (e.g. FFVHUFF with thread_count > 1): any
/// thread, at any time after the hand-off, possibly after every daq_pool
/// object of the caller is gone.
///
/// May touch: only the handle. Bytes::release_raw is one acq_rel decrement;
/// the last one runs the pool's reset on this thread (size back to 0, or the
/// zero_on_release scrub) and pushes the buffer on the pool's lock-free free
/// list, waking an acquirer that waits. It never allocates, never throws
/// (an exception must not unwind through FFmpeg's C frames) and takes no
/// lock (except the debug-build bookkeeping mutex, DAQ_POOL_DEBUG).
inline void release_view(void* opaque, std::uint8_t* /*data*/) noexcept {
  daq_pool::detail::handle_received(opaque);  // ThreadSanitizer only: the library's hand-off, made visible
  Bytes::release_raw(opaque);
}

/// Throws std::invalid_argument("daq_pool::ffmpeg::<function>: <what>"). Out
/// of line of the callers' success paths, which must not allocate.
[[noreturn]] inline void invalid(const char* function, const std::string& what) {
  throw std::invalid_argument(std::string("daq_pool::ffmpeg::") + function + ": " + what);
}

}  // namespace detail

/// Wraps `view` in a new AVBufferRef without copying: `ref->data` is
/// `view.data()`, `ref->size` is `view.size()`. The view's reference moves
/// into the buffer (pass `std::move(view)` to hand yours over, or a copy to
/// keep it) and is dropped by FFmpeg's last av_buffer_unref, on that thread
/// (see detail::release_view). The buffer is read-only
/// (AV_BUFFER_FLAG_READONLY): FFmpeg copies before it writes.
///
/// The caller owns the returned reference. Throws std::invalid_argument for
/// an empty view, std::bad_alloc if FFmpeg cannot allocate its wrapper (the
/// view's reference is dropped then, nothing leaks). Thread-safe. Costs
/// FFmpeg's two small allocations (its AVBuffer and AVBufferRef, freed at
/// the last unref); daq_pool allocates nothing.
[[nodiscard]] inline AVBufferRef* wrap_buffer(Bytes view) {
  if (view.empty()) detail::invalid("wrap_buffer", "view is empty (an AVBufferRef needs at least 1 byte)");
#if LIBAVUTIL_VERSION_MAJOR < 57
  // Before FFmpeg 5.0 buffer sizes were int.
  if (view.size() > static_cast<std::size_t>(INT_MAX))
    detail::invalid("wrap_buffer", "view of " + std::to_string(view.size()) +
                                       " bytes exceeds INT_MAX, this libavutil's limit for a buffer");
#endif
  // FFmpeg's API takes a non-const pointer; AV_BUFFER_FLAG_READONLY is the
  // promise that it will not write through it.
  auto* data = reinterpret_cast<std::uint8_t*>(const_cast<std::byte*>(view.data()));
  const std::size_t size = view.size();
  void* raw = std::move(view).into_raw();
  daq_pool::detail::handle_published(raw);
  AVBufferRef* ref = av_buffer_create(data, size, &detail::release_view, raw, AV_BUFFER_FLAG_READONLY);
  if (ref == nullptr) {
    // av_buffer_create does not call the free callback when it fails: the
    // handle is still ours to drop.
    Bytes::release_raw(raw);
    throw std::bad_alloc();
  }
  return ref;
}

/// Where a planar gray image lies in a view: row y starts at byte
/// `y * stride` and holds `width` pixels of 1 (GRAY8) or 2 (GRAY16LE) bytes.
struct GrayImage {
  int width = 0;                            ///< pixels per row, at least 1
  int height = 0;                           ///< rows, at least 1
  std::size_t stride = 0;                   ///< bytes from one row's start to the next's, >= width * bytes per pixel
  AVPixelFormat format = AV_PIX_FMT_GRAY8;  ///< AV_PIX_FMT_GRAY8 or AV_PIX_FMT_GRAY16LE
};

/// Bytes per pixel of `format`: 1 for GRAY8, 2 for GRAY16LE, 0 for a format
/// wrap_gray_frame does not take. Never allocates.
constexpr std::size_t gray_bytes_per_pixel(AVPixelFormat format) noexcept {
  return format == AV_PIX_FMT_GRAY8 ? 1 : format == AV_PIX_FMT_GRAY16LE ? 2 : 0;
}

namespace detail {

/// gray_image_bytes, its errors naming `fn`, the public function called.
inline std::size_t gray_image_bytes(const char* fn, const GrayImage& image) {
  const std::size_t bpp = gray_bytes_per_pixel(image.format);
  if (bpp == 0) {
    const char* name = av_get_pix_fmt_name(image.format);
    invalid(fn, "format must be AV_PIX_FMT_GRAY8 or AV_PIX_FMT_GRAY16LE (got " +
                    (name != nullptr ? std::string(name) : std::to_string(static_cast<int>(image.format))) + ")");
  }
  if (image.width < 1) invalid(fn, "width must be at least 1 (got " + std::to_string(image.width) + ")");
  if (image.height < 1) invalid(fn, "height must be at least 1 (got " + std::to_string(image.height) + ")");
  const auto width = static_cast<std::size_t>(image.width);
  const auto height = static_cast<std::size_t>(image.height);
  const std::size_t row_bytes = width * bpp;  // width <= INT_MAX, bpp <= 2: no overflow
  if (image.stride < row_bytes)
    invalid(fn, "stride (" + std::to_string(image.stride) + " bytes) is less than a row of " + std::to_string(width) +
                    " pixels of " + std::to_string(bpp) + " bytes (" + std::to_string(row_bytes) + " bytes)");
  constexpr auto int_max = static_cast<std::size_t>(INT_MAX);
  if (image.stride > int_max)
    invalid(fn, "stride (" + std::to_string(image.stride) + " bytes) exceeds INT_MAX, the limit of AVFrame::linesize");
  if (image.stride > int_max / height)
    invalid(fn, "stride * height (" + std::to_string(image.stride) + " * " + std::to_string(height) +
                    ") exceeds INT_MAX bytes (FFmpeg computes row offsets in int)");
  return image.stride * (height - 1) + row_bytes;  // <= stride * height <= INT_MAX
}

}  // namespace detail

/// The smallest view that holds `image`: `stride * (height - 1) + width *
/// bytes per pixel` (the last row needs no padding). Throws
/// std::invalid_argument on the errors wrap_gray_frame reports for the
/// layout alone (format, width, height, stride, and a frame whose rows
/// would span more than INT_MAX bytes: FFmpeg computes row offsets in int).
/// Thread-safe; never allocates (except the exception's message).
inline std::size_t gray_image_bytes(const GrayImage& image) {
  return detail::gray_image_bytes("gray_image_bytes", image);
}

/// Makes `frame` a gray video frame showing `view`'s bytes in place: sets
/// buf[0] (a read-only AVBufferRef over the whole view, see wrap_buffer),
/// data[0] (= view.data()), linesize[0] (= stride), width, height and format.
/// The frame then owns the view's reference; av_frame_unref, av_frame_free
/// or the last encoder reference drops it, on that thread. Pass the frame to
/// avcodec_send_frame as it is: the encoder takes a reference
/// (av_frame_ref), no copy, and the application unrefs its own as usual.
///
/// `frame` must hold no data yet (fresh from av_frame_alloc, or after
/// av_frame_unref); set pts and other properties afterwards. Throws
/// std::invalid_argument naming the argument and its limit: a null or
/// non-empty frame, an empty view, a bad layout (see gray_image_bytes), or a
/// view shorter than gray_image_bytes(image); std::bad_alloc if FFmpeg cannot
/// allocate its wrapper. On any throw `frame` is unchanged and the view's
/// reference is dropped (the caller's own view, if it passed a copy, stays).
/// Not thread-safe for one frame; costs what wrap_buffer costs.
inline void wrap_gray_frame(AVFrame* frame, Bytes view, const GrayImage& image) {
  constexpr const char* fn = "wrap_gray_frame";
  if (frame == nullptr) detail::invalid(fn, "frame is null");
  if (frame->buf[0] != nullptr || frame->data[0] != nullptr)
    detail::invalid(fn, "frame already holds data (buf[0] or data[0] is set): av_frame_unref() it first");
  if (view.empty()) detail::invalid(fn, "view is empty");
  const std::size_t needed = detail::gray_image_bytes(fn, image);
  if (view.size() < needed)
    detail::invalid(fn, "view holds " + std::to_string(view.size()) + " bytes; a " + std::to_string(image.width) +
                            " x " + std::to_string(image.height) + " " + av_get_pix_fmt_name(image.format) +
                            " image with stride " + std::to_string(image.stride) + " needs " + std::to_string(needed) +
                            " (stride * (height - 1) + width * bytes per pixel)");
  const auto* data = reinterpret_cast<const std::uint8_t*>(view.data());
  AVBufferRef* ref = wrap_buffer(std::move(view));
  frame->buf[0] = ref;
  frame->data[0] = const_cast<std::uint8_t*>(data);  // read-only: FFmpeg checks buf[0] before writing
  frame->linesize[0] = static_cast<int>(image.stride);
  frame->extended_data = frame->data;
  frame->width = image.width;
  frame->height = image.height;
  frame->format = image.format;
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::ffmpeg
