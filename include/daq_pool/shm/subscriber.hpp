// daq_pool/shm/subscriber.hpp: shm::Subscriber, the C++ client of a
// shm::Server (protocol version 2, daq_pool/shm/protocol.hpp; docs/shm.md).
// Frames arrive as read-only Bytes views of the server's memory, mapped
// once: no copy, no allocation and, while frames keep coming, no system
// call per frame. The last drop of a frame's views puts its release in the
// ring (and wakes the server only if it sleeps).
//
// Threads: receive*() / try_receive() on one thread at a time; views may be
// dropped, copied and read on any thread (the last drop releases from
// there); stats() and the accessors are thread-safe. A client-only program
// includes this header alone: it never compiles the server.
#pragma once

#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/abi.hpp"
#include "daq_pool/detail/buffer.hpp"
#include "daq_pool/shm/detail/posix.hpp"
#include "daq_pool/shm/detail/ring.hpp"
#include "daq_pool/shm/protocol.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm {

namespace detail {
class SubscriberState;
}

/// One frame received by a Subscriber: a read-only view of the frame's bytes
/// in the server's memory (no copy), and its descriptor's fields.
struct Frame {
  Bytes bytes;                     ///< the last drop of it (and of its copies) releases the frame
  std::uint64_t sequence = 0;      ///< the server's frame number
  std::uint64_t timestamp_ns = 0;  ///< publish time, ns since the Unix epoch
  std::size_t offset = 0;          ///< where the bytes start in the shared memory
  std::uint64_t skipped = 0;       ///< frames the server skipped for this subscriber before this one, in all

  /// True if the server has not taken the frame back (lease expired, or it
  /// stopped while the frame was held): read the bytes first, then call
  /// this; true means what was read is the frame (see docs/shm.md, Leases).
  /// False also once `bytes` no longer holds the frame (moved out, reset).
  /// Thread-safe; never allocates; no system call.
  bool still_valid() const noexcept;

  const detail::SubscriberState* state_ = nullptr;  ///< internal
};

/// A subscriber's counters. Thread-safe to read; stale the moment read.
struct SubscriberCounters {
  std::uint64_t frames = 0;        ///< frames received
  std::uint64_t missed = 0;        ///< frames the server skipped for us, in all (its own count: exact, also
                                   ///< for skips after our last frame)
  std::uint64_t released = 0;      ///< releases put in the ring
  std::uint64_t bad_messages = 0;  ///< descriptors from the server that broke the protocol: ignored
  std::uint64_t wakeups = 0;       ///< times receive*() slept on the eventfd
  bool revoked = false;            ///< the server took our frames back (lease expired)
};

namespace detail {

/// The control block of one frame a subscriber holds: its views' refcount
/// lives here, and the last view's drop releases the frame. One per slot,
/// made once at connection.
struct ReleaseBlock : daq_pool::detail::BorrowedBlock {
  ReleaseBlock() noexcept : daq_pool::detail::BorrowedBlock(&on_last_view) {}
  static void on_last_view(daq_pool::detail::BytesControl* c) noexcept;

  SubscriberState* state = nullptr;
  std::uint64_t sequence = 0;
  std::uint32_t slot = 0;
  std::atomic<bool> busy{false};  // a view is out
};

/// What a Subscriber and its frames' views share: the socket, the mappings,
/// the eventfds and the release blocks. Freed by the last of them (the
/// Subscriber or a view), so views stay readable after the Subscriber and
/// the server are gone.
class SubscriberState {
 public:
  SubscriberState(UniqueFd socket, Mapping pool, Mapping control, UniqueFd own_wake, UniqueFd server_wake,
                  UniqueFd epoll, const protocol::Hello& hello)
      : socket_(std::move(socket)),
        pool_(std::move(pool)),
        control_(std::move(control)),
        own_wake_(std::move(own_wake)),
        server_wake_(std::move(server_wake)),
        epoll_(std::move(epoll)),
        hello_(hello),
        blocks_(std::make_unique<ReleaseBlock[]>(hello.max_in_flight)) {
    ring_.init(control_.data(), hello.ring_slots);
    for (std::uint32_t i = 0; i < hello.max_in_flight; ++i) {
      blocks_[i].state = this;
      blocks_[i].slot = i;
    }
  }
  SubscriberState(const SubscriberState&) = delete;
  SubscriberState& operator=(const SubscriberState&) = delete;

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // acq_rel: the last one sees every other holder's work before it unmaps.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// Puts the release of (slot, sequence) in the ring; wakes the server if
  /// it sleeps. Any thread; never allocates; no system call unless waking.
  void push_release(std::uint32_t slot, std::uint64_t sequence) noexcept {
    bool wake = false;
    {
      std::lock_guard lock(release_mutex_);  // one writer of the release ring at a time
      wake = ring_.push_release(slot, sequence);
    }
    if (wake) signal_eventfd(server_wake_.get());
    released.fetch_add(1, std::memory_order_relaxed);
  }

  /// What take() found.
  enum class Got { frame, empty, ended };

  /// The next frame from the ring, validated. Receiving thread only.
  Got take(Frame& out) noexcept {
    for (;;) {
      protocol::FrameDescriptor d;
      const SubscriberRing::Take t = ring_.take(d);
      if (t == SubscriberRing::Take::empty) return Got::empty;
      if (t == SubscriberRing::Take::broken) {
        bad_messages.fetch_add(1, std::memory_order_relaxed);
        return Got::ended;  // impossible indices: nothing more can be trusted
      }
      if (d.slot >= hello_.max_in_flight || d.size == 0 || d.offset > pool_.size() ||
          d.size > pool_.size() - d.offset) {
        bad_messages.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      ReleaseBlock& b = blocks_[d.slot];
      // acquire: pairs with the release in on_last_view: that block's
      // previous views are all gone before it is filled again.
      if (b.busy.load(std::memory_order_acquire)) {
        bad_messages.fetch_add(1, std::memory_order_relaxed);  // the server reused a slot we hold
        continue;
      }
      b.busy.store(true, std::memory_order_relaxed);
      b.data = pool_.data() + d.offset;
      b.size = static_cast<std::size_t>(d.size);
      b.sequence = d.sequence;
      // relaxed: nobody else sees the block until the view made below is
      // handed on (which synchronizes by itself).
      b.refs.store(1, std::memory_order_relaxed);
      retain();  // the view keeps the mappings alive
      frames.fetch_add(1, std::memory_order_relaxed);
      out.bytes = Bytes::from_raw(static_cast<daq_pool::detail::BytesControl*>(&b));
      out.sequence = d.sequence;
      out.timestamp_ns = d.timestamp_ns;
      out.offset = static_cast<std::size_t>(d.offset);
      out.skipped = d.skipped;
      out.state_ = this;
      return Got::frame;
    }
  }

  SubscriberRing& ring() noexcept { return ring_; }
  const SubscriberRing& ring() const noexcept { return ring_; }
  int socket() const noexcept { return socket_.get(); }
  int own_wake() const noexcept { return own_wake_.get(); }
  int epoll() const noexcept { return epoll_.get(); }
  const std::byte* map() const noexcept { return pool_.data(); }
  std::size_t map_size() const noexcept { return pool_.size(); }
  const protocol::Hello& hello() const noexcept { return hello_; }
  bool owns(const daq_pool::detail::BytesControl* c) const noexcept {
    return c >= blocks_.get() && c < blocks_.get() + hello_.max_in_flight;
  }

  std::atomic<std::uint64_t> frames{0}, released{0}, bad_messages{0}, wakeups{0};

 private:
  ~SubscriberState() = default;

  UniqueFd socket_;
  Mapping pool_;
  Mapping control_;
  UniqueFd own_wake_, server_wake_, epoll_;
  protocol::Hello hello_;
  SubscriberRing ring_;
  std::mutex release_mutex_;
  std::unique_ptr<ReleaseBlock[]> blocks_;
  std::atomic<std::size_t> refs_{1};  // the Subscriber, plus one per frame whose views are out
};

// Runs on the thread that drops a frame's last view (any thread): frees the
// block for the next frame in its slot, releases the frame, and lets go of
// the state (which may free it: the Subscriber may be gone).
inline void ReleaseBlock::on_last_view(daq_pool::detail::BytesControl* c) noexcept {
  auto* b = static_cast<ReleaseBlock*>(c);
  SubscriberState* s = b->state;
  const std::uint32_t slot = b->slot;
  const std::uint64_t sequence = b->sequence;
  // release: the block's fields are read above before the receive thread
  // may refill it; the release goes in the ring after, so the server can't
  // reuse the slot for a frame we would find still busy.
  b->busy.store(false, std::memory_order_release);
  s->push_release(slot, sequence);
  s->release();
}

}  // namespace detail

inline bool Frame::still_valid() const noexcept {
  if (state_ == nullptr || bytes.empty()) return false;
  // acquire fence: the reads of the frame's bytes before this call are
  // ordered before the state load (a seqlock's reader side). GCC's
  // ThreadSanitizer has no fences: there, a compiler barrier only (loads are
  // not reordered with loads on x86-64).
#if defined(__SANITIZE_THREAD__)
  std::atomic_signal_fence(std::memory_order_acquire);
#else
  std::atomic_thread_fence(std::memory_order_acquire);
#endif
  return state_->ring().state() != protocol::control::state_revoked;
}

/// Connects to a Server and receives its frames as read-only Bytes views of
/// the server's memory (see the file comment).
///
/// receive*() / try_receive() must be called from one thread at a time (Not
/// thread-safe); frames' views may be dropped, copied and read on any
/// thread; stats() and the accessors are thread-safe.
class Subscriber {
 public:
  /// Connects to the server at `path` (retrying while there is none yet, up
  /// to `connect_timeout`; never blocking longer, also when the server's
  /// backlog is full), checks that the server runs as this user, receives
  /// the hello and its four descriptors, checks the geometry and the seals,
  /// and maps the pool read-only and the control region. Throws
  /// std::invalid_argument for a bad path, std::system_error if the
  /// connection or a mapping fails (ETIMEDOUT / EAGAIN: not taken in time),
  /// protocol_error if the server refuses (the message says why: another
  /// user, max_subscribers connected, stopping, out of resources), closes
  /// first, or sends an invalid hello.
  explicit Subscriber(const std::string& path, std::chrono::milliseconds connect_timeout = std::chrono::seconds(0)) {
    const std::string who = "daq_pool::shm::Subscriber(" + path + ")";
    const sockaddr_un address = detail::socket_address(path, "daq_pool::shm::Subscriber");
    const auto deadline = detail::Clock::now() + connect_timeout;
    detail::ConnectResult c = detail::connect_until(address, deadline, true);
    if (c.fd.get() < 0) detail::throw_errno(c.error, who + ": connect");
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid())
      throw protocol_error(who + ": the server runs as uid " + std::to_string(cred.uid) + ", not as this user (uid " +
                           std::to_string(::geteuid()) + "); refusing its memory");
    // At least 5 s for the hello: a server accepts on its own thread.
    const auto hello_deadline = std::max(deadline, detail::Clock::now() + std::chrono::seconds(5));
    connect(std::move(c.fd), who, hello_deadline);
  }

  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  /// Stops receiving: frames in the ring never received are released at
  /// once; the connection then stays open as long as frames received are
  /// out (closed with the last of them; the server takes back whatever is
  /// still unreleased then).
  ~Subscriber() {
    Frame f;
    for (int k = 0; k < 65536 && state_->take(f) == detail::SubscriberState::Got::frame; ++k) f.bytes = Bytes();
    state_->release();
  }

  /// The next frame, waiting as long as it takes; nothing once the stream
  /// has ended (the server stopped or died). Not thread-safe (one receiving
  /// thread); never allocates.
  std::optional<Frame> receive() { return receive_until(std::nullopt); }

  /// The next frame, waiting at most `timeout`; nothing on timeout or end
  /// of stream (tell them apart with end_of_stream()). Not thread-safe;
  /// never allocates.
  template <class Rep, class Period>
  std::optional<Frame> receive_for(std::chrono::duration<Rep, Period> timeout) {
    return receive_until(detail::Clock::now() + std::chrono::duration_cast<detail::Clock::duration>(timeout));
  }

  /// The next frame if one is waiting, else nothing at once; then wait_fd()
  /// becomes readable when one may have come (or the stream may have
  /// ended): call again until it returns nothing before polling. Not
  /// thread-safe; never allocates; a system call only when the ring is empty.
  std::optional<Frame> try_receive() {
    if (pending_) return std::exchange(pending_, std::nullopt);
    Frame f;
    if (take(f)) return f;
    if (ended_) return std::nullopt;
    detail::drain_eventfd(state_->own_wake());
    if (state_->ring().arm()) {  // a frame came meanwhile
      state_->ring().disarm();
      if (take(f)) return f;
    }
    check_end();
    return std::nullopt;
  }

