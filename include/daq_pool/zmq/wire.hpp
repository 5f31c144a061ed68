// daq_pool/zmq/wire.hpp: the wire format of daq_pool's ZeroMQ frame stream,
// the one page a Python, Rust or C implementer of a sender or receiver
// reads. Needs no libzmq (nor anything but the C++ standard library and
// detail/little_endian.hpp): it only turns headers into bytes and back and
// computes the payload checksum. docs/zmq.md describes the same format in
// prose; examples/python/receive_frames.py implements it.
//
// A frame is ONE ZeroMQ message of exactly TWO parts (ZeroMQ delivers a
// message whole or not at all):
//
//   part 1, the header, exactly 32 bytes, every integer little-endian:
//
//     offset size type field
//          0    4 u8[4] magic, the ASCII bytes "DAQZ" (0x44 0x41 0x51 0x5A)
//          4    1 u8    format version: 1
//          5    1 u8    checksum kind: 0 none, 1 sampled, 2 full (others: invalid)
//          6    2 u16   flags: bit 0 end of stream; bit 1 shared numbering
//                       (flag_shared_numbering); bits 2-15 reserved, sent
//                       as 0 and ignored on receipt
//          8    8 u64   frame number: the sender's count of frames offered
//                       to ZeroMQ (0, 1, 2...); for end of stream, the number
//                       the next frame would have had
//         16    4 u32   payload bytes: the size of part 2
//         20    4 u32   payload checksum (payload_checksum below; 0 for kind 0
//                       and for an empty payload)
//         24    8 u64   timestamp: sender's clock, ns since the Unix epoch
//                       (0: unknown)
//
//   part 2, the payload: `payload bytes` bytes, opaque (for frame_pipeline,
//   the camera frame). Empty for the end-of-stream message.
//
// A receiver checks, in this order: magic, version, header size (32), checksum
// kind, two parts, payload size, end of stream with empty payload, checksum.
// Any failure is a bad frame (FrameError says which); a receiver drops it
// whole and goes on with the next message.
//
// Numbering: with PUB/SUB every subscriber sees every number the sender
// offered, so a jump from n to m > n + 1 means m - n - 1 frames lost on the
// way to this subscriber. With PUSH/PULL and several receivers, ZeroMQ deals
// the frames out among them, so a receiver's jumps are mostly the others'
// share: the sender then sets flag_shared_numbering and a receiver must not
// count such a jump as lost (the sender's own counts say what was lost).
#pragma once

#include "daq_pool/detail/abi.hpp"
#include "daq_pool/detail/little_endian.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq {

/// Bytes of the header part of every frame. 32 is below libzmq's inline
/// ("very small message") limit of 33 bytes, so the header part is copied
/// into the zmq_msg_t itself and costs no allocation.
inline constexpr std::size_t wire_header_bytes = 32;
/// The format version this header writes and reads.
inline constexpr std::uint8_t wire_version = 1;
/// The header's first four bytes: "DAQZ".
inline constexpr std::array<std::byte, 4> wire_magic{std::byte{'D'}, std::byte{'A'}, std::byte{'Q'}, std::byte{'Z'}};
/// The largest payload a header can describe (its size field is 32 bits).
inline constexpr std::uint64_t max_payload_bytes = 0xFFFF'FFFFull;
/// Header flag: the sender's last message. Its payload is empty and its
/// frame number is the number the next frame would have had.
inline constexpr std::uint16_t flag_end_of_stream = 1;
/// Header flag: this frame went out on a socket that deals frames out among
/// several receivers (PUSH with more than one peer connected when it was
/// sent). A receiver's jump in numbering next to such a frame is the other
/// receivers' share, not a loss; the sender counts its own losses.
inline constexpr std::uint16_t flag_shared_numbering = 2;
/// What `Checksum::sampled` reads: the first `checksum_sample_words` 64-bit
/// words of every `checksum_page_words` words (the first 64 bytes of every
/// 4 KiB of payload), plus the last word.
inline constexpr std::size_t checksum_page_words = 512;
inline constexpr std::size_t checksum_sample_words = 8;

/// Which payload bytes the header's checksum covers.
///
/// `sampled` (the default) reads 64 bytes of every 4 KiB page, 1/64 of the
/// payload: about 2000 cache lines of an 8 MiB frame, tens of microseconds,
/// against about a millisecond for reading all of it (and ZeroMQ itself
/// reads each payload byte once, into the kernel). TCP and IPC already
/// protect every byte in transit; what the checksum is for is catching a
/// payload that does not belong to its header, or a buffer overwritten while
/// ZeroMQ still held it, and both change every page. `full` covers every
/// byte (a receiver that wants end-to-end proof; costs a pass over the frame
/// on both sides); `none` skips it.
enum class Checksum : std::uint8_t { none = 0, sampled = 1, full = 2 };

/// The decoded header of one frame (see encode_header for the layout).
struct WireHeader {
  std::uint64_t frame_number = 0;  ///< the sender's numbering; gaps mean frames lost in between
  std::uint32_t payload_bytes = 0;  ///< the payload part's size in bytes
  std::uint64_t timestamp_ns = 0;  ///< sender's clock, ns since the Unix epoch (0: unknown)
  Checksum checksum_kind = Checksum::sampled;  ///< how `checksum` was computed
  std::uint32_t checksum = 0;  ///< payload_checksum(payload, checksum_kind)
  std::uint16_t flags = 0;     ///< flag_end_of_stream, flag_shared_numbering; other bits reserved (0), ignored on receipt
  std::uint8_t version = wire_version;  ///< the wire format's version (wire_version)

  /// True for the sender's end-of-stream message. Never allocates.
  bool end_of_stream() const noexcept { return (flags & flag_end_of_stream) != 0; }
  /// True if the sender shared its numbering among several receivers when it
  /// sent this (flag_shared_numbering). Never allocates.
  bool shared_numbering() const noexcept { return (flags & flag_shared_numbering) != 0; }
};

/// Why a message is not a valid frame (none if it is).
enum class FrameError {
  none,
  header_too_short,       ///< first part shorter than magic + version
  bad_magic,              ///< first part does not start with "DAQZ"
  unsupported_version,    ///< a version this code does not read
  bad_header_size,        ///< first part is not exactly wire_header_bytes
  unknown_checksum_kind,  ///< checksum kind not none, sampled or full
  missing_payload,        ///< a one-part message
  too_many_parts,         ///< more than header + payload
  payload_size_mismatch,  ///< payload part size differs from the header's
  checksum_mismatch,      ///< payload checksum differs from the header's
  bad_end_of_stream,      ///< end-of-stream message with a non-empty payload
};

/// A short description of `error`. Never allocates.
inline const char* to_string(FrameError error) noexcept {
  switch (error) {
    case FrameError::none:
      return "ok";
    case FrameError::header_too_short:
      return "header part too short for the magic and version";
    case FrameError::bad_magic:
      return "header part does not start with the magic \"DAQZ\"";
    case FrameError::unsupported_version:
      return "unsupported wire format version";
    case FrameError::bad_header_size:
      return "header part is not 32 bytes";
    case FrameError::unknown_checksum_kind:
      return "unknown checksum kind";
    case FrameError::missing_payload:
      return "message has a header but no payload part";
    case FrameError::too_many_parts:
      return "message has more than two parts";
    case FrameError::payload_size_mismatch:
      return "payload size differs from the header's";
    case FrameError::checksum_mismatch:
      return "payload checksum differs from the header's";
    case FrameError::bad_end_of_stream:
      return "end-of-stream message with a payload";
  }
  return "?";
}

namespace detail {

// The one little-endian helper of daq_pool (detail/little_endian.hpp).
using ::daq_pool::DAQ_POOL_ABI_NAMESPACE::detail::load_le;
using ::daq_pool::DAQ_POOL_ABI_NAMESPACE::detail::load_le_partial;
using ::daq_pool::DAQ_POOL_ABI_NAMESPACE::detail::store_le;

/// Fletcher-style sums over 64-bit words (mod 2^64): order-sensitive, and
/// easy to compute elsewhere (numpy: a = x.sum(), b = x.cumsum().sum()).
struct Fletcher64 {
  std::uint64_t a = 0, b = 0;
  void add(std::uint64_t w) noexcept {
    a += w;
    b += a;
  }
  std::uint32_t fold() const noexcept {
    const std::uint64_t c = a ^ (b * 0x9E37'79B9'7F4A'7C15ull);
    return static_cast<std::uint32_t>(c ^ (c >> 32));
  }
};

/// Word `i` of a payload read as little-endian 64-bit words, the last one
/// zero-padded when the size is not a multiple of 8.
inline std::uint64_t payload_word(std::span<const std::byte> payload, std::size_t i) noexcept {
  const std::size_t at = i * 8;
  return load_le_partial(payload.data() + at, payload.size() - at);
}

}  // namespace detail

/// The checksum of `payload` as the header carries it: the payload read as
/// little-endian 64-bit words (the last one zero-padded), the words that
/// `kind` selects (all; or, for sampled, word i when i % 512 < 8, then the
/// last word if not taken already) summed as a = Σx, b = Σ(running a),
/// mod 2^64, folded to 32 bits: c = a ^ (b * 0x9E3779B97F4A7C15),
/// checksum = low 32 bits of (c ^ (c >> 32)). 0 for `none` and for an empty
/// payload. Thread-safe; never allocates.
inline std::uint32_t payload_checksum(std::span<const std::byte> payload, Checksum kind) noexcept {
  if (kind == Checksum::none || payload.empty()) return 0;
  const std::size_t words = (payload.size() + 7) / 8;  // the last one possibly partial
  const std::size_t whole = payload.size() / 8;
  detail::Fletcher64 sum;
  if (kind == Checksum::full) {
    for (std::size_t i = 0; i < whole; ++i) sum.add(detail::load_le<std::uint64_t>(payload.data() + i * 8));
    if (whole != words) sum.add(detail::payload_word(payload, whole));
    return sum.fold();
  }
  // One cache line per 4 KiB page: each a cache (and TLB) miss the hardware
  // prefetchers do not see coming, as they stop at page boundaries. Asking
  // for the line 32 pages ahead keeps many misses in flight instead of one:
  // ~80 instead of ~250 us for 8 MiB that is not in the cache.
  [[maybe_unused]] constexpr std::size_t ahead = 32 * checksum_page_words;
  for (std::size_t page = 0; page < words; page += checksum_page_words) {
#if defined(__GNUC__)
    if (words - page > ahead) __builtin_prefetch(payload.data() + (page + ahead) * 8);
#endif
    if (whole - page >= checksum_sample_words) {  // whole words only: the last may be partial
      for (std::size_t i = page; i < page + checksum_sample_words; ++i)
        sum.add(detail::load_le<std::uint64_t>(payload.data() + i * 8));
    } else {
      for (std::size_t i = page; i < words; ++i) sum.add(detail::payload_word(payload, i));
    }
  }
  if ((words - 1) % checksum_page_words >= checksum_sample_words) sum.add(detail::payload_word(payload, words - 1));
  return sum.fold();
}

/// The 32 header bytes for `h`, little-endian:
///
///   offset size field
///        0    4 magic "DAQZ"
///        4    1 version (1)
///        5    1 checksum kind (0 none, 1 sampled, 2 full)
///        6    2 flags (bit 0: end of stream; bit 1: shared numbering)
///        8    8 frame number
///       16    4 payload bytes
///       20    4 payload checksum
///       24    8 timestamp, ns since the Unix epoch (0: unknown)
///
/// Thread-safe; never allocates.
inline std::array<std::byte, wire_header_bytes> encode_header(const WireHeader& h) noexcept {
  std::array<std::byte, wire_header_bytes> out{};
  std::memcpy(out.data(), wire_magic.data(), wire_magic.size());
  out[4] = static_cast<std::byte>(h.version);
  out[5] = static_cast<std::byte>(h.checksum_kind);
  detail::store_le(out.data() + 6, h.flags);
  detail::store_le(out.data() + 8, h.frame_number);
  detail::store_le(out.data() + 16, h.payload_bytes);
  detail::store_le(out.data() + 20, h.checksum);
  detail::store_le(out.data() + 24, h.timestamp_ns);
  return out;
}

/// Parses a header part into `out`, checking magic, version, size and
/// checksum kind (in that order; `out` holds what could be read). Does not
/// look at a payload. Thread-safe; never allocates.
inline FrameError decode_header(std::span<const std::byte> part, WireHeader& out) noexcept {
  out = WireHeader{};
  if (part.size() < wire_magic.size() + 1) return FrameError::header_too_short;
  if (std::memcmp(part.data(), wire_magic.data(), wire_magic.size()) != 0) return FrameError::bad_magic;
  out.version = std::to_integer<std::uint8_t>(part[4]);
  if (out.version != wire_version) return FrameError::unsupported_version;
  if (part.size() != wire_header_bytes) return FrameError::bad_header_size;
  const auto kind = std::to_integer<std::uint8_t>(part[5]);
  out.flags = detail::load_le<std::uint16_t>(part.data() + 6);
  out.frame_number = detail::load_le<std::uint64_t>(part.data() + 8);
  out.payload_bytes = detail::load_le<std::uint32_t>(part.data() + 16);
  out.checksum = detail::load_le<std::uint32_t>(part.data() + 20);
  out.timestamp_ns = detail::load_le<std::uint64_t>(part.data() + 24);
  if (kind > static_cast<std::uint8_t>(Checksum::full)) return FrameError::unknown_checksum_kind;
  out.checksum_kind = static_cast<Checksum>(kind);
  return FrameError::none;
}

/// Nanoseconds since the Unix epoch now (system_clock), for
/// WireHeader::timestamp_ns. Thread-safe; never allocates.
inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq
