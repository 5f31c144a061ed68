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

#include "daq_pool/detail/abi.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq {

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
  /// by libzmq's threads). Idempotent.
  void close() noexcept {
    if (socket_ != nullptr) ::zmq_close(socket_);
    socket_ = nullptr;
  }

 private:
  void* socket_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq
