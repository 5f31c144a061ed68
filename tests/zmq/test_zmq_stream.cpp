// daq_pool/zmq.hpp over real ZeroMQ sockets (tcp://127.0.0.1 on ephemeral
// ports, ipc:// in a fresh temporary directory, inproc://): frames sent
// zero-copy from a tiny pool while libzmq's I/O thread releases them and the
// sender reuses every buffer (a receiver checks every byte, so a buffer
// overwritten while ZeroMQ still sent it would show); PUB drops counted and
// returned at once; refused sends keep the caller's view; garbage messages
// are bad frames, consumed whole, and the stream goes on; libzmq's
// allocations per frame measured, daq_pool's side adding none; after the
// context is terminated every free function has run and every buffer is back.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/zmq.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>  // mkdtemp
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"  // this executable's one counting TU
#include "catch.hpp"
#include "frame_pattern.hpp"  // the demo's frame content and its byte-by-byte check
#include "threads.hpp"
#include "watchdog.hpp"
#include "../support/temp_dir.hpp"

namespace dz = daq_pool::zmq;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

using test_support::TempDir;

/// A frozen frame `number` of `bytes` bytes (the demo's pattern), waiting
/// for a buffer as long as libzmq holds them all.
Bytes make_frame(BufferPool& pool, std::size_t bytes, std::uint64_t number) {
  PooledBuffer b = pool.acquire();
  frame_pipeline::fill_frame(b.get_mut().first(bytes), number);
  b.set_size(bytes);
  return std::move(b).freeze();
}

/// Counts of this process's zero-copy ledger since construction.
struct LedgerDelta {
  dz::ZeroCopyCounts at_start = dz::zero_copy_counts();
  std::uint64_t handed_over() const { return dz::zero_copy_counts().handed_over - at_start.handed_over; }
  std::uint64_t released() const { return dz::zero_copy_counts().released - at_start.released; }
};

/// Receives frames on `socket` (ZMQ_RCVTIMEO set) until `stop` is set and
/// nothing arrived for `idle`, or until `limit` frames, verifying each one
/// byte by byte. `pace` sleeps after each frame: a slow receiver.
struct Receiver {
  std::uint64_t frames = 0, bad = 0, pattern_failures = 0, out_of_order = 0, end_of_stream = 0;
  std::uint64_t last_number = 0;
  bool any = false;

  void run(void* socket, std::size_t frame_bytes, std::uint64_t limit, const std::atomic<bool>& stop,
           std::chrono::milliseconds pace = 0ms, std::chrono::milliseconds idle = 300ms,
           std::atomic<bool>* got_one = nullptr) {
    dz::ReceivedFrame f;
    auto last_seen = Clock::now();
    const auto give_up = Clock::now() + 60s;
    while (frames < limit && Clock::now() < give_up) {
      const dz::ReceiveOutcome r = dz::receive_frame(socket, f);
      if (r.status == dz::ReceiveStatus::no_message) {
        if (stop.load() && Clock::now() - last_seen > idle) break;
        continue;
      }
      last_seen = Clock::now();
      if (got_one != nullptr) got_one->store(true);
      if (r.status != dz::ReceiveStatus::received) {
        ++bad;
        continue;
      }
      if (f.end_of_stream()) {
        ++end_of_stream;
        continue;
      }
      if (f.header.frame_number == probe_number) continue;
      const frame_pipeline::FrameCheck c = frame_pipeline::verify_frame(f.payload(), frame_bytes, false, 0);
      if (c.fault != frame_pipeline::FrameFault::ok) ++pattern_failures;
      if (any && f.header.frame_number <= last_number) ++out_of_order;
      any = true;
      last_number = f.header.frame_number;
      ++frames;
      if (pace.count() > 0) std::this_thread::sleep_for(pace);
    }
  }

  static constexpr std::uint64_t probe_number = ~std::uint64_t{0};
};

/// One zero-copy PUSH -> PULL run: `frames` frames from a pool of 3, each
/// byte checked by the receiver. Every other view is also kept by the sender
/// until the next frame, so the last reference is dropped sometimes by
/// libzmq's I/O thread and sometimes by the sender.
void push_pull_run(const std::string& bind_endpoint) {
  const std::size_t frame_bytes = 256 * 1024;
  const std::uint64_t frames = test_support::scaled(400);
  BufferPool pool(3, frame_bytes);
  LedgerDelta ledger;
  Receiver rx;
  dz::SenderStats st;
  {
    dz::Context ctx;
    dz::Socket pull(ctx, ZMQ_PULL);
    pull.set(ZMQ_RCVTIMEO, 100);
    pull.set(ZMQ_RCVHWM, 2);
    pull.bind(bind_endpoint);
    const std::string endpoint = pull.last_endpoint();
    INFO("endpoint " << endpoint);
    if (bind_endpoint.find(":*") != std::string::npos) CHECK(endpoint.find(":*") == std::string::npos);

    std::atomic<bool> stop{false};
    // It stops at `frames`; the idle limit only ends a run that lost frames.
    std::thread receiver([&] { rx.run(pull.handle(), frame_bytes, frames, stop, 0ms, 10s); });
    {
      dz::Socket push(ctx, ZMQ_PUSH, 5000ms);
      push.set(ZMQ_SNDHWM, 2);
      push.connect(endpoint);
      dz::FrameSender sender(push.handle());
      Bytes kept;
      for (std::uint64_t i = 0; i < frames; ++i) {
        Bytes v = make_frame(pool, frame_bytes, i);
        Bytes copy = i % 2 == 0 ? v : Bytes();
        const dz::SendOutcome out = sender.send(v, i);
        REQUIRE(out.status == dz::SendStatus::sent);
        REQUIRE(v.empty());
        kept = std::move(copy);  // drops the previous one: maybe the last view, maybe not
      }
      kept.reset();
      st = sender.stats();
      stop.store(true);
      receiver.join();
    }  // push closed: what it still queues is sent within the linger
  }    // context terminated: every free function has run
  CHECK(rx.frames == frames);
  CHECK(rx.bad == 0);
  CHECK(rx.pattern_failures == 0);
  CHECK(rx.out_of_order == 0);
  CHECK(st.frames_sent == frames);
  CHECK(st.frames_dropped == 0);
  CHECK(st.payload_bytes_sent == frames * frame_bytes);
  CHECK(ledger.handed_over() == frames);
  CHECK(ledger.released() == frames);
  CHECK(pool.available() == pool.size());
  const daq_pool::BufferPoolStats ps = pool.stats();
  CHECK(ps.acquires == frames);
  CHECK(ps.acquires == ps.releases);
}

}  // namespace

TEST_CASE("PUSH to PULL: a pool of 3 reused while libzmq's I/O thread releases the views; every byte verified") {
  test_support::Watchdog dog("zmq push/pull stream", std::chrono::seconds(120));
  SECTION("tcp://127.0.0.1, ephemeral port") { push_pull_run("tcp://127.0.0.1:*"); }
  SECTION("ipc:// in a fresh temporary directory") {
    TempDir dir("daq-pool-zmq");
    push_pull_run("ipc://" + dir / "frames.sock");
  }
}

TEST_CASE("PUB with no subscriber: every frame dropped inside the send, each buffer back at once") {
  test_support::Watchdog dog("zmq pub no subscriber");
  const std::size_t frame_bytes = 64 * 1024;
  BufferPool pool(2, frame_bytes);
  LedgerDelta ledger;
  dz::Context ctx;
  dz::Socket pub(ctx, ZMQ_PUB);
  pub.bind("tcp://127.0.0.1:*");
  dz::FrameSender sender(pub.handle());
  constexpr std::uint64_t frames = 100;
  for (std::uint64_t i = 0; i < frames; ++i) {
    std::optional<PooledBuffer> b = pool.try_acquire();
    REQUIRE(b);  // never waits: the previous frame's buffer came back inside its send
    b->set_size(frame_bytes);
    Bytes v = std::move(*b).freeze();
    const dz::SendOutcome out = sender.send(v, i);
    CHECK(out.status == dz::SendStatus::dropped);
    CHECK(out.taken());
    CHECK(v.empty());
    CHECK(pool.available() == 2);
  }
  const dz::SenderStats st = sender.stats();
  CHECK(st.frames_dropped == frames);
  CHECK(st.frames_sent == 0);
  CHECK(ledger.handed_over() == frames);
  CHECK(ledger.released() == frames);
}

TEST_CASE("allocations per frame: libzmq's one control block; daq_pool's side adds none") {
  if (!alloc_counter::enabled) {
    SUCCEED("allocations are not counted under a sanitizer");
    return;
  }
  const std::size_t frame_bytes = 64 * 1024;
  BufferPool pool(2, frame_bytes);
  dz::Context ctx;
  dz::Socket pub(ctx, ZMQ_PUB);
  pub.bind("tcp://127.0.0.1:*");  // no subscriber: each message is freed inside the send, on this thread
  constexpr std::uint64_t frames = 200;

  // Baseline: libzmq's own zero-copy send (a no-op free function) and an
  // inline 32-byte part, as FrameSender sends them.
  std::vector<std::byte> raw(frame_bytes);
  std::array<std::byte, 32> hdr{};
  const auto baseline = [&](int n) {
    for (int i = 0; i < n; ++i) {
      zmq_msg_t m;
      REQUIRE(zmq_msg_init_data(
                  &m, raw.data(), raw.size(), [](void*, void*) {}, nullptr) == 0);
      REQUIRE(zmq_send(pub.handle(), hdr.data(), hdr.size(), ZMQ_SNDMORE) == 32);
      REQUIRE(zmq_msg_send(&m, pub.handle(), 0) >= 0);
    }
  };
  baseline(10);  // warm-up
  alloc_counter::Scope libzmq_only;
  baseline(static_cast<int>(frames));
  const std::uint64_t libzmq_allocs = libzmq_only.total();

  dz::FrameSender sender(pub.handle());
  std::uint64_t n = 0;
  const auto ours = [&](std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) {
      std::optional<PooledBuffer> b = pool.try_acquire();
      REQUIRE(b);
      b->set_size(frame_bytes);
      Bytes v = std::move(*b).freeze();
      Bytes extra = v;  // a consumer's view, dropped after the send: one more atomic, no allocation
      REQUIRE(sender.send(v, n++).status == dz::SendStatus::dropped);
    }
  };
  ours(10);
  alloc_counter::Scope with_daq_pool;
  ours(frames);
  const std::uint64_t our_allocs = with_daq_pool.total();
  const std::uint64_t our_news = with_daq_pool.news();  // read now: the checks below allocate
  WARN("libzmq allocations per zero-copy frame: " << static_cast<double>(libzmq_allocs) / frames << " (bare libzmq), "
                                                  << static_cast<double>(our_allocs) / frames
                                                  << " (through FrameSender)");
  CHECK(libzmq_allocs == frames);  // one malloc per message: its content_t (40 bytes)
  CHECK(our_allocs == libzmq_allocs);
  CHECK(our_news == 0);
}

TEST_CASE("PUB to a slow subscriber at high-water mark 1: drops counted, every buffer returned") {
  test_support::Watchdog dog("zmq pub slow subscriber", std::chrono::seconds(120));
  const std::size_t frame_bytes = 256 * 1024;
  const std::uint64_t frames = 200;  // not scaled: the sender's side is cheap, the subscriber paced
  BufferPool pool(4, frame_bytes);
  LedgerDelta ledger;
  Receiver rx;
  dz::SenderStats st;
  {
    dz::Context ctx;
    dz::Socket pub(ctx, ZMQ_PUB, 1000ms);
    pub.set(ZMQ_SNDHWM, 1);
    pub.set(ZMQ_SNDBUF, 64 * 1024);  // small kernel buffers too: what does not fit is ZeroMQ's to drop
    pub.bind("tcp://127.0.0.1:*");
    dz::Socket sub(ctx, ZMQ_SUB);
    sub.set(ZMQ_RCVHWM, 1);
    sub.set(ZMQ_RCVBUF, 64 * 1024);
    sub.set(ZMQ_RCVTIMEO, 50);
    sub.set(ZMQ_SUBSCRIBE, std::span<const std::byte>());
    sub.connect(pub.last_endpoint());
    std::atomic<bool> stop{false}, subscribed{false};
    std::thread receiver([&] { rx.run(sub.handle(), frame_bytes, frames, stop, 10ms, 1000ms, &subscribed); });

    dz::FrameSender sender(pub.handle());
    // The subscription reaches the publisher asynchronously: probe until it did.
    const auto give_up = Clock::now() + 30s;
    while (!subscribed.load() && Clock::now() < give_up) {
      Bytes probe = Bytes::copy_from(std::as_bytes(std::span("probe")));
      (void)sender.send(probe, Receiver::probe_number);
      std::this_thread::sleep_for(5ms);
    }
    REQUIRE(subscribed.load());
    const dz::SenderStats probes = sender.stats();
    for (std::uint64_t i = 0; i < frames; ++i) {
      Bytes v = make_frame(pool, frame_bytes, i);
      const dz::SendOutcome out = sender.send(v, i, dz::now_ns(), ZMQ_DONTWAIT);
      REQUIRE(out.taken());  // PUB never refuses: it queues or drops
    }
    const dz::SenderStats all = sender.stats();
    st.frames_sent = all.frames_sent - probes.frames_sent;
    st.frames_dropped = all.frames_dropped - probes.frames_dropped;
    stop.store(true);
    receiver.join();
  }
  INFO("sent " << st.frames_sent << ", dropped " << st.frames_dropped << ", received " << rx.frames);
  CHECK(st.frames_sent + st.frames_dropped == frames);
  CHECK(st.frames_dropped > 0);
  CHECK(rx.frames <= st.frames_sent);
  CHECK(rx.frames > 0);
  CHECK(rx.bad == 0);
  CHECK(rx.pattern_failures == 0);
  CHECK(rx.out_of_order == 0);
  CHECK(ledger.handed_over() == ledger.released());
  CHECK(pool.available() == pool.size());
}

TEST_CASE("a refused send leaves the view with the caller, and the buffer comes back when it drops it") {
  test_support::Watchdog dog("zmq refused send");
  BufferPool pool(2, 4096);
  LedgerDelta ledger;
  dz::Context ctx;
  dz::Socket push(ctx, ZMQ_PUSH);
  push.bind("tcp://127.0.0.1:*");  // no peer ever connects: nowhere to queue
  dz::FrameSender sender(push.handle());

  Bytes v = make_frame(pool, 4096, 1);
  const std::byte* data = v.data();
  dz::SendOutcome out = sender.send(v, 1, 0, ZMQ_DONTWAIT);
  CHECK(out.status == dz::SendStatus::would_block);
  CHECK(out.error == EAGAIN);
  CHECK_FALSE(out.taken());
  CHECK(v.data() == data);
  CHECK(v.size() == 4096);
  CHECK(v.use_count() == 1);
  CHECK(pool.available() == 1);

  out = dz::send_view(push.handle(), v, ZMQ_DONTWAIT);
  CHECK(out.status == dz::SendStatus::would_block);
  CHECK(v.data() == data);
  CHECK(v.use_count() == 1);

  push.set(ZMQ_SNDTIMEO, 20);  // a blocking send that gives up
  out = sender.send(v, 1);
  CHECK(out.status == dz::SendStatus::would_block);
  CHECK(v.use_count() == 1);
  CHECK(frame_pipeline::verify_frame(v.span(), 4096, false, 0).fault == frame_pipeline::FrameFault::ok);

  const dz::SenderStats st = sender.stats();
  CHECK(st.would_block == 2);
  CHECK(st.frames_sent == 0);
  CHECK(ledger.handed_over() == ledger.released());  // each refused message was closed here
  v.reset();
  CHECK(pool.available() == 2);

  // A closed socket: failed (ENOTSOCK), view kept.
  Bytes w = make_frame(pool, 4096, 2);
  push.close();
  dz::Socket other(ctx, ZMQ_PUSH);
  void* stale = other.handle();
  other.close();
  dz::FrameSender to_stale(stale);
  out = to_stale.send(w, 2);
  CHECK(out.status == dz::SendStatus::failed);
  CHECK(out.error == ENOTSOCK);
  CHECK(w.use_count() == 1);
  CHECK(to_stale.stats().failures == 1);
}

TEST_CASE("over inproc:// the receiving thread holds the very buffer, and its close returns it") {
  test_support::Watchdog dog("zmq inproc");
  BufferPool pool(1, 4096);
  dz::Context ctx;
  dz::Socket a(ctx, ZMQ_PAIR), b(ctx, ZMQ_PAIR);
  a.bind("inproc://daq-pool-test");
  b.connect("inproc://daq-pool-test");
  Bytes v = make_frame(pool, 4096, 9);
  const std::byte* data = v.data();
  REQUIRE(dz::send_view(a.handle(), v).status == dz::SendStatus::sent);
  CHECK(v.empty());

  std::size_t available_after_close = 99;
  bool same_buffer = false;
  std::thread reader([&] {
    dz::Message m;
    REQUIRE(zmq_msg_recv(m.get(), b.handle(), 0) == 4096);
    same_buffer = m.bytes().data() == data;
    CHECK(pool.available() == 0);
    m.reset();  // runs the free function here, on the reader thread
    available_after_close = pool.available();
  });
  reader.join();
  CHECK(same_buffer);
  CHECK(available_after_close == 1);
}

TEST_CASE("garbage and truncated messages are bad frames, consumed whole; the stream goes on") {
  test_support::Watchdog dog("zmq garbage");
  dz::Context ctx;
  dz::Socket pull(ctx, ZMQ_PULL);
  pull.set(ZMQ_RCVTIMEO, 5000);
  pull.bind("tcp://127.0.0.1:*");
  dz::Socket push(ctx, ZMQ_PUSH, 1000ms);
  push.connect(pull.last_endpoint());
  void* s = push.handle();

  const auto send_parts = [&](std::initializer_list<std::vector<std::byte>> parts) {
    std::size_t i = 0;
    for (const auto& p : parts) {
      REQUIRE(zmq_send(s, p.data(), p.size(), ++i < parts.size() ? ZMQ_SNDMORE : 0) == static_cast<int>(p.size()));
    }
  };
  const auto header = [](std::uint32_t payload_bytes, std::uint32_t checksum, dz::Checksum kind = dz::Checksum::full,
                         std::uint16_t flags = 0) {
    dz::WireHeader h;
    h.frame_number = 5;
    h.payload_bytes = payload_bytes;
    h.checksum_kind = kind;
    h.checksum = checksum;
    h.flags = flags;
    const auto a = dz::encode_header(h);
    return std::vector<std::byte>(a.begin(), a.end());
  };
  const std::vector<std::byte> payload(100, std::byte{0x42});
  const std::uint32_t good_sum = dz::payload_checksum(payload, dz::Checksum::full);
  const auto text = [](const char* t) {
    const auto b = std::as_bytes(std::span(t, std::strlen(t)));
    return std::vector<std::byte>(b.begin(), b.end());
  };
  auto v2 = header(100, good_sum);
  v2[4] = std::byte{2};
  auto short_header = header(100, good_sum);
  short_header.resize(10);
  auto bad_kind = header(100, good_sum);
  bad_kind[5] = std::byte{7};

  struct Case {
    const char* what;
    dz::FrameError error;
    std::size_t parts;
  };
  const Case cases[] = {
      {"one part of text", dz::FrameError::bad_magic, 1},
      {"an empty part", dz::FrameError::header_too_short, 1},
      {"a header alone (truncated)", dz::FrameError::missing_payload, 1},
      {"three parts", dz::FrameError::too_many_parts, 3},
      {"a 10-byte header", dz::FrameError::bad_header_size, 2},
      {"version 2", dz::FrameError::unsupported_version, 2},
      {"checksum kind 7", dz::FrameError::unknown_checksum_kind, 2},
      {"payload shorter than the header says", dz::FrameError::payload_size_mismatch, 2},
      {"wrong checksum", dz::FrameError::checksum_mismatch, 2},
      {"end of stream with a payload", dz::FrameError::bad_end_of_stream, 2},
      {"five parts of junk", dz::FrameError::bad_magic, 5},
  };
  send_parts({text("hello, frames")});
  send_parts({std::vector<std::byte>()});
  send_parts({header(100, good_sum)});
  send_parts({header(100, good_sum), payload, text("extra")});
  send_parts({short_header, payload});
  send_parts({v2, payload});
  send_parts({bad_kind, payload});
  send_parts({header(101, good_sum), payload});
  send_parts({header(100, good_sum ^ 1), payload});
  send_parts({header(100, good_sum, dz::Checksum::full, dz::flag_end_of_stream), payload});
  send_parts({text("junk1"), text("junk2"), text("junk3"), text("junk4"), text("junk5")});
  // Then valid frames: the receiver is at a message boundary again.
  dz::FrameSender sender(s, dz::Checksum::full);
  Bytes good = Bytes::copy_from(payload);
  REQUIRE(sender.send(good, 77).taken());
  dz::FrameSender unchecked(s, dz::Checksum::none);
  Bytes good2 = Bytes::copy_from(payload);
  REQUIRE(unchecked.send(good2, 78).taken());
  REQUIRE(sender.send_end_of_stream(79).taken());

  dz::ReceivedFrame f;
  for (const Case& c : cases) {
    INFO(c.what);
    const dz::ReceiveOutcome r = dz::receive_frame(pull.handle(), f);
    CHECK(r.status == dz::ReceiveStatus::bad_frame);
    CHECK(r.frame_error == c.error);
    CHECK(r.parts == c.parts);
  }
  dz::ReceiveOutcome r = dz::receive_frame(pull.handle(), f);
  REQUIRE(r.status == dz::ReceiveStatus::received);
  CHECK(f.header.frame_number == 77);
  CHECK(f.header.checksum_kind == dz::Checksum::full);
  CHECK(f.payload().size() == 100);
  CHECK(std::memcmp(f.payload().data(), payload.data(), 100) == 0);
  CHECK_FALSE(f.end_of_stream());
  r = dz::receive_frame(pull.handle(), f);
  REQUIRE(r.status == dz::ReceiveStatus::received);
  CHECK(f.header.frame_number == 78);
  CHECK(f.header.checksum_kind == dz::Checksum::none);
  r = dz::receive_frame(pull.handle(), f);
  REQUIRE(r.status == dz::ReceiveStatus::received);
  CHECK(f.end_of_stream());
  CHECK(f.header.frame_number == 79);
  CHECK(f.payload().empty());

  pull.set(ZMQ_RCVTIMEO, 10);
  r = dz::receive_frame(pull.handle(), f);
  CHECK(r.status == dz::ReceiveStatus::no_message);
  CHECK(r.error == EAGAIN);
  r = dz::receive_frame(pull.handle(), f, ZMQ_DONTWAIT);
  CHECK(r.status == dz::ReceiveStatus::no_message);
}

TEST_CASE("Context and Socket report bad endpoints with the endpoint and ZeroMQ's reason") {
  dz::Context ctx;
  dz::Socket s(ctx, ZMQ_PUSH);
  const auto message_of = [&](auto&& call) -> std::string {
    try {
      call();
    } catch (const dz::zmq_error& e) {
      CHECK(e.code() != 0);
      return e.what();
    }
    return "(no error)";
  };
  std::string m = message_of([&] { s.bind("bogus://nowhere"); });
  CHECK(m.find("zmq_bind(bogus://nowhere)") != std::string::npos);
  CHECK(m.find(zmq_strerror(EPROTONOSUPPORT)) != std::string::npos);
  m = message_of([&] { s.bind("tcp://127.0.0.1:notaport"); });
  CHECK(m.find("tcp://127.0.0.1:notaport") != std::string::npos);
  m = message_of([&] { s.connect("tcp://127.0.0.1"); });
  CHECK(m.find("zmq_connect(tcp://127.0.0.1)") != std::string::npos);
  m = message_of([&] { s.bind("ipc:///nonexistent-daq-pool-dir/x.sock"); });
  CHECK(m.find(zmq_strerror(ENOENT)) != std::string::npos);
  // The same port twice: the second bind fails with "Address already in use".
  dz::Socket first(ctx, ZMQ_PULL);
  first.bind("tcp://127.0.0.1:*");
  const std::string taken = first.last_endpoint();
  m = message_of([&] { s.bind(taken); });
  CHECK(m.find(zmq_strerror(EADDRINUSE)) != std::string::npos);
  // Neither an address nor an interface of this machine: said in words, not
  // only "No such device".
  m = message_of([&] { s.bind("tcp://nohost-daq-pool.invalid:1"); });
  CHECK(m.find("not an IP address or network interface of this machine") != std::string::npos);
  m = message_of([&] { s.bind("tcp://127.0.0.1:notaport"); });
  CHECK(m.find("expected tcp://HOST:PORT") != std::string::npos);
  m = message_of([&] { s.set(ZMQ_SNDHWM, -5); });
  CHECK(m.find("zmq_setsockopt") != std::string::npos);
  CHECK_THROWS_AS(dz::Context(-1), dz::zmq_error);
}

TEST_CASE("the socket file of an ipc:// endpoint is removed when the socket that bound it closes") {
  TempDir dir("daq-pool-zmq");
  const std::string path = dir / "frames.sock";
  dz::Context ctx;
  dz::Socket s(ctx, ZMQ_PUSH);
  s.bind("ipc://" + path);
  CHECK(std::filesystem::exists(path));
  dz::Socket moved = std::move(s);  // the file goes with the socket
  s.close();
  CHECK(std::filesystem::exists(path));
  moved.close();
  CHECK_FALSE(std::filesystem::exists(path));  // libzmq alone leaves it behind
}
