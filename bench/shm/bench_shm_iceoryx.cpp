// daq_pool::shm beside Eclipse iceoryx (issue 20, item 5): one publisher
// process, one subscriber process, zero copy on both sides, at most 4 frames
// in flight, 4 KiB / 1 MiB / 8 MiB payloads, and a floor: a futex handshake
// over a shared counter (no payload, no pool), the cost of one cross-process
// hand-off with a wake-up. All in one run, the systems alternating, each
// measurement repeated (--repetitions, 3) and reported as the median, with
// the ratios daq-pool / iceoryx and the goals (met / not met).
//
//   bench_shm_iceoryx [--frames N] [--latency-frames N] [--rate HZ]
//                     [--repetitions R] [--warmup N] [--sizes B,B,...]
//                     [--roudi PATH] [--json]
//
// This process only orchestrates: it starts its own iox-roudi (a config
// file in a private temporary directory, mempools sized for the payloads)
// with posix_spawn, waits until it says it is ready, and stops it by its PID
// (SIGTERM, SIGKILL after 10 s) when done, also on failure or SIGINT/SIGTERM.
// iceoryx allows one RouDi per machine (a lock file, a fixed socket and
// fixed /dev/shm names): if another one runs, this refuses (exit 2) and
// leaves it alone. Every measurement runs in two fresh processes, this
// binary started again in a role (publisher / subscriber of one system).
//
// What each pair measures, between the end of the warm-up and the last frame:
//   throughput  the publisher sends as fast as it can; with 4 frames in
//               flight it waits for the subscriber to release one
//               (daq-pool: max_in_flight 4, wait_when_full; iceoryx: a
//               subscriber queue of 4, BLOCK_PRODUCER / WAIT_FOR_CONSUMER;
//               the floor: one in flight, every hand-off acknowledged).
//               frames/s at the subscriber; CPU time per frame of each
//               process (CLOCK_PROCESS_CPUTIME_ID, all its threads); system
//               calls per frame of each process (a perf_event counter on the
//               tracepoint raw_syscalls:sys_enter, inherited by its threads,
//               opened by the process itself before any library starts one
//               and read at the window's ends: needs root or
//               perf_event_paranoid <= 1, else reported as -1).
//   latency     the publisher sends at --rate (1 kHz), stamping
//               CLOCK_MONOTONIC into the payload just before publishing;
//               the subscriber sleeps until a frame comes (daq-pool: its
//               eventfd; iceoryx: a WaitSet; the floor: the futex) and takes
//               the difference on receipt: p50 / p99. System calls per frame
//               at that rate too (each frame then finds the other side asleep).
// The subscriber reads only the 16-byte header (sequence number, stamp) and
// releases the frame at once; it checks that every frame arrives, in order.
// roudi's own CPU time is not counted (it is not on the data path).
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/shm.hpp>

#include <iceoryx_hoofs/log/logmanager.hpp>
#include <iceoryx_posh/popo/untyped_publisher.hpp>
#include <iceoryx_posh/popo/untyped_subscriber.hpp>
#include <iceoryx_posh/popo/wait_set.hpp>
#include <iceoryx_posh/runtime/posh_runtime.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shm_test_support.hpp"  // TempDir, Child (posix_spawn, reaped by PID), json_number, wait_until

namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_in_flight = 4;
constexpr const char* roudi_lock =
    "/tmp/iox-unique-roudi.lock";  // iceoryx 2.0: ROUDI_LOCK_NAME in IOX_LOCK_FILE_PATH_PREFIX

/// What the publisher writes at the start of every payload.
struct Header {
  std::uint64_t sequence;  // 1, 2, ...: the subscriber checks that none is missing
  std::uint64_t stamp_ns;  // CLOCK_MONOTONIC just before publishing
};

std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000U + static_cast<std::uint64_t>(ts.tv_nsec);
}

double cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

/// This process's system calls (all its threads, also those started after
/// it is made): a perf_event counter on raw_syscalls:sys_enter. value() is
/// -1 where perf events are not allowed.
class SyscallCounter {
 public:
  SyscallCounter() {
    std::uint64_t id = 0;
    for (const char* p : {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                          "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"}) {
      std::ifstream f(p);
      if (f >> id) break;
    }
    if (id == 0) return;
    perf_event_attr a{};
    a.type = PERF_TYPE_TRACEPOINT;
    a.size = sizeof a;
    a.config = id;
    a.inherit = 1;  // the threads the libraries start later (daq-pool's server, iceoryx's runtime)
    fd_ = static_cast<int>(::syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC));
  }
  SyscallCounter(const SyscallCounter&) = delete;
  SyscallCounter& operator=(const SyscallCounter&) = delete;
  ~SyscallCounter() {
    if (fd_ >= 0) ::close(fd_);
  }
  double value() const {
    std::uint64_t v = 0;
    if (fd_ < 0 || ::read(fd_, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) return -1;
    return static_cast<double>(v);
  }

 private:
  int fd_ = -1;
};

/// CPU time, wall time and system calls between begin() and end().
struct Window {
  double cpu0 = 0, cpu = 0, sys0 = 0, sys = 0;
  std::uint64_t wall0 = 0, wall = 0;
  void begin(const SyscallCounter& c) {
    sys0 = c.value();
    cpu0 = cpu_ns();
    wall0 = now_ns();
  }
  void end(const SyscallCounter& c) {
    wall = now_ns() - wall0;
    cpu = cpu_ns() - cpu0;
    const double s = c.value();
    sys = s < 0 || sys0 < 0 ? -1 : s - sys0;
  }
};

// ---------------------------------------------------------------------------
// The role processes: publisher and subscriber of one system.

/// A role's arguments: SYSTEM ROLE MODE BYTES WARMUP FRAMES RATE ENDPOINT.
struct Role {
  std::string system, role, mode, endpoint;
  std::size_t bytes = 0;
  std::uint64_t warmup = 0, frames = 0;
  double rate = 0;
  bool paced() const { return mode == "latency"; }
};

/// The publisher's loop, the same for every system: `send(header)` loans a
/// buffer, writes the header (stamped at the last moment) and publishes;
/// false: failed. Paced at `rate` in latency mode.
template <class Send>
int publish_loop(const Role& r, const SyscallCounter& calls, Send send) {
  Window w;
  const auto period = static_cast<std::uint64_t>(1e9 / r.rate);
  const std::uint64_t start = now_ns() + 1000000;
  for (std::uint64_t i = 1; i <= r.warmup + r.frames; ++i) {
    if (r.paced()) {
      const std::uint64_t at = start + i * period;
      const timespec ts{static_cast<time_t>(at / 1000000000U), static_cast<long>(at % 1000000000U)};
      while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
    }
    if (i == r.warmup + 1) w.begin(calls);
    if (!send(i)) {
      std::fprintf(stderr, "bench_shm_iceoryx: %s publisher: frame %" PRIu64 " not published\n", r.system.c_str(), i);
      return 1;
    }
  }
  w.end(calls);
  std::printf("{\"cpu_ns\": %.0f, \"wall_ns\": %" PRIu64 ", \"syscalls\": %.0f}\n", w.cpu, w.wall, w.sys);
  return 0;
}

/// The subscriber's loop, the same for every system: `receive(deadline)`
/// waits for the next frame, copies its header out and releases it.
template <class Receive>
int subscribe_loop(const Role& r, const SyscallCounter& calls, Receive receive) {
  std::vector<std::uint64_t> latency;
  latency.reserve(r.frames);
  Window w;
  for (std::uint64_t i = 1; i <= r.warmup + r.frames; ++i) {
    const std::optional<Header> h = receive(std::chrono::steady_clock::now() + 20s);
    const std::uint64_t t = now_ns();
    if (!h || h->sequence != i) {
      std::fprintf(stderr, "bench_shm_iceoryx: %s subscriber: expected frame %" PRIu64 ", got %s\n", r.system.c_str(),
                   i, h ? std::to_string(h->sequence).c_str() : "none (the stream ended, or 20 s passed)");
      return 1;
    }
    if (i == r.warmup) w.begin(calls);  // the window: the receipt of the last warm-up frame to the last frame
    if (i > r.warmup) latency.push_back(t - h->stamp_ns);
  }
  w.end(calls);
  std::sort(latency.begin(), latency.end());
  const auto pct = [&](double p) {
    return static_cast<double>(latency[std::min(latency.size() - 1, static_cast<std::size_t>(p * latency.size()))]);
  };
  std::printf("{\"cpu_ns\": %.0f, \"wall_ns\": %" PRIu64 ", \"syscalls\": %.0f, \"p50_ns\": %.0f, \"p99_ns\": %.0f}\n",
              w.cpu, w.wall, w.sys, pct(0.50), pct(0.99));
  return 0;
}

void ready() {
  std::printf("ready\n");
  std::fflush(stdout);
}

// daq-pool: shm::Server over a shared-memory BufferPool; shm::Subscriber.
int daq_publisher(const Role& r, const SyscallCounter& calls) {
  daq_pool::BufferPoolOptions po;
  po.shared_memory = true;
  daq_pool::shm::ServerOptions so;
  so.max_subscribers = 1;
  so.max_in_flight = max_in_flight;
  so.wait_when_full = true;  // lossless, like iceoryx's WAIT_FOR_CONSUMER
  so.wait_timeout = 20s;
  daq_pool::BufferPool pool(so.max_subscribers * so.max_in_flight + so.producer_margin, r.bytes, po);
  daq_pool::shm::Server server(pool, r.endpoint, so);
  ready();
  if (!shm_test::wait_until([&] { return server.subscribers() == 1; })) return 1;
  const int rc = publish_loop(r, calls, [&](std::uint64_t i) {
    daq_pool::PooledBuffer b = pool.acquire();
    b.set_size(b.capacity());
    const Header h{i, now_ns()};
    std::memcpy(b.data(), &h, sizeof h);
    return server.publish(std::move(b).freeze()) == 1;
  });
  shm_test::wait_until([&] { return server.subscribers() == 0; });  // it has taken every frame
  server.stop();
  return rc;
}

int daq_subscriber(const Role& r, const SyscallCounter& calls) {
  daq_pool::shm::Subscriber sub(r.endpoint, 20s);
  return subscribe_loop(r, calls, [&](std::chrono::steady_clock::time_point deadline) -> std::optional<Header> {
    const std::optional<daq_pool::shm::Frame> f = sub.receive_for(deadline - std::chrono::steady_clock::now());
    if (!f || f->bytes.size() < sizeof(Header)) return std::nullopt;
    Header h{};
    std::memcpy(&h, f->bytes.data(), sizeof h);
    return h;  // the frame is released as `f` goes
  });
}

// iceoryx: UntypedPublisher / UntypedSubscriber (loan, write, publish; take,
// read, release), lossless with a queue of max_in_flight.
iox::capro::ServiceDescription iox_service(const Role& r) {
  return {"daq_pool_bench", "frames", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, std::to_string(r.bytes))};
}

void iox_runtime(const Role& r) {
  // Its debug messages (every registration) would bury the table.
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                           iox::log::LogLevelOutput::kHideLogLevel);
  const std::string name = "daq_pool_bench_" + r.role + "_" + std::to_string(::getpid());
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name));
}

int iox_publisher(const Role& r, const SyscallCounter& calls) {
  iox_runtime(r);
  iox::popo::PublisherOptions o;
  o.historyCapacity = 0;
  o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
  iox::popo::UntypedPublisher pub(iox_service(r), o);
  ready();
  if (!shm_test::wait_until([&] { return pub.hasSubscribers(); })) return 1;
  const int rc = publish_loop(r, calls, [&](std::uint64_t i) {
    auto loaned = pub.loan(static_cast<std::uint32_t>(r.bytes), alignof(Header));
    if (loaned.has_error()) return false;
    void* payload = loaned.value();
    const Header h{i, now_ns()};
    std::memcpy(payload, &h, sizeof h);
    pub.publish(payload);
    return true;
  });
  shm_test::wait_until([&] { return !pub.hasSubscribers(); });  // it has taken every frame
  return rc;
}

