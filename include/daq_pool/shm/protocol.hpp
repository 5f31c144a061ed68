// daq_pool/shm/protocol.hpp: protocol version 2 of daq_pool::shm, the
// messages on the Unix socket and the layout of the shared control region,
// byte by byte. No system library: this is the header a Python or Rust
// implementer reads (with docs/shm.md); the C++ server and subscriber
// (daq_pool/shm/server.hpp, daq_pool/shm/subscriber.hpp) are built on it.
//
// Overview. A server listens on a Unix SOCK_SEQPACKET socket. Per accepted
// subscriber it sends one message: a Hello (or a Refused) with four file
// descriptors (SCM_RIGHTS), in this order:
//   fds[0] the frame pool's memfd, read-only: map `region_size` bytes
//          PROT_READ, MAP_SHARED; buffer i starts at i * buffer_stride;
//   fds[1] this subscriber's control memfd, read-write: map
//          `control_bytes` bytes PROT_READ | PROT_WRITE, MAP_SHARED; its
//          layout is below (namespace control);
//   fds[2] the subscriber's wake eventfd: the server writes 1 to it when it
//          has put a frame in the ring and found `subscriber_sleeping` set;
//   fds[3] the server's wake eventfd: the subscriber writes 1 to it when it
//          has put a release in the ring and found `server_sleeping` set.
// After that the socket carries nothing (the subscriber sends nothing; the
// server only closes or shuts it down); it stays open as the liveness signal:
// when the subscriber's end closes (exit, crash, SIGKILL) the server takes
// back every frame it held. Frames travel server -> subscriber through the
// frame ring, releases subscriber -> server through the release ring, both
// in the control region: no system call per frame while both sides run.
//
// Every integer is unsigned little-endian. The index and wake words of the
// control region are accessed as aligned atomics (8-byte and 4-byte) by
// both processes; entries are written before the index that publishes them
// (a release store), read after the index (an acquire load). Version 1
// (frame and "done" messages on the socket) is gone.
#pragma once

#include "daq_pool/detail/abi.hpp"
#include "daq_pool/detail/little_endian.hpp"
#include "daq_pool/frame_layout.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm::protocol {

// ---- socket messages ---------------------------------------------------------

inline constexpr std::uint32_t magic = 0x48535144u;  ///< bytes 0..3 of every message: "DQSH"
inline constexpr std::uint16_t version = 2;          ///< bytes 4..5
inline constexpr std::uint16_t type_hello = 1;       ///< bytes 6..7: a Hello (server -> subscriber, with 4 fds)
inline constexpr std::uint16_t type_refused = 4;     ///< bytes 6..7: a Refused (server -> subscriber, no fd)
inline constexpr std::size_t hello_bytes = 120;      ///< a Hello's size on the socket
inline constexpr std::size_t refused_bytes = 16;     ///< a Refused's size on the socket
inline constexpr std::size_t hello_fds = 4;          ///< descriptors sent with a Hello

/// Limits a subscriber checks a Hello against (and a server never exceeds).
inline constexpr std::uint32_t max_in_flight_limit = 4096;

/// Sent once to an accepted subscriber, with hello_fds descriptors.
/// Offsets: 0 magic (u32), 4 version (u16, 2), 6 type (u16, 1),
/// 8 region_size (u64), 16 buffer_capacity (u64), 24 buffer_stride (u64),
/// 32 buffer_count (u32), 36 max_in_flight (u32), 40 subscriber_id (u64),
/// 48 control_bytes (u64), 56 ring_slots (u32), 60 reserved (u32, 0),
/// 64 lease_ns (u64), 72 dtype (8 bytes: a numpy typestr, ASCII,
/// NUL-padded; all NUL: not stated), 80 ndim (u32, <= 4; 0: not stated),
/// 84 reserved (u32, 0), 88 shape (4 x u64; entries beyond ndim 0).
/// 120 bytes. The frame layout (daq_pool/frame_layout.hpp) is the server's
/// ServerOptions::layout: how a reader may view each frame's bytes.
struct Hello {
  std::uint64_t region_size = 0;      ///< bytes of the pool's memfd to map
  std::uint64_t buffer_capacity = 0;  ///< bytes each buffer holds
  std::uint64_t buffer_stride = 0;    ///< buffer i starts at i * stride
  std::uint32_t buffer_count = 0;     ///< buffers in the pool
  std::uint32_t max_in_flight = 0;    ///< frames this subscriber may hold at once: slots 0 .. max_in_flight-1
  std::uint64_t subscriber_id = 0;    ///< this connection's number at the server (1, 2, ...)
  std::uint64_t control_bytes = 0;    ///< bytes of the control memfd to map (= control::region_bytes(ring_slots))
  std::uint32_t ring_slots = 0;       ///< entries of each ring: a power of two >= max_in_flight
  std::uint64_t lease_ns = 0;         ///< a frame held longer than this gets the subscriber disconnected; 0: no lease
  std::array<char, 8> dtype{};        ///< the frames' numpy typestr, NUL-padded; empty: raw bytes
  std::uint32_t ndim = 0;             ///< used entries of shape; 0: not stated
  std::array<std::uint64_t, max_frame_dims> shape{};  ///< e.g. {height, width}
};

/// Why a server refused a connection (Refused::reason).
enum class RefuseReason : std::uint32_t {
  other_user = 1,  ///< the subscriber's uid (SO_PEERCRED) is not the server's; `limit` = the server's uid
  full = 2,        ///< max_subscribers are connected; `limit` = max_subscribers
  stopping = 3,    ///< the server is stopping; `limit` = 0
  resources = 4,   ///< the server could not make the connection's memory or eventfds; `limit` = errno
};

/// Sent instead of a Hello, without descriptors, right before the server
/// closes the connection. Offsets: 0 magic, 4 version, 6 type (u16, 4),
/// 8 reason (u32, RefuseReason), 12 limit (u32). 16 bytes.
struct Refused {
  RefuseReason reason = RefuseReason::full;  ///< why the server refused
  std::uint32_t limit = 0;  ///< the number that applies (see RefuseReason)
};

namespace detail {
template <std::size_t N>
std::array<std::byte, N> with_header(std::uint16_t type) noexcept {
  std::array<std::byte, N> m{};
  daq_pool::detail::store_le<std::uint32_t>(m.data(), magic);
  daq_pool::detail::store_le<std::uint16_t>(m.data() + 4, version);
  daq_pool::detail::store_le<std::uint16_t>(m.data() + 6, type);
  return m;
}
inline bool has_header(std::span<const std::byte> m, std::size_t size, std::uint16_t type) noexcept {
  return m.size() == size && daq_pool::detail::load_le<std::uint32_t>(m.data()) == magic &&
         daq_pool::detail::load_le<std::uint16_t>(m.data() + 4) == version &&
         daq_pool::detail::load_le<std::uint16_t>(m.data() + 6) == type;
}
}  // namespace detail

/// The 120 bytes of a Hello. Thread-safe (a pure function); never allocates.
inline std::array<std::byte, hello_bytes> encode(const Hello& h) noexcept {
  using daq_pool::detail::store_le;
  auto m = detail::with_header<hello_bytes>(type_hello);
  store_le(m.data() + 8, h.region_size);
  store_le(m.data() + 16, h.buffer_capacity);
  store_le(m.data() + 24, h.buffer_stride);
  store_le(m.data() + 32, h.buffer_count);
  store_le(m.data() + 36, h.max_in_flight);
  store_le(m.data() + 40, h.subscriber_id);
  store_le(m.data() + 48, h.control_bytes);
  store_le(m.data() + 56, h.ring_slots);
  store_le(m.data() + 64, h.lease_ns);
  for (std::size_t i = 0; i < h.dtype.size(); ++i) m[72 + i] = static_cast<std::byte>(h.dtype[i]);
  store_le(m.data() + 80, h.ndim);
  for (std::size_t d = 0; d < max_frame_dims; ++d) store_le(m.data() + 88 + 8 * d, h.shape[d]);
  return m;
}

/// The 16 bytes of a Refused. Thread-safe; never allocates.
inline std::array<std::byte, refused_bytes> encode(const Refused& r) noexcept {
  using daq_pool::detail::store_le;
  auto m = detail::with_header<refused_bytes>(type_refused);
  store_le(m.data() + 8, static_cast<std::uint32_t>(r.reason));
  store_le(m.data() + 12, r.limit);
  return m;
}

/// A Hello, if `m` is one (size, header, reserved field 0). Its geometry is
/// checked by hello_problem(). Thread-safe; never allocates.
inline std::optional<Hello> decode_hello(std::span<const std::byte> m) noexcept {
  using daq_pool::detail::load_le;
  if (!detail::has_header(m, hello_bytes, type_hello) || load_le<std::uint32_t>(m.data() + 60) != 0 ||
      load_le<std::uint32_t>(m.data() + 84) != 0)
    return std::nullopt;
  Hello h;
  h.region_size = load_le<std::uint64_t>(m.data() + 8);
  h.buffer_capacity = load_le<std::uint64_t>(m.data() + 16);
  h.buffer_stride = load_le<std::uint64_t>(m.data() + 24);
  h.buffer_count = load_le<std::uint32_t>(m.data() + 32);
  h.max_in_flight = load_le<std::uint32_t>(m.data() + 36);
  h.subscriber_id = load_le<std::uint64_t>(m.data() + 40);
  h.control_bytes = load_le<std::uint64_t>(m.data() + 48);
  h.ring_slots = load_le<std::uint32_t>(m.data() + 56);
  h.lease_ns = load_le<std::uint64_t>(m.data() + 64);
  for (std::size_t i = 0; i < h.dtype.size(); ++i) h.dtype[i] = static_cast<char>(m[72 + i]);
  h.ndim = load_le<std::uint32_t>(m.data() + 80);
  for (std::size_t d = 0; d < max_frame_dims; ++d) h.shape[d] = load_le<std::uint64_t>(m.data() + 88 + 8 * d);
  return h;
}

/// A Refused, if `m` is one (size, header, a known reason). Thread-safe;
/// never allocates.
inline std::optional<Refused> decode_refused(std::span<const std::byte> m) noexcept {
  using daq_pool::detail::load_le;
  if (!detail::has_header(m, refused_bytes, type_refused)) return std::nullopt;
  const std::uint32_t reason = load_le<std::uint32_t>(m.data() + 8);
  if (reason < 1 || reason > 4) return std::nullopt;
  return Refused{static_cast<RefuseReason>(reason), load_le<std::uint32_t>(m.data() + 12)};
}

/// What a refusal means, in words (for error messages). Thread-safe; never
/// allocates.
inline const char* describe(RefuseReason r) noexcept {
  switch (r) {
    case RefuseReason::other_user: return "refused: this process's user is not the server's (SO_PEERCRED)";
    case RefuseReason::full: return "refused: max_subscribers are already connected";
    case RefuseReason::stopping: return "refused: the server is stopping";
    case RefuseReason::resources: return "refused: the server could not make this connection's memory (errno)";
  }
  return "refused";
}

// ---- the control region --------------------------------------------------------

/// The layout of one subscriber's control memfd (fds[1] of its Hello). Each
/// group of words one side writes sits on its own 64-byte line.
///
///   offset  size  written by   field
///        0     4  server       magic, "DQSC" (u32 0x43535144)
///        4     2  server       version (2)
///        6     2  -            reserved (0)
///        8     4  server       max_in_flight (as in the Hello)
///       12     4  server       ring_slots N (a power of two >= max_in_flight)
///       16     8  server       frame_ring_offset (= 512)
///       24     8  server       release_ring_offset (= 512 + N * 48, rounded up to 64)
///       32     8  server       region_bytes (the memfd's size)
///       64     8  server       frame_head: frame descriptors written in all; entry k is at
///                              frame_ring_offset + (k mod N) * 48
///       72     8  server       skipped: frames the server did not send this subscriber, in all
///                              (it was at max_in_flight): exact, also after its last frame
///       80     8  server       sent: frame descriptors written in all (= frame_head)
///       88     4  server       state: 0 live, 1 revoked (lease expired or protocol broken:
///                              held frames were taken back), 2 stopped (the server ended
///                              the stream: no frame after frame_head)
///      128     8  subscriber   frame_tail: frame descriptors read in all (the server never
///                              needs it: a descriptor is only written for a free slot)
///      192     8  subscriber   release_head: release entries written in all; entry k is at
///                              release_ring_offset + (k mod N) * 16
///      256     8  server       release_tail: release entries the server has consumed
///      320     4  both         subscriber_sleeping: the subscriber sets 1 before it waits on
///                              its eventfd; the server, after writing frame_head, exchanges
///                              it to 0 and, if it was 1, writes the subscriber's eventfd
///      384     4  both         server_sleeping: the server sets 1 before it waits; the
///                              subscriber, after writing release_head, exchanges it to 0 and,
///                              if it was 1, writes the server's eventfd
///      512  N*48  server       the frame ring (FrameDescriptor entries)
///        …  N*16  subscriber   the release ring (Release entries)
///
/// Untrusted in both directions: the server reads only release_head and the
/// release entries from the subscriber, and checks them (release_tail <=
/// release_head <= release_tail + N; an entry's slot held, with its
/// sequence); a violation disconnects the subscriber. Its own indices it
/// keeps privately and only mirrors here.
namespace control {
inline constexpr std::uint32_t magic = 0x43535144u;  ///< "DQSC"
inline constexpr std::size_t header_bytes = 512;     ///< where the frame ring starts
// Byte offsets of the header's fields (the table above); each index and
// wake word has a 64-byte cache line of its own, so the two processes never
// write the same line.
inline constexpr std::size_t magic_at = 0;                  ///< u32 magic
inline constexpr std::size_t version_at = 4;                ///< u16 protocol version
inline constexpr std::size_t max_in_flight_at = 8;          ///< u32 frames the subscriber may hold
inline constexpr std::size_t ring_slots_at = 12;            ///< u32 N, entries per ring
inline constexpr std::size_t frame_ring_offset_at = 16;     ///< u64 where the frame ring starts
inline constexpr std::size_t release_ring_offset_at = 24;   ///< u64 where the release ring starts
inline constexpr std::size_t region_bytes_at = 32;          ///< u64 the region's size
inline constexpr std::size_t frame_head_at = 64;            ///< u64 frames published into the ring (server)
inline constexpr std::size_t skipped_at = 72;               ///< u64 frames skipped for this subscriber (server)
inline constexpr std::size_t sent_at = 80;                  ///< u64 frames sent (server)
inline constexpr std::size_t state_at = 88;                 ///< u32 connection state (state_live, ...)
inline constexpr std::size_t frame_tail_at = 128;           ///< u64 frames taken (subscriber)
inline constexpr std::size_t release_head_at = 192;         ///< u64 releases written (subscriber)
inline constexpr std::size_t release_tail_at = 256;         ///< u64 releases consumed (server)
inline constexpr std::size_t subscriber_sleeping_at = 320;  ///< u32 1 while the subscriber sleeps
inline constexpr std::size_t server_sleeping_at = 384;      ///< u32 1 while the server sleeps
inline constexpr std::uint32_t state_live = 0;              ///< the connection serves frames
inline constexpr std::uint32_t state_revoked = 1;           ///< a lease ran out: held frames were taken back
inline constexpr std::uint32_t state_stopped = 2;           ///< the server stopped

inline constexpr std::size_t frame_entry_bytes = 48;   ///< one FrameDescriptor in the frame ring
inline constexpr std::size_t release_entry_bytes = 16;  ///< one Release in the release ring

/// Ring entries for a subscriber allowed `max_in_flight` frames: the next
/// power of two (so that a 64-bit index maps to an entry with a mask). A
/// release can never find its ring full: a subscriber releases only frames
/// it holds, at most max_in_flight <= N, and the server frees a slot only
/// after consuming its release. Never allocates.
constexpr std::uint32_t ring_slots_for(std::uint32_t max_in_flight) noexcept {
  std::uint32_t n = 1;
  while (n < max_in_flight) n <<= 1;
  return n;
}
/// Where the release ring starts, for N ring slots. Never allocates.
constexpr std::size_t release_ring_offset(std::uint32_t ring_slots) noexcept {
  return (header_bytes + std::size_t{ring_slots} * frame_entry_bytes + 63) / 64 * 64;
}
/// The control region's size, for N ring slots. Never allocates.
constexpr std::size_t region_bytes(std::uint32_t ring_slots) noexcept {
  return release_ring_offset(ring_slots) + std::size_t{ring_slots} * release_entry_bytes;
}
/// Where frame descriptor `index` (the 64-bit running count) lives. Never allocates.
constexpr std::size_t frame_entry_at(std::uint64_t index, std::uint32_t ring_slots) noexcept {
  return header_bytes + static_cast<std::size_t>(index & (ring_slots - 1)) * frame_entry_bytes;
}
/// Where release entry `index` lives. Never allocates.
constexpr std::size_t release_entry_at(std::uint64_t index, std::uint32_t ring_slots) noexcept {
  return release_ring_offset(ring_slots) + static_cast<std::size_t>(index & (ring_slots - 1)) * release_entry_bytes;
}
static_assert(region_bytes(1) == 512 + 64 + 16);
static_assert(release_ring_offset(4) == 704 && region_bytes(4) == 768);
}  // namespace control

/// One frame, in the frame ring. Offsets: 0 sequence (u64), 8 offset (u64),
/// 16 size (u64), 24 timestamp_ns (u64), 32 slot (u32), 36 reserved (u32,
/// 0), 40 skipped (u64). 48 bytes. The frame's bytes are [offset, offset +
/// size) of the pool mapping; they stay unchanged until the subscriber
/// releases (slot, sequence), unless its lease expires first (state 1).
struct FrameDescriptor {
  std::uint64_t sequence = 0;      ///< the server's frame number (1, 2, ...)
  std::uint64_t offset = 0;        ///< first byte in the pool's memfd
  std::uint64_t size = 0;          ///< bytes (>= 1)
  std::uint64_t timestamp_ns = 0;  ///< publish time, ns since the Unix epoch (CLOCK_REALTIME) unless given
  std::uint32_t slot = 0;          ///< which of the subscriber's max_in_flight places holds it: echo it in the release
  std::uint64_t skipped = 0;       ///< frames skipped for this subscriber before this one, in all
};

