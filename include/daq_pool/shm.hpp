// daq_pool/shm.hpp: frames shared with other processes without a copy.
//
// A BufferPool made with BufferPoolOptions::shared_memory keeps every buffer
// in one sealed memfd. A shm::Server listens on a Unix domain socket
// (SOCK_SEQPACKET); each subscriber that connects gets the memfd once
// (SCM_RIGHTS, a read-only descriptor) and maps it read-only. publish() then
// sends every subscriber a 48-byte message naming the frame (offset, size,
// sequence number, timestamp) and keeps one Bytes view of the frame per
// subscriber in a fixed-size table, until the subscriber answers "done". The
// buffer returns to the pool when the last view in any process is gone: the
// producer's own views, and the server's one per subscriber still reading.
// shm::Subscriber is the C++ client: frames arrive as Bytes views of its
// read-only mapping, and the last drop of a view sends "done".
//
// Optional integration: Linux only, no library (link daq_pool::shm). The rest
// of daq_pool never includes it. The protocol (for clients in other
// languages, e.g. examples/python/shm_viewer.py) is in the README, section
// "Sharing frames with other processes", and in namespace shm::protocol.
//
// Threads:
//   - Server: one thread of its own (started by the constructor, joined by
//     stop() / the destructor) waits in epoll for new connections and for
//     subscribers' messages, checks each "done" and drops the view it names.
//     publish() runs on the caller's thread (the acquisition thread) and
//     never waits for a subscriber unless ServerOptions::wait_when_full asks
//     it to; the two meet only in one short mutex per subscriber.
//   - Subscriber: receive() runs on the caller's thread; views may be dropped
//     on any thread, and each last drop sends its "done" from there.
// Nothing is allocated per frame on either side: the server's tables and the
// subscriber's control blocks are sized once, at construction / connection.
#pragma once

#include "daq_pool/detail/abi.hpp"

#if !defined(__linux__)
#error "daq_pool/shm.hpp is Linux only (memfd_create, SCM_RIGHTS, SO_PEERCRED)"
#endif

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "daq_pool/buffer_pool.hpp"
#include "daq_pool/bytes.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm {

// ---- the wire protocol -----------------------------------------------------

/// The messages between a Server and its subscribers. Every field is an
/// unsigned little-endian integer at a fixed offset; every message begins
/// with the same 8-byte header (magic, version, type) and has a fixed size
/// (one SOCK_SEQPACKET message each, never split or merged).
namespace protocol {

inline constexpr std::uint32_t magic = 0x48535144u;  ///< the bytes "DQSH"
inline constexpr std::uint16_t version = 1;
inline constexpr std::uint16_t type_hello = 1;  ///< server -> subscriber, once, carries the memfd
inline constexpr std::uint16_t type_frame = 2;  ///< server -> subscriber, one per frame
inline constexpr std::uint16_t type_done = 3;   ///< subscriber -> server, one per frame
inline constexpr std::size_t hello_bytes = 48;
inline constexpr std::size_t frame_bytes = 48;
inline constexpr std::size_t done_bytes = 24;

/// Sent once, right after the connection is accepted, with the memfd in an
/// SCM_RIGHTS control message. Offsets: 8 region_size (u64), 16
/// buffer_capacity (u64), 24 buffer_stride (u64), 32 buffer_count (u32), 36
/// max_in_flight (u32), 40 subscriber_id (u64).
struct Hello {
  std::uint64_t region_size = 0;      ///< bytes to map (the memfd's size)
  std::uint64_t buffer_capacity = 0;  ///< bytes each buffer holds
  std::uint64_t buffer_stride = 0;    ///< buffer i starts at i * stride
  std::uint32_t buffer_count = 0;
  std::uint32_t max_in_flight = 0;  ///< frames this subscriber may hold; frame slots are below it
  std::uint64_t subscriber_id = 0;  ///< this connection's number at the server (1, 2, ...)
};

/// One frame. Offsets: 8 slot (u32), 12 reserved (u32, 0), 16 sequence (u64),
/// 24 offset (u64), 32 size (u64), 40 timestamp_ns (u64). The frame's bytes
/// are [offset, offset + size) of the mapping; they stay unchanged until the
/// subscriber sends "done" with the same slot and sequence.
struct FrameMessage {
  std::uint32_t slot = 0;          ///< which of the subscriber's max_in_flight entries holds the frame
  std::uint64_t sequence = 0;      ///< the server's frame number (1, 2, ...): gaps are frames skipped
  std::uint64_t offset = 0;        ///< first byte in the memfd
  std::uint64_t size = 0;          ///< bytes
  std::uint64_t timestamp_ns = 0;  ///< publish time, ns since the Unix epoch (CLOCK_REALTIME) unless given
};

/// The subscriber is done with a frame: echo its slot and sequence.
/// Offsets: 8 slot (u32), 12 reserved (u32, 0), 16 sequence (u64).
struct Done {
  std::uint32_t slot = 0;
  std::uint64_t sequence = 0;
};

namespace detail {
template <class T>
void put(std::byte* at, T value) noexcept {
  for (std::size_t i = 0; i < sizeof(T); ++i) at[i] = static_cast<std::byte>((value >> (8 * i)) & 0xFFu);
}
template <class T>
T get(const std::byte* at) noexcept {
  T value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) value = static_cast<T>(value | (static_cast<T>(at[i]) << (8 * i)));
  return value;
}
template <std::size_t N>
std::array<std::byte, N> with_header(std::uint16_t type) noexcept {
  std::array<std::byte, N> m{};
  put<std::uint32_t>(m.data(), magic);
  put<std::uint16_t>(m.data() + 4, version);
  put<std::uint16_t>(m.data() + 6, type);
  return m;
}
inline bool has_header(std::span<const std::byte> m, std::size_t size, std::uint16_t type) noexcept {
  return m.size() == size && get<std::uint32_t>(m.data()) == magic && get<std::uint16_t>(m.data() + 4) == version &&
         get<std::uint16_t>(m.data() + 6) == type;
}
}  // namespace detail

/// The 48 bytes of a hello. Thread-safe (a pure function); never allocates.
inline std::array<std::byte, hello_bytes> encode(const Hello& h) noexcept {
  auto m = detail::with_header<hello_bytes>(type_hello);
  detail::put(m.data() + 8, h.region_size);
  detail::put(m.data() + 16, h.buffer_capacity);
  detail::put(m.data() + 24, h.buffer_stride);
  detail::put(m.data() + 32, h.buffer_count);
  detail::put(m.data() + 36, h.max_in_flight);
  detail::put(m.data() + 40, h.subscriber_id);
  return m;
}

/// The 48 bytes of a frame message. Thread-safe; never allocates.
inline std::array<std::byte, frame_bytes> encode(const FrameMessage& f) noexcept {
  auto m = detail::with_header<frame_bytes>(type_frame);
  detail::put(m.data() + 8, f.slot);
  detail::put(m.data() + 16, f.sequence);
  detail::put(m.data() + 24, f.offset);
  detail::put(m.data() + 32, f.size);
  detail::put(m.data() + 40, f.timestamp_ns);
  return m;
}

/// The 24 bytes of a "done". Thread-safe; never allocates.
inline std::array<std::byte, done_bytes> encode(const Done& d) noexcept {
  auto m = detail::with_header<done_bytes>(type_done);
  detail::put(m.data() + 8, d.slot);
  detail::put(m.data() + 16, d.sequence);
  return m;
}

/// A hello, if `m` is one (right size, header, reserved bytes zero); the
/// geometry is not checked here (Subscriber does). Thread-safe; never
/// allocates.
inline std::optional<Hello> decode_hello(std::span<const std::byte> m) noexcept {
  if (!detail::has_header(m, hello_bytes, type_hello)) return std::nullopt;
  Hello h;
  h.region_size = detail::get<std::uint64_t>(m.data() + 8);
  h.buffer_capacity = detail::get<std::uint64_t>(m.data() + 16);
  h.buffer_stride = detail::get<std::uint64_t>(m.data() + 24);
  h.buffer_count = detail::get<std::uint32_t>(m.data() + 32);
  h.max_in_flight = detail::get<std::uint32_t>(m.data() + 36);
  h.subscriber_id = detail::get<std::uint64_t>(m.data() + 40);
  return h;
}

/// A frame message, if `m` is one (right size, header, reserved field 0).
/// Its offset and size are not checked here. Thread-safe; never allocates.
inline std::optional<FrameMessage> decode_frame(std::span<const std::byte> m) noexcept {
  if (!detail::has_header(m, frame_bytes, type_frame) || detail::get<std::uint32_t>(m.data() + 12) != 0)
    return std::nullopt;
  FrameMessage f;
  f.slot = detail::get<std::uint32_t>(m.data() + 8);
  f.sequence = detail::get<std::uint64_t>(m.data() + 16);
  f.offset = detail::get<std::uint64_t>(m.data() + 24);
  f.size = detail::get<std::uint64_t>(m.data() + 32);
  f.timestamp_ns = detail::get<std::uint64_t>(m.data() + 40);
  return f;
}

/// A "done", if `m` is one (right size, header, reserved field 0).
/// Thread-safe; never allocates.
inline std::optional<Done> decode_done(std::span<const std::byte> m) noexcept {
  if (!detail::has_header(m, done_bytes, type_done) || detail::get<std::uint32_t>(m.data() + 12) != 0)
    return std::nullopt;
  Done d;
  d.slot = detail::get<std::uint32_t>(m.data() + 8);
  d.sequence = detail::get<std::uint64_t>(m.data() + 16);
  return d;
}

}  // namespace protocol

/// The server sent something the protocol does not allow (a subscriber's
/// connection is then unusable), or a connection ended before its hello.
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- internals ---------------------------------------------------------------

namespace detail {

/// After recv() returned 0 on a SOCK_SEQPACKET socket: true if the peer is
/// gone, false if it was an empty message (which reads the same).
inline bool peer_closed(int fd) noexcept {
  // The peer's close stays visible as POLLHUP / POLLRDHUP; nothing to
  // report (0) means it is still there.
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  const int n = ::poll(&p, 1, 0);
  return n < 0 || (n == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) != 0);
}

/// Owns one file descriptor (closed by the destructor).
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] inline void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME). Never allocates.
inline std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// `path` as a sockaddr_un; std::invalid_argument if it does not fit.
inline sockaddr_un socket_address(const std::string& path, const char* who) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    throw std::invalid_argument(std::string(who) + ": path '" + path + "' must be 1 to " +
                                std::to_string(sizeof a.sun_path - 1) + " bytes long (got " +
                                std::to_string(path.size()) + ")");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

/// The views one subscriber holds: one entry per frame sent to it and not
/// yet "done", at most `slots` of them, in a table sized once. The slot of
/// an entry travels in the frame message and comes back in the "done",
/// with the frame's sequence number: a "done" releases a view only if both
/// match a held entry, so a duplicate, stale, forged or out-of-range "done"
/// can never drop a view twice or drop another frame's view.
///
/// Not thread-safe (the Server guards each table with its subscriber's
/// mutex). Only init() allocates.
class FlightTable {
 public:
  /// What on_message() made of a message.
  enum class Verdict {
    done,          ///< a valid "done": its view was handed back for dropping
    malformed,     ///< not a "done" message (size, header, reserved field)
    out_of_range,  ///< a slot the table does not have
    stale,         ///< a slot not held, or held for another sequence (duplicate or forged "done")
  };

  FlightTable() = default;

  /// Sizes the table (allocates once). Precondition: nothing held.
  void init(std::size_t count) {
    entries_ = std::make_unique<Entry[]>(count);
    free_ = std::make_unique<std::uint32_t[]>(count);
    slots_ = count;
    // Slot 0 on top: the first frames take slots 0, 1, 2...
    for (std::size_t i = 0; i < count; ++i) free_[i] = static_cast<std::uint32_t>(count - 1 - i);
    free_count_ = count;
  }

  /// Entries in all.
  std::size_t slots() const noexcept { return slots_; }
  /// Entries holding a view now.
  std::size_t in_flight() const noexcept { return slots_ - free_count_; }
  /// No entry free: the subscriber is at its bound.
  bool full() const noexcept { return free_count_ == 0; }

  /// Keeps a copy of `view` for the frame numbered `sequence`; its slot, or
  /// nothing when full. Never allocates (one refcount increment).
  std::optional<std::uint32_t> hold(const Bytes& view, std::uint64_t sequence) noexcept {
    if (free_count_ == 0) return std::nullopt;
    const std::uint32_t slot = free_[--free_count_];
    Entry& e = entries_[slot];
    e.view = view;
    e.sequence = sequence;
    e.held = true;
    return slot;
  }

  /// Takes the view of `slot` back out (its frame message could not be
  /// sent, or its "done" came). Precondition: the slot is held.
  Bytes unhold(std::uint32_t slot) noexcept {
    Entry& e = entries_[slot];
    e.held = false;
    free_[free_count_++] = slot;
    return std::move(e.view);
  }

  /// Handles one message from the subscriber. A valid "done" moves its view
  /// into `released` (for the caller to drop, outside its lock); anything
  /// else changes nothing. Never allocates, never throws.
  Verdict on_message(std::span<const std::byte> message, Bytes& released) noexcept {
    const std::optional<protocol::Done> done = protocol::decode_done(message);
    if (!done) return Verdict::malformed;
    if (done->slot >= slots_) return Verdict::out_of_range;
    const Entry& e = entries_[done->slot];
    if (!e.held || e.sequence != done->sequence) return Verdict::stale;
    released = unhold(done->slot);
    return Verdict::done;
  }

  /// Drops every view held (the subscriber is gone); how many there were.
  std::size_t release_all() noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < slots_; ++i) {
      if (!entries_[i].held) continue;
      Bytes gone = unhold(static_cast<std::uint32_t>(i));
      ++n;
    }
    return n;
  }

 private:
  struct Entry {
    Bytes view;
    std::uint64_t sequence = 0;
    bool held = false;
  };
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<std::uint32_t[]> free_;  // a stack of the free slots
  std::size_t slots_ = 0;
  std::size_t free_count_ = 0;
};

/// Checks (or creates) the directory a socket goes in: it must be a real
/// directory (not a symbolic link) owned by this process's user, which only
/// that user may enter (no group or other permission bits). Throws
/// std::invalid_argument naming the directory and what is wrong. True if it
/// created the directory.
inline bool check_private_directory(const std::string& dir) {
  struct stat st {};
  bool created = false;
  if (::lstat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT) throw_errno(err, "daq_pool::shm::Server: directory '" + dir + "'");
    if (::mkdir(dir.c_str(), 0700) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      throw_errno(errno, "daq_pool::shm::Server: cannot create the directory '" + dir + "'");
    }
    if (::lstat(dir.c_str(), &st) != 0) throw_errno(errno, "daq_pool::shm::Server: directory '" + dir + "'");
  }
  const std::string where = "daq_pool::shm::Server: the socket's directory '" + dir + "'";
  if (S_ISLNK(st.st_mode)) throw std::invalid_argument(where + " is a symbolic link; give the real directory");
  if (!S_ISDIR(st.st_mode)) throw std::invalid_argument(where + " is not a directory");
  if (st.st_uid != ::geteuid())
    throw std::invalid_argument(where + " belongs to uid " + std::to_string(st.st_uid) + ", not to this user (uid " +
                                std::to_string(::geteuid()) + ")");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw std::invalid_argument(where + " has mode " + mode +
                                ": other users may enter it; it must be 0700 (only its owner may enter)");
  }
  return created;
}

/// The directory part of `path` ("." for a bare file name).
inline std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

/// One connected subscriber (or a free place for one) at the server. The
/// mutex guards fd, id, pid and the table; the counters are atomics so that
/// stats() reads them without it.
struct Peer {
  std::mutex mutex;
  std::condition_variable room;  // notified when a view comes back or the peer goes
  int fd = -1;                   // -1: free place
  std::uint64_t id = 0;
  int pid = 0;
  FlightTable table;
  std::atomic<std::uint64_t> sent{0}, skipped{0}, timed_out{0}, done{0}, malformed{0}, out_of_range{0}, stale{0};

  void reset_counters() noexcept {
    for (std::atomic<std::uint64_t>* c : {&sent, &skipped, &timed_out, &done, &malformed, &out_of_range, &stale})
      c->store(0, std::memory_order_relaxed);
  }
};

}  // namespace detail

// ---- the server --------------------------------------------------------------

/// How a Server treats its subscribers. Plain data.
struct ServerOptions {
  /// Subscribers connected at once, in [1, 1024]; one more is refused
  /// (counted in ServerStats::refused_full). Sizes the server's tables.
  std::size_t max_subscribers = 8;
  /// Frames each subscriber may hold at once (sent, not yet "done"), in
  /// [1, 4096]: its backpressure bound. At most this many pool buffers can
  /// be held by one subscriber.
  std::size_t max_in_flight = 4;
  /// At its bound, a subscriber is skipped for that frame (false, the
  /// default: a slow viewer never stalls acquisition) or publish() waits up
  /// to wait_timeout for it to finish a frame (true), then skips it.
  bool wait_when_full = false;
  /// The longest publish() waits, for all full subscribers together, when
  /// wait_when_full is set; >= 0.
  std::chrono::milliseconds wait_timeout{100};
  /// How long stop() (and the destructor) keeps taking "done" messages after
  /// ending every stream, so that subscribers can finish the frames already
  /// sent to them before the server lets the buffers go; >= 0.
  std::chrono::milliseconds drain_timeout{2000};
};

/// One subscriber's counters, as seen by the server (SubscriberStats of the
/// place `index`; a place is reused by the next connection).
struct SubscriberStats {
  bool connected = false;
  std::uint64_t id = 0;            ///< the connection's number (1, 2, ...), 0 if never used
  int pid = 0;                     ///< the subscriber's process (SO_PEERCRED)
  std::size_t in_flight = 0;       ///< frames it holds now
  std::uint64_t sent = 0;          ///< frames sent to it
  std::uint64_t skipped = 0;       ///< frames not sent: at its bound (or its socket full)
  std::uint64_t timed_out = 0;     ///< ... of which after waiting wait_timeout (wait_when_full)
  std::uint64_t done = 0;          ///< valid "done" messages
  std::uint64_t malformed = 0;     ///< messages that were not "done" messages: ignored
  std::uint64_t out_of_range = 0;  ///< "done" for a slot it does not have: ignored
  std::uint64_t stale = 0;         ///< "done" for a frame it does not hold (duplicate, forged): ignored
};

/// The server's counters since construction (all subscribers, gone ones
/// included). Read while frames flow, the fields may be stale and not add
/// up exactly; once quiet they are exact.
struct ServerStats {
  std::size_t subscribers = 0;     ///< connected now
  std::uint64_t accepted = 0;      ///< connections accepted (same uid, a free place)
  std::uint64_t refused_uid = 0;   ///< connections refused: another user (SO_PEERCRED)
  std::uint64_t refused_full = 0;  ///< connections refused: max_subscribers connected
  std::uint64_t disconnected = 0;  ///< subscribers gone (their views dropped)
  std::uint64_t published = 0;     ///< publish() calls with a frame of the pool
  std::uint64_t not_shared = 0;    ///< publish() calls refused: not a view of the pool's shared memory
  std::uint64_t sent = 0;          ///< frame messages sent
  std::uint64_t skipped = 0;       ///< frames not sent to a subscriber at its bound
  std::uint64_t done = 0;          ///< valid "done" messages
  std::uint64_t bad_messages = 0;  ///< malformed, out-of-range and stale messages, ignored
};

/// Serves the frames of one shared-memory BufferPool to subscriber
/// processes over a Unix domain socket (see the file comment).
///
/// Security: the socket's directory must be private to this user (0700;
/// created if missing, refused otherwise), only peers of the same uid are
/// accepted (SO_PEERCRED), and subscribers get a read-only descriptor of a
/// memfd sealed against resizing and against new writable mappings
/// (F_SEAL_FUTURE_WRITE): they can read the frames, never change them.
///
/// Threads: a server thread of its own accepts connections and handles
/// "done" messages (dropping the views, which returns buffers to the pool on
/// that thread); publish() and stats() may be called from any thread.
class Server {
 public:
  /// Listens at `path` for subscribers of `pool`'s frames and starts the
  /// server thread. Throws std::invalid_argument if the pool was not made
  /// with BufferPoolOptions::shared_memory, an option is out of range, the
  /// path is empty or longer than 107 bytes, its directory is not private
  /// to this user (see above), or something other than a stale socket is at
  /// the path (another server listening there included); std::system_error
  /// if a socket call fails. A stale socket file (no server) is replaced. A
  /// missing directory is created (0700; its parent must exist) and removed
  /// again by stop() if empty.
  Server(BufferPool pool, std::string path, ServerOptions options = {})
      : pool_(std::move(pool)), path_(std::move(path)), options_(options) {
    const char* who = "daq_pool::shm::Server";
    if (options_.max_subscribers < 1 || options_.max_subscribers > 1024)
      throw std::invalid_argument(std::string(who) + ": options.max_subscribers (" +
                                  std::to_string(options_.max_subscribers) + ") must be in [1, 1024]");
    if (options_.max_in_flight < 1 || options_.max_in_flight > 4096)
      throw std::invalid_argument(std::string(who) + ": options.max_in_flight (" +
                                  std::to_string(options_.max_in_flight) + ") must be in [1, 4096]");
    if (options_.wait_timeout.count() < 0)
      throw std::invalid_argument(std::string(who) + ": options.wait_timeout must not be negative");
    if (options_.drain_timeout.count() < 0)
      throw std::invalid_argument(std::string(who) + ": options.drain_timeout must not be negative");
    const std::optional<SharedMemoryRegion> region = pool_.shared_memory();
    if (!region)
      throw std::invalid_argument(std::string(who) +
                                  ": the pool was not made with BufferPoolOptions::shared_memory; its buffers can't be "
                                  "shared with other processes");
    region_ = *region;
    const sockaddr_un address = detail::socket_address(path_, who);
    open_read_only_memfd();
    directory_ = detail::directory_of(path_);
    created_directory_ = detail::check_private_directory(directory_);
    listen_at(address);
    try {
      epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
      if (epoll_.get() < 0) detail::throw_errno(errno, std::string(who) + ": epoll_create1");
      wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (wake_.get() < 0) detail::throw_errno(errno, std::string(who) + ": eventfd");
      watch(listen_.get(), listening_tag);
      watch(wake_.get(), wake_tag);
      peers_ = std::make_unique<detail::Peer[]>(options_.max_subscribers);
      for (std::size_t i = 0; i < options_.max_subscribers; ++i) peers_[i].table.init(options_.max_in_flight);
      thread_ = std::thread([this] { run(); });
    } catch (...) {
      remove_socket_file();  // nothing left behind
      throw;
    }
  }

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// stop(): every subscriber sees the end of the stream (waits at most
  /// drain_timeout for them to finish their frames).
  ~Server() { stop(); }

  /// Sends `frame` to every connected subscriber (stamped now, CLOCK_REALTIME)
  /// and returns to how many. See the other overload.
  std::size_t publish(const Bytes& frame) { return publish(frame, detail::realtime_ns()); }

  /// Sends `frame`, a view of the pool's buffers (a whole frozen buffer or a
  /// slice of one), to every connected subscriber below its in-flight
  /// bound, keeping one copy of the view per subscriber until its "done";
  /// returns how many got it. A subscriber at its bound is skipped (counted),
  /// or with wait_when_full waited for up to wait_timeout. A view that is
  /// not in the pool's shared memory (a heap copy, another pool's, empty) is
  /// refused: 0, counted in ServerStats::not_shared. Thread-safe (frames
  /// published from several threads at once may reach a subscriber out of
  /// sequence order). Never allocates; never blocks unless wait_when_full.
  std::size_t publish(const Bytes& frame, std::uint64_t timestamp_ns) {
    if (stopped_.load(std::memory_order_relaxed)) return 0;
    const std::optional<std::size_t> offset = pool_.shared_offset(frame);
    if (!offset) {
      not_shared_.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
    const std::uint64_t sequence = sequence_.fetch_add(1, std::memory_order_relaxed) + 1;
    published_.fetch_add(1, std::memory_order_relaxed);
    protocol::FrameMessage message;
    message.sequence = sequence;
    message.offset = *offset;
    message.size = frame.size();
    message.timestamp_ns = timestamp_ns;
    // One deadline for the whole call: several full subscribers don't add up.
    std::optional<std::chrono::steady_clock::time_point> deadline;
    std::size_t reached = 0;
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      std::unique_lock lock(p.mutex);
      if (p.fd < 0) continue;
      std::optional<std::uint32_t> slot = p.table.hold(frame, sequence);
      if (!slot && options_.wait_when_full) {
        if (!deadline) deadline = std::chrono::steady_clock::now() + options_.wait_timeout;
        p.room.wait_until(lock, *deadline, [&p] { return p.fd < 0 || !p.table.full(); });
        if (p.fd < 0) continue;
        slot = p.table.hold(frame, sequence);
        if (!slot) p.timed_out.fetch_add(1, std::memory_order_relaxed);
      }
      if (slot) {
        message.slot = *slot;
        const auto bytes = protocol::encode(message);
        // Never waits: a subscriber whose socket is full is skipped too.
        if (::send(p.fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size())) {
          p.sent.fetch_add(1, std::memory_order_relaxed);
          sent_.fetch_add(1, std::memory_order_relaxed);
          ++reached;
          continue;
        }
        // Not the last view (the caller holds `frame`): dropping it here is
        // one decrement.
        Bytes unsent = p.table.unhold(*slot);
      }
      p.skipped.fetch_add(1, std::memory_order_relaxed);
      skipped_.fetch_add(1, std::memory_order_relaxed);
    }
    return reached;
  }

