// The writer: records every frame (--out) through daq-pool's recorder into a
// .dqr file (O_DIRECT from the pool's buffers, io_uring where built) or,
// for a path ending in .h5 / .hdf5, into HDF5 (H5Dwrite_chunk), optionally
// throttled to play a slow disk (--writer-mbps). A block subscriber: a disk
// that falls behind holds up the acquisition (backpressure) rather than
// losing frames silently; the summary then says how many frames the camera
// lost and the run fails.
#pragma once

#include "alloc_hook.hpp"
#include "stage.hpp"

#include <daq_pool/broadcast.hpp>
#include <daq_pool/bytes.hpp>
#include <daq_pool/recording/recorder.hpp>
#if defined(FRAME_PIPELINE_HAVE_URING)
#include <daq_pool/uring.hpp>
#endif
#if defined(FRAME_PIPELINE_HAVE_HDF5)
#include <daq_pool/hdf5.hpp>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

namespace frame_pipeline {

/// True if `path` asks for HDF5 (.h5 / .hdf5).
inline bool wants_hdf5(const std::string& path) {
  const auto ends = [&](const char* ext) {
    const std::string e = ext;
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  return ends(".h5") || ends(".hdf5");
}

/// Records every frame; see the file comment. Construction never throws:
/// a recording that can't start (e.g. /dev/full) is reported by error() and
/// every frame counted lost, so the run fails with exit 1 and a message.
class RecordingWriter final : public Stage {
 public:
  /// `ring_records` > 0: a scratch recording reusing that many records.
  RecordingWriter(std::string path, std::size_t frame_bytes, std::size_t capacity, double mbps,
                  const std::atomic<bool>& throttle_on, std::uint64_t ring_records, std::string note)
      : path_(std::move(path)),
        capacity_(capacity),
        bytes_per_s_(mbps * 1e6),
        throttle_on_(throttle_on),
        note_(std::move(note)) {
    try {
      if (wants_hdf5(path_)) {
#if defined(FRAME_PIPELINE_HAVE_HDF5)
        daq_pool::hdf5::Hdf5Options o;
        o.dtype = "|u1";
        // The demo's frames are bytes: rows of 4096 where they divide.
        o.width = frame_bytes % 4096 == 0 ? 4096 : frame_bytes;
        o.height = frame_bytes / o.width;
        o.flush_every = 100;
        hdf5_ = std::make_unique<daq_pool::hdf5::Hdf5Recorder>(path_, o);
        format_ = "HDF5 (H5Dwrite_chunk)";
#else
        setup_error_ = path_ + ": HDF5 output (.h5) needs daq_pool::hdf5, not built here";
#endif
      } else {
        daq_pool::recording::RecorderOptions o;
        o.frame_capacity = frame_bytes;
        o.queue_depth = 4;
        o.layout.dtype = "|u1";
        o.ring_records = ring_records;
#if defined(FRAME_PIPELINE_HAVE_URING)
        try {
          rec_ = std::make_unique<daq_pool::recording::UringRecorder>(path_, o);
          format_ = ".dqr via io_uring";
        } catch (const daq_pool::recording::recording_error&) {
          rec_.reset();  // io_uring unavailable: the portable backend below
        }
#endif
        if (!rec_) {
          rec_ = std::make_unique<daq_pool::recording::Recorder>(path_, o);
          format_ = ".dqr via writer threads";
        }
      }
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  const char* name() const noexcept override { return "writer"; }
  daq_pool::SubscriberOptions subscription() const override {
    daq_pool::SubscriberOptions o;
    o.on_full = daq_pool::OnFull::block;
    o.capacity = capacity_;
    return o;
  }

  void consume(daq_pool::Received& frame) override {
    if (start_ == std::chrono::steady_clock::time_point{}) start_ = std::chrono::steady_clock::now();
    const std::uint64_t number = frame.tag();
    const std::size_t size = frame.size();
    // The recorder holds the view until its write completes; the
    // broadcast's count of views in hands stops here.
    daq_pool::Bytes view = std::move(frame).take();
    bool ok = false;
    const std::int64_t now = daq_pool::recording::detail::now_ns();
    if (rec_) {
      ok = rec_->record(std::move(view), number, now);
    }
#if defined(FRAME_PIPELINE_HAVE_HDF5)
    else if (hdf5_) {
      // HDF5 allocates inside its calls (chunk index, metadata cache): its
      // allocations, counted apart as a library's; daq-pool's path allocates
      // nothing (the .dqr recorder: test_recorder_zero_alloc).
      const alloc_hook::Library library_scope;
      ok = hdf5_->record(std::move(view), number, now);
    }
#endif
    if (ok) {
      offered_ += size;
    } else {
      lost_.fetch_add(1, std::memory_order_relaxed);
    }
    if (bytes_per_s_ > 0) throttle();
  }

  void finish() override {
    if (rec_) rec_->close();
#if defined(FRAME_PIPELINE_HAVE_HDF5)
    if (hdf5_) {
      const alloc_hook::Library library_scope;  // HDF5's own allocations
      hdf5_->close();
    }
#endif
    end_ = std::chrono::steady_clock::now();
  }

  /// Frames on the disk (exact after finish()).
  std::uint64_t frames() const noexcept {
    if (rec_) return rec_->stats().frames_written;
#if defined(FRAME_PIPELINE_HAVE_HDF5)
    if (hdf5_) return hdf5_->stats().frames_written;
#endif
    return 0;
  }
  /// Their bytes.
  std::uint64_t bytes() const noexcept {
    if (rec_) return rec_->stats().bytes_written;
#if defined(FRAME_PIPELINE_HAVE_HDF5)
    if (hdf5_) return hdf5_->stats().bytes_written;
#endif
    return 0;
  }
  /// Frames given to the writer and not recorded (disk errors, refusals).
  std::uint64_t lost() const noexcept {
    std::uint64_t n = lost_.load(std::memory_order_relaxed);
    if (rec_) n = std::max(n, rec_->stats().frames_lost);
    return n;
  }
  bool direct() const noexcept { return rec_ && rec_->stats().direct_io; }

  std::string error() const override {
    if (!setup_error_.empty()) return "recording to " + path_ + " failed: " + setup_error_;
    std::string e;
    if (rec_) e = rec_->error().value_or("");
#if defined(FRAME_PIPELINE_HAVE_HDF5)
    if (hdf5_) e = hdf5_->error().value_or("");
#endif
    if (e.empty() && lost() == 0) return "";
    if (e.empty()) e = path_ + ": frames refused";
    return "recording failed: " + e + " (" + std::to_string(lost()) + " frames lost)";
  }

  std::string text(const daq_pool::SubscriberStats&) const override {
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "  writer               %llu frames, %.1f MB at %.1f MB/s to %s%s\n"
                  "  writer disk          %s, O_DIRECT %s, %llu frames lost to the disk\n",
                  static_cast<unsigned long long>(frames()), static_cast<double>(bytes()) / 1e6, mbps(),
                  path_.c_str(), note_.c_str(), format_.c_str(), direct_text().c_str(),
                  static_cast<unsigned long long>(lost()));
    std::string out = buf;
    if (bytes_per_s_ > 0) {
      std::snprintf(buf, sizeof buf, "  writer throttle      %.1f MB/s\n", bytes_per_s_ / 1e6);
      out += buf;
    }
    if (const std::string e = error(); !e.empty()) out += "  writer ERROR         " + e + "\n";
    return out;
  }

  std::string json(const daq_pool::SubscriberStats&) const override {
    const std::string e = error();
    char buf[256];
    std::snprintf(buf, sizeof buf, "%.3f", mbps());
    return "\"writer\": {\"frames\": " + std::to_string(frames()) + ", \"bytes\": " + std::to_string(bytes()) +
           ", \"lost\": " + std::to_string(lost()) + ", \"mb_per_s\": " + buf +
           ", \"o_direct\": " + (direct() ? "true" : "false") + ", \"format\": " + json_string(format_) +
           ", \"error\": " + (e.empty() ? "null" : json_string(e)) + "}";
  }

 private:
  double mbps() const noexcept {
    if (start_ == std::chrono::steady_clock::time_point{} || end_ <= start_) return 0;
    return static_cast<double>(bytes()) / 1e6 / std::chrono::duration<double>(end_ - start_).count();
  }

  std::string direct_text() const {
    if (!rec_) return "no (HDF5 writes through the page cache)";
    if (rec_->stats().direct_io) return "yes";
    return "no: " + rec_->fallback_reason();
  }

  // Sleeps (in short steps, so lifting the throttle takes effect at once)
  // until the bytes recorded are no longer ahead of the allowed rate.
  void throttle() const {
    const auto due = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(offered_) / bytes_per_s_));
    while (throttle_on_.load(std::memory_order_relaxed)) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= due) break;
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(due - now, std::chrono::milliseconds(10)));
    }
  }

  const std::string path_;
  const std::size_t capacity_;
  const double bytes_per_s_;
  const std::atomic<bool>& throttle_on_;
  const std::string note_;
  std::string format_;
  std::string setup_error_;
  std::unique_ptr<daq_pool::recording::RecorderBase> rec_;
#if defined(FRAME_PIPELINE_HAVE_HDF5)
  std::unique_ptr<daq_pool::hdf5::Hdf5Recorder> hdf5_;
#endif
  std::chrono::steady_clock::time_point start_{}, end_{};
  std::uint64_t offered_ = 0;  // the writer thread's
  std::atomic<std::uint64_t> lost_{0};
};

}  // namespace frame_pipeline
