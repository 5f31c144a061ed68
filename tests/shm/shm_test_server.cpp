// A frame server process for test_shm_processes: publishes frames of the
// demo's pattern at PATH until it is killed (or SIGTERM, or 60 s).
//
//   shm_test_server PATH [FRAME_BYTES] [POOL] [MAX_IN_FLIGHT]
//
// Prints "ready" once listening, so the test knows when to connect.
#include "frame_pattern.hpp"

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/shm.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <thread>

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_term(int /*sig*/) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: shm_test_server PATH [FRAME_BYTES] [POOL] [MAX_IN_FLIGHT]\n");
    return 2;
  }
  const std::size_t frame_bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 64 * 1024;
  const std::size_t pool_size = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 12;
  std::signal(SIGTERM, on_term);
  try {
    daq_pool::BufferPoolOptions o;
    o.shared_memory = true;
    daq_pool::BufferPool pool(pool_size, frame_bytes, o);
    daq_pool::shm::ServerOptions so;
    so.max_in_flight = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 4;
    so.max_subscribers = 2;  // the pool must cover 2 x max_in_flight + the producer's margin
    daq_pool::shm::Server server(pool, argv[1], so);
    std::printf("ready\n");
    std::fflush(stdout);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (std::uint64_t n = 1; !g_stop.load() && std::chrono::steady_clock::now() < end; ++n) {
      std::optional<daq_pool::PooledBuffer> b = pool.try_acquire_for(std::chrono::milliseconds(100));
      if (!b) continue;
      b->set_size(b->capacity());
      frame_pipeline::fill_frame(b->get_mut(), n);
      server.publish(std::move(*b).freeze());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shm_test_server: %s\n", e.what());
    return 2;
  }
  return 0;
}
