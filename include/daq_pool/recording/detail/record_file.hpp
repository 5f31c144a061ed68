// The recorder's file and bookkeeping, shared by its backends (writer threads
// in recorder.hpp, io_uring in daq_pool/uring.hpp): opening with O_DIRECT
// (or the reported buffered fallback), the block size from statx, the
// header, aligned scratch blocks, the bounded queue of frames, the counters
// and the first error. Linux only; no dependency.
//
// Over 600 lines, one concept: the on-disk side of a recording, which both
// backends must do identically (one file, so that they cannot drift apart).
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "daq_pool/bytes.hpp"
#include "daq_pool/recording/dqr_format.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording {

/// A recording that could not be started or continued: what() names the
/// file, the operation, the offset where there is one, and the system's
/// reason ("rec.dqr: pwrite of frame 17 (record 17) at offset 143654912,
/// 8388608 bytes: File too large"). code() is the errno.
class recording_error : public std::system_error {
 public:
  /// Builds the message from its parts. Allocates.
  recording_error(int err, const std::string& what) : std::system_error(err, std::generic_category(), what) {}
};

/// How a Recorder writes. Read at construction; see each field.
struct RecorderOptions {
  /// The largest frame, in bytes (required, > 0): every record of the file
  /// has room for this many (the file's frame_capacity). A larger frame is
  /// refused and counted lost.
  std::size_t frame_capacity = 0;
  /// What a frame is (dtype, shape, pixel format), stored in the header.
  dqr::FrameLayout layout;
  /// Frames in flight at once (queued + being written), >= 1: the number of
  /// pool buffers the recorder may hold. Size the pool for it: a camera
  /// needs its own buffers on top (docs/recording.md, "Sizing the pool").
  std::size_t queue_depth = 4;
  /// Writer threads of the portable backend (0: queue_depth + 1 of them).
  std::size_t writer_threads = 0;
  /// Ask for O_DIRECT (default). false: always write through the page cache.
  bool direct = true;
  /// When the filesystem refuses O_DIRECT (EINVAL): true (default) falls
  /// back to buffered writes and reports it (RecorderStats::direct_io false,
  /// fallback_reason()); false throws recording_error instead.
  bool allow_buffered_fallback = true;
  /// fdatasync between each payload's completion and its index entry, so
  /// that the index survives power loss and not only SIGKILL (a cache flush
  /// per frame: slower). Sets the header's durable_index flag.
  bool durable_index = false;
  /// 0 (default): every frame gets the next record. N > 0: a scratch
  /// recording that reuses N records in a ring (record = frame count mod N),
  /// so the file never exceeds header + N strides however long the run; the
  /// file then lists, in slot order, the last N frames committed. For a
  /// throwaway sink (the demo's default), not for data you keep.
  std::uint64_t ring_records = 0;
};

/// A Recorder's counters. Read with Recorder::stats(); stale the moment it
/// is read while frames are in flight.
struct RecorderStats {
  std::uint64_t frames_written = 0;  ///< frames whose payload and entry are written
  std::uint64_t bytes_written = 0;   ///< their payload bytes
  std::uint64_t frames_lost = 0;     ///< frames given to the recorder and not written
  std::uint64_t errors = 0;          ///< failed system calls (the first is error())
  std::uint64_t frames_copied = 0;   ///< views not aligned for O_DIRECT, copied through the bounce buffer
  std::uint64_t in_flight = 0;       ///< frames (buffers) held right now; their entries may still be in flight
  bool direct_io = false;            ///< O_DIRECT in use (false: buffered, see fallback_reason)
  std::uint32_t block_size = 0;      ///< the file's alignment A (bytes)
  std::uint32_t dio_mem_align = 0;   ///< memory alignment O_DIRECT needs (bytes)
};

