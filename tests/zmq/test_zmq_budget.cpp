// FrameSender's budget (daq_pool/zmq/sender.hpp) over real sockets: a PULL
// receiver that does not read lets ZeroMQ hold at most `budget` frames of
// the sender at once, whatever its high-water marks; the frames beyond are
// refused (over_budget or would_block) and stay with the caller; when the
// receiver reads, every frame ZeroMQ took arrives; the budget's block
// outlives a sender destroyed with frames still in flight; and drain()
// tells how many frames a close would discard.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/zmq.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>

#include "catch.hpp"
#include "frame_pattern.hpp"
#include "watchdog.hpp"

namespace dz = daq_pool::zmq;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using namespace std::chrono_literals;

namespace {

Bytes make_frame(BufferPool& pool, std::size_t bytes, std::uint64_t number) {
  daq_pool::PooledBuffer b = pool.acquire();
  frame_pipeline::fill_frame(b.get_mut().first(bytes), number);
  b.set_size(bytes);
  return std::move(b).freeze();
}

}  // namespace

TEST_CASE("a stalled PULL peer holds at most the budget; the rest stays with the caller; reading resumes") {
  test_support::Watchdog watchdog("test_zmq_budget", 120s);
  const std::size_t frame_bytes = 1 << 20;  // 1 MiB: the kernel's socket buffers hold a few only
  const std::size_t budget = 5;
  BufferPool pool(24, frame_bytes);
  std::uint64_t taken = 0, refused_budget = 0, refused_full = 0, max_held = 0;
  {
    dz::Context ctx;
    dz::Socket pull(ctx, ZMQ_PULL);
    // The peer stalls: its queue holds 1 frame and its kernel buffer 64 KiB,
    // so its libzmq stops reading the socket (with a deep receive queue its
    // I/O thread would keep draining the sender, and on a slow machine,
    // e.g. under TSan, the budget would never fill). The sender's
    // high-water mark is far above the budget: only the budget bounds what
    // the sender holds.
    pull.set(ZMQ_RCVHWM, 1);
    pull.set(ZMQ_RCVBUF, 64 << 10);
    pull.set(ZMQ_RCVTIMEO, 100);
    pull.set_int64(ZMQ_MAXMSGSIZE, dz::max_message_bytes(frame_bytes));
    pull.bind("tcp://127.0.0.1:*");
    dz::Socket push(ctx, ZMQ_PUSH);
    push.set(ZMQ_SNDHWM, 1000);
    push.connect(pull.last_endpoint());
    dz::FrameSender sender(push.handle(), dz::Checksum::sampled, budget);
    // The receiver does not read: offer 200 frames without waiting.
    for (std::uint64_t i = 0; i < 200; ++i) {
      Bytes v = make_frame(pool, frame_bytes, taken);
      const dz::SendOutcome out = sender.send(v, taken, dz::now_ns(), ZMQ_DONTWAIT);
      if (out.taken()) {
        REQUIRE(out.status == dz::SendStatus::sent);
        ++taken;
      } else {
        REQUIRE(!v.empty());  // refused: still the caller's
        ++(out.status == dz::SendStatus::over_budget ? refused_budget : refused_full);
      }
      max_held = std::max<std::uint64_t>(max_held, sender.held());
      // What ZeroMQ holds is out of the pool; nothing else is.
      CHECK(pool.size() - pool.available() <= budget + 1);  // + v, dropped at the end of this iteration
      std::this_thread::sleep_for(1ms);
    }
    const dz::SenderStats st = sender.stats();
    CHECK(max_held <= budget);
    CHECK(st.held <= budget);
    CHECK(st.budget == budget);
    CHECK(st.over_budget == refused_budget);
    CHECK(refused_budget > 0);  // the budget, not the high-water marks, stopped it
    CHECK(st.frames_sent == taken);
    // Now the receiver reads: every frame ZeroMQ took arrives, in order, intact.
    dz::ReceivedFrame f;
    std::uint64_t got = 0;
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (got < taken && std::chrono::steady_clock::now() < give_up) {
      const dz::ReceiveOutcome r = dz::receive_frame(pull.handle(), f);
      if (r.status == dz::ReceiveStatus::no_message) continue;
      REQUIRE(r.status == dz::ReceiveStatus::received);
      CHECK(f.header.frame_number == got);
      CHECK(frame_pipeline::verify_frame(f.payload(), frame_bytes, false, 0).fault == frame_pipeline::FrameFault::ok);
      ++got;
    }
    CHECK(got == taken);
    f.payload_message.reset();
    CHECK(sender.drain(10s) == 0);  // all written: a close now loses nothing
    // Every slot came back: the next `budget` frames are all taken at once.
    for (std::uint64_t i = 0; i < budget; ++i) {
      Bytes v = make_frame(pool, frame_bytes, taken + i);
      CHECK(sender.send(v, taken + i, dz::now_ns(), ZMQ_DONTWAIT).status == dz::SendStatus::sent);
    }
  }
  CHECK(pool.available() == pool.size());
  (void)refused_full;
}

TEST_CASE("a sender destroyed with frames in flight: the last free function frees the budget; drain counts what a close discards") {
  test_support::Watchdog watchdog("test_zmq_budget", 120s);
  const std::size_t frame_bytes = 4 << 20;  // 20 of them: more than the kernel's socket buffers take
  BufferPool pool(8, frame_bytes);
  std::uint64_t lost_at_close = 0, taken = 0;
  {
    dz::Context ctx;
    dz::Socket pull(ctx, ZMQ_PULL);
    pull.set(ZMQ_RCVHWM, 1);
    pull.bind("tcp://127.0.0.1:*");  // never reads
    std::optional<dz::Socket> push;
    push.emplace(ctx, ZMQ_PUSH);
    push->connect(pull.last_endpoint());
    {
      dz::FrameSender sender(push->handle(), dz::Checksum::none, 4);
      for (std::uint64_t i = 0; i < 20; ++i) {
        Bytes v = make_frame(pool, frame_bytes, i);
        if (sender.send(v, i, 0, ZMQ_DONTWAIT).taken()) ++taken;
        std::this_thread::sleep_for(2ms);
      }
      lost_at_close = sender.drain(200ms);  // the receiver never reads: some stay held
      CHECK(lost_at_close == sender.held());
    }  // the sender goes; its frames are still in libzmq's pipe
    CHECK(pool.available() < pool.size());
    push->close();  // linger 0: the close discards them; their free functions use the block
  }
  CHECK(taken >= 1);
  CHECK(lost_at_close >= 1);
  CHECK(pool.available() == pool.size());
}