int iox_subscriber(const Role& r, const SyscallCounter& calls) {
  iox_runtime(r);
  iox::popo::SubscriberOptions o;
  o.queueCapacity = max_in_flight;
  o.historyRequest = 0;
  o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
  iox::popo::UntypedSubscriber sub(iox_service(r), o);
  iox::popo::WaitSet<1> waitset;
  if (waitset.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) return 1;
  return subscribe_loop(r, calls, [&](std::chrono::steady_clock::time_point deadline) -> std::optional<Header> {
    for (;;) {
      auto taken = sub.take();
      if (!taken.has_error()) {
        Header h{};
        std::memcpy(&h, taken.value(), sizeof h);
        sub.release(taken.value());
        return h;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      waitset.timedWait(iox::units::Duration::fromMilliseconds(100));
    }
  });
}

// The floor: a page shared through a file; the publisher bumps `published`
// and wakes the subscriber's futex, the subscriber answers on `received`.
// Both wake unconditionally: one hand-off, one wake-up each way.
struct FloorPage {
  std::atomic<std::uint32_t> published{0};
  std::atomic<std::uint32_t> received{0};
  std::atomic<std::uint64_t> stamp_ns{0};
  std::atomic<std::uint32_t> subscribed{0};
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free && std::atomic<std::uint64_t>::is_always_lock_free);

void futex_wake(std::atomic<std::uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

/// Waits until `word` reads `value` (acquire), at most 20 s.
bool futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t value) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (std::uint32_t seen = word.load(std::memory_order_acquire); seen != value;
       seen = word.load(std::memory_order_acquire)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    const timespec limit{0, 100000000};  // bounded: re-checks the deadline
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, seen, &limit, nullptr, 0);
  }
  return true;
}

FloorPage* map_floor(const std::string& path, bool create) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0600);
  if (fd < 0 || (create && ::ftruncate(fd, 4096) != 0)) throw std::runtime_error("floor: cannot open " + path);
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("floor: cannot map " + path);
  return create ? new (p) FloorPage : static_cast<FloorPage*>(p);
}

int floor_publisher(const Role& r, const SyscallCounter& calls) {
  FloorPage* page = map_floor(r.endpoint, true);
  ready();
  if (!futex_wait_for(page->subscribed, 1)) return 1;
  return publish_loop(r, calls, [&](std::uint64_t i) {
    const auto n = static_cast<std::uint32_t>(i);
    page->stamp_ns.store(now_ns(), std::memory_order_relaxed);
    page->published.store(n, std::memory_order_release);  // pairs with the subscriber's acquire
    futex_wake(page->published);
    return futex_wait_for(page->received, n);
  });
}

int floor_subscriber(const Role& r, const SyscallCounter& calls) {
  FloorPage* page = map_floor(r.endpoint, false);
  page->subscribed.store(1, std::memory_order_release);
  futex_wake(page->subscribed);
  std::uint32_t next = 1;
  return subscribe_loop(r, calls, [&](std::chrono::steady_clock::time_point) -> std::optional<Header> {
    if (!futex_wait_for(page->published, next)) return std::nullopt;
    const Header h{next, page->stamp_ns.load(std::memory_order_relaxed)};
    page->received.store(next++, std::memory_order_release);
    futex_wake(page->received);
    return h;
  });
}

int run_role(const Role& r) {
  const SyscallCounter calls;  // first: before any library starts a thread
  using Fn = int (*)(const Role&, const SyscallCounter&);
  const std::map<std::string, Fn> roles{{"daq-pool/publisher", daq_publisher}, {"daq-pool/subscriber", daq_subscriber},
                                        {"iceoryx/publisher", iox_publisher},  {"iceoryx/subscriber", iox_subscriber},
                                        {"floor/publisher", floor_publisher},  {"floor/subscriber", floor_subscriber}};
  const auto it = roles.find(r.system + "/" + r.role);
  if (it == roles.end()) throw std::invalid_argument("unknown role " + r.system + "/" + r.role);
  return it->second(r, calls);
}

// ---------------------------------------------------------------------------
// The orchestrator.

// For the SIGINT/SIGTERM handler: our RouDi and the running pair of role
// processes, stopped by PID (async-signal-safe calls only).
volatile sig_atomic_t g_roudi_pid = 0;
volatile sig_atomic_t g_role_pids[2] = {0, 0};

extern "C" void on_signal(int sig) {
  for (const sig_atomic_t pid : g_role_pids)  // reaped by init once we are gone
    if (pid > 0) ::kill(pid, SIGKILL);
  if (const pid_t roudi = g_roudi_pid; roudi > 0) {
    ::kill(roudi, SIGTERM);
    int st = 0;
    for (int i = 0; i < 1000 && ::waitpid(roudi, &st, WNOHANG) == 0; ++i) {  // at most 10 s
      const timespec pause{0, 10000000};
      ::nanosleep(&pause, nullptr);
    }
    if (::waitpid(roudi, &st, WNOHANG) == 0) {
      ::kill(roudi, SIGKILL);
      ::waitpid(roudi, &st, 0);
    }
  }
  ::_exit(128 + sig);
}

/// Shows the signal handler the PIDs of the running pair of role processes
/// while it lives (the subscriber's is set once it is started).
struct RolePids {
  explicit RolePids(pid_t publisher) { g_role_pids[0] = publisher; }
  RolePids(const RolePids&) = delete;
  RolePids& operator=(const RolePids&) = delete;
  ~RolePids() {
    g_role_pids[0] = 0;
    g_role_pids[1] = 0;
  }
};

/// True if another RouDi holds iceoryx's machine-wide lock (checked with a
/// non-blocking flock, released at once; nothing of it is touched).
bool roudi_running() {
  const int fd = ::open(roudi_lock, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // never started, or cleaned up
  const bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  if (!held) ::flock(fd, LOCK_UN);
  ::close(fd);
  return held;
}

/// Our own iox-roudi: started with a config of mempools for `sizes`, its
/// output in DIR/roudi.log; stopped by its PID (SIGTERM, then SIGKILL after
/// 10 s) by stop() or the destructor.
class Roudi {
 public:
  Roudi(const std::string& exe, const shm_test::TempDir& dir, const std::vector<std::size_t>& sizes) {
    const std::string config = dir / "roudi.toml";
    log_ = dir / "roudi.log";
    {
      std::ofstream f(config);
      f << "[general]\nversion = 1\n\n[[segment]]\n";
      // Chunk = iceoryx's chunk header (40 bytes) + payload; 256 bytes of
      // margin. Enough chunks for the queue, the one held and the loaned.
      for (const std::size_t b : sizes)
        f << "\n[[segment.mempool]]\nsize = " << (b + 256 + 7) / 8 * 8 << "\ncount = 16\n";
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    std::vector<std::string> argv{exe, "-c", config, "-l", "info"};
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, exe.c_str(), &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + exe + ": " + std::strerror(rc));
    g_roudi_pid = pid_;
    // Ready once it says so (bounded; it must not die meanwhile).
    const bool up = shm_test::wait_until(
        [&] { return !alive() || log().find("RouDi is ready for clients") != std::string::npos; }, 20s);
    if (!up || !alive()) {
      const std::string why = log();
      stop();
      throw std::runtime_error("iox-roudi exited or did not come up within 20 s; its output:\n" + why);
    }
  }
  Roudi(const Roudi&) = delete;
  Roudi& operator=(const Roudi&) = delete;
  ~Roudi() { stop(); }

  pid_t pid() const noexcept { return pid_; }

  /// SIGTERM, up to 10 s for it to exit, then SIGKILL; always reaped.
  /// Whether it exited by itself after SIGTERM.
  bool stop() {
    if (pid_ <= 0) return true;
    ::kill(pid_, SIGTERM);
    int st = 0;
    bool clean = shm_test::wait_until([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, 10s);
    if (!clean) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
    }
    pid_ = -1;
    g_roudi_pid = 0;
    return clean;
  }

 private:
  bool alive() {
    int st = 0;
    return ::waitpid(pid_, &st, WNOHANG) == 0;
  }
  std::string log() const {
    std::ifstream f(log_);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  pid_t pid_ = -1;
  std::string log_;
};

/// One measurement's numbers (per frame, from both processes).
struct Sample {
  double fps = 0, pub_cpu_us = 0, sub_cpu_us = 0, pub_calls = 0, sub_calls = 0, p50_us = 0, p99_us = 0;
};

struct Settings {
  std::uint64_t frames = 20000, latency_frames = 5000, warmup = 200;
  double rate = 1000;
  int repetitions = 3;
  std::vector<std::size_t> sizes{4096, std::size_t{1} << 20, std::size_t{8} << 20};
  std::string roudi = DAQ_BENCH_IOX_ROUDI;
  bool json = false;
};

std::string self_exe() {
  std::array<char, 4096> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) throw std::runtime_error("readlink /proc/self/exe failed");
  return {buf.data(), static_cast<std::size_t>(n)};
}

/// Runs one publisher and one subscriber process of `system` and returns
/// their numbers; nothing if either failed (said on stderr).
std::optional<Sample> measure(const Settings& s, const shm_test::TempDir& dir, const std::string& system,
                              const std::string& mode, std::size_t bytes) {
  static int run = 0;
  const std::string endpoint = dir / ("run-" + std::to_string(++run));
  const std::uint64_t frames = mode == "latency" ? s.latency_frames : s.frames;
  const auto args = [&](const char* role) {
    return std::vector<std::string>{self_exe(),
                                    "--role",
                                    system,
                                    role,
                                    mode,
                                    std::to_string(bytes),
                                    std::to_string(s.warmup),
                                    std::to_string(frames),
                                    std::to_string(s.rate),
                                    endpoint};
  };
  const std::string what = system + " " + mode + " " + std::to_string(bytes) + " B";
  shm_test::Child pub(args("publisher"));
  const RolePids pids(pub.pid());
  if (!pub.wait_for_output("ready", 20s)) {
    std::fprintf(stderr, "bench_shm_iceoryx: %s: the publisher did not start\n", what.c_str());
    return std::nullopt;
  }
  shm_test::Child sub(args("subscriber"));
  g_role_pids[1] = sub.pid();
  const auto limit = std::chrono::milliseconds(60000 + static_cast<long>(frames * 2));
  const std::optional<int> sub_rc = sub.wait(limit);
  const std::optional<int> pub_rc = pub.wait(30s);
  if (sub_rc != 0 || pub_rc != 0) {
    std::fprintf(stderr, "bench_shm_iceoryx: %s failed (publisher %d, subscriber %d)\n", what.c_str(),
                 pub_rc.value_or(-1), sub_rc.value_or(-1));
    return std::nullopt;
  }
  const auto num = [](const shm_test::Child& c, const char* key) {
    return shm_test::json_number(c.output(), key).value_or(-1);
  };
  const auto f = static_cast<double>(frames);
  const auto per_frame = [&](double v, double scale) { return v < 0 ? -1 : v / f / scale; };
  Sample out;
  out.fps = f / (num(sub, "wall_ns") / 1e9);
  out.pub_cpu_us = per_frame(num(pub, "cpu_ns"), 1e3);
  out.sub_cpu_us = per_frame(num(sub, "cpu_ns"), 1e3);
  out.pub_calls = per_frame(num(pub, "syscalls"), 1);
  out.sub_calls = per_frame(num(sub, "syscalls"), 1);
  out.p50_us = num(sub, "p50_ns") / 1e3;
  out.p99_us = num(sub, "p99_ns") / 1e3;
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

/// Medians over the repetitions, of the throughput run (frames/s, CPU,
/// system calls at full speed) and the latency run (p50, p99, system calls
/// at the fixed rate).
struct Result {
  double fps, pub_cpu_us, sub_cpu_us, pub_calls, sub_calls, p50_us, p99_us, pub_calls_paced, sub_calls_paced;
};

Result medians(const std::vector<Sample>& fast, const std::vector<Sample>& paced) {
  const auto m = [](const std::vector<Sample>& v, double Sample::*field) {
    std::vector<double> x;
    for (const Sample& s : v) x.push_back(s.*field);
    return median(x);
  };
  return {m(fast, &Sample::fps),       m(fast, &Sample::pub_cpu_us), m(fast, &Sample::sub_cpu_us),
          m(fast, &Sample::pub_calls), m(fast, &Sample::sub_calls),  m(paced, &Sample::p50_us),
          m(paced, &Sample::p99_us),   m(paced, &Sample::pub_calls), m(paced, &Sample::sub_calls)};
}

std::string size_name(std::size_t b) {
  if (b % (1U << 20) == 0) return std::to_string(b >> 20) + " MiB";
  if (b % 1024 == 0) return std::to_string(b >> 10) + " KiB";
  return std::to_string(b) + " B";
}

std::vector<std::size_t> parse_sizes(const std::string& text) {
  std::vector<std::size_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoull(item));
  if (out.empty() || std::any_of(out.begin(), out.end(), [](std::size_t b) { return b < sizeof(Header); }))
    throw std::invalid_argument("--sizes: payload sizes of at least 16 bytes, comma-separated");
  return out;
}

int orchestrate(const Settings& s) {
  if (roudi_running()) {
    std::fprintf(stderr,
                 "bench_shm_iceoryx: another iox-roudi is running (it holds %s). This benchmark starts its own RouDi "
                 "with its own mempools, and iceoryx allows one per machine: stop that one first (it is left "
                 "alone here).\n",
                 roudi_lock);
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  shm_test::TempDir dir;
  Roudi roudi(s.roudi, dir, s.sizes);
  std::fprintf(stderr, "bench_shm_iceoryx: iox-roudi up (pid %d)\n", static_cast<int>(roudi.pid()));

  // [system][size] -> samples; the floor has one "size" (no payload).
  std::map<std::string, std::map<std::size_t, std::vector<Sample>>> fast, paced;
  bool ok = true;
  for (int rep = 0; rep < s.repetitions && ok; ++rep) {
    for (const std::size_t bytes : s.sizes) {
      // Alternating: daq-pool first in even repetitions, iceoryx first in odd.
      const std::vector<std::string> order = rep % 2 == 0 ? std::vector<std::string>{"daq-pool", "iceoryx"}
                                                          : std::vector<std::string>{"iceoryx", "daq-pool"};
      for (const std::string& system : order) {
        for (const char* mode : {"throughput", "latency"}) {
          const std::optional<Sample> x = measure(s, dir, system, mode, bytes);
          ok = ok && x.has_value();
          if (x) (std::string(mode) == "latency" ? paced : fast)[system][bytes].push_back(*x);
        }
      }
    }
    for (const char* mode : {"throughput", "latency"}) {
      const std::optional<Sample> x = measure(s, dir, "floor", mode, sizeof(Header));
      ok = ok && x.has_value();
      if (x) (std::string(mode) == "latency" ? paced : fast)["floor"][0].push_back(*x);
    }
    std::fprintf(stderr, "bench_shm_iceoryx: repetition %d of %d done\n", rep + 1, s.repetitions);
  }
  const bool roudi_clean = roudi.stop();
  if (!roudi_clean) std::fprintf(stderr, "bench_shm_iceoryx: iox-roudi needed SIGKILL\n");
  if (!ok) {
    std::fprintf(stderr, "bench_shm_iceoryx: FAILED (see above)\n");
    return 1;
  }

  const Result floor = medians(fast["floor"][0], paced["floor"][0]);
  std::printf(
      "daq_pool::shm vs iceoryx 2.0.3: 1 publisher + 1 subscriber process, zero copy, <= %zu in flight; "
      "medians of %d repetitions (alternating); throughput over %" PRIu64 " frames, latency over %" PRIu64
      " frames at %.0f Hz\n\n",
      max_in_flight, s.repetitions, s.frames, s.latency_frames, s.rate);
  std::printf(
      "| payload | system | frames/s | CPU us/frame pub / sub | syscalls/frame pub / sub (full speed) | "
      "syscalls/frame pub / sub (%.0f Hz) | latency p50 / p99 us |\n|---|---|---|---|---|---|---|\n",
      s.rate);
  const auto row = [](const std::string& size, const std::string& system, const Result& r) {
    std::printf("| %s | %s | %.0f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.1f / %.1f |\n", size.c_str(),
                system.c_str(), r.fps, r.pub_cpu_us, r.sub_cpu_us, r.pub_calls, r.sub_calls, r.pub_calls_paced,
                r.sub_calls_paced, r.p50_us, r.p99_us);
  };
  std::string json = "{\"repetitions\": " + std::to_string(s.repetitions) +
                     ", \"frames\": " + std::to_string(s.frames) +
                     ", \"latency_frames\": " + std::to_string(s.latency_frames) +
                     ", \"rate_hz\": " + std::to_string(s.rate) + ", \"results\": [";
  const auto json_of = [](const std::string& system, std::size_t bytes, const Result& r) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "{\"system\": \"%s\", \"bytes\": %zu, \"frames_per_s\": %.1f, \"pub_cpu_us\": %.3f, "
                  "\"sub_cpu_us\": %.3f, \"pub_syscalls\": %.3f, \"sub_syscalls\": %.3f, \"pub_syscalls_paced\": "
                  "%.3f, \"sub_syscalls_paced\": %.3f, \"p50_us\": %.2f, \"p99_us\": %.2f}",
                  system.c_str(), bytes, r.fps, r.pub_cpu_us, r.sub_cpu_us, r.pub_calls, r.sub_calls, r.pub_calls_paced,
                  r.sub_calls_paced, r.p50_us, r.p99_us);
    return std::string(buf);
  };
  json += json_of("floor", 0, floor);
  std::string goals;
  bool all_met = true;
  for (const std::size_t bytes : s.sizes) {
    const Result d = medians(fast["daq-pool"][bytes], paced["daq-pool"][bytes]);
    const Result x = medians(fast["iceoryx"][bytes], paced["iceoryx"][bytes]);
    row(size_name(bytes), "daq-pool", d);
    row(size_name(bytes), "iceoryx", x);
    const Result q{d.fps / x.fps,
                   d.pub_cpu_us / x.pub_cpu_us,
                   d.sub_cpu_us / x.sub_cpu_us,
                   d.pub_calls / x.pub_calls,
                   d.sub_calls / x.sub_calls,
                   d.p50_us / x.p50_us,
                   d.p99_us / x.p99_us,
                   d.pub_calls_paced / x.pub_calls_paced,
                   d.sub_calls_paced / x.sub_calls_paced};
    std::printf(
        "| %s | **ratio daq-pool / iceoryx** | %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |\n",
        size_name(bytes).c_str(), q.fps, q.pub_cpu_us, q.sub_cpu_us, q.pub_calls, q.sub_calls, q.pub_calls_paced,
        q.sub_calls_paced, q.p50_us, q.p99_us);
    json +=
        ", " + json_of("daq-pool", bytes, d) + ", " + json_of("iceoryx", bytes, x) + ", " + json_of("ratio", bytes, q);
    const std::array<std::pair<const char*, bool>, 4> g{{{"throughput >= iceoryx", q.fps >= 1.0},
                                                         {"CPU/frame publisher <= iceoryx", q.pub_cpu_us <= 1.0},
                                                         {"CPU/frame subscriber <= iceoryx", q.sub_cpu_us <= 1.0},
                                                         {"latency p50 <= 1.1 x iceoryx", q.p50_us <= 1.1}}};
    goals += size_name(bytes) + ":";
    for (const auto& [name, met] : g) {
      goals += std::string("  ") + name + (met ? " met;" : " NOT met;");
      all_met = all_met && met;
    }
    goals += "\n";
  }
  row("none", "floor (futex hand-off)", floor);
  json += "], \"all_goals_met\": " + std::string(all_met ? "true" : "false") + "}";
  std::printf("\nGoals (issue 20):\n%s", goals.c_str());
  if (s.json) std::printf("\n%s\n", json.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() == 9 && a[0] == "--role") {
      Role r;
      r.system = a[1];
      r.role = a[2];
      r.mode = a[3];
      r.bytes = std::stoull(a[4]);
      r.warmup = std::stoull(a[5]);
      r.frames = std::stoull(a[6]);
      r.rate = std::stod(a[7]);
      r.endpoint = a[8];
      if (r.frames == 0 || r.warmup == 0 || r.rate <= 0) throw std::invalid_argument("frames, warmup, rate > 0");
      return run_role(r);
    }
    Settings s;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const auto value = [&]() -> const std::string& {
        if (i + 1 >= a.size()) throw std::invalid_argument(a[i] + " needs a value");
        return a[++i];
      };
      if (a[i] == "--frames")
        s.frames = std::stoull(value());
      else if (a[i] == "--latency-frames")
        s.latency_frames = std::stoull(value());
      else if (a[i] == "--warmup")
        s.warmup = std::stoull(value());
      else if (a[i] == "--rate")
        s.rate = std::stod(value());
      else if (a[i] == "--repetitions")
        s.repetitions = std::stoi(value());
      else if (a[i] == "--sizes")
        s.sizes = parse_sizes(value());
      else if (a[i] == "--roudi")
        s.roudi = value();
      else if (a[i] == "--json")
        s.json = true;
      else
        throw std::invalid_argument("unknown argument " + a[i] +
                                    " (--frames N --latency-frames N --warmup N --rate HZ --repetitions R "
                                    "--sizes B,B --roudi PATH --json)");
    }
    if (s.frames == 0 || s.latency_frames == 0 || s.warmup == 0 || s.rate <= 0 || s.repetitions < 1)
      throw std::invalid_argument("--frames, --latency-frames, --warmup, --rate and --repetitions must be > 0");
    return orchestrate(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_shm_iceoryx: %s\n", e.what());
    return 2;
  }
}
