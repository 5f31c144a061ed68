// Recorder: frames (Bytes views of pool buffers) written to a .dqr file with
// O_DIRECT straight from the pool's memory, several writes in flight, each
// view held exactly until its write completes. The portable backend: a few
// writer threads with pwrite. Linux only; no dependency. (io_uring:
// daq_pool/uring.hpp, same interface.)
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "daq_pool/bytes.hpp"
#include "daq_pool/recording/detail/record_file.hpp"
#include "daq_pool/recording/dqr_format.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording {

/// What every recorder backend offers (Recorder: writer threads;
/// UringRecorder in daq_pool/uring.hpp: io_uring): queueing frames, the
/// counters, the first error. Not used on its own.
class RecorderBase {
 public:
  RecorderBase(const RecorderBase&) = delete;
  RecorderBase& operator=(const RecorderBase&) = delete;

  /// Queues `frame` for writing as frame `frame_number` with `timestamp_ns`
  /// (ns; the default is the system clock now), waiting while queue_depth
  /// frames are in flight (a recorder is a blocking subscriber: it never
  /// drops a frame it has room for). Returns false, with the view released
  /// and the frame counted lost, if the recording has failed or is closed, or
  /// the frame is larger than frame_capacity. Thread-safe; never allocates.
  bool record(Bytes frame, std::uint64_t frame_number, std::int64_t timestamp_ns) noexcept {
    return file_.push(std::move(frame), frame_number, timestamp_ns);
  }
  /// record() with the next frame number (counted from 0) and now.
  /// Thread-safe; never allocates.
  bool record(Bytes frame) noexcept {
    // relaxed: only the number's uniqueness matters, not an order with memory.
    return record(std::move(frame), next_frame_.fetch_add(1, std::memory_order_relaxed), detail::now_ns());
  }

  /// Waits for every frame in flight, stops the backend, fdatasyncs and
  /// closes the file. Idempotent; never throws; errors go to error(). Must
  /// not race with record().
  virtual void close() noexcept = 0;

  /// Closes (the backend's destructor has). Never throws.
  virtual ~RecorderBase() = default;

  /// The counters. Thread-safe; stale when read.
  RecorderStats stats() const noexcept { return file_.stats(); }
  /// The first error (file, frame, offset, reason), if the recording failed.
  /// Thread-safe; allocates the copy.
  std::optional<std::string> error() const { return file_.error(); }
  /// The first error's errno, 0 if none. Thread-safe; never allocates.
  int error_code() const noexcept { return file_.error_code(); }
  /// Why O_DIRECT is not used (empty when it is). Never allocates.
  const std::string& fallback_reason() const noexcept { return file_.fallback_reason(); }
  /// The first frame refused as larger than frame_capacity, if any.
  /// Thread-safe; allocates the copy.
  std::optional<std::string> oversize() const { return file_.oversize(); }
  /// The file's header as written. Never allocates.
  const dqr::FileHeader& header() const noexcept { return file_.header(); }
  /// The file's path. Never allocates.
  const std::string& path() const noexcept { return file_.path(); }

 protected:
  /// Opens (creates) `path` and writes its header; the backends' shared part. Throws std::system_error naming the file.
  RecorderBase(std::string path, const RecorderOptions& options) : file_(std::move(path), options) {}

  /// The file, its counters and its index: shared by the backends.
  detail::RecordFile file_;  // NOLINT(misc-non-private-member-variables-in-classes): the backends' shared state

 private:
  std::atomic<std::uint64_t> next_frame_{0};
};

/// Records frames into a .dqr file (docs/recording.md): record() queues a
/// view, one of `writer_threads` threads writes it with pwrite into its
/// record (O_DIRECT from the view's memory: the block-aligned prefix as it
/// is, a tail that is not a whole block through a small aligned bounce
/// buffer), drops the view (the buffer returns to its pool), then writes the
/// record's index entry. A filesystem refusing O_DIRECT gives the buffered
/// fallback, reported by stats().direct_io and fallback_reason().
///
/// A write error stops the recording: the first error is kept (error(),
/// naming the file, frame and offset), every frame queued or offered after it
/// is counted lost and its view released at once, and nothing blocks.
///
/// record() and stats() are thread-safe; close() and the destructor must not
/// race with record(). Construction allocates (threads, scratch blocks);
/// record() never allocates (one mutex to queue, one to take).
class Recorder : public RecorderBase {
 public:
  /// Creates (truncates) `path` and writes its header; starts the writers.
  /// Throws std::invalid_argument (bad options, naming the option),
  /// recording_error (can't open or write the file; O_DIRECT refused with
  /// allow_buffered_fallback false).
  Recorder(std::string path, const RecorderOptions& options) : RecorderBase(std::move(path), options) {
    // One writer more than queue_depth by default: one may be writing an
    // entry while queue_depth payloads are in flight.
    const std::size_t threads = options.writer_threads != 0 ? options.writer_threads : options.queue_depth + 1;
    const std::size_t bounce = bounce_size();
    scratch_.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) {
      scratch_.push_back({detail::aligned_block(file_.block(), bounce), detail::aligned_block(file_.block(), file_.block())});
    }
    workers_.reserve(threads);
    try {
      for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this, i] { run(scratch_[i]); });
    } catch (...) {
      close();
      throw;
    }
  }

  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;
  /// close(). Never throws.
  ~Recorder() override { close(); }

  /// Waits for every frame in flight, stops the writers, fdatasyncs and
  /// closes the file. Idempotent; never throws; errors go to error().
  void close() noexcept override {
    file_.begin_close();
    for (std::thread& t : workers_)
      if (t.joinable()) t.join();
    file_.close_file();
  }

 private:
  struct Scratch {
    detail::AlignedBlock bounce;  // tail / copy block
    detail::AlignedBlock entry;   // the entry's block, zero past the entry
  };

  std::size_t bounce_size() const noexcept {
    // A tail needs one block; a view not aligned for O_DIRECT (a heap copy)
    // is copied through in pieces of this size.
    return file_.block() > 256 * 1024 ? file_.block() : 256 * 1024;
  }

  void run(Scratch& s) noexcept {
    detail::RecordJob job;
    while (file_.take(job)) {
      const std::size_t size = job.view.size();
      bool ok = !file_.failed() && file_.write_payload(job, s.bounce.get(), bounce_size());
      job.view.reset();  // the payload is written (or never will be): the buffer goes back
      // The frame's place in the queue is free as soon as its buffer is:
      // queue_depth bounds the buffers held; the entry (one block) is
      // written while another writer starts the next frame's payload.
      file_.finished();
      ok = ok && file_.write_entry(job, size, s.entry.get());
      if (ok) {
        file_.note_end(job.record, size);
        file_.count_written(size);
      } else {
        file_.count_lost();
      }
    }
  }

  std::vector<Scratch> scratch_;
  std::vector<std::thread> workers_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording
