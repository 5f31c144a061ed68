// Allocation failure at every allocation point of pool construction (and of
// growth): std::bad_alloc propagates, every object built so far is destroyed
// and every byte allocated so far is freed, and the process stays usable.
//
// How: this executable replaces the global operator new family with one that
// counts the calls and, when armed, fails the Nth. Each test builds a pool
// with the failure armed at N = 1, 2, 3... until construction succeeds, so
// every allocation the constructor makes fails once. Leaks are checked two
// ways: blocks still live after a failed attempt (counted here, in every
// build), and LeakSanitizer at exit in the asan build.
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "catch.hpp"
#include "tracked.hpp"

using daq_pool::BufferPool;
using daq_pool::BufferPoolOptions;
using daq_pool::Pool;
using daq_pool::PoolOptions;
using test_support::Tracked;

// ---- the failing operator new -------------------------------------------

namespace fault {

/// Calls to the operator new family since the process started.
inline std::atomic<std::uint64_t> calls{0};
/// Blocks from operator new not yet deleted.
inline std::atomic<std::int64_t> live{0};
/// The call number (as counted by `calls`) that fails; 0: none.
inline std::atomic<std::uint64_t> fail_at{0};
/// Failures injected so far.
inline std::atomic<std::uint64_t> injected{0};

/// Arms a failure of the `n`th allocation from now (n >= 1).
inline void fail_nth(std::uint64_t n) noexcept { fail_at.store(calls.load() + n); }
inline void disarm() noexcept { fail_at.store(0); }

inline void* allocate(std::size_t n, std::size_t align, bool nothrow) {
  const std::uint64_t call = calls.fetch_add(1) + 1;
  if (call == fail_at.load()) {
    injected.fetch_add(1);
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else if (::posix_memalign(&p, align, n) != 0) {
    p = nullptr;
  }
  if (p == nullptr) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  live.fetch_add(1);
  return p;
}

inline void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  live.fetch_sub(1);
  std::free(p);
}

}  // namespace fault

void* operator new(std::size_t n) { return fault::allocate(n, 0, false); }
void* operator new[](std::size_t n) { return fault::allocate(n, 0, false); }
void* operator new(std::size_t n, std::align_val_t a) { return fault::allocate(n, static_cast<std::size_t>(a), false); }
void* operator new[](std::size_t n, std::align_val_t a) {
  return fault::allocate(n, static_cast<std::size_t>(a), false);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return fault::allocate(n, 0, true); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return fault::allocate(n, 0, true); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return fault::allocate(n, static_cast<std::size_t>(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return fault::allocate(n, static_cast<std::size_t>(a), true);
}
void operator delete(void* p) noexcept { fault::deallocate(p); }
void operator delete[](void* p) noexcept { fault::deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { fault::deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { fault::deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { fault::deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { fault::deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { fault::deallocate(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { fault::deallocate(p); }

namespace {

/// What one sweep saw.
struct Sweep {
  int failures = 0;      // attempts that threw std::bad_alloc
  int succeeded_at = 0;  // the N at which construction first succeeded
};

/// Runs `attempt` with the Nth allocation failing, for N = 1, 2, ... until
/// an attempt completes without hitting the failure (it made fewer than N
/// allocations). After each failed attempt: the exception was bad_alloc,
/// no block allocated during the attempt is still live, and `clean()` holds
/// (e.g. every object built was destroyed). `attempt` must not allocate
/// anything that outlives it.
template <class Attempt, class Clean>
Sweep sweep(Attempt attempt, Clean clean, int limit = 10000) {
  Sweep s;
  for (int n = 1; n <= limit; ++n) {
    const std::int64_t live0 = fault::live.load();
    const std::uint64_t injected0 = fault::injected.load();
    bool threw = false;
    fault::fail_nth(static_cast<std::uint64_t>(n));
    try {
      attempt();
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    fault::disarm();
    const bool hit = fault::injected.load() != injected0;
    const std::int64_t leaked = fault::live.load() - live0;
    INFO("allocation #" << n << " failed: " << (hit ? "yes" : "no") << ", bad_alloc: " << (threw ? "yes" : "no"));
    REQUIRE(leaked == 0);
    REQUIRE(clean());
    if (!hit) {
      REQUIRE_FALSE(threw);
      s.succeeded_at = n;
      return s;
    }
    // Every injected failure must surface as bad_alloc (none swallowed
    // into a half-built pool).
    REQUIRE(threw);
    ++s.failures;
  }
  FAIL("construction never completed");
  return s;
}

/// Heap-owning items: their construction allocates too, so the sweep also
/// fails inside the factory.
struct Frame {
  Tracked tracked;
  std::vector<int> samples;
  explicit Frame(int v) : tracked(v), samples(16, v) {}
};

}  // namespace

TEST_CASE("the failing operator new is in effect") {
  fault::fail_nth(1);
  CHECK_THROWS_AS(new int(1), std::bad_alloc);
  fault::disarm();
  int* p = new int(2);
  CHECK(*p == 2);
  delete p;
}

TEST_CASE("Pool<int>: every allocation of construction may fail; nothing leaks") {
  const Sweep s = sweep([] { Pool<int> pool(100, [] { return 7; }); }, [] { return true; });
  INFO("allocations during construction: " << s.succeeded_at - 1);
  CHECK(s.failures >= 2);  // at least the core and the slot storage
}

TEST_CASE("Pool of heap-owning items, with reset and room to grow: every failure is clean") {
  Tracked::reset_counters();
  int built = 0;
  const Sweep s = sweep(
      [&built] {
        Pool<Frame> pool(
            40, [&built] { return Frame(++built); }, [](Frame& f) { f.samples.assign(16, 0); }, PoolOptions{200});
        CHECK(pool.size() == 40);
      },
      [] { return Tracked::alive() == 0; });
  INFO("allocations during construction: " << s.succeeded_at - 1);
  CHECK(s.failures >= 40);  // one per item's vector at least
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("growth that fails to allocate leaves the pool as it was, and usable") {
  Tracked::reset_counters();
  {
    Pool<Frame> pool(
        2, [] { return Frame(1); }, {}, PoolOptions{100});
    // grow(): allocates a new bucket of slots and one vector per item.
    for (int n = 1; n < 200; ++n) {
      const std::size_t before = pool.size();
      fault::fail_nth(static_cast<std::uint64_t>(n));
      std::size_t added = 0;
      bool threw = false;
      try {
        added = pool.grow(50);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      fault::disarm();
      // Slots made before the failure stay (documented), none half-made.
      CHECK(pool.size() >= before);
      CHECK(static_cast<long>(pool.size()) == Tracked::alive());
      CHECK(pool.available() == pool.size());
      const auto st = pool.stats();
      CHECK(st.size == pool.size());
      CHECK(st.available == pool.size());
      if (!threw) {
        CHECK(added + before == pool.size());
        break;
      }
    }
    CHECK(pool.size() == pool.max_size());
    // Still usable: every item can be taken and returned.
    std::vector<daq_pool::Loaned<Frame>> loans;
    while (auto l = pool.try_acquire()) loans.push_back(std::move(*l));
    CHECK(loans.size() == pool.size());
    loans.clear();
    CHECK(pool.available() == pool.size());
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("acquire_or_grow that fails to allocate throws bad_alloc and loses nothing") {
  Tracked::reset_counters();
  {
    Pool<Frame> pool(
        1, [] { return Frame(1); }, {}, PoolOptions{8});
    auto first = pool.acquire();
    for (int n = 1; n < 50; ++n) {
      fault::fail_nth(static_cast<std::uint64_t>(n));
      std::optional<daq_pool::Loaned<Frame>> grown;
      bool threw = false;
      try {
        grown = pool.acquire_or_grow();
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      fault::disarm();
      CHECK(static_cast<long>(pool.size()) == Tracked::alive());
      if (!threw) {
        REQUIRE(grown);
        CHECK(pool.size() == 2);
        CHECK(pool.available() == 0);
        break;
      }
      CHECK(pool.size() == 1);
      CHECK(pool.available() == 0);
    }
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("BufferPool: every allocation of construction may fail; nothing leaks") {
  const Sweep s = sweep(
      [] {
        BufferPool pool(8, 4096);
        CHECK(pool.size() == 8);
      },
      [] { return true; });
  INFO("allocations during construction: " << s.succeeded_at - 1);
  CHECK(s.failures >= 2);
}

TEST_CASE("BufferPool with a custom allocator: every allocation may fail, and allocate may fail on any buffer") {
  struct Ledger {
    int allocated = 0;
    int released = 0;
    int fail_buffer = 0;  // the buffer number (1-based) whose allocate throws; 0: none
    bool return_null = false;
  };
  Ledger ledger;
  BufferPoolOptions o;
  o.alignment = 64;
  o.allocate = [&ledger](std::size_t bytes, std::size_t alignment) -> void* {
    if (ledger.allocated + 1 == ledger.fail_buffer) {
      if (ledger.return_null) return nullptr;
      throw std::bad_alloc();
    }
    void* p = nullptr;
    if (::posix_memalign(&p, alignment, bytes) != 0) throw std::bad_alloc();
    ++ledger.allocated;
    return p;
  };
  o.deallocate = [&ledger](void* p, std::size_t, std::size_t) {
    ++ledger.released;
    std::free(p);
  };

  SECTION("operator new fails at every point") {
    const Sweep s = sweep(
        [&o] {
          BufferPool pool(6, 256, o);
          CHECK(pool.size() == 6);
        },
        [&ledger] { return ledger.allocated == ledger.released; });
    CHECK(s.failures >= 2);
  }

  SECTION("allocate throws bad_alloc for the Nth buffer") {
    for (int n = 1; n <= 6; ++n) {
      ledger = Ledger{0, 0, n, false};
      CHECK_THROWS_AS(BufferPool(6, 256, o), std::bad_alloc);
      CHECK(ledger.allocated == n - 1);
      CHECK(ledger.released == ledger.allocated);
    }
  }

  SECTION("allocate returns null for the Nth buffer: bad_alloc naming buffer_capacity") {
    for (int n = 1; n <= 6; ++n) {
      ledger = Ledger{0, 0, n, true};
      std::string what;
      try {
        BufferPool pool(6, 256, o);
      } catch (const std::bad_alloc& e) {
        what = e.what();
      }
      INFO(what);
      CHECK(what.find("buffer_capacity") != std::string::npos);
      CHECK(ledger.released == ledger.allocated);
    }
  }

  SECTION("after all that, the allocator and the pools still work") {
    ledger = Ledger{};
    {
      BufferPool pool(3, 128, o);
      auto b = pool.acquire();
      b.set_size(128);
      auto v = std::move(b).freeze();
      CHECK(v.size() == 128);
    }
    CHECK(ledger.allocated == 3);
    CHECK(ledger.released == 3);
  }
}

TEST_CASE("Bytes::copy_from that fails to allocate throws bad_alloc and leaks nothing") {
  const std::vector<std::byte> src(1000, std::byte{1});
  const std::int64_t live0 = fault::live.load();
  fault::fail_nth(1);
  CHECK_THROWS_AS(daq_pool::Bytes::copy_from(src), std::bad_alloc);
  fault::disarm();
  CHECK(fault::live.load() == live0);
  const auto b = daq_pool::Bytes::copy_from(src);
  CHECK(b.size() == 1000);
}

TEST_CASE("after every injected failure the process is still usable") {
  Pool<std::string> pool(4, [] { return std::string(100, 'x'); });
  auto a = pool.acquire();
  a->append("y");
  CHECK(a->size() == 101);
  CHECK(fault::injected.load() > 0);
}
