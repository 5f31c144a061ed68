// daq_pool::hdf5: frames recorded into an HDF5 file, one frame = one chunk
// of an extensible (N, height, width) dataset, written with H5Dwrite_chunk
// straight from the view's memory (no type conversion, no filter pipeline,
// no copy in HDF5's chunk cache); frame numbers and timestamps in datasets
// of their own; SWMR, so that h5py can follow the file while it grows.
// Needs HDF5 >= 1.10.2. Link daq_pool::hdf5 or `pkg-config daq_pool-hdf5`.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <hdf5.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "daq_pool/bytes.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::hdf5 {

/// An HDF5 recording that could not be started or continued: what() names
/// the file and the HDF5 call.
class hdf5_error : public std::runtime_error {
 public:
  /// Builds the message. Allocates.
  explicit hdf5_error(const std::string& what) : std::runtime_error(what) {}
};

/// What an Hdf5Recorder writes. Read at construction.
struct Hdf5Options {
  /// The frames' element type as a numpy typestr: "|u1", "<u2", "<u4",
  /// "<u8", "|i1", "<i2", "<i4", "<i8", "<f4", "<f8".
  std::string dtype = "<u2";
  std::uint64_t height = 0;  ///< rows of a frame (required)
  std::uint64_t width = 0;   ///< columns of a frame (required)
  /// Dataset names: the frames, their frame numbers (uint64), their
  /// timestamps (int64, ns).
  std::string frames_dataset = "frames";
  std::string frame_numbers_dataset = "frame_numbers";  ///< see frames_dataset
  std::string timestamps_dataset = "timestamps";        ///< see frames_dataset
  /// Flush (H5Dflush of the three datasets) every this many frames, so that
  /// a SWMR reader sees them; 0: only at close. A flush costs metadata
  /// writes; 1 makes every frame visible at once.
  std::uint64_t flush_every = 10;
  /// Single-writer / multiple-reader mode (H5Fstart_swmr_write): readers may
  /// open the file while it is written, with
  /// h5py.File(path, 'r', libver='latest', swmr=True).
  bool swmr = true;
};

/// Counters of an Hdf5Recorder. Stale when read while recording.
struct Hdf5Stats {
  std::uint64_t frames_written = 0;  ///< frames in the dataset
  std::uint64_t bytes_written = 0;   ///< their bytes
  std::uint64_t frames_lost = 0;     ///< frames given and not written
  std::uint64_t errors = 0;          ///< failed HDF5 calls (the first is error())
  std::uint64_t flushes = 0;         ///< H5Dflush rounds
};

namespace detail {

/// The HDF5 type for a numpy typestr, or a negative id.
inline hid_t type_for(const std::string& dtype) noexcept {
  if (dtype == "|u1" || dtype == "u1") return H5T_STD_U8LE;
  if (dtype == "<u2") return H5T_STD_U16LE;
  if (dtype == "<u4") return H5T_STD_U32LE;
  if (dtype == "<u8") return H5T_STD_U64LE;
  if (dtype == "|i1" || dtype == "i1") return H5T_STD_I8LE;
  if (dtype == "<i2") return H5T_STD_I16LE;
  if (dtype == "<i4") return H5T_STD_I32LE;
  if (dtype == "<i8") return H5T_STD_I64LE;
  if (dtype == "<f4") return H5T_IEEE_F32LE;
  if (dtype == "<f8") return H5T_IEEE_F64LE;
  return -1;
}

/// Closes an HDF5 id with `close` when it goes.
template <herr_t (*Close)(hid_t)>
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) noexcept : id_(id) {}
  Id(Id&& o) noexcept : id_(std::exchange(o.id_, -1)) {}
  Id& operator=(Id&& o) noexcept {
    reset();
    id_ = std::exchange(o.id_, -1);
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { reset(); }
  void reset() noexcept {
    if (id_ >= 0) Close(id_);
    id_ = -1;
  }
  hid_t get() const noexcept { return id_; }
  /// Gives up the id without closing it.
  hid_t release() noexcept { return std::exchange(id_, -1); }
  explicit operator bool() const noexcept { return id_ >= 0; }

 private:
  hid_t id_ = -1;
};

/// Turns off HDF5's automatic error printing on this thread while it
/// lives, then puts the caller's handler back. Why: by default every failed
/// HDF5 call prints its whole error stack (a dozen lines per call, e.g. on
/// each EFBIG or ENOSPC) on the application's stderr, while the recorder
/// already reports the failure in error(); the handler is restored so that
/// the application's own HDF5 calls keep theirs. Two HDF5 calls, no
/// allocation.
class QuietErrors {
 public:
  QuietErrors() noexcept {
    if (H5Eget_auto2(H5E_DEFAULT, &func_, &data_) >= 0) saved_ = H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0;
  }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;
  ~QuietErrors() {
    if (saved_) H5Eset_auto2(H5E_DEFAULT, func_, data_);
  }

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
  bool saved_ = false;
};

}  // namespace detail

/// Records frames into an HDF5 file: `frames` (N, height, width) of the
/// frame's dtype, chunked one frame per chunk and extended by one per frame;
/// `frame_numbers` (N,) uint64 and `timestamps` (N,) int64. Each frame is
/// written with H5Dwrite_chunk from the view's memory, and the view is
/// released when the call returns. HDF5 (the serial build) is not
/// thread-safe: record() writes synchronously on the calling thread, so
/// one thread records (in a pipeline: the recorder's block subscriber).
///
/// A failed HDF5 call stops the recording: the first error is kept
/// (error(), naming the file, the call and the frame), later frames are
/// counted lost and released. Not thread-safe: one thread calls record(),
/// close() and stats(). HDF5 allocates inside its calls; record() itself
/// allocates nothing.
class Hdf5Recorder {
 public:
  /// Creates (truncates) `path` with the three datasets and, with
  /// options.swmr, starts SWMR writing. Throws std::invalid_argument (bad
  /// dtype or shape, naming it) or hdf5_error (naming the file and call).
  /// HDF5 prints no error stack from the recorder's calls: the error says it.
  Hdf5Recorder(std::string path, Hdf5Options options) : path_(std::move(path)), options_(std::move(options)) {
    const detail::QuietErrors quiet;
    type_ = detail::type_for(options_.dtype);
    if (type_ < 0) throw std::invalid_argument("daq_pool::hdf5: " + path_ + ": unsupported dtype '" + options_.dtype + "'");
    if (options_.height == 0 || options_.width == 0)
      throw std::invalid_argument("daq_pool::hdf5: " + path_ + ": options.height and options.width must be > 0");
    frame_bytes_ = options_.height * options_.width * H5Tget_size(type_);

    detail::Id<H5Pclose> fapl(H5Pcreate(H5P_FILE_ACCESS));
    // SWMR needs the latest file format.
    check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST), "H5Pset_libver_bounds");
    file_ = detail::Id<H5Fclose>(H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
    if (!file_) throw hdf5_error("daq_pool::hdf5: " + path_ + ": H5Fcreate failed (can the file be created?)");

    const hsize_t dims[3] = {0, options_.height, options_.width};
    const hsize_t maxdims[3] = {H5S_UNLIMITED, options_.height, options_.width};
    const hsize_t chunk[3] = {1, options_.height, options_.width};
    frames_ = make_dataset(options_.frames_dataset, type_, 3, dims, maxdims, chunk);
    const hsize_t dims1[1] = {0};
    const hsize_t maxdims1[1] = {H5S_UNLIMITED};
    const hsize_t chunk1[1] = {1024};
    numbers_ = make_dataset(options_.frame_numbers_dataset, H5T_STD_U64LE, 1, dims1, maxdims1, chunk1);
    stamps_ = make_dataset(options_.timestamps_dataset, H5T_STD_I64LE, 1, dims1, maxdims1, chunk1);
    if (options_.swmr) check(H5Fstart_swmr_write(file_.get()), "H5Fstart_swmr_write");
    const std::size_t batch = options_.flush_every != 0 && options_.flush_every < 1024 ? options_.flush_every : 1024;
    numbers_batch_.resize(batch);
    stamps_batch_.resize(batch);
  }

  Hdf5Recorder(const Hdf5Recorder&) = delete;
  Hdf5Recorder& operator=(const Hdf5Recorder&) = delete;
  /// close(). Never throws.
  ~Hdf5Recorder() { close(); }

  /// Appends `frame` (exactly height * width * itemsize bytes) as frame
  /// `frame_number` with `timestamp_ns`, then releases the view. false, the
  /// frame counted lost and the view released, if its size is wrong or the
  /// recording failed or is closed. Not thread-safe.
  bool record(Bytes frame, std::uint64_t frame_number, std::int64_t timestamp_ns) noexcept {
    if (failed_ || !file_ || frame.size() != frame_bytes_) {
      if (!failed_ && file_ && wrong_size_.empty()) {
        try {
          wrong_size_ = path_ + ": frame " + std::to_string(frame_number) + " has " + std::to_string(frame.size()) +
                        " bytes, a chunk " + std::to_string(frame_bytes_);
        } catch (...) {
        }
      }
      ++stats_.frames_lost;
      return false;
    }
    const detail::QuietErrors quiet;
    errno = 0;  // so that an error's errno (EFBIG, ENOSPC...) is this frame's
    const hsize_t n = stats_.frames_written;
    const hsize_t grow3[3] = {n + 1, options_.height, options_.width};
    const hsize_t at3[3] = {n, 0, 0};
    if (!ok(H5Dset_extent(frames_.get(), grow3), "H5Dset_extent of", frame_number) ||
        !ok(H5Dwrite_chunk(frames_.get(), H5P_DEFAULT, 0, at3, frame_bytes_, frame.data()), "H5Dwrite_chunk of",
            frame_number)) {
      ++stats_.frames_lost;
      return false;
    }
    // The frame numbers and timestamps wait in a preallocated batch, written
    // (two set_extent + two H5Dwrite) when it is full or at a flush: per
    // frame they cost more than the frame's chunk itself.
    numbers_batch_[batched_] = frame_number;
    stamps_batch_[batched_] = timestamp_ns;
    ++batched_;
    if (batched_ == numbers_batch_.size() && !write_batch()) {
      ++stats_.frames_lost;
      return false;
    }
    frame.reset();
    ++stats_.frames_written;
    stats_.bytes_written += frame_bytes_;
    if (options_.flush_every != 0 && stats_.frames_written % options_.flush_every == 0) flush();
    return true;
  }

  /// Flushes the datasets (a SWMR reader then sees every frame written).
  /// false on failure (recorded). Not thread-safe.
  bool flush() noexcept {
    if (failed_ || !file_) return false;
    const detail::QuietErrors quiet;
    ++stats_.flushes;
    return write_batch() && ok(H5Dflush(frames_.get()), "H5Dflush of the frames after frame", stats_.frames_written) &&
           ok(H5Dflush(numbers_.get()), "H5Dflush of the frame numbers after frame", stats_.frames_written) &&
           ok(H5Dflush(stamps_.get()), "H5Dflush of the timestamps after frame", stats_.frames_written);
  }

  /// Flushes and closes the file. Idempotent; never throws; errors go to
  /// error().
  void close() noexcept {
    if (!file_) return;
    const detail::QuietErrors quiet;
    flush();
    frames_.reset();
    numbers_.reset();
    stamps_.reset();
    // The id is closed (or unusable) after this either way: released first.
    // A failed H5Fclose can't be mended from here: HDF5 1.10.8 frees
    // the file but keeps its id (HDFFV-11052, fixed upstream in
    // HDFGroup/hdf5 PR 2291), and its exit handler then crashes on that id.
    // It fails when the file can't be extended to the end HDF5 allocated,
    // e.g. after EFBIG from RLIMIT_FSIZE (tests/hdf5/
    // test_hdf5_recorder_faults.cpp); ENOSPC on tmpfs closes cleanly.
    if (H5Fclose(file_.release()) < 0) note("H5Fclose", 0, false);
  }

  /// The counters. Not thread-safe (read on the recording thread).
  Hdf5Stats stats() const noexcept { return stats_; }
  /// The first error, naming the file, the call and the frame.
  std::optional<std::string> error() const {
    if (!failed_) return std::nullopt;
    return error_;
  }
  /// The first frame refused for its size, if any.
  std::optional<std::string> wrong_size() const {
    if (wrong_size_.empty()) return std::nullopt;
    return wrong_size_;
  }
  /// Bytes of one frame (height * width * itemsize). Never allocates.
  std::size_t frame_bytes() const noexcept { return frame_bytes_; }
  /// The file's path. Never allocates.
  const std::string& path() const noexcept { return path_; }

 private:
  void check(herr_t r, const char* call) const {
    if (r < 0) throw hdf5_error("daq_pool::hdf5: " + path_ + ": " + call + " failed");
  }

  detail::Id<H5Dclose> make_dataset(const std::string& name, hid_t type, int rank, const hsize_t* dims,
                                    const hsize_t* maxdims, const hsize_t* chunk) {
    detail::Id<H5Sclose> space(H5Screate_simple(rank, dims, maxdims));
    detail::Id<H5Pclose> dcpl(H5Pcreate(H5P_DATASET_CREATE));
    check(H5Pset_chunk(dcpl.get(), rank, chunk), "H5Pset_chunk");
    detail::Id<H5Dclose> d(H5Dcreate2(file_.get(), name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
    if (!d) throw hdf5_error("daq_pool::hdf5: " + path_ + ": H5Dcreate2 of dataset '" + name + "' failed");
    return d;
  }

  // Appends the batched frame numbers and timestamps (the frames before
  // them are in `frames` already).
  bool write_batch() noexcept {
    if (batched_ == 0) return true;
    const hsize_t first = written_meta_;
    const hsize_t count[1] = {batched_};
    const hsize_t grow[1] = {first + batched_};
    const std::uint64_t frame = numbers_batch_[batched_ - 1];
    if (!ok(H5Dset_extent(numbers_.get(), grow), "H5Dset_extent (frame numbers) up to", frame) ||
        !ok(H5Dset_extent(stamps_.get(), grow), "H5Dset_extent (timestamps) up to", frame) ||
        !write_many(numbers_.get(), H5T_NATIVE_UINT64, first, count, numbers_batch_.data(), frame) ||
        !write_many(stamps_.get(), H5T_NATIVE_INT64, first, count, stamps_batch_.data(), frame))
      return false;
    written_meta_ += batched_;
    batched_ = 0;
    return true;
  }

  bool write_many(hid_t dset, hid_t mem_type, hsize_t at, const hsize_t* count, const void* values,
                  std::uint64_t frame) noexcept {
    detail::Id<H5Sclose> fspace(H5Dget_space(dset));
    detail::Id<H5Sclose> mspace(H5Screate_simple(1, count, nullptr));
    const hsize_t start[1] = {at};
    if (!fspace || !mspace || H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0)
      return ok(-1, "selecting the elements up to", frame);
    return ok(H5Dwrite(dset, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, values), "H5Dwrite (metadata) up to",
              frame);
  }

  bool ok(herr_t r, const char* what, std::uint64_t frame) noexcept {
    if (r >= 0) return true;
    note(what, frame, true);
    return false;
  }

  void note(const char* what, std::uint64_t frame, bool with_frame) noexcept {
    ++stats_.errors;
    if (failed_) return;
    failed_ = true;
    try {
      error_ = path_ + ": " + what + (with_frame ? " frame " + std::to_string(frame) : std::string()) + " failed";
      const int err = errno;
      if (err != 0) error_ += " (" + std::generic_category().message(err) + ")";
    } catch (...) {
    }
  }

  std::string path_;
  Hdf5Options options_;
  hid_t type_ = -1;
  std::size_t frame_bytes_ = 0;
  detail::Id<H5Fclose> file_;
  detail::Id<H5Dclose> frames_;
  detail::Id<H5Dclose> numbers_;
  detail::Id<H5Dclose> stamps_;
  std::vector<std::uint64_t> numbers_batch_;  // frame numbers not yet written
  std::vector<std::int64_t> stamps_batch_;    // their timestamps
  std::size_t batched_ = 0;
  hsize_t written_meta_ = 0;  // frame numbers / timestamps written
  Hdf5Stats stats_;
  bool failed_ = false;
  std::string error_;
  std::string wrong_size_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::hdf5
