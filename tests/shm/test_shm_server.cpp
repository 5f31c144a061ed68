// daq_pool/shm.hpp in one process (issue 14): the server's errors and
// security rules (private directory, read-only sealed memory, same uid
// only), backpressure (skip and wait), bad "done" messages counted and
// ignored, the C++ Subscriber's views (in place, outliving the server and
// the Subscriber), zero allocations per frame on both sides, and many
// subscribers coming and going during acquisition. Subscribers here are
// threads or hand-made clients; test_shm_processes.cpp runs them as
// processes.
#include <daq_pool/shm.hpp>

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <atomic>
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
  CHECK(contains(error_of([&] { Server s(plain, dir / "a.sock"); }), "BufferPoolOptions::shared_memory"));
  BufferPool pool = shared_pool(2, 4096);
  ServerOptions o;
  o.max_subscribers = 0;
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", o); }), "max_subscribers"));
  o = {};
  o.max_in_flight = 5000;
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", o); }), "max_in_flight"));
  o = {};
  o.wait_timeout = -1ms;
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", o); }), "wait_timeout"));
  o = {};
  o.drain_timeout = -1ms;
  CHECK(contains(error_of([&] { Server s(pool, dir / "a.sock", o); }), "drain_timeout"));
  CHECK(contains(error_of([&] { Server s(pool, ""); }), "path"));
  CHECK(contains(error_of([&] { Server s(pool, dir / std::string(120, 'x')); }), "107 bytes"));
  CHECK(contains(error_of([&] { Subscriber s(dir / std::string(120, 'x')); }), "107 bytes"));
  CHECK(contains(error_of([&] { Subscriber s(dir / "nobody.sock"); }), "connect"));
  // Nothing was left behind by the failures.
  CHECK(::access((dir / "a.sock").c_str(), F_OK) != 0);
}

TEST_CASE("the socket's directory must be private: created 0700, else refused") {
  TempDir dir;
  BufferPool pool = shared_pool(2, 4096);
  {
    Server s(pool, dir / "new/frames.sock");  // a missing directory is created
    struct stat st {};
    REQUIRE(::stat((dir / "new").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(::access(s.path().c_str(), F_OK) == 0);
  }
  CHECK(::access((dir / "new/frames.sock").c_str(), F_OK) != 0);  // stop() removed it
  CHECK(::access((dir / "new").c_str(), F_OK) != 0);              // and the directory it made
  REQUIRE(::mkdir((dir / "new").c_str(), 0700) == 0);             // for the symbolic link below

  REQUIRE(::mkdir((dir / "open").c_str(), 0700) == 0);
  REQUIRE(::chmod((dir / "open").c_str(), 0755) == 0);
  const std::string open_error = error_of([&] { Server s(pool, dir / "open/frames.sock"); });
  INFO(open_error);
  CHECK(contains(open_error, "mode 0755"));
  CHECK(contains(open_error, "0700"));

  REQUIRE(::symlink((dir / "new").c_str(), (dir / "link").c_str()) == 0);
  CHECK(contains(error_of([&] { Server s(pool, dir / "link/frames.sock"); }), "symbolic link"));

  REQUIRE(::close(::open((dir / "file").c_str(), O_CREAT | O_WRONLY, 0600)) == 0);
  CHECK(contains(error_of([&] { Server s(pool, dir / "file/frames.sock"); }), "not a directory"));

  if (::geteuid() == 0) {
    REQUIRE(::mkdir((dir / "theirs").c_str(), 0700) == 0);
    REQUIRE(::chown((dir / "theirs").c_str(), 65534, 65534) == 0);
    CHECK(contains(error_of([&] { Server s(pool, dir / "theirs/frames.sock"); }), "belongs to uid 65534"));
  }
}

TEST_CASE("a stale socket file is replaced; a live server's socket or another file is not") {
  TempDir dir;
  BufferPool pool = shared_pool(2, 4096);
  {
    // A stale socket: bound, never listened on, its owner gone.
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, (dir / "s.sock").c_str());
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);
  }
  Server live(pool, dir / "s.sock");
  CHECK(contains(error_of([&] { Server s(pool, dir / "s.sock"); }), "another server is listening"));
  REQUIRE(::close(::open((dir / "regular").c_str(), O_CREAT | O_WRONLY, 0600)) == 0);
  CHECK(contains(error_of([&] { Server s(pool, dir / "regular"); }), "not a socket"));
  CHECK(::access((dir / "regular").c_str(), F_OK) == 0);
  RawClient c(live.path());
  CHECK(c.hello());
}

TEST_CASE("a subscriber gets the geometry and a read-only, sealed memfd: no writable mapping, even reopened") {
  TempDir dir;
  BufferPool pool = shared_pool(3, 100'000);
  ServerOptions o;
  o.max_in_flight = 5;
  Server server(pool, dir / "s.sock", o);
  RawClient c(server.path());
  const std::optional<protocol::Hello> h = c.hello();
  REQUIRE(h);
  const daq_pool::SharedMemoryRegion region = *pool.shared_memory();
  CHECK(h->region_size == region.size);
  CHECK(h->buffer_count == 3);
  CHECK(h->buffer_capacity == 100'000);
  CHECK(h->buffer_stride == region.stride);
  CHECK(h->max_in_flight == 5);
  CHECK(h->subscriber_id == 1);
  REQUIRE(c.memfd() >= 0);
  CHECK((::fcntl(c.memfd(), F_GETFL) & O_ACCMODE) == O_RDONLY);

  // The received descriptor maps read-only only.
  void* w = ::mmap(nullptr, region.size, PROT_READ | PROT_WRITE, MAP_SHARED, c.memfd(), 0);
  CHECK(w == MAP_FAILED);
  void* r = ::mmap(nullptr, region.size, PROT_READ, MAP_SHARED, c.memfd(), 0);
  REQUIRE(r != MAP_FAILED);
  CHECK(::mprotect(r, region.size, PROT_READ | PROT_WRITE) != 0);

  // Reopened read-write through /proc, the seal still refuses a writable
  // shared mapping and write() (F_SEAL_FUTURE_WRITE, Linux >= 5.1).
  REQUIRE(region.write_sealed);
  const std::string again = "/proc/self/fd/" + std::to_string(c.memfd());
  const int rw = ::open(again.c_str(), O_RDWR | O_CLOEXEC);
  if (rw >= 0) {
    errno = 0;
    CHECK(::mmap(nullptr, region.size, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
    CHECK(errno == EPERM);
    const char x = 1;
    CHECK(::write(rw, &x, 1) < 0);
    ::close(rw);
  }
  CHECK((::fcntl(c.memfd(), F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
        (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));

  // A frame published shows in the subscriber's read-only mapping, in place.
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  Bytes frame = make_frame(pool, 7);
  CHECK(server.publish(frame, 12345) == 1);
  const std::optional<protocol::FrameMessage> m = c.frame();
  REQUIRE(m);
  CHECK(m->sequence == 1);
  CHECK(m->timestamp_ns == 12345);
  CHECK(m->size == frame.size());
  CHECK(m->offset == *pool.shared_offset(frame));
  CHECK(std::memcmp(static_cast<const std::byte*>(r) + m->offset, frame.data(), frame.size()) == 0);
  ::munmap(r, region.size);
}

TEST_CASE("a subscriber at its bound is skipped and counted; each done makes room again") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  ServerOptions o;
  o.max_in_flight = 2;
  Server server(pool, dir / "s.sock", o);
  RawClient c(server.path());
  REQUIRE(c.hello());
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  for (std::uint64_t i = 0; i < 5; ++i) CHECK(server.publish(make_frame(pool, i)) == (i < 2 ? 1u : 0u));
  daq_pool::shm::SubscriberStats s = server.subscriber(0);
  CHECK(s.connected);
  CHECK(s.sent == 2);
  CHECK(s.skipped == 3);
  CHECK(s.in_flight == 2);
  CHECK(pool.available() == 4);  // the server holds the 2 frames sent; the skipped ones came back
  const auto first = c.frame();
  REQUIRE(first);
  c.done(first->slot, first->sequence);
  REQUIRE(wait_until([&] { return server.subscriber(0).in_flight == 1; }));
  CHECK(pool.available() == 5);
  CHECK(server.publish(make_frame(pool, 9)) == 1);
  const daq_pool::shm::ServerStats st = server.stats();
  CHECK(st.published == 6);
  CHECK(st.sent == 3);
  CHECK(st.skipped == 3);
  CHECK(st.done == 1);
}

TEST_CASE("wait_when_full waits up to wait_timeout, and sends as soon as a done makes room") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  ServerOptions o;
  o.max_in_flight = 1;
  o.wait_when_full = true;
  o.wait_timeout = 50ms;
  Server server(pool, dir / "s.sock", o);
  RawClient c(server.path());
  REQUIRE(c.hello());
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  CHECK(server.publish(make_frame(pool, 1)) == 1);
  CHECK(server.publish(make_frame(pool, 2)) == 0);  // waited, then skipped
  CHECK(server.subscriber(0).timed_out == 1);
  CHECK(server.subscriber(0).skipped == 1);

  o.wait_timeout = 60s;  // a new server: now the wait ends with the done, long before the timeout
  Server patient(pool, dir / "p.sock", o);
  RawClient d(patient.path());
  REQUIRE(d.hello());
  REQUIRE(wait_until([&] { return patient.subscribers() == 1; }));
  CHECK(patient.publish(make_frame(pool, 1)) == 1);
  std::thread answer([&] {
    const auto m = d.frame();
    std::this_thread::sleep_for(20ms);
    if (m) d.done(m->slot, m->sequence);
  });
  CHECK(patient.publish(make_frame(pool, 2)) == 1);
  answer.join();
  CHECK(patient.subscriber(0).timed_out == 0);
  CHECK(patient.subscriber(0).done == 1);
}

TEST_CASE("malformed, out-of-range, duplicate and stale done messages are counted and ignored") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 4096);
  ServerOptions o;
  o.max_in_flight = 3;
  Server server(pool, dir / "s.sock", o);
  RawClient c(server.path());
  REQUIRE(c.hello());
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  REQUIRE(server.publish(make_frame(pool, 1)) == 1);
  REQUIRE(server.publish(make_frame(pool, 2)) == 1);
  const auto a = c.frame();
  const auto b = c.frame();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(pool.available() == 2);

  auto good = protocol::encode(protocol::Done{a->slot, a->sequence});
  // Malformed: too short, too long, bad magic, bad version, bad type, reserved field set, empty.
  c.send(std::span(good.data(), good.size() - 1));
  std::array<std::byte, 25> longer{};
  std::memcpy(longer.data(), good.data(), good.size());
  c.send(longer);
  for (const std::size_t at : {std::size_t{0}, std::size_t{4}, std::size_t{6}, std::size_t{12}}) {
    auto bad = good;
    bad[at] = static_cast<std::byte>(static_cast<unsigned>(bad[at]) ^ 0x5Au);
    c.send(bad);
  }
  c.send(std::span<const std::byte>());
  c.send(protocol::encode(protocol::FrameMessage{}));  // a frame message, not a done
  // Out of range, stale (a slot not held, a wrong sequence).
  const std::uint32_t not_held = 0 + 1 + 2 - a->slot - b->slot;  // max_in_flight 3: slots 0, 1 and 2
  c.done(3, a->sequence);
  c.done(0xFFFFFFFFu, a->sequence);
  c.done(not_held, a->sequence);
  c.done(a->slot, b->sequence);
  c.done(a->slot, 0);
  // None of these named a frame as sent: nothing is released yet.
  REQUIRE(wait_until([&] {
    const auto s = server.subscriber(0);
    return s.malformed + s.out_of_range + s.stale + s.done == 13;
  }));
  CHECK(server.subscriber(0).done == 0);
  CHECK(server.subscriber(0).in_flight == 2);
  CHECK(pool.available() == 2);
  // The real one, then twice more (duplicates).
  c.done(a->slot, a->sequence);
  c.done(a->slot, a->sequence);
  c.done(a->slot, a->sequence);
  wait_until([&] {
    const auto s = server.subscriber(0);
    return s.malformed + s.out_of_range + s.stale + s.done == 16;
  });
  const daq_pool::shm::SubscriberStats s = server.subscriber(0);
  INFO("malformed " << s.malformed << ", out of range " << s.out_of_range << ", stale " << s.stale << ", done "
                    << s.done);
  CHECK(s.malformed == 8);
  CHECK(s.out_of_range == 2);
  CHECK(s.stale == 5);
  CHECK(s.done == 1);
  CHECK(s.in_flight == 1);
  CHECK(s.connected);
  CHECK(pool.available() == 3);  // exactly one frame came back: no double release
  CHECK(server.stats().bad_messages == 15);

  // A done carrying a descriptor is malformed (the kernel closes the fd).
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int))> control{};
  auto bytes = protocol::encode(protocol::Done{b->slot, b->sequence});
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  const int any_fd = c.memfd();
  std::memcpy(CMSG_DATA(cm), &any_fd, sizeof any_fd);
  REQUIRE(::sendmsg(c.fd(), &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  REQUIRE(wait_until([&] { return server.subscriber(0).malformed == 9; }));
  CHECK(server.subscriber(0).in_flight == 1);
  c.done(b->slot, b->sequence);
  REQUIRE(wait_until([&] { return pool.available() == 4; }));
}

TEST_CASE("the C++ Subscriber receives every frame in place; its last drop sends done; no allocation per frame") {
  TempDir dir;
  BufferPool pool = shared_pool(3, 256 * 1024);
  ServerOptions o;
  o.max_in_flight = 2;
  o.wait_when_full = true;
  o.wait_timeout = 30s;  // every frame is delivered
  Server server(pool, dir / "s.sock", o);
  constexpr std::uint64_t frames = 200;
  constexpr std::uint64_t warmup = 10;
  std::atomic<std::uint64_t> received{0}, verified{0}, in_place{0}, rechecked{0};
  std::atomic<std::uint64_t> allocs_at_warmup{0};
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
      if (++received == warmup) allocs_at_warmup.store(alloc_counter::total());
      if (!previous.empty() && frame_ok(previous)) ++rechecked;  // unchanged while held
      previous = std::move(f->bytes);
    }
    // Still intact after the end of the stream: stop() waits for this
    // drop (drain_timeout) before it lets the buffer go.
    if (!previous.empty() && frame_ok(previous)) ++rechecked;
  });
  REQUIRE(wait_until([&] { return ready.load() && server.subscribers() == 1; }));
  std::uint64_t server_allocs_at_warmup = 0;
  for (std::uint64_t i = 1; i <= frames; ++i) {
    if (i == warmup + 1) server_allocs_at_warmup = alloc_counter::total();
    REQUIRE(server.publish(make_frame(pool, i)) == 1);
  }
  REQUIRE(wait_until([&] { return received.load() == frames; }, 60s));
  const std::uint64_t allocs = alloc_counter::total() - server_allocs_at_warmup;
  server.stop();
  subscriber.join();
  CHECK(verified == frames);
  CHECK(in_place == frames);
  CHECK(rechecked == frames);
  CHECK(server.stats().done == frames);  // the last one during stop()'s drain
  CHECK(pool.available() == pool.size());
  if (alloc_counter::enabled) {
    // Both sides in this process: publish, the server thread's done handling,
    // receive, the views and their last drops.
    INFO("allocations from frame " << warmup + 1 << " to " << frames << ": " << allocs);
    CHECK(allocs == 0);
  }
}

