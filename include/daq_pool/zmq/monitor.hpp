// daq_pool/zmq/monitor.hpp: what happens to a socket's connections, read
// without a thread: SocketMonitor (zmq_socket_monitor over an inproc PAIR,
// polled by the socket's own thread), the peers it has (PeerSet), and a
// sentence for each handshake failure, so that a refused receiver and the
// sender say why ("the sender refused this client's key") instead of
// waiting in silence. Part of the daq_pool::zmq integration (needs libzmq).
#pragma once

#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "daq_pool/detail/abi.hpp"
#include "daq_pool/zmq/socket.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq {

/// One event of a monitored socket (see zmq_socket_monitor(3)).
struct SocketEvent {
  int event = 0;             ///< ZMQ_EVENT_*
  std::uint32_t value = 0;   ///< the fd, an errno value, a ZMQ_PROTOCOL_ERROR_* or a ZAP status code
  std::string endpoint;      ///< the endpoint it concerns
};

/// The events SocketMonitor asks for by default: connections made and lost,
/// handshakes passed and failed.
inline constexpr int monitored_events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                                        ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

/// True for the three handshake failures.
inline bool is_handshake_failure(int event) noexcept {
  return event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL || event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
         event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
}

/// A sentence for a handshake failure, from the point of view of `side`
/// ("sender" or "receiver"), naming the likely cause and the fix.
inline std::string describe_handshake_failure(const SocketEvent& e, bool i_am_receiver) {
  const std::string peer = i_am_receiver ? "the sender" : "a receiver";
  if (e.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
    if (i_am_receiver)
      return "the sender at " + e.endpoint + " refused this receiver's CURVE key (ZAP status " +
             std::to_string(e.value) + "): its public key is not in the sender's allow-list";
    return "refused a receiver at " + e.endpoint + " (ZAP status " + std::to_string(e.value) +
           "): its CURVE key is not in the allow-list";
  }
  if (e.event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    switch (e.value) {
      case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "handshake with " + peer + " at " + e.endpoint +
               " failed: security mismatch (one side uses CURVE, the other plain TCP; give both the keys, or "
               "neither)";
      case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
      case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
        return "handshake with " + peer + " at " + e.endpoint +
               " failed: CURVE key exchange failed (" +
               (i_am_receiver ? std::string("is the sender's public key the right one?")
                              : std::string("the receiver holds another server key")) +
               ")";
      default: {
        char code[16];
        std::snprintf(code, sizeof code, "0x%08x", static_cast<unsigned>(e.value));
        return "handshake with " + peer + " at " + e.endpoint + " failed: protocol error " + code +
               " (not a ZeroMQ peer of this version, or a security mismatch)";
      }
    }
  }
  return "handshake with " + peer + " at " + e.endpoint + " failed: " + ::zmq_strerror(static_cast<int>(e.value));
}

/// Watches one socket's connections: zmq_socket_monitor publishes its events
/// on an inproc PAIR that this object reads, without blocking, from the
/// thread that uses the watched socket (poll()). No thread of its own.
/// Destroy it before the context; the watched socket may close first.
/// Not thread-safe (like a socket).
class SocketMonitor {
 public:
  /// Starts monitoring `watched` (a socket of `context`) for `events`.
  /// Throws zmq_error.
  SocketMonitor(Context& context, Socket& watched, int events = monitored_events) : pair_(context, ZMQ_PAIR) {
    static std::atomic<std::uint64_t> serial{0};
    const std::string endpoint =
        "inproc://daq_pool.monitor." + std::to_string(serial.fetch_add(1, std::memory_order_relaxed));
    if (::zmq_socket_monitor(watched.handle(), endpoint.c_str(), events) != 0)
      throw zmq_error("zmq_socket_monitor(" + endpoint + ")", errno);
    pair_.connect(endpoint);
  }

  /// The next event if one is waiting (never blocks). Not thread-safe.
  bool poll(SocketEvent& out) {
    zmq_msg_t first, second;
    ::zmq_msg_init(&first);
    if (::zmq_msg_recv(&first, pair_.handle(), ZMQ_DONTWAIT) < 0) {
      ::zmq_msg_close(&first);
      return false;
    }
    // Part 1: u16 event, u32 value (host order); part 2: the endpoint.
    const auto* d = static_cast<const unsigned char*>(::zmq_msg_data(&first));
    const bool well_formed = ::zmq_msg_size(&first) >= 6;
    std::uint16_t ev = 0;
    std::uint32_t val = 0;
    if (well_formed) {
      std::memcpy(&ev, d, 2);
      std::memcpy(&val, d + 2, 4);
    }
    const bool more = ::zmq_msg_more(&first) != 0;
    ::zmq_msg_close(&first);
    out = SocketEvent{ev, val, {}};
    if (more) {
      ::zmq_msg_init(&second);
      while (::zmq_msg_recv(&second, pair_.handle(), 0) < 0 && errno == EINTR) {
      }
      out.endpoint.assign(static_cast<const char*>(::zmq_msg_data(&second)), ::zmq_msg_size(&second));
      ::zmq_msg_close(&second);
    }
    return well_formed;
  }

 private:
  Socket pair_;
};

/// The peers of a socket whose handshake passed and that are still there,
/// kept from its SocketMonitor events (by file descriptor). Not thread-safe.
class PeerSet {
 public:
  /// Updates the set with `e`; returns true if the count changed.
  bool update(const SocketEvent& e) {
    const int fd = static_cast<int>(e.value);
    if (e.event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      if (std::find(fds_.begin(), fds_.end(), fd) == fds_.end()) {
        fds_.push_back(fd);
        return true;
      }
    } else if (e.event == ZMQ_EVENT_DISCONNECTED) {
      const auto it = std::find(fds_.begin(), fds_.end(), fd);
      if (it != fds_.end()) {
        fds_.erase(it);
        return true;
      }
    }
    return false;
  }
  /// Peers connected now (as far as the events read so far say).
  std::size_t size() const noexcept { return fds_.size(); }

 private:
  std::vector<int> fds_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq
