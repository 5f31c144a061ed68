// daq_pool/shm/detail/posix.hpp: the POSIX pieces daq_pool::shm's server and
// subscriber share: an owned descriptor, an owned mapping, sockets with a
// deadline (non-blocking connect, poll retried on EINTR), descriptors over
// SCM_RIGHTS, the private socket directory. Internal.
#pragma once

#include "daq_pool/detail/abi.hpp"

#if !defined(__linux__)
#error "daq_pool/shm is Linux only (memfd_create, eventfd, SCM_RIGHTS, SO_PEERCRED)"
#endif

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm {

/// The other side broke the protocol (a connection is then unusable), or a
/// connection ended before its hello, or the server refused it (the message
/// says why).
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

using Clock = std::chrono::steady_clock;

/// Owns one file descriptor (closed by the destructor). Never allocates.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

/// Owns one mapping (unmapped by the destructor). Never allocates.
class Mapping {
 public:
  Mapping() noexcept = default;
  Mapping(void* base, std::size_t size) noexcept : base_(base), size_(size) {}
  Mapping(Mapping&& o) noexcept : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    reset();
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }
  std::byte* data() const noexcept { return static_cast<std::byte*>(base_); }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return base_ != nullptr; }
  void reset() noexcept {
    if (base_ != nullptr) ::munmap(base_, size_);
    base_ = nullptr;
    size_ = 0;
  }

 private:
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

[[noreturn]] inline void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME; vDSO, no system call).
/// Never allocates.
inline std::uint64_t realtime_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Nanoseconds of CLOCK_MONOTONIC (vDSO). Never allocates.
inline std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Milliseconds left until `deadline` for poll(): 0 if passed, -1 for none.
inline int poll_ms(std::optional<Clock::time_point> deadline) noexcept {
  if (!deadline) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 1'000'000));
}

/// poll() on `fds`, retried on EINTR with the time left until `deadline`:
/// the number ready (0: timed out), or -1 with errno for another error.
/// Never allocates.
inline int poll_until(std::span<pollfd> fds, std::optional<Clock::time_point> deadline) noexcept {
  for (;;) {
    const int n = ::poll(fds.data(), fds.size(), poll_ms(deadline));
    if (n >= 0 || errno != EINTR) return n;
  }
}

/// `path` as a sockaddr_un; std::invalid_argument if it does not fit.
inline sockaddr_un socket_address(const std::string& path, const char* who) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    throw std::invalid_argument(std::string(who) + ": path '" + path + "' must be 1 to " +
                                std::to_string(sizeof a.sun_path - 1) + " bytes long (got " +
                                std::to_string(path.size()) + ")");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

/// How one connection attempt ended.
struct ConnectResult {
  UniqueFd fd;  ///< connected (blocking mode restored), or -1
  int error = 0;  ///< errno of the last attempt when fd is -1 (ETIMEDOUT: the listener never took it)
};

/// Connects a SOCK_SEQPACKET socket to `address` without ever blocking past
/// `deadline`: the socket is non-blocking while connecting. A listener whose
/// backlog is full answers EAGAIN at once; that is retried (every 5 ms)
/// until the deadline, then reported as EAGAIN. With `retry_absent`, ENOENT
/// and ECONNREFUSED (no server yet) are retried too. Never allocates.
inline ConnectResult connect_until(const sockaddr_un& address, Clock::time_point deadline, bool retry_absent) {
  ConnectResult r;
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) {
      r.error = errno;
      return r;
    }
    int rc = 0;
    do {
      rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
    } while (rc != 0 && errno == EINTR);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {  // not for AF_UNIX today; handled all the same
      pollfd p{fd.get(), POLLOUT, 0};
      const int n = poll_until(std::span(&p, 1), deadline);
      socklen_t len = sizeof err;
      if (n == 1 && ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (n != 1) err = n == 0 ? ETIMEDOUT : errno;
    }
    if (err == 0) {
      const int flags = ::fcntl(fd.get(), F_GETFL);
      ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
      r.fd = std::move(fd);
      r.error = 0;
      return r;
    }
    r.error = err;
    const bool again = err == EAGAIN || (retry_absent && (err == ENOENT || err == ECONNREFUSED));
    if (!again || Clock::now() >= deadline) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

/// Sends `bytes` with `fds` attached (SCM_RIGHTS), never blocking. True if
/// the whole message went. Never allocates.
inline bool send_with_fds(int socket, std::span<const std::byte> bytes, std::span<const int> fds) noexcept {
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * 8)> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty() && fds.size() <= 8) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n = 0;
  do {
    n = ::sendmsg(socket, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(bytes.size());
}

/// One message received with its descriptors (up to 8 kept, the rest closed).
struct Received {
  ssize_t bytes = -1;  ///< as recvmsg returned (0: the peer closed)
  int error = 0;       ///< errno when bytes < 0
  bool truncated = false;
  std::array<UniqueFd, 8> fds;
  std::size_t fd_count = 0;
};

/// Receives one message into `buf` (retried on EINTR), with its descriptors
/// (close-on-exec). Never allocates.
inline Received receive_with_fds(int socket, std::span<std::byte> buf, int flags = 0) noexcept {
  Received r;
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * 16)> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  do {
    r.bytes = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (r.bytes < 0 && errno == EINTR);
  if (r.bytes < 0) {
    r.error = errno;
    return r;
  }
  r.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (r.fd_count < r.fds.size()) {
        r.fds[r.fd_count].reset(fd);
      } else {
        ::close(fd);
      }
      ++r.fd_count;
    }
  }
  return r;
}

/// Writes 1 to an eventfd (a wake-up); an error (full counter, closed) is
/// harmless: the sleeper is already due to wake. Never allocates.
inline void signal_eventfd(int fd) noexcept {
  const std::uint64_t one = 1;
  ssize_t n = 0;
  do {
    n = ::write(fd, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

/// Resets a non-blocking eventfd (reads its counter). Never allocates.
inline void drain_eventfd(int fd) noexcept {
  std::uint64_t v = 0;
  ssize_t n = 0;
  do {
    n = ::read(fd, &v, sizeof v);
  } while (n < 0 && errno == EINTR);
}

/// After recv() returned 0 on a SOCK_SEQPACKET socket: true if the peer is
/// gone, false if it was an empty message (which reads the same).
inline bool peer_closed(int fd) noexcept {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  int n = 0;
  do {
    n = ::poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  return n < 0 || (n == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) != 0);
}

/// Checks (or creates) the directory a socket goes in: it must be a real
/// directory (not a symbolic link) owned by this process's user, which only
/// that user may enter (no group or other permission bits). Throws
/// std::invalid_argument naming the directory and what is wrong. True if it
/// created the directory (the caller removes it again on failure).
inline bool check_private_directory(const std::string& dir) {
  struct stat st {};
  bool created = false;
  if (::lstat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT) throw_errno(err, "daq_pool::shm::Server: directory '" + dir + "'");
    if (::mkdir(dir.c_str(), 0700) == 0) {
      created = true;
    } else if (errno != EEXIST) {
      throw_errno(errno, "daq_pool::shm::Server: cannot create the directory '" + dir + "'");
    }
    if (::lstat(dir.c_str(), &st) != 0) {
      const int e = errno;
      if (created) ::rmdir(dir.c_str());
      throw_errno(e, "daq_pool::shm::Server: directory '" + dir + "'");
    }
  }
  const std::string where = "daq_pool::shm::Server: the socket's directory '" + dir + "'";
  std::string problem;
  if (S_ISLNK(st.st_mode)) {
    problem = " is a symbolic link; give the real directory";
  } else if (!S_ISDIR(st.st_mode)) {
    problem = " is not a directory";
  } else if (st.st_uid != ::geteuid()) {
    problem = " belongs to uid " + std::to_string(st.st_uid) + ", not to this user (uid " +
              std::to_string(::geteuid()) + ")";
  } else if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    problem = std::string(" has mode ") + mode + ": other users may enter it; it must be 0700 (only its owner may enter)";
  }
  if (!problem.empty()) {
    if (created) ::rmdir(dir.c_str());
    throw std::invalid_argument(where + problem);
  }
  return created;
}

/// The directory part of `path` ("." for a bare file name).
inline std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace detail
}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm
