// What the shm tests share: a private temporary directory (mkdtemp, 0700,
// removed with its files), child processes started with posix_spawn and
// always reaped by PID (RAII: killed and waited for in the destructor),
// bounded waits, a raw protocol client, and reading numbers out of the
// subscribers' --json summaries.
#pragma once

#include <daq_pool/shm.hpp>

#include "../support/temp_dir.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn passes it on

namespace shm_test {

using namespace std::chrono_literals;

/// A fresh directory only this user can enter, under /tmp (a Unix socket
/// path is limited to 108 bytes), removed with its files by the destructor.
class TempDir : public test_support::TempDir {
 public:
  TempDir() : test_support::TempDir("daq-pool-shm", Parent::short_path) {}
};

/// Waits until `done()` or `limit` passes; whether it became true.
template <class Pred>
bool wait_until(Pred done, std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// A child process (posix_spawn), its stdout captured through a pipe. The
/// destructor kills it (SIGKILL) if it still runs and reaps it by its PID,
/// so a failing test leaves no process behind.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    out_ = out[0];
    if (rc != 0) {
      ::close(out_);
      pid_ = -1;
      throw std::runtime_error("posix_spawn " + argv[0] + " failed: " + std::to_string(rc));
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    if (out_ >= 0) ::close(out_);
  }

  pid_t pid() const noexcept { return pid_; }
  void signal(int sig) const noexcept {
    if (!status_) ::kill(pid_, sig);
  }

  /// Reads its output until it exits, at most `limit`; then kills it. The
  /// exit code, or 128 + the signal that ended it; nothing if it had to be
  /// killed here.
  std::optional<int> wait(std::chrono::milliseconds limit = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool eof = false;
    while (!eof) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n > 0) {
        output_.append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        eof = true;
      }
    }
    int st = 0;
    pid_t r = 0;
    while ((r = ::waitpid(pid_, &st, eof ? 0 : WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline + 5s)
      std::this_thread::sleep_for(5ms);
    if (r != pid_) return std::nullopt;  // the destructor kills and reaps it
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
  }

  /// Reads its output until it contains `text` (at most `limit`, or until
  /// it ends); whether it did.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (output_.find(text) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n == 0) return false;
      if (n > 0) output_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  const std::string& output() const noexcept { return output_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string output_;
  std::optional<int> status_;
};

/// The number after `"key": ` in a flat JSON summary; nothing if absent or
/// not a number.
inline std::optional<double> json_number(const std::string& json, const std::string& key) {
  const std::string needle = "\"" + key + "\": ";
  const auto at = json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  const char* begin = json.c_str() + at + needle.size();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin) return std::nullopt;
  return v;
}

inline bool json_true(const std::string& json, const std::string& key) {
  return json.find("\"" + key + "\": true") != std::string::npos;
}

/// A client that speaks protocol version 2 by hand (to do what a
/// well-behaved Subscriber never would: scribble its rings, forge releases).
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("RawClient: connect(" + path + ") failed: " + std::to_string(errno));
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient() {
    if (control_ != nullptr) ::munmap(control_, control_bytes_);
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
    if (fd_ >= 0) ::close(fd_);
  }

  /// The hello and its descriptors (kept; the control region mapped).
  std::optional<daq_pool::shm::protocol::Hello> hello() {
    namespace protocol = daq_pool::shm::protocol;
    std::array<std::byte, 128> buf{};
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return std::nullopt;
    daq_pool::shm::detail::Received r = daq_pool::shm::detail::receive_with_fds(fd_, buf);
    if (r.bytes <= 0) return std::nullopt;
    const std::span<const std::byte> m(buf.data(), static_cast<std::size_t>(r.bytes));
    refused_ = protocol::decode_refused(m);
    for (std::size_t i = 0; i < 4 && i < r.fd_count; ++i) fds_[i] = r.fds[i].release();
    std::optional<protocol::Hello> h = protocol::decode_hello(m);
    if (!h || fds_[1] < 0) return h;
    control_bytes_ = static_cast<std::size_t>(h->control_bytes);
    void* c = ::mmap(nullptr, control_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fds_[1], 0);
    if (c == MAP_FAILED) return std::nullopt;
    control_ = static_cast<std::byte*>(c);
    slots_ = h->ring_slots;
    return h;
  }

  /// The Refused the server sent instead of a hello, if any.
  std::optional<daq_pool::shm::protocol::Refused> refused() const { return refused_; }

  /// The next frame descriptor from the ring, waiting at most `limit`.
  std::optional<daq_pool::shm::protocol::FrameDescriptor> frame(std::chrono::milliseconds limit = 10s) {
    namespace c = daq_pool::shm::protocol::control;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (word64(c::frame_head_at).load(std::memory_order_acquire) == tail_) {
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(1ms);
    }
    const auto f = daq_pool::shm::protocol::decode_frame(control_ + c::frame_entry_at(tail_, slots_));
    ++tail_;
    word64(c::frame_tail_at).store(tail_, std::memory_order_release);
    return f;
  }

  /// Puts a release entry in the ring (any slot, sequence, reserved word)
  /// and wakes the server if it sleeps, as a subscriber does.
  void release(std::uint32_t slot, std::uint64_t sequence, std::uint32_t reserved = 0) {
    namespace c = daq_pool::shm::protocol::control;
    std::byte* at = control_ + c::release_entry_at(head_, slots_);
    daq_pool::shm::protocol::encode(daq_pool::shm::protocol::Release{slot, sequence}, at);
    daq_pool::detail::store_le(at + 4, reserved);
    ++head_;
    set_release_head(head_);
  }

  /// Stores release_head (anything: a scribbler's value too) and wakes the server.
  void set_release_head(std::uint64_t head) {
    namespace c = daq_pool::shm::protocol::control;
    word64(c::release_head_at).store(head, std::memory_order_seq_cst);  // Dekker, as the subscriber does
    if (word32(c::server_sleeping_at).exchange(0) != 0) {
      const std::uint64_t one = 1;
      [[maybe_unused]] const ssize_t n = ::write(fds_[3], &one, sizeof one);
    }
  }

  /// True if the server closed the connection (within `limit`).
  bool closed_by_server(std::chrono::milliseconds limit = 10s) {
    std::array<std::byte, 64> buf{};
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
    return ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT) == 0;
  }

  std::atomic_ref<std::uint64_t> word64(std::size_t at) const { return daq_pool::shm::detail::word64(control_, at); }
  std::atomic_ref<std::uint32_t> word32(std::size_t at) const { return daq_pool::shm::detail::word32(control_, at); }

  int fd() const noexcept { return fd_; }
  int memfd() const noexcept { return fds_[0]; }
  int control_fd() const noexcept { return fds_[1]; }
  std::byte* control() const noexcept { return control_; }
  std::size_t control_bytes() const noexcept { return control_bytes_; }

 private:
  int fd_ = -1;
  std::array<int, 4> fds_{-1, -1, -1, -1};
  std::byte* control_ = nullptr;
  std::size_t control_bytes_ = 0;
  std::uint32_t slots_ = 1;
  std::uint64_t tail_ = 0, head_ = 0;
  std::optional<daq_pool::shm::protocol::Refused> refused_;
};

}  // namespace shm_test
