// The writer's destination file: --out, or a temporary file whose name is
// removed as soon as the recorder holds it open (unlink_name()), so that not
// even a SIGKILL leaves it behind; until then, at exit or by a second Ctrl-C
// (through g_temp_path).
#pragma once

#include "writer.hpp"  // error_text

#include <fcntl.h>
#include <unistd.h>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace frame_pipeline {

/// The default temporary output is rewound at this size, so a long run does
/// not fill /dev/shm (or the disk) with frames nobody reads.
constexpr std::uint64_t temp_file_rewind_bytes = std::uint64_t{256} << 20;

/// The temporary --out file, for the second-signal emergency exit (read by
/// the signal handler: a plain array, no allocation).
inline char g_temp_path[4096] = {};

/// The writer's destination: --out, or a temporary file whose name goes at
/// unlink_name() (or when this object is destroyed, if setup ends earlier).
/// A file this program created is also removed by discard() if setup fails,
/// so bad input leaves nothing behind. Not thread-safe.
class OutputFile {
 public:
  OutputFile() = default;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (temporary_) remove_temp();
  }

  /// Opens `path` for writing (truncating it), or creates a temporary file
  /// if `path` is empty. On failure returns false with `error` set.
  bool open(const std::string& path, std::string& error) {
    if (path.empty()) {
      path_ = temp_dir() + "/daq-pool-frames-XXXXXX";
      if (path_.size() >= sizeof g_temp_path) {
        error = "TMPDIR is too long";
        return false;
      }
      fd_ = ::mkostemp(path_.data(), O_CLOEXEC);
      if (fd_ < 0) {
        error = "cannot create a temporary file " + path_ + ": " + error_text(errno);
        return false;
      }
      temporary_ = created_ = true;
      std::memcpy(g_temp_path, path_.c_str(), path_.size() + 1);
      return true;
    }
    path_ = path;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      created_ = true;
    } else if (errno == EEXIST) {
      fd_ = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    }
    if (fd_ < 0) {
      error = error_text(errno);
      return false;
    }
    return true;
  }

  /// The temporary file's name goes now, while whoever opened it keeps
  /// writing through their descriptor: the recorder opens the path once, at
  /// construction, and later only uses its fd (fdatasync, ftruncate, close),
  /// so the recording runs unchanged and the kernel frees its blocks when
  /// the last descriptor closes, however the process ends. Call it right
  /// after the recorder is constructed. No-op for --out. Never allocates.
  void unlink_name() noexcept {
    if (temporary_) remove_temp();
  }

  /// Setup failed: close, and remove the file if this program created it.
  void discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (created_) {
      if (temporary_) {
        remove_temp();
      } else if (!was_temporary_) {
        ::unlink(path_.c_str());
      }
    }
  }

  /// Where the temporary recording goes: $TMPDIR if set; else /var/tmp (a
  /// real filesystem: the recorder measures the disk, with O_DIRECT, and a
  /// killed run leaves no RAM behind as /dev/shm did); else /tmp.
  static std::string temp_dir() {
    // getenv is not thread-safe against setenv; nothing calls setenv, and
    // this runs before the pipeline's threads start.
    const char* dir = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe)
    if (dir != nullptr && *dir != '\0') return dir;
    if (::access("/var/tmp", W_OK | X_OK) == 0) return "/var/tmp";
    return "/tmp";
  }

  int fd() const noexcept { return fd_; }                     ///< the open descriptor
  const std::string& path() const noexcept { return path_; }  ///< where frames go
  /// A scratch file in temp_dir() (not --out); its name is gone once
  /// unlink_name() ran, and path() then says where it was.
  bool temporary() const noexcept { return temporary_ || was_temporary_; }

 private:
  void remove_temp() noexcept {
    g_temp_path[0] = '\0';
    ::unlink(path_.c_str());
    temporary_ = false;  // the name is gone: never unlinked twice (it could be another file's by then)
    was_temporary_ = true;
  }

  int fd_ = -1;
  std::string path_;
  bool temporary_ = false;      // a scratch file whose name still exists
  bool was_temporary_ = false;  // a scratch file whose name is gone
  bool created_ = false;
};

}  // namespace frame_pipeline