  /// Ends the server, in order: refuses new connections and removes the
  /// socket file; ends every subscriber's stream (each sees the end after
  /// the frames already sent to it); keeps taking "done" messages until
  /// every subscriber has returned its frames or gone, or drain_timeout has
  /// passed; then stops the server thread, closes every connection and drops
  /// every view still held (the buffers return to the pool; a subscriber's
  /// views stay mapped and readable there, but a live producer may now
  /// reuse their buffers). Idempotent; later publish() calls reach nobody.
  /// Not to be called while another thread is in publish(). Never hangs:
  /// bounded by drain_timeout.
  void stop() noexcept {
    if (stopped_.exchange(true)) return;
    remove_socket_file();
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      std::lock_guard lock(peers_[i].mutex);
      // SHUT_WR: the end of the stream for the subscriber, whose "done"s
      // still reach the server thread.
      if (peers_[i].fd >= 0) ::shutdown(peers_[i].fd, SHUT_WR);
    }
    const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
    while (holding() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::uint64_t one = 1;
    // The eventfd wakes the server thread's epoll_wait; it then returns.
    [[maybe_unused]] const ssize_t n = ::write(wake_.get(), &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    listen_.reset();
    for (std::size_t i = 0; peers_ && i < options_.max_subscribers; ++i) disconnect(i, false);
  }

  /// The socket's path. Thread-safe; never allocates.
  const std::string& path() const noexcept { return path_; }
  /// The options given. Thread-safe; never allocates.
  const ServerOptions& options() const noexcept { return options_; }
  /// The pool whose frames are served. Thread-safe; never allocates.
  const BufferPool& pool() const noexcept { return pool_; }

  /// Subscribers connected now. Thread-safe; stale the moment it is read.
  std::size_t subscribers() const noexcept { return connected_.load(std::memory_order_relaxed); }

  /// The counters (see ServerStats). Thread-safe; never allocates.
  ServerStats stats() const noexcept {
    ServerStats s;
    s.subscribers = connected_.load(std::memory_order_relaxed);
    s.accepted = accepted_.load(std::memory_order_relaxed);
    s.refused_uid = refused_uid_.load(std::memory_order_relaxed);
    s.refused_full = refused_full_.load(std::memory_order_relaxed);
    s.disconnected = disconnected_.load(std::memory_order_relaxed);
    s.published = published_.load(std::memory_order_relaxed);
    s.not_shared = not_shared_.load(std::memory_order_relaxed);
    s.sent = sent_.load(std::memory_order_relaxed);
    s.skipped = skipped_.load(std::memory_order_relaxed);
    s.done = done_.load(std::memory_order_relaxed);
    s.bad_messages = bad_.load(std::memory_order_relaxed);
    return s;
  }

  /// The subscriber at place `index` (< options().max_subscribers; a place
  /// is reused by later connections); std::out_of_range otherwise.
  /// Thread-safe (takes that subscriber's mutex briefly).
  SubscriberStats subscriber(std::size_t index) const {
    if (index >= options_.max_subscribers)
      throw std::out_of_range("daq_pool::shm::Server::subscriber: index " + std::to_string(index) +
                              " is not below max_subscribers (" + std::to_string(options_.max_subscribers) + ")");
    detail::Peer& p = peers_[index];
    SubscriberStats s;
    {
      std::lock_guard lock(p.mutex);
      s.connected = p.fd >= 0;
      s.id = p.id;
      s.pid = p.pid;
      s.in_flight = p.table.in_flight();
    }
    s.sent = p.sent.load(std::memory_order_relaxed);
    s.skipped = p.skipped.load(std::memory_order_relaxed);
    s.timed_out = p.timed_out.load(std::memory_order_relaxed);
    s.done = p.done.load(std::memory_order_relaxed);
    s.malformed = p.malformed.load(std::memory_order_relaxed);
    s.out_of_range = p.out_of_range.load(std::memory_order_relaxed);
    s.stale = p.stale.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static constexpr std::uint64_t listening_tag = 0;
  static constexpr std::uint64_t wake_tag = 1;
  // A peer's epoll tag: its connection number above bit 16, its place below,
  // so an event of a connection already gone never reaches its successor.
  static constexpr std::uint64_t peer_tag(std::uint64_t id, std::size_t index) noexcept { return (id << 16) | index; }

  /// The descriptor subscribers get: the memfd reopened read-only (through
  /// /proc/self/fd), so that even without F_SEAL_FUTURE_WRITE a subscriber
  /// can't map it writable. Without /proc, the pool's own descriptor is
  /// passed if the seal makes it safe, and the constructor throws otherwise.
  void open_read_only_memfd() {
    const std::string self = "/proc/self/fd/" + std::to_string(region_.fd);
    ro_memfd_.reset(::open(self.c_str(), O_RDONLY | O_CLOEXEC));
    if (ro_memfd_.get() >= 0) return;
    if (!region_.write_sealed)
      detail::throw_errno(errno,
                          "daq_pool::shm::Server: no read-only descriptor of the pool's memfd (" + self +
                              ") and no F_SEAL_FUTURE_WRITE in this kernel: subscribers could write into frames");
    ro_memfd_.reset(::fcntl(region_.fd, F_DUPFD_CLOEXEC, 0));
    if (ro_memfd_.get() < 0) detail::throw_errno(errno, "daq_pool::shm::Server: dup of the pool's memfd");
  }

  void listen_at(const sockaddr_un& address) {
    const std::string who = "daq_pool::shm::Server: " + path_;
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        throw std::invalid_argument(who + " exists and is not a socket; refusing to replace it");
      // A socket file: a live server's, or a stale one left by a crash.
      detail::UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
      if (probe.get() >= 0 && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0)
        throw std::invalid_argument(who + ": another server is listening there");
      if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
        detail::throw_errno(errno, who + ": removing a stale socket");
    }
    listen_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (listen_.get() < 0) detail::throw_errno(errno, who + ": socket");
    if (::bind(listen_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
      detail::throw_errno(errno, who + ": bind");
    if (::lstat(path_.c_str(), &st) == 0) {
      socket_dev_ = st.st_dev;
      socket_ino_ = st.st_ino;
      bound_ = true;
    }
    if (::listen(listen_.get(), 64) != 0) {
      const int err = errno;
      remove_socket_file();
      detail::throw_errno(err, who + ": listen");
    }
  }

  /// Removes the socket file, if it is still the one this server bound
  /// (another server may have replaced it since), and the directory if this
  /// server created it and nothing else is in it now.
  void remove_socket_file() noexcept {
    struct stat st {};
    if (bound_ && ::lstat(path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_)
      ::unlink(path_.c_str());
    bound_ = false;
    if (created_directory_) ::rmdir(directory_.c_str());  // fails, harmlessly, unless empty
    created_directory_ = false;
  }

  /// True while a connected subscriber holds frames (stop()'s drain).
  bool holding() const noexcept {
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      std::lock_guard lock(peers_[i].mutex);
      if (peers_[i].fd >= 0 && peers_[i].table.in_flight() != 0) return true;
    }
    return false;
  }

  void watch(int fd, std::uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      detail::throw_errno(errno, "daq_pool::shm::Server: epoll_ctl");
  }

  /// The server thread: waits for connections and messages until stop().
  /// Never allocates.
  void run() noexcept {
    std::array<epoll_event, 32> events{};
    for (;;) {
      const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // only with a bad epoll descriptor: nothing more can be served
      }
      for (int k = 0; k < n; ++k) {
        const std::uint64_t tag = events[static_cast<std::size_t>(k)].data.u64;
        if (tag == wake_tag) return;
        if (tag == listening_tag) {
          accept_all();
        } else {
          read_peer(static_cast<std::size_t>(tag & 0xFFFFu), tag >> 16);
        }
      }
    }
  }

  /// Accepts the waiting connections (a bounded number per wake-up: epoll is
  /// level-triggered, the rest come next time).
  void accept_all() noexcept {
    for (int k = 0; k < 64; ++k) {
      detail::UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (fd.get() < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // EAGAIN: none left (or EMFILE...: they wait in the backlog)
      }
      if (stopped_.load(std::memory_order_relaxed)) continue;  // stopping: closed at once
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
        refused_uid_.fetch_add(1, std::memory_order_relaxed);
        continue;  // closed: the peer sees the end of the stream before any hello
      }
      std::size_t index = options_.max_subscribers;
      for (std::size_t i = 0; i < options_.max_subscribers && index == options_.max_subscribers; ++i) {
        std::lock_guard lock(peers_[i].mutex);
        if (peers_[i].fd < 0) index = i;
      }
      if (index == options_.max_subscribers) {
        refused_full_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const std::uint64_t id = ++next_id_;
      // The hello goes first: publish() can't send this peer a frame before
      // it is registered below.
      if (!send_hello(fd.get(), id)) continue;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.u64 = peer_tag(id, index);
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) continue;
      detail::Peer& p = peers_[index];
      {
        std::lock_guard lock(p.mutex);
        p.fd = fd.release();
        p.id = id;
        p.pid = static_cast<int>(cred.pid);
        p.reset_counters();
      }
      accepted_.fetch_add(1, std::memory_order_relaxed);
      connected_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  /// The hello, with the read-only memfd attached. A new connection's send
  /// buffer is empty, so the non-blocking send can't find it full.
  bool send_hello(int fd, std::uint64_t id) const noexcept {
    protocol::Hello h;
    h.region_size = region_.size;
    h.buffer_capacity = region_.capacity;
    h.buffer_stride = region_.stride;
    h.buffer_count = static_cast<std::uint32_t>(region_.count);
    h.max_in_flight = static_cast<std::uint32_t>(options_.max_in_flight);
    h.subscriber_id = id;
    auto bytes = protocol::encode(h);
    iovec iov{bytes.data(), bytes.size()};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int memfd = ro_memfd_.get();
    std::memcpy(CMSG_DATA(c), &memfd, sizeof memfd);
    return ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }

  /// Reads the messages waiting from the subscriber at `index` (if it is
  /// still connection `id`): a bounded number per wake-up. The end of its
  /// stream, or an error, disconnects it.
  void read_peer(std::size_t index, std::uint64_t id) noexcept {
    if (index >= options_.max_subscribers) return;
    detail::Peer& p = peers_[index];
    int fd = -1;
    {
      std::lock_guard lock(p.mutex);
      if (p.fd < 0 || p.id != id) return;
      fd = p.fd;  // only this thread closes it
    }
    for (int k = 0; k < 256; ++k) {
      // One byte more than the largest message: a longer one shows as such.
      std::array<std::byte, protocol::done_bytes + 1> buf{};
      iovec iov{buf.data(), buf.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
      // End of stream: the subscriber is gone (its last views dropped, or
      // killed), unless it was an empty message.
      if (n == 0 && detail::peer_closed(fd)) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // all read; still connected
        break;                                                // ECONNRESET...: gone
      }
      // A truncated message, or one carrying descriptors (which the kernel
      // closes, as no control buffer was given), is malformed.
      const bool cut = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
      const std::span<const std::byte> message(buf.data(), cut ? buf.size() : static_cast<std::size_t>(n));
      Bytes released;
      detail::FlightTable::Verdict verdict{};
      {
        std::lock_guard lock(p.mutex);
        verdict = p.table.on_message(message, released);
        count(p, verdict);  // under the lock: a publish() that finds the room also sees the count
      }
      if (verdict == detail::FlightTable::Verdict::done) p.room.notify_all();
      // `released` drops here, outside the lock: the buffer may return to
      // the pool on this thread.
      if (k == 255) return;  // more may wait: level-triggered epoll reports the socket again
    }
    disconnect(index, true);
  }

  void count(detail::Peer& p, detail::FlightTable::Verdict verdict) noexcept {
    using V = detail::FlightTable::Verdict;
    std::atomic<std::uint64_t>& c = verdict == V::done           ? p.done
                                    : verdict == V::malformed    ? p.malformed
                                    : verdict == V::out_of_range ? p.out_of_range
                                                                 : p.stale;
    c.fetch_add(1, std::memory_order_relaxed);
    (verdict == V::done ? done_ : bad_).fetch_add(1, std::memory_order_relaxed);
  }

  /// Closes the connection at `index`, if any, and drops every view it held
  /// (their buffers return to the pool when no other view holds them).
  void disconnect(std::size_t index, bool counted) noexcept {
    detail::Peer& p = peers_[index];
    {
      std::lock_guard lock(p.mutex);
      if (p.fd < 0) return;
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, p.fd, nullptr);
      ::close(p.fd);
      p.fd = -1;
      p.table.release_all();
    }
    p.room.notify_all();  // a publish() waiting for this peer skips it now
    connected_.fetch_sub(1, std::memory_order_relaxed);
    if (counted) disconnected_.fetch_add(1, std::memory_order_relaxed);
  }

  BufferPool pool_;
  std::string path_;
  ServerOptions options_;
  SharedMemoryRegion region_;
  detail::UniqueFd ro_memfd_;
  detail::UniqueFd listen_;
  detail::UniqueFd epoll_;
  detail::UniqueFd wake_;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  bool bound_ = false;
  bool created_directory_ = false;
  std::string directory_;  // computed once: stop() allocates nothing
  std::unique_ptr<detail::Peer[]> peers_;
  std::uint64_t next_id_ = 0;  // server thread only
  std::atomic<std::uint64_t> sequence_{0};
  std::atomic<bool> stopped_{false};
  std::atomic<std::size_t> connected_{0};
  std::atomic<std::uint64_t> accepted_{0}, refused_uid_{0}, refused_full_{0}, disconnected_{0};
  std::atomic<std::uint64_t> published_{0}, not_shared_{0}, sent_{0}, skipped_{0}, done_{0}, bad_{0};
  std::thread thread_;  // last: started when everything above is ready
};

// ---- the subscriber ------------------------------------------------------------

/// One frame received by a Subscriber: a read-only view of the frame's bytes
/// in the server's memory (no copy), and its message's fields.
struct Frame {
  Bytes bytes;                     ///< the last drop of it (and of its copies) sends "done"
  std::uint64_t sequence = 0;      ///< the server's frame number
  std::uint64_t timestamp_ns = 0;  ///< publish time, ns since the Unix epoch
  std::size_t offset = 0;          ///< where the bytes start in the shared memory
};

/// A subscriber's counters. Thread-safe to read; stale the moment read.
struct SubscriberCounters {
  std::uint64_t frames = 0;        ///< frames received
  std::uint64_t missed = 0;        ///< gaps in the sequence: frames the server skipped for us
  std::uint64_t done_sent = 0;     ///< "done" messages sent
  std::uint64_t done_failed = 0;   ///< "done" messages that could not be sent (server gone)
  std::uint64_t bad_messages = 0;  ///< messages from the server that broke the protocol: ignored
};

namespace detail {

class SubscriberState;

/// The control block of one frame a subscriber holds: its views' refcount
/// lives here, and the last view's drop sends the frame's "done". One per
/// in-flight slot, made once at connection.
struct DoneBlock : daq_pool::detail::BorrowedBlock {
  DoneBlock() noexcept : daq_pool::detail::BorrowedBlock(&on_last_view) {}
  static void on_last_view(daq_pool::detail::BytesControl* c) noexcept;

  SubscriberState* state = nullptr;
  std::uint64_t sequence = 0;
  std::uint32_t slot = 0;
  std::atomic<bool> busy{false};  // a view is out
};

/// What a Subscriber and its frames' views share: the socket, the
/// read-only mapping and the control blocks. Freed by the last of them (the
/// Subscriber object or a view), so views stay readable after the
/// Subscriber, and the server, are gone.
class SubscriberState {
 public:
  SubscriberState(UniqueFd socket, void* mapping, std::size_t mapping_size, const protocol::Hello& hello)
      : fd_(std::move(socket)),
        map_base_(mapping),
        map_(static_cast<const std::byte*>(mapping)),
        map_size_(mapping_size),
        hello_(hello),
        blocks_(std::make_unique<DoneBlock[]>(hello.max_in_flight)) {
    for (std::uint32_t i = 0; i < hello.max_in_flight; ++i) {
      blocks_[i].state = this;
      blocks_[i].slot = i;
    }
  }
  SubscriberState(const SubscriberState&) = delete;
  SubscriberState& operator=(const SubscriberState&) = delete;
  ~SubscriberState() { ::munmap(map_base_, map_size_); }

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // acq_rel: the last one sees every other holder's work before it unmaps.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// Sends the "done" of a frame. Never blocks, never allocates; a server
  /// that is gone (or not reading) only makes it count a failure.
  void send_done(std::uint32_t slot, std::uint64_t sequence) noexcept {
    const auto bytes = protocol::encode(protocol::Done{slot, sequence});
    if (::send(fd_.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) ==
        static_cast<ssize_t>(bytes.size())) {
      done_sent.fetch_add(1, std::memory_order_relaxed);
    } else {
      done_failed.fetch_add(1, std::memory_order_relaxed);
    }
  }

  /// The frame a message describes, if it is a valid frame message for a
  /// free slot and lies inside the mapping; else nothing (counted as bad).
  std::optional<Frame> take(std::span<const std::byte> message) noexcept {
    const std::optional<protocol::FrameMessage> m = protocol::decode_frame(message);
    if (!m || m->slot >= hello_.max_in_flight || m->size == 0 || m->offset > map_size_ ||
        m->size > map_size_ - m->offset) {
      bad_messages.fetch_add(1, std::memory_order_relaxed);
      return std::nullopt;
    }
    DoneBlock& b = blocks_[m->slot];
    // acquire: pairs with the release in on_last_view, so that block's
    // previous views are all gone before it is filled again.
    if (b.busy.load(std::memory_order_acquire)) {
      bad_messages.fetch_add(1, std::memory_order_relaxed);  // the server reused a slot we hold
      return std::nullopt;
    }
    b.busy.store(true, std::memory_order_relaxed);
    b.data = map_ + m->offset;
    b.size = static_cast<std::size_t>(m->size);
    b.sequence = m->sequence;
    // relaxed: nobody else sees the block until the view made below is
    // handed on (which synchronizes by itself).
    b.refs.store(1, std::memory_order_relaxed);
    retain();  // the view keeps the mapping alive
    if (last_sequence_ != 0 && m->sequence > last_sequence_ + 1)
      missed.fetch_add(m->sequence - last_sequence_ - 1, std::memory_order_relaxed);
    if (m->sequence > last_sequence_) last_sequence_ = m->sequence;
    frames.fetch_add(1, std::memory_order_relaxed);
    Frame f;
    f.bytes = Bytes::from_raw(static_cast<daq_pool::detail::BytesControl*>(&b));
    f.sequence = m->sequence;
    f.timestamp_ns = m->timestamp_ns;
    f.offset = static_cast<std::size_t>(m->offset);
    return f;
  }

  int fd() const noexcept { return fd_.get(); }
  const std::byte* map() const noexcept { return map_; }
  std::size_t map_size() const noexcept { return map_size_; }
  const protocol::Hello& hello() const noexcept { return hello_; }

  std::atomic<std::uint64_t> frames{0}, missed{0}, done_sent{0}, done_failed{0}, bad_messages{0};

 private:
  UniqueFd fd_;
  void* map_base_;
  const std::byte* map_;
  std::size_t map_size_;
  protocol::Hello hello_;
  std::unique_ptr<DoneBlock[]> blocks_;
  std::atomic<std::size_t> refs_{1};  // the Subscriber, plus one per frame whose views are out
  std::uint64_t last_sequence_ = 0;   // receive() thread only
};

// Runs on the thread that drops a frame's last view (any thread): frees the
// block for the next frame in its slot, tells the server, and lets go of the
// state (which may free it: the Subscriber may be gone).
inline void DoneBlock::on_last_view(daq_pool::detail::BytesControl* c) noexcept {
  auto* b = static_cast<DoneBlock*>(c);
  SubscriberState* s = b->state;
  const std::uint32_t slot = b->slot;
  const std::uint64_t sequence = b->sequence;
  // release: the block's fields are read above before the receive thread
  // may refill it; and the "done" goes out after, so the server can't reuse
  // the slot for a frame we would find still busy.
  b->busy.store(false, std::memory_order_release);
  s->send_done(slot, sequence);
  s->release();
}

}  // namespace detail

/// Connects to a Server and receives its frames as read-only Bytes views of
/// the server's memory, mapped once: no copy, no allocation per frame. The
/// last drop of a frame's views sends its "done"; views may outlive the
/// Subscriber and the server (the mapping stays until the last view).
///
/// receive*() must be called from one thread at a time (Not thread-safe);
/// frames' views may be dropped, copied and read on any thread; stats() and
/// the accessors are thread-safe.
class Subscriber {
 public:
  /// Connects to the server at `path` (retrying while it is not there yet,
  /// up to `connect_timeout`), receives the memfd and the geometry, checks
  /// them and maps the memory read-only. Throws std::invalid_argument for a
  /// bad path, std::system_error if the connection or the mapping fails,
  /// protocol_error if the server closes the connection first (e.g. another
  /// user's server, max_subscribers reached) or its hello is not valid.
  explicit Subscriber(const std::string& path, std::chrono::milliseconds connect_timeout = std::chrono::seconds(0)) {
    const char* who = "daq_pool::shm::Subscriber";
    const sockaddr_un address = detail::socket_address(path, who);
    const auto deadline = std::chrono::steady_clock::now() + connect_timeout;
    detail::UniqueFd fd;
    for (;;) {
      fd.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
      if (fd.get() < 0) detail::throw_errno(errno, std::string(who) + ": socket");
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) break;
      const int err = errno;
      if ((err != ENOENT && err != ECONNREFUSED && err != EAGAIN) || std::chrono::steady_clock::now() >= deadline)
        detail::throw_errno(err, std::string(who) + ": connect(" + path + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const auto [hello, memfd] = receive_hello(fd.get(), path, deadline);
    void* map = ::mmap(nullptr, static_cast<std::size_t>(hello.region_size), PROT_READ, MAP_SHARED | MAP_POPULATE,
                       memfd.get(), 0);
    if (map == MAP_FAILED) detail::throw_errno(errno, std::string(who) + ": mmap of the server's memory");
    try {
      state_ = new detail::SubscriberState(std::move(fd), map, static_cast<std::size_t>(hello.region_size), hello);
    } catch (...) {
      ::munmap(map, static_cast<std::size_t>(hello.region_size));
      throw;
    }
  }

  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  /// Stops receiving: frames the server sent that were never received get
  /// their "done" at once, then the connection is left to the frames still
  /// out (closed with the last of them).
  ~Subscriber() {
    // Refuse further frames first, then answer the ones already queued.
    ::shutdown(state_->fd(), SHUT_RD);
    std::array<std::byte, protocol::frame_bytes + 1> buf{};
    for (int k = 0; k < 65536; ++k) {
      const ssize_t n = ::recv(state_->fd(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n <= 0) break;
      if (const auto m = protocol::decode_frame(std::span(buf.data(), static_cast<std::size_t>(n))))
        state_->send_done(m->slot, m->sequence);
    }
    state_->release();
  }

  /// The next frame, waiting as long as it takes; nothing once the stream
  /// has ended (the server stopped or died). Not thread-safe (one receiving
  /// thread); never allocates.
  std::optional<Frame> receive() { return receive_until(std::nullopt); }

  /// The next frame, waiting at most `timeout`; nothing on timeout or end
  /// of stream (tell them apart with end_of_stream()). Not thread-safe (one
  /// receiving thread); never allocates.
  template <class Rep, class Period>
  std::optional<Frame> receive_for(std::chrono::duration<Rep, Period> timeout) {
    return receive_until(std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
  }

  /// True once the server's end of the connection is closed; frames already
  /// received stay readable. Not thread-safe (set by receive*()); never
  /// allocates.
  bool end_of_stream() const noexcept { return ended_; }

  /// The geometry the server sent. Thread-safe; never allocates.
  const protocol::Hello& geometry() const noexcept { return state_->hello(); }

  /// This process's read-only mapping of the server's memory: every frame's
  /// bytes lie inside it. Thread-safe; never allocates.
  std::span<const std::byte> memory() const noexcept { return {state_->map(), state_->map_size()}; }

  /// The counters. Thread-safe; never allocates.
  SubscriberCounters stats() const noexcept {
    SubscriberCounters c;
    c.frames = state_->frames.load(std::memory_order_relaxed);
    c.missed = state_->missed.load(std::memory_order_relaxed);
    c.done_sent = state_->done_sent.load(std::memory_order_relaxed);
    c.done_failed = state_->done_failed.load(std::memory_order_relaxed);
    c.bad_messages = state_->bad_messages.load(std::memory_order_relaxed);
    return c;
  }

 private:
  struct HelloAndFd {
    protocol::Hello hello;
    detail::UniqueFd memfd;
  };

  /// Receives and checks the hello and its descriptor: the geometry must be
  /// consistent and fit the file, and the file must be sealed against
  /// shrinking (else the server could truncate it under our mapping and
  /// kill us with SIGBUS).
  static HelloAndFd receive_hello(int fd, const std::string& path, std::chrono::steady_clock::time_point deadline) {
    const std::string who = "daq_pool::shm::Subscriber(" + path + ")";
    pollfd pfd{fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    // At least 5 s for the hello: a server accepts on its own thread.
    const int wait_ms = static_cast<int>(std::max<std::int64_t>(left.count(), 5000));
    if (::poll(&pfd, 1, wait_ms) != 1) throw protocol_error(who + ": no hello from the server within the timeout");
    std::array<std::byte, protocol::hello_bytes + 1> buf{};
    iovec iov{buf.data(), buf.size()};
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * 4)> control{};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) detail::throw_errno(errno, who + ": receiving the hello");
    detail::UniqueFd memfd;
    std::size_t fds = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int received = -1;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof received);
        if (fds++ == 0) {
          memfd.reset(received);
        } else {
          ::close(received);
        }
      }
    }
    if (n == 0)
      throw protocol_error(who +
                           ": the server closed the connection (another user's server, or max_subscribers "
                           "connected)");
    const std::optional<protocol::Hello> hello =
        protocol::decode_hello(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
    if (!hello || fds != 1 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0)
      throw protocol_error(who + ": the server's first message is not a hello with one descriptor");
    const protocol::Hello& h = *hello;
    const bool geometry_ok = h.buffer_count >= 1 && h.max_in_flight >= 1 && h.max_in_flight <= 65536 &&
                             h.buffer_capacity >= 1 && h.buffer_stride >= h.buffer_capacity &&
                             h.buffer_stride <= h.region_size / h.buffer_count;
    struct stat st {};
    if (!geometry_ok || ::fstat(memfd.get(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) < h.region_size)
      throw protocol_error(who + ": the hello's geometry does not fit the memory it came with");
    const int seals = ::fcntl(memfd.get(), F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) == 0)
      throw protocol_error(who + ": the server's memory is not sealed against shrinking; refusing to map it");
    return {h, std::move(memfd)};
  }

  std::optional<Frame> receive_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
    std::array<std::byte, protocol::frame_bytes + 1> buf{};
    while (!ended_) {
      int wait_ms = -1;
      if (deadline) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
        wait_ms = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1'000'000));
      }
      pollfd pfd{state_->fd(), POLLIN, 0};
      const int ready = ::poll(&pfd, 1, wait_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) return std::nullopt;  // timeout
      iovec iov{buf.data(), buf.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      const ssize_t n = ::recvmsg(state_->fd(), &msg, MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n < 0 || (n == 0 && detail::peer_closed(state_->fd()))) {
        ended_ = true;  // end of stream (or a reset connection): the server is gone
        break;
      }
      const bool cut = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
      std::optional<Frame> f =
          state_->take(std::span<const std::byte>(buf.data(), cut ? buf.size() : static_cast<std::size_t>(n)));
      if (f) return f;
    }
    return std::nullopt;
  }

  detail::SubscriberState* state_ = nullptr;
  bool ended_ = false;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm
