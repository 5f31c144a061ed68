// The simulated sensor's deterministic frame content, and its verification.
//
// A frame is a 32-byte header (magic, frame number, frame size, checksum of
// the payload) followed by a payload of 64-bit words w[i] = seed(frame) + i*K.
// Every word depends on the frame number, so a buffer handed out again while
// an older view still reads it, a torn copy, a shifted copy or a stale frame
// all fail the word-by-word comparison; the checksum additionally proves the
// header travelled with its payload.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace frame_pipeline {

inline constexpr std::size_t frame_header_bytes = 32;
inline constexpr std::uint64_t frame_magic = 0x454d415246514144ull;  // "DAQFRAME", little-endian

/// The header at the start of every frame (host byte order).
struct FrameHeader {
  std::uint64_t magic;
  std::uint64_t frame_number;
  std::uint64_t frame_bytes;
  std::uint64_t checksum;  ///< of the payload, see Checksum
};
static_assert(sizeof(FrameHeader) == frame_header_bytes);

namespace detail {

/// splitmix64's finalizer: a well-mixed per-frame seed.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Odd step between consecutive words: adjacent words always differ, and the
/// additive form lets the compiler vectorize fill and verify.
inline constexpr std::uint64_t word_step = 0xd6e8feb86659fd93ull;

/// Fletcher-style checksum over 64-bit words (order-sensitive).
struct Checksum {
  std::uint64_t a = 0, b = 0;
  void add(std::uint64_t w) noexcept {
    a += w;
    b += a;
  }
  std::uint64_t value() const noexcept { return a ^ (b * 0x9e3779b97f4a7c15ull); }
};

inline std::uint64_t load_word(const std::byte* p) noexcept {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);  // frames need not be 8-byte aligned (heap fallback)
  return w;
}

}  // namespace detail

/// Writes frame `frame_number`'s header and payload over all of `frame`
/// (at least frame_header_bytes long). Never allocates.
inline void fill_frame(std::span<std::byte> frame, std::uint64_t frame_number) noexcept {
  std::byte* payload = frame.data() + frame_header_bytes;
  const std::size_t payload_bytes = frame.size() - frame_header_bytes;
  const std::size_t words = payload_bytes / 8;
  std::uint64_t w = detail::mix(frame_number);
  detail::Checksum sum;
  for (std::size_t i = 0; i < words; ++i, w += detail::word_step) {
    std::memcpy(payload + i * 8, &w, 8);
    sum.add(w);
  }
  if (const std::size_t tail = payload_bytes % 8; tail != 0) {
    // The tail holds the first bytes of the next word; it is checksummed as
    // that word with the missing bytes zero.
    std::uint64_t last = 0;
    std::memcpy(&last, &w, tail);
    std::memcpy(payload + words * 8, &last, tail);
    sum.add(last);
  }
  const FrameHeader h{frame_magic, frame_number, frame.size(), sum.value()};
  std::memcpy(frame.data(), &h, sizeof h);
}

/// Why a frame failed verification (Ok if it did not).
enum class FrameFault { ok, too_short, bad_magic, bad_size, out_of_order, bad_payload, bad_checksum };

/// A short description of `fault`.
inline const char* to_string(FrameFault fault) noexcept {
  switch (fault) {
    case FrameFault::ok:
      return "ok";
    case FrameFault::too_short:
      return "shorter than its header";
    case FrameFault::bad_magic:
      return "header magic is wrong";
    case FrameFault::bad_size:
      return "size differs from the header's";
    case FrameFault::out_of_order:
      return "frame number not after the previous frame's";
    case FrameFault::bad_payload:
      return "payload differs from the sensor's pattern";
    case FrameFault::bad_checksum:
      return "payload checksum differs from the header's";
  }
  return "?";
}

/// The outcome of verify_frame.
struct FrameCheck {
  FrameFault fault = FrameFault::ok;
  std::uint64_t frame_number = 0;  ///< from the header (when it was readable)
  std::size_t offset = 0;          ///< first bad byte offset, for bad_payload
};

/// Checks every byte of `frame`: header, that its number is above
/// `previous_number` (if `has_previous`), the pattern and the checksum.
/// Never allocates.
inline FrameCheck verify_frame(std::span<const std::byte> frame, std::size_t expected_bytes, bool has_previous,
                               std::uint64_t previous_number) noexcept {
  FrameCheck r;
  if (frame.size() < frame_header_bytes) {
    r.fault = FrameFault::too_short;
    return r;
  }
  FrameHeader h;
  std::memcpy(&h, frame.data(), sizeof h);
  r.frame_number = h.frame_number;
  if (h.magic != frame_magic) {
    r.fault = FrameFault::bad_magic;
    return r;
  }
  if (h.frame_bytes != frame.size() || frame.size() != expected_bytes) {
    r.fault = FrameFault::bad_size;
    return r;
  }
  if (has_previous && h.frame_number <= previous_number) {
    r.fault = FrameFault::out_of_order;
    return r;
  }
  const std::byte* payload = frame.data() + frame_header_bytes;
  const std::size_t payload_bytes = frame.size() - frame_header_bytes;
  const std::size_t words = payload_bytes / 8;
  std::uint64_t expect = detail::mix(h.frame_number);
  detail::Checksum sum;
  // Compare in blocks with a branch per block, so the inner loop stays
  // branch-free (vectorizable); find the exact offset only on failure.
  constexpr std::size_t block = 512;
  for (std::size_t start = 0; start < words; start += block) {
    const std::size_t end = start + block < words ? start + block : words;
    std::uint64_t diff = 0;
    std::uint64_t e = expect;
    for (std::size_t i = start; i < end; ++i, e += detail::word_step) {
      const std::uint64_t w = detail::load_word(payload + i * 8);
      diff |= w ^ e;
      sum.add(w);
    }
    if (diff != 0) {
      for (std::size_t i = start; i < end; ++i, expect += detail::word_step) {
        if (detail::load_word(payload + i * 8) != expect) {
          r.fault = FrameFault::bad_payload;
          r.offset = frame_header_bytes + i * 8;
          return r;
        }
      }
    }
    expect = e;
  }
  if (const std::size_t tail = payload_bytes % 8; tail != 0) {
    std::uint64_t last = 0, want = 0;
    std::memcpy(&last, payload + words * 8, tail);
    std::memcpy(&want, &expect, tail);
    if (last != want) {
      r.fault = FrameFault::bad_payload;
      r.offset = frame_header_bytes + words * 8;
      return r;
    }
    sum.add(last);
  }
  if (sum.value() != h.checksum) r.fault = FrameFault::bad_checksum;
  return r;
}

/// A preview of one frame: 16-bit little-endian pixels binned by their top
/// four bits, and their mean.
struct PreviewStats {
  std::uint64_t frame_number = 0;
  double mean = 0;
  std::array<std::uint64_t, 16> histogram{};
};

/// Computes the preview of `frame`'s payload. Never allocates.
inline PreviewStats preview_frame(std::span<const std::byte> frame) noexcept {
  PreviewStats p;
  if (frame.size() < frame_header_bytes + 2) return p;
  FrameHeader h;
  std::memcpy(&h, frame.data(), sizeof h);
  p.frame_number = h.frame_number;
  const std::byte* px = frame.data() + frame_header_bytes;
  const std::size_t n = (frame.size() - frame_header_bytes) / 2;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned v = static_cast<unsigned>(px[2 * i]) | (static_cast<unsigned>(px[2 * i + 1]) << 8);
    total += v;
    ++p.histogram[v >> 12];
  }
  p.mean = static_cast<double>(total) / static_cast<double>(n);
  return p;
}

}  // namespace frame_pipeline
