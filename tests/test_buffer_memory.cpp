// Buffer memory: alignment as asked, buffers that never overlap, the custom
// allocator called once per buffer and released at the end, prefaulting
// (counted in minor page faults), huge pages as a harmless hint.
#include <daq_pool/buffer_pool.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"

using daq_pool::BufferPool;
using daq_pool::BufferPoolOptions;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

namespace {

std::vector<PooledBuffer> take_all(BufferPool& pool) {
  std::vector<PooledBuffer> all;
  while (auto b = pool.try_acquire()) all.push_back(std::move(*b));
  return all;
}

/// Every buffer's [data, data + capacity) is disjoint from the others'.
bool disjoint(std::vector<PooledBuffer>& all) {
  std::vector<const std::byte*> starts;
  for (auto& b : all) starts.push_back(b.data());
  std::sort(starts.begin(), starts.end());
  for (std::size_t i = 1; i < starts.size(); ++i) {
    if (static_cast<std::size_t>(starts[i] - starts[i - 1]) < all[0].capacity()) return false;
  }
  return true;
}

long minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

/// Minor faults taken by writing every byte of every buffer once.
long faults_of_first_pass(BufferPool& pool) {
  std::vector<PooledBuffer> all = take_all(pool);  // allocates the vector before counting
  const long before = minor_faults();
  for (auto& b : all) std::memset(b.get_mut().data(), 0x3C, b.capacity());
  const long after = minor_faults();
  for (auto& b : all) REQUIRE(b.data()[b.capacity() - 1] == std::byte{0x3C});
  return after - before;
}

bool thp_always() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s.find("[always]") != std::string::npos;
}

struct RecordingAllocator {
  std::map<void*, std::size_t> live;  // pointer -> bytes (construction and the end are single-threaded here)
  int allocations = 0;
  int deallocations = 0;
  int bad_deallocations = 0;
  std::size_t alignment_seen = 0;

  BufferPoolOptions options(std::size_t alignment) {
    BufferPoolOptions o;
    o.alignment = alignment;
    o.allocate = [this](std::size_t bytes, std::size_t align) {
      ++allocations;
      alignment_seen = align;
      void* p = ::operator new (bytes, std::align_val_t{align});
      live[p] = bytes;
      return p;
    };
    o.deallocate = [this](void* p, std::size_t bytes, std::size_t align) {
      ++deallocations;
      auto it = live.find(p);
      if (it == live.end() || it->second != bytes || align != alignment_seen) {
        ++bad_deallocations;
        return;
      }
      live.erase(it);
      ::operator delete (p, std::align_val_t{align});
    };
    return o;
  }
};

}  // namespace

TEST_CASE("buffers are aligned as asked and never overlap") {
  for (std::size_t alignment :
       {std::size_t{1}, std::size_t{8}, std::size_t{64}, std::size_t{4096}, std::size_t{65536}, std::size_t{1} << 21}) {
    for (std::size_t capacity : {std::size_t{1}, std::size_t{100}, std::size_t{4096}, std::size_t{5000}}) {
      INFO("alignment " << alignment << ", capacity " << capacity);
      BufferPoolOptions opt;
      opt.alignment = alignment;
      BufferPool pool(5, capacity, opt);
      auto all = take_all(pool);
      REQUIRE(all.size() == 5);
      for (auto& b : all) {
        CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % alignment == 0);
        // Never two buffers on one cache line: no false sharing between the
        // threads that fill them.
        CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 64 == 0);
        std::memset(b.get_mut().data(), 1, capacity);  // ASan: all of it is ours
      }
      CHECK(disjoint(all));
    }
  }
}

TEST_CASE("a custom allocator is called for every buffer and all are released at the end") {
  RecordingAllocator rec;
  {
    BufferPool pool(6, 3000, rec.options(256));
    CHECK(rec.allocations == 6);
    CHECK(rec.alignment_seen == 256);
    CHECK(pool.stats().bytes_reserved == 6 * 3000);
    auto all = take_all(pool);
    for (auto& b : all) {
      CHECK(rec.live.count(b.data()) == 1);  // the pool uses the allocator's memory
      CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 256 == 0);
    }
    CHECK(disjoint(all));
    // Cycles allocate nothing more.
    all.clear();
    for (int i = 0; i < 100; ++i) {
      PooledBuffer b = pool.acquire();
      b.set_size(10);
      Bytes v = std::move(b).freeze();
    }
    CHECK(rec.allocations == 6);
    CHECK(rec.deallocations == 0);
  }
  CHECK(rec.deallocations == 6);
  CHECK(rec.bad_deallocations == 0);
  CHECK(rec.live.empty());
}

TEST_CASE("prefault maps every page at construction; without it the first pass faults once per page") {
#if defined(__SANITIZE_THREAD__)
  WARN("skipped under TSan: its shadow memory faults on every first access");
  return;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  WARN("skipped under TSan: its shadow memory faults on every first access");
  return;
#endif
#endif
  constexpr std::size_t buffers = 4;
  constexpr std::size_t capacity = std::size_t{4} << 20;  // 16 MiB in all
  const long pages = static_cast<long>(buffers * capacity / 4096);

  BufferPoolOptions on;  // prefault is the default
  BufferPool warm(buffers, capacity, on);
  const long warm_faults = faults_of_first_pass(warm);
  INFO("pages " << pages << ", faults with prefault " << warm_faults);
  CHECK(warm_faults < pages / 16);

  BufferPoolOptions off;
  off.prefault = false;
  BufferPool cold(buffers, capacity, off);
  const long cold_faults = faults_of_first_pass(cold);
  INFO("faults without prefault " << cold_faults);
  if (thp_always()) {
    // The kernel may back the region with 2 MiB pages: one fault per 512.
    WARN("transparent huge pages are 'always' here: not counting faults without prefault");
  } else {
    CHECK(cold_faults > pages / 2);
  }
  CHECK(cold_faults > warm_faults);
}

TEST_CASE("huge_pages is a hint: the buffers work either way") {
  for (bool custom : {false, true}) {
    RecordingAllocator rec;
    BufferPoolOptions opt = custom ? rec.options(4096) : BufferPoolOptions{};
    opt.huge_pages = true;
    {
      BufferPool pool(2, std::size_t{3} << 20, opt);
      auto all = take_all(pool);
      for (auto& b : all) {
        std::memset(b.get_mut().data(), 0x11, b.capacity());
        b.set_size(b.capacity());
      }
      Bytes v = std::move(all[0]).freeze();
      CHECK(v.size() == (std::size_t{3} << 20));
      CHECK(v[v.size() - 1] == std::byte{0x11});
      if (!custom) CHECK(reinterpret_cast<std::uintptr_t>(v.data()) % (std::size_t{2} << 20) == 0);
    }
    CHECK(rec.live.empty());
  }
}

TEST_CASE("bytes_reserved counts the padded buffers") {
  BufferPoolOptions opt;
  opt.alignment = 4096;
  BufferPool pool(3, 5000, opt);
  const auto st = pool.stats();
  CHECK(st.buffer_capacity == 5000);
  CHECK(st.bytes_reserved == 3 * 8192);
}
