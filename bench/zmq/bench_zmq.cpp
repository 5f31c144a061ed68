// zmq: 8 MiB frames over tcp://127.0.0.1, sender (this thread) and receiver
// (a second thread, its own ZeroMQ context) in one process:
//   zero_copy      pooled Bytes views sent with daq_pool::zmq::FrameSender
//                  (zmq_msg_init_data; the free function returns the buffer),
//                  sampled payload checksum (the default); _full_checksum and
//                  _no_checksum rows show what the checksum costs
//   zmq_send_copy  zmq_send of the same 8 MiB (ZeroMQ copies them into a new
//                  message it allocates), with the same 32-byte header part
//   tcp_send       a plain blocking send() loop of 8 MiB over a loopback TCP
//                  connection, recv() into one buffer: the ceiling here
//   zero_copy_curve  zero_copy with CURVE (daq_pool/zmq/curve.hpp): every
//                  message encrypted by the sender's I/O thread (libsodium's
//                  crypto_box: a copy into a new buffer plus the cipher) and
//                  decrypted by the receiver's; compare with zero_copy, run
//                  just before it in the same process
// Counters: send_cpu_us and recv_cpu_us, CPU time per frame of the sending
// side (this thread + the sender context's I/O thread, which makes the
// send() calls) and of the receiving side (receiver thread + its I/O thread);
// allocs/op for the whole process (both sides: see the README).
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/zmq.hpp>

#include "bench_support.hpp"

namespace daq_bench {
namespace {

namespace dz = daq_pool::zmq;

constexpr int hwm = 2;  // frames queued on each side: bounds what is in flight when the loop ends

/// CPU time (ns) thread `tid` of this process has used (schedstat's first field).
std::uint64_t thread_cpu_ns(long tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/schedstat");
  std::uint64_t ns = 0;
  f >> ns;
  return ns;
}

long current_tid() { return static_cast<long>(::syscall(SYS_gettid)); }

/// The id of this process's thread named `name` (libzmq names its threads
/// "<prefix>/ZMQbg/IO/0"), or -1.
long find_thread(const std::string& name) {
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return -1;
  long found = -1;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
    std::string n;
    std::getline(comm, n);
    if (n == name) found = std::strtol(e->d_name, nullptr, 10);
  }
  ::closedir(d);
  return found;
}

/// A context whose I/O thread is named "<prefix>/ZMQbg/IO/0", so that its
/// CPU time can be read.
struct NamedContext {
  explicit NamedContext(int prefix) {
    if (zmq_ctx_set(ctx.handle(), ZMQ_THREAD_NAME_PREFIX, prefix) != 0)
      throw std::runtime_error("ZMQ_THREAD_NAME_PREFIX");
    name = std::to_string(prefix) + "/ZMQbg/IO/0";
  }
  long io_thread() const { return find_thread(name); }  // started with the first socket
  dz::Context ctx;
  std::string name;
};

/// Sums CPU time of a set of threads between construction and per_frame().
class CpuMeter {
 public:
  explicit CpuMeter(std::vector<long> tids) : tids_(std::move(tids)) { start_ = now(); }
  double per_frame_us(double frames) const {
    return frames > 0 ? static_cast<double>(now() - start_) / 1e3 / frames : 0;
  }

 private:
  std::uint64_t now() const {
    std::uint64_t sum = 0;
    for (const long t : tids_)
      if (t > 0) sum += thread_cpu_ns(t);
    return sum;
  }
  std::vector<long> tids_;
  std::uint64_t start_ = 0;
};

/// The receiving end of the ZeroMQ cases: PULL on its own context and
/// thread, receiving and dropping whole messages.
class ZmqReceiver {
 public:
  /// With `curve` (client keys and the server's public key), a CURVE client.
  explicit ZmqReceiver(const dz::CurveKeyPair* client = nullptr, const std::string& server_public = {})
      : ctx_(2), pull_(ctx_.ctx, ZMQ_PULL) {
    pull_.set(ZMQ_RCVHWM, hwm);
    if (client != nullptr) dz::make_curve_client(pull_, *client, server_public);
    pull_.set(ZMQ_RCVTIMEO, 50);
    pull_.bind("tcp://127.0.0.1:*");
    endpoint_ = pull_.last_endpoint();
    thread_ = std::thread([this] {
      tid_.store(current_tid());
      dz::Message m;
      while (!stop_.load(std::memory_order_relaxed)) {
        if (zmq_msg_recv(m.get(), pull_.handle(), 0) < 0) continue;
        if (!m.more()) frames_.fetch_add(1, std::memory_order_relaxed);
      }
    });
    while (tid_.load() == 0) std::this_thread::yield();
  }
  ~ZmqReceiver() {
    stop_.store(true);
    thread_.join();
  }
  ZmqReceiver(const ZmqReceiver&) = delete;
  ZmqReceiver& operator=(const ZmqReceiver&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  std::uint64_t frames() const { return frames_.load(std::memory_order_relaxed); }
  std::vector<long> threads() const { return {tid_.load(), ctx_.io_thread()}; }

  /// Waits (bounded) until `n` frames arrived: what the loop left in flight.
  void drain(std::uint64_t n) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (frames() < n && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

 private:
  NamedContext ctx_;
  dz::Socket pull_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> frames_{0};
  std::atomic<long> tid_{0};
  std::thread thread_;
};

/// Runs `send_one()` per iteration over a PUSH socket to a ZmqReceiver.
/// With `curve`, the PUSH is a CURVE server whose ZAP handler admits the
/// receiver's key only.
template <class SendOne>
void zmq_case(benchmark::State& state, SendOne send_one, bool curve = false) {
  const dz::CurveKeyPair server = curve ? dz::generate_curve_key_pair() : dz::CurveKeyPair{};
  const dz::CurveKeyPair client = curve ? dz::generate_curve_key_pair() : dz::CurveKeyPair{};
  ZmqReceiver rx(curve ? &client : nullptr, server.public_key);
  NamedContext sctx(1);
  std::optional<dz::CurveAuthenticator> auth;
  if (curve) auth.emplace(sctx.ctx, std::vector<std::string>{client.public_key});
  dz::Socket push(sctx.ctx, ZMQ_PUSH, std::chrono::milliseconds(5000));
  push.set(ZMQ_SNDHWM, hwm);
  if (curve) dz::make_curve_server(push, server);
  push.connect(rx.endpoint());
  // One frame first: the connection is up and both I/O threads exist.
  send_one(push.handle());
  rx.drain(1);
  std::vector<long> sender_threads{current_tid(), sctx.io_thread()};
  CpuMeter send_cpu(sender_threads), recv_cpu(rx.threads());
  OpMeter meter;
  std::uint64_t sent = 1;
  for (auto _ : state) {
    send_one(push.handle());
    ++sent;
  }
  const double frames = static_cast<double>(state.iterations());
  state.counters["send_cpu_us"] = send_cpu.per_frame_us(frames);
  state.counters["recv_cpu_us"] = recv_cpu.per_frame_us(frames);
  meter.report(state);
  report_throughput(state, frames, static_cast<double>(frame_bytes));
  rx.drain(sent);
}

void zero_copy(benchmark::State& state, dz::Checksum kind, bool curve = false) {
  daq_pool::BufferPool pool(8, frame_bytes);
  dz::FrameSender* sender = nullptr;
  std::uint64_t number = 0;
  void* bound = nullptr;
  std::unique_ptr<dz::FrameSender> owned;
  zmq_case(state, [&](void* socket) {
    if (socket != bound) {
      owned = std::make_unique<dz::FrameSender>(socket, kind);
      sender = owned.get();
      bound = socket;
    }
    daq_pool::PooledBuffer b = pool.acquire();  // waits while libzmq holds all 8
    b.set_size(frame_bytes);
    daq_pool::Bytes v = std::move(b).freeze();
    if (!sender->send(v, number++).taken()) std::abort();
  }, curve);
}

void zmq_send_copy(benchmark::State& state) {
  static const PageBuffer src(frame_bytes, 0x5a);
  std::uint64_t number = 0;
  zmq_case(state, [&](void* socket) {
    dz::WireHeader h;
    h.frame_number = number++;
    h.payload_bytes = static_cast<std::uint32_t>(frame_bytes);
    h.checksum = dz::payload_checksum({src.data(), src.size()}, dz::Checksum::sampled);
    const auto header = dz::encode_header(h);
    if (zmq_send(socket, header.data(), header.size(), ZMQ_SNDMORE) < 0) std::abort();
    if (zmq_send(socket, src.data(), src.size(), 0) < 0) std::abort();  // copies into a new message
  });
}

/// A loopback TCP connection: the listening side accepted, the other connected.
struct TcpPair {
  int tx = -1, rx = -1;
  TcpPair() {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener, 1) != 0 || ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("tcp listen");
    tx = ::socket(AF_INET, SOCK_STREAM, 0);
    if (tx < 0 || ::connect(tx, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("tcp connect");
    rx = ::accept(listener, nullptr, nullptr);
    ::close(listener);
    if (rx < 0) throw std::runtime_error("tcp accept");
    // As libzmq does on its TCP sockets (tcp.cpp tune_tcp_socket).
    const int one = 1;
    ::setsockopt(tx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(rx, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~TcpPair() {
    ::close(tx);
    ::close(rx);
  }
  TcpPair(const TcpPair&) = delete;
  TcpPair& operator=(const TcpPair&) = delete;
};

void tcp_send(benchmark::State& state) {
  static const PageBuffer src(frame_bytes, 0x5a);
  TcpPair tcp;
  std::atomic<long> rx_tid{0};
  std::atomic<std::uint64_t> received{0};
  std::thread receiver([&] {
    rx_tid.store(current_tid());
    PageBuffer dst(frame_bytes);
    std::size_t have = 0;
    for (;;) {
      const ssize_t n = ::recv(tcp.rx, dst.data() + have, frame_bytes - have, 0);
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
      if (have == frame_bytes) {
        have = 0;
        received.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  while (rx_tid.load() == 0) std::this_thread::yield();
  const auto send_frame = [&] {
    std::size_t off = 0;
    while (off < frame_bytes) {
      const ssize_t n = ::send(tcp.tx, src.data() + off, frame_bytes - off, 0);
      if (n <= 0) std::abort();
      off += static_cast<std::size_t>(n);
    }
  };
  send_frame();
  CpuMeter send_cpu({current_tid()}), recv_cpu({rx_tid.load()});
  OpMeter meter;
  for (auto _ : state) send_frame();
  const double frames = static_cast<double>(state.iterations());
  state.counters["send_cpu_us"] = send_cpu.per_frame_us(frames);
  state.counters["recv_cpu_us"] = recv_cpu.per_frame_us(frames);
  meter.report(state);
  report_throughput(state, frames, static_cast<double>(frame_bytes));
  ::shutdown(tcp.tx, SHUT_WR);  // the receiver reads what is left, then sees the end
  receiver.join();
}

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("zmq/frame_8MiB/zero_copy", zero_copy, dz::Checksum::sampled, false)->UseRealTime();
  RegisterBenchmark("zmq/frame_8MiB/zero_copy_full_checksum", zero_copy, dz::Checksum::full, false)->UseRealTime();
  RegisterBenchmark("zmq/frame_8MiB/zero_copy_no_checksum", zero_copy, dz::Checksum::none, false)->UseRealTime();
  RegisterBenchmark("zmq/frame_8MiB/zmq_send_copy", zmq_send_copy)->UseRealTime();
  RegisterBenchmark("zmq/frame_8MiB/tcp_send", tcp_send)->UseRealTime();
  // CURVE's cost, against the plain zero_copy row measured right before it.
  RegisterBenchmark("zmq/frame_8MiB/zero_copy_plain", zero_copy, dz::Checksum::sampled, false)->UseRealTime();
  RegisterBenchmark("zmq/frame_8MiB/zero_copy_curve", zero_copy, dz::Checksum::sampled, true)->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace daq_bench
