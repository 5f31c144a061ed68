// The network consumer of `--publish`: every frame goes out over ZeroMQ,
// zero-copy (daq_pool/zmq.hpp), on its own thread: a block subscriber of the
// pipeline's broadcast by default, next to the writer, the preview and the
// verifier.
//
// What it may hold and lose (docs/zmq.md, "What each mode can lose"):
//   - ZeroMQ holds at most --publish-budget frames (pool buffers) at once,
//     across all receivers (FrameSender's budget);
//   - --publish-full=drop (the default): a frame ZeroMQ has no room for (the
//     budget used up; every PUSH receiver at its high-water mark, or none
//     connected) is dropped here and counted by cause, so the camera never
//     waits for the network; =wait: the send waits, this stage's queue backs
//     up to the pool and --on-exhausted decides;
//   - PUB: ZeroMQ drops a frame no subscriber has room for inside the send
//     (counted "dropped by ZeroMQ"); a frame one subscriber took and another
//     had no room for shows only as that subscriber's gap;
//   - at shutdown, frames ZeroMQ still holds after the linger are discarded
//     by the close: counted "lost at close", not "sent".
// Heartbeats and TCP keepalive (daq_pool::zmq::set_liveness) drop a stalled
// or vanished receiver within seconds, and with it the frames queued for it.
//
// With --publish-key/--publish-allow the socket is a CURVE server: frames
// are encrypted and only the allowed receiver keys are admitted, by a ZAP
// handler (daq_pool::zmq::CurveAuthenticator) on a thread this object owns.
//
// Frames are numbered here, 0, 1, 2... in the order they are offered to
// ZeroMQ (taken or dropped), so a receiver's gaps are exactly the frames it
// did not get. With PUSH and several receivers connected, frames are marked
// flag_shared_numbering (a receiver's jumps are then the others' share),
// and the end of stream goes to every receiver. Compiled only with ZeroMQ
// (FRAME_PIPELINE_HAVE_ZMQ).
#pragma once

#if FRAME_PIPELINE_HAVE_ZMQ

#include "alloc_hook.hpp"
#include "cli.hpp"
#include "stage.hpp"

#include <daq_pool/bytes.hpp>
#include <daq_pool/zmq.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace frame_pipeline {

/// True if a tcp:// endpoint is reachable from this machine only.
inline bool loopback_only(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return true;  // ipc://, inproc://: local
  const std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return host.rfind("127.", 0) == 0 || host == "localhost" || host == "[::1]" || host == "::1" || host == "lo";
}

/// Binds the --publish endpoint and sends the frames it receives.
/// consume() on its thread; stop_soon() from any; close() and the report
/// after that thread was joined.
class Publisher final : public Stage {
 public:
  /// How long a send may wait for ZeroMQ before the loop looks at the stop
  /// flag again (ZMQ_SNDTIMEO).
  static constexpr int send_timeout_ms = 100;
  /// At shutdown, how long frames still queued here may wait for a receiver
  /// before they are given up (counted as unsent).
  static constexpr std::chrono::seconds drain_timeout{2};
  /// At close, how long ZeroMQ may still send what it holds; the rest is
  /// discarded and counted lost at close.
  static constexpr std::chrono::milliseconds linger{1000};
  /// At close, when no frame is held any more: how long the close may wait
  /// for what libzmq still queues without a pool buffer (the end of stream;
  /// under CURVE, the encrypted copies of the last frames, which a slow
  /// subscriber may still be decrypting seconds behind: a TSan-built one
  /// was 2 frames and the end of stream short after 1 s). Only a receiver
  /// that does not read makes a shutdown wait this long.
  static constexpr std::chrono::milliseconds linger_after_drain{5000};
  /// How long an end of stream may wait for room: PUSH, each one; PUB, at
  /// every subscriber before a full one is skipped
  /// (send_end_of_stream_to_subscribers).
  static constexpr std::chrono::milliseconds eos_timeout{2000};

  /// Creates the socket (CURVE server with --publish-key) and binds
  /// `opt.publish`. Throws daq_pool::zmq::zmq_error naming the endpoint and
  /// ZeroMQ's reason, std::runtime_error naming a bad key file.
  Publisher(const Options& opt, std::size_t capacity)
      : capacity_(capacity),
        mode_(opt.publish_mode),
        full_(opt.publish_full),
        hwm_(opt.publish_hwm),
        curve_(!opt.publish_key.empty()),
        auth_(make_authenticator(context_, opt)),
        socket_(context_, opt.publish_mode == PublishMode::push ? ZMQ_PUSH : ZMQ_PUB),
        sender_(socket_.handle(), daq_pool::zmq::Checksum::sampled,
                opt.publish_budget != 0 ? opt.publish_budget : std::max<std::size_t>(1, opt.pool / 3)) {
    socket_.set(ZMQ_SNDHWM, static_cast<int>(opt.publish_hwm));
    socket_.set(ZMQ_SNDTIMEO, send_timeout_ms);
    daq_pool::zmq::set_liveness(socket_);
    if (curve_) {
      daq_pool::zmq::make_curve_server(socket_, daq_pool::zmq::load_certificate(opt.publish_key, true));
    }
    monitor_.emplace(context_, socket_);
    // Before bind: also said when binding fails.
    if (!curve_ && !loopback_only(opt.publish)) {
      std::fprintf(stderr,
                   "frame_pipeline: WARNING: --publish=%s is reachable from other machines WITHOUT AUTHENTICATION "
                   "OR ENCRYPTION: anyone who connects receives every frame. Give --publish-key and "
                   "--publish-allow (CURVE; see docs/zmq.md), or bind 127.0.0.1.\n",
                   opt.publish.c_str());
      std::fflush(stderr);
    }
    socket_.bind(opt.publish);
    endpoint_ = socket_.last_endpoint();
  }

  /// The endpoint bound (the real port for tcp://HOST:*).
  const std::string& endpoint() const noexcept { return endpoint_; }
  /// "CURVE, N receiver keys allowed" or "plain TCP, unauthenticated".
  std::string security() const {
    return curve_ ? "CURVE, " + std::to_string(allowed_) + " receiver keys allowed" : "plain, unauthenticated";
  }
  /// Frames ZeroMQ may hold at once.
  std::uint64_t budget() const noexcept { return sender_.stats().budget; }

  const char* name() const noexcept override { return "publisher"; }
  daq_pool::SubscriberOptions subscription() const override {
    daq_pool::SubscriberOptions o;
    o.on_full = daq_pool::OnFull::block;
    o.capacity = capacity_;
    return o;
  }

  /// Sends one frame. Allocation-free on daq_pool's side; libzmq's
  /// allocations (its message control block, one per frame) are counted
  /// apart by alloc_hook.
  void consume(daq_pool::Received& received) override {
    daq_pool::Bytes frame = received.bytes();
    received.reset();
    {
      const alloc_hook::Library in_libzmq;  // monitor events are libzmq messages
      watch_connections();
    }
    send_one(frame);  // ours is dropped at the end; ZeroMQ's, if it took the frame, lives on
  }

  /// The pipeline is stopping: after drain_timeout, stop waiting for a
  /// receiver. Thread-safe.
  void stop_soon() noexcept override {
    give_up_at_ns_.store(
        Clock::now().time_since_epoch().count() + std::chrono::duration_cast<Clock::duration>(drain_timeout).count(),
        std::memory_order_relaxed);
  }

  /// After the stage's thread was joined: sends the end of stream (PUSH: one
  /// per connected receiver, so each of them stops, after the frames have
  /// gone out), lets ZeroMQ send what it holds for up to `linger`, counts
  /// what is left as lost at close and
  /// closes with linger 0 (so that count is exact; with nothing left, with
  /// linger_after_drain, so queued bytes still go out), stops the ZAP handler,
  /// terminates the context (every free function has run when it returns)
  /// and counts the views ZeroMQ still holds: 0, or a buffer was lost.
  void close() override {
    {
      const alloc_hook::Library in_libzmq;
      watch_connections();
      if (mode_ == PublishMode::push) {
        // The frames first: once ZeroMQ holds none, every receiver is
        // reading and has room, and each end of stream may wait up to
        // eos_timeout for it (a receiver a full queue behind on a loaded
        // machine still gets it). Frames still held after `linger`: a
        // receiver is stalled; its end of stream gets the frames' 100 ms,
        // so a shutdown is not held up (nor outlasted by the heartbeat,
        // which would give the held frames back uncounted).
        const bool drained = sender_.drain(linger) == 0;
        socket_.set(ZMQ_SNDTIMEO, drained ? static_cast<int>(eos_timeout.count()) : send_timeout_ms);
        for (std::size_t i = 0; i < std::max<std::size_t>(1, peers_.size()); ++i) {
          if (sender_.send_end_of_stream(next_number_).taken()) ++eos_sent_;
        }
        socket_.set(ZMQ_SNDTIMEO, send_timeout_ms);
        lost_at_close_ = sender_.held();
      } else {
        send_end_of_stream_to_subscribers();
        lost_at_close_ = sender_.drain(linger);
      }
      // Frames still held: linger 0, so that count is exact. None: the
      // close may wait (up to linger_after_drain) for what libzmq still queues
      // without a pool buffer, the end of stream and, under CURVE, the
      // encrypted copies of the last frames, or a receiver would miss them.
      socket_.set(ZMQ_LINGER, lost_at_close_ == 0 ? static_cast<int>(linger_after_drain.count()) : 0);
      socket_.close();
      monitor_.reset();
      if (auth_) {
        zap_ = auth_->counts();
        auth_->stop();
      }
      context_.terminate();
    }
    held_after_close_ = daq_pool::zmq::zero_copy_counts().held();
  }

  std::string text(const daq_pool::SubscriberStats&) const override {
    return text(alloc_hook::library(), alloc_hook::enabled);
  }
  std::string json(const daq_pool::SubscriberStats&) const override {
    return "\"publish\": " + json(json_string, alloc_hook::library(), alloc_hook::enabled);
  }
  std::string error() const override { return failed() ? "publishing lost a buffer or a send failed" : ""; }

  /// Frames handed to the wire and not discarded: taken by ZeroMQ, minus
  /// those a close discarded.
  std::uint64_t delivered_to_wire() const noexcept {
    const std::uint64_t sent = sender_.stats().frames_sent;
    return sent > lost_at_close_ ? sent - lost_at_close_ : 0;
  }

  /// The summary's lines about the network.
  std::string text(std::uint64_t library_allocs, bool allocs_counted) const {
    const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    const daq_pool::zmq::SenderStats st = sender_.stats();
    char buf[2048];
    int n = std::snprintf(
        buf, sizeof buf,
        "  published            %llu frames sent  (%s on %s, %s; high-water mark %llu, budget %llu)\n"
        "  published, not sent  %llu dropped: no room (budget full %llu, receivers full or none %llu), "
        "%llu dropped by ZeroMQ (PUB, no subscriber with room), %llu lost at close, %llu unsent at shutdown\n"
        "  published buffers    %llu views still held by ZeroMQ after close; most receivers at once %llu; "
        "sends waited out %llu times (%d ms each); end of stream sent %llu time(s)\n",
        u(delivered_to_wire()), to_string(mode_), endpoint_.c_str(), security().c_str(), u(hwm_), u(st.budget),
        u(dropped_budget_ + dropped_no_room_), u(dropped_budget_), u(dropped_no_room_), u(st.frames_dropped),
        u(lost_at_close_), u(unsent_), u(held_after_close_), u(max_peers_), u(waits_), send_timeout_ms,
        u(eos_sent_));
    std::string out(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    if (curve_ || handshake_failures_ != 0) {
      n = std::snprintf(buf, sizeof buf,
                        "  published security   %llu receiver(s) admitted, %llu refused by the allow-list, %llu "
                        "handshakes failed\n",
                        u(zap_.accepted), u(zap_.refused), u(handshake_failures_));
      out.append(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    if (allocs_counted) {
      n = std::snprintf(buf, sizeof buf,
                        "  ZeroMQ allocations   %llu  (its own: a message block per frame, connections; not on "
                        "daq_pool's hot path)\n",
                        u(library_allocs));
      out.append(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    }
    if (error_ != 0) out += std::string("  published ERROR      ") + ::zmq_strerror(error_) + "\n";
    return out;
  }

  /// True if the network lost a buffer (a view still held after close) or a
  /// send failed for another reason than a full high-water mark.
  bool failed() const noexcept { return held_after_close_ != 0 || error_ != 0; }

  /// The summary's "publish" JSON object; `quote` makes a JSON string literal.
  /// frames_offered = frames_sent + frames_dropped_no_room +
  /// frames_dropped_by_transport + frames_lost_at_close + unsent_at_shutdown.
  std::string json(std::string (*quote)(const std::string&), std::uint64_t library_allocs, bool allocs_counted) const {
    const daq_pool::zmq::SenderStats st = sender_.stats();
    const auto u = [](std::uint64_t v) { return std::to_string(v); };
    std::string o = "{\"endpoint\": " + quote(endpoint_) + ", \"mode\": \"" + to_string(mode_) +
                    "\", \"security\": \"" + (curve_ ? "curve" : "plain") + "\", \"hwm\": " + u(hwm_) +
                    ", \"budget\": " + u(st.budget) + ", \"full\": \"" +
                    (full_ == PublishFull::drop ? "drop" : "wait") + "\", \"frames_offered\": " + u(offered_) +
                    ", \"frames_sent\": " + u(delivered_to_wire()) +
                    ", \"frames_dropped_no_room\": " + u(dropped_budget_ + dropped_no_room_) +
                    ", \"dropped_budget_full\": " + u(dropped_budget_) +
                    ", \"dropped_receivers_full\": " + u(dropped_no_room_) +
                    ", \"frames_dropped_by_transport\": " + u(st.frames_dropped) +
                    ", \"frames_lost_at_close\": " + u(lost_at_close_) + ", \"unsent_at_shutdown\": " + u(unsent_) +
                    ", \"send_waits\": " + u(waits_) + ", \"views_held_after_close\": " + u(held_after_close_) +
                    ", \"max_receivers\": " + u(max_peers_) + ", \"end_of_stream_sent\": " + u(eos_sent_) +
                    ", \"zap_accepted\": " + u(zap_.accepted) + ", \"zap_refused\": " + u(zap_.refused) +
                    ", \"handshake_failures\": " + u(handshake_failures_) +
                    ", \"zmq_allocations\": " + (allocs_counted ? u(library_allocs) : std::string("null")) +
                    ", \"error\": " + (error_ != 0 ? quote(::zmq_strerror(error_)) : std::string("null")) + "}";
    return o;
  }

 private:
  /// PUB: a PUB socket silently drops a message for a subscriber whose
  /// queue is full, and a slow subscriber (behind by its high-water mark)
  /// would then never see the end of stream and wait for its idle timeout.
  /// With ZMQ_XPUB_NODROP the end of stream waits (up to eos_timeout) until
  /// every subscriber has room; one that makes none (stopped, or stalled
  /// past the timeout) is then skipped like a frame would be, so the others
  /// still get it.
  void send_end_of_stream_to_subscribers() {
    socket_.set(ZMQ_XPUB_NODROP, 1);
    socket_.set(ZMQ_SNDTIMEO, static_cast<int>(eos_timeout.count()));
    bool taken = sender_.send_end_of_stream(next_number_).taken();
    socket_.set(ZMQ_XPUB_NODROP, 0);
    socket_.set(ZMQ_SNDTIMEO, send_timeout_ms);
    if (!taken) taken = sender_.send_end_of_stream(next_number_).taken();
    if (taken) ++eos_sent_;
  }

  using Clock = std::chrono::steady_clock;

  /// The ZAP handler for --publish-allow (before the socket exists: the
  /// first handshake must find it), or none for plain TCP.
  std::unique_ptr<daq_pool::zmq::CurveAuthenticator> make_authenticator(daq_pool::zmq::Context& ctx,
                                                                        const Options& opt) {
    if (opt.publish_key.empty()) return nullptr;
    if (!daq_pool::zmq::curve_available())
      throw std::runtime_error("--publish-key: this libzmq was built without CURVE (zmq_has(\"curve\") is false)");
    std::vector<std::string> keys;
    try {
      keys = daq_pool::zmq::load_allowed_keys(opt.publish_allow);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("--publish-allow: ") + e.what());
    }
    allowed_ = keys.size();
    // The ZAP handler's thread is the library's: what it allocates (each
    // handshake's request) is counted apart, like libzmq's own threads.
    alloc_hook::classify_threads.store(true);
    // Runs on the ZAP handler's thread; it owns what it touches (the
    // counter below is a static).
    return std::make_unique<daq_pool::zmq::CurveAuthenticator>(ctx, std::move(keys), [](const daq_pool::zmq::ZapDecision& d) {
      static std::atomic<int> printed{0};
      if (d.accepted) return;
      const int k = printed.fetch_add(1, std::memory_order_relaxed);
      if (k < 5) {
        std::fprintf(stderr, "frame_pipeline: --publish: refused a receiver at %s: %s%s%s\n", d.address.c_str(),
                     d.mechanism == "CURVE" ? "its CURVE key " : "mechanism ", 
                     d.mechanism == "CURVE" ? d.client_key.c_str() : d.mechanism.c_str(),
                     d.mechanism == "CURVE" ? " is not in --publish-allow" : " is not allowed");
      } else if (k == 5) {
        std::fprintf(stderr, "frame_pipeline: --publish: further refusals are counted in the summary\n");
      }
    });
  }

  /// Reads the socket's connection events: receivers connected (for the
  /// shared-numbering flag and the end of stream) and handshake failures
  /// (a receiver without CURVE against CURVE, or the other way round).
  void watch_connections() {
    if (!monitor_) return;
    for (daq_pool::zmq::SocketEvent e; monitor_->poll(e);) {
      if (peers_.update(e)) max_peers_ = std::max<std::uint64_t>(max_peers_, peers_.size());
      if (daq_pool::zmq::is_handshake_failure(e.event) && e.event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        if (handshake_failures_++ < 5)
          std::fprintf(stderr, "frame_pipeline: --publish: %s\n",
                       daq_pool::zmq::describe_handshake_failure(e, false).c_str());
      }
    }
    sender_.set_shared_numbering(mode_ == PublishMode::push && peers_.size() > 1);
  }

  void send_one(daq_pool::Bytes& frame) {
    ++offered_;
    const int flags = full_ == PublishFull::drop ? ZMQ_DONTWAIT : 0;
    while (!gave_up_) {
      daq_pool::zmq::SendOutcome out;
      {
        const alloc_hook::Library in_libzmq;  // zmq_msg_init_data allocates libzmq's control block
        out = sender_.send(frame, next_number_, daq_pool::zmq::now_ns(), flags);
      }
      if (out.taken()) {
        ++next_number_;
        return;
      }
      if (out.status == daq_pool::zmq::SendStatus::failed) {
        if (error_ == 0) error_ = out.error;
        break;
      }
      if (full_ == PublishFull::drop) {
        // No room: the frame is not sent, and its number is used up, so a
        // receiver sees the gap; counted here by cause.
        ++(out.status == daq_pool::zmq::SendStatus::over_budget ? dropped_budget_ : dropped_no_room_);
        ++next_number_;
        return;
      }
      // wait: ZMQ_SNDTIMEO passed with the high-water mark full (or, for
      // PUSH, no receiver connected), or the budget is used up. Wait on,
      // unless stopping for long.
      ++waits_;
      if (out.status == daq_pool::zmq::SendStatus::over_budget)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const std::int64_t give_up = give_up_at_ns_.load(std::memory_order_relaxed);
      if (give_up != 0 && Clock::now().time_since_epoch().count() >= give_up) gave_up_ = true;
    }
    ++unsent_;
  }

  std::size_t capacity_;
  PublishMode mode_;
  PublishFull full_;
  std::uint64_t hwm_;
  bool curve_;
  std::size_t allowed_ = 0;
  daq_pool::zmq::Context context_;  // first: destroyed last, after the socket
  // Before the socket: it must answer the first handshake, and outlive the
  // socket (without it libzmq would admit any key).
  std::unique_ptr<daq_pool::zmq::CurveAuthenticator> auth_;
  daq_pool::zmq::Socket socket_;
  std::optional<daq_pool::zmq::SocketMonitor> monitor_;
  daq_pool::zmq::FrameSender sender_;
  daq_pool::zmq::PeerSet peers_;
  std::string endpoint_;
  std::atomic<std::int64_t> give_up_at_ns_{0};  // steady_clock ticks; 0: not stopping
  // Written by the publisher thread, read after it is joined.
  std::uint64_t next_number_ = 0, offered_ = 0, unsent_ = 0, waits_ = 0;
  std::uint64_t dropped_budget_ = 0, dropped_no_room_ = 0, lost_at_close_ = 0, eos_sent_ = 0;
  std::uint64_t max_peers_ = 0, handshake_failures_ = 0;
  std::uint64_t held_after_close_ = 0;
  daq_pool::zmq::ZapCounts zap_;
  int error_ = 0;
  bool gave_up_ = false;
};

}  // namespace frame_pipeline

#endif  // FRAME_PIPELINE_HAVE_ZMQ