/// One release, in the release ring: the subscriber is done with the frame
/// (slot, sequence). Offsets: 0 slot (u32), 4 reserved (u32, 0),
/// 8 sequence (u64). 16 bytes.
struct Release {
  std::uint32_t slot = 0;      ///< the frame's buffer slot (FrameDescriptor::slot)
  std::uint64_t sequence = 0;  ///< the frame's sequence (FrameDescriptor::sequence)
};

/// Writes `f` at `at` (48 bytes). Never allocates.
inline void encode(const FrameDescriptor& f, std::byte* at) noexcept {
  using daq_pool::detail::store_le;
  store_le(at, f.sequence);
  store_le(at + 8, f.offset);
  store_le(at + 16, f.size);
  store_le(at + 24, f.timestamp_ns);
  store_le(at + 32, f.slot);
  store_le(at + 36, std::uint32_t{0});
  store_le(at + 40, f.skipped);
}
/// Reads a FrameDescriptor at `at` (48 bytes); not validated. Never allocates.
inline FrameDescriptor decode_frame(const std::byte* at) noexcept {
  using daq_pool::detail::load_le;
  FrameDescriptor f;
  f.sequence = load_le<std::uint64_t>(at);
  f.offset = load_le<std::uint64_t>(at + 8);
  f.size = load_le<std::uint64_t>(at + 16);
  f.timestamp_ns = load_le<std::uint64_t>(at + 24);
  f.slot = load_le<std::uint32_t>(at + 32);
  f.skipped = load_le<std::uint64_t>(at + 40);
  return f;
}
/// Writes `r` at `at` (16 bytes). Never allocates.
inline void encode(const Release& r, std::byte* at) noexcept {
  using daq_pool::detail::store_le;
  store_le(at, r.slot);
  store_le(at + 4, std::uint32_t{0});
  store_le(at + 8, r.sequence);
}
/// Reads a Release at `at` (16 bytes); nothing if its reserved field is not
/// 0. Never allocates.
inline std::optional<Release> decode_release(const std::byte* at) noexcept {
  using daq_pool::detail::load_le;
  if (load_le<std::uint32_t>(at + 4) != 0) return std::nullopt;
  return Release{load_le<std::uint32_t>(at), load_le<std::uint64_t>(at + 8)};
}

/// What is wrong with a Hello's geometry (a sentence), or nullptr if it is
/// consistent: at least one buffer, capacity <= stride, the buffers inside
/// the region, 1 <= max_in_flight <= 4096, ring_slots the power of two for
/// it, control_bytes matching. A subscriber also checks the descriptors'
/// sizes against region_size and control_bytes. Never allocates.
constexpr const char* hello_problem(const Hello& h) noexcept {
  if (h.buffer_count < 1 || h.buffer_capacity < 1) return "no buffer, or buffers of 0 bytes";
  if (h.buffer_stride < h.buffer_capacity || h.buffer_stride > h.region_size / h.buffer_count)
    return "the buffers don't fit the region (stride < capacity, or count * stride > region_size)";
  if (h.max_in_flight < 1 || h.max_in_flight > max_in_flight_limit) return "max_in_flight not in [1, 4096]";
  if (h.ring_slots != control::ring_slots_for(h.max_in_flight)) return "ring_slots is not the power of two for max_in_flight";
  if (h.control_bytes != control::region_bytes(h.ring_slots)) return "control_bytes does not match ring_slots";
  // The layout: printable ASCII then NUL padding (the last byte always NUL),
  // a shape only with a dtype, no unused dimension set.
  bool ended = false;
  for (char c : h.dtype) {
    if (c == '\0') ended = true;
    else if (ended || c < 0x21 || c > 0x7e) return "dtype is not ASCII text padded with NULs";
  }
  if (h.dtype[7] != '\0') return "dtype is not ASCII text padded with NULs";
  if (h.ndim > max_frame_dims) return "ndim exceeds 4";
  for (std::size_t d = 0; d < max_frame_dims; ++d) {
    if (d < h.ndim && h.shape[d] == 0) return "a used shape dimension is 0";
    if (d >= h.ndim && h.shape[d] != 0) return "a shape dimension beyond ndim is set";
  }
  if (h.ndim != 0 && h.dtype[0] == '\0') return "a shape without a dtype";
  return nullptr;
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm::protocol
