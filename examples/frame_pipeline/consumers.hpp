// The three consumers of every frame, each run on its own thread and fed by
// its own bounded queue of shared `Bytes` views.
#pragma once

#include "bounded_queue.hpp"
#include "frame_pattern.hpp"

#include <daq_pool/bytes.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace frame_pipeline {

using FrameQueue = BoundedQueue<daq_pool::Bytes>;

/// Appends every frame to a file descriptor, optionally no faster than
/// `mbps` (10^6 bytes/s) to play a slow disk. The throttle applies while
/// `throttle_on` is true; at shutdown it is lifted so the queue drains at
/// full speed. With `rewind_at` non-zero the file is rewound to its start
/// whenever the next frame would pass that size: a scratch file that stays
/// small however long the run (used for the default temporary file).
class Writer {
 public:
  Writer(int fd, double mbps, const std::atomic<bool>& throttle_on, std::uint64_t rewind_at = 0) noexcept
      : fd_(fd), bytes_per_s_(mbps * 1e6), throttle_on_(throttle_on), rewind_at_(rewind_at) {}

  /// Consumes `queue` until it is closed and drained. On a write error it
  /// records errno and keeps popping (so the producer never stalls on it),
  /// counting the frames it could not write. Never allocates.
  void run(FrameQueue& queue) {
    daq_pool::Bytes frame;
    const auto start = std::chrono::steady_clock::now();
    std::uint64_t written = 0;
    while (queue.pop(frame)) {
      if (error_.load(std::memory_order_relaxed) == 0) {
        if (const int err = write_all(frame); err != 0) error_.store(err, std::memory_order_relaxed);
      }
      if (error_.load(std::memory_order_relaxed) != 0) {
        lost_.fetch_add(1, std::memory_order_relaxed);
      } else {
        written += frame.size();
        frames_.fetch_add(1, std::memory_order_relaxed);
        bytes_.store(written, std::memory_order_relaxed);
      }
      frame = daq_pool::Bytes{};  // return the buffer before sleeping
      if (bytes_per_s_ > 0) throttle(start, written);
    }
  }

  /// Frames written so far. Thread-safe.
  std::uint64_t frames() const noexcept { return frames_.load(std::memory_order_relaxed); }
  /// Bytes written so far. Thread-safe.
  std::uint64_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  /// Frames not written because of an earlier write error.
  std::uint64_t lost() const noexcept { return lost_.load(std::memory_order_relaxed); }
  /// errno of the first failed write, 0 if none.
  int error() const noexcept { return error_.load(std::memory_order_relaxed); }

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
  // until `written` bytes are no longer ahead of the allowed rate.
  void throttle(std::chrono::steady_clock::time_point start, std::uint64_t written) const {
    const auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::duration<double>(static_cast<double>(written) / bytes_per_s_));
    while (throttle_on_.load(std::memory_order_relaxed)) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= due) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(due - now, std::chrono::milliseconds(10)));
    }
  }

  const int fd_;
  const double bytes_per_s_;
  const std::atomic<bool>& throttle_on_;
  const std::uint64_t rewind_at_;
  std::uint64_t offset_ = 0;  // where the next write lands (when rewinding)
  // relaxed: statistics for the progress line, exact after join.
  std::atomic<std::uint64_t> frames_{0}, bytes_{0}, lost_{0};
  std::atomic<int> error_{0};
};

/// Analyses the frames it is given (every Nth, chosen by the producer): a
/// 16-bin histogram of the 16-bit pixels and their mean.
class Preview {
 public:
  /// Consumes `queue` until it is closed and drained. Never allocates.
  void run(FrameQueue& queue) {
    daq_pool::Bytes frame;
    while (queue.pop(frame)) {
      const PreviewStats p = preview_frame(frame.span());
      frame = daq_pool::Bytes{};
      {
        std::lock_guard lock(mutex_);
        last_ = p;
      }
      frames_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  /// Frames previewed so far. Thread-safe.
  std::uint64_t frames() const noexcept { return frames_.load(std::memory_order_relaxed); }
  /// The latest preview. Thread-safe.
  PreviewStats last() const {
    std::lock_guard lock(mutex_);
    return last_;
  }

 private:
  mutable std::mutex mutex_;
  PreviewStats last_;
  std::atomic<std::uint64_t> frames_{0};
};

/// Checks every byte of every frame against the sensor's pattern, its
/// checksum, and that frame numbers only increase (frames may be missing:
/// overruns and drops are counted elsewhere, never silent corruption).
class Verifier {
 public:
  explicit Verifier(std::size_t frame_bytes) noexcept : frame_bytes_(frame_bytes) {}

  /// Consumes `queue` until it is closed and drained. Never allocates.
  void run(FrameQueue& queue) {
    daq_pool::Bytes frame;
    bool has_previous = false;
    std::uint64_t previous = 0;
    while (queue.pop(frame)) {
      const FrameCheck check = verify_frame(frame.span(), frame_bytes_, has_previous, previous);
      frame = daq_pool::Bytes{};
      if (check.fault == FrameFault::ok) {
        verified_.fetch_add(1, std::memory_order_relaxed);
        has_previous = true;
        previous = check.frame_number;
      } else {
        if (failures_.fetch_add(1, std::memory_order_relaxed) == 0) {
          std::lock_guard lock(mutex_);
          first_failure_ = check;
        }
      }
    }
  }

  /// Frames that passed every check so far. Thread-safe.
  std::uint64_t verified() const noexcept { return verified_.load(std::memory_order_relaxed); }
  /// Frames that failed a check so far. Thread-safe.
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }
  /// The first failure's details (fault ok if none). Thread-safe.
  FrameCheck first_failure() const {
    std::lock_guard lock(mutex_);
    return first_failure_;
  }

 private:
  const std::size_t frame_bytes_;
  std::atomic<std::uint64_t> verified_{0}, failures_{0};
  mutable std::mutex mutex_;
  FrameCheck first_failure_;
};

}  // namespace frame_pipeline
