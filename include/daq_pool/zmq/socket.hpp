// daq_pool/zmq/socket.hpp: owning wrappers of a ZeroMQ context and socket
// (RAII over libzmq's C API), and zmq_error, the exception that names the
// call, its argument and ZeroMQ's reason. Part of the daq_pool::zmq
// integration (needs libzmq); see daq_pool/zmq.hpp.
#pragma once

#include <zmq.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>  // unlink

#include "daq_pool/detail/abi.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq {

/// A libzmq call failed; what() names the call, its argument (an endpoint,
/// an option) and zmq_strerror's text; code() is the errno value.
class zmq_error : public std::runtime_error {
 public:
  /// what(): "`what_failed`: <zmq_strerror(code)>`hint`".
  zmq_error(const std::string& what_failed, int code, const std::string& hint = {})
      : std::runtime_error(what_failed + ": " + ::zmq_strerror(code) + hint), code_(code) {}
  /// The errno value libzmq reported.
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// What an endpoint error means, in words ZeroMQ's own text ("No such
/// device", "Invalid argument") leaves out: " (" + the explanation + ")",
/// or "" for an error it has nothing to add to.
inline std::string explain_endpoint_error(const std::string& endpoint, int err, bool binding) {
  const bool tcp = endpoint.rfind("tcp://", 0) == 0;
  if ((err == ENODEV || err == EADDRNOTAVAIL) && tcp)
    return " (the host part is not an IP address or network interface of this machine; bind to one of its "
           "addresses, an interface name such as eth0, 127.0.0.1 for this machine only, or * for all)";
  if (err == EINVAL)
    return std::string(" (not a valid endpoint: expected tcp://HOST:PORT") + (binding ? " (PORT a number or *)" : "") +
           ", ipc://PATH or inproc://NAME)";
  if (err == EPROTONOSUPPORT || err == ENOCOMPATPROTO)
    return " (transport not supported here: use tcp://, ipc:// or inproc://)";
  if (err == EADDRINUSE) return " (another socket is bound to this endpoint already)";
  if (err == ENOENT && endpoint.rfind("ipc://", 0) == 0) return " (the directory of the ipc:// path does not exist)";
  if (err == EACCES) return " (permission denied: a port below 1024, or an ipc:// path not writable)";
  return "";
}

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
  /// Takes over `other`'s socket; `other` holds none. Never allocates.
  Socket(Socket&& other) noexcept
      : socket_(std::exchange(other.socket_, nullptr)), ipc_files_(std::move(other.ipc_files_)) {}
  /// Closes this socket (as the destructor does), then takes over `other`'s.
  Socket& operator=(Socket&& other) noexcept {
    if (this != &other) {
      close();
      socket_ = std::exchange(other.socket_, nullptr);
      ipc_files_ = std::move(other.ipc_files_);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  /// The zmq socket handle.
  void* handle() const noexcept { return socket_; }

  /// zmq_bind; throws zmq_error naming the endpoint, ZeroMQ's reason and
  /// what it means. The socket file of an ipc:// endpoint is removed when
  /// this socket is closed (libzmq leaves it behind).
  void bind(const std::string& endpoint) {
    if (::zmq_bind(socket_, endpoint.c_str()) != 0) {
      const int err = errno;
      throw zmq_error("zmq_bind(" + endpoint + ")", err, explain_endpoint_error(endpoint, err, true));
    }
    if (endpoint.rfind("ipc://", 0) == 0 && endpoint.size() > 6 && endpoint[6] != '@' && endpoint != "ipc://*")
      ipc_files_.push_back(endpoint.substr(6));
  }
  /// zmq_connect; throws zmq_error naming the endpoint and ZeroMQ's reason
  /// (connecting is asynchronous: an absent peer is not an error).
  void connect(const std::string& endpoint) {
    if (::zmq_connect(socket_, endpoint.c_str()) != 0) {
      const int err = errno;
      throw zmq_error("zmq_connect(" + endpoint + ")", err, explain_endpoint_error(endpoint, err, false));
    }
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
  /// zmq_setsockopt for a 64-bit option (ZMQ_MAXMSGSIZE); throws zmq_error.
  void set_int64(int option, std::int64_t value) {
    if (::zmq_setsockopt(socket_, option, &value, sizeof value) != 0)
      throw zmq_error("zmq_setsockopt(option " + std::to_string(option) + ", " + std::to_string(value) + ")", errno);
  }
  /// zmq_setsockopt for a bytes option (e.g. ZMQ_SUBSCRIBE); throws zmq_error.
  void set(int option, std::span<const std::byte> value) {
    if (::zmq_setsockopt(socket_, option, value.data(), value.size()) != 0)
      throw zmq_error("zmq_setsockopt(option " + std::to_string(option) + ")", errno);
  }
  /// zmq_close now (its queued messages are sent or dropped per ZMQ_LINGER,
  /// by libzmq's threads), and removes the socket files of the ipc://
  /// endpoints it bound. Idempotent.
  void close() noexcept {
    if (socket_ != nullptr) ::zmq_close(socket_);
    socket_ = nullptr;
    for (const std::string& path : ipc_files_) (void)::unlink(path.c_str());
    ipc_files_.clear();
  }

 private:
  void* socket_;
  std::vector<std::string> ipc_files_;  // socket files this socket created (bind ipc://PATH)
};

/// How fast a dead or stalled peer is noticed and its connection dropped,
/// so that the frames queued for it (and their pool buffers) come back
/// within seconds instead of when the OS gives up on the TCP connection
/// (hours with Linux's defaults).
struct Liveness {
  int heartbeat_ms = 1000;  ///< ZMQ_HEARTBEAT_IVL: a ZMTP PING this often (0: no ZMTP heartbeats)
  int timeout_ms = 3000;    ///< ZMQ_HEARTBEAT_TIMEOUT: no traffic for this long after a PING: disconnect
  int ttl_ms = 3000;        ///< ZMQ_HEARTBEAT_TTL: the peer may drop us after this long without a PING
  int keepalive_idle_s = 5;   ///< ZMQ_TCP_KEEPALIVE_IDLE: TCP probes after this long idle (a vanished host)
  int keepalive_interval_s = 2;  ///< ZMQ_TCP_KEEPALIVE_INTVL
  int keepalive_count = 3;       ///< ZMQ_TCP_KEEPALIVE_CNT: probes unanswered before the connection is dropped
};

/// Turns on ZMTP heartbeats and TCP keepalive on `socket` (before bind or
/// connect): for the sending side. A peer that stops reading (SIGSTOP, a hung process) answers no
/// PING: after timeout_ms libzmq drops the connection and releases what it
/// queued for it; a connecting peer reconnects by itself when it comes back.
/// Throws zmq_error.
///
/// heartbeat_ms 0: TCP keepalive only. That is what a *receiving* socket
/// should use with libzmq 4.3.4: a receiver that reads slower than frames
/// arrive stops reading its connection (its pipe is full), misses the
/// sender's PONGs, times its own connection out, and libzmq then aborts
/// the process on `Assertion failed: !_io_error
/// (src/stream_engine_base.cpp:331)` when the input restarts (seen in
/// zmq_stream_push_drop). Senders (PUSH, PUB) never stop reading theirs.
inline void set_liveness(Socket& socket, const Liveness& l = {}) {
  if (l.heartbeat_ms > 0) {
    socket.set(ZMQ_HEARTBEAT_IVL, l.heartbeat_ms);
    socket.set(ZMQ_HEARTBEAT_TIMEOUT, l.timeout_ms);
    socket.set(ZMQ_HEARTBEAT_TTL, l.ttl_ms);
  }
  socket.set(ZMQ_TCP_KEEPALIVE, 1);
  socket.set(ZMQ_TCP_KEEPALIVE_IDLE, l.keepalive_idle_s);
  socket.set(ZMQ_TCP_KEEPALIVE_INTVL, l.keepalive_interval_s);
  socket.set(ZMQ_TCP_KEEPALIVE_CNT, l.keepalive_count);
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq
