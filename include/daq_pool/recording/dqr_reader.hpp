// Reading a .dqr recording (daq_pool/recording/dqr_format.hpp): the header,
// the index rebuilt from the records' entries, and frames read by pread.
// Linux / POSIX only; no dependency.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "daq_pool/recording/dqr_format.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording {

/// A .dqr file that can't be read as one: what() names the file, the offset
/// and the problem ("rec.dqr: offset 4096: index entry checksum mismatch").
class format_error : public std::runtime_error {
 public:
  /// Builds the message from its parts. Allocates.
  format_error(std::string path, std::uint64_t offset, const std::string& what)
      : std::runtime_error(path + ": offset " + std::to_string(offset) + ": " + what),
        path_(std::move(path)),
        offset_(offset) {}
  /// The file. Never allocates.
  const std::string& path() const noexcept { return path_; }
  /// Where in the file the problem is. Never allocates.
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::string path_;
  std::uint64_t offset_;
};

/// How DqrReader treats a damaged index entry (neither valid nor empty).
struct DqrReaderOptions {
  /// false (default): throw format_error at the first damaged entry. true:
  /// skip it, count it in damaged_entries() and keep scanning (recovery).
  bool skip_damaged = false;
};

/// Opens a .dqr file, checks its header, and scans every record slot to
/// rebuild the index: the frames whose entries reached the disk, in record
/// order. A file cut short (SIGKILL, power loss, a full disk) opens and
/// lists exactly the frames committed before the cut; a frame whose entry is
/// valid but whose payload runs past the end of the file is an error (the
/// writer never commits an entry before its payload). Every number read is
/// validated; bad files give format_error naming the file and the offset.
///
/// Not thread-safe for concurrent use of one object (reads use pread and
/// could be made so, but nothing promises it). Opening allocates the index;
/// reading a frame into a caller's buffer does not.
class DqrReader {
 public:
  /// Opens and scans `path`. Throws format_error (bad file) or
  /// std::system_error (can't open / read).
  explicit DqrReader(std::string path, DqrReaderOptions options = {}) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "daq_pool: open " + path_);
    try {
      scan(options);
    } catch (...) {
      ::close(fd_);
      throw;
    }
  }

  /// Reads the recording in `fd` (not owned: it must stay open while the
  /// reader lives), naming it `name` in errors. Same checks as above.
  DqrReader(int fd, std::string name, DqrReaderOptions options = {}) : path_(std::move(name)), fd_(fd), owns_(false) {
    scan(options);
  }

  DqrReader(const DqrReader&) = delete;
  DqrReader& operator=(const DqrReader&) = delete;
  ~DqrReader() {
    if (owns_ && fd_ >= 0) ::close(fd_);
  }

  /// The file's header. Never allocates.
  const dqr::FileHeader& header() const noexcept { return header_; }
  /// The committed frames, in record order (frame numbers as written).
  /// Never allocates.
  const std::vector<dqr::IndexEntry>& index() const noexcept { return index_; }
  /// Number of committed frames. Never allocates.
  std::size_t size() const noexcept { return index_.size(); }
  /// Empty record slots before the last committed frame: frames the
  /// recorder started but never committed (lost in a crash or a failed
  /// write). Never allocates.
  std::uint64_t holes() const noexcept { return holes_; }
  /// Damaged entries skipped (only with skip_damaged). Never allocates.
  std::uint64_t damaged_entries() const noexcept { return damaged_; }
  /// The file's name as given. Never allocates.
  const std::string& path() const noexcept { return path_; }

  /// Reads frame `i`'s payload (index()[i].payload_size bytes) into `out`,
  /// which must be at least that large. Throws std::out_of_range (bad i or
  /// small out), format_error (the file shrank since it was opened) or
  /// std::system_error. Never allocates, except on error.
  void read(std::size_t i, std::span<std::byte> out) const {
    if (i >= index_.size())
      throw std::out_of_range("daq_pool: " + path_ + ": frame " + std::to_string(i) + " of " +
                              std::to_string(index_.size()));
    const dqr::IndexEntry& e = index_[i];
    if (out.size() < e.payload_size)
      throw std::out_of_range("daq_pool: " + path_ + ": frame " + std::to_string(i) + " has " +
                              std::to_string(e.payload_size) + " bytes, buffer " + std::to_string(out.size()));
    read_exact(e.payload_offset, out.first(static_cast<std::size_t>(e.payload_size)), "frame payload");
  }

  /// Frame `i`'s payload as a new vector. Allocates; same errors as read().
  std::vector<std::byte> read(std::size_t i) const {
    if (i >= index_.size())
      throw std::out_of_range("daq_pool: " + path_ + ": frame " + std::to_string(i) + " of " +
                              std::to_string(index_.size()));
    std::vector<std::byte> v(static_cast<std::size_t>(index_[i].payload_size));
    read(i, v);
    return v;
  }

 private:
  void read_exact(std::uint64_t offset, std::span<std::byte> out, const char* what) const {
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::system_error(errno, std::generic_category(),
                                "daq_pool: " + path_ + ": pread at offset " + std::to_string(offset + done));
      }
      if (n == 0)
        throw format_error(path_, offset + done,
                           std::string(what) + " truncated: " + std::to_string(out.size() - done) + " of " +
                               std::to_string(out.size()) + " bytes missing at the end of the file");
      done += static_cast<std::size_t>(n);
    }
  }

  void scan(const DqrReaderOptions& options) {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw std::system_error(errno, std::generic_category(), "daq_pool: fstat " + path_);
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    std::byte head[dqr::kHeaderBytes] = {};
    const std::size_t have = file_size < dqr::kHeaderBytes ? static_cast<std::size_t>(file_size) : dqr::kHeaderBytes;
    read_exact(0, {head, have}, "header");
    dqr::HeaderProblem problem;
    auto h = dqr::decode_header({head, have}, problem);
    if (!h) throw format_error(path_, problem.offset, problem.what);
    header_ = std::move(*h);

    const std::uint64_t a = header_.alignment;
    const std::uint64_t s = header_.record_stride;
    const std::uint64_t slots = file_size <= a ? 0 : (file_size - a + s - 1) / s;
    std::uint64_t empty_run = 0;
    for (std::uint64_t i = 0; i < slots; ++i) {
      const std::uint64_t at = header_.record_offset(i);
      if (at + dqr::kEntryBytes > file_size) break;  // cut inside an entry block: nothing committed there
      std::byte raw[dqr::kEntryBytes];
      read_exact(at, raw, "index entry");
      dqr::IndexEntry e;
      std::string why;
      switch (dqr::decode_entry(std::span<const std::byte, dqr::kEntryBytes>(raw), header_, i, e, why)) {
        case dqr::EntryState::empty:
          ++empty_run;
          break;
        case dqr::EntryState::damaged:
          if (!options.skip_damaged) throw format_error(path_, at, why);
          ++damaged_;
          break;
        case dqr::EntryState::valid:
          if (e.payload_offset + e.payload_size > file_size)
            throw format_error(path_, e.payload_offset,
                               "frame " + std::to_string(e.frame_number) + " (record " + std::to_string(i) +
                                   ") truncated: its payload of " + std::to_string(e.payload_size) +
                                   " bytes runs past the end of the file (" + std::to_string(file_size) + " bytes)");
          holes_ += empty_run;
          empty_run = 0;
          index_.push_back(e);
          break;
      }
    }
  }

  std::string path_;
  int fd_ = -1;
  bool owns_ = true;
  dqr::FileHeader header_;
  std::vector<dqr::IndexEntry> index_;
  std::uint64_t holes_ = 0;
  std::uint64_t damaged_ = 0;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::recording
