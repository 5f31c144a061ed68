// daq_pool/zmq/sender.hpp: zero-copy sends of Bytes views (send_view) and
// the framed stream's sender (FrameSender). Part of the daq_pool::zmq
// integration (needs libzmq).
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
// BufferPoolOptions::zero_on_release scrubs the buffer there), two
// process-wide counters and, for a FrameSender's frames, the frame's slot of
// the sender's budget (the last free function after the sender is gone
// deletes the budget's block: the one free it may make); it never
// allocates, blocks or calls into libzmq.
#pragma once

#include <zmq.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "daq_pool/bytes.hpp"
#include "daq_pool/zmq/detail/budget.hpp"
#include "daq_pool/zmq/wire.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq {

/// What became of a send.
enum class SendStatus {
  sent,         ///< ZeroMQ took the frame; its view is released when ZeroMQ is done
  dropped,      ///< ZeroMQ took it and dropped it before returning (PUB with no
                ///< subscriber or all at their high-water mark; PUSH peer gone
                ///< mid-message): nobody receives it; its view is already released
  would_block,  ///< EAGAIN: not taken (ZMQ_DONTWAIT, or ZMQ_SNDTIMEO expired); the view is the caller's
  failed,       ///< another error (see SendOutcome::error); the view is the caller's
  over_budget,  ///< not taken: ZeroMQ already holds the sender's budget of frames
                ///< (FrameSender's `budget`); the view is the caller's
};

/// The result of a send: a status and, for would_block / failed, the errno
/// value (zmq_strerror(error) explains it).
struct SendOutcome {
  SendStatus status = SendStatus::sent;  ///< what happened to the frame
  int error = 0;                         ///< errno for would_block / failed, else 0
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

/// libzmq's free function for a budgeted message: `hint` is its BudgetSlot.
inline void release_budgeted_view(void* data, void* hint) noexcept {
  auto* slot = static_cast<BudgetSlot*>(hint);
  if (SendInProgress* s = send_in_progress; s != nullptr && s->raw == hint) s->released = true;
  // acquire: as in release_sent_view, before reading what the sender wrote
  // into the slot.
  (void)ledger.handed_over.load(std::memory_order_acquire);
  BudgetBlock::release(*slot, [data](void* raw) noexcept { release_sent_view(data, raw); });
}

/// A zero-copy message made from a view; gives the view back if the send
/// fails. Not thread-safe; never allocates on daq_pool's side (libzmq
/// allocates its content_t, 40 bytes, in zmq_msg_init_data).
class OutgoingView {
 public:
  /// init()'s result when `budget` has no free slot (view untouched).
  static constexpr int over_budget = -1;

  /// Moves `view`'s reference into the message, taking a slot of `budget`
  /// if there is one. Returns 0; over_budget; or the errno value if libzmq
  /// could not make the message (then `view` is untouched).
  int init(Bytes& view, BudgetBlock* budget = nullptr) noexcept {
    data_ = view.data();
    size_ = view.size();
    if (view.empty()) {
      // Nothing to lend: an empty inline part (no free function, no allocation).
      raw_ = hint_ = nullptr;
      ::zmq_msg_init(&msg_);
      live_ = true;
      return 0;
    }
    BudgetSlot* slot = nullptr;
    if (budget != nullptr && (slot = budget->claim()) == nullptr) return over_budget;
    raw_ = std::move(view).into_raw();
    hint_ = raw_;
    zmq_free_fn* free_fn = &release_sent_view;
    if (slot != nullptr) {
      slot->set_view(raw_);
      hint_ = slot;
      free_fn = &release_budgeted_view;
    }
    // const_cast: libzmq never writes into a message it sends.
    if (::zmq_msg_init_data(&msg_, const_cast<std::byte*>(data_), size_, free_fn, hint_) != 0) {
      const int err = errno;  // ENOMEM: libzmq's control block; the free function was not registered
      view = Bytes::from_raw(raw_, {data_, size_});
      if (slot != nullptr) budget->unclaim(*slot);
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
    SendInProgress watch{hint_, false};
    send_in_progress = hint_ != nullptr ? &watch : nullptr;
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
  void* raw_ = nullptr;   // the view's handle
  void* hint_ = nullptr;  // the free function's hint: raw_, or its BudgetSlot
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
  std::uint64_t over_budget = 0;     ///< sends refused: ZeroMQ held the whole budget (view kept by the caller)
  std::uint64_t payload_bytes_sent = 0;  ///< payload bytes of the frames sent
  std::uint64_t held = 0;            ///< frames ZeroMQ holds now (queued or being written)
  std::uint64_t budget = 0;          ///< the most it may hold
};

/// Sends frames: a 32-byte header part, then the payload view zero-copy. One
/// frame is one ZeroMQ message, so it arrives whole or not at all. Works
/// with any socket that sends (PUSH, PUB, DEALER, PAIR...).
///
/// Not thread-safe: one thread sends (like the socket); stats() may be
/// called from any thread. Never allocates on daq_pool's side.
class FrameSender {
 public:
  /// The budget when none is given: frames ZeroMQ may hold at once.
  static constexpr std::size_t default_budget = 64;

  /// Sends on `socket` (not owned; it must outlive the sends), with
  /// payload checksums of `kind`, letting ZeroMQ hold at most `budget`
  /// (>= 1) frames at once across all its peers: queued in its pipes, being
  /// written, or waiting out the linger. Each of them keeps a pool buffer
  /// out; a send beyond it returns over_budget without queueing. Size it
  /// below what the pool can spare: e.g. a third of the pool. Allocates the
  /// budget's slots (24 bytes each) once; throws std::invalid_argument for 0.
  explicit FrameSender(void* socket, Checksum kind = Checksum::sampled, std::size_t budget = default_budget)
      : socket_(socket), kind_(kind), budget_(detail::BudgetBlock::make(budget)) {}
  FrameSender(const FrameSender&) = delete;
  FrameSender& operator=(const FrameSender&) = delete;
  /// The frames still in flight keep the budget's block alive; the last
  /// free function deletes it.
  ~FrameSender() { budget_->release_owner(); }

  /// Frames ZeroMQ holds now for this sender. Thread-safe; never allocates.
  std::uint64_t held() const noexcept { return budget_->held_now(); }

  /// Sets or clears flag_shared_numbering on the frames sent from now on:
  /// set it while a PUSH socket has more than one peer (see zmq/wire.hpp).
  /// Not thread-safe (the sending thread calls it).
  void set_shared_numbering(bool shared) noexcept { shared_ = shared; }

  /// Waits until ZeroMQ has released every frame of this sender, or
  /// `timeout` passed; returns how many it still holds. Call before closing
  /// the socket with ZMQ_LINGER 0: what is still held then is discarded by
  /// the close, so its count is what the close lost (a frame whose last
  /// bytes are being written at that instant is counted lost too: an upper
  /// bound by at most one frame per peer). When it returns 0, close with a
  /// positive linger instead: nothing of the pool can be lost any more, but
  /// what libzmq still queues (the end of stream, CURVE's encrypted copies
  /// of frames it has released) is only sent if the close waits for it.
  /// Polls every millisecond.
  std::uint64_t drain(std::chrono::milliseconds timeout) const {
    using clock = std::chrono::steady_clock;
    return budget_->drain<clock>(clock::now() + timeout,
                                 [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
  }

  /// Sends `payload` as frame `frame_number`, stamped `timestamp_ns` (see
  /// WireHeader). `flags`: ZMQ_DONTWAIT, or 0 to wait as ZMQ_SNDTIMEO says.
  /// On sent / dropped, `payload` becomes empty (ZeroMQ owns the view); on
  /// would_block / failed / over_budget it is unchanged and nothing was queued. Throws
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
    h.flags = shared_ ? flag_shared_numbering : std::uint16_t{0};
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
    SenderStats st;
    st.frames_sent = sent_.load(std::memory_order_relaxed);
    st.frames_dropped = dropped_.load(std::memory_order_relaxed);
    st.would_block = would_block_.load(std::memory_order_relaxed);
    st.failures = failures_.load(std::memory_order_relaxed);
    st.over_budget = over_budget_.load(std::memory_order_relaxed);
    st.payload_bytes_sent = bytes_.load(std::memory_order_relaxed);
    st.held = held();
    st.budget = budget_->size;
    return st;
  }

  /// The socket frames go to.
  void* socket() const noexcept { return socket_; }

 private:
  SendOutcome send_message(const WireHeader& h, Bytes& payload, int flags) noexcept {
    // The payload message first: if libzmq can't make it, nothing is sent
    // (a header sent alone would glue itself to the next frame).
    detail::OutgoingView body;
    // The end of stream carries no view: it needs no slot.
    if (const int err = body.init(payload, payload.empty() ? nullptr : budget_); err != 0)
      return {err == detail::OutgoingView::over_budget ? SendStatus::over_budget : SendStatus::failed, err};
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
      case SendStatus::over_budget:
        over_budget_.fetch_add(1, std::memory_order_relaxed);
        break;
    }
    return out;
  }

  void* socket_;
  Checksum kind_;
  detail::BudgetBlock* budget_;  // shared with the frames in flight (refs)
  bool shared_ = false;
  std::atomic<std::uint64_t> sent_{0}, dropped_{0}, would_block_{0}, failures_{0}, over_budget_{0}, bytes_{0};
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq
