// How to view a frame's bytes: a numpy typestr and a shape, stated by the
// producer when it knows them, so that a reader in another process (the
// Python package, a .dqr reader) shows an image, not a byte string. One
// definition for the .dqr header (recording/dqr_format.hpp) and the shared
// memory server's hello (shm/protocol.hpp).
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// Dimensions a frame's shape may have.
inline constexpr std::size_t max_frame_dims = 4;

/// What one frame is, when the producer knows it: a numpy typestr ("<u2",
/// "|u1", "<f4"...; empty: raw bytes), a shape of up to max_frame_dims
/// dimensions (ndim 0: unknown), and a free-text pixel format name
/// ("Mono16"). A plain value; copying it allocates (its strings).
struct FrameLayout {
  std::string dtype;                                 ///< numpy typestr, at most 7 characters
  std::uint32_t ndim = 0;                            ///< used entries of shape
  std::array<std::uint64_t, max_frame_dims> shape{};  ///< e.g. {height, width}
  std::string pixel_format;                          ///< at most 31 characters
};

/// The bytes of one element of numpy typestr `dtype` ("<u2" -> 2), or 0 if
/// it is empty or not of the form <byte-order><kind><digits>. Never
/// allocates.
inline std::size_t layout_item_bytes(const std::string& dtype) noexcept {
  if (dtype.size() < 3) return 0;
  const char order = dtype[0];
  if (order != '<' && order != '>' && order != '|' && order != '=') return 0;
  std::size_t n = 0;
  for (std::size_t i = 2; i < dtype.size(); ++i) {
    if (dtype[i] < '0' || dtype[i] > '9' || n > 1'000'000) return 0;
    n = n * 10 + static_cast<std::size_t>(dtype[i] - '0');
  }
  return n;
}

/// What is wrong with `layout` for frames of at most `capacity` bytes, in
/// words naming the field and the limit, or "" if nothing: dtype longer
/// than 7 characters or not a numpy typestr, ndim above max_frame_dims, a
/// used dimension of 0 or an unused one not 0, a shape without a dtype or
/// whose bytes exceed `capacity`, a pixel format longer than 31 characters.
/// Allocates (the message).
inline std::string layout_problem(const FrameLayout& layout, std::uint64_t capacity) {
  if (layout.dtype.size() > 7) return "dtype '" + layout.dtype + "' is longer than 7 characters";
  if (!layout.dtype.empty() && layout_item_bytes(layout.dtype) == 0)
    return "dtype '" + layout.dtype + "' is not a numpy typestr such as <u2, |u1 or <f4";
  if (layout.pixel_format.size() > 31) return "pixel_format is longer than 31 characters";
  if (layout.ndim > max_frame_dims)
    return "ndim " + std::to_string(layout.ndim) + " exceeds " + std::to_string(max_frame_dims);
  std::uint64_t elements = 1;
  for (std::size_t d = 0; d < max_frame_dims; ++d) {
    const std::uint64_t n = layout.shape[d];
    if (d < layout.ndim && n == 0) return "shape[" + std::to_string(d) + "] is 0";
    if (d >= layout.ndim && n != 0) return "shape[" + std::to_string(d) + "] is set beyond ndim " + std::to_string(layout.ndim);
    if (d < layout.ndim) elements = n > capacity ? capacity + 1 : elements * n;
    if (elements > capacity) break;
  }
  if (layout.ndim != 0) {
    if (layout.dtype.empty()) return "a shape needs a dtype";
    const std::uint64_t item = layout_item_bytes(layout.dtype);
    if (elements > capacity || elements * item > capacity)
      return "the shape of " + layout.dtype + " elements is larger than a frame's " + std::to_string(capacity) + " bytes";
  }
  return {};
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
