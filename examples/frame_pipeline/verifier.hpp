// The verifier: checks every frame (a block subscriber: it must see all of
// them). Verifier holds the counters the summary and the exit code use;
// SensorVerifier checks the simulated sensor's frames (pattern, checksum,
// order), aravis_source.hpp's CameraVerifier a camera's.
#pragma once

#include "frame_pattern.hpp"
#include "stage.hpp"

#include <daq_pool/broadcast.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace frame_pipeline {

/// What every verifier counts. Thread-safe counters (relaxed: statistics,
/// exact once its thread is joined).
class Verifier : public Stage {
 public:
  /// The first failure: frame number, reason, byte offset (0 if none).
  struct Failure {
    std::uint64_t frame_number = 0;
    const char* reason = nullptr;  // nullptr: none
    std::size_t offset = 0;
  };

  explicit Verifier(std::size_t capacity) noexcept : capacity_(capacity) {}

  const char* name() const noexcept override { return "verifier"; }
  daq_pool::SubscriberOptions subscription() const override {
    daq_pool::SubscriberOptions o;
    o.on_full = daq_pool::OnFull::block;
    o.capacity = capacity_;
    return o;
  }

  std::uint64_t verified() const noexcept { return verified_.load(std::memory_order_relaxed); }    ///< matched
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }    ///< differed
  std::uint64_t unchecked() const noexcept { return unchecked_.load(std::memory_order_relaxed); }  ///< no check known
  /// The first failure. Thread-safe.
  Failure first_failure() const {
    std::lock_guard lock(mutex_);
    return first_;
  }

 protected:
  void pass() noexcept { verified_.fetch_add(1, std::memory_order_relaxed); }
  void skip() noexcept { unchecked_.fetch_add(1, std::memory_order_relaxed); }
  void fail(const Failure& f) {
    if (failures_.fetch_add(1, std::memory_order_relaxed) == 0) {
      std::lock_guard lock(mutex_);
      first_ = f;
    }
  }

 private:
  const std::size_t capacity_;
  std::atomic<std::uint64_t> verified_{0}, failures_{0}, unchecked_{0};
  mutable std::mutex mutex_;
  Failure first_;
};

/// Checks every byte of every frame against the simulated sensor's pattern,
/// its checksum, and that frame numbers only increase (frames may be
/// missing: overruns and drops are counted elsewhere, never silent
/// corruption). Never allocates.
class SensorVerifier final : public Verifier {
 public:
  SensorVerifier(std::size_t frame_bytes, std::size_t capacity) noexcept
      : Verifier(capacity), frame_bytes_(frame_bytes) {}

  void consume(daq_pool::Received& frame) override {
    const FrameCheck check = verify_frame(frame.bytes().span(), frame_bytes_, has_previous_, previous_);
    frame.reset();
    if (check.fault == FrameFault::ok) {
      pass();
      has_previous_ = true;
      previous_ = check.frame_number;
    } else {
      fail({check.frame_number, to_string(check.fault), check.offset});
    }
  }

 private:
  const std::size_t frame_bytes_;
  bool has_previous_ = false;  // the verifier thread's
  std::uint64_t previous_ = 0;
};

}  // namespace frame_pipeline
