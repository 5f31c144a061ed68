// The C++ side of bench/python/bench_python.py: the producers the Python
// subscriber and receiver are measured against, and the C++ subscriber and
// receiver that are their baseline in the same run.
//
//   py_bench_peer shm-serve PATH FRAME_BYTES N     serve N frames to one subscriber (each waits for room)
//   py_bench_peer shm-subscribe PATH               receive until the end; JSON summary
//   py_bench_peer zmq-send ENDPOINT FRAME_BYTES N  PUSH N frames (bind), then end of stream
//   py_bench_peer zmq-receive ENDPOINT             PULL until the end of stream; JSON summary
//
// Receivers touch the first and last byte of each frame (it is in place,
// never copied) and report frames, wall seconds and CPU seconds
// (getrusage: every thread of the process, libzmq's included).
#include <sys/resource.h>

#include <daq_pool/buffer_pool.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <thread>

#if PY_BENCH_HAVE_SHM
#include <daq_pool/shm.hpp>
#endif
#if PY_BENCH_HAVE_ZMQ
#include <daq_pool/zmq.hpp>
#endif

namespace {

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void summary(std::uint64_t frames, std::uint64_t bytes, double wall, double cpu, unsigned touched) {
  std::printf("{\"frames\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f,\"checksum\":%u}\n",
              static_cast<unsigned long long>(frames), static_cast<unsigned long long>(bytes), wall, cpu, touched);
  std::fflush(stdout);
}

using Clock = std::chrono::steady_clock;

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: py_bench_peer MODE ARGS... (see the source)\n");
    return 2;
  }
  const std::string mode = argv[1];
  try {
#if PY_BENCH_HAVE_SHM
    if (mode == "shm-serve" && argc >= 5) {
      const std::size_t bytes = std::strtoull(argv[3], nullptr, 10);
      const std::uint64_t n = std::strtoull(argv[4], nullptr, 10);
      daq_pool::BufferPoolOptions o;
      o.shared_memory = true;
      daq_pool::BufferPool pool(12, bytes, o);
      daq_pool::shm::ServerOptions so;
      so.max_subscribers = 1;
      so.max_in_flight = 8;
      so.wait_when_full = true;  // every frame reaches the subscriber: its speed sets the rate
      so.wait_timeout = std::chrono::seconds(30);
      daq_pool::shm::Server server(pool, argv[2], so);
      std::printf("ready\n");
      std::fflush(stdout);
      for (int i = 0; i < 3000 && server.subscribers() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      for (std::uint64_t i = 0; i < n; ++i) {
        daq_pool::PooledBuffer b = pool.acquire();  // back when the subscriber releases a frame
        b.set_size(bytes);
        b.get_mut()[0] = static_cast<std::byte>(i);
        server.publish(std::move(b).freeze());
      }
      server.stop();
      return 0;
    }
    if (mode == "shm-subscribe") {
      daq_pool::shm::Subscriber sub(argv[2], std::chrono::seconds(30));
      std::uint64_t frames = 0, total = 0;
      unsigned touched = 0;
      Clock::time_point start{};
      double cpu0 = 0;
      while (auto f = sub.receive()) {
        if (frames == 0) {
          start = Clock::now();
          cpu0 = cpu_seconds();
        }
        const auto s = f->bytes.span();
        touched += std::to_integer<unsigned>(s.front()) + std::to_integer<unsigned>(s.back());
        ++frames;
        total += s.size();
      }
      summary(frames, total, std::chrono::duration<double>(Clock::now() - start).count(), cpu_seconds() - cpu0, touched);
      return 0;
    }
#endif
#if PY_BENCH_HAVE_ZMQ
    if (mode == "zmq-send" && argc >= 5) {
      const std::size_t bytes = std::strtoull(argv[3], nullptr, 10);
      const std::uint64_t n = std::strtoull(argv[4], nullptr, 10);
      daq_pool::BufferPool pool(16, bytes);
      void* ctx = ::zmq_ctx_new();
      void* s = ::zmq_socket(ctx, ZMQ_PUSH);
      int hwm = 8;
      ::zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
      if (::zmq_bind(s, argv[2]) != 0) {
        std::fprintf(stderr, "py_bench_peer: bind %s: %s\n", argv[2], ::zmq_strerror(errno));
        return 2;
      }
      std::printf("ready\n");
      std::fflush(stdout);
      daq_pool::zmq::FrameSender sender(s);
      for (std::uint64_t i = 0; i < n; ++i) {
        daq_pool::PooledBuffer b = pool.acquire();
        b.set_size(bytes);
        b.get_mut()[0] = static_cast<std::byte>(i);
        daq_pool::Bytes view = std::move(b).freeze();
        sender.send(view, i);
      }
      sender.send_end_of_stream(n);
      // zmq_close's linger is meant to deliver the queue, but a receiver
      // slower than the sender was seen to lose the last ~HWM messages at
      // teardown (libzmq 4.3.4, ipc): wait until the receiver says it is done
      // (a line on stdin, or EOF) before closing.
      char line[16];
      (void)!std::fgets(line, sizeof line, stdin);
      ::zmq_close(s);
      ::zmq_ctx_term(ctx);
      return 0;
    }
    if (mode == "zmq-receive") {
      void* ctx = ::zmq_ctx_new();
      void* s = ::zmq_socket(ctx, ZMQ_PULL);
      int hwm = 8, ivl = 10;
      ::zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
      ::zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
      ::zmq_connect(s, argv[2]);
      daq_pool::zmq::ReceivedFrame f;
      std::uint64_t frames = 0, total = 0, bad = 0;
      unsigned touched = 0;
      Clock::time_point start{};
      double cpu0 = 0;
      for (;;) {
        const auto out = daq_pool::zmq::receive_frame(s, f);
        if (out.status == daq_pool::zmq::ReceiveStatus::bad_frame) {
          ++bad;
          continue;
        }
        if (out.status != daq_pool::zmq::ReceiveStatus::received) continue;
        if (f.end_of_stream()) break;
        if (frames == 0) {
          start = Clock::now();
          cpu0 = cpu_seconds();
        }
        const auto p = f.payload();
        touched += std::to_integer<unsigned>(p.front()) + std::to_integer<unsigned>(p.back());
        ++frames;
        total += p.size();
      }
      summary(frames, total, std::chrono::duration<double>(Clock::now() - start).count(), cpu_seconds() - cpu0, touched);
      ::zmq_close(s);
      ::zmq_ctx_term(ctx);
      return bad == 0 ? 0 : 1;
    }
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "py_bench_peer: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "py_bench_peer: unknown or unavailable mode %s\n", mode.c_str());
  return 2;
}
