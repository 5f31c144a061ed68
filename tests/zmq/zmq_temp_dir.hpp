// A fresh private directory for a ZeroMQ test's ipc:// socket files and key
// files, removed with everything in it at the end: one definition for the
// zmq tests (the shm tests keep their own under /tmp, for the 108-byte limit
// of a Unix socket path).
#pragma once

#include <cstdlib>  // mkdtemp (POSIX, declared by glibc's stdlib.h)

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace zmq_test {

/// A directory `$TMPDIR/<tag>-XXXXXX` (mode 0700, from mkdtemp), removed by
/// the destructor. Not copyable.
class TempDir {
 public:
  explicit TempDir(const char* tag) {
    std::string t = std::filesystem::temp_directory_path().string() + "/" + tag + "-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + t);
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The directory.
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace zmq_test
