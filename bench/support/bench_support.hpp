// What every daq_pool benchmark binary shares: per-operation counters for
// heap allocations and minor page faults, per-thread CPU time, an 8 MiB
// "SDK frame", and the sanitizer switch.
//
// The allocation counter itself (malloc + operator new interposed) lives in
// bench_main.cpp, the one translation unit that defines main().
#pragma once

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DAQ_BENCH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define DAQ_BENCH_SANITIZED 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define DAQ_BENCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DAQ_BENCH_TSAN 1
#endif
#endif

// FFmpeg and GStreamer are uninstrumented: under ThreadSanitizer their
// internal synchronisation is invisible and every hand-off through them
// would be reported as a race, so their baselines are left out there.
#if defined(DAQ_BENCH_HAVE_FFMPEG) && !defined(DAQ_BENCH_TSAN)
#define DAQ_BENCH_FFMPEG 1
#endif
#if defined(DAQ_BENCH_HAVE_GSTREAMER) && !defined(DAQ_BENCH_TSAN)
#define DAQ_BENCH_GSTREAMER 1
#endif

// moodycamel's ConcurrentQueue synchronises partly through
// std::atomic_thread_fence, which ThreadSanitizer does not model: it reports
// races inside the queue. Under TSan the moodycamel baseline is left out and
// the hand-off channel is a mutex + condition variable instead.
#if !defined(DAQ_BENCH_TSAN)
#define DAQ_BENCH_MOODYCAMEL 1
#endif

// The BufferPool / Bytes cases build once those headers exist.
#if __has_include(<daq_pool/buffer_pool.hpp>) && __has_include(<daq_pool/bytes.hpp>) && \
    __has_include(<daq_pool/pooled_buffer.hpp>)
#define DAQ_BENCH_BUFFER_POOL 1
#endif

namespace daq_bench {

inline constexpr std::size_t KiB = 1024;
inline constexpr std::size_t MiB = 1024 * KiB;
/// The frame size of every frame scenario: one 8 MiB camera frame.
inline constexpr std::size_t frame_bytes = 8 * MiB;
inline constexpr std::size_t page_bytes = 4096;

/// True when heap allocations are counted (not under a sanitizer, which owns
/// malloc). Defined in bench_main.cpp.
bool counting_allocations() noexcept;
/// Heap allocations (malloc family + operator new) by the whole process so far.
std::uint64_t allocations() noexcept;

/// Makes `value` observable (its address escapes into an empty asm with a
/// memory clobber), so the compiler can neither drop the work that produced
/// it nor keep it only in registers. Used instead of
/// benchmark::DoNotOptimize, whose "+m,r" constraint g++ has miscompiled
/// here (a pointer read back as garbage under -fsanitize=thread -O2).
template <class T>
inline void escape(T& value) noexcept {
  asm volatile("" : : "r"(&value) : "memory");
}

/// Minor page faults of the whole process so far.
inline std::uint64_t minor_faults() noexcept {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_minflt);
}

/// Voluntary context switches of the whole process so far: how often one of
/// its threads went to sleep (futex wait, blocking syscall).
inline std::uint64_t sleeps() noexcept {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_nvcsw);
}

/// CPU time consumed by the calling thread, in seconds.
inline double thread_cpu_seconds() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// Counts allocations, minor page faults and sleeps (voluntary context
/// switches) between its construction (just before the timed loop) and
/// report(), and publishes them per operation as the counters `allocs/op`,
/// `faults/op` and `sleeps/op` (allocs/op is -1 when allocations aren't
/// counted, i.e. under a sanitizer). Process-wide: other threads' work in the
/// window counts too, which is what a pipeline wants.
class OpMeter {
 public:
  OpMeter() noexcept : allocs0_(allocations()), faults0_(minor_faults()), sleeps0_(sleeps()) {}

  /// `ops`: operations done in the window (default: the loop's iterations).
  void report(benchmark::State& state, double ops = -1) const {
    if (ops < 0) ops = static_cast<double>(state.iterations());
    if (ops <= 0) ops = 1;
    const double allocs = static_cast<double>(allocations() - allocs0_);
    const double faults = static_cast<double>(minor_faults() - faults0_);
    state.counters["allocs/op"] = counting_allocations() ? allocs / ops : -1.0;
    state.counters["faults/op"] = faults / ops;
    state.counters["sleeps/op"] = static_cast<double>(sleeps() - sleeps0_) / ops;
  }

 private:
  std::uint64_t allocs0_;
  std::uint64_t faults0_;
  std::uint64_t sleeps0_;
};

/// Reports `items` items (and `bytes` bytes if non-zero) for the whole run,
/// so that Google Benchmark prints items/s and bytes/s.
inline void report_throughput(benchmark::State& state, double items, double bytes_per_item = 0) {
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  if (bytes_per_item > 0) state.SetBytesProcessed(static_cast<std::int64_t>(items * bytes_per_item));
}

/// Page-aligned, touched (so never page-faulting) memory for sources and
/// plain destinations. Not pooled: allocated once per benchmark run.
class PageBuffer {
 public:
  explicit PageBuffer(std::size_t bytes, unsigned char fill = 0x5a)
      : bytes_(bytes),
        data_(static_cast<std::byte*>(::operator new(bytes, std::align_val_t{page_bytes}))) {
    std::memset(data_.get(), fill, bytes);
  }
  std::byte* data() noexcept { return data_.get(); }
  const std::byte* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return bytes_; }

 private:
  struct Free {
    void operator()(std::byte* p) const noexcept { ::operator delete(p, std::align_val_t{page_bytes}); }
  };
  std::size_t bytes_;
  std::unique_ptr<std::byte, Free> data_;
};

/// What a consumer does with a frame in the pipeline: reads one byte per
/// page (as a writer that only looks at headers would, or a checksum of a
/// sparse sample). Returns their sum so the reads can't be optimised away.
inline std::uint64_t touch_pages(const std::byte* p, std::size_t bytes) noexcept {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < bytes; i += page_bytes) sum += static_cast<std::uint8_t>(p[i]);
  return sum;
}

}  // namespace daq_bench
