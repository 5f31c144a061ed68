// A daq_pool::shm::Server driven line by line on stdin, for the Python
// package's tests (tests/python, python/tests/test_shm.py): they publish
// exactly the frames they want and read the server's own counters, so that
// "the server still counts this frame held" is the server's word, not the
// subscriber's.
//
//   py_shm_server PATH [FRAME_BYTES] [POOL] [MAX_IN_FLIGHT] [MAX_SUBSCRIBERS] [LAYOUT]
//
// LAYOUT: the frame layout the server states (ServerOptions::layout), as
// DTYPE:D0xD1x... (e.g. "<u2:32x64"); "-" or absent: none.
//
// Commands (one per line; each answered by one line on stdout):
//   publish N   publish N frames of the demo's pattern (frame_pattern.hpp),
//               numbered on from the last; a frame whose buffer is not free
//               within 1 s is not published. Answers the stats line.
//   stats       answers {"published":..,"sent":..,"skipped":..,"done":..,
//               "subscribers":..,"disconnected":..,"bad_messages":..,
//               "in_flight":[per connected subscriber],"pool_free":..}
//   quit        stops the server (as does end of input, or SIGTERM).
// Prints "ready" first, once listening.
#include "frame_pattern.hpp"

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/shm.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

namespace {

std::string stats_line(const daq_pool::shm::Server& server, const daq_pool::BufferPool& pool, std::uint64_t failed) {
  const daq_pool::shm::ServerStats s = server.stats();
  std::ostringstream out;
  out << "{\"published\":" << s.published << ",\"sent\":" << s.sent << ",\"skipped\":" << s.skipped
      << ",\"done\":" << s.released << ",\"subscribers\":" << s.subscribers << ",\"disconnected\":" << s.disconnected
      << ",\"bad_messages\":" << s.bad_releases << ",\"acquire_failed\":" << failed << ",\"in_flight\":[";
  bool first = true;
  for (std::size_t i = 0; i < server.options().max_subscribers; ++i) {
    const daq_pool::shm::SubscriberStats p = server.subscriber(i);
    if (!p.connected) continue;
    out << (first ? "" : ",") << p.in_flight;
    first = false;
  }
  out << "],\"pool_free\":" << pool.stats().available << "}";
  return out.str();
}

/// "<u2:32x64" -> dtype "<u2", shape {32, 64}. Throws std::invalid_argument.
daq_pool::FrameLayout parse_layout(const std::string& text) {
  daq_pool::FrameLayout l;
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) throw std::invalid_argument("LAYOUT '" + text + "': expected DTYPE:D0xD1...");
  l.dtype = text.substr(0, colon);
  std::istringstream dims(text.substr(colon + 1));
  std::string d;
  while (std::getline(dims, d, 'x')) {
    if (l.ndim == daq_pool::max_frame_dims) throw std::invalid_argument("LAYOUT '" + text + "': more than 4 dimensions");
    l.shape[l.ndim++] = std::stoull(d);
  }
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: py_shm_server PATH [FRAME_BYTES] [POOL] [MAX_IN_FLIGHT] [MAX_SUBSCRIBERS] [LAYOUT]\n");
    return 2;
  }
  const std::size_t frame_bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4096;
  const std::size_t pool_size = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 8;
  try {
    daq_pool::BufferPoolOptions o;
    o.shared_memory = true;
    daq_pool::BufferPool pool(pool_size, frame_bytes, o);
    daq_pool::shm::ServerOptions so;
    so.max_in_flight = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 4;
    // Protocol 2 sizes the pool for its subscribers (max_subscribers x
    // max_in_flight + producer_margin): one subscriber by default.
    so.max_subscribers = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 1;
    so.drain_timeout = std::chrono::milliseconds(200);
    if (argc > 6 && std::string(argv[6]) != "-") so.layout = parse_layout(argv[6]);
    daq_pool::shm::Server server(pool, argv[1], so);
    std::cout << "ready" << std::endl;
    std::uint64_t number = 0, failed = 0;
    std::string line;
    while (std::getline(std::cin, line)) {
      std::istringstream in(line);
      std::string command;
      in >> command;
      if (command == "quit") break;
      if (command == "publish") {
        std::uint64_t n = 0;
        in >> n;
        for (std::uint64_t i = 0; i < n; ++i) {
          std::optional<daq_pool::PooledBuffer> b = pool.try_acquire_for(std::chrono::seconds(1));
          if (!b) {
            ++failed;
            continue;
          }
          b->set_size(b->capacity());
          frame_pipeline::fill_frame(b->get_mut(), ++number);
          server.publish(std::move(*b).freeze());
        }
      } else if (command != "stats") {
        std::cout << "{\"error\":\"unknown command\"}" << std::endl;
        continue;
      }
      std::cout << stats_line(server, pool, failed) << std::endl;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "py_shm_server: %s\n", e.what());
    return 2;
  }
  return 0;
}
