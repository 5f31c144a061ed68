// daq_pool/zmq/receiver.hpp: receiving frames of the wire format
// (zmq/wire.hpp) in place, checked: Message, ReceivedFrame, receive_frame.
// Part of the daq_pool::zmq integration (needs libzmq).
#pragma once

#include <zmq.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>

#include "daq_pool/detail/abi.hpp"
#include "daq_pool/zmq/wire.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq {

/// What a receiver should set as ZMQ_MAXMSGSIZE when it expects payloads
/// of at most `max_payload` bytes: without it, a peer's length prefix makes
/// libzmq allocate up to 2^63 bytes before anything is checked. libzmq
/// applies the limit to each part as the ZMTP decoder sees it, which with
/// CURVE is the encrypted MESSAGE command: the part plus 33 bytes (8 command
/// name, 8 nonce, 16 MAC, 1 flags); 64 covers that. A bigger part makes
/// libzmq drop the connection (the sender's monitor sees it disconnect; the
/// receiver sees nothing arrive). Never allocates.
inline std::int64_t max_message_bytes(std::uint64_t max_payload) noexcept {
  const std::uint64_t largest = max_payload > wire_header_bytes ? max_payload : wire_header_bytes;
  return static_cast<std::int64_t>(largest + 64);
}

/// Owns a zmq_msg_t: initialized empty, closed on destruction (which frees
/// libzmq's memory for it, or, over inproc, runs the sender's free
/// function). Move-only. Not thread-safe.
class Message {
 public:
  /// An empty message. Never allocates.
  Message() noexcept { ::zmq_msg_init(&msg_); }
  /// Takes over `other`'s message (zmq_msg_move); `other` becomes empty. Never allocates.
  Message(Message&& other) noexcept {
    ::zmq_msg_init(&msg_);
    ::zmq_msg_move(&msg_, &other.msg_);
  }
  /// Closes this message, then takes over `other`'s. Never allocates.
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
  WireHeader header;        ///< the frame's decoded header
  Message payload_message;  ///< the payload, in libzmq's memory (no copy)

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
  ReceiveStatus status = ReceiveStatus::received;  ///< what happened
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
