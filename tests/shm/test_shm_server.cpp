// daq_pool/shm (protocol version 2, issue 20) in one process: the server's
// errors and security rules (private directory, read-only sealed memory,
// sealed control regions, same uid only, a pool too small for what
// subscribers may hold), backpressure (skip, told; wait), releases that are
// forged, duplicated or scribbled (counted and ignored, or a disconnect),
// leases, the C++ Subscriber's views (in place, outliving the server and the
// Subscriber, a pollable descriptor), zero allocations per frame on both
// sides, connection robustness (deadlines, a wedged listener, EMFILE,
// EINTR, cleanup after a failed construction), and many subscribers coming
// and going during acquisition. Subscribers here are threads or hand-made
// clients; test_shm_processes.cpp runs them as processes.
#include <daq_pool/shm.hpp>

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"
#include "catch.hpp"
#include "frame_pattern.hpp"
#include "shm_test_support.hpp"
#include "watchdog.hpp"

using daq_pool::BufferPool;
using daq_pool::BufferPoolOptions;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;
using daq_pool::shm::Server;
using daq_pool::shm::ServerOptions;
using daq_pool::shm::Subscriber;
using shm_test::RawClient;
using shm_test::TempDir;
using shm_test::wait_until;
using namespace std::chrono_literals;
namespace protocol = daq_pool::shm::protocol;

namespace {

ServerOptions opts(std::size_t subscribers, std::size_t in_flight, std::size_t margin = 1) {
  ServerOptions o;
  o.max_subscribers = subscribers;
  o.max_in_flight = in_flight;
  o.producer_margin = margin;
  return o;
}

/// opts(1, in_flight) with wait_when_full: publish() at the subscriber's
/// bound waits up to `timeout` for a release.
ServerOptions waiting_opts(std::size_t in_flight, std::chrono::milliseconds timeout) {
  ServerOptions o = opts(1, in_flight);
  o.wait_when_full = true;
  o.wait_timeout = timeout;
  return o;
}

/// The raw client says hello and `server` counts it as its one subscriber.
void join(const Server& server, RawClient& c) {
  REQUIRE(c.hello());
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
}

BufferPool shared_pool(std::size_t n, std::size_t capacity) {
  BufferPoolOptions o;
  o.shared_memory = true;
  return BufferPool(n, capacity, o);
}

/// Frame `number` of the demo's pattern in a fresh buffer, frozen.
Bytes make_frame(BufferPool& pool, std::uint64_t number) {
  PooledBuffer b = pool.acquire();
  b.set_size(b.capacity());
  frame_pipeline::fill_frame(b.get_mut(), number);
  return std::move(b).freeze();
}

bool frame_ok(const Bytes& v) {
  return frame_pipeline::verify_frame(v.span(), v.size(), false, 0).fault == frame_pipeline::FrameFault::ok;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("bad pools, options and paths are refused with a message naming them") {
  TempDir dir;
  BufferPool plain(2, 4096);
  CHECK(contains(error_of([&] { Server s(plain, dir / "a.sock", opts(1, 1)); }), "BufferPoolOptions::shared_memory"));
  BufferPool pool = shared_pool(2, 4096);
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", opts(0, 1)); }), "max_subscribers"));
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", opts(1, 5000)); }), "max_in_flight"));
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", opts(1, 1, 0)); }), "producer_margin"));
  ServerOptions o = opts(1, 1);
  o.wait_timeout = -1ms;
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", o); }), "wait_timeout"));
  o = opts(1, 1);
  o.lease = -1ms;
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", o); }), "lease"));
  CHECK(contains(error_of([&] { Server s(pool, "", opts(1, 1)); }), "path"));
  CHECK(contains(error_of([&] { Server s(pool, dir / std::string(120, 'x'), opts(1, 1)); }), "107 bytes"));
  CHECK(contains(error_of([&] { Subscriber s(dir / std::string(120, 'x')); }), "107 bytes"));
  CHECK(contains(error_of([&] { Subscriber s(dir / "nobody.sock"); }), "connect"));
  CHECK(::access((dir / "a.sock").c_str(), F_OK) != 0);  // nothing left behind
}

TEST_CASE("a pool smaller than subscribers' holdings plus the producer's margin is refused, naming the numbers") {
  TempDir dir;
  BufferPool pool = shared_pool(8, 4096);
  // The README's old example: 8 buffers, 8 subscribers x 2 in flight.
  const std::string e = error_of([&] { Server s(pool, dir / "a.sock", opts(8, 2, 2)); });
  INFO(e);
  CHECK(contains(e, "the pool has 8 buffers"));
  CHECK(contains(e, "8 subscribers (max_subscribers) x 2 frames in flight (max_in_flight) + a producer margin of 2"));
  CHECK(contains(e, "need 18"));
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock"); }), "need 34"));  // the defaults: 8 x 4 + 2
  Server fits(pool, dir / "a.sock", opts(3, 2, 2));                             // 3 x 2 + 2 = 8: served
  CHECK(fits.subscribers() == 0);
}

TEST_CASE("the socket's directory must be private, created 0700 or else refused") {
  TempDir dir;
  BufferPool pool = shared_pool(2, 4096);
  {
    Server s(pool, dir / "new/frames.sock", opts(1, 1));  // a missing directory is created
    struct stat st {};
    REQUIRE(::stat((dir / "new").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(::access(s.path().c_str(), F_OK) == 0);
  }
  CHECK(::access((dir / "new/frames.sock").c_str(), F_OK) != 0);  // stop() removed it
  CHECK(::access((dir / "new").c_str(), F_OK) != 0);              // and the directory it made
  REQUIRE(::mkdir((dir / "new").c_str(), 0700) == 0);

  REQUIRE(::mkdir((dir / "open").c_str(), 0700) == 0);
  REQUIRE(::chmod((dir / "open").c_str(), 0755) == 0);
  const std::string open_error = error_of([&] { Server s(pool, dir / "open/frames.sock", opts(1, 1)); });
  INFO(open_error);
  CHECK(contains(open_error, "mode 0755"));
  CHECK(contains(open_error, "0700"));
  REQUIRE(::symlink((dir / "new").c_str(), (dir / "link").c_str()) == 0);
  CHECK(contains(error_of([&] { Server s(pool, dir / "link/frames.sock", opts(1, 1)); }), "symbolic link"));
  REQUIRE(::close(::open((dir / "file").c_str(), O_CREAT | O_WRONLY, 0600)) == 0);
  CHECK(contains(error_of([&] { Server s(pool, dir / "file/frames.sock", opts(1, 1)); }), "not a directory"));
}

TEST_CASE("a failed construction leaves neither socket file nor the directory it created (descriptors exhausted)") {
  TempDir dir;
  BufferPool pool = shared_pool(2, 4096);
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  int failures = 0;
  // With k descriptors free, construction fails at a different step each
  // time (the read-only memfd, epoll, eventfd, the socket...) after the
  // directory was made: each failure must take the directory away again.
  for (int k = 0; k < 8; ++k) {
    std::vector<int> fillers;
    for (int i = 0; i < 100000; ++i) {
      const int fd = ::dup(0);
      if (fd < 0) break;
      fillers.push_back(fd);
    }
    for (int i = 0; i < k && !fillers.empty(); ++i) {
      ::close(fillers.back());
      fillers.pop_back();
    }
    std::string error;
    bool built = false;
    try {
      Server s(pool, dir / ("d" + std::to_string(k) + "/frames.sock"), opts(1, 1));
      built = true;
    } catch (const std::exception& e) {
      error = e.what();
    }
    for (int fd : fillers) ::close(fd);
    INFO("free descriptors " << k << ": " << (built ? "built" : error));
    if (!built) ++failures;
    CHECK(::access((dir / ("d" + std::to_string(k))).c_str(), F_OK) != 0);
  }
  CHECK(failures > 0);
}

TEST_CASE("a stale socket file is replaced; a live server's socket, a wedged listener's or another file is not") {
  test_support::Watchdog dog("stale socket probe", 60s);
  TempDir dir;
  BufferPool pool = shared_pool(2, 4096);
  {
    // A stale socket: bound, never listened on, its owner gone (ECONNREFUSED).
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, (dir / "s.sock").c_str());
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);
  }
  Server live(pool, dir / "s.sock", opts(1, 1));
  CHECK(contains(error_of([&] { Server s(pool, dir / "s.sock", opts(1, 1)); }), "another server is listening"));
  REQUIRE(::close(::open((dir / "regular").c_str(), O_CREAT | O_WRONLY, 0600)) == 0);
  CHECK(contains(error_of([&] { Server s(pool, dir / "regular", opts(1, 1)); }), "not a socket"));
  CHECK(::access((dir / "regular").c_str(), F_OK) == 0);
  RawClient c(live.path());
  CHECK(c.hello());

  // A wedged listener (alive, never accepting, its backlog full): a blocking
  // probe would hang; a probe that takes any failure for "stale" would
  // unlink a live server's socket. Neither: refused, the file stays.
  const int wedged = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, (dir / "w.sock").c_str());
  REQUIRE(::bind(wedged, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(wedged, 0) == 0);
  std::vector<int> fill;
  for (int i = 0; i < 16; ++i) {
    const int f = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (::connect(f, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      ::close(f);
      break;
    }
    fill.push_back(f);
  }
  const std::string e = error_of([&] { Server s(pool, dir / "w.sock", opts(1, 1)); });
  INFO(e);
  CHECK(contains(e, "not replacing it"));
  struct stat st {};
  CHECK(::lstat((dir / "w.sock").c_str(), &st) == 0);
  // And a Subscriber gives up at its deadline instead of hanging in connect().
  const auto t0 = std::chrono::steady_clock::now();
  const std::string se = error_of([&] { Subscriber s(dir / "w.sock", 200ms); });
  INFO(se);
  CHECK(contains(se, "connect"));
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);  // bounded (the watchdog catches a hang)
  for (int f : fill) ::close(f);
  ::close(wedged);
}

TEST_CASE("a subscriber gets the geometry, a read-only sealed memfd and a sealed control region") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 100'000);
  Server server(pool, dir / "s.sock", opts(1, 5));
  RawClient c(server.path());
  const std::optional<protocol::Hello> h = c.hello();
  REQUIRE(h);
  const daq_pool::SharedMemoryRegion region = *pool.shared_memory();
  CHECK(h->region_size == region.size);
  CHECK(h->buffer_count == 6);
  CHECK(h->buffer_capacity == 100'000);
  CHECK(h->buffer_stride == region.stride);
  CHECK(h->max_in_flight == 5);
  CHECK(h->ring_slots == 8);
  CHECK(h->control_bytes == protocol::control::region_bytes(8));
  CHECK(h->subscriber_id == 1);
  CHECK(protocol::hello_problem(*h) == nullptr);
  REQUIRE(c.memfd() >= 0);
  CHECK((::fcntl(c.memfd(), F_GETFL) & O_ACCMODE) == O_RDONLY);
  CHECK(::mmap(nullptr, region.size, PROT_READ | PROT_WRITE, MAP_SHARED, c.memfd(), 0) == MAP_FAILED);
  void* r = ::mmap(nullptr, region.size, PROT_READ, MAP_SHARED, c.memfd(), 0);
  REQUIRE(r != MAP_FAILED);
  CHECK(::mprotect(r, region.size, PROT_READ | PROT_WRITE) != 0);
  CHECK(server.write_sealed() == region.write_sealed);
  if (region.write_sealed) {
    const std::string again = "/proc/self/fd/" + std::to_string(c.memfd());
    const int rw = ::open(again.c_str(), O_RDWR | O_CLOEXEC);
    if (rw >= 0) {
      CHECK(::mmap(nullptr, region.size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
      ::close(rw);
    }
  }
  // The control region can't be resized under the server (SIGBUS there).
  CHECK(::ftruncate(c.control_fd(), 0) != 0);
  CHECK(::ftruncate(c.control_fd(), 1 << 20) != 0);
  CHECK((::fcntl(c.control_fd(), F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
  CHECK(c.word32(protocol::control::magic_at).load() == protocol::control::magic);

  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  Bytes frame = make_frame(pool, 7);
  CHECK(server.publish(frame, 12345) == 1);
  const auto m = c.frame();
  REQUIRE(m);
  CHECK(m->sequence == 1);
  CHECK(m->timestamp_ns == 12345);
  CHECK(m->size == frame.size());
  CHECK(m->offset == *pool.shared_offset(frame));
  CHECK(m->skipped == 0);
  CHECK(std::memcmp(static_cast<const std::byte*>(r) + m->offset, frame.data(), frame.size()) == 0);
  ::munmap(r, region.size);
}

TEST_CASE("the frame layout the server states reaches the subscriber; a bad one is refused, naming it") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  ServerOptions o = opts(2, 2);  // the raw client and the Subscriber
  o.layout.dtype = "<u2";
  o.layout.ndim = 2;
  o.layout.shape = {32, 64, 0, 0};
  {
    Server server(pool, dir / "s.sock", o);
    RawClient c(server.path());
    const std::optional<protocol::Hello> h = c.hello();
    REQUIRE(h);
    CHECK(std::string(h->dtype.data()) == "<u2");
    CHECK(h->ndim == 2);
    CHECK(h->shape == std::array<std::uint64_t, 4>{32, 64, 0, 0});
    CHECK(protocol::hello_problem(*h) == nullptr);
    Subscriber sub(server.path(), 10s);
    const daq_pool::FrameLayout l = sub.layout();
    CHECK(l.dtype == "<u2");
    CHECK(l.ndim == 2);
    CHECK(l.shape == o.layout.shape);
  }
  const auto refused = [&](daq_pool::FrameLayout l) {
    ServerOptions bad = opts(1, 2);
    bad.layout = std::move(l);
    return error_of([&] { Server s(pool, dir / "b.sock", bad); });
  };
  daq_pool::FrameLayout l;
  l.dtype = "<u2";
  l.ndim = 2;
  l.shape = {64, 64, 0, 0};  // 8192 bytes: larger than a 4096-byte frame
  CHECK(contains(refused(l), "options.layout: the shape of <u2 elements is larger than a frame's 4096 bytes"));
  l.dtype = "float32";
  l.shape = {2, 2, 0, 0};
  CHECK(contains(refused(l), "options.layout: dtype 'float32' is not a numpy typestr"));
  l.dtype = "<u2";
  l.ndim = 5;
  CHECK(contains(refused(l), "options.layout: ndim 5 exceeds 4"));
  l.ndim = 1;
  CHECK(contains(refused(l), "options.layout: shape[1] is set beyond ndim 1"));
  l = {};
  l.ndim = 1;
  l.shape = {8, 0, 0, 0};
  CHECK(contains(refused(l), "options.layout: a shape needs a dtype"));
}

TEST_CASE("a hello's frame layout is checked (text dtype, no stray dimension, no shape without dtype)") {
  protocol::Hello h;
  h.region_size = 4096;
  h.buffer_capacity = 4096;
  h.buffer_stride = 4096;
  h.buffer_count = 1;
  h.max_in_flight = 1;
  h.ring_slots = protocol::control::ring_slots_for(1);
  h.control_bytes = protocol::control::region_bytes(h.ring_slots);
  REQUIRE(protocol::hello_problem(h) == nullptr);  // no layout stated
  const auto encoded = protocol::encode(h);
  CHECK(protocol::decode_hello(encoded).has_value());
  const auto problem = [](protocol::Hello x) {
    const char* p = protocol::hello_problem(x);
    return std::string(p == nullptr ? "" : p);
  };
  protocol::Hello bad = h;
  bad.dtype = {'<', 'u', '2', '\0', 'x', '\0', '\0', '\0'};
  CHECK(problem(bad) == "dtype is not ASCII text padded with NULs");
  bad = h;
  bad.dtype = {'<', 'u', '2', '4', '5', '6', '7', '8'};
  CHECK(problem(bad) == "dtype is not ASCII text padded with NULs");
  bad = h;
  bad.ndim = 5;
  CHECK(problem(bad) == "ndim exceeds 4");
  bad = h;
  bad.shape[2] = 7;
  CHECK(problem(bad) == "a shape dimension beyond ndim is set");
  bad = h;
  bad.ndim = 1;
  bad.shape[0] = 8;
  CHECK(problem(bad) == "a shape without a dtype");
  bad.ndim = 1;
  bad.shape[0] = 0;
  bad.dtype = {'|', 'u', '1', '\0', '\0', '\0', '\0', '\0'};
  CHECK(problem(bad) == "a used shape dimension is 0");
  // The second reserved word must be 0.
  auto m = protocol::encode(h);
  m[84] = std::byte{1};
  CHECK_FALSE(protocol::decode_hello(m).has_value());
}

TEST_CASE("a subscriber at its bound is skipped, counted and told; each release makes room again") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  Server server(pool, dir / "s.sock", opts(2, 2));
  RawClient c(server.path());
  join(server, c);
  for (std::uint64_t i = 0; i < 5; ++i) CHECK(server.publish(make_frame(pool, i)) == (i < 2 ? 1u : 0u));
  daq_pool::shm::SubscriberStats s = server.subscriber(0);
  CHECK(s.sent == 2);
  CHECK(s.skipped == 3);
  CHECK(s.in_flight == 2);
  CHECK(c.word64(protocol::control::skipped_at).load() == 3);  // the subscriber is told
  CHECK(pool.available() == 4);
  const auto first = c.frame();
  REQUIRE(first);
  c.release(first->slot, first->sequence);
  CHECK(server.publish(make_frame(pool, 9)) == 1);  // publish() collected the release first
  CHECK(server.subscriber(0).in_flight == 2);
  CHECK(pool.available() == 4);
  (void)c.frame();
  const auto third = c.frame();
  REQUIRE(third);
  CHECK(third->skipped == 3);
  const daq_pool::shm::ServerStats st = server.stats();
  CHECK(st.published == 6);
  CHECK(st.sent == 3);
  CHECK(st.skipped == 3);
  CHECK(st.released == 1);
}

TEST_CASE("a Subscriber learns of frames skipped after its last one (missed counts the server's skips)") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  Server server(pool, dir / "s.sock", opts(1, 2));
  Subscriber sub(server.path(), 5s);
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  auto a = sub.receive_for(0ms);
  CHECK_FALSE(a);
  CHECK(server.publish(make_frame(pool, 1)) == 1);
  CHECK(server.publish(make_frame(pool, 2)) == 1);
  std::optional<daq_pool::shm::Frame> f1 = sub.receive_for(5s), f2 = sub.receive_for(5s);  // held
  REQUIRE(f1);
  REQUIRE(f2);
  for (int i = 0; i < 10; ++i) CHECK(server.publish(make_frame(pool, 3 + static_cast<std::uint64_t>(i))) == 0);
  CHECK(sub.stats().missed == 10);  // no frame after them, and still told
  CHECK(sub.stats().frames == 2);
}

TEST_CASE("wait_when_full waits up to wait_timeout, and sends as soon as a release makes room") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  ServerOptions o = waiting_opts(1, 50ms);
  Server server(pool, dir / "s.sock", o);
  RawClient c(server.path());
  join(server, c);
  CHECK(server.publish(make_frame(pool, 1)) == 1);
  CHECK(server.publish(make_frame(pool, 2)) == 0);  // waited, then skipped
  CHECK(server.subscriber(0).timed_out == 1);
  CHECK(server.subscriber(0).skipped == 1);

  o.wait_timeout = 60s;
  Server patient(pool, dir / "p.sock", o);
  RawClient d(patient.path());
  join(patient, d);
  CHECK(patient.publish(make_frame(pool, 1)) == 1);
  std::thread answer([&] {
    const auto m = d.frame();
    std::this_thread::sleep_for(20ms);
    if (m) d.release(m->slot, m->sequence);
  });
  CHECK(patient.publish(make_frame(pool, 2)) == 1);
  answer.join();
  CHECK(patient.subscriber(0).timed_out == 0);
  CHECK(patient.subscriber(0).released == 1);
}

TEST_CASE("a publish() waiting at the bound is woken by the release itself, not through the server thread") {
  // The subscriber releases 2 ms after each frame: longer than publish()
  // spins, so it sleeps every time. Its release must wake the publishing
  // thread directly (server_wake polled by publish()); the server thread
  // wakes at most when it slept armed (idle ticks), never per frame.
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  ServerOptions o = waiting_opts(1, 60s);
  Server server(pool, dir / "s.sock", o);
  RawClient c(server.path());
  join(server, c);
  constexpr int frames = 40;
  test_support::Watchdog dog("publish woken by the release", 120s);
  std::thread answer([&] {
    for (int k = 0; k < frames; ++k) {
      const auto m = c.frame();
      if (!m) return;
      std::this_thread::sleep_for(2ms);
      c.release(m->slot, m->sequence);
    }
  });
  int reached = 0;
  for (int k = 1; k <= frames; ++k) reached += static_cast<int>(server.publish(make_frame(pool, k)));
  answer.join();
  CHECK(reached == frames);
  CHECK(server.subscriber(0).timed_out == 0);
  CHECK(server.subscriber(0).released >= frames - 1);  // the last one may not be collected yet
  INFO("server thread woken by releases: " << server.stats().server_wakeups);
  CHECK(server.stats().server_wakeups <= frames / 4);
}

TEST_CASE("a subscriber gone while publish() sleeps at its bound ends the wait at once; every buffer comes back") {
  // publish() polls the subscriber's server_wake when the server thread
  // disconnects it: the descriptor is parked for publish() to close, and
  // the wake-up it gets ends its wait long before wait_timeout.
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  ServerOptions o = waiting_opts(1, 60s);
  Server server(pool, dir / "s.sock", o);
  std::optional<RawClient> c(std::in_place, server.path());
  join(server, *c);
  test_support::Watchdog dog("subscriber gone under a waiting publish", 60s);
  CHECK(server.publish(make_frame(pool, 1)) == 1);
  std::thread leave([&] {
    std::this_thread::sleep_for(50ms);  // publish() is past its spin by then
    c.reset();
  });
  CHECK(server.publish(make_frame(pool, 2)) == 0);
  leave.join();
  CHECK(server.subscriber(0).timed_out == 0);
  REQUIRE(wait_until([&] { return server.stats().disconnected == 1; }));
  REQUIRE(wait_until([&] { return pool.available() == pool.size(); }));
  // The place is reused by the next subscriber, which gets frames.
  RawClient d(server.path());
  join(server, d);
  CHECK(server.publish(make_frame(pool, 3)) == 1);
}

TEST_CASE("forged, duplicate, out-of-range and malformed releases are counted and ignored, never released twice") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  Server server(pool, dir / "s.sock", opts(1, 3));
  RawClient c(server.path());
  join(server, c);
  REQUIRE(server.publish(make_frame(pool, 1)) == 1);
  REQUIRE(server.publish(make_frame(pool, 2)) == 1);
  const auto a = c.frame();
  const auto b = c.frame();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(pool.available() == 4);
  const std::uint32_t not_held = 0 + 1 + 2 - a->slot - b->slot;
  // One at a time (the ring has 4 entries: a subscriber never has more
  // releases outstanding than frames held), each collected before the next.
  std::uint64_t pushed = 0;
  const auto one = [&](std::uint32_t slot, std::uint64_t sequence, std::uint32_t reserved = 0) {
    c.release(slot, sequence, reserved);
    ++pushed;
    REQUIRE(wait_until([&] { return c.word64(protocol::control::release_tail_at).load() == pushed; }));
  };
  one(3, a->sequence);            // out of range (max_in_flight 3)
  one(0xFFFFFFFFu, a->sequence);  // out of range
  one(not_held, a->sequence);     // a slot not held
  one(a->slot, b->sequence);      // another frame's sequence
  one(a->slot, 0);                // no such sequence
  one(a->slot, a->sequence, 7);   // reserved field set
  // None of these named a frame as held: nothing is released yet.
  CHECK(server.subscriber(0).released == 0);
  CHECK(server.subscriber(0).in_flight == 2);
  CHECK(pool.available() == 4);
  one(a->slot, a->sequence);      // the real one
  one(a->slot, a->sequence);      // duplicates
  one(a->slot, a->sequence);
  const daq_pool::shm::SubscriberStats s = server.subscriber(0);
  CHECK(s.released == 1);
  CHECK(s.bad_releases == 8);
  CHECK(s.in_flight == 1);
  CHECK(s.connected);
  CHECK(pool.available() == 5);  // exactly one frame came back
  c.release(b->slot, b->sequence);
  REQUIRE(wait_until([&] { return pool.available() == 6; }));
}

TEST_CASE("a subscriber scribbling its release index is disconnected, the server neither crashes nor hangs") {
  for (const std::uint64_t scribble :
       {std::uint64_t{5}, std::uint64_t{1000}, ~std::uint64_t{0}, std::uint64_t{1} << 63}) {
    TempDir dir;
    BufferPool pool = shared_pool(6, 4096);
    Server server(pool, dir / "s.sock", opts(1, 4));  // ring_slots 4: head may be at most 4 ahead
    RawClient c(server.path());
    join(server, c);
    for (std::uint64_t i = 1; i <= 3; ++i) REQUIRE(server.publish(make_frame(pool, i)) == 1);
    CHECK(pool.available() == 3);
    c.set_release_head(scribble);
    server.publish(make_frame(pool, 9));  // publish() sees it (and the server thread at its tick)
    INFO("release_head " << scribble);
    CHECK(c.closed_by_server());
    REQUIRE(wait_until([&] { return server.subscribers() == 0; }));
    CHECK(server.stats().protocol_errors == 1);
    CHECK(c.word32(protocol::control::state_at).load() == protocol::control::state_revoked);
    CHECK(pool.available() == pool.size());  // everything it held came back
  }
}

TEST_CASE("random scribbles over a subscriber control region cause no crash, no hang, no lost buffer") {
  test_support::Watchdog dog("scribbled control region", 120s);
  TempDir dir;
  BufferPool pool = shared_pool(8, 4096);
  Server server(pool, dir / "s.sock", opts(2, 3, 2));
  std::uint64_t rng = 0x9E3779B97F4A7C15u;
  const auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  for (int round = 0; round < 30; ++round) {
    RawClient c(server.path());
    join(server, c);
    for (int k = 0; k < 50; ++k) {
      server.publish(make_frame(pool, static_cast<std::uint64_t>(k)));
      // Scribble a few random bytes and words, releases included.
      for (int j = 0; j < 4; ++j) {
        const std::size_t at = next() % c.control_bytes();
        c.control()[at] = static_cast<std::byte>(next());
      }
      if (k % 5 == 0) c.release(static_cast<std::uint32_t>(next() % 5), next() % 60);
      if (k % 17 == 0) c.set_release_head(next() % 8);
      if (server.subscribers() == 0) break;
    }
  }
  REQUIRE(wait_until([&] { return server.subscribers() == 0; }));
  CHECK(pool.available() == pool.size());
}

TEST_CASE("a release cannot be lost, 1024 frames held then dropped at once all come back") {
  TempDir dir;
  BufferPool pool = shared_pool(1026, 512);
  Server server(pool, dir / "s.sock", opts(1, 1024, 2));
  Subscriber sub(server.path(), 5s);
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  std::vector<daq_pool::shm::Frame> held;
  held.reserve(1024);
  for (std::uint64_t i = 1; i <= 1024; ++i) {
    REQUIRE(server.publish(make_frame(pool, i)) == 1);
    std::optional<daq_pool::shm::Frame> f = sub.receive_for(5s);
    REQUIRE(f);
    held.push_back(std::move(*f));
  }
  CHECK(pool.available() == 2);
  held.clear();  // 1024 releases at once (v1 lost 746 of them in its socket)
  CHECK(sub.stats().released == 1024);
  REQUIRE(wait_until([&] { return pool.available() == pool.size(); }));  // the server thread collects them
  CHECK(server.stats().released == 1024);
}

TEST_CASE("the C++ Subscriber receives every frame in place; its last drop releases; no allocation per frame") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 256 * 1024);
  ServerOptions o = waiting_opts(2, 30s);  // every frame is delivered
  Server server(pool, dir / "s.sock", o);
  constexpr std::uint64_t frames = 300;
  constexpr std::uint64_t warmup = 10;
  std::atomic<std::uint64_t> received{0}, verified{0}, in_place{0}, rechecked{0}, valid{0};
  std::atomic<bool> ready{false};
  test_support::Watchdog dog("C++ Subscriber receives every frame", 120s);
  std::thread subscriber([&] {
    Subscriber sub(server.path(), 10s);
    ready.store(true);
    Bytes previous;  // one frame held while the next arrives: two in flight
    while (std::optional<daq_pool::shm::Frame> f = sub.receive()) {
      const std::span<const std::byte> mem = sub.memory();
      if (f->bytes.data() == mem.data() + f->offset && f->offset + f->bytes.size() <= mem.size()) ++in_place;
      if (frame_ok(f->bytes)) ++verified;
      if (f->still_valid()) ++valid;
      ++received;
      if (!previous.empty() && frame_ok(previous)) ++rechecked;
      previous = std::move(f->bytes);
    }
    if (!previous.empty() && frame_ok(previous)) ++rechecked;
  });
  REQUIRE(wait_until([&] { return ready.load() && server.subscribers() == 1; }));
  std::uint64_t allocs_at_warmup = 0;
  for (std::uint64_t i = 1; i <= frames; ++i) {
    if (i == warmup + 1) allocs_at_warmup = alloc_counter::total();
    REQUIRE(server.publish(make_frame(pool, i)) == 1);
  }
  REQUIRE(wait_until([&] { return received.load() == frames; }, 60s));
  const std::uint64_t allocs = alloc_counter::total() - allocs_at_warmup;
  server.stop();
  subscriber.join();
  CHECK(verified == frames);
  CHECK(in_place == frames);
  CHECK(valid == frames);
  CHECK(rechecked == frames);
  CHECK(server.stats().released == frames);
  CHECK(pool.available() == pool.size());
  if (alloc_counter::enabled) {
    // Both sides in this process: publish, release collection, the wakes,
    // receive, the views and their last drops.
    INFO("allocations from frame " << warmup + 1 << " to " << frames << ": " << allocs);
    CHECK(allocs == 0);
  }
}

TEST_CASE("wait_fd is pollable, try_receive until empty then poll and a frame is there") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  Server server(pool, dir / "s.sock", opts(1, 2));
  Subscriber sub(server.path(), 5s);
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  CHECK_FALSE(sub.try_receive());  // armed: the next frame writes the eventfd
  pollfd p{sub.wait_fd(), POLLIN, 0};
  CHECK(::poll(&p, 1, 0) == 0);
  std::thread later([&] {
    std::this_thread::sleep_for(20ms);
    server.publish(make_frame(pool, 1));
  });
  CHECK(::poll(&p, 1, 10000) == 1);
  later.join();
  std::optional<daq_pool::shm::Frame> f = sub.try_receive();
  REQUIRE(f);
  CHECK(frame_ok(f->bytes));
  CHECK(server.stats().wakeups_sent == 1);
}

TEST_CASE("views stay readable after the server is gone; the subscriber sees the end of the stream") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 64 * 1024);
  std::optional<Server> server;
  ServerOptions o = opts(1, 2);
  o.drain_timeout = 0ms;
  server.emplace(pool, dir / "s.sock", o);
  Subscriber sub(server->path(), 5s);
  REQUIRE(wait_until([&] { return server->subscribers() == 1; }));
  const Bytes first = make_frame(pool, 1), second = make_frame(pool, 2);
  REQUIRE(server->publish(first) == 1);
  REQUIRE(server->publish(second) == 1);
  std::optional<daq_pool::shm::Frame> a = sub.receive_for(10s);
  REQUIRE(a);
  server.reset();
  std::optional<daq_pool::shm::Frame> b = sub.receive_for(10s);  // the frame already queued still arrives
  REQUIRE(b);
  CHECK_FALSE(sub.receive_for(10s));
  CHECK(sub.end_of_stream());
  CHECK_FALSE(sub.receive());
  CHECK(frame_ok(a->bytes));
  CHECK(frame_ok(b->bytes));
  // The server took them back when it stopped: the subscriber is told.
  CHECK_FALSE(a->still_valid());
  CHECK(sub.stats().revoked);
}

