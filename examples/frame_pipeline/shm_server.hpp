// --serve=PATH: the demo publishes every pooled frame to subscriber
// processes through a daq_pool::shm::Server (shared memory, no copy), from
// a block subscriber of its broadcast (Server::publish never waits); see
// examples/shm_subscriber and examples/python/shm_viewer.py for clients.
// Compiled in only when the build has daq_pool::shm
// (FRAME_PIPELINE_HAVE_SHM); otherwise --serve says so and exits 2.
#pragma once

#include "stage.hpp"

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/bytes.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#if FRAME_PIPELINE_HAVE_SHM
#include <daq_pool/shm.hpp>
#endif

namespace frame_pipeline {

/// What --serve did, for the summary.
struct ServeStats {
  bool enabled = false;
  std::string path;
  std::uint64_t subscribers = 0;   ///< connections accepted during the run
  std::uint64_t published = 0;     ///< frames offered to the subscribers
  std::uint64_t not_shared = 0;    ///< heap fallbacks: not in the shared memory, not served
  std::uint64_t sent = 0;          ///< frame messages sent (all subscribers)
  std::uint64_t skipped = 0;       ///< frames a subscriber at its bound did not get
  std::uint64_t done = 0;          ///< frames subscribers released
  std::uint64_t bad_messages = 0;  ///< invalid releases from subscribers, ignored
  std::uint64_t disconnected = 0;  ///< subscribers gone (what they held taken back)
};

inline std::string serve_text(const ServeStats& s);
inline std::string serve_json(const ServeStats& s);

/// The frame server of --serve: frames are published on this stage's
/// thread (never waiting for a subscriber process: a slow one is skipped
/// and counted); the server's own thread takes the "done" messages.
class FrameServer final : public Stage {
 public:
  explicit FrameServer(std::size_t capacity) noexcept : capacity_(capacity) {}

  const char* name() const noexcept override { return "server"; }
  daq_pool::SubscriberOptions subscription() const override {
    daq_pool::SubscriberOptions o;
    o.on_full = daq_pool::OnFull::block;
    o.capacity = capacity_;
    return o;
  }
  void consume(daq_pool::Received& frame) override { publish(frame.bytes()); }
  /// After its thread was joined: subscriber processes see the end.
  void close() override { stop(); }
  std::string text(const daq_pool::SubscriberStats&) const override { return serve_text(stats_); }
  std::string json(const daq_pool::SubscriberStats&) const override { return "\"serve\": " + serve_json(stats_); }

  /// True if this build can serve (daq_pool::shm).
  static constexpr bool available() noexcept {
#if FRAME_PIPELINE_HAVE_SHM
    return true;
#else
    return false;
#endif
  }

  /// Starts serving `pool`'s frames at `path` (the pool must be made with
  /// shared_memory). An error message, or nothing on success.
  std::optional<std::string> start([[maybe_unused]] const daq_pool::BufferPool& pool,
                                   [[maybe_unused]] const std::string& path) {
#if FRAME_PIPELINE_HAVE_SHM
    try {
      daq_pool::shm::ServerOptions o;
      o.max_subscribers = 4;  // 4 x 2 frames in flight: at most 8 pool buffers held by viewers,
      o.max_in_flight = 2;
      // plus what the demo's own pipeline holds (the buffer being filled,
      // the writer's and the verifier's queues): the server refuses a
      // smaller --pool, so stopped viewers can never drain acquisition.
      o.producer_margin = 8;
      server_.emplace(pool, path, o);
    } catch (const std::exception& e) {
      return e.what();
    }
    stats_.enabled = true;
    stats_.path = path;
    return std::nullopt;
#else
    return "not built with daq_pool::shm (Linux only)";
#endif
  }

  /// Offers `frame` to every subscriber. Never blocks, never allocates.
  void publish([[maybe_unused]] const daq_pool::Bytes& frame) {
#if FRAME_PIPELINE_HAVE_SHM
    if (server_) server_->publish(frame);
#endif
  }

  /// Ends the stream for every subscriber and drops the server's views;
  /// keeps the counters for the summary.
  void stop() {
#if FRAME_PIPELINE_HAVE_SHM
    if (!server_) return;
    server_->stop();
    const daq_pool::shm::ServerStats st = server_->stats();
    stats_.subscribers = st.accepted;
    stats_.published = st.published;
    stats_.not_shared = st.not_shared;
    stats_.sent = st.sent;
    stats_.skipped = st.skipped;
    stats_.done = st.released;
    stats_.bad_messages = st.bad_releases;
    stats_.disconnected = st.disconnected;
    server_.reset();
#endif
  }

  const ServeStats& stats() const noexcept { return stats_; }

 private:
#if FRAME_PIPELINE_HAVE_SHM
  std::optional<daq_pool::shm::Server> server_;
#endif
  std::size_t capacity_;
  ServeStats stats_;
};

/// The summary's line for --serve ("" without it).
inline std::string serve_text(const ServeStats& s) {
  if (!s.enabled) return "";
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  char buf[1024];
  std::snprintf(
      buf, sizeof buf,
      "  served               %llu frames to %llu subscribers at %s: %llu sent, %llu skipped (at their bound), "
      "%llu released, %llu subscribers gone; %llu heap fallbacks not served\n",
      u(s.published), u(s.subscribers), s.path.c_str(), u(s.sent), u(s.skipped), u(s.done), u(s.disconnected),
      u(s.not_shared));
  return buf;
}

/// The summary's "serve" member, as JSON (null without --serve).
inline std::string serve_json(const ServeStats& s) {
  if (!s.enabled) return "null";
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"subscribers\": %llu, \"published\": %llu, \"not_shared\": %llu, \"sent\": %llu, \"skipped\": "
                "%llu, \"done\": %llu, \"bad_messages\": %llu}",
                static_cast<unsigned long long>(s.subscribers), static_cast<unsigned long long>(s.published),
                static_cast<unsigned long long>(s.not_shared), static_cast<unsigned long long>(s.sent),
                static_cast<unsigned long long>(s.skipped), static_cast<unsigned long long>(s.done),
                static_cast<unsigned long long>(s.bad_messages));
  return buf;
}

}  // namespace frame_pipeline
