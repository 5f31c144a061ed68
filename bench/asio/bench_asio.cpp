// asio hand-off (issue 15): a producer coroutine acquires a 64-byte item from
// a pool of 8 and sends it through an asio channel to a consumer coroutine,
// which drops it (returning it to the pool); one io_context, 2 threads.
// Beside it, in the same run:
//  - the idiomatic asio pool: the free slots are tokens in an
//    asio::experimental::concurrent_channel (acquire = async_receive a
//    token, release = try_send it back);
//  - the blocking hand-off: a producer thread blocks in Pool::acquire() and
//    passes the loan through the threads' channel to a consumer thread (the
//    handoff scenario's daq_pool row).
// One benchmark iteration moves `batch` items; items/s counts items. The
// batch protocol (the main thread's order to the producer, over a buffered
// asio channel) allocates a few blocks per batch, ~0.003 per item; the
// hand-off loop itself allocates nothing (tests/asio/test_asio_zero_alloc).
#include <benchmark/benchmark.h>

#include <daq_pool/asio.hpp>
#include <daq_pool/daq_pool.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "baselines.hpp"
#include "bench_support.hpp"

namespace daq_bench {
namespace {

constexpr std::size_t pool_size = 8;
constexpr std::uint64_t batch = 10000;
using Item = std::array<std::byte, 64>;
using error_code = daq_pool::asio_error_code;
template <class Signature>
using AsioChannel = asio::experimental::concurrent_channel<Signature>;
using asio::experimental::as_tuple;

/// An io_context run by `threads` threads for one benchmark, and the batch
/// protocol: the main thread asks the producer for `batch` more items and
/// sleeps until the consumer has dropped them all.
class Rig {
 public:
  explicit Rig(std::size_t threads = 2) : work_(io.get_executor()) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { io.run(); });
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;
  ~Rig() {
    requests.close();
    work_.reset();
    for (auto& t : threads_) t.join();
  }

  /// Main thread: one batch, start to end.
  void run_batch() {
    target_ += batch;
    requests.try_send(error_code{}, batch);
    std::uint64_t seen = consumed.load(std::memory_order_acquire);
    while (seen < target_) {
      consumed.wait(seen, std::memory_order_acquire);
      seen = consumed.load(std::memory_order_acquire);
    }
  }
  /// Consumer: one item dropped.
  void dropped() {
    const std::uint64_t n = consumed.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (n % batch == 0) consumed.notify_one();
  }

  asio::io_context io;
  // Buffered (one request at a time): the producer's orders.
  AsioChannel<void(error_code, std::uint64_t)> requests{io, 1};
  std::atomic<std::uint64_t> consumed{0};

 private:
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
  std::uint64_t target_ = 0;
};

/// Runs producer -> channel -> consumer coroutines for the benchmark's
/// batches. `Pool` gives `acquire()` (an awaitable) and `wrap(result)` (the
/// handle that releases when destroyed).
template <class Pool>
void run_async(benchmark::State& state, Rig& rig, Pool& pool) {
  using Handle = decltype(pool.wrap(std::declval<typename decltype(pool.acquire())::value_type>()));
  // Unbuffered: a buffered asio channel keeps its values in a std::deque,
  // which allocates as it cycles; the rendezvous costs the same in every row.
  AsioChannel<void(error_code, Handle)> items(rig.io, 0);
  std::atomic<int> finished{0};
  asio::co_spawn(
      rig.io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto [ec, n] = co_await rig.requests.async_receive(as_tuple(asio::use_awaitable));
          if (ec) break;
          for (std::uint64_t i = 0; i < n; ++i) {
            Handle h = pool.wrap(co_await pool.acquire());
            co_await items.async_send(error_code{}, std::move(h), asio::use_awaitable);
          }
        }
        items.close();
      },
      [&](std::exception_ptr) {
        finished.fetch_add(1);
        finished.notify_one();
      });
  asio::co_spawn(
      rig.io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto [ec, h] = co_await items.async_receive(as_tuple(asio::use_awaitable));
          if (ec) break;
          h = Handle{};  // released here, by the consumer
          rig.dropped();
        }
      },
      [&](std::exception_ptr) {
        finished.fetch_add(1);
        finished.notify_one();
      });
  rig.run_batch();  // warm-up: coroutine frames, operation states, caches
  OpMeter meter;
  for (auto _ : state) rig.run_batch();
  meter.report(state, static_cast<double>(state.iterations() * batch));
  report_throughput(state, static_cast<double>(state.iterations() * batch));
  // Both coroutines end before `items` goes.
  rig.requests.close();
  for (int f = finished.load(); f < 2; f = finished.load()) finished.wait(f);
}

/// daq_pool::async_acquire behind run_async's interface.
struct DaqAsyncPool {
  auto acquire() { return daq_pool::async_acquire(pool, asio::use_awaitable); }
  static daq_pool::Loaned<Item> wrap(daq_pool::Loaned<Item>&& l) noexcept { return std::move(l); }
  daq_pool::Pool<Item> pool{pool_size, [] { return Item{}; }};
};

void async_daq_pool(benchmark::State& state) {
  Rig rig;
  DaqAsyncPool pool;
  run_async(state, rig, pool);
}

/// The idiomatic asio pool: free slots are tokens (item indices) in a
/// concurrent_channel of capacity pool_size.
class ChannelPool {
 public:
  class Handle {
   public:
    Handle() noexcept = default;
    Handle(ChannelPool* p, std::size_t i) noexcept : pool_(p), index_(i) {}
    Handle(Handle&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), index_(o.index_) {}
    Handle& operator=(Handle&& o) noexcept {
      if (this != &o) {
        reset();
        pool_ = std::exchange(o.pool_, nullptr);
        index_ = o.index_;
      }
      return *this;
    }
    ~Handle() { reset(); }
    Item& get() noexcept { return pool_->items_[index_]; }
    void reset() noexcept {
      // Never fails: at most pool_size tokens exist.
      if (pool_ != nullptr) std::exchange(pool_, nullptr)->free_.try_send(error_code{}, index_);
    }

   private:
    ChannelPool* pool_ = nullptr;
    std::size_t index_ = 0;
  };

  explicit ChannelPool(asio::io_context& io) : free_(io, pool_size) {
    for (std::size_t i = 0; i < pool_size; ++i) free_.try_send(error_code{}, i);
  }
  auto acquire() { return free_.async_receive(asio::use_awaitable); }
  Handle wrap(std::size_t index) noexcept { return Handle(this, index); }

 private:
  std::array<Item, pool_size> items_{};
  AsioChannel<void(error_code, std::size_t)> free_;
};

void async_channel_pool(benchmark::State& state) {
  Rig rig;
  ChannelPool pool(rig.io);
  run_async(state, rig, pool);
}

/// No pool at all: the producer sends an item it did not acquire. The cost of
/// the coroutines and the channel between them, which every row above pays:
/// the floor under any pool.
struct NoPool {
  struct Token {};
  /// A co_await that completes without suspending (no scheduler involved).
  static asio::awaitable<int> acquire() { co_return 0; }
  static Token wrap(int) noexcept { return Token{}; }
};

void async_no_pool(benchmark::State& state) {
  Rig rig;
  NoPool pool;
  run_async(state, rig, pool);
}

/// The blocking hand-off between two threads, for scale.
void blocking_daq_pool(benchmark::State& state) {
  daq_pool::Pool<Item> pool(pool_size, [] { return Item{}; });
  daq_bench::Channel<daq_pool::Loaned<Item>> channel(64);
  std::thread consumer([&] {
    for (;;) {
      daq_pool::Loaned<Item> h = channel.pop();
      if (is_end(h)) break;
    }
  });
  OpMeter meter;
  for (auto _ : state)
    for (std::uint64_t i = 0; i < batch; ++i) channel.push(pool.acquire());
  channel.push(daq_pool::Loaned<Item>{});
  consumer.join();
  meter.report(state, static_cast<double>(state.iterations() * batch));
  report_throughput(state, static_cast<double>(state.iterations() * batch));
}

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("asio/item_64B/daq_pool", async_daq_pool)->UseRealTime();
  RegisterBenchmark("asio/item_64B/asio_channel_pool", async_channel_pool)->UseRealTime();
  RegisterBenchmark("asio/item_64B/blocking_daq_pool", blocking_daq_pool)->UseRealTime();
  RegisterBenchmark("asio/item_64B/no_pool_floor", async_no_pool)->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace daq_bench