TEST_CASE("views stay readable after the server is gone; the subscriber sees the end of the stream") {
  TempDir dir;
  BufferPool pool = shared_pool(4, 64 * 1024);
  std::optional<Server> server;
  ServerOptions o;
  o.drain_timeout = 0ms;  // the subscriber is this thread: don't wait for it
  server.emplace(pool, dir / "s.sock", o);
  Subscriber sub(server->path(), 5s);
  REQUIRE(wait_until([&] { return server->subscribers() == 1; }));
  // The producer keeps its own views, as a dead server's process would
  // never reuse the buffers: what the subscriber holds stays put.
  const Bytes first = make_frame(pool, 1), second = make_frame(pool, 2);
  REQUIRE(server->publish(first) == 1);
  REQUIRE(server->publish(second) == 1);
  std::optional<daq_pool::shm::Frame> a = sub.receive_for(10s);
  REQUIRE(a);
  server.reset();  // gone: its views dropped, the connection closed
  CHECK_FALSE(sub.end_of_stream());
  std::optional<daq_pool::shm::Frame> b = sub.receive_for(10s);  // the frame already queued still arrives
  REQUIRE(b);
  CHECK_FALSE(sub.receive_for(10s));
  CHECK(sub.end_of_stream());
  CHECK_FALSE(sub.receive());
  CHECK(frame_ok(a->bytes));
  CHECK(frame_ok(b->bytes));
  a.reset();
  b.reset();
  CHECK(sub.stats().done_failed == 2);  // nobody to tell
}

TEST_CASE("views may outlive the Subscriber; frames it never received are answered when it goes") {
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  ServerOptions o;
  o.max_in_flight = 4;
  Server server(pool, dir / "s.sock", o);
  std::optional<Subscriber> sub;
  sub.emplace(server.path(), 5s);
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }));
  for (std::uint64_t i = 1; i <= 4; ++i) REQUIRE(server.publish(make_frame(pool, i)) == 1);
  std::optional<daq_pool::shm::Frame> kept = sub->receive_for(10s);
  REQUIRE(kept);
  CHECK(pool.available() == 2);
  sub.reset();  // three frames never received: answered now
  REQUIRE(wait_until([&] { return pool.available() == 5; }));
  CHECK(server.subscribers() == 1);  // the kept view still holds the connection
  CHECK(frame_ok(kept->bytes));
  Bytes copy = kept->bytes;
  kept.reset();
  CHECK(frame_ok(copy));
  copy.reset();  // the last view: done, then the connection closes
  REQUIRE(wait_until([&] { return pool.available() == 6 && server.subscribers() == 0; }));
}

TEST_CASE("one connection more than max_subscribers is refused; publish refuses foreign views") {
  TempDir dir;
  BufferPool pool = shared_pool(2, 4096);
  ServerOptions o;
  o.max_subscribers = 1;
  Server server(pool, dir / "s.sock", o);
  Subscriber first(server.path(), 5s);
  CHECK(contains(error_of([&] { Subscriber second(server.path(), 5s); }), "closed the connection"));
  CHECK(server.stats().refused_full == 1);
  CHECK(server.subscriber(0).id == 1);
  CHECK_THROWS_AS(server.subscriber(1), std::out_of_range);

  const std::byte bytes[8] = {};
  CHECK(server.publish(Bytes::copy_from(bytes)) == 0);
  CHECK(server.publish(Bytes()) == 0);
  BufferPool other = shared_pool(1, 4096);
  CHECK(server.publish(make_frame(other, 1)) == 0);
  CHECK(server.stats().not_shared == 3);
  CHECK(server.stats().published == 0);
}

TEST_CASE("subscribers connecting and leaving in a loop during acquisition lose no buffer; shutdown never hangs") {
  test_support::Watchdog dog("shm churn", 120s);
  TempDir dir;
  // Enough buffers for every place's in-flight bound and the producer's
  // own: subscribers that hold frames can never starve the producer.
  BufferPool pool = shared_pool(8, 32 * 1024);
  ServerOptions o;
  o.max_in_flight = 2;
  o.max_subscribers = 3;  // more subscribers than places: some are refused
  Server server(pool, dir / "s.sock", o);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> bad{0}, got{0};
  std::thread producer([&] {
    for (std::uint64_t i = 1; !stop.load(); ++i) {
      std::optional<PooledBuffer> b = pool.try_acquire_for(1s);
      if (!b) {
        bad.fetch_add(1000);  // a lost buffer: the pool ran dry for a second
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
            // Some are held (at most one: the in-flight bound of 2 leaves room
            // for the next frame), some of those outlive the Subscriber.
            if ((round + k) % 2 == 0 && held.empty()) held.push_back(std::move(f->bytes));
          }
          if (round % 3 == 0) continue;  // leave with frames still queued
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
/// report: 0 refused by the server (closed before a hello), 1 got a hello,
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
    char buf[64];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ::_exit(n == 0 ? 0 : n == static_cast<ssize_t>(protocol::hello_bytes) ? 1 : 3);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}

}  // namespace

TEST_CASE("a process of another user is refused (SO_PEERCRED), and can't even reach the socket without privileges") {
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
  BufferPool pool = shared_pool(2, 4096);
  Server server(pool, dir / "s.sock");
  CHECK(connect_as(uid, gid, server.path(), true) == 0);  // through the directory, refused by uid
  REQUIRE(wait_until([&] { return server.stats().refused_uid == 1; }));
  CHECK(connect_as(uid, gid, server.path(), false) == 2);           // the 0700 directory stops it
  CHECK(connect_as(0, 0, server.path(), false) == 1);               // the control: the same user is served
  CHECK(wait_until([&] { return server.stats().accepted == 1; }));  // counted just after its hello went out
  CHECK(server.stats().refused_uid == 1);
}
