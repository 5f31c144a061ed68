// broadcast: one producer thread publishes each frame (a frozen BufferPool
// buffer, as a Bytes view) to 1 or 3 consumer threads, which drop their
// views (the buffer returns to the pool when the last one goes). The fan-out
// is, in turn:
//   - daq_pool::Broadcast, every subscriber OnFull::block (lossless);
//   - one moodycamel::BlockingConcurrentQueue<Bytes> per consumer;
//   - one mutex + two condition variables queue per consumer (the
//     frame-pipeline demo's former BoundedQueue, support/mutex_queue.hpp);
//   - the floor: one atomic_queue SPSC ring per consumer, the consumers
//     spinning on it (no sleeping, no waking: what a hand-off costs at best).
// Each queue holds 32 frames; the pool has 16 buffers, so the pool (its
// acquire) is the producer's backpressure in every variant, never a full
// queue. Frames of 64 B and 8 MiB (a view costs the same; the buffers'
// memory differs). Reported: frames/s (items_per_second), ns per frame per
// consumer, and the publish-to-receive latency (p50, p99 in ns: the
// producer stamps steady_clock into the frame, each consumer reads it).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <daq_pool/broadcast.hpp>
#include <daq_pool/buffer_pool.hpp>

#include "baselines.hpp"
#include "bench_support.hpp"
#include "mutex_queue.hpp"

namespace daq_bench {
namespace {

using daq_pool::Bytes;

constexpr std::size_t queue_capacity = 32;
constexpr std::size_t fanout_pool_size = 16;

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- the fan-outs: publish(view) to every consumer; receive(i, out) ------
// receive blocks until a view arrives; an empty view is the end.

struct BroadcastFanout {
  daq_pool::Broadcast channel{4};
  std::vector<daq_pool::Subscriber> subs;
  explicit BroadcastFanout(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      daq_pool::SubscriberOptions o;
      o.on_full = daq_pool::OnFull::block;
      o.capacity = queue_capacity;
      subs.push_back(channel.subscribe(o));
    }
  }
  void publish(const Bytes& v) { channel.publish(v); }
  bool receive(std::size_t i, Bytes& out) {
    std::optional<daq_pool::Received> r = subs[i].receive();
    if (!r) return false;
    out = std::move(*r).take();
    return true;
  }
  void close() { channel.close(); }
};

#if defined(DAQ_BENCH_MOODYCAMEL)
struct MoodycamelFanout {
  std::vector<std::unique_ptr<moodycamel::BlockingConcurrentQueue<Bytes>>> queues;
  explicit MoodycamelFanout(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      queues.push_back(std::make_unique<moodycamel::BlockingConcurrentQueue<Bytes>>(queue_capacity));
  }
  void publish(const Bytes& v) {
    for (auto& q : queues) q->enqueue(Bytes(v));
  }
  bool receive(std::size_t i, Bytes& out) {
    queues[i]->wait_dequeue(out);
    return !out.empty();
  }
  void close() {
    for (auto& q : queues) q->enqueue(Bytes());
  }
};
#endif

struct MutexFanout {
  std::vector<std::unique_ptr<BoundedQueue<Bytes>>> queues;
  explicit MutexFanout(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) queues.push_back(std::make_unique<BoundedQueue<Bytes>>(queue_capacity));
  }
  void publish(const Bytes& v) {
    for (auto& q : queues) {
      Bytes copy = v;
      q->push(copy);
    }
  }
  bool receive(std::size_t i, Bytes& out) { return queues[i]->pop(out); }
  void close() {
    for (auto& q : queues) q->close();
  }
};

#if defined(DAQ_BENCH_ATOMIC_QUEUE)
struct FloorFanout {
  // SPSC, fixed capacity, spinning push and pop.
  using Queue = atomic_queue::AtomicQueue2<Bytes, queue_capacity, true, true, false, true>;
  std::vector<std::unique_ptr<Queue>> queues;
  explicit FloorFanout(std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) queues.push_back(std::make_unique<Queue>());
  }
  void publish(const Bytes& v) {
    for (auto& q : queues) q->push(Bytes(v));
  }
  bool receive(std::size_t i, Bytes& out) {
    out = queues[i]->pop();  // spins while empty
    return !out.empty();
  }
  void close() {
    for (auto& q : queues) q->push(Bytes());
  }
};
#endif

/// The p-quantile of `v` (sorted in place).
std::int64_t quantile(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

template <class Fanout>
void run_fanout(benchmark::State& state, std::size_t consumers, std::size_t bytes) {
  daq_pool::BufferPool pool(fanout_pool_size, bytes);
  Fanout fanout(consumers);
  constexpr std::size_t max_samples = 1 << 20;
  std::vector<std::vector<std::int64_t>> latency(consumers);
  for (auto& l : latency) l.reserve(max_samples);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < consumers; ++i) {
    threads.emplace_back([&, i] {
      Bytes v;
      while (fanout.receive(i, v)) {
        std::int64_t stamp = 0;
        std::memcpy(&stamp, v.data(), sizeof stamp);
        if (latency[i].size() < max_samples) latency[i].push_back(now_ns() - stamp);
        v.reset();
      }
    });
  }
  OpMeter meter;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    daq_pool::PooledBuffer b = pool.acquire();
    b.set_size(bytes);
    const std::int64_t stamp = now_ns();
    std::memcpy(b.data(), &stamp, sizeof stamp);
    fanout.publish(std::move(b).freeze());
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fanout.close();
  for (auto& t : threads) t.join();
  meter.report(state);
  report_throughput(state, static_cast<double>(state.iterations()));
  const double frames = static_cast<double>(state.iterations());
  state.counters["ns_per_frame_per_consumer"] =
      frames > 0 ? wall * 1e9 / (frames * static_cast<double>(consumers)) : 0.0;
  std::vector<std::int64_t> all;
  for (auto& l : latency) all.insert(all.end(), l.begin(), l.end());
  state.counters["latency_p50_ns"] = static_cast<double>(quantile(all, 0.50));
  state.counters["latency_p99_ns"] = static_cast<double>(quantile(all, 0.99));
}

void register_case(std::size_t consumers, const char* size_name, std::size_t bytes) {
  // broadcast/<consumers>_consumers_<size>/<fan-out>: bench/report.py groups
  // the rows of one case by the middle part and takes ratios within it.
  const std::string prefix = "broadcast/" + std::to_string(consumers) + "_consumers_" + size_name + "/";
  auto reg = [&](const char* impl, auto fn) {
    benchmark::RegisterBenchmark((prefix + impl).c_str(), fn)->UseRealTime();
  };
  reg("Broadcast", [=](benchmark::State& s) { run_fanout<BroadcastFanout>(s, consumers, bytes); });
#if defined(DAQ_BENCH_MOODYCAMEL)
  reg("moodycamel_per_consumer", [=](benchmark::State& s) { run_fanout<MoodycamelFanout>(s, consumers, bytes); });
#endif
  reg("mutex_condvar_per_consumer", [=](benchmark::State& s) { run_fanout<MutexFanout>(s, consumers, bytes); });
#if defined(DAQ_BENCH_ATOMIC_QUEUE)
  reg("floor_atomic_queue_spsc_spin", [=](benchmark::State& s) { run_fanout<FloorFanout>(s, consumers, bytes); });
#endif
}

const bool registered = [] {
  for (const std::size_t consumers : {std::size_t{1}, std::size_t{3}}) {
    register_case(consumers, "64B", 64);
    register_case(consumers, "8MiB", std::size_t{8} << 20);
  }
  return true;
}();

}  // namespace
}  // namespace daq_bench