TEST_CASE("views may outlive the Subscriber; frames it never received are released when it goes") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  Server server(pool, dir / "s.sock", opts(1, 4));
  std::optional<Subscriber> sub;
  sub.emplace(server.path(), 5s);
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  for (std::uint64_t i = 1; i <= 4; ++i) REQUIRE(server.publish(make_frame(pool, i)) == 1);
  std::optional<daq_pool::shm::Frame> kept = sub->receive_for(10s);
  REQUIRE(kept);
  CHECK(pool.available() == 2);
  sub.reset();  // three frames never received: released now
  REQUIRE(wait_until([&] { return pool.available() == 5; }));
  CHECK(server.subscribers() == 1);  // the kept view still holds the connection
  CHECK(frame_ok(kept->bytes));
  CHECK(kept->still_valid());
  Bytes copy = kept->bytes;
  kept.reset();
  CHECK(frame_ok(copy));
  copy.reset();  // the last view: released, then the connection closes
  REQUIRE(wait_until([&] { return pool.available() == 6 && server.subscribers() == 0; }));
}

TEST_CASE("a refused subscriber is told which reason; publish refuses foreign views") {
  TempDir dir;
  BufferPool pool = shared_pool(2, 4096);
  Server server(pool, dir / "s.sock", opts(1, 1));
  Subscriber first(server.path(), 5s);
  const std::string e = error_of([&] { Subscriber second(server.path(), 5s); });
  INFO(e);
  CHECK(contains(e, "max_subscribers are already connected (max_subscribers is 1)"));
  CHECK_FALSE(contains(e, "another user"));
  CHECK(server.stats().refused_full == 1);
  CHECK_THROWS_AS(server.subscriber(1), std::out_of_range);
  const std::byte bytes[8] = {};
  CHECK(server.publish(Bytes::copy_from(bytes)) == 0);
  CHECK(server.publish(Bytes()) == 0);
  BufferPool other = shared_pool(1, 4096);
  CHECK(server.publish(make_frame(other, 1)) == 0);
  CHECK(server.stats().not_shared == 3);
}

