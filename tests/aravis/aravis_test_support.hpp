// Helpers of the Aravis tests: the in-process Fake interface, the GigE Vision
// fake camera as a child process (started and reaped by PID, also when a test
// fails), and the pool's buffer addresses for the zero-copy checks.
#pragma once

#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace aravis_test {

using namespace std::chrono_literals;

/// Enables Aravis's in-process Fake interface (device "Fake_1") once, and
/// releases Aravis's global state (interfaces, device lists) at exit so that
/// LeakSanitizer sees a clean process.
inline void enable_fake_interface() {
  struct Shutdown {
    Shutdown() { arv_enable_interface("Fake"); }
    Shutdown(const Shutdown&) = delete;
    Shutdown& operator=(const Shutdown&) = delete;
    ~Shutdown() { arv_shutdown(); }
  };
  static const Shutdown once;
}

/// The in-process fake camera, configured with `settings` (every setting
/// explicitly: the fake camera keeps what the previous user set).
inline daq_pool::aravis::GObjectPtr<ArvCamera> open_fake_camera(const daq_pool::aravis::FakeCameraSettings& settings) {
  enable_fake_interface();
  auto camera = daq_pool::aravis::open_camera("Fake_1");
  daq_pool::aravis::configure_fake_camera(camera.get(), settings);
  return camera;
}

/// The addresses of every buffer of `pool`, sorted (taken by acquiring all
/// of them once; the pool must be idle).
inline std::vector<const std::byte*> buffer_addresses(daq_pool::BufferPool& pool) {
  std::vector<daq_pool::PooledBuffer> all;
  for (std::size_t i = 0; i < pool.size(); ++i) all.push_back(pool.acquire());
  std::vector<const std::byte*> addresses;
  for (const daq_pool::PooledBuffer& b : all) addresses.push_back(b.data());
  std::sort(addresses.begin(), addresses.end());
  return addresses;
}

/// True if `p` is the first byte of one of `addresses` (sorted).
inline bool is_one_of(const std::vector<const std::byte*>& addresses, const std::byte* p) {
  return std::binary_search(addresses.begin(), addresses.end(), p);
}

/// Frame ids of GigE Vision 1.x and the fake camera: 16 bits, 0 skipped.
/// How many ids lie after `from` up to and including `to`.
inline std::uint64_t frame_id_distance(std::uint64_t from, std::uint64_t to) {
  return to >= from ? to - from : to + 65535 - from;
}

/// True if some process has bound UDP `address`:`port` already (a probe
/// socket cannot bind it). A second fake camera starts silently on a taken
/// port 3956, and the test would then talk to someone else's camera.
inline bool udp_port_taken(const char* address, std::uint16_t port) {
  const int probe = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (probe < 0) throw std::runtime_error("udp_port_taken: socket() failed");
  sockaddr_in where{};
  where.sin_family = AF_INET;
  where.sin_port = htons(port);
  ::inet_pton(AF_INET, address, &where.sin_addr);
  const bool taken = ::bind(probe, reinterpret_cast<const sockaddr*>(&where), sizeof where) != 0;
  ::close(probe);
  return taken;
}

/// Aravis's GigE Vision fake camera (`arv-fake-gv-camera-0.8 -i 127.0.0.1`)
/// as a child process of the test (killed by the kernel if the test dies
/// first: PR_SET_PDEATHSIG): started by the constructor, which waits
/// (bounded) until arv_open_device("127.0.0.1") answers; stopped with
/// SIGTERM and reaped by its PID in the destructor, also when the test
/// fails. Its UDP port 3956 is fixed: the ctest cases using it share a
/// RESOURCE_LOCK.
class FakeGvCamera {
 public:
  static constexpr const char* address = "127.0.0.1";
  static constexpr std::uint16_t gvcp_port = 3956;  ///< GigE Vision control port, fixed

  explicit FakeGvCamera(const char* executable) {
    const std::string exe = executable;
    // Refuse rather than test against a camera this test did not start.
    if (udp_port_taken(address, gvcp_port))
      throw std::runtime_error(std::string("UDP port 3956 on ") + address +
                               " is taken by another process (another fake camera?): not starting " + exe);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("cannot start " + exe + ": fork failed");
    if (pid_ == 0) {
      // The child: only async-signal-safe calls until exec. If the test dies
      // without running its destructors (a crash, ctest's timeout kill), the
      // kernel kills the camera too: no orphan keeps UDP port 3956.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, STDOUT_FILENO);  // its progress chatter; stderr stays
      ::execl(executable, executable, "-i", address, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Bounded readiness poll: it answers ~30 ms after start here.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      if (!running()) throw std::runtime_error(exe + " exited at start (is another instance holding UDP port 3956?)");
      GError* error = nullptr;
      if (ArvDevice* device = arv_open_device(address, &error)) {
        device_.reset(device);
        return;
      }
      g_clear_error(&error);
      if (std::chrono::steady_clock::now() > deadline) {
        stop();
        throw std::runtime_error(exe + " did not answer on " + address + " within 10 s");
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  FakeGvCamera(const FakeGvCamera&) = delete;
  FakeGvCamera& operator=(const FakeGvCamera&) = delete;
  ~FakeGvCamera() { stop(); }

  /// The camera opened by IP during the readiness poll (not by a
  /// discovered id: discovery may find it through the wrong interface).
  daq_pool::aravis::GObjectPtr<ArvCamera> open_camera() {
    GError* error = nullptr;
    ArvCamera* camera = arv_camera_new_with_device(device_.get(), &error);  // takes its own reference
    daq_pool::aravis::detail::throw_if_error(error, "arv_camera_new_with_device");
    return daq_pool::aravis::GObjectPtr<ArvCamera>(camera);
  }

  /// Drops the device of the readiness poll (the camera keeps its own).
  void release_device() { device_.reset(); }

  /// Kills the camera at once (SIGKILL: a crash, no goodbye) and reaps it.
  void kill_now() { terminate(SIGKILL); }

  /// Stops it (SIGTERM, then SIGKILL after 5 s) and reaps it. Idempotent.
  void stop() {
    device_.reset();
    terminate(SIGTERM);
  }

  /// The child's PID (-1 once reaped).
  pid_t pid() const noexcept { return pid_; }

 private:
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void terminate(int signal) noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, signal);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (running()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  pid_t pid_ = -1;
  daq_pool::aravis::GObjectPtr<ArvDevice> device_;
};

}  // namespace aravis_test
