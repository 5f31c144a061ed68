// daq_pool/zmq.hpp: frames leave the machine over ZeroMQ without a copy.
//
// A `Bytes` view is sent as one ZeroMQ message part with zmq_msg_init_data:
// libzmq keeps a pointer to the pooled buffer and a free function, writes the
// bytes straight from the buffer into the kernel, and calls the free function
// when it is done; the free function drops the view's reference, so the
// buffer goes back to its pool then, possibly long after the send call
// returned. On top of that, a framed stream: every frame is a two-part
// message, a 32-byte little-endian header (frame number, payload size,
// timestamp, format version, payload checksum) and the payload. The wire
// format is documented in the README ("Streaming frames to other machines")
// so that any client can read it; examples/python/receive_frames.py does.
//
// Optional integration: needs libzmq (pkg-config libzmq; link the CMake
// target daq_pool::zmq). Only the C API (<zmq.h>) is used; cppzmq users pass
// `socket.handle()`. The rest of daq_pool never includes this header.
//
// Which thread runs the free function (read from libzmq 4.3.4's source:
// src/msg.cpp msg_t::close, src/encoder.hpp, src/dist.cpp, src/lb.cpp,
// src/pipe.cpp, src/stream_engine_base.cpp):
//   - libzmq's I/O thread of the socket's context, normally: its TCP/IPC
//     engine writes the payload from the buffer into the kernel and closes
//     the message when the last byte is written (encoder_base_t::encode, on
//     the engine's next output event); also when a connection goes away
//     with messages still queued (pipe_t::process_pipe_term_ack drains them)
//     and when linger expires at zmq_close / zmq_ctx_term;
//   - the thread calling zmq_msg_send, before it returns, when libzmq drops
//     the message at once: PUB with no subscriber or every subscriber at its
//     high-water mark (dist_t::distribute), PUSH whose peer died in the
//     middle of a multipart message (lb_t::sendpipe, socket_base_t::send);
//   - the thread calling zmq_msg_close on a message whose send failed (this
//     header does that itself, then gives the view back to the caller);
//   - libzmq's reaper thread, for the unflushed parts of an incomplete
//     multipart message of a socket being closed (pipe_t::rollback; never a
//     payload of this header's frames, which is always the last part);
//   - over inproc:// the receiving application thread, when it closes the
//     message it received (it holds the very same buffer: read-only!).
// Never after zmq_ctx_term() returned for the socket's context (it waits for
// every socket to be closed and every pipe to be torn down), except for
// messages an application thread still holds (inproc). The free function
// touches only the view's reference (Bytes::release_raw: one atomic
// decrement; the last one runs the pool's reset on that thread, which with
// BufferPoolOptions::zero_on_release scrubs the buffer there) and two
// process-wide counters; it never allocates, blocks or calls into libzmq.
#pragma once

#include <zmq.h>

#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "daq_pool/bytes.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq {

// ======================================================== the wire format ==

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
  std::uint32_t payload_bytes = 0;
  std::uint64_t timestamp_ns = 0;  ///< sender's clock, ns since the Unix epoch (0: unknown)
  Checksum checksum_kind = Checksum::sampled;
  std::uint32_t checksum = 0;  ///< payload_checksum(payload, checksum_kind)
  std::uint16_t flags = 0;     ///< flag_end_of_stream; other bits are reserved (0) and ignored on receipt
  std::uint8_t version = wire_version;

  /// True for the sender's end-of-stream message. Never allocates.
  bool end_of_stream() const noexcept { return (flags & flag_end_of_stream) != 0; }
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

inline std::uint64_t load_le(const std::byte* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, n);  // one load; the wire is little-endian already
  } else {
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{std::to_integer<std::uint8_t>(p[i])} << (8 * i);
  }
  return v;
}

inline void store_le(std::byte* p, std::uint64_t v, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}

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
  return load_le(payload.data() + at, payload.size() - at < 8 ? payload.size() - at : 8);
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
    for (std::size_t i = 0; i < whole; ++i) sum.add(detail::load_le(payload.data() + i * 8, 8));
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
        sum.add(detail::load_le(payload.data() + i * 8, 8));
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
///        6    2 flags (bit 0: end of stream)
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
  detail::store_le(out.data() + 6, h.flags, 2);
  detail::store_le(out.data() + 8, h.frame_number, 8);
  detail::store_le(out.data() + 16, h.payload_bytes, 4);
  detail::store_le(out.data() + 20, h.checksum, 4);
  detail::store_le(out.data() + 24, h.timestamp_ns, 8);
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
  out.flags = static_cast<std::uint16_t>(detail::load_le(part.data() + 6, 2));
  out.frame_number = detail::load_le(part.data() + 8, 8);
  out.payload_bytes = static_cast<std::uint32_t>(detail::load_le(part.data() + 16, 4));
  out.checksum = static_cast<std::uint32_t>(detail::load_le(part.data() + 20, 4));
  out.timestamp_ns = detail::load_le(part.data() + 24, 8);
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

// ============================================== contexts, sockets, errors ==

/// A libzmq call failed; what() names the call, its argument (an endpoint,
/// an option) and zmq_strerror's text; code() is the errno value.
class zmq_error : public std::runtime_error {
 public:
  zmq_error(const std::string& what_failed, int code)
      : std::runtime_error(what_failed + ": " + ::zmq_strerror(code)), code_(code) {}
  /// The errno value libzmq reported.
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// Owns a ZeroMQ context (zmq_ctx_new). Destroying it terminates the
/// context: that waits until every socket of it is closed, and for each
/// socket's linger to send or drop its queued messages; only then have all
/// free functions run. Close sockets first (Socket's destructor does).
/// Thread-safe (a ZeroMQ context is).
class Context {
 public:
  /// A context with `io_threads` I/O threads (libzmq's default is 1). Throws
  /// zmq_error. Allocates (libzmq's context).
  explicit Context(int io_threads = 1) : ctx_(::zmq_ctx_new()) {
    if (ctx_ == nullptr) throw zmq_error("zmq_ctx_new", errno);
    if (io_threads != 1 && ::zmq_ctx_set(ctx_, ZMQ_IO_THREADS, io_threads) != 0) {
      const int err = errno;
      ::zmq_ctx_term(ctx_);
      throw zmq_error("zmq_ctx_set(ZMQ_IO_THREADS, " + std::to_string(io_threads) + ")", err);
    }
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() { terminate(); }

  /// The zmq context handle (for zmq_socket, zmq_ctx_set, cppzmq...).
  void* handle() const noexcept { return ctx_; }

  /// zmq_ctx_term (retried if a signal interrupts it): blocks until every
  /// socket is closed and drained per its ZMQ_LINGER. Idempotent.
  void terminate() noexcept {
    if (ctx_ == nullptr) return;
    while (::zmq_ctx_term(ctx_) != 0 && errno == EINTR) {
    }
    ctx_ = nullptr;
  }

 private:
  void* ctx_;
};

/// Owns a ZeroMQ socket (zmq_socket); closes it on destruction. Not
/// thread-safe: like the socket itself, use it from one thread at a time.
class Socket {
 public:
  /// A socket of `type` (ZMQ_PUSH, ZMQ_PUB, ZMQ_PULL, ZMQ_SUB...) in
  /// `context`, with ZMQ_LINGER set to `linger`: how long closing the
  /// socket (and terminating its context) may wait for queued messages to
  /// go out before they are dropped and their buffers released. libzmq's own
  /// default is forever, which would let a dead receiver hang the shutdown.
  /// Throws zmq_error.
  Socket(Context& context, int type, std::chrono::milliseconds linger = std::chrono::milliseconds(0))
      : socket_(::zmq_socket(context.handle(), type)) {
    if (socket_ == nullptr) throw zmq_error("zmq_socket(type " + std::to_string(type) + ")", errno);
    try {
      set(ZMQ_LINGER, static_cast<int>(linger.count()));
    } catch (...) {
      close();
      throw;
    }
  }
  Socket(Socket&& other) noexcept : socket_(std::exchange(other.socket_, nullptr)) {}
  Socket& operator=(Socket&& other) noexcept {
    if (this != &other) {
      close();
      socket_ = std::exchange(other.socket_, nullptr);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  /// The zmq socket handle.
  void* handle() const noexcept { return socket_; }

  /// zmq_bind; throws zmq_error naming the endpoint and ZeroMQ's reason.
  void bind(const std::string& endpoint) {
    if (::zmq_bind(socket_, endpoint.c_str()) != 0) throw zmq_error("zmq_bind(" + endpoint + ")", errno);
  }
  /// zmq_connect; throws zmq_error naming the endpoint and ZeroMQ's reason
  /// (connecting is asynchronous: an absent peer is not an error).
  void connect(const std::string& endpoint) {
    if (::zmq_connect(socket_, endpoint.c_str()) != 0) throw zmq_error("zmq_connect(" + endpoint + ")", errno);
  }
  /// The endpoint last bound, with the real port for `tcp://host:*`
  /// (ZMQ_LAST_ENDPOINT). Throws zmq_error.
  std::string last_endpoint() const {
    char buf[1024];
    std::size_t len = sizeof buf;
    if (::zmq_getsockopt(socket_, ZMQ_LAST_ENDPOINT, buf, &len) != 0)
      throw zmq_error("zmq_getsockopt(ZMQ_LAST_ENDPOINT)", errno);
    return std::string(buf, len > 0 ? len - 1 : 0);  // len counts the terminating NUL
  }
  /// zmq_setsockopt for an int option; throws zmq_error naming it.
  void set(int option, int value) {
    if (::zmq_setsockopt(socket_, option, &value, sizeof value) != 0)
      throw zmq_error("zmq_setsockopt(option " + std::to_string(option) + ", " + std::to_string(value) + ")", errno);
  }
  /// zmq_setsockopt for a bytes option (e.g. ZMQ_SUBSCRIBE); throws zmq_error.
  void set(int option, std::span<const std::byte> value) {
    if (::zmq_setsockopt(socket_, option, value.data(), value.size()) != 0)
      throw zmq_error("zmq_setsockopt(option " + std::to_string(option) + ")", errno);
  }
  /// zmq_close now (its queued messages are sent or dropped per ZMQ_LINGER,
  /// by libzmq's threads). Idempotent.
  void close() noexcept {
    if (socket_ != nullptr) ::zmq_close(socket_);
    socket_ = nullptr;
  }

 private:
  void* socket_;
};

// ======================================================= zero-copy sends ==

/// What became of a send.
enum class SendStatus {
  sent,         ///< ZeroMQ took the frame; its view is released when ZeroMQ is done
  dropped,      ///< ZeroMQ took it and dropped it before returning (PUB with no
                ///< subscriber or all at their high-water mark; PUSH peer gone
                ///< mid-message): nobody receives it; its view is already released
  would_block,  ///< EAGAIN: not taken (ZMQ_DONTWAIT, or ZMQ_SNDTIMEO expired); the view is the caller's
  failed,       ///< another error (see SendOutcome::error); the view is the caller's
};

/// The result of a send: a status and, for would_block / failed, the errno
/// value (zmq_strerror(error) explains it).
struct SendOutcome {
  SendStatus status = SendStatus::sent;
  int error = 0;
  /// True if ZeroMQ took the frame (sent or dropped): the view was consumed.
  bool taken() const noexcept { return status == SendStatus::sent || status == SendStatus::dropped; }
};

/// Process-wide counts of views handed to ZeroMQ and released by it.
struct ZeroCopyCounts {
  std::uint64_t handed_over = 0;  ///< zero-copy messages made from views
  std::uint64_t released = 0;     ///< of which libzmq called the free function
  /// Views ZeroMQ holds now: the buffers it has not given back yet.
  std::uint64_t held() const noexcept { return handed_over - released; }
};

namespace detail {

/// Where the counts live: static storage, constant-initialized, with a
/// trivial destructor. The free function gets only the view's raw handle
/// (its hint) and the data pointer, so a per-sender counter would need a
/// per-message record to find it; this one needs nothing, and it outlives
/// every sender, socket and context however late libzmq calls the free
/// function (even from a context never terminated, at process exit).
struct ZeroCopyLedger {
  std::atomic<std::uint64_t> handed_over{0};
  std::atomic<std::uint64_t> released{0};
};
inline constinit ZeroCopyLedger ledger;

/// The message the calling thread is passing to zmq_msg_send right now, so
/// that the free function can tell "libzmq dropped this very message before
/// zmq_msg_send returned" (it runs on this thread then) from any other
/// release. constinit + a trivial type: a plain TLS access, no lazy
/// initialization, nothing allocated on libzmq's threads.
struct SendInProgress {
  void* raw = nullptr;
  bool released = false;
};
inline constinit thread_local SendInProgress* send_in_progress = nullptr;

/// libzmq's free function for a zero-copy message (zmq_free_fn): `hint` is
/// the raw handle of the view the message holds. Runs on the thread listed
/// at the top of this header (usually libzmq's I/O thread); touches only the
/// view's reference, this thread's SendInProgress and the ledger.
inline void release_sent_view(void* /*data*/, void* hint) noexcept {
  if (SendInProgress* s = send_in_progress; s != nullptr && s->raw == hint) s->released = true;
  // acquire: pairs with the release increment of `handed_over` made before
  // this message was sent (all increments are RMWs, so they form one release
  // sequence). libzmq's own pipe already orders the sender's writes (the
  // frame, the buffer's loan parked by freeze()) before this thread's reads;
  // this makes the edge explicit in C++ terms, independent of libzmq's
  // internals, and visible to ThreadSanitizer, which cannot see into libzmq.
  (void)ledger.handed_over.load(std::memory_order_acquire);
  Bytes::release_raw(hint);
  // release: a thread that reads `released` with acquire (held() == 0) sees
  // the buffer already back in its pool.
  ledger.released.fetch_add(1, std::memory_order_release);
}

/// A zero-copy message made from a view; gives the view back if the send
/// fails. Not thread-safe; never allocates on daq_pool's side (libzmq
/// allocates its content_t, 40 bytes, in zmq_msg_init_data).
class OutgoingView {
 public:
  /// Moves `view`'s reference into the message. Returns 0, or the errno
  /// value if libzmq could not make the message (then `view` is untouched).
  int init(Bytes& view) noexcept {
    data_ = view.data();
    size_ = view.size();
    if (view.empty()) {
      // Nothing to lend: an empty inline part (no free function, no allocation).
      raw_ = nullptr;
      ::zmq_msg_init(&msg_);
      live_ = true;
      return 0;
    }
    raw_ = std::move(view).into_raw();
    // const_cast: libzmq never writes into a message it sends.
    if (::zmq_msg_init_data(&msg_, const_cast<std::byte*>(data_), size_, &release_sent_view, raw_) != 0) {
      const int err = errno;  // ENOMEM: libzmq's control block; the free function was not registered
      view = Bytes::from_raw(raw_, {data_, size_});
      return err;
    }
    // release: publishes everything this thread did to the view's buffer to
    // the thread that will run the free function (see release_sent_view).
    ledger.handed_over.fetch_add(1, std::memory_order_release);
    live_ = true;
    return 0;
  }

  /// zmq_msg_send. On success the message belongs to ZeroMQ: returns sent,
  /// or dropped if libzmq released it before returning. On failure the
  /// message is still this object's: retry, give_back() or discard().
  SendOutcome send(void* socket, int flags) noexcept {
    SendInProgress watch{raw_, false};
    send_in_progress = raw_ != nullptr ? &watch : nullptr;
    const int rc = ::zmq_msg_send(&msg_, socket, flags);
    const int err = errno;
    send_in_progress = nullptr;
    if (rc < 0) return {err == EAGAIN ? SendStatus::would_block : SendStatus::failed, err};
    live_ = false;
    return {watch.released ? SendStatus::dropped : SendStatus::sent, 0};
  }

  /// Closes an unsent message, giving its view back to `view`.
  void give_back(Bytes& view) noexcept {
    if (!live_) return;
    if (raw_ != nullptr) {
      // Closing runs the free function (here, on this thread), which drops
      // one reference: take one more for `view` first.
      Bytes back = Bytes::from_raw(raw_, {data_, size_});
      view = back;
      (void)std::move(back).into_raw();  // the same handle, now counted twice
    }
    discard();
  }

  /// Closes an unsent message; the free function releases its view here.
  void discard() noexcept {
    if (live_) ::zmq_msg_close(&msg_);
    live_ = false;
  }

  OutgoingView() = default;
  OutgoingView(const OutgoingView&) = delete;
  OutgoingView& operator=(const OutgoingView&) = delete;
  ~OutgoingView() { discard(); }

 private:
  zmq_msg_t msg_{};
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  void* raw_ = nullptr;
  bool live_ = false;
};

}  // namespace detail

/// Views handed to ZeroMQ and released by it so far, in this process (all
/// senders, all contexts). After every context that sent has been
/// terminated, held() is 0: every buffer is back. Thread-safe; a snapshot
/// that may be stale the moment it is read; never allocates.
inline ZeroCopyCounts zero_copy_counts() noexcept {
  // `released` first: each message is counted as handed over before it can
  // be released, so released <= handed_over in this snapshot.
  const std::uint64_t released = detail::ledger.released.load(std::memory_order_acquire);
  const std::uint64_t handed = detail::ledger.handed_over.load(std::memory_order_acquire);
  return {handed, released};
}

/// Sends `view` as one message part without copying it (zmq_msg_init_data;
/// `flags`: ZMQ_SNDMORE, ZMQ_DONTWAIT). If ZeroMQ takes it (sent, dropped),
/// `view` becomes empty and the buffer returns to its pool when libzmq calls
/// the free function; otherwise (would_block, failed) `view` is unchanged.
/// An empty view is sent as an empty part. Not thread-safe (the socket
/// isn't); daq_pool's side never allocates (libzmq allocates one 40-byte
/// control block per message).
inline SendOutcome send_view(void* socket, Bytes& view, int flags = 0) noexcept {
  detail::OutgoingView out;
  if (const int err = out.init(view); err != 0) return {SendStatus::failed, err};
  const SendOutcome result = out.send(socket, flags);
  if (!result.taken()) out.give_back(view);
  return result;
}

namespace detail {

/// Throws std::length_error naming the limit if a payload of `size` bytes
/// does not fit the header's 32-bit size field.
inline void check_payload_size(std::uint64_t size) {
  if (size > max_payload_bytes)
    throw std::length_error("daq_pool::zmq::FrameSender::send: payload of " + std::to_string(size) +
                            " bytes exceeds the wire format's limit of " + std::to_string(max_payload_bytes) +
                            " bytes");
}

}  // namespace detail

/// Counters of one FrameSender. Read from another thread while it sends,
/// they may be stale.
struct SenderStats {
  std::uint64_t frames_sent = 0;     ///< frames ZeroMQ took and queued
  std::uint64_t frames_dropped = 0;  ///< frames ZeroMQ took and dropped at once (SendStatus::dropped)
  std::uint64_t would_block = 0;     ///< sends refused with EAGAIN (view kept by the caller)
  std::uint64_t failures = 0;        ///< sends refused with another error
  std::uint64_t payload_bytes_sent = 0;
};

/// Sends frames: a 32-byte header part, then the payload view zero-copy. One
/// frame is one ZeroMQ message, so it arrives whole or not at all. Works
/// with any socket that sends (PUSH, PUB, DEALER, PAIR...).
///
/// Not thread-safe: one thread sends (like the socket); stats() may be
/// called from any thread. Never allocates on daq_pool's side.
class FrameSender {
 public:
  /// Sends on `socket` (not owned; it must outlive the sends), with
  /// payload checksums of `kind`.
  explicit FrameSender(void* socket, Checksum kind = Checksum::sampled) noexcept : socket_(socket), kind_(kind) {}

  /// Sends `payload` as frame `frame_number`, stamped `timestamp_ns` (see
  /// WireHeader). `flags`: ZMQ_DONTWAIT, or 0 to wait as ZMQ_SNDTIMEO says.
  /// On sent / dropped, `payload` becomes empty (ZeroMQ owns the view); on
  /// would_block / failed it is unchanged and nothing was queued. Throws
  /// std::length_error if the payload exceeds max_payload_bytes (nothing
  /// sent, `payload` unchanged).
  SendOutcome send(Bytes& payload, std::uint64_t frame_number, std::uint64_t timestamp_ns = now_ns(), int flags = 0) {
    detail::check_payload_size(payload.size());
    WireHeader h;
    h.frame_number = frame_number;
    h.payload_bytes = static_cast<std::uint32_t>(payload.size());
    h.timestamp_ns = timestamp_ns;
    h.checksum_kind = kind_;
    h.checksum = payload_checksum(payload.span(), kind_);
    const std::size_t payload_size = payload.size();
    return count(send_message(h, payload, flags), payload_size);
  }

  /// Sends the end-of-stream message (flag_end_of_stream, empty payload,
  /// `next_frame_number` = how many frames this stream numbered), so that a
  /// receiver can stop and compare counts. Not counted in stats(). Never
  /// throws.
  SendOutcome send_end_of_stream(std::uint64_t next_frame_number, int flags = 0) noexcept {
    WireHeader h;
    h.frame_number = next_frame_number;
    h.timestamp_ns = now_ns();
    h.checksum_kind = Checksum::none;
    h.flags = flag_end_of_stream;
    Bytes none;
    return send_message(h, none, flags);
  }

  /// This sender's counters. Thread-safe; never allocates.
  SenderStats stats() const noexcept {
    return {sent_.load(std::memory_order_relaxed), dropped_.load(std::memory_order_relaxed),
            would_block_.load(std::memory_order_relaxed), failures_.load(std::memory_order_relaxed),
            bytes_.load(std::memory_order_relaxed)};
  }

  /// The socket frames go to.
  void* socket() const noexcept { return socket_; }

 private:
  SendOutcome send_message(const WireHeader& h, Bytes& payload, int flags) noexcept {
    // The payload message first: if libzmq can't make it, nothing is sent
    // (a header sent alone would glue itself to the next frame).
    detail::OutgoingView body;
    if (const int err = body.init(payload); err != 0) return {SendStatus::failed, err};
    const std::array<std::byte, wire_header_bytes> header = encode_header(h);
    // zmq_send copies 32 bytes into the zmq_msg_t itself (no allocation).
    if (::zmq_send(socket_, header.data(), header.size(), flags | ZMQ_SNDMORE) < 0) {
      const int err = errno;
      body.give_back(payload);
      return {err == EAGAIN ? SendStatus::would_block : SendStatus::failed, err};
    }
    // Once the header is queued, libzmq accepts the rest of the message
    // without waiting (its high-water mark counts whole messages). A signal
    // may still interrupt the call before it does anything: retry then, or
    // the next frame's header would become this frame's payload.
    SendOutcome out;
    do {
      out = body.send(socket_, flags & ~ZMQ_SNDMORE);
    } while (out.status == SendStatus::failed && out.error == EINTR);
    if (out.status == SendStatus::would_block) {
      // The peer died mid-message (lb_t::sendpipe): libzmq rolled the header
      // back. The frame is lost like a PUB drop; let its view go.
      body.discard();
      out = {SendStatus::dropped, 0};
    } else if (!out.taken()) {
      // ETERM and the like: the socket is finished; the caller keeps the view.
      body.give_back(payload);
    }
    return out;
  }

  SendOutcome count(SendOutcome out, std::size_t size) noexcept {
    // relaxed: statistics; the sending thread is their only writer.
    switch (out.status) {
      case SendStatus::sent:
        sent_.fetch_add(1, std::memory_order_relaxed);
        bytes_.fetch_add(size, std::memory_order_relaxed);
        break;
      case SendStatus::dropped:
        dropped_.fetch_add(1, std::memory_order_relaxed);
        break;
      case SendStatus::would_block:
        would_block_.fetch_add(1, std::memory_order_relaxed);
        break;
      case SendStatus::failed:
        failures_.fetch_add(1, std::memory_order_relaxed);
        break;
    }
    return out;
  }

  void* socket_;
  Checksum kind_;
  std::atomic<std::uint64_t> sent_{0}, dropped_{0}, would_block_{0}, failures_{0}, bytes_{0};
};

// ============================================================== receiving ==

/// Owns a zmq_msg_t: initialized empty, closed on destruction (which frees
/// libzmq's memory for it, or, over inproc, runs the sender's free
/// function). Move-only. Not thread-safe.
class Message {
 public:
  /// An empty message. Never allocates.
  Message() noexcept { ::zmq_msg_init(&msg_); }
  Message(Message&& other) noexcept {
    ::zmq_msg_init(&msg_);
    ::zmq_msg_move(&msg_, &other.msg_);
  }
  Message& operator=(Message&& other) noexcept {
    if (this != &other) ::zmq_msg_move(&msg_, &other.msg_);  // closes ours first
    return *this;
  }
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message() { ::zmq_msg_close(&msg_); }

  /// The bytes, valid while this Message lives and is not received into
  /// again. Never allocates.
  std::span<const std::byte> bytes() const noexcept {
    return {static_cast<const std::byte*>(::zmq_msg_data(&msg_)), ::zmq_msg_size(&msg_)};
  }
  /// Number of bytes. Never allocates.
  std::size_t size() const noexcept { return ::zmq_msg_size(&msg_); }
  /// True if more parts of the same message follow (ZMQ_RCVMORE).
  bool more() const noexcept { return ::zmq_msg_more(&msg_) != 0; }
  /// The zmq_msg_t, for zmq_msg_recv and friends.
  zmq_msg_t* get() noexcept { return &msg_; }
  /// Lets go of the bytes now; the message becomes empty.
  void reset() noexcept {
    ::zmq_msg_close(&msg_);
    ::zmq_msg_init(&msg_);
  }

 private:
  mutable zmq_msg_t msg_;  // mutable: zmq_msg_data/size take a non-const pointer but only read
};

/// A received frame: its header and its payload, in place in the message
/// libzmq received (no copy). Reuse one ReceivedFrame for every receive:
/// receiving into it releases the previous payload. Not thread-safe.
struct ReceivedFrame {
  WireHeader header;
  Message payload_message;

  /// The payload bytes, valid until the next receive into this frame.
  std::span<const std::byte> payload() const noexcept { return payload_message.bytes(); }
  /// True for the sender's end-of-stream message.
  bool end_of_stream() const noexcept { return header.end_of_stream(); }
};

/// What became of a receive.
enum class ReceiveStatus {
  received,    ///< a valid frame (or the end-of-stream message) is in the ReceivedFrame
  no_message,  ///< nothing arrived: EAGAIN (ZMQ_DONTWAIT, ZMQ_RCVTIMEO) or EINTR (a signal); see error
  bad_frame,   ///< a message arrived but is not a valid frame (see frame_error); all its parts were consumed
  failed,      ///< another libzmq error (see error), e.g. ETERM
};

/// The result of receive_frame.
struct ReceiveOutcome {
  ReceiveStatus status = ReceiveStatus::received;
  FrameError frame_error = FrameError::none;  ///< for bad_frame
  int error = 0;                              ///< errno value for no_message / failed
  std::size_t parts = 0;                      ///< parts the message had
};

/// Receives one message from `socket` into `frame` and checks it: two parts,
/// a valid header, a payload of the header's size whose checksum matches.
/// A message that fails is consumed entirely (every part), so the next call
/// starts at a message boundary, and reported as bad_frame with the reason;
/// `frame.header` then holds whatever could be decoded. `flags`:
/// ZMQ_DONTWAIT, or 0 to wait as ZMQ_RCVTIMEO says. Not thread-safe (the
/// socket isn't); daq_pool's side never allocates (libzmq allocates each
/// received payload larger than 33 bytes).
inline ReceiveOutcome receive_frame(void* socket, ReceivedFrame& frame, int flags = 0) noexcept {
  ReceiveOutcome out;
  Message header;
  if (::zmq_msg_recv(header.get(), socket, flags) < 0) {
    out.error = errno;
    out.status = out.error == EAGAIN || out.error == EINTR ? ReceiveStatus::no_message : ReceiveStatus::failed;
    return out;
  }
  out.parts = 1;
  frame.payload_message.reset();
  // The other parts of a message are already here (ZeroMQ delivers a message
  // whole), so these receives never wait; a signal can still interrupt one.
  const auto next_part = [&](Message& into) noexcept {
    int rc;
    while ((rc = ::zmq_msg_recv(into.get(), socket, 0)) < 0 && errno == EINTR) {
    }
    if (rc < 0) return false;
    ++out.parts;
    return true;
  };
  FrameError error = decode_header(header.bytes(), frame.header);
  bool more = header.more();
  if (more) {
    if (!next_part(frame.payload_message)) {
      out.error = errno;
      out.status = ReceiveStatus::failed;
      return out;
    }
    more = frame.payload_message.more();
  }
  if (more) {
    Message extra;
    while (more && next_part(extra)) more = extra.more();
    if (error == FrameError::none) error = FrameError::too_many_parts;
  } else if (out.parts == 1 && error == FrameError::none) {
    error = FrameError::missing_payload;
  }
  if (error == FrameError::none) {
    const std::span<const std::byte> payload = frame.payload();
    const WireHeader& h = frame.header;
    if (payload.size() != h.payload_bytes) {
      error = FrameError::payload_size_mismatch;
    } else if (h.end_of_stream() && !payload.empty()) {
      error = FrameError::bad_end_of_stream;
    } else if (payload_checksum(payload, h.checksum_kind) != h.checksum) {
      error = FrameError::checksum_mismatch;
    }
  }
  if (error != FrameError::none) {
    out.status = ReceiveStatus::bad_frame;
    out.frame_error = error;
  }
  return out;
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq
