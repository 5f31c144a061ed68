// A simulated camera SDK: a sensor thread filling a circular buffer in
// no-overwrite mode, as PVCAM's CIRC_NO_OVERWRITE does.
#pragma once

#include "frame_pattern.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

namespace frame_pipeline {

/// The SDK side of the pipeline. A sensor thread exposes a frame every
/// 1/fps seconds and writes it into the next free slot of a ring of
/// `slots` frames; a slot is free again only when the application releases
/// it. When every slot is still held the frame is lost and counted as an SDK
/// overrun, exactly what a real camera does in no-overwrite mode.
///
/// One acquisition thread calls next_frame()/release_frame(); stop() and the
/// counters may be used from any thread.
class SimulatedCamera {
 public:
  /// A frame ready in the ring: valid until release_frame().
  struct Frame {
    std::span<const std::byte> data;
    std::uint64_t number;
  };

  /// Allocates and touches the ring (so the sensor never page-faults while
  /// running). `max_exposures` 0 means no limit. `corrupt_every` N > 0
  /// flips one payload byte of every Nth frame after it is written (a fault
  /// injected for testing the verifier).
  SimulatedCamera(std::size_t slots, std::size_t frame_bytes, double fps, std::uint64_t max_exposures,
                  std::uint64_t corrupt_every = 0)
      : slots_(slots),
        frame_bytes_(frame_bytes),
        period_(
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(1.0 / fps))),
        max_exposures_(max_exposures),
        corrupt_every_(corrupt_every),
        ring_(new std::byte[slots * frame_bytes]),
        numbers_(new std::uint64_t[slots]()) {
    std::memset(ring_.get(), 0, slots * frame_bytes);
  }

  ~SimulatedCamera() { stop(); }
  SimulatedCamera(const SimulatedCamera&) = delete;
  SimulatedCamera& operator=(const SimulatedCamera&) = delete;

  /// Starts the sensor thread.
  void start() {
    start_time_ = std::chrono::steady_clock::now();
    sensor_ = std::thread([this] { sensor_loop(); });
  }

  /// Stops exposing (frames already in the ring stay readable) and joins the
  /// sensor thread. Idempotent. Thread-safe except against itself.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    if (sensor_.joinable()) sensor_.join();
    {
      // Also when the sensor never started: next_frame() must not wait forever.
      std::lock_guard lock(mutex_);
      sensor_done_ = true;
    }
    changed_.notify_all();
  }

  /// The oldest unreleased frame, waiting for one; nothing once the sensor
  /// has stopped and the ring is empty. Never allocates.
  std::optional<Frame> next_frame() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return head_ != tail_ || sensor_done_; });
    if (head_ == tail_) return std::nullopt;
    const std::size_t slot = tail_ % slots_;
    // The sensor wrote this slot before advancing head_ under the mutex we
    // now hold, and will not touch it again until release_frame().
    return Frame{{ring_.get() + slot * frame_bytes_, frame_bytes_}, numbers_[slot]};
  }

  /// Gives the oldest frame's slot back to the SDK. Never allocates.
  void release_frame() {
    {
      std::lock_guard lock(mutex_);
      ++tail_;
    }
    changed_.notify_all();
  }

  /// Frames exposed by the sensor (written to the ring or overrun).
  std::uint64_t exposures() const noexcept { return exposures_.load(std::memory_order_relaxed); }
  /// Frames lost because every ring slot was still held.
  std::uint64_t overruns() const noexcept { return overruns_.load(std::memory_order_relaxed); }
  /// Times the sensor fell more than a frame period behind --fps (this
  /// machine could not generate frames that fast) and skipped ahead.
  std::uint64_t late_restarts() const noexcept { return late_.load(std::memory_order_relaxed); }
  /// Frames in the ring not yet released. Thread-safe; stale when read.
  std::size_t pending() const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(head_ - tail_);
  }
  /// True once the sensor has exposed its last frame (or was stopped).
  bool sensor_done() const {
    std::lock_guard lock(mutex_);
    return sensor_done_;
  }
  /// Slots in the ring.
  std::size_t slots() const noexcept { return slots_; }

 private:
  void sensor_loop() {
    auto next = start_time_;
    for (std::uint64_t n = 0; max_exposures_ == 0 || n < max_exposures_; ++n) {
      std::unique_lock lock(mutex_);
      if (changed_.wait_until(lock, next, [&] { return stop_; })) break;
      const bool full = head_ - tail_ == slots_;
      const std::size_t slot = head_ % slots_;
      lock.unlock();

      // relaxed: statistics; the ring's data is published by the mutex.
      exposures_.fetch_add(1, std::memory_order_relaxed);
      if (full) {
        overruns_.fetch_add(1, std::memory_order_relaxed);
      } else {
        std::byte* data = ring_.get() + slot * frame_bytes_;
        fill_frame({data, frame_bytes_}, n);
        if (corrupt_every_ != 0 && n % corrupt_every_ == corrupt_every_ - 1) {
          data[frame_header_bytes + (frame_bytes_ - frame_header_bytes) / 2] ^= std::byte{0x10};
        }
        numbers_[slot] = n;
        {
          std::lock_guard publish(mutex_);
          ++head_;
        }
        changed_.notify_all();
      }

      next += period_;
      const auto now = std::chrono::steady_clock::now();
      if (now > next + period_) {
        // Filling took longer than the frame period: restart the schedule
        // from now rather than bursting to catch up.
        late_.fetch_add(1, std::memory_order_relaxed);
        next = now;
      }
    }
    {
      std::lock_guard lock(mutex_);
      sensor_done_ = true;
    }
    changed_.notify_all();
  }

  const std::size_t slots_;
  const std::size_t frame_bytes_;
  const std::chrono::steady_clock::duration period_;
  const std::uint64_t max_exposures_;
  const std::uint64_t corrupt_every_;
  std::unique_ptr<std::byte[]> ring_;
  std::unique_ptr<std::uint64_t[]> numbers_;  // frame number in each slot

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // head_, tail_, stop_ or sensor_done_ changed
  std::uint64_t head_ = 0;           // slots written (guarded by mutex_)
  std::uint64_t tail_ = 0;           // slots released (guarded by mutex_)
  bool stop_ = false;
  bool sensor_done_ = false;

  std::atomic<std::uint64_t> exposures_{0}, overruns_{0}, late_{0};
  std::chrono::steady_clock::time_point start_time_;
  std::thread sensor_;
};

}  // namespace frame_pipeline
