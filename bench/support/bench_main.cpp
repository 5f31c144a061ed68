// main() of every benchmark binary, and the process-wide allocation counter
// (malloc and operator new interposed; see tests/support/alloc_counter.hpp).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <thread>

#include "alloc_counter.hpp"
#include "bench_support.hpp"

#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define DAQ_BENCH_HAS_SINGLE_THREADED 1
#endif

namespace daq_bench {

bool counting_allocations() noexcept { return alloc_counter::enabled; }
std::uint64_t allocations() noexcept { return alloc_counter::total(); }

namespace {

/// Starts one thread and joins it before any benchmark runs. glibc takes
/// single-thread shortcuts until a process first creates a thread (locks
/// without atomics, a non-atomic shared_ptr count); a camera application is
/// never single-threaded, so neither is any measurement here.
void leave_single_threaded_mode() {
  std::thread([] {}).join();
}

std::string compiler_name() {
#if defined(__clang__)
  return "clang++ " __clang_version__;
#elif defined(__GNUC__)
  return "g++ " __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace
}  // namespace daq_bench

int main(int argc, char** argv) {
  daq_bench::leave_single_threaded_mode();
#if defined(DAQ_BENCH_HAS_SINGLE_THREADED)
  benchmark::AddCustomContext("libc_single_threaded", __libc_single_threaded ? "yes" : "no");
#endif
  benchmark::AddCustomContext("compiler", daq_bench::compiler_name());
  benchmark::AddCustomContext("allocation_counting", daq_bench::counting_allocations() ? "on" : "off (sanitizer)");
#if defined(DAQ_BENCH_SANITIZED)
  benchmark::AddCustomContext("sanitizer", "yes: timings are meaningless");
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
