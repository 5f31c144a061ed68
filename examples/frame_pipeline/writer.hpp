// The writer: appends every frame to a file (--out), optionally throttled to
// play a slow disk (--writer-mbps). A block subscriber by default: a disk
// that falls behind holds up the acquisition (backpressure) rather than
// losing frames.
#pragma once

#include "stage.hpp"

#include <daq_pool/broadcast.hpp>
#include <daq_pool/bytes.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace frame_pipeline {

/// The message for errno value `err` (thread-safe, unlike strerror).
inline std::string error_text(int err) {
  char buf[256];
  return ::strerror_r(err, buf, sizeof buf);  // GNU strerror_r: returns the message
}

/// Appends every frame to a file descriptor, optionally no faster than
/// `mbps` (10^6 bytes/s). The throttle applies while `throttle_on` is true;
/// at shutdown it is lifted so the queue drains at full speed. With
/// `rewind_at` non-zero the file is rewound to its start whenever the next
/// frame would pass that size: a scratch file that stays small however long
/// the run (used for the default temporary file). On a write error it
/// records errno and keeps taking frames (so the producer never stalls on
/// it), counting those it could not write. Never allocates.
class Writer final : public Stage {
 public:
  Writer(int fd, std::string path, std::size_t capacity, double mbps, const std::atomic<bool>& throttle_on,
         std::uint64_t rewind_at, std::string note) noexcept
      : fd_(fd),
        path_(std::move(path)),
        capacity_(capacity),
        bytes_per_s_(mbps * 1e6),
        throttle_on_(throttle_on),
        rewind_at_(rewind_at),
        note_(std::move(note)) {}

  const char* name() const noexcept override { return "writer"; }
  daq_pool::SubscriberOptions subscription() const override {
    daq_pool::SubscriberOptions o;
    o.on_full = daq_pool::OnFull::block;
    o.capacity = capacity_;
    return o;
  }

  void consume(daq_pool::Received& frame) override {
    if (start_ == std::chrono::steady_clock::time_point{}) start_ = std::chrono::steady_clock::now();
    if (error_.load(std::memory_order_relaxed) == 0) {
      if (const int err = write_all(frame.bytes()); err != 0) error_.store(err, std::memory_order_relaxed);
    }
    if (error_.load(std::memory_order_relaxed) != 0) {
      lost_.fetch_add(1, std::memory_order_relaxed);
    } else {
      written_ += frame.size();
      frames_.fetch_add(1, std::memory_order_relaxed);
    }
    frame.reset();  // return the buffer before sleeping
    if (bytes_per_s_ > 0) throttle();
  }

  /// Frames written so far. Thread-safe.
  std::uint64_t frames() const noexcept { return frames_.load(std::memory_order_relaxed); }

  std::string error() const override {
    const int err = error_.load(std::memory_order_relaxed);
    if (err == 0) return "";
    return "writing " + path_ + " failed: " + error_text(err) + " (" + std::to_string(lost_.load()) +
           " frames lost)";
  }

  std::string text(const daq_pool::SubscriberStats&) const override {
    char buf[1024];
    std::snprintf(buf, sizeof buf, "  writer               %llu frames, %.1f MB to %s%s",
                  static_cast<unsigned long long>(frames()), static_cast<double>(written_) / 1e6, path_.c_str(),
                  note_.c_str());
    std::string out = buf;
    if (bytes_per_s_ > 0) {
      std::snprintf(buf, sizeof buf, ", throttled to %.1f MB/s", bytes_per_s_ / 1e6);
      out += buf;
    }
    out += "\n";
    if (const int err = error_.load(); err != 0)
      out += "  writer ERROR         " + error_text(err) + "; " + std::to_string(lost_.load()) +
             " frames not written\n";
    return out;
  }

  std::string json(const daq_pool::SubscriberStats&) const override {
    const int err = error_.load();
    const std::string e = err != 0 ? json_string(error_text(err)) : "null";
    return "\"writer\": {\"frames\": " + std::to_string(frames()) + ", \"bytes\": " + std::to_string(written_) +
           ", \"lost\": " + std::to_string(lost_.load()) + ", \"error\": " + e + "}";
  }

 private:
  int write_all(const daq_pool::Bytes& frame) noexcept {
    if (rewind_at_ != 0 && offset_ != 0 && offset_ + frame.size() > rewind_at_) {
      if (::lseek(fd_, 0, SEEK_SET) < 0) return errno;
      offset_ = 0;
    }
    offset_ += frame.size();
    const std::byte* p = frame.data();
    std::size_t left = frame.size();
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return 0;
  }

  // Sleeps (in short steps, so lifting the throttle takes effect at once)
  // until the bytes written are no longer ahead of the allowed rate.
  void throttle() const {
    const auto due = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(written_) / bytes_per_s_));
    while (throttle_on_.load(std::memory_order_relaxed)) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= due) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(due - now, std::chrono::milliseconds(10)));
    }
  }

  const int fd_;
  const std::string path_;
  const std::size_t capacity_;
  const double bytes_per_s_;
  const std::atomic<bool>& throttle_on_;
  const std::uint64_t rewind_at_;
  const std::string note_;  // after the path in the summary, e.g. " (temporary: ...)"
  std::chrono::steady_clock::time_point start_{};
  std::uint64_t offset_ = 0;   // where the next write lands (when rewinding)
  std::uint64_t written_ = 0;  // the writer thread's; read after it is joined
  // relaxed: statistics, exact after the join.
  std::atomic<std::uint64_t> frames_{0}, lost_{0};
  std::atomic<int> error_{0};
};

}  // namespace frame_pipeline
