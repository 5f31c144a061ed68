// The README's ZeroMQ example: pooled frames sent zero-copy over
// tcp://127.0.0.1 and received in place, in one program. The buffers go back
// to the pool when libzmq's I/O thread has written them, and after the
// context is terminated ZeroMQ holds none.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/zmq.hpp>

#include <cstdio>
#include <cstring>
#include <thread>

namespace dz = daq_pool::zmq;

int main() {
  constexpr std::size_t frame_bytes = 1 << 20;
  daq_pool::BufferPool pool(2, frame_bytes);  // 2 buffers: each is reused while frames go out
  int received = 0;
  bool sent_all = true;
  {
    dz::Context context;
    dz::Socket pull(context, ZMQ_PULL);
    pull.bind("tcp://127.0.0.1:*");                                       // any free port...
    const std::string endpoint = pull.last_endpoint();                    // ...this one
    dz::Socket push(context, ZMQ_PUSH, std::chrono::milliseconds(1000));  // linger: bounded shutdown
    push.connect(endpoint);

    std::thread receiver([&] {
      dz::ReceivedFrame frame;  // reused: receiving releases the previous payload
      for (;;) {
        const dz::ReceiveOutcome r = dz::receive_frame(pull.handle(), frame);
        if (r.status != dz::ReceiveStatus::received || frame.end_of_stream()) break;
        const std::span<const std::byte> payload = frame.payload();  // in place, no copy
        if (payload.size() == frame_bytes && payload[0] == std::byte(frame.header.frame_number)) ++received;
      }
    });

    dz::FrameSender sender(push.handle());  // header part + payload part, sampled checksum
    for (std::uint64_t n = 0; n < 10; ++n) {
      daq_pool::PooledBuffer buffer = pool.acquire();  // waits while ZeroMQ still sends both
      std::memset(buffer.data(), static_cast<int>(n), frame_bytes);
      buffer.set_size(frame_bytes);
      daq_pool::Bytes frame = std::move(buffer).freeze();
      sent_all = sender.send(frame, n).status == dz::SendStatus::sent && sent_all;
      // `frame` is empty now: ZeroMQ holds the view until its I/O thread is done.
    }
    (void)sender.send_end_of_stream(10);
    receiver.join();
  }  // sockets closed, context terminated: every free function has run
  const dz::ZeroCopyCounts counts = dz::zero_copy_counts();
  std::printf("received %d of 10 frames; ZeroMQ took %llu views and holds %llu; %zu of %zu buffers free\n", received,
              static_cast<unsigned long long>(counts.handed_over), static_cast<unsigned long long>(counts.held()),
              pool.available(), pool.size());
  return sent_all && received == 10 && counts.held() == 0 && pool.available() == pool.size() ? 0 : 1;
}