namespace {
extern "C" void on_usr1(int /*sig*/) {}
}  // namespace

TEST_CASE("EINTR while waiting for the hello is retried, not a protocol error") {
  test_support::Watchdog dog("EINTR during hello", 60s);
  TempDir dir;
  // A listener of our own, to delay the hello and signal the waiting thread.
  const int l = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, (dir / "slow.sock").c_str());
  REQUIRE(::bind(l, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(l, 4) == 0);
  struct sigaction sa {};
  sa.sa_handler = on_usr1;  // no SA_RESTART: poll() returns EINTR
  struct sigaction old {};
  REQUIRE(::sigaction(SIGUSR1, &sa, &old) == 0);
  std::string error;
  std::atomic<bool> started{false};
  std::thread t([&] {
    started = true;
    error = error_of([&] { Subscriber s(dir / "slow.sock", 5s); });
  });
  const int conn = ::accept(l, nullptr, nullptr);
  REQUIRE(conn >= 0);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(20ms);
    ::pthread_kill(t.native_handle(), SIGUSR1);
  }
  std::this_thread::sleep_for(20ms);
  const auto refused = protocol::encode(protocol::Refused{protocol::RefuseReason::stopping, 0});
  ::send(conn, refused.data(), refused.size(), MSG_NOSIGNAL);
  t.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  ::close(conn);
  ::close(l);
  INFO(error);
  CHECK(contains(error, "refused: the server is stopping"));  // the real answer, after 5 signals
}

TEST_CASE("out of descriptors, the server backs off instead of spinning on accept") {
  test_support::Watchdog dog("EMFILE back-off", 60s);
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  Server server(pool, dir / "s.sock", opts(2, 1));
  std::vector<int> fillers;
  for (int i = 0; i < 100000; ++i) {
    const int fd = ::dup(0);
    if (fd < 0) break;
    fillers.push_back(fd);
  }
  // One descriptor for the client's socket; the server's accept4 then fails EMFILE.
  ::close(fillers.back());
  fillers.pop_back();
  const int client = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  REQUIRE(client >= 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, server.path().c_str());
  REQUIRE(::connect(client, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);  // in the backlog
  std::this_thread::sleep_for(300ms);
  const std::uint64_t errors = server.stats().accept_errors;
  INFO("accept errors in 300 ms out of descriptors: " << errors);
  CHECK(errors >= 1);
  CHECK(errors <= 10);  // a back-off of 100 ms; a level-triggered spin makes millions
  for (int fd : fillers) ::close(fd);
  // Descriptors again: the connection waiting in the backlog is served.
  pollfd p{client, POLLIN, 0};
  CHECK(::poll(&p, 1, 10000) == 1);
  REQUIRE(wait_until([&] { return server.stats().accepted == 1; }));
  ::close(client);
}

TEST_CASE("a lease disconnects a subscriber holding a frame too long, counted and told, its frames come back") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  ServerOptions o = opts(1, 2);
  o.lease = 100ms;
  Server server(pool, dir / "s.sock", o);
  Subscriber sub(server.path(), 5s);
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  REQUIRE(server.publish(make_frame(pool, 1)) == 1);
  std::optional<daq_pool::shm::Frame> f = sub.receive_for(5s);
  REQUIRE(f);
  CHECK(f->still_valid());
  REQUIRE(wait_until([&] { return server.stats().lease_expired == 1; }));
  CHECK(server.subscribers() == 0);
  CHECK(pool.available() == pool.size());
  CHECK_FALSE(f->still_valid());  // the bytes may be reused now: the subscriber can tell
  CHECK(sub.stats().revoked);
  CHECK_FALSE(sub.receive_for(5s));
  CHECK(sub.end_of_stream());
}

TEST_CASE("subscribers connecting and leaving in a loop during acquisition lose no buffer; shutdown never hangs") {
  test_support::Watchdog dog("shm churn", 120s);
  TempDir dir;
  BufferPool pool = shared_pool(8, 32 * 1024);
  Server server(pool, dir / "s.sock", opts(3, 2, 2));  // more subscribers than places: some are refused
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0}, got{0}, starved{0};
  std::thread producer([&] {
    for (std::uint64_t i = 1; !stop.load(); ++i) {
      std::optional<PooledBuffer> b = pool.try_acquire_for(1s);
      if (!b) {
        starved.fetch_add(1);  // the sizing rule says this can't happen
        continue;
      }
      b->set_size(b->capacity());
      frame_pipeline::fill_frame(b->get_mut(), i);
      server.publish(std::move(*b).freeze());
    }
  });
  std::vector<std::thread> subscribers;
  for (int t = 0; t < 4; ++t) {
    subscribers.emplace_back([&, t] {
      for (int round = 0; round < 40; ++round) {
        try {
          Subscriber sub(server.path(), 5s);
          std::vector<Bytes> held;
          for (int k = 0; k < (round + t) % 5 + 1; ++k) {
            std::optional<daq_pool::shm::Frame> f = sub.receive_for(2s);
            if (!f) break;
            if (!frame_ok(f->bytes)) bad.fetch_add(1);
            got.fetch_add(1);
            if ((round + k) % 2 == 0 && held.empty()) held.push_back(std::move(f->bytes));
          }
          if (round % 3 == 0) continue;
          for (const Bytes& h : held)
            if (!frame_ok(h)) bad.fetch_add(1);
        } catch (const daq_pool::shm::protocol_error&) {
          // refused: max_subscribers connected
        }
      }
    });
  }
  for (std::thread& t : subscribers) t.join();
  stop.store(true);
  producer.join();
  CHECK(bad == 0);
  CHECK(starved == 0);
  CHECK(got > 0);
  REQUIRE(wait_until([&] { return server.subscribers() == 0; }));
  CHECK(pool.available() == pool.size());
  const daq_pool::shm::ServerStats st = server.stats();
  CHECK(st.accepted == st.disconnected);
  CHECK(st.accepted + st.refused_full == 160);
  server.stop();
  CHECK(pool.available() == pool.size());
}

namespace {

/// In a forked child: become `uid` (keeping CAP_DAC_OVERRIDE if `keep_dac`,
/// so the private directory does not stop it first), connect to `path` and
/// report: 0 refused by the server with reason "other user", 1 got a hello,
/// 2 connect failed with EACCES, 3 anything else.
int connect_as(uid_t uid, gid_t gid, const std::string& path, bool keep_dac) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::prctl(PR_SET_KEEPCAPS, 1) != 0 || ::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0)
      ::_exit(3);
    if (keep_dac) {
      __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct data[2] = {};
      data[0].effective = data[0].permitted = (1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH);
      if (::syscall(SYS_capset, &hdr, data) != 0) ::_exit(3);
    }
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) ::_exit(errno == EACCES ? 2 : 3);
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) ::_exit(3);
    std::array<std::byte, 128> buf{};
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n == static_cast<ssize_t>(protocol::hello_bytes)) ::_exit(1);
    const auto r = protocol::decode_refused(std::span<const std::byte>(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0));
    ::_exit(r && r->reason == protocol::RefuseReason::other_user ? 0 : 3);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}

}  // namespace

TEST_CASE("a process of another user is refused by SO_PEERCRED and cannot reach the socket without privileges") {
  if (::geteuid() != 0) {
    WARN("not running as root: can't start a process of another user here; the uid check is not exercised");
    return;
  }
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(4096);
  uid_t uid = 65534;
  gid_t gid = 65534;
  if (::getpwnam_r("nobody", &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    uid = pw.pw_uid;
    gid = pw.pw_gid;
  }
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  Server server(pool, dir / "s.sock", opts(2, 1));
  CHECK(connect_as(uid, gid, server.path(), true) == 0);
  REQUIRE(wait_until([&] { return server.stats().refused_uid == 1; }));
  CHECK(connect_as(uid, gid, server.path(), false) == 2);
  CHECK(connect_as(0, 0, server.path(), false) == 1);
  CHECK(wait_until([&] { return server.stats().accepted == 1; }));
}
