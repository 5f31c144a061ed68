// Helpers for fault tests that provoke a real fault in a forked child
// (test_support::in_child, death_test.hpp): a filesystem mounted in a user
// namespace (a small tmpfs -> ENOSPC, ramfs -> O_DIRECT refused), and the
// child's report as key=value lines on stderr. Shared by the .dqr
// recorders' fault tests (tests/test_recorder_faults.cpp, also built for
// io_uring) and HDF5's (tests/hdf5/test_hdf5_recorder_faults.cpp).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <system_error>

#include "catch.hpp"
#include "death_test.hpp"

namespace test_support {

/// Exit code of a child that could not set up its user namespace.
constexpr int kNoUserNamespace = 77;

/// In the (forked) child: a user namespace where we are root, a mount
/// namespace, and `fstype` mounted on `dir` with mount options `data`.
/// Exits kNoUserNamespace if the system forbids it. The mount goes with the
/// child: check the files it holds in the child.
inline void enter_userns_mount(const std::string& dir, const char* fstype, const char* data) {
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    std::fprintf(stderr, "unshare(CLONE_NEWUSER|CLONE_NEWNS): %s\n", std::generic_category().message(errno).c_str());
    std::_Exit(kNoUserNamespace);
  }
  const auto put = [](const char* file, const std::string& s) {
    const int fd = ::open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size());
    ::close(fd);
    return ok;
  };
  put("/proc/self/setgroups", "deny");
  if (!put("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
      !put("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1")) {
    std::fprintf(stderr, "writing uid_map/gid_map failed\n");
    std::_Exit(kNoUserNamespace);
  }
  ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
  if (::mount("none", dir.c_str(), fstype, 0, data) != 0) {
    std::fprintf(stderr, "mount -t %s on %s: %s\n", fstype, dir.c_str(),
                 std::generic_category().message(errno).c_str());
    std::_Exit(kNoUserNamespace);
  }
}

/// The child could not get a user namespace: a failure under CI (where
/// every test must run), else a warning. True if the fault was not provoked
/// (the test then returns).
inline bool userns_unavailable(const ChildResult& r) {
  if (r.exited_ok || r.err.find("unshare") == std::string::npos) {
    if (r.err.find("mount -t") == std::string::npos && r.err.find("uid_map") == std::string::npos) return false;
  }
  const char* ci = std::getenv("CI");  // NOLINT(concurrency-mt-unsafe): no other thread sets the environment
  if (ci != nullptr && std::string(ci) == "true") {
    FAIL("user namespaces unavailable, fault not provoked: " << r.err);
  }
  WARN("user namespaces unavailable here, fault not provoked: " << r.err);
  return true;
}

/// The key=value lines of a child's report (other lines ignored; a later
/// key wins).
inline std::map<std::string, std::string> parse_report(const std::string& text) {
  std::map<std::string, std::string> kv;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(at, end - at);
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    at = end + 1;
  }
  return kv;
}

}  // namespace test_support
