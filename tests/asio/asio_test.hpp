// Shared pieces of the asio tests: the asio headers they use, io_context
// runner threads, and a small check that a handler runs where it should.
#pragma once

#include <daq_pool/asio.hpp>
#include <daq_pool/daq_pool.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <thread>
#include <vector>

namespace asio_test {

using namespace std::chrono_literals;
using daq_pool::Loaned;
using daq_pool::Pool;
using error_code = daq_pool::asio_error_code;

/// Runs an io_context on `n` threads until stop() (or until it runs out of
/// work, if `keep_alive` is false), joining them in stop() / the destructor.
class Runner {
 public:
  explicit Runner(asio::io_context& io, std::size_t n = 1, bool keep_alive = true) : io_(io) {
    if (keep_alive) work_.emplace(io.get_executor());
    for (std::size_t i = 0; i < n; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;
  ~Runner() { stop(); }

  /// Lets the io_context run out of work, then joins its threads.
  void finish() {
    work_.reset();
    join();
  }
  /// Stops the io_context now and joins its threads.
  void stop() {
    work_.reset();
    io_.stop();
    join();
  }
  /// True if the calling thread is one of the runner's.
  bool is_runner_thread() const {
    for (const auto& t : threads_)
      if (t.get_id() == std::this_thread::get_id()) return true;
    return false;
  }

 private:
  void join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  asio::io_context& io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

/// Spins (yielding) until `done()` or `limit` passes; true if done.
template <class Done>
bool wait_for(Done done, std::chrono::seconds limit = 30s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

}  // namespace asio_test