  /// A descriptor that becomes readable (POLLIN) when a frame may be
  /// waiting or the stream may have ended, for the caller's own poll /
  /// epoll loop (an epoll descriptor watching this connection's eventfd and
  /// socket). Valid while the Subscriber lives. Thread-safe; never allocates.
  int wait_fd() const noexcept { return state_->epoll(); }

  /// True once the stream has ended (the server stopped, died, revoked us)
  /// and every frame before the end was received; frames already received
  /// stay readable. Not thread-safe (set by receive*()); never allocates.
  bool end_of_stream() const noexcept { return ended_; }

  /// The geometry the server sent. Thread-safe; never allocates.
  const protocol::Hello& geometry() const noexcept { return state_->hello(); }
  /// How the server says to view each frame's bytes (its
  /// ServerOptions::layout; dtype "" and ndim 0 when it states none).
  /// Allocates (the dtype string).
  FrameLayout layout() const {
    const protocol::Hello& h = state_->hello();
    FrameLayout l;
    l.dtype.assign(h.dtype.data(), std::find(h.dtype.begin(), h.dtype.end(), '\0'));
    l.ndim = h.ndim;
    l.shape = h.shape;
    return l;
  }

  /// This process's read-only mapping of the server's memory: every frame's
  /// bytes lie inside it. Thread-safe; never allocates.
  std::span<const std::byte> memory() const noexcept { return {state_->map(), state_->map_size()}; }

  /// The counters. Thread-safe; never allocates.
  SubscriberCounters stats() const noexcept {
    SubscriberCounters c;
    c.frames = state_->frames.load(std::memory_order_relaxed);
    c.missed = state_->ring().skipped();
    c.released = state_->released.load(std::memory_order_relaxed);
    c.bad_messages = state_->bad_messages.load(std::memory_order_relaxed);
    c.wakeups = state_->wakeups.load(std::memory_order_relaxed);
    c.revoked = state_->ring().state() == protocol::control::state_revoked;
    return c;
  }

 private:
  bool take(Frame& f) {
    if (ended_) return false;
    const auto got = state_->take(f);
    if (got == detail::SubscriberState::Got::ended) ended_ = true;
    return got == detail::SubscriberState::Got::frame;
  }

  /// The ring is empty: has the stream ended (state stopped / revoked, or
  /// the socket closed)? Sets ended_.
  void check_end() {
    if (state_->ring().state() == protocol::control::state_live && !detail::peer_closed(state_->socket())) return;
    Frame f;
    if (take(f)) {
      pending_ = std::move(f);  // one more frame came before the end: handed out next
      return;
    }
    ended_ = true;
  }

  std::optional<Frame> receive_until(std::optional<detail::Clock::time_point> deadline) {
    for (;;) {
      if (pending_) return std::exchange(pending_, std::nullopt);
      Frame f;
      if (take(f)) return f;
      if (ended_) return std::nullopt;
      detail::drain_eventfd(state_->own_wake());
      if (state_->ring().arm()) {
        state_->ring().disarm();
        continue;
      }
      check_end();
      if (pending_ || ended_) {
        state_->ring().disarm();
        continue;
      }
      std::array<pollfd, 2> fds{pollfd{state_->own_wake(), POLLIN, 0},
                                pollfd{state_->socket(), POLLIN | POLLRDHUP, 0}};
      state_->wakeups.fetch_add(1, std::memory_order_relaxed);
      const int n = detail::poll_until(fds, deadline);
      state_->ring().disarm();
      if (n == 0) {
        if (take(f)) return f;
        return std::nullopt;  // timeout
      }
    }
  }

  void connect(detail::UniqueFd socket, const std::string& who, detail::Clock::time_point deadline) {
    pollfd p{socket.get(), POLLIN, 0};
    const int ready = detail::poll_until(std::span(&p, 1), deadline);
    if (ready < 0) detail::throw_errno(errno, who + ": waiting for the hello");
    if (ready == 0) throw protocol_error(who + ": no hello from the server within the timeout");
    std::array<std::byte, protocol::hello_bytes + 1> buf{};
    detail::Received r = detail::receive_with_fds(socket.get(), buf);
    if (r.bytes < 0) detail::throw_errno(r.error, who + ": receiving the hello");
    if (r.bytes == 0) throw protocol_error(who + ": the server closed the connection before its hello");
    const std::span<const std::byte> message(buf.data(), static_cast<std::size_t>(r.bytes));
    if (const auto refused = protocol::decode_refused(message)) {
      std::string limit;
      switch (refused->reason) {
        case protocol::RefuseReason::other_user: limit = " (the server runs as uid " + std::to_string(refused->limit) + ")"; break;
        case protocol::RefuseReason::full: limit = " (max_subscribers is " + std::to_string(refused->limit) + ")"; break;
        case protocol::RefuseReason::resources: limit = " (errno " + std::to_string(refused->limit) + ")"; break;
        case protocol::RefuseReason::stopping: break;
      }
      throw protocol_error(who + ": " + protocol::describe(refused->reason) + limit);
    }
    const std::optional<protocol::Hello> hello = protocol::decode_hello(message);
    if (!hello || r.truncated || r.fd_count != protocol::hello_fds)
      throw protocol_error(who + ": the server's first message is not a version-2 hello with " +
                           std::to_string(protocol::hello_fds) + " descriptors (an older server?)");
    const protocol::Hello& h = *hello;
    if (const char* problem = protocol::hello_problem(h))
      throw protocol_error(who + ": the hello's geometry is wrong: " + problem);
    const auto file_size = [](int fd) -> std::uint64_t {
      struct stat st {};
      return ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    };
    const auto shrink_sealed = [](int fd) {
      const int seals = ::fcntl(fd, F_GET_SEALS);
      return seals >= 0 && (seals & F_SEAL_SHRINK) != 0;
    };
    if (file_size(r.fds[0].get()) < h.region_size || file_size(r.fds[1].get()) < h.control_bytes)
      throw protocol_error(who + ": the hello's sizes do not fit the memory it came with");
    if (!shrink_sealed(r.fds[0].get()) || !shrink_sealed(r.fds[1].get()))
      throw protocol_error(who + ": the server's memory is not sealed against shrinking; refusing to map it");
    const auto map = [&who](int fd, std::uint64_t size, int prot, const char* what) {
      void* m = ::mmap(nullptr, static_cast<std::size_t>(size), prot, MAP_SHARED | MAP_POPULATE, fd, 0);
      if (m == MAP_FAILED) detail::throw_errno(errno, who + ": mmap of " + what);
      return detail::Mapping(m, static_cast<std::size_t>(size));
    };
    detail::Mapping pool = map(r.fds[0].get(), h.region_size, PROT_READ, "the server's frames");
    detail::Mapping control = map(r.fds[1].get(), h.control_bytes, PROT_READ | PROT_WRITE, "the control region");
    namespace c = protocol::control;
    if (detail::word32(control.data(), c::magic_at).load() != c::magic ||
        detail::word32(control.data(), c::ring_slots_at).load() != h.ring_slots ||
        detail::word32(control.data(), c::max_in_flight_at).load() != h.max_in_flight)
      throw protocol_error(who + ": the control region's header does not match the hello");
    const int own_wake = r.fds[2].get();
    detail::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (epoll.get() < 0) detail::throw_errno(errno, who + ": epoll_create1");
    for (const int fd : {own_wake, socket.get()}) {
      epoll_event ev{};
      ev.events = EPOLLIN | (fd == own_wake ? 0u : static_cast<std::uint32_t>(EPOLLRDHUP));
      ev.data.fd = fd;
      if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) detail::throw_errno(errno, who + ": epoll_ctl");
    }
    // The eventfds must not block us: the server made them non-blocking, and
    // the flag lives in the shared file description; set it all the same.
    for (const int fd : {r.fds[2].get(), r.fds[3].get()}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    state_ = new detail::SubscriberState(std::move(socket), std::move(pool), std::move(control), std::move(r.fds[2]),
                                         std::move(r.fds[3]), std::move(epoll), h);
  }

  detail::SubscriberState* state_ = nullptr;
  std::optional<Frame> pending_;
  bool ended_ = false;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm
