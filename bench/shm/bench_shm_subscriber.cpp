// The subscriber process of bench_shm: receives 8 MiB frames over one of
// the three transports and reads the same bytes of each (the frame number,
// and with "pages" one word per 4 KiB page too), so that every transport's
// consumer does the same work and the difference is the transport's.
//
//   bench_shm_subscriber shm PATH      daq_pool::shm::Subscriber (views of the server's memory)
//   bench_shm_subscriber zmq ENDPOINT  ZeroMQ PULL socket (ipc://), a message per frame
//   bench_shm_subscriber unix PATH     a Unix stream socket, the frame's bytes read into a buffer
//
// Prints "ready" once connected and runs until the stream ends (server
// gone, an empty ZeroMQ message, or the Unix socket closed); then prints its
// CPU time from the first frame after WARMUP_FRAMES to the end ("cpu_ns").
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <daq_pool/shm.hpp>
#if defined(DAQ_BENCH_HAVE_ZMQ)
#include <zmq.h>
#endif

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

std::uint64_t g_sum = 0;  // what the reads produce: printed, so they can't be optimized away
std::uint64_t g_warmup = 0;
bool g_read_pages = true;  // read one word per page, or only the frame number
double g_cpu_start = -1;   // CPU time when the first measured frame arrived

double process_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

/// Reads one word per page. Frames carry their number in the first 8
/// bytes: the measured window starts with the first frame after the
/// warm-up (this process's CPU from there to the end is what it reports).
void consume(std::span<const std::byte> frame) {
  std::uint64_t number = 0;
  if (frame.size() >= 8) std::memcpy(&number, frame.data(), 8);
  if (number == g_warmup + 1 && g_cpu_start < 0) g_cpu_start = process_cpu_ns();
  std::uint64_t sum = number;
  for (std::size_t at = 0; g_read_pages && at + 8 <= frame.size(); at += 4096) {
    std::uint64_t w = 0;
    std::memcpy(&w, frame.data() + at, 8);
    sum += w;
  }
  g_sum += sum;
}

int run_shm(const std::string& path) {
  daq_pool::shm::Subscriber sub(path, std::chrono::seconds(30));
  std::printf("ready\n");
  std::fflush(stdout);
  while (std::optional<daq_pool::shm::Frame> f = sub.receive()) consume(f->bytes.span());
  return 0;
}

#if defined(DAQ_BENCH_HAVE_ZMQ)
int run_zmq(const std::string& endpoint) {
  void* ctx = zmq_ctx_new();
  void* pull = zmq_socket(ctx, ZMQ_PULL);
  if (zmq_connect(pull, endpoint.c_str()) != 0) return 2;
  std::printf("ready\n");
  std::fflush(stdout);
  zmq_msg_t msg;
  zmq_msg_init(&msg);
  for (;;) {
    if (zmq_msg_recv(&msg, pull, 0) < 0) break;
    const std::size_t n = zmq_msg_size(&msg);
    if (n == 0) break;  // the end marker
    consume({static_cast<const std::byte*>(zmq_msg_data(&msg)), n});
  }
  zmq_msg_close(&msg);
  const int linger = 0;
  zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger);
  zmq_close(pull);
  zmq_ctx_term(ctx);
  return 0;
}
#endif

int run_unix(const std::string& path, std::size_t frame_bytes) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return 2;
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<std::byte> frame(frame_bytes, std::byte{1});  // touched: no page faults while measuring
  for (;;) {
    std::size_t got = 0;
    while (got < frame.size()) {
      const ssize_t n = ::recv(fd, frame.data() + got, frame.size() - got, MSG_WAITALL);
      if (n <= 0) {
        ::close(fd);
        return 0;  // the producer closed: the end
      }
      got += static_cast<std::size_t>(n);
    }
    consume(frame);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench_shm_subscriber shm|zmq|unix ENDPOINT [FRAME_BYTES [WARMUP_FRAMES [pages|header]]]\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::size_t frame_bytes = argc > 3 ? std::stoull(argv[3]) : std::size_t{8} << 20;
  g_warmup = argc > 4 ? std::stoull(argv[4]) : 0;
  g_read_pages = argc > 5 ? std::string(argv[5]) == "pages" : true;
  try {
    int rc = 2;
    if (mode == "shm") rc = run_shm(argv[2]);
#if defined(DAQ_BENCH_HAVE_ZMQ)
    if (mode == "zmq") rc = run_zmq(argv[2]);
#endif
    if (mode == "unix") rc = run_unix(argv[2], frame_bytes);
    const double cpu = g_cpu_start < 0 ? 0.0 : process_cpu_ns() - g_cpu_start;
    std::printf("{\"sum\": %llu, \"cpu_ns\": %.0f}\n", static_cast<unsigned long long>(g_sum), cpu);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_shm_subscriber: %s\n", e.what());
    return 2;
  }
}