namespace detail {

/// `size` bytes aligned to `align`, freed by the deleter.
struct FreeDeleter {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using AlignedBlock = std::unique_ptr<std::byte, FreeDeleter>;

inline AlignedBlock aligned_block(std::size_t align, std::size_t size) {
  void* p = std::aligned_alloc(align, dqr::round_up(size, align));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size);
  return AlignedBlock(static_cast<std::byte*>(p));
}

/// One frame handed to the recorder: the view (held until its payload is
/// written), where it goes and what its entry says.
struct RecordJob {
  Bytes view;
  std::uint64_t record = 0;
  std::uint64_t frame_number = 0;
  std::int64_t timestamp_ns = 0;
};

/// The file and the state every backend shares. Thread-safe where said.
class RecordFile {
 public:
  RecordFile(std::string path, const RecorderOptions& options) : path_(std::move(path)), options_(options) {
    if (options_.frame_capacity == 0)
      throw std::invalid_argument("daq_pool recorder: " + path_ + ": options.frame_capacity is 0");
    if (options_.queue_depth == 0)
      throw std::invalid_argument("daq_pool recorder: " + path_ + ": options.queue_depth is 0");
    if (options_.ring_records != 0 && options_.ring_records <= options_.queue_depth)
      throw std::invalid_argument("daq_pool recorder: " + path_ + ": options.ring_records (" +
                                  std::to_string(options_.ring_records) + ") must exceed queue_depth");
    if (options_.frame_capacity > (std::size_t{1} << 48))
      throw std::invalid_argument("daq_pool recorder: " + path_ + ": options.frame_capacity exceeds 2^48");
    jobs_.resize(options_.queue_depth);
    open_file();
  }

  RecordFile(const RecordFile&) = delete;
  RecordFile& operator=(const RecordFile&) = delete;
  ~RecordFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  const std::string& path() const noexcept { return path_; }
  const RecorderOptions& options() const noexcept { return options_; }
  const dqr::FileHeader& header() const noexcept { return header_; }
  int fd() const noexcept { return fd_; }
  bool direct() const noexcept { return direct_; }
  std::uint32_t block() const noexcept { return header_.alignment; }
  std::uint32_t mem_align() const noexcept { return mem_align_; }
  const std::string& fallback_reason() const noexcept { return fallback_reason_; }

  // ---- admission: the bounded queue (mutex + condition variables: neither
  // allocates; a frame costs one lock to queue and one to take) ----------

  /// Queues `view` as the next record, waiting while queue_depth frames are
  /// in flight. false (the view released, the frame counted lost) if the
  /// recording failed or is closed, or the frame is too large. Thread-safe.
  bool push(Bytes&& view, std::uint64_t frame_number, std::int64_t timestamp_ns) noexcept {
    if (view.size() > options_.frame_capacity) {
      note_oversize(view.size(), frame_number);
      view.reset();
      frames_lost_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return in_flight_ < options_.queue_depth || closing_ || failed(); });
    if (closing_ || failed()) {
      lock.unlock();
      view.reset();
      frames_lost_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    RecordJob& j = jobs_[(head_ + queued_) % jobs_.size()];
    j.view = std::move(view);
    j.record = options_.ring_records != 0 ? next_record_++ % options_.ring_records : next_record_++;
    preallocate(j.record);
    j.frame_number = frame_number;
    j.timestamp_ns = timestamp_ns;
    ++queued_;
    ++in_flight_;
    lock.unlock();
    work_.notify_one();
    return true;
  }

  /// Takes the oldest queued frame into `out`, waiting for one; false once
  /// closing and nothing is queued. Thread-safe.
  bool take(RecordJob& out) noexcept {
    std::unique_lock lock(mutex_);
    work_.wait(lock, [&] { return queued_ > 0 || closing_; });
    return take_locked(out);
  }

  /// Takes a queued frame if there is one, without waiting. Thread-safe.
  bool try_take(RecordJob& out) noexcept {
    std::lock_guard lock(mutex_);
    return take_locked(out);
  }

  /// Waits until a frame is queued, closing starts, or `wake()` (for a
  /// backend that also waits for completions), at most `timeout`.
  void wait_for_work(std::chrono::milliseconds timeout) noexcept {
    std::unique_lock lock(mutex_);
    work_.wait_for(lock, timeout, [&] { return queued_ > 0 || closing_ || woken_; });
    woken_ = false;
  }

  /// True once closing started and nothing is queued. Thread-safe.
  bool drained() noexcept {
    std::lock_guard lock(mutex_);
    return closing_ && queued_ == 0;
  }

  /// A frame taken by take() is finished (written or lost): frees its place.
  /// Thread-safe.
  void finished() noexcept {
    {
      std::lock_guard lock(mutex_);
      --in_flight_;
    }
    space_.notify_one();
    idle_.notify_all();
  }

  /// Starts closing: push() refuses, take() returns false once the queue is
  /// empty. Thread-safe, idempotent.
  void begin_close() noexcept {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    work_.notify_all();
    space_.notify_all();
  }

  /// Waits until nothing is in flight. Thread-safe.
  void wait_idle() noexcept {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return in_flight_ == 0; });
  }

  // ---- writing --------------------------------------------------------

  /// Writes all of [data, data + n) at `offset`, retrying EINTR and short
  /// writes. On failure records the error (naming the file, `what` and the
  /// offset) and returns false. Never allocates, except the first error's
  /// message.
  bool write_all(const std::byte* data, std::size_t n, std::uint64_t offset, const RecordJob& job,
                 const char* what) noexcept {
    std::size_t done = 0;
    while (done < n) {
      const ssize_t w = ::pwrite(fd_, data + done, n - done, static_cast<off_t>(offset + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        fail(w < 0 ? errno : EIO, job, what, offset + done, n - done);
        return false;
      }
      done += static_cast<std::size_t>(w);
    }
    return true;
  }

  /// The payload of `job` into its record, from the view's own memory:
  /// the block-aligned prefix straight from the view, the tail through
  /// `bounce` (block() bytes at least, aligned); a view whose memory is not
  /// aligned for O_DIRECT goes through `bounce` in pieces of `bounce_size`
  /// (counted as frames_copied). Buffered: one pwrite of the view. Never
  /// allocates.
  bool write_payload(const RecordJob& job, std::byte* bounce, std::size_t bounce_size) noexcept {
    const std::byte* data = job.view.data();
    const std::size_t size = job.view.size();
    const std::uint64_t at = header_.payload_offset(job.record);
    if (!direct_) return write_all(data, size, at, job, "pwrite of frame");
    const std::size_t a = block();
    if (reinterpret_cast<std::uintptr_t>(data) % mem_align_ != 0) {
      frames_copied_.fetch_add(1, std::memory_order_relaxed);
      for (std::size_t done = 0; done < size;) {
        const std::size_t n = size - done < bounce_size ? size - done : bounce_size;
        std::memcpy(bounce, data + done, n);
        const std::size_t padded = static_cast<std::size_t>(dqr::round_up(n, a));
        std::memset(bounce + n, 0, padded - n);
        if (!write_all(bounce, padded, at + done, job, "pwrite of frame (copied)")) return false;
        done += n;
      }
      return true;
    }
    const std::size_t prefix = size & ~(a - 1);
    if (prefix != 0 && !write_all(data, prefix, at, job, "pwrite of frame")) return false;
    const std::size_t tail = size - prefix;
    if (tail != 0) {
      std::memcpy(bounce, data + prefix, tail);
      std::memset(bounce + tail, 0, a - tail);
      if (!write_all(bounce, a, at + prefix, job, "pwrite of frame tail")) return false;
    }
    return true;
  }

  /// The entry of `job` (its payload written), through `block_buf` (block()
  /// bytes, aligned, zero past the entry). With durable_index, fdatasync
  /// first. Never allocates.
  bool write_entry(const RecordJob& job, std::size_t payload_size, std::byte* block_buf) noexcept {
    if (options_.durable_index && !sync(job)) return false;
    encode_entry(job, payload_size, block_buf);
    return write_all(block_buf, direct_ ? block() : dqr::kEntryBytes, header_.record_offset(job.record), job,
                     "pwrite of index entry for frame");
  }

  /// Encodes `job`'s entry into the first kEntryBytes of `out`.
  void encode_entry(const RecordJob& job, std::size_t payload_size, std::byte* out) const noexcept {
    dqr::IndexEntry e;
    e.record = job.record;
    e.frame_number = job.frame_number;
    e.timestamp_ns = job.timestamp_ns;
    e.payload_offset = header_.payload_offset(job.record);
    e.payload_size = payload_size;
    e.file_id = header_.file_id;
    dqr::encode_entry(e, std::span<std::byte, dqr::kEntryBytes>(out, dqr::kEntryBytes));
  }

  /// fdatasync, the failure recorded. Never allocates (but the message).
  bool sync(const RecordJob& job) noexcept {
    if (::fdatasync(fd_) == 0) return true;
    fail(errno, job, "fdatasync before index entry of frame", 0, 0);
    return false;
  }

  /// Notes that record `record`'s payload of `size` bytes is on the disk:
  /// the file is cut to the end of the last one at close. Thread-safe.
  void note_end(std::uint64_t record, std::size_t size) noexcept {
    const std::uint64_t end = header_.payload_offset(record) +
                              (direct_ ? dqr::round_up(size, block()) : static_cast<std::uint64_t>(size));
    std::uint64_t seen = end_.load(std::memory_order_relaxed);
    // relaxed: a maximum read after the writers are joined.
    while (seen < end && !end_.compare_exchange_weak(seen, end, std::memory_order_relaxed)) {
    }
  }

  /// Counts a written frame. Thread-safe.
  void count_written(std::size_t bytes) noexcept {
    frames_written_.fetch_add(1, std::memory_order_relaxed);
    bytes_written_.fetch_add(bytes, std::memory_order_relaxed);
  }
  /// Counts a lost frame. Thread-safe.
  void count_lost() noexcept { frames_lost_.fetch_add(1, std::memory_order_relaxed); }

  /// Records a failure: the first one's message is kept; later pushes are
  /// refused. Thread-safe. Allocates the first message only.
  void fail(int err, const RecordJob& job, const char* what, std::uint64_t offset, std::size_t bytes) noexcept {
    errors_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(error_mutex_);
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      error_ = path_ + ": " + what + " " + std::to_string(job.frame_number) + " (record " +
               std::to_string(job.record) + ")";
      if (bytes != 0) error_ += " at offset " + std::to_string(offset) + ", " + std::to_string(bytes) + " bytes";
      error_ += ": " + std::generic_category().message(err);
    } catch (...) {
      error_.clear();  // out of memory: the code still says what
    }
    error_code_ = err;
    // release: pairs with the acquire in failed(), so a thread that sees the
    // flag sees the message.
    failed_.store(true, std::memory_order_release);
    wake_waiters();
  }

  /// Wakes push() (which refuses once failed) and a backend waiting in
  /// wait_for_work(). Locks the queue's mutex first, so that a waiter that
  /// has checked its predicate is asleep before the notify (no lost wakeup).
  void wake_waiters() noexcept {
    {
      std::lock_guard lock(mutex_);
      woken_ = true;
    }
    space_.notify_all();
    work_.notify_all();
  }

  /// Records a failure of the file as a whole (e.g. the final fdatasync).
  void fail_file(int err, const char* what) noexcept {
    errors_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(error_mutex_);
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      error_ = path_ + ": " + what + ": " + std::generic_category().message(err);
    } catch (...) {
      error_.clear();
    }
    error_code_ = err;
    failed_.store(true, std::memory_order_release);
  }

  /// True once a write failed. Thread-safe.
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }

  /// The first error's message, if any. Thread-safe; allocates the copy.
  std::optional<std::string> error() const {
    if (!failed()) return std::nullopt;
    std::lock_guard lock(error_mutex_);
    return error_;
  }
  /// The first error's errno (0 if none). Thread-safe.
  int error_code() const noexcept {
    if (!failed()) return 0;
    std::lock_guard lock(error_mutex_);
    return error_code_;
  }

  /// The counters. Thread-safe; stale when read.
  RecorderStats stats() const noexcept {
    RecorderStats s;
    s.frames_written = frames_written_.load(std::memory_order_relaxed);
    s.bytes_written = bytes_written_.load(std::memory_order_relaxed);
    s.frames_lost = frames_lost_.load(std::memory_order_relaxed);
    s.errors = errors_.load(std::memory_order_relaxed);
    s.frames_copied = frames_copied_.load(std::memory_order_relaxed);
    {
      std::lock_guard lock(mutex_);
      s.in_flight = in_flight_;
    }
    s.direct_io = direct_;
    s.block_size = header_.alignment;
    s.dio_mem_align = mem_align_;
    return s;
  }

  /// fdatasync at the end (the recording is durable when close returns) and
  /// close the file; failures recorded. Idempotent.
  void close_file() noexcept {
    if (fd_ < 0) return;
    // The preallocated space past the last frame goes (a file cut short by
    // a crash keeps it: its entries are zero, i.e. nothing committed).
    if (allocated_ != 0) {
      const std::uint64_t end = end_.load(std::memory_order_relaxed);
      const std::uint64_t keep = end > header_.alignment ? end : header_.alignment;
      if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) fail_file(errno, "ftruncate at close");
    }
    if (::fdatasync(fd_) != 0) fail_file(errno, "fdatasync at close");
    if (::close(fd_) != 0 && errno != EINTR) fail_file(errno, "close");
    fd_ = -1;
  }

 private:
  // Allocates the file ahead of the writes, kPreallocate bytes at a time
  // (fallocate: contiguous extents, the size set), so that O_DIRECT writes
  // land in allocated blocks instead of extending the file one frame (and
  // one entry block into a hole) at a time, which costs ext4 an allocation
  // and a size update per write. Best effort: a refusal (no room, a file
  // size limit, a filesystem without fallocate) stops it and the writes
  // meet the condition themselves. Called with the queue's mutex held.
  void preallocate(std::uint64_t record) noexcept {
    if (prealloc_off_ || options_.ring_records != 0) return;
    const std::uint64_t need = header_.record_offset(record + 1);
    if (need <= allocated_) return;
    const std::uint64_t from = allocated_ != 0 ? allocated_ : header_.alignment;
    const std::uint64_t to = need + kPreallocate;
    if (::fallocate(fd_, 0, static_cast<off_t>(from), static_cast<off_t>(to - from)) != 0) {
      prealloc_off_ = true;
      return;
    }
    allocated_ = to;
  }
  static constexpr std::uint64_t kPreallocate = std::uint64_t{256} << 20;

  bool take_locked(RecordJob& out) noexcept {
    if (queued_ == 0) return false;
    RecordJob& j = jobs_[head_];
    out.view = std::move(j.view);
    out.record = j.record;
    out.frame_number = j.frame_number;
    out.timestamp_ns = j.timestamp_ns;
    head_ = (head_ + 1) % jobs_.size();
    --queued_;
    return true;
  }

  void note_oversize(std::size_t size, std::uint64_t frame) noexcept {
    std::lock_guard lock(error_mutex_);
    if (oversize_.empty()) {
      try {
        oversize_ = path_ + ": frame " + std::to_string(frame) + " of " + std::to_string(size) +
                    " bytes exceeds frame_capacity " + std::to_string(options_.frame_capacity);
      } catch (...) {
      }
    }
  }

  void open_file() {
    const int base = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    direct_ = options_.direct;
    if (direct_) {
      fd_ = ::open(path_.c_str(), base | O_DIRECT, 0644);
      if (fd_ < 0 && errno == EINVAL) refuse_direct("open with O_DIRECT: " + std::generic_category().message(EINVAL));
    }
    if (fd_ < 0) fd_ = ::open(path_.c_str(), base, 0644);
    if (fd_ < 0) throw recording_error(errno, "daq_pool recorder: open " + path_);
    std::uint32_t offset_align = 0;
    mem_align_ = 4096;
#ifdef STATX_DIOALIGN
    struct statx sx {};
    if (::statx(fd_, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) != 0) {
      if (direct_ && sx.stx_dio_offset_align == 0) {
        // The kernel says this file can't do direct I/O at all.
        ::close(fd_);
        fd_ = -1;
        refuse_direct("statx reports no direct I/O support (stx_dio_offset_align 0)");
        fd_ = ::open(path_.c_str(), base, 0644);
        if (fd_ < 0) throw recording_error(errno, "daq_pool recorder: open " + path_);
      }
      offset_align = sx.stx_dio_offset_align;
      if (sx.stx_dio_mem_align != 0) mem_align_ = sx.stx_dio_mem_align;
    }
#endif
    // Without statx's answer: 4096 covers every logical block size up to a
    // page (512 and 4096 in practice).
    std::uint32_t a = dqr::kMinAlignment;
    while (a < offset_align) a <<= 1;
    if (a > dqr::kMaxAlignment) {
      ::close(fd_);
      fd_ = -1;
      throw recording_error(EINVAL, "daq_pool recorder: " + path_ + ": direct I/O alignment " +
                                        std::to_string(offset_align) + " exceeds 2^20");
    }
    if (mem_align_ < 64) mem_align_ = 64;

    header_.alignment = a;
    header_.frame_capacity = options_.frame_capacity;
    header_.record_stride = dqr::stride_for(options_.frame_capacity, a);
    header_.created_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    std::uint64_t id = 0;
    if (::getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id))
      id = static_cast<std::uint64_t>(header_.created_ns) ^ static_cast<std::uint64_t>(::getpid());
    header_.file_id = id;
    header_.layout = options_.layout;
    write_header();
  }

  void write_header() {
    header_.flags = (options_.durable_index ? dqr::kFlagDurableIndex : 0) | (direct_ ? 0 : dqr::kFlagBuffered);
    AlignedBlock block = aligned_block(header_.alignment, header_.alignment);
    dqr::encode_header(header_, std::span<std::byte, dqr::kHeaderBytes>(block.get(), dqr::kHeaderBytes));
    ssize_t w = ::pwrite(fd_, block.get(), header_.alignment, 0);
    if (w < 0 && errno == EINVAL && direct_) {
      // Accepted at open, refused at the first write: fall back here.
      refuse_direct("the first O_DIRECT write: " + std::generic_category().message(EINVAL));
      const int flags = ::fcntl(fd_, F_GETFL);
      if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0)
        throw recording_error(errno, "daq_pool recorder: " + path_ + ": clearing O_DIRECT");
      header_.flags |= dqr::kFlagBuffered;
      dqr::encode_header(header_, std::span<std::byte, dqr::kHeaderBytes>(block.get(), dqr::kHeaderBytes));
      w = ::pwrite(fd_, block.get(), header_.alignment, 0);
    }
    if (w != static_cast<ssize_t>(header_.alignment)) {
      const int err = w < 0 ? errno : EIO;
      ::close(fd_);
      fd_ = -1;
      throw recording_error(err, "daq_pool recorder: " + path_ + ": writing the header at offset 0");
    }
  }

  void refuse_direct(const std::string& why) {
    if (!options_.allow_buffered_fallback)
      throw recording_error(EINVAL, "daq_pool recorder: " + path_ + ": O_DIRECT refused (" + why +
                                        ") and allow_buffered_fallback is false");
    direct_ = false;
    fallback_reason_ = "O_DIRECT refused (" + why + "): writing through the page cache";
  }

 public:
  /// The message about the first frame refused as too large, if any.
  std::optional<std::string> oversize() const {
    std::lock_guard lock(error_mutex_);
    if (oversize_.empty()) return std::nullopt;
    return oversize_;
  }

 private:
  std::string path_;
  RecorderOptions options_;
  dqr::FileHeader header_;
  int fd_ = -1;
  bool direct_ = false;
  std::uint32_t mem_align_ = 4096;
  std::string fallback_reason_;

  mutable std::mutex mutex_;
  std::condition_variable space_;  // push waits for room
  std::condition_variable work_;   // take waits for a frame
  std::condition_variable idle_;   // close waits for nothing in flight
  std::vector<RecordJob> jobs_;    // ring of queue_depth
  std::size_t head_ = 0;
  std::size_t queued_ = 0;
  std::size_t in_flight_ = 0;  // queued + taken and not finished
  std::uint64_t next_record_ = 0;
  std::uint64_t allocated_ = 0;   // file bytes fallocated (0: none yet)
  bool prealloc_off_ = false;     // fallocate refused once: not tried again
  std::atomic<std::uint64_t> end_{0};  // end of the last payload written
  bool closing_ = false;
  bool woken_ = false;

  std::atomic<std::uint64_t> frames_written_{0};
  std::atomic<std::uint64_t> bytes_written_{0};
  std::atomic<std::uint64_t> frames_lost_{0};
  std::atomic<std::uint64_t> errors_{0};
  std::atomic<std::uint64_t> frames_copied_{0};

  mutable std::mutex error_mutex_;
  std::atomic<bool> failed_{false};
  std::string error_;
  int error_code_ = 0;
  std::string oversize_;
};

/// Now on the system clock, ns since the Unix epoch. Never allocates.
inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace detail
}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording
