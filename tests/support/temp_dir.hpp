// A fresh private directory for a test's files, removed with everything in
// it at the end: one definition for every test (the shm, ZeroMQ and
// recording tests), which differ only in where it goes (TempDir::Parent).
#pragma once

#include <cstdlib>  // mkdtemp (POSIX, declared by glibc's stdlib.h), getenv

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace test_support {

/// A directory `<parent>/<tag>-XXXXXX` (mode 0700, from mkdtemp), removed
/// with its contents by the destructor. Not copyable. Construct before the
/// test starts threads (it reads $TMPDIR).
class TempDir {
 public:
  /// Where the directory goes.
  enum class Parent {
    /// $TMPDIR, else /var/tmp: a disk filesystem (not tmpfs), so O_DIRECT
    /// and io_uring see the disk's behaviour.
    tmpdir,
    /// /tmp, whatever $TMPDIR says: short paths, for Unix socket paths
    /// (108 bytes at most, and ctest's TMPDIR can be long).
    short_path,
  };

  /// Throws std::runtime_error naming the template if mkdtemp fails.
  explicit TempDir(const char* tag = "daq_pool", Parent where = Parent::tmpdir) {
    std::string parent = "/tmp";
    if (where == Parent::tmpdir) {
      const char* env = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe): read before threads start
      parent = env != nullptr && *env != '\0' ? env : "/var/tmp";
    }
    std::string t = parent + "/" + tag + "-XXXXXX";
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
  const std::string& path() const noexcept { return path_; }
  /// The path of `name` in it.
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string operator/(const std::string& name) const { return file(name); }

 private:
  std::string path_;
};

}  // namespace test_support
