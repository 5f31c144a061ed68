// access: reading a pooled item through its handle costs what reading it
// through a raw pointer costs (the handle caches the item's address: no
// lock, no lookup). The ratio must be ~1.00.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "baselines.hpp"
#include "bench_support.hpp"

#if defined(DAQ_BENCH_BUFFER_POOL)
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/bytes.hpp>
#include <daq_pool/pooled_buffer.hpp>
#endif

namespace daq_bench {
namespace {

constexpr std::size_t item_bytes = 64 * KiB;  // L2-resident: the access path, not DRAM, is timed
constexpr std::size_t words = item_bytes / sizeof(std::uint64_t);

using Words = std::vector<std::uint64_t>;

template <class Body>
void run(benchmark::State& state, Body&& body) {
  OpMeter meter;
  for (auto _ : state) {
    std::uint64_t sum = body();
    escape(sum);
  }
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()), item_bytes);
}

Words make_words() {
  Words w(words);
  std::iota(w.begin(), w.end(), std::uint64_t{1});
  return w;
}

void loaned_sum(benchmark::State& state) {
  daq_pool::Pool<Words> pool(2, make_words);
  auto loan = pool.acquire();
  run(state, [&] {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < words; ++i) sum += (*loan)[i];
    return sum;
  });
}

void raw_words_sum(benchmark::State& state) {
  daq_pool::Pool<Words> pool(2, make_words);
  auto loan = pool.acquire();
  const std::uint64_t* p = loan->data();
  run(state, [p] {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < words; ++i) sum += p[i];
    return sum;
  });
}

#if defined(DAQ_BENCH_BUFFER_POOL)
daq_pool::Bytes filled_view(daq_pool::BufferPool& pool) {
  daq_pool::PooledBuffer buffer = pool.acquire();
  auto span = buffer.get_mut();
  for (std::size_t i = 0; i < item_bytes; ++i) span[i] = static_cast<std::byte>(i * 7);
  buffer.set_size(item_bytes);
  return std::move(buffer).freeze();
}

void bytes_sum(benchmark::State& state) {
  daq_pool::BufferPool pool(2, item_bytes);
  const daq_pool::Bytes view = filled_view(pool);
  run(state, [&] {
    std::uint64_t sum = 0;
    for (std::byte b : view) sum += static_cast<std::uint8_t>(b);
    return sum;
  });
}

void raw_bytes_sum(benchmark::State& state) {
  daq_pool::BufferPool pool(2, item_bytes);
  const daq_pool::Bytes view = filled_view(pool);
  const auto* p = reinterpret_cast<const std::uint8_t*>(view.data());
  run(state, [p] {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < item_bytes; ++i) sum += p[i];
    return sum;
  });
}
#endif

const bool registered = [] {
  using benchmark::RegisterBenchmark;
  RegisterBenchmark("access/sum_u64_64KiB/Loaned", loaned_sum);
  RegisterBenchmark("access/sum_u64_64KiB/raw_pointer", raw_words_sum);
#if defined(DAQ_BENCH_BUFFER_POOL)
  RegisterBenchmark("access/sum_bytes_64KiB/Bytes", bytes_sum);
  RegisterBenchmark("access/sum_bytes_64KiB/raw_pointer", raw_bytes_sum);
#endif
  return true;
}();

}  // namespace
}  // namespace daq_bench
