// Frames to other processes (issue 14): 8 MiB frames from this process to 1
// and 3 subscriber processes (bench_shm_subscriber), through
//   shm:         daq_pool::shm::Server over a memfd pool (a 48-byte message per
//                frame and subscriber; the subscribers read the frame in place),
//   zmq_ipc:     ZeroMQ PUSH/PULL over ipc://, one socket per subscriber,
//                zero-copy on the sending side (zmq_msg_init_data on the pool
//                buffer); the kernel copies the bytes through the socket and
//                into the receiver's message,
//   unix_socket: a plain Unix stream socket per subscriber, send() of the bytes.
// Every transport carries the same pool buffers, and every subscriber reads
// the same bytes of each frame: its number (read_pages:0: the transport's own
// cost), or one word per 4 KiB page as well (read_pages:1: a consumer that
// looks at the whole frame, e.g. a preview). The producer only stamps
// a frame number into each buffer (a camera writing into the pool, e.g.
// daq_pool/aravis.hpp, copies nothing either), so the numbers are the
// transports' cost. Counters, per frame:
//   cpu_us_per_frame    CPU time of every process (this one with all its threads:
//                       producer, server thread, ZeroMQ's I/O thread; and the
//                       subscribers, each measuring itself from the first
//                       frame after the warm-up to the end)
//   producer_cpu_us     ... of which this process
//   subscribers_cpu_us  ... of which the subscriber processes (all of them)
//   frames_per_s        frames delivered to every subscriber per second
//   allocs/op           heap allocations per frame in this process
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/bytes.hpp>
#include <daq_pool/shm.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "shm_test_support.hpp"

#if defined(DAQ_BENCH_HAVE_ZMQ) && !defined(DAQ_BENCH_TSAN)
// libzmq is uninstrumented: under ThreadSanitizer its I/O thread's hand-off
// (and the free callback it runs) would be reported as races, so its case is
// left out there, like the FFmpeg and GStreamer baselines.
#include <zmq.h>
#define DAQ_BENCH_ZMQ 1
#endif

namespace {

using daq_bench::frame_bytes;
using namespace std::chrono_literals;

constexpr std::size_t pool_buffers = 14;  // 3 subscribers x 4 in flight + 2: what shm::Server requires
constexpr std::uint64_t warmup_frames = 8;

double self_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

/// The subscriber processes of one run, each connected to its endpoint.
class Subscribers {
 public:
  /// `read_pages`: each subscriber reads one word per page of every frame
  /// (a consumer that looks at the whole frame), else only its number.
  Subscribers(const char* mode, const std::vector<std::string>& endpoints, bool read_pages) {
    for (const std::string& e : endpoints)
      children_.push_back(std::make_unique<shm_test::Child>(
          std::vector<std::string>{BENCH_SHM_SUBSCRIBER, mode, e, std::to_string(frame_bytes),
                                   std::to_string(warmup_frames), read_pages ? "pages" : "header"}));
  }
  bool ready() {
    for (auto& c : children_)
      if (!c->wait_for_output("ready")) return false;
    return true;
  }
  /// Waits for every subscriber to end; their measured CPU time in all, in
  /// ns, or a negative number if one failed.
  double finish() {
    double cpu = 0;
    bool ok = true;
    for (auto& c : children_) {
      ok = c->wait(60s) == 0 && ok;
      const std::optional<double> v = shm_test::json_number(c->output(), "cpu_ns");
      ok = ok && v.has_value();
      cpu += v.value_or(0);
    }
    return ok ? cpu : -1;
  }

 private:
  std::vector<std::unique_ptr<shm_test::Child>> children_;
};

daq_pool::BufferPool shared_pool() {
  daq_pool::BufferPoolOptions o;
  o.shared_memory = true;
  return daq_pool::BufferPool(pool_buffers, frame_bytes, o);
}

/// A frame as a camera writing into the pool leaves it: its number stamped
/// in, nothing copied.
daq_pool::Bytes next_frame(daq_pool::BufferPool& pool, std::uint64_t n) {
  daq_pool::PooledBuffer b = pool.acquire();
  std::memcpy(b.data(), &n, sizeof n);
  b.set_size(b.capacity());
  return std::move(b).freeze();
}

/// The measurement every transport shares: warm-up frames, then one frame
/// per iteration through `send` (false: failed), then `end` (the end of
/// the stream, and waiting until the transport let go of every buffer),
/// then the subscribers' own CPU times.
void measure(benchmark::State& state, daq_pool::BufferPool& pool, Subscribers& subs,
             const std::function<bool(const daq_pool::Bytes&)>& send, const std::function<void()>& end) {
  bool ok = subs.ready();
  std::uint64_t n = 0;
  while (ok && n < warmup_frames) ok = send(next_frame(pool, ++n));
  if (!ok) {
    state.SkipWithError("the subscribers did not start");
    end();
    subs.finish();
    return;
  }
  const double self0 = self_cpu_ns();
  daq_bench::OpMeter meter;
  for (auto _ : state) {
    if (!send(next_frame(pool, ++n))) {
      state.SkipWithError("a frame did not reach every subscriber");
      break;
    }
  }
  meter.report(state);
  end();
  const double self = self_cpu_ns() - self0;
  const double others = subs.finish();
  if (others < 0) state.SkipWithError("a subscriber failed");
  const double frames = static_cast<double>(state.iterations());
  state.counters["cpu_us_per_frame"] = (self + others) / frames / 1e3;
  state.counters["producer_cpu_us"] = self / frames / 1e3;
  state.counters["subscribers_cpu_us"] = others / frames / 1e3;
  state.counters["frames_per_s"] = benchmark::Counter(frames, benchmark::Counter::kIsRate);
}

void BM_shm(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  shm_test::TempDir dir;
  daq_pool::BufferPool pool = shared_pool();
  daq_pool::shm::ServerOptions o;
  o.max_subscribers = 3;
  o.max_in_flight = 4;
  o.wait_when_full = true;  // lossless: every subscriber gets every frame
  o.wait_timeout = 30s;
  daq_pool::shm::Server server(pool, dir / "s.sock", o);
  Subscribers subs("shm", std::vector<std::string>(count, server.path()), state.range(1) != 0);
  const auto send = [&](const daq_pool::Bytes& frame) {
    if (server.subscribers() < count && !shm_test::wait_until([&] { return server.subscribers() == count; }))
      return false;
    return server.publish(frame) == count;
  };
  measure(state, pool, subs, send, [&] { server.stop(); });
}
BENCHMARK(BM_shm)
    ->ArgNames({"subscribers", "read_pages"})
    ->ArgsProduct({{1, 3}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

#if defined(DAQ_BENCH_ZMQ)
// Runs on ZeroMQ's I/O thread once it has written the message to the
// socket: drops the view that kept the pool buffer.
extern "C" void release_view(void* /*data*/, void* hint) { daq_pool::Bytes::release_raw(hint); }

void BM_zmq_ipc(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  shm_test::TempDir dir;
  daq_pool::BufferPool pool = shared_pool();  // the same buffers; only the transport differs
  void* ctx = zmq_ctx_new();
  std::vector<void*> pushes;
  std::vector<std::string> endpoints;
  for (std::size_t i = 0; i < count; ++i) {
    endpoints.push_back("ipc://" + (dir / ("sub-" + std::to_string(i) + ".ipc")));
    pushes.push_back(zmq_socket(ctx, ZMQ_PUSH));
    zmq_bind(pushes.back(), endpoints.back().c_str());
  }
  Subscribers subs("zmq", endpoints, state.range(1) != 0);
  // One message per subscriber, zero-copy on this side: each holds a view
  // of the pool buffer until ZeroMQ has sent it.
  const auto send = [&](const daq_pool::Bytes& frame) {
    for (void* push : pushes) {
      daq_pool::Bytes copy = frame;
      void* raw = std::move(copy).into_raw();
      zmq_msg_t msg;
      zmq_msg_init_data(&msg, const_cast<std::byte*>(frame.data()), frame.size(), release_view, raw);
      if (zmq_msg_send(&msg, push, 0) < 0) {
        zmq_msg_close(&msg);
        return false;
      }
    }
    return true;
  };
  const auto end = [&] {
    for (void* push : pushes) zmq_send(push, "", 0, 0);  // the end marker
    shm_test::wait_until([&] { return pool.available() == pool.size(); }, 30s);
  };
  measure(state, pool, subs, send, end);
  for (void* push : pushes) {
    const int linger = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(push);
  }
  zmq_ctx_term(ctx);
}
BENCHMARK(BM_zmq_ipc)
    ->ArgNames({"subscribers", "read_pages"})
    ->ArgsProduct({{1, 3}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
#endif

void BM_unix_socket(benchmark::State& state) {
  const auto count = static_cast<std::size_t>(state.range(0));
  shm_test::TempDir dir;
  daq_pool::BufferPool pool = shared_pool();
  const std::string path = dir / "unix.sock";
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::bind(listener, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::listen(listener, 8) != 0) {
    state.SkipWithError("bind/listen failed");
    return;
  }
  Subscribers subs("unix", std::vector<std::string>(count, path), state.range(1) != 0);
  std::vector<int> fds;
  const auto send = [&](const daq_pool::Bytes& frame) {
    while (fds.size() < count) fds.push_back(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    for (const int fd : fds) {
      std::size_t sent = 0;
      while (sent < frame.size()) {
        const ssize_t k = ::send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
        if (k <= 0) return false;
        sent += static_cast<std::size_t>(k);
      }
    }
    return true;
  };
  const auto end = [&] {
    for (const int fd : fds) ::close(fd);  // the end of the stream
    fds.clear();
  };
  measure(state, pool, subs, send, end);
  ::close(listener);
}
BENCHMARK(BM_unix_socket)
    ->ArgNames({"subscribers", "read_pages"})
    ->ArgsProduct({{1, 3}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
