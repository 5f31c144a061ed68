// daq_pool::uring: the recorder's io_uring backend (liburing). Same
// interface, file format and guarantees as recording::Recorder
// (daq_pool/recording/recorder.hpp), but one thread drives every write
// through an io_uring instead of one blocking pwrite per writer thread.
// Link daq_pool::uring (CMake) or `pkg-config daq_pool-uring`.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <liburing.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "daq_pool/recording/detail/record_file.hpp"
#include "daq_pool/recording/recorder.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording {

/// Records frames into a .dqr file like Recorder, through io_uring: a
/// thread of its own takes queued frames, submits each payload as one or
/// two writes (the block-aligned prefix straight from the view, the tail
/// from the record's bounce block), releases the view when they complete,
/// then submits the index entry. queue_depth frames are in flight at once;
/// writer_threads is ignored. Errors, fallback and counters as Recorder.
///
/// record() and stats() are thread-safe; close() and the destructor must not
/// race with record(). Construction allocates (the ring, one thread, the
/// scratch blocks); record() never allocates.
class UringRecorder : public RecorderBase {
 public:
  /// Creates `path`, writes its header, sets up a ring. Throws like
  /// Recorder, and recording_error naming the file if io_uring is
  /// unavailable (io_uring_queue_init fails, e.g. disabled by the kernel).
  UringRecorder(std::string path, const RecorderOptions& options) : RecorderBase(std::move(path), options) {
    const std::size_t depth = options.queue_depth;
    // Up to ~3 requests per frame (prefix, tail, entry): room for all.
    const int err = ::io_uring_queue_init(static_cast<unsigned>(depth * 4 < 8 ? 8 : depth * 4), &ring_, 0);
    if (err < 0) throw recording_error(-err, "daq_pool uring recorder: " + file_.path() + ": io_uring_queue_init");
    try {
      slots_.resize(depth);
      for (Slot& s : slots_) {
        s.bounce = detail::aligned_block(file_.block(), bounce_size());
        s.entry = detail::aligned_block(file_.block(), file_.block());
      }
      // Worst case per slot: a payload of ceil(capacity / 2^30) prefix
      // pieces, a tail and the entry. Everything here, before the thread
      // starts: the ring's loop never allocates.
      const std::size_t per_slot = static_cast<std::size_t>(options.frame_capacity / kMaxPiece) + 3;
      pieces_.resize(per_slot * slots_.size());
      free_pieces_.reserve(pieces_.size());
      for (std::size_t p = pieces_.size(); p-- > 0;) free_pieces_.push_back(p);
      free_slots_.reserve(slots_.size());
      for (std::size_t i = slots_.size(); i-- > 0;) free_slots_.push_back(i);
      thread_ = std::thread([this] { run(); });
    } catch (...) {
      ::io_uring_queue_exit(&ring_);
      throw;
    }
  }

  UringRecorder(const UringRecorder&) = delete;
  UringRecorder& operator=(const UringRecorder&) = delete;
  /// close(). Never throws.
  ~UringRecorder() override { close(); }

  /// Waits for every frame in flight, stops the ring's thread, fdatasyncs
  /// and closes the file. Idempotent; never throws; errors go to error().
  void close() noexcept override {
    file_.begin_close();
    if (thread_.joinable()) {
      thread_.join();
      ::io_uring_queue_exit(&ring_);
    }
    file_.close_file();
  }

 private:
  enum class Stage { idle, payload, entry };
  struct Slot {
    detail::RecordJob job;
    std::size_t size = 0;
    unsigned pending = 0;  // requests of the stage not yet completed
    bool ok = true;
    Stage stage = Stage::idle;
    detail::AlignedBlock bounce;
    detail::AlignedBlock entry;
  };

  // One request's user_data: slot index and the piece's offset and length
  // are re-derived from the slot; the low bit tells which piece.
  static constexpr std::uint64_t kMaxPiece = std::uint64_t{1} << 30;  // an SQE's length is 32 bits

  std::size_t bounce_size() const noexcept { return file_.block() > 256 * 1024 ? file_.block() : 256 * 1024; }

  io_uring_sqe* sqe() noexcept {
    io_uring_sqe* e = ::io_uring_get_sqe(&ring_);
    if (e == nullptr) {  // full: hand what is queued to the kernel, then retry
      ::io_uring_submit(&ring_);
      e = ::io_uring_get_sqe(&ring_);
    }
    return e;
  }

  // Piece descriptor kept in a small per-request table so that a short
  // write can be finished synchronously with the right offset and bytes.
  struct Piece {
    std::size_t slot = 0;
    const std::byte* data = nullptr;
    std::size_t len = 0;
    std::uint64_t offset = 0;
  };

  bool add_write(std::size_t slot, const std::byte* data, std::size_t len, std::uint64_t offset) noexcept {
    while (len > 0) {
      const std::size_t n = len < kMaxPiece ? len : static_cast<std::size_t>(kMaxPiece);
      io_uring_sqe* e = sqe();
      if (e == nullptr) return false;
      std::size_t p = free_piece();
      pieces_[p] = Piece{slot, data, n, offset};
      ::io_uring_prep_write(e, file_.fd(), data, static_cast<unsigned>(n), offset);
      ::io_uring_sqe_set_data64(e, p);
      ++slots_[slot].pending;
      data += n;
      offset += n;
      len -= n;
    }
    return true;
  }

  std::size_t free_piece() noexcept {
    // pieces_ is sized at construction for the worst case; a free one
    // always exists (bounded by ring entries in flight).
    const std::size_t p = free_pieces_.back();
    free_pieces_.pop_back();
    return p;
  }

  void start(std::size_t i) noexcept {
    Slot& s = slots_[i];
    s.size = s.job.view.size();
    s.ok = true;
    s.pending = 0;
    s.stage = Stage::payload;
    if (file_.failed()) {
      s.ok = false;
      finish_payload(i);
      return;
    }
    const std::byte* data = s.job.view.data();
    const std::uint64_t at = file_.header().payload_offset(s.job.record);
    const std::size_t a = file_.block();
    bool submitted = true;
    if (!file_.direct()) {
      submitted = add_write(i, data, s.size, at);
    } else if (reinterpret_cast<std::uintptr_t>(data) % file_.mem_align() != 0) {
      // Not aligned for O_DIRECT (a heap copy): the copying path, synchronously.
      s.ok = file_.write_payload(s.job, s.bounce.get(), bounce_size());
    } else {
      const std::size_t prefix = s.size & ~(a - 1);
      const std::size_t tail = s.size - prefix;
      if (prefix != 0) submitted = add_write(i, data, prefix, at);
      if (submitted && tail != 0) {
        std::memcpy(s.bounce.get(), data + prefix, tail);
        std::memset(s.bounce.get() + tail, 0, a - tail);
        submitted = add_write(i, s.bounce.get(), a, at + prefix);
      }
    }
    if (!submitted) {
      s.ok = false;
      file_.fail(EAGAIN, s.job, "io_uring submission queue full for frame", 0, 0);
    }
    if (s.pending == 0) finish_payload(i);
  }

  void finish_payload(std::size_t i) noexcept {
    Slot& s = slots_[i];
    s.job.view.reset();  // written (or never will be): the buffer goes back to its pool
    if (!s.ok || file_.failed()) return done(i, false);
    if (file_.options().durable_index && !file_.sync(s.job)) return done(i, false);
    file_.encode_entry(s.job, s.size, s.entry.get());
    s.stage = Stage::entry;
    const std::size_t len = file_.direct() ? file_.block() : dqr::kEntryBytes;
    if (!add_write(i, s.entry.get(), len, file_.header().record_offset(s.job.record))) {
      file_.fail(EAGAIN, s.job, "io_uring submission queue full for the entry of frame", 0, 0);
      done(i, false);
    }
  }

  void done(std::size_t i, bool ok) noexcept {
    Slot& s = slots_[i];
    if (ok)
      file_.count_written(s.size);
    else
      file_.count_lost();
    s.stage = Stage::idle;
    --busy_;
    free_slots_.push_back(i);
    file_.finished();
  }

  void complete(io_uring_cqe* cqe) noexcept {
    const auto p = static_cast<std::size_t>(::io_uring_cqe_get_data64(cqe));
    const int res = cqe->res;
    ::io_uring_cqe_seen(&ring_, cqe);
    const Piece piece = pieces_[p];
    free_pieces_.push_back(p);
    Slot& s = slots_[piece.slot];
    if (res < 0) {
      if (s.ok) file_.fail(-res, s.job, s.stage == Stage::entry ? "io_uring write of index entry for frame" : "io_uring write of frame",
                           piece.offset, piece.len);
      s.ok = false;
    } else if (static_cast<std::size_t>(res) < piece.len && s.ok) {
      // A short write (a limit reached): finish it synchronously, which
      // either completes it or records the error with its offset.
      const auto n = static_cast<std::size_t>(res);
      s.ok = file_.write_all(piece.data + n, piece.len - n, piece.offset + n, s.job, "pwrite of frame (rest)");
    }
    if (--s.pending != 0) return;
    if (s.stage == Stage::payload)
      finish_payload(piece.slot);
    else
      done(piece.slot, s.ok);
  }

  void run() noexcept {
    for (;;) {
      // Start every queued frame there is room for.
      while (!free_slots_.empty()) {
        const std::size_t i = free_slots_.back();
        if (!file_.try_take(slots_[i].job)) break;
        free_slots_.pop_back();
        ++busy_;
        start(i);
      }
      ::io_uring_submit(&ring_);
      if (busy_ == 0) {
        if (file_.drained()) return;
        file_.wait_for_work(std::chrono::milliseconds(100));
        continue;
      }
      // Wait for a completion, but not long: a frame queued meanwhile
      // should start without waiting for the writes already in flight.
      io_uring_cqe* cqe = nullptr;
      __kernel_timespec ts{0, 1'000'000};
      const int w = ::io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
      if (w == 0 && cqe != nullptr) complete(cqe);
      while (::io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) complete(cqe);
    }
  }

  io_uring ring_{};
  std::vector<Slot> slots_;
  std::vector<Piece> pieces_;
  std::vector<std::size_t> free_pieces_;
  std::vector<std::size_t> free_slots_;
  std::size_t busy_ = 0;
  std::thread thread_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording
