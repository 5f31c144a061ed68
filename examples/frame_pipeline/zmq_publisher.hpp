// The network consumer of `--publish`: every frame goes out over ZeroMQ,
// zero-copy (daq_pool/zmq.hpp), on its own thread: a block subscriber of the
// pipeline's broadcast by default, next to the writer, the preview and the
// verifier.
//
//   PUSH: a blocking send. A slow or absent receiver fills ZeroMQ's
//         high-water mark, the send waits, this consumer's queue backs up,
//         its views keep pool buffers out, and the acquisition thread's
//         --on-exhausted policy decides (drop, fallback, block).
//   PUB:  ZeroMQ drops a frame no subscriber has room for, inside the send;
//         its free function still runs there, so the buffer comes back.
//
// Frames are numbered here, 0, 1, 2... in the order they are offered to
// ZeroMQ (taken or dropped), so a receiver's gaps are exactly what the
// network lost. Compiled only with ZeroMQ (FRAME_PIPELINE_HAVE_ZMQ).
#pragma once

#if FRAME_PIPELINE_HAVE_ZMQ

#include "alloc_hook.hpp"
#include "cli.hpp"
#include "stage.hpp"

#include <daq_pool/bytes.hpp>
#include <daq_pool/zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace frame_pipeline {

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
  /// ZMQ_LINGER: how long closing may still send what ZeroMQ queued.
  static constexpr std::chrono::milliseconds linger{1000};

  /// Creates the socket and binds `opt.publish`. Throws
  /// daq_pool::zmq::zmq_error naming the endpoint and ZeroMQ's reason.
  Publisher(const Options& opt, std::size_t capacity)
      : capacity_(capacity),
        mode_(opt.publish_mode),
        hwm_(opt.publish_hwm),
        socket_(context_, opt.publish_mode == PublishMode::push ? ZMQ_PUSH : ZMQ_PUB, linger),
        sender_(socket_.handle()) {
    socket_.set(ZMQ_SNDHWM, static_cast<int>(opt.publish_hwm));
    socket_.set(ZMQ_SNDTIMEO, send_timeout_ms);
    socket_.bind(opt.publish);
    endpoint_ = socket_.last_endpoint();
  }

  /// The endpoint bound (the real port for tcp://HOST:*).
  const std::string& endpoint() const noexcept { return endpoint_; }

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
    send_one(frame);  // ours is dropped at the end; ZeroMQ's, if it took the frame, lives on
  }

  /// The pipeline is stopping: after drain_timeout, stop waiting for a
  /// receiver. Thread-safe.
  void stop_soon() noexcept override {
    give_up_at_ns_.store(
        Clock::now().time_since_epoch().count() + std::chrono::duration_cast<Clock::duration>(drain_timeout).count(),
        std::memory_order_relaxed);
  }

  /// After run() returned: sends the end-of-stream message (if ZeroMQ takes
  /// it within send_timeout_ms), closes the socket and terminates the context — that waits up to
  /// `linger` for queued frames, then drops the rest, and returns only when
  /// every free function has run — and then counts the views ZeroMQ still
  /// holds: 0, or a buffer was lost.
  void close() override {
    {
      const alloc_hook::Library in_libzmq;
      // Waits at most ZMQ_SNDTIMEO for room: a slow receiver still gets it.
      eos_sent_ = sender_.send_end_of_stream(next_number_).taken();
      socket_.close();
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

  /// The summary's lines about the network.
  std::string text(std::uint64_t library_allocs, bool allocs_counted) const {
    const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    const daq_pool::zmq::SenderStats st = sender_.stats();
    char buf[1024];
    int n =
        std::snprintf(buf, sizeof buf,
                      "  published            %llu frames sent, %llu dropped by ZeroMQ, %llu unsent at shutdown  "
                      "(%s on %s, high-water mark %llu)\n"
                      "  published buffers    %llu views still held by ZeroMQ after close; sends waited out %llu "
                      "times (%d ms each)%s\n",
                      u(st.frames_sent), u(st.frames_dropped), u(unsent_), to_string(mode_), endpoint_.c_str(), u(hwm_),
                      u(held_after_close_), u(waits_), send_timeout_ms, eos_sent_ ? "; end of stream sent" : "");
    std::string out(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
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
  std::string json(std::string (*quote)(const std::string&), std::uint64_t library_allocs, bool allocs_counted) const {
    const daq_pool::zmq::SenderStats st = sender_.stats();
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "{\"endpoint\": %s, \"mode\": \"%s\", \"hwm\": %llu, \"frames_offered\": %llu, "
                  "\"frames_sent\": %llu, \"frames_dropped_by_transport\": %llu, \"unsent_at_shutdown\": %llu, "
                  "\"send_waits\": %llu, \"views_held_after_close\": %llu, \"end_of_stream_sent\": %s, "
                  "\"zmq_allocations\": %s, \"error\": %s}",
                  quote(endpoint_).c_str(), to_string(mode_), static_cast<unsigned long long>(hwm_),
                  static_cast<unsigned long long>(offered_), static_cast<unsigned long long>(st.frames_sent),
                  static_cast<unsigned long long>(st.frames_dropped), static_cast<unsigned long long>(unsent_),
                  static_cast<unsigned long long>(waits_), static_cast<unsigned long long>(held_after_close_),
                  eos_sent_ ? "true" : "false", allocs_counted ? std::to_string(library_allocs).c_str() : "null",
                  error_ != 0 ? quote(::zmq_strerror(error_)).c_str() : "null");
    return buf;
  }

 private:
  using Clock = std::chrono::steady_clock;

  void send_one(daq_pool::Bytes& frame) {
    ++offered_;
    while (!gave_up_) {
      daq_pool::zmq::SendOutcome out;
      {
        const alloc_hook::Library in_libzmq;  // zmq_msg_init_data allocates libzmq's control block
        out = sender_.send(frame, next_number_);
      }
      if (out.taken()) {
        ++next_number_;
        return;
      }
      if (out.status == daq_pool::zmq::SendStatus::failed) {
        if (error_ == 0) error_ = out.error;
        break;
      }
      // would_block: ZMQ_SNDTIMEO passed with the high-water mark full (or,
      // for PUSH, no receiver connected). Wait on, unless stopping for long.
      ++waits_;
      const std::int64_t give_up = give_up_at_ns_.load(std::memory_order_relaxed);
      if (give_up != 0 && Clock::now().time_since_epoch().count() >= give_up) gave_up_ = true;
    }
    ++unsent_;
  }

  std::size_t capacity_;
  PublishMode mode_;
  std::uint64_t hwm_;
  daq_pool::zmq::Context context_;  // first: destroyed last, after the socket
  daq_pool::zmq::Socket socket_;
  daq_pool::zmq::FrameSender sender_;
  std::string endpoint_;
  std::atomic<std::int64_t> give_up_at_ns_{0};  // steady_clock ticks; 0: not stopping
  // Written by the publisher thread, read after it is joined.
  std::uint64_t next_number_ = 0, offered_ = 0, unsent_ = 0, waits_ = 0;
  std::uint64_t held_after_close_ = 0;
  int error_ = 0;
  bool gave_up_ = false, eos_sent_ = false;
};

}  // namespace frame_pipeline

#endif  // FRAME_PIPELINE_HAVE_ZMQ
