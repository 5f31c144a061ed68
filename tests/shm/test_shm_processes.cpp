// daq_pool/shm.hpp across processes (issue 14): the C++ subscriber
// (examples/shm_subscriber) and the Python viewer (examples/python/
// shm_viewer.py) as separate processes verify every frame in place while the
// server in this test reuses a small pool (no buffer reused while any view
// lives: each subscriber checks every frame again just before its "done"),
// with 0 allocations per frame on the server; a slow subscriber is skipped;
// a subscriber killed while holding frames gives every buffer back; a server
// killed under its subscribers leaves their views readable and they exit
// cleanly; subscriber processes coming and going during acquisition lose
// nothing. Every child is started here and reaped by its PID.
#include <daq_pool/shm.hpp>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <memory>
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
using shm_test::Child;
using shm_test::json_number;
using shm_test::json_true;
using shm_test::TempDir;
using shm_test::wait_until;
using namespace std::chrono_literals;

namespace {

BufferPool shared_pool(std::size_t n, std::size_t capacity) {
  BufferPoolOptions o;
  o.shared_memory = true;
  return BufferPool(n, capacity, o);
}

Bytes make_frame(BufferPool& pool, std::uint64_t number) {
  PooledBuffer b = pool.acquire();
  b.set_size(b.capacity());
  frame_pipeline::fill_frame(b.get_mut(), number);
  return std::move(b).freeze();
}

std::vector<std::string> cpp_subscriber(const std::string& path, std::vector<std::string> flags) {
  std::vector<std::string> argv{SHM_SUBSCRIBER, "--path=" + path, "--json", "--quiet"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

std::vector<std::string> python_viewer(const std::string& path, std::vector<std::string> flags) {
  std::vector<std::string> argv{SHM_PYTHON, SHM_VIEWER, "--path=" + path, "--json", "--quiet"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

double number(const std::string& json, const std::string& key) { return json_number(json, key).value_or(-1); }

/// The summary's invariants for a subscriber that must have verified
/// `frames` frames, all in place, none changed while held.
void check_subscriber(Child& c, double frames) {
  const std::optional<int> code = c.wait(120s);
  const std::string& out = c.output();
  INFO(out);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(number(out, "frames") == frames);
  CHECK(number(out, "verified") == frames);
  CHECK(number(out, "integrity_failures") == 0);
  CHECK(number(out, "recheck_failures") == 0);
  CHECK(number(out, "not_in_place") == 0);
  CHECK(json_true(out, "zero_copy"));
  // The first view's address lies in the subscriber's read-only mapping.
  const double map_at = number(out, "address");
  const double view_at = number(out, "first_view_address");
  CHECK(view_at >= map_at);
  CHECK(view_at < map_at + number(out, "size"));
}

}  // namespace

TEST_CASE("C++ and Python subscriber processes verify every frame in place; 0 allocations per frame on the server") {
  test_support::Watchdog dog("subscriber processes verify every frame", 200s);
  TempDir dir;
  // A small pool, reused all the time: three buffers for the producer and
  // three subscribers holding up to two frames each.
  BufferPool pool = shared_pool(8, 256 * 1024);  // 3 x 2 in flight + 2 for the producer
  ServerOptions o;
  o.max_subscribers = 3;
  o.max_in_flight = 2;
  o.wait_when_full = true;  // every frame reaches every subscriber
  o.wait_timeout = 60s;
  Server server(pool, dir / "s.sock", o);
  constexpr int frames = 150;
  Child fast(cpp_subscriber(server.path(), {"--frames=" + std::to_string(frames), "--keep=2"}));
  Child slow(cpp_subscriber(server.path(), {"--frames=" + std::to_string(frames), "--keep=2", "--hold-ms=1"}));
  Child python(python_viewer(server.path(), {"--frames=" + std::to_string(frames)}));
  REQUIRE(wait_until([&] { return server.subscribers() == 3; }, 60s));

  constexpr int warmup = 10;
  std::uint64_t allocs_at_warmup = 0;
  for (int i = 1; i <= frames; ++i) {
    if (i == warmup + 1) allocs_at_warmup = alloc_counter::total();
    REQUIRE(server.publish(make_frame(pool, static_cast<std::uint64_t>(i))) == 3);
  }
  const std::uint64_t allocs = alloc_counter::total() - allocs_at_warmup;
  check_subscriber(fast, frames);
  check_subscriber(slow, frames);
  check_subscriber(python, frames);
  CHECK(json_true(python.output(), "write_refused"));
  REQUIRE(wait_until([&] { return server.subscribers() == 0; }));
  const daq_pool::shm::ServerStats st = server.stats();
  CHECK(st.sent == 3 * frames);
  CHECK(st.skipped == 0);
  CHECK(st.released == 3 * frames);
  CHECK(st.bad_releases == 0);
  CHECK(pool.available() == pool.size());
  if (alloc_counter::enabled) {
    INFO("server allocations over frames " << warmup + 1 << ".." << frames << ": " << allocs);
    CHECK(allocs == 0);
  }
}

TEST_CASE("a slow subscriber is skipped, never waited for; what it gets is intact") {
  test_support::Watchdog dog("slow subscriber", 120s);
  TempDir dir;
  BufferPool pool = shared_pool(6, 64 * 1024);
  ServerOptions o;
  o.max_subscribers = 2;
  o.max_in_flight = 2;    // the default backpressure: skip
  o.drain_timeout = 30s;  // stop() lets the slow one finish the frames it was sent
  Server server(pool, dir / "s.sock", o);
  Child slow(cpp_subscriber(server.path(), {"--hold-ms=1000"}));
  Child fast(cpp_subscriber(server.path(), {}));
  REQUIRE(wait_until([&] { return server.subscribers() == 2; }, 60s));
  constexpr int frames = 30;
  for (int i = 1; i <= frames; ++i) {
    server.publish(make_frame(pool, static_cast<std::uint64_t>(i)));
    std::this_thread::sleep_for(2ms);
  }
  // Who is who: the slow one holds its frames for a second each.
  daq_pool::shm::SubscriberStats a = server.subscriber(0), b = server.subscriber(1);
  const bool first_is_slow = a.pid == slow.pid();
  const daq_pool::shm::SubscriberStats& s = first_is_slow ? a : b;
  CHECK(s.sent + s.skipped == frames);
  CHECK(s.skipped > 0);
  CHECK(s.sent >= 2);
  server.stop();  // both see the end of the stream
  const std::optional<int> slow_code = slow.wait(60s);
  const std::optional<int> fast_code = fast.wait(60s);
  INFO(slow.output());
  INFO(fast.output());
  REQUIRE(slow_code);
  REQUIRE(fast_code);
  CHECK(*slow_code == 0);
  CHECK(*fast_code == 0);
  CHECK(number(slow.output(), "frames") == static_cast<double>(s.sent));
  CHECK(number(slow.output(), "verified") == static_cast<double>(s.sent));
  CHECK(number(slow.output(), "missed") == static_cast<double>(s.skipped));  // told by the server: exact
  CHECK(number(fast.output(), "integrity_failures") == 0);
  CHECK(pool.available() == pool.size());
}

TEST_CASE("a subscriber killed while holding frames: the server drops its views, every buffer comes back") {
  test_support::Watchdog dog("subscriber killed", 120s);
  TempDir dir;
  BufferPool pool = shared_pool(6, 64 * 1024);
  ServerOptions o;
  o.max_subscribers = 1;
  o.max_in_flight = 3;
  Server server(pool, dir / "s.sock", o);
  Child holder(cpp_subscriber(server.path(), {"--keep=3", "--hold-ms=60000"}));
  REQUIRE(wait_until([&] { return server.subscribers() == 1; }, 60s));
  for (int i = 1; i <= 10; ++i) server.publish(make_frame(pool, static_cast<std::uint64_t>(i)));
  CHECK(server.subscriber(0).in_flight == 3);
  CHECK(pool.available() == 3);  // three buffers held for the subscriber
  holder.signal(SIGKILL);
  const std::optional<int> code = holder.wait(30s);
  REQUIRE(code);
  CHECK(*code == 128 + SIGKILL);
  REQUIRE(wait_until([&] { return server.subscribers() == 0; }));
  CHECK(pool.available() == pool.size());
  CHECK(server.stats().disconnected == 1);
  CHECK(server.subscriber(0).in_flight == 0);
}

TEST_CASE("a server killed under its subscribers: end of stream, held views stay readable, clean exit") {
  test_support::Watchdog dog("server killed", 120s);
  TempDir dir;
  const std::string path = dir / "s.sock";
  Child server({SHM_TEST_SERVER, path, "65536", "12", "4"});
  // A subscriber process holding frames, and one in this process.
  Child sub(cpp_subscriber(path, {"--keep=3", "--connect-timeout=30"}));
  daq_pool::shm::Subscriber here(path, 30s);
  std::vector<Bytes> held;
  for (int i = 0; i < 20; ++i) {
    std::optional<daq_pool::shm::Frame> f = here.receive_for(10s);
    REQUIRE(f);
    if (held.size() < 3) held.push_back(std::move(f->bytes));
  }
  server.signal(SIGKILL);
  const std::optional<int> server_code = server.wait(30s);
  REQUIRE(server_code);
  CHECK(*server_code == 128 + SIGKILL);
  // Whatever was queued still arrives, then the stream ends.
  while (here.receive_for(10s)) {
  }
  CHECK(here.end_of_stream());
  for (const Bytes& v : held)
    CHECK(frame_pipeline::verify_frame(v.span(), v.size(), false, 0).fault == frame_pipeline::FrameFault::ok);
  held.clear();
  CHECK(here.stats().released >= 3);  // into the ring of a dead server: harmless

  const std::optional<int> code = sub.wait(60s);
  const std::string& out = sub.output();
  INFO(out);
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(out.find("\"end_reason\": \"end_of_stream\"") != std::string::npos);
  CHECK(number(out, "frames") > 0);
  CHECK(number(out, "integrity_failures") == 0);
  CHECK(number(out, "recheck_failures") == 0);
  CHECK(number(out, "held_at_end") == 2);        // --keep=3: two held between frames, re-checked after the server died
  CHECK(number(out, "changed_after_end") == 0);  // a dead server's frames stay put
}

TEST_CASE("subscriber processes connecting and leaving in a loop during acquisition: no lost buffer, no hang") {
  test_support::Watchdog dog("subscriber process churn", 200s);
  TempDir dir;
  BufferPool pool = shared_pool(6, 32 * 1024);
  ServerOptions o;
  o.max_subscribers = 2;
  o.max_in_flight = 2;
  Server server(pool, dir / "s.sock", o);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> dry{0};
  std::thread producer([&] {
    for (std::uint64_t i = 1; !stop.load(); ++i) {
      std::optional<PooledBuffer> b = pool.try_acquire_for(1s);
      if (!b) {
        ++dry;  // a buffer lost for a whole second
        continue;
      }
      b->set_size(b->capacity());
      frame_pipeline::fill_frame(b->get_mut(), i);
      server.publish(std::move(*b).freeze());
      std::this_thread::sleep_for(500us);
    }
  });
  int ok = 0;
  for (int round = 0; round < 12; ++round) {
    Child a(cpp_subscriber(server.path(), {"--frames=5", "--keep=2"}));
    Child b(cpp_subscriber(server.path(), {"--frames=100000", "--keep=2", "--hold-ms=5"}));
    if (round % 2 == 0) {
      REQUIRE(wait_until([&] { return server.subscribers() >= 1; }, 30s));
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + (round * 37) % 50));  // a different point each time
      b.signal(SIGKILL);  // killed while holding frames
    } else {
      b.signal(SIGTERM);  // asked to stop: a clean exit with its summary
    }
    const std::optional<int> code = a.wait(60s);
    INFO(a.output());
    REQUIRE(code);
    CHECK(*code == 0);
    ok += *code == 0 ? 1 : 0;
    REQUIRE(b.wait(60s));
  }
  stop.store(true);
  producer.join();
  CHECK(ok == 12);
  CHECK(dry == 0);
  REQUIRE(wait_until([&] { return server.subscribers() == 0; }));
  CHECK(pool.available() == pool.size());
  const daq_pool::shm::ServerStats st = server.stats();
  CHECK(st.accepted == st.disconnected);
  CHECK(st.bad_releases == 0);
  server.stop();
}

TEST_CASE("stopped subscribers (SIGSTOP) cost only their own frames; the producer never waits; SIGCONT resumes") {
  test_support::Watchdog dog("stopped subscribers", 200s);
  TempDir dir;
  BufferPool pool = shared_pool(4 * 2 + 2, 32 * 1024);  // exactly what the sizing rule asks
  ServerOptions o;
  o.max_subscribers = 4;
  o.max_in_flight = 2;
  o.drain_timeout = 30s;
  Server server(pool, dir / "s.sock", o);
  std::vector<std::unique_ptr<Child>> subs;
  for (int i = 0; i < 4; ++i) subs.push_back(std::make_unique<Child>(cpp_subscriber(server.path(), {"--keep=2"})));
  REQUIRE(wait_until([&] { return server.subscribers() == 4; }, 60s));
  for (int i = 1; i <= 20; ++i) {
    server.publish(make_frame(pool, static_cast<std::uint64_t>(i)));
    std::this_thread::sleep_for(1ms);
  }
  for (auto& c : subs) c->signal(SIGSTOP);
  // The producer: every acquisition succeeds at once (try_acquire, no wait).
  std::uint64_t dry = 0;
  for (int i = 21; i <= 500; ++i) {
    std::optional<PooledBuffer> b = pool.try_acquire();
    if (!b) {
      ++dry;
      continue;
    }
    b->set_size(b->capacity());
    frame_pipeline::fill_frame(b->get_mut(), static_cast<std::uint64_t>(i));
    server.publish(std::move(*b).freeze());
  }
  CHECK(dry == 0);
  CHECK(pool.available() >= 2);  // the producer's margin, whatever the stopped ones hold
  for (auto& c : subs) c->signal(SIGCONT);
  for (int i = 501; i <= 520; ++i) {
    server.publish(make_frame(pool, static_cast<std::uint64_t>(i)));
    std::this_thread::sleep_for(2ms);
  }
  server.stop();
  for (auto& c : subs) {
    const std::optional<int> code = c->wait(60s);
    INFO(c->output());
    REQUIRE(code);
    CHECK(*code == 0);
    CHECK(number(c->output(), "missed") > 0);  // told what it missed while stopped
    CHECK(number(c->output(), "integrity_failures") == 0);
    CHECK(number(c->output(), "recheck_failures") == 0);
  }
  CHECK(pool.available() == pool.size());
}

TEST_CASE("a subscriber process that received nothing says so and exits 3, or 0 with --allow-empty") {
  test_support::Watchdog dog("empty subscriber", 120s);
  TempDir dir;
  BufferPool pool = shared_pool(6, 4096);
  ServerOptions o;
  o.max_subscribers = 2;
  o.max_in_flight = 2;
  o.drain_timeout = 0ms;
  std::optional<Server> server;
  server.emplace(pool, dir / "s.sock", o);
  Child strict(cpp_subscriber(server->path(), {}));
  Child lenient(cpp_subscriber(server->path(), {"--allow-empty"}));
  REQUIRE(wait_until([&] { return server->subscribers() == 2; }, 60s));
  server.reset();  // ends the stream without a frame
  const std::optional<int> a = strict.wait(60s), b = lenient.wait(60s);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a == 3);
  CHECK(*b == 0);
}
