// daq_pool/shm/server.hpp: shm::Server, which serves the frames of a
// shared-memory BufferPool to subscriber processes (protocol version 2,
// daq_pool/shm/protocol.hpp; guide and design: docs/shm.md).
//
// Threads:
//   - publish() runs on the caller's thread (the acquisition thread): per
//     subscriber it collects the releases waiting in its ring, puts the
//     frame's descriptor in its frame ring and, only if that subscriber
//     sleeps, writes its eventfd. No system call per frame while the
//     subscribers keep up; never blocks unless wait_when_full. At a full
//     subscriber with wait_when_full it waits for the release itself (no
//     hop through the server thread): spins briefly re-reading the release
//     ring, then sleeps in poll() on the eventfd the release writes
//     (wait_for_room()).
//   - The server's own thread (started by the constructor, joined by stop())
//     accepts connections, notices closed sockets (a dead subscriber: all it
//     held comes back), enforces leases, and collects releases only when
//     publish() has been idle for a tick (10 ms): then it arms the rings'
//     server_sleeping flag and is woken by the next release (a one-shot
//     epoll watch, so a publish() sleeping on the same eventfd does not wake
//     it). While frames flow it wakes once per tick, never per frame.
// Views are always dropped outside every lock (a last drop may zero a big
// buffer, with zero_on_release). Nothing is allocated per frame; each
// connection allocates its control region once.
//
// Over 600 lines, one concept: the server side of protocol 2 (accept,
// admit, publish, collect releases, leases, teardown); the protocol itself,
// the rings and the POSIX helpers are in their own headers.
#pragma once

#include "daq_pool/buffer_pool.hpp"
#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/abi.hpp"
#include "daq_pool/detail/config.hpp"
#include "daq_pool/shm/detail/flight_table.hpp"
#include "daq_pool/shm/detail/posix.hpp"
#include "daq_pool/shm/detail/ring.hpp"
#include "daq_pool/shm/protocol.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm {

/// How a Server treats its subscribers. Plain data.
struct ServerOptions {
  /// Subscribers connected at once, in [1, 1024]; one more is refused (and
  /// told why). Sizes the server's tables.
  std::size_t max_subscribers = 8;
  /// Frames each subscriber may hold at once, in [1, 4096]: its bound. A
  /// frame that would exceed it is skipped for that subscriber (counted;
  /// the subscriber learns the count).
  std::size_t max_in_flight = 4;
  /// Buffers the pool must have beyond what subscribers may hold
  /// (max_subscribers x max_in_flight): the producer's own (the one being
  /// filled, the one being published, plus whatever else of the pipeline
  /// holds buffers). >= 1. The constructor refuses a smaller pool.
  std::size_t producer_margin = 2;
  /// A subscriber holding a frame longer than this (counted from publish)
  /// is disconnected and its frames taken back (ServerStats::lease_expired;
  /// see docs/shm.md for what that can't guarantee). 0: no lease.
  std::chrono::milliseconds lease{0};
  /// At its bound, a subscriber is skipped for that frame (false, the
  /// default: a slow viewer never stalls acquisition) or publish() waits up
  /// to wait_timeout for it to release a frame (true), then skips it.
  bool wait_when_full = false;
  /// The longest publish() waits, for all full subscribers together; >= 0.
  std::chrono::milliseconds wait_timeout{100};
  /// How long stop() waits for subscribers to release the frames they hold
  /// before taking them back; >= 0.
  std::chrono::milliseconds drain_timeout{2000};
  /// Refuse to serve (constructor throws) if the pool's memfd is not sealed
  /// with F_SEAL_FUTURE_WRITE (Linux < 5.1): there, a subscriber of the same
  /// user can reopen its descriptor read-write (docs/shm.md).
  bool require_write_seal = false;
  /// How subscribers may view each frame's bytes (a numpy dtype and shape;
  /// daq_pool/frame_layout.hpp), sent in every Hello: the Python package
  /// then hands out arrays of that dtype and shape. Default: not stated
  /// (raw bytes). Its pixel_format is not sent. Checked at construction
  /// against the pool's buffer capacity.
  FrameLayout layout;
};

/// One subscriber's counters, as seen by the server (the place `index`; a
/// place is reused by the next connection, which resets them).
struct SubscriberStats {
  bool connected = false;          ///< a subscriber is connected in this place now
  std::uint64_t id = 0;            ///< the connection's number (1, 2, ...), 0 if never used
  int pid = 0;                     ///< the subscriber's process (SO_PEERCRED)
  std::size_t in_flight = 0;       ///< frames it holds now (sent, release not yet collected)
  std::uint64_t sent = 0;          ///< frames sent to it
  std::uint64_t skipped = 0;       ///< frames not sent: at its bound (it is told this count)
  std::uint64_t timed_out = 0;     ///< ... of which after waiting wait_timeout (wait_when_full)
  std::uint64_t released = 0;      ///< valid releases
  std::uint64_t bad_releases = 0;  ///< releases for a slot or sequence it does not hold (or reserved != 0): ignored
};

/// The server's counters since construction (all subscribers, gone ones
/// included). Read while frames flow they may be stale and not add up
/// exactly; once quiet they are exact.
struct ServerStats {
  std::size_t subscribers = 0;         ///< connected now
  std::uint64_t accepted = 0;          ///< connections accepted
  std::uint64_t refused_uid = 0;       ///< refused: another user (SO_PEERCRED)
  std::uint64_t refused_full = 0;      ///< refused: max_subscribers connected
  std::uint64_t refused_resources = 0; ///< refused: no memory / descriptors for its control region
  std::uint64_t accept_errors = 0;     ///< accept() failed for want of descriptors (EMFILE, ENFILE...): backed off
  std::uint64_t disconnected = 0;      ///< subscribers gone (all they held taken back)
  std::uint64_t lease_expired = 0;     ///< ... of which for holding a frame longer than the lease
  std::uint64_t protocol_errors = 0;   ///< ... of which for impossible ring indices (a scribbled region)
  std::uint64_t published = 0;         ///< publish() calls with a frame of the pool
  std::uint64_t not_shared = 0;        ///< publish() calls refused: not a view of the pool's shared memory
  std::uint64_t sent = 0;              ///< frame descriptors sent
  std::uint64_t skipped = 0;           ///< frames not sent to a subscriber at its bound
  std::uint64_t released = 0;          ///< valid releases collected
  std::uint64_t bad_releases = 0;      ///< invalid releases, ignored
  std::uint64_t wakeups_sent = 0;      ///< eventfd writes to sleeping subscribers
  std::uint64_t server_wakeups = 0;    ///< times a subscriber's release woke the server thread
};

namespace detail {

/// One place for a subscriber at the server. `mutex` guards everything but
/// the atomics; the server thread alone opens and closes the descriptors.
struct Peer {
  std::mutex mutex;
  std::condition_variable room;         // a release came, or the peer went (wait_when_full, a second waiter)
  std::atomic<bool> live{false};        // connected: lets publish() skip empty places without the mutex
  bool connected = false;               // frames may be sent
  UniqueFd socket, subscriber_wake, server_wake;
  Mapping control;
  ServerRing ring;
  FlightTable table;
  std::uint64_t id = 0;
  int pid = 0;
  bool broken = false;                  // impossible indices seen: to be disconnected by the server thread
  // A publish() thread sleeps in poll() on server_wake (wait_when_full): it
  // alone reads that eventfd then (the server thread must not consume the
  // wake-up it waits for), and the descriptor is not closed under it.
  bool publisher_polling = false;
  UniqueFd parked_wake;                 // server_wake of a connection closed while polled; closed by the poller
  std::atomic<std::uint64_t> sent{0}, skipped{0}, timed_out{0}, released{0}, bad_releases{0};

  void reset_counters() noexcept {
    for (std::atomic<std::uint64_t>* c : {&sent, &skipped, &timed_out, &released, &bad_releases})
      c->store(0, std::memory_order_relaxed);
  }
};

}  // namespace detail

/// Serves the frames of one shared-memory BufferPool to subscriber
/// processes (see the file comment and docs/shm.md).
///
/// Security: the socket's directory must be private to this user (0700;
/// created if missing, refused otherwise), only peers of the same uid are
/// accepted (SO_PEERCRED), and subscribers get a read-only descriptor of the
/// pool's memfd, sealed against resizing and (Linux >= 5.1, write_sealed())
/// against any new writable mapping.
///
/// publish() and stats() may be called from any thread; stop() from one.
class Server {
 public:
  /// Listens at `path` for subscribers of `pool`'s frames and starts the
  /// server thread. Throws std::invalid_argument if the pool was not made
  /// with BufferPoolOptions::shared_memory, has fewer buffers than
  /// max_subscribers x max_in_flight + producer_margin (the message names
  /// the numbers), an option is out of range, the path is empty or longer
  /// than 107 bytes, its directory is not private to this user, or
  /// something other than a stale socket is at the path (a server that
  /// answers, or one too busy to answer within a second, included);
  /// std::system_error if a system call fails. A stale socket file (connect
  /// refused) is replaced. A missing directory is created (0700) and removed
  /// again by stop(), or at once if construction fails.
  Server(BufferPool pool, std::string path, ServerOptions options = {})
      : pool_(std::move(pool)), path_(std::move(path)), options_(std::move(options)) {
    const std::string who = "daq_pool::shm::Server";
    check_options(who);
    const sockaddr_un address = detail::socket_address(path_, who.c_str());
    directory_ = detail::directory_of(path_);
    created_directory_ = detail::check_private_directory(directory_);
    try {
      open_read_only_memfd();
      peers_ = std::make_unique<detail::Peer[]>(options_.max_subscribers);
      for (std::size_t i = 0; i < options_.max_subscribers; ++i) peers_[i].table.init(options_.max_in_flight);
      epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
      if (epoll_.get() < 0) detail::throw_errno(errno, who + ": epoll_create1");
      wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (wake_.get() < 0) detail::throw_errno(errno, who + ": eventfd");
      watch(wake_.get(), EPOLLIN, stop_tag);
      kick_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (kick_.get() < 0) detail::throw_errno(errno, who + ": eventfd");
      watch(kick_.get(), EPOLLIN, kick_tag);
      listen_at(address);
      watch(listen_.get(), EPOLLIN, listening_tag);
      thread_ = std::thread([this] { run(); });
    } catch (...) {
      remove_socket_file();  // and the directory, if made here: nothing left behind
      throw;
    }
  }

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// stop().
  ~Server() { stop(); }

  /// Sends `frame` to every connected subscriber (stamped now, CLOCK_REALTIME)
  /// and returns to how many. See the other overload.
  std::size_t publish(const Bytes& frame) { return publish(frame, detail::realtime_ns()); }

  /// Sends `frame`, a view of the pool's buffers (a whole frozen buffer or a
  /// slice of one), to every connected subscriber below its in-flight bound,
  /// keeping one copy of the view per subscriber until its release; returns
  /// how many got it. A subscriber at its bound is skipped (counted, and it
  /// is told), or with wait_when_full waited for up to wait_timeout. A view
  /// that is not in the pool's shared memory is refused: 0, counted in
  /// ServerStats::not_shared. Thread-safe (frames published from several
  /// threads at once may reach a subscriber out of sequence order). Never
  /// allocates; a system call only to wake a sleeping subscriber; never
  /// blocks unless wait_when_full. Waiting, it spins up to 20 us re-reading
  /// the subscriber's release ring (no system call while the subscriber
  /// keeps up), then sleeps until that subscriber's release wakes it.
  std::size_t publish(const Bytes& frame, std::uint64_t timestamp_ns) {
    if (stopped_.load(std::memory_order_relaxed)) return 0;
    const std::optional<std::size_t> offset = pool_.shared_offset(frame);
    if (!offset) {
      not_shared_.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
    const std::uint64_t sequence = sequence_.fetch_add(1, std::memory_order_relaxed) + 1;
    published_.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t now = detail::monotonic_ns();
    protocol::FrameDescriptor d;
    d.sequence = sequence;
    d.offset = *offset;
    d.size = frame.size();
    d.timestamp_ns = timestamp_ns;
    std::optional<detail::Clock::time_point> deadline;  // one for the whole call
    std::size_t reached = 0;
    std::array<Bytes, batch> dropped;
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      if (!p.live.load(std::memory_order_acquire)) continue;
      std::size_t n = 0;
      bool sent = false;
      {
        std::unique_lock lock(p.mutex);
        if (!p.connected) continue;
        n = collect(p, dropped.data(), batch);
        if (p.table.full() && options_.wait_when_full) {
          if (!deadline) deadline = detail::Clock::now() + options_.wait_timeout;
          n += wait_for_room(p, lock, *deadline, dropped.data() + n, batch - n);
          if (p.connected && p.table.full()) p.timed_out.fetch_add(1, std::memory_order_relaxed);
        }
        if (!p.connected) {
          // gone while we waited
        } else if (const std::optional<std::uint32_t> slot = p.table.hold(frame, sequence, now)) {
          d.slot = *slot;
          d.skipped = p.ring.skipped();
          if (p.ring.push_frame(d)) {
            detail::signal_eventfd(p.subscriber_wake.get());  // under the lock: the fd stays open
            wakeups_sent_.fetch_add(1, std::memory_order_relaxed);
          }
          sent = true;
        } else {
          p.ring.add_skipped();
        }
      }
      // The released views drop here, outside the lock.
      for (std::size_t k = 0; k < n; ++k) dropped[k] = Bytes();
      if (sent) {
        p.sent.fetch_add(1, std::memory_order_relaxed);
        sent_.fetch_add(1, std::memory_order_relaxed);
        ++reached;
      } else {
        p.skipped.fetch_add(1, std::memory_order_relaxed);
        skipped_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    return reached;
  }

  /// Ends the server, in order: refuses new connections and removes the
  /// socket file; ends every subscriber's stream (state 2: it sees the end
  /// after the frames already sent); collects releases until every
  /// subscriber has released its frames or gone, or drain_timeout has
  /// passed; then stops the server thread, closes every connection and takes
  /// back every frame still held (state 1 for a subscriber that held any:
  /// its Frame::still_valid() turns false, as the buffers may be reused).
  /// Idempotent; later publish() calls reach nobody. Not to be called while
  /// another thread is in publish(). Never hangs: bounded by drain_timeout.
  void stop() noexcept {
    if (stopped_.exchange(true)) return;
    remove_socket_file();
    for (std::size_t i = 0; peers_ && i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      std::lock_guard lock(p.mutex);
      if (!p.connected) continue;
      p.ring.set_state(protocol::control::state_stopped);
      detail::signal_eventfd(p.subscriber_wake.get());
      ::shutdown(p.socket.get(), SHUT_WR);
    }
    const auto deadline = detail::Clock::now() + options_.drain_timeout;
    while (peers_ && collect_all() && detail::Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (thread_.joinable()) {
      detail::signal_eventfd(wake_.get());
      thread_.join();
    }
    listen_.reset();
    for (std::size_t i = 0; peers_ && i < options_.max_subscribers; ++i) disconnect(i, Why::stop);
  }

  /// The socket's path. Thread-safe; never allocates.
  const std::string& path() const noexcept { return path_; }
  /// The options given. Thread-safe; never allocates.
  const ServerOptions& options() const noexcept { return options_; }
  /// The pool whose frames are served. Thread-safe; never allocates.
  const BufferPool& pool() const noexcept { return pool_; }
  /// True if the pool's memfd refuses every new writable mapping
  /// (F_SEAL_FUTURE_WRITE, Linux >= 5.1); false: a subscriber of the same
  /// user could write into frames (docs/shm.md). Thread-safe; never allocates.
  bool write_sealed() const noexcept { return region_.write_sealed; }

  /// Subscribers connected now. Thread-safe; stale the moment it is read.
  std::size_t subscribers() const noexcept { return connected_.load(std::memory_order_relaxed); }

  /// The counters (see ServerStats). Thread-safe; never allocates.
  ServerStats stats() const noexcept {
    ServerStats s;
    const auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    s.subscribers = connected_.load(std::memory_order_relaxed);
    s.accepted = get(accepted_);
    s.refused_uid = get(refused_uid_);
    s.refused_full = get(refused_full_);
    s.refused_resources = get(refused_resources_);
    s.accept_errors = get(accept_errors_);
    s.disconnected = get(disconnected_);
    s.lease_expired = get(lease_expired_);
    s.protocol_errors = get(protocol_errors_);
    s.published = get(published_);
    s.not_shared = get(not_shared_);
    s.sent = get(sent_);
    s.skipped = get(skipped_);
    s.released = get(released_);
    s.bad_releases = get(bad_releases_);
    s.wakeups_sent = get(wakeups_sent_);
    s.server_wakeups = get(server_wakeups_);
    return s;
  }

  /// The subscriber at place `index` (< options().max_subscribers);
  /// std::out_of_range otherwise. Thread-safe (takes that subscriber's
  /// mutex briefly).
  SubscriberStats subscriber(std::size_t index) const {
    if (index >= options_.max_subscribers)
      throw std::out_of_range("daq_pool::shm::Server::subscriber: index " + std::to_string(index) +
                              " is not below max_subscribers (" + std::to_string(options_.max_subscribers) + ")");
    detail::Peer& p = peers_[index];
    SubscriberStats s;
    {
      std::lock_guard lock(p.mutex);
      s.connected = p.connected;
      s.id = p.id;
      s.pid = p.pid;
      s.in_flight = p.table.in_flight();
    }
    s.sent = p.sent.load(std::memory_order_relaxed);
    s.skipped = p.skipped.load(std::memory_order_relaxed);
    s.timed_out = p.timed_out.load(std::memory_order_relaxed);
    s.released = p.released.load(std::memory_order_relaxed);
    s.bad_releases = p.bad_releases.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static constexpr std::size_t batch = 32;  // views collected per lock hold; dropped after it
  static constexpr std::uint64_t stop_tag = ~std::uint64_t{0};
  static constexpr std::uint64_t listening_tag = ~std::uint64_t{0} - 1;
  static constexpr std::uint64_t kick_tag = ~std::uint64_t{0} - 2;
  // How long publish() at a full subscriber re-reads its release ring
  // before sleeping (wait_when_full): a subscriber that keeps up releases
  // within a few microseconds; longer spins only burn a core.
  static constexpr std::uint64_t spin_ns = 20'000;
  static constexpr std::int64_t tick_ms = 10;
  static constexpr std::int64_t accept_backoff_ms = 100;
  enum class Why { closed, lease, broken, stop };

  // A peer's epoll tag: its connection number above bit 17, whether it is
  // the socket (0) or the server-wake eventfd (1) at bit 16, its place
  // below: an event of a connection already gone never reaches its successor.
  static constexpr std::uint64_t peer_tag(std::uint64_t id, std::size_t index, bool wake) noexcept {
    return (id << 17) | (std::uint64_t{wake} << 16) | index;
  }

  void check_options(const std::string& who) {
    const auto range = [&who](const char* name, std::size_t v, std::size_t lo, std::size_t hi) {
      if (v < lo || v > hi)
        throw std::invalid_argument(who + ": options." + name + " (" + std::to_string(v) + ") must be in [" +
                                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
    };
    range("max_subscribers", options_.max_subscribers, 1, 1024);
    range("max_in_flight", options_.max_in_flight, 1, protocol::max_in_flight_limit);
    range("producer_margin", options_.producer_margin, 1, std::size_t{1} << 30);
    if (options_.wait_timeout.count() < 0 || options_.drain_timeout.count() < 0 || options_.lease.count() < 0)
      throw std::invalid_argument(who + ": options.wait_timeout, drain_timeout and lease must not be negative");
    const std::optional<SharedMemoryRegion> region = pool_.shared_memory();
    if (!region)
      throw std::invalid_argument(who +
                                  ": the pool was not made with BufferPoolOptions::shared_memory; its buffers can't be "
                                  "shared with other processes");
    region_ = *region;
    const std::size_t held = options_.max_subscribers * options_.max_in_flight;
    const std::size_t needed = held + options_.producer_margin;
    if (pool_.size() < needed)
      throw std::invalid_argument(
          who + ": the pool has " + std::to_string(pool_.size()) + " buffers; " +
          std::to_string(options_.max_subscribers) + " subscribers (max_subscribers) x " +
          std::to_string(options_.max_in_flight) + " frames in flight (max_in_flight) + a producer margin of " +
          std::to_string(options_.producer_margin) + " need " + std::to_string(needed) +
          ": give a pool of at least " + std::to_string(needed) + " buffers, or lower max_subscribers / max_in_flight");
    if (const std::string why = layout_problem(options_.layout, region_.capacity); !why.empty())
      throw std::invalid_argument(who + ": options.layout: " + why);
    if (options_.require_write_seal && !region_.write_sealed)
      throw std::invalid_argument(who +
                                  ": options.require_write_seal: this kernel has no F_SEAL_FUTURE_WRITE (Linux < 5.1); "
                                  "subscribers of this user could write into frames");
  }

  /// The descriptor subscribers get: the memfd reopened read-only (through
  /// /proc/self/fd), or without /proc a duplicate when the write seal makes
  /// that safe. Without the seal (Linux < 5.1) a subscriber can reopen even
  /// the read-only one read-write (docs/shm.md); write_sealed() says so.
  void open_read_only_memfd() {
    const std::string self = "/proc/self/fd/" + std::to_string(region_.fd);
    int fd = -1;
    do {
      fd = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    ro_memfd_.reset(fd);
    if (ro_memfd_.get() >= 0) return;
    if (!region_.write_sealed)
      detail::throw_errno(errno, "daq_pool::shm::Server: no read-only descriptor of the pool's memfd (" + self +
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
      // A socket file: a live server's, or a stale one left by a crash. Only
      // ECONNREFUSED (nobody listens) makes it stale; a listener too busy to
      // take the connection (EAGAIN until the deadline) is alive.
      const detail::ConnectResult probe =
          detail::connect_until(address, detail::Clock::now() + std::chrono::seconds(1), false);
      if (probe.fd.get() >= 0) throw std::invalid_argument(who + ": another server is listening there");
      if (probe.error != ECONNREFUSED)
        throw std::invalid_argument(who + ": a socket is there and connecting to it failed with " +
                                    std::generic_category().message(probe.error) +
                                    " (not 'connection refused'): a server may be listening; not replacing it");
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
    if (::listen(listen_.get(), 64) != 0) detail::throw_errno(errno, who + ": listen");
  }

  /// Removes the socket file, if it is still the one this server bound, and
  /// the directory if this server created it and it is empty now.
  void remove_socket_file() noexcept {
    struct stat st {};
    if (bound_ && ::lstat(path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_)
      ::unlink(path_.c_str());
    bound_ = false;
    if (created_directory_) ::rmdir(directory_.c_str());  // fails, harmlessly, unless empty
    created_directory_ = false;
  }

  void watch(int fd, std::uint32_t events, std::uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      detail::throw_errno(errno, "daq_pool::shm::Server: epoll_ctl");
  }

  /// Collects up to `batch` releases of `p` (lock held), moving the views
  /// into `out` for the caller to drop after unlocking; how many. A
  /// scribbled release_head marks the peer broken (the server thread
  /// disconnects it: its socket is shut down to wake that thread).
  std::size_t collect(detail::Peer& p, Bytes* out, std::size_t limit) noexcept {
    if (p.broken) return 0;
    std::size_t n = 0, consumed = 0;
    const bool ok = p.ring.drain_releases(
        [&](std::uint32_t slot, std::uint64_t sequence, bool reserved_ok) {
          if (p.table.release(slot, sequence, reserved_ok, out[n]) == detail::FlightTable::Verdict::released) {
            ++n;
          } else {
            p.bad_releases.fetch_add(1, std::memory_order_relaxed);
            bad_releases_.fetch_add(1, std::memory_order_relaxed);
          }
        },
        limit, &consumed);
    if (!ok) {
      p.broken = true;
      p.connected = false;  // no more frames for it
      ::shutdown(p.socket.get(), SHUT_RDWR);
    }
    if (n != 0) {
      p.released.fetch_add(n, std::memory_order_relaxed);
      released_.fetch_add(n, std::memory_order_relaxed);
      p.room.notify_all();
    }
    return n;
  }

  /// publish() at `p`'s bound with wait_when_full (lock held, released
  /// while it sleeps): waits for the subscriber's next release and collects
  /// it into `out` (at most `limit`) until `p` has room, goes, or `deadline`
  /// passes; how many were collected. No hop through the server thread:
  ///   1. spins for spin_ns re-reading the release ring (collect(), the
  ///      server thread's code): a busy subscriber releases within
  ///      microseconds, and then no system call is made and nobody woken;
  ///   2. then sleeps in poll() on p's server_wake eventfd, which the
  ///      subscriber's release writes itself: the same Dekker handshake as
  ///      the server thread's (arm server_sleeping, re-check the ring), so
  ///      the release wakes this thread directly. While it polls, it alone
  ///      reads that eventfd (server_woken() leaves it, arm_all() does not
  ///      arm: no consumed wake-up either way), and if the server thread
  ///      sleeps armed it is kicked awake first (it would otherwise miss a
  ///      wake-up this thread consumed and sleep on with nobody collecting).
  /// A second publishing thread at the same peer waits on `room` instead,
  /// which collect() notifies. Never allocates.
  std::size_t wait_for_room(detail::Peer& p, std::unique_lock<std::mutex>& lock, detail::Clock::time_point deadline,
                            Bytes* out, std::size_t limit) noexcept {
    std::size_t n = 0;
    const std::uint64_t id = p.id;
    const auto waiting = [&] { return p.connected && p.id == id && p.table.full() && n < limit; };
    const std::uint64_t spin_end = detail::monotonic_ns() + spin_ns;
    while (waiting() && detail::monotonic_ns() < spin_end) {
      lock.unlock();  // the server thread may need this peer meanwhile
      for (int k = 0; k < 16; ++k) daq_pool::detail::cpu_relax();
      lock.lock();
      if (p.connected && p.id == id) n += collect(p, out + n, limit - n);
    }
    while (waiting() && detail::Clock::now() < deadline) {
      if (p.publisher_polling) {
        p.room.wait_until(lock, deadline);
      } else {
        p.publisher_polling = true;
        // Under the peer's mutex, after publisher_polling: either arm_all()
        // saw it (and does not sleep armed) or we see armed_ here.
        if (armed_.load(std::memory_order_acquire)) detail::signal_eventfd(kick_.get());
        if (!p.ring.arm_server_wake()) {
          const int fd = p.server_wake.get();  // not closed while we poll: disconnect() parks it
          const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - detail::Clock::now()).count();
          lock.unlock();
          pollfd pfd{fd, POLLIN, 0};
          const int r = ::poll(&pfd, 1, static_cast<int>(std::clamp<std::int64_t>(left, 0, 60'000)));
          lock.lock();
          if (p.parked_wake.get() >= 0) {
            p.parked_wake.reset();  // its connection went meanwhile
          } else if (r > 0) {
            detail::drain_eventfd(fd);  // ours to read: see above
          }
        }
        p.publisher_polling = false;
      }
      if (p.connected && p.id == id) n += collect(p, out + n, limit - n);
    }
    return n;
  }

  /// Collects every peer's releases (views dropped outside the locks); true
  /// while some connected peer still holds frames.
  bool collect_all() noexcept {
    bool holding = false;
    std::array<Bytes, batch> dropped;
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      if (!p.live.load(std::memory_order_acquire)) continue;
      for (int round = 0; round < 1024; ++round) {
        std::size_t n = 0;
        bool more = false;
        {
          std::lock_guard lock(p.mutex);
          if (p.socket.get() < 0) break;
          n = collect(p, dropped.data(), batch);
          more = n == batch;
          if (!more && p.connected && p.table.in_flight() != 0) holding = true;
        }
        for (std::size_t k = 0; k < n; ++k) dropped[k] = Bytes();
        if (!more) break;
      }
    }
    return holding;
  }

  /// The server thread: connections, closed sockets, wake-ups, ticks.
  /// Never allocates, except for a new connection's control region.
  void run() noexcept {
    std::array<epoll_event, 32> events{};
    std::uint64_t seen_published = published_.load(std::memory_order_relaxed);
    auto next_tick = detail::Clock::now();
    for (;;) {
      std::optional<detail::Clock::time_point> until;
      if (connected_.load(std::memory_order_relaxed) != 0) {
        if (!armed_.load(std::memory_order_relaxed)) {
          until = next_tick;
        } else if (options_.lease.count() > 0) {
          // publish() does not wake us: with a lease, look at held frames
          // every tick even while armed.
          until = detail::Clock::now() + std::chrono::milliseconds(tick_ms);
        }
      }
      if (options_.lease.count() > 0) {
        if (const auto expiry = next_lease_expiry(); expiry && (!until || *expiry < *until)) until = expiry;
      }
      if (accept_paused_ && (!until || accept_resume_ < *until)) until = accept_resume_;
      int timeout = -1;
      if (until)
        timeout = static_cast<int>(std::clamp<std::int64_t>(
            std::chrono::ceil<std::chrono::milliseconds>(*until - detail::Clock::now()).count(), 0, 60'000));
      const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) return;  // only with a bad epoll descriptor
      for (int k = 0; k < n; ++k) {
        const epoll_event& e = events[static_cast<std::size_t>(k)];
        if (e.data.u64 == stop_tag) return;
        if (e.data.u64 == kick_tag) {
          // A publish() thread sleeps on a release wake-up we might have
          // missed: tick (collect by time) instead of sleeping armed.
          detail::drain_eventfd(kick_.get());
          armed_.store(false, std::memory_order_relaxed);
          continue;
        }
        if (e.data.u64 == listening_tag) {
          accept_all();
          continue;
        }
        const std::size_t index = static_cast<std::size_t>(e.data.u64 & 0xFFFFu);
        const std::uint64_t id = e.data.u64 >> 17;
        if (index >= options_.max_subscribers) continue;
        if ((e.data.u64 >> 16) & 1u) {
          server_woken(index, id);
          // That ring's flag is spent: re-armed at the next tick if still idle.
          armed_.store(false, std::memory_order_relaxed);
        } else {
          socket_event(index, id);
        }
      }
      if (accept_paused_ && detail::Clock::now() >= accept_resume_) resume_accept();
      if (options_.lease.count() > 0) expire_leases();
      if (!armed_.load(std::memory_order_relaxed) && detail::Clock::now() >= next_tick) {
        // A tick: collect what publish() has not, and arm the rings'
        // server_sleeping only if publish() has been idle since the last
        // one (while it runs it collects, and armed flags would wake us
        // per release).
        next_tick = detail::Clock::now() + std::chrono::milliseconds(tick_ms);
        const std::uint64_t published = published_.load(std::memory_order_relaxed);
        const bool idle = published == seen_published || stopped_.load(std::memory_order_relaxed);
        seen_published = published;
        collect_all();
        if (idle) arm_all();
      }
      flush_broken();
    }
  }

  /// Arms every connected ring's server_sleeping flag (and re-enables its
  /// one-shot epoll watch of server_wake first); collects (and keeps polling
  /// by tick) if a release slipped in or a publish() thread polls a ring.
  /// Sets armed_ if all are armed.
  void arm_all() noexcept {
    // Stored before any peer's mutex is taken: a publish() thread that
    // starts polling after we looked at its peer sees it and kicks us.
    armed_.store(true, std::memory_order_relaxed);
    bool all = true;
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      if (!p.live.load(std::memory_order_acquire)) continue;
      std::lock_guard lock(p.mutex);
      if (p.socket.get() < 0 || p.broken) continue;
      if (p.publisher_polling) {
        all = false;  // it reads server_wake now; we'd miss wake-ups it consumes
        continue;
      }
      watch_server_wake(p, i, EPOLL_CTL_MOD);
      if (p.ring.arm_server_wake()) all = false;
    }
    if (!all) {
      armed_.store(false, std::memory_order_relaxed);
      collect_all();
    }
  }

  /// Watches p's server_wake, one-shot: it wakes the server thread once,
  /// then not until arm_all() re-enables it, so a publish() thread sleeping
  /// on the same eventfd does not wake the server thread per release.
  void watch_server_wake(detail::Peer& p, std::size_t index, int op) noexcept {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = peer_tag(p.id, index, true);
    ::epoll_ctl(epoll_.get(), op, p.server_wake.get(), &ev);
  }

  /// A subscriber's release woke us (its server_wake eventfd).
  void server_woken(std::size_t index, std::uint64_t id) noexcept {
    detail::Peer& p = peers_[index];
    {
      std::lock_guard lock(p.mutex);
      if (p.socket.get() < 0 || p.id != id) return;
      if (!p.publisher_polling) detail::drain_eventfd(p.server_wake.get());  // else the poller's to read
    }
    server_wakeups_.fetch_add(1, std::memory_order_relaxed);
    collect_all();
  }

  /// Its socket is readable or hung up: the subscriber sends nothing in
  /// version 2, so it is gone (or broke the protocol): disconnect it.
  void socket_event(std::size_t index, std::uint64_t id) noexcept {
    detail::Peer& p = peers_[index];
    bool broken = false;
    {
      std::lock_guard lock(p.mutex);
      if (p.socket.get() < 0 || p.id != id) return;
      broken = p.broken;
    }
    disconnect(index, broken ? Why::broken : Why::closed);
  }

  void flush_broken() noexcept {
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      if (!p.live.load(std::memory_order_acquire)) continue;
      bool broken = false;
      {
        std::lock_guard lock(p.mutex);
        broken = p.broken && p.socket.get() >= 0;
      }
      if (broken) disconnect(i, Why::broken);
    }
  }

  std::optional<detail::Clock::time_point> next_lease_expiry() noexcept {
    std::optional<std::uint64_t> oldest;
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      if (!p.live.load(std::memory_order_acquire)) continue;
      std::lock_guard lock(p.mutex);
      if (const auto t = p.table.oldest_since(); t && (!oldest || *t < *oldest)) oldest = t;
    }
    if (!oldest) return std::nullopt;
    const std::uint64_t lease_ns = static_cast<std::uint64_t>(options_.lease.count()) * 1'000'000u;
    const std::uint64_t now = detail::monotonic_ns();
    const std::uint64_t due = *oldest + lease_ns;
    return detail::Clock::now() + std::chrono::nanoseconds(due > now ? due - now : 0);
  }

  void expire_leases() noexcept {
    const std::uint64_t lease_ns = static_cast<std::uint64_t>(options_.lease.count()) * 1'000'000u;
    const std::uint64_t now = detail::monotonic_ns();
    collect_all();  // a frame released in time is not expired
    for (std::size_t i = 0; i < options_.max_subscribers; ++i) {
      detail::Peer& p = peers_[i];
      if (!p.live.load(std::memory_order_acquire)) continue;
      bool expired = false;
      {
        std::lock_guard lock(p.mutex);
        const auto t = p.table.oldest_since();
        expired = p.socket.get() >= 0 && t && now - *t >= lease_ns;
      }
      if (expired) disconnect(i, Why::lease);
    }
  }

  void pause_accept() noexcept {
    accept_errors_.fetch_add(1, std::memory_order_relaxed);
    epoll_event ev{};
    ev.events = 0;  // the backlog keeps the connections; we look again after the back-off
    ev.data.u64 = listening_tag;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listen_.get(), &ev);
    accept_paused_ = true;
    accept_resume_ = detail::Clock::now() + std::chrono::milliseconds(accept_backoff_ms);
  }
  void resume_accept() noexcept {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = listening_tag;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listen_.get(), &ev);
    accept_paused_ = false;
  }

  static void refuse(int fd, protocol::RefuseReason reason, std::uint32_t limit) noexcept {
    const auto bytes = protocol::encode(protocol::Refused{reason, limit});
    detail::send_with_fds(fd, bytes, {});
  }

  /// Accepts the waiting connections (at most 64 per wake-up: epoll is
  /// level-triggered, the rest come next time). Out of descriptors, it
  /// backs off instead of spinning.
  void accept_all() noexcept {
    for (int k = 0; k < 64; ++k) {
      detail::UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (fd.get() < 0) {
        const int err = errno;
        if (err == EINTR || err == ECONNABORTED) continue;
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) pause_accept();
        return;  // EAGAIN: none left
      }
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
        refused_uid_.fetch_add(1, std::memory_order_relaxed);
        refuse(fd.get(), protocol::RefuseReason::other_user, static_cast<std::uint32_t>(::geteuid()));
        continue;
      }
      if (stopped_.load(std::memory_order_relaxed)) {
        refuse(fd.get(), protocol::RefuseReason::stopping, 0);
        continue;
      }
      std::size_t index = options_.max_subscribers;
      for (std::size_t i = 0; i < options_.max_subscribers && index == options_.max_subscribers; ++i) {
        std::lock_guard lock(peers_[i].mutex);
        if (peers_[i].socket.get() < 0) index = i;
      }
      if (index == options_.max_subscribers) {
        refused_full_.fetch_add(1, std::memory_order_relaxed);
        refuse(fd.get(), protocol::RefuseReason::full, static_cast<std::uint32_t>(options_.max_subscribers));
        continue;
      }
      admit(std::move(fd), index, cred);
    }
  }

  /// Makes the connection's control region and eventfds, sends the hello
  /// with its four descriptors, and registers the peer.
  void admit(detail::UniqueFd fd, std::size_t index, const ucred& cred) noexcept {
    const auto slots = protocol::control::ring_slots_for(static_cast<std::uint32_t>(options_.max_in_flight));
    const std::size_t bytes = protocol::control::region_bytes(slots);
    detail::UniqueFd control(::memfd_create("daq_pool-shm-control", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    detail::UniqueFd sub_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    detail::UniqueFd srv_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    detail::Mapping map;
    // Sealed against resizing: a subscriber that truncates its control
    // memfd would otherwise make the server's accesses fault (SIGBUS).
    const bool made = control.get() >= 0 && sub_wake.get() >= 0 && srv_wake.get() >= 0 &&
                      ::ftruncate(control.get(), static_cast<off_t>(bytes)) == 0 &&
                      ::fcntl(control.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0;
    int err = made ? 0 : errno;
    if (made) {
      void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, control.get(), 0);
      if (m == MAP_FAILED) {
        err = errno;
      } else {
        map = detail::Mapping(m, bytes);
      }
    }
    if (err != 0) {
      refused_resources_.fetch_add(1, std::memory_order_relaxed);
      refuse(fd.get(), protocol::RefuseReason::resources, static_cast<std::uint32_t>(err));
      if (err == EMFILE || err == ENFILE) pause_accept();
      return;
    }
    const std::uint64_t id = ++next_id_;
    detail::Peer& p = peers_[index];
    p.ring.init(map.data(), static_cast<std::uint32_t>(options_.max_in_flight), slots);
    protocol::Hello h;
    h.region_size = region_.size;
    h.buffer_capacity = region_.capacity;
    h.buffer_stride = region_.stride;
    h.buffer_count = static_cast<std::uint32_t>(region_.count);
    h.max_in_flight = static_cast<std::uint32_t>(options_.max_in_flight);
    h.subscriber_id = id;
    h.control_bytes = bytes;
    h.ring_slots = slots;
    h.lease_ns = static_cast<std::uint64_t>(options_.lease.count()) * 1'000'000u;
    std::copy(options_.layout.dtype.begin(), options_.layout.dtype.end(), h.dtype.begin());  // <= 7: checked
    h.ndim = options_.layout.ndim;
    h.shape = options_.layout.shape;
    const auto hello = protocol::encode(h);
    const std::array<int, protocol::hello_fds> fds{ro_memfd_.get(), control.get(), sub_wake.get(), srv_wake.get()};
    // A new connection's send buffer is empty: the non-blocking send fits.
    if (!detail::send_with_fds(fd.get(), hello, fds)) return;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = peer_tag(id, index, false);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) return;
    ev.events = EPOLLIN | EPOLLONESHOT;  // see watch_server_wake()
    ev.data.u64 = peer_tag(id, index, true);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, srv_wake.get(), &ev) != 0) {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
      return;
    }
    {
      std::lock_guard lock(p.mutex);
      p.socket = std::move(fd);
      p.subscriber_wake = std::move(sub_wake);
      p.server_wake = std::move(srv_wake);
      p.control = std::move(map);
      p.id = id;
      p.pid = static_cast<int>(cred.pid);
      p.broken = false;
      p.connected = true;
      p.reset_counters();
      p.live.store(true, std::memory_order_release);
    }
    armed_.store(false, std::memory_order_relaxed);  // its ring is not armed: tick until idle again
    accepted_.fetch_add(1, std::memory_order_relaxed);
    connected_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Closes the connection at `index`, if any, and takes back every frame
  /// it held (their views dropped outside the lock, a batch at a time).
  /// Server thread (or stop() after it ended) only.
  void disconnect(std::size_t index, Why why) noexcept {
    detail::Peer& p = peers_[index];
    std::array<Bytes, batch> dropped;
    std::size_t n = 0;
    // Releases it made before it went count as releases (the frames come
    // back either way; the counts tell the truth).
    for (int round = 0; round < 1024; ++round) {
      {
        std::lock_guard lock(p.mutex);
        if (p.socket.get() < 0) return;
        n = collect(p, dropped.data(), batch);
      }
      for (std::size_t k = 0; k < n; ++k) dropped[k] = Bytes();
      if (n < batch) break;
    }
    {
      std::lock_guard lock(p.mutex);
      if (p.socket.get() < 0) return;
      // Revoked first if it still holds frames (they return to the pool
      // below and may be overwritten): Frame::still_valid() turns false.
      if (p.table.in_flight() != 0 || why == Why::lease || why == Why::broken)
        p.ring.set_state(protocol::control::state_revoked);
      p.connected = false;
      p.live.store(false, std::memory_order_relaxed);

      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, p.server_wake.get(), nullptr);
      if (p.publisher_polling && p.parked_wake.get() < 0) {
        // A publish() thread polls it: wake it, and leave closing the
        // descriptor to it (a number reused under its poll() is another file).
        detail::signal_eventfd(p.server_wake.get());
        p.parked_wake = std::move(p.server_wake);
      }
      p.socket.reset();
      p.subscriber_wake.reset();
      p.server_wake.reset();
      p.control.reset();
      n = p.table.take_all(dropped.data(), batch);
    }
    p.room.notify_all();  // a publish() waiting for this peer skips it now
    while (n != 0) {
      for (std::size_t k = 0; k < n; ++k) dropped[k] = Bytes();
      std::lock_guard lock(p.mutex);
      n = p.table.take_all(dropped.data(), batch);
    }
    connected_.fetch_sub(1, std::memory_order_relaxed);
    if (why == Why::stop) return;
    disconnected_.fetch_add(1, std::memory_order_relaxed);
    if (why == Why::lease) lease_expired_.fetch_add(1, std::memory_order_relaxed);
    if (why == Why::broken) protocol_errors_.fetch_add(1, std::memory_order_relaxed);
  }

  BufferPool pool_;
  std::string path_;
  ServerOptions options_;
  SharedMemoryRegion region_;
  detail::UniqueFd ro_memfd_;
  detail::UniqueFd listen_;
  detail::UniqueFd epoll_;
  detail::UniqueFd wake_;
  detail::UniqueFd kick_;  // publish() -> server thread: stop sleeping armed (see wait_for_room())
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  bool bound_ = false;
  bool created_directory_ = false;
  std::string directory_;  // computed once: stop() allocates nothing
  std::unique_ptr<detail::Peer[]> peers_;
  std::uint64_t next_id_ = 0;  // server thread only
  bool accept_paused_ = false;  // server thread only
  // Every ring's server_sleeping set, the server thread sleeping without
  // tick. Written by the server thread; read by a publish() thread about to
  // poll (which then kicks it awake through kick_).
  std::atomic<bool> armed_{false};
  detail::Clock::time_point accept_resume_{};
  std::atomic<std::uint64_t> sequence_{0};
  std::atomic<bool> stopped_{false};
  std::atomic<std::size_t> connected_{0};
  std::atomic<std::uint64_t> accepted_{0}, refused_uid_{0}, refused_full_{0}, refused_resources_{0}, accept_errors_{0};
  std::atomic<std::uint64_t> disconnected_{0}, lease_expired_{0}, protocol_errors_{0};
  std::atomic<std::uint64_t> published_{0}, not_shared_{0}, sent_{0}, skipped_{0}, released_{0}, bad_releases_{0};
  std::atomic<std::uint64_t> wakeups_sent_{0}, server_wakeups_{0};
  std::thread thread_;  // last: started when everything above is ready
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm
