// The .dqr raw recording container, byte by byte: constants, the file
// header and the per-frame index entry, their encoders and decoders, and the
// CRC-32 that guards them. No system library: another language's reader
// (Python, with numpy.memmap and zlib.crc32) needs this file and
// docs/recording.md, nothing else.
//
// Layout (all integers little-endian; A = the file's alignment, a power of
// two >= 4096, stored in the header; S = the record stride):
//
//   [0, A)                  file header (kHeaderBytes used, the rest zero)
//   [A + i*S, A + i*S + A)  record i's index entry (kEntryBytes used, rest zero)
//   [A + i*S + A, ...)      record i's payload: up to frame_capacity bytes
//   S = A + round_up(frame_capacity, A)
//
// Why entries live in the records (and not in an index at the end): a file
// cut short by SIGKILL or power loss has no end to read. Each record's entry
// is written only after its payload's write has completed (and, with
// kFlagDurableIndex, after an fdatasync), so an entry that is on the disk
// vouches for the payload before it. A reader scans the record slots: a
// valid entry lists a frame; an all-zero slot is a frame that never
// committed (a hole: several writes are in flight, so the last few may
// complete out of order); anything else is damage, reported with its offset.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "daq_pool/detail/little_endian.hpp"
#include "daq_pool/frame_layout.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording::dqr {

/// The 8 bytes every .dqr file starts with: "DQR" NUL CR LF SUB LF (the PNG
/// trick: a file mangled by a text-mode transfer no longer matches).
inline constexpr std::array<std::uint8_t, 8> kMagic = {'D', 'Q', 'R', 0x00, 0x0D, 0x0A, 0x1A, 0x0A};
/// The format's major version: a reader refuses another major version.
inline constexpr std::uint16_t kVersionMajor = 1;
/// The minor version: additions a version-1 reader may ignore.
inline constexpr std::uint16_t kVersionMinor = 0;
/// Bytes of the file header that carry fields (the rest of [0, A) is zero).
inline constexpr std::size_t kHeaderBytes = 160;
/// Bytes of an index entry that carry fields (the rest of its block is zero).
inline constexpr std::size_t kEntryBytes = 64;
/// The 4 bytes an index entry starts with: "DQRF".
inline constexpr std::uint32_t kEntryMagic = 0x46525144u;
/// The smallest alignment a file may declare (a page: what numpy.memmap and
/// O_DIRECT both like).
inline constexpr std::uint32_t kMinAlignment = 4096;
/// The largest alignment a reader accepts (a sanity bound on untrusted input).
inline constexpr std::uint32_t kMaxAlignment = 1u << 20;
/// Dimensions a frame's shape may have.
inline constexpr std::size_t kMaxDims = max_frame_dims;
/// Header flag: each entry was written after an fdatasync of its payload
/// (the index survives power loss, not only SIGKILL).
inline constexpr std::uint32_t kFlagDurableIndex = 1u << 0;
/// Header flag: the recorder wrote through the page cache (O_DIRECT refused).
inline constexpr std::uint32_t kFlagBuffered = 1u << 1;

/// CRC-32 of IEEE 802.3 (reflected polynomial 0xEDB88320, initial and final
/// xor 0xFFFFFFFF): what Python's zlib.crc32 computes. Never allocates.
[[nodiscard]] constexpr std::uint32_t crc32(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept {
  crc = ~crc;
  for (std::byte b : bytes) {
    crc ^= std::to_integer<std::uint32_t>(b);
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/// What one frame is, when the writer knows it (daq_pool/frame_layout.hpp).
using FrameLayout = daq_pool::FrameLayout;

/// The file header (offsets into the file, all little-endian):
///
///   off size field
///     0    8 magic            kMagic
///     8    2 version_major    1
///    10    2 version_minor    0
///    12    4 header_bytes     kHeaderBytes (160): bytes covered by header_crc
///    16    4 alignment        A: power of two, 4096 <= A <= 2^20; record 0 at A
///    20    4 entry_bytes      kEntryBytes (64)
///    24    8 record_stride    S = A + round_up(frame_capacity, A)
///    32    8 frame_capacity   largest payload of a record, bytes
///    40    8 created_ns       creation time, ns since the Unix epoch (int64)
///    48    8 file_id          random; every entry repeats it
///    56    8 dtype            numpy typestr, ASCII, NUL-padded ("" = bytes)
///    64    4 ndim             0..4
///    68    4 flags            kFlagDurableIndex | kFlagBuffered
///    72   32 shape[4]         uint64 each, unused ones 0
///   104   32 pixel_format     ASCII, NUL-padded
///   136   20 reserved         zero
///   156    4 header_crc       crc32 of bytes [0, 156)
struct FileHeader {
  std::uint16_t version_major = kVersionMajor;  ///< kVersionMajor
  std::uint16_t version_minor = kVersionMinor;  ///< kVersionMinor
  std::uint32_t alignment = kMinAlignment;      ///< A
  std::uint64_t record_stride = 0;              ///< S
  std::uint64_t frame_capacity = 0;             ///< bytes a payload may hold
  std::int64_t created_ns = 0;                  ///< ns since the Unix epoch
  std::uint64_t file_id = 0;                    ///< repeated in every entry
  std::uint32_t flags = 0;                      ///< kFlag*
  FrameLayout layout;                           ///< dtype, shape, pixel format

  /// Offset of record `i`'s index entry. Never allocates.
  [[nodiscard]] std::uint64_t record_offset(std::uint64_t i) const noexcept { return alignment + i * record_stride; }
  /// Offset of record `i`'s payload. Never allocates.
  [[nodiscard]] std::uint64_t payload_offset(std::uint64_t i) const noexcept { return record_offset(i) + alignment; }
};

/// One index entry, at the start of its record (offsets within the entry):
///
///   off size field
///     0    4 magic            kEntryMagic ("DQRF")
///     4    4 flags            0
///     8    8 record           i: this record's position in the file
///    16    8 frame_number     the writer's frame number
///    24    8 timestamp_ns     the writer's timestamp, ns (int64)
///    32    8 payload_offset   A + i*S + A (absolute file offset)
///    40    8 payload_size     bytes, <= frame_capacity
///    48    8 file_id          the header's file_id
///    56    4 reserved         zero
///    60    4 entry_crc        crc32 of bytes [0, 60)
struct IndexEntry {
  std::uint64_t record = 0;          ///< position i of the record
  std::uint64_t frame_number = 0;    ///< the writer's frame number
  std::int64_t timestamp_ns = 0;     ///< the writer's timestamp
  std::uint64_t payload_offset = 0;  ///< absolute file offset of the payload
  std::uint64_t payload_size = 0;    ///< bytes of payload
  std::uint64_t file_id = 0;         ///< the header's file_id
};

/// Rounds `n` up to a multiple of `a` (a power of two). Never allocates.
[[nodiscard]] constexpr std::uint64_t round_up(std::uint64_t n, std::uint64_t a) noexcept { return (n + a - 1) & ~(a - 1); }

/// The record stride for a capacity and an alignment. Never allocates.
[[nodiscard]] constexpr std::uint64_t stride_for(std::uint64_t frame_capacity, std::uint32_t alignment) noexcept {
  return alignment + round_up(frame_capacity, alignment);
}

namespace detail {
inline void put_text(std::byte* at, std::size_t room, std::string_view s) noexcept {
  const std::size_t n = s.size() < room ? s.size() : room;
  std::memcpy(at, s.data(), n);
}
inline std::string get_text(const std::byte* at, std::size_t room) {
  std::size_t n = 0;
  while (n < room && at[n] != std::byte{0}) ++n;
  return std::string(reinterpret_cast<const char*>(at), n);
}
}  // namespace detail

/// Writes `h` into out[0, kHeaderBytes) (header_crc included); the caller
/// zeroes the rest of the alignment block. Text fields longer than their room
/// are cut. Never allocates.
inline void encode_header(const FileHeader& h, std::span<std::byte, kHeaderBytes> out) noexcept {
  using daq_pool::detail::store_le;
  std::byte* p = out.data();
  std::memset(p, 0, kHeaderBytes);
  std::memcpy(p, kMagic.data(), kMagic.size());
  store_le<std::uint16_t>(p + 8, h.version_major);
  store_le<std::uint16_t>(p + 10, h.version_minor);
  store_le<std::uint32_t>(p + 12, static_cast<std::uint32_t>(kHeaderBytes));
  store_le<std::uint32_t>(p + 16, h.alignment);
  store_le<std::uint32_t>(p + 20, static_cast<std::uint32_t>(kEntryBytes));
  store_le<std::uint64_t>(p + 24, h.record_stride);
  store_le<std::uint64_t>(p + 32, h.frame_capacity);
  store_le<std::uint64_t>(p + 40, static_cast<std::uint64_t>(h.created_ns));
  store_le<std::uint64_t>(p + 48, h.file_id);
  detail::put_text(p + 56, 7, h.layout.dtype);  // one NUL always left
  store_le<std::uint32_t>(p + 64, h.layout.ndim);
  store_le<std::uint32_t>(p + 68, h.flags);
  for (std::size_t d = 0; d < kMaxDims; ++d) store_le<std::uint64_t>(p + 72 + 8 * d, h.layout.shape[d]);
  detail::put_text(p + 104, 31, h.layout.pixel_format);
  store_le<std::uint32_t>(p + 156, crc32({p, 156}));
}

/// Why a header was refused, with the offset of the offending field.
struct HeaderProblem {
  std::uint64_t offset = 0;  ///< offset of the field in the file
  std::string what;          ///< what is wrong, in words
};

/// Reads a header from the first kHeaderBytes of `in` and checks it alone
/// (magic, version, crc, sizes, geometry). On a problem returns nothing and
/// fills `problem`. `in` is untrusted. Allocates only the strings.
inline std::optional<FileHeader> decode_header(std::span<const std::byte> in, HeaderProblem& problem) {
  using daq_pool::detail::load_le;
  if (in.size() < kHeaderBytes) {
    problem = {in.size(), "file too short for a .dqr header (" + std::to_string(in.size()) + " of " +
                              std::to_string(kHeaderBytes) + " bytes)"};
    return std::nullopt;
  }
  const std::byte* p = in.data();
  if (std::memcmp(p, kMagic.data(), kMagic.size()) != 0) {
    problem = {0, "not a .dqr file (bad magic)"};
    return std::nullopt;
  }
  FileHeader h;
  h.version_major = load_le<std::uint16_t>(p + 8);
  h.version_minor = load_le<std::uint16_t>(p + 10);
  if (h.version_major != kVersionMajor) {
    problem = {8, "unsupported .dqr version " + std::to_string(h.version_major) + "." +
                      std::to_string(h.version_minor) + " (this reader reads " + std::to_string(kVersionMajor) + ".x)"};
    return std::nullopt;
  }
  if (load_le<std::uint32_t>(p + 12) != kHeaderBytes) {
    problem = {12, "header_bytes is " + std::to_string(load_le<std::uint32_t>(p + 12)) + ", expected " +
                       std::to_string(kHeaderBytes)};
    return std::nullopt;
  }
  const std::uint32_t crc = load_le<std::uint32_t>(p + 156);
  if (crc != crc32({p, 156})) {
    problem = {156, "header checksum mismatch (header damaged)"};
    return std::nullopt;
  }
  h.alignment = load_le<std::uint32_t>(p + 16);
  if (h.alignment < kMinAlignment || h.alignment > kMaxAlignment || (h.alignment & (h.alignment - 1)) != 0) {
    problem = {16, "alignment " + std::to_string(h.alignment) + " is not a power of two in [4096, 2^20]"};
    return std::nullopt;
  }
  if (load_le<std::uint32_t>(p + 20) != kEntryBytes) {
    problem = {20, "entry_bytes is " + std::to_string(load_le<std::uint32_t>(p + 20)) + ", expected " +
                       std::to_string(kEntryBytes)};
    return std::nullopt;
  }
  h.record_stride = load_le<std::uint64_t>(p + 24);
  h.frame_capacity = load_le<std::uint64_t>(p + 32);
  // Bounded so that stride arithmetic can't overflow: 2^48 bytes per frame.
  if (h.frame_capacity == 0 || h.frame_capacity > (std::uint64_t{1} << 48) ||
      h.record_stride != stride_for(h.frame_capacity, h.alignment)) {
    problem = {24, "record_stride " + std::to_string(h.record_stride) + " does not match frame_capacity " +
                       std::to_string(h.frame_capacity) + " and alignment " + std::to_string(h.alignment)};
    return std::nullopt;
  }
  h.created_ns = static_cast<std::int64_t>(load_le<std::uint64_t>(p + 40));
  h.file_id = load_le<std::uint64_t>(p + 48);
  h.layout.dtype = detail::get_text(p + 56, 8);
  h.layout.ndim = load_le<std::uint32_t>(p + 64);
  if (h.layout.ndim > kMaxDims) {
    problem = {64, "ndim " + std::to_string(h.layout.ndim) + " exceeds " + std::to_string(kMaxDims)};
    return std::nullopt;
  }
  h.flags = load_le<std::uint32_t>(p + 68);
  for (std::size_t d = 0; d < kMaxDims; ++d) h.layout.shape[d] = load_le<std::uint64_t>(p + 72 + 8 * d);
  h.layout.pixel_format = detail::get_text(p + 104, 32);
  return h;
}

/// Writes `e` into out[0, kEntryBytes) (entry_crc included). Never allocates.
inline void encode_entry(const IndexEntry& e, std::span<std::byte, kEntryBytes> out) noexcept {
  using daq_pool::detail::store_le;
  std::byte* p = out.data();
  std::memset(p, 0, kEntryBytes);
  store_le<std::uint32_t>(p + 0, kEntryMagic);
  store_le<std::uint64_t>(p + 8, e.record);
  store_le<std::uint64_t>(p + 16, e.frame_number);
  store_le<std::uint64_t>(p + 24, static_cast<std::uint64_t>(e.timestamp_ns));
  store_le<std::uint64_t>(p + 32, e.payload_offset);
  store_le<std::uint64_t>(p + 40, e.payload_size);
  store_le<std::uint64_t>(p + 48, e.file_id);
  store_le<std::uint32_t>(p + 60, crc32({p, 60}));
}

/// What a record slot's entry block says.
enum class EntryState {
  valid,   ///< a committed frame
  empty,   ///< all zero: no frame committed here (a hole, or past the last)
  damaged  ///< neither: corrupt, or from another file
};

/// Reads the entry at the start of `in` (kEntryBytes) as record `record` of
/// the file `h`, checking magic, crc, file id, record number and the payload
/// range against the record's slot. Damage is described in `why`. `in` is
/// untrusted. Allocates only `why`.
inline EntryState decode_entry(std::span<const std::byte, kEntryBytes> in, const FileHeader& h, std::uint64_t record,
                               IndexEntry& e, std::string& why) {
  using daq_pool::detail::load_le;
  const std::byte* p = in.data();
  bool zero = true;
  for (std::byte b : in) zero = zero && b == std::byte{0};
  if (zero) return EntryState::empty;
  if (load_le<std::uint32_t>(p) != kEntryMagic) {
    why = "index entry has a bad magic";
    return EntryState::damaged;
  }
  if (load_le<std::uint32_t>(p + 60) != crc32({p, 60})) {
    why = "index entry checksum mismatch";
    return EntryState::damaged;
  }
  e.record = load_le<std::uint64_t>(p + 8);
  e.frame_number = load_le<std::uint64_t>(p + 16);
  e.timestamp_ns = static_cast<std::int64_t>(load_le<std::uint64_t>(p + 24));
  e.payload_offset = load_le<std::uint64_t>(p + 32);
  e.payload_size = load_le<std::uint64_t>(p + 40);
  e.file_id = load_le<std::uint64_t>(p + 48);
  if (e.file_id != h.file_id) {
    why = "index entry belongs to another recording (file_id mismatch)";
    return EntryState::damaged;
  }
  if (e.record != record) {
    why = "index entry says record " + std::to_string(e.record) + ", found in slot " + std::to_string(record);
    return EntryState::damaged;
  }
  if (e.payload_offset != h.payload_offset(record) || e.payload_size > h.frame_capacity) {
    why = "index entry's payload [" + std::to_string(e.payload_offset) + ", +" + std::to_string(e.payload_size) +
          ") is outside its record (payload at " + std::to_string(h.payload_offset(record)) + ", capacity " +
          std::to_string(h.frame_capacity) + ")";
    return EntryState::damaged;
  }
  return EntryState::valid;
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording::dqr
