// Zero allocation: once a pool is built, acquiring (every kind, including
// blocking waits that sleep) and releasing never allocate, from any number of
// threads, including brand-new threads that never touched the pool. Counts
// both operator new and malloc (see support/alloc_counter.hpp). This is the
// ONE translation unit of this executable that includes the counter.
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"
#include "catch.hpp"
#include "threads.hpp"
#include "watchdog.hpp"

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::PoolOptions;
using namespace std::chrono_literals;

namespace {

// Keeps the compiler from eliding a new/delete pair in the positive control.
void* volatile sink = nullptr;

// One round of every acquisition kind plus the releases, moves and resets of
// loans. Returns how many acquisitions succeeded.
std::size_t churn(Pool<std::vector<int>>& pool, std::size_t iterations, std::size_t id) {
  std::size_t ok = 0;
  for (std::size_t i = 0; i < iterations; ++i) {
    std::optional<Loaned<std::vector<int>>> l;
    switch ((i + id) % 6) {
      case 0:
        l = pool.acquire();
        break;
      case 1:
        l = pool.try_acquire();
        break;
      case 2:
        l = pool.try_acquire_for(std::chrono::microseconds(50));
        break;
      case 3:
        l = pool.try_acquire_for(0ns);
        break;
      case 4:
        l = pool.try_acquire_until(std::chrono::steady_clock::now() + 20us);
        break;
      default:
        l = pool.try_acquire_until(std::chrono::system_clock::now() + 20us);
        break;
    }
    if (!l) continue;
    ++ok;
    (**l)[0] = static_cast<int>(id);  // touch the item (capacity was reserved by the factory)
    if (i % 2 == 0) {
      Loaned<std::vector<int>> moved = std::move(*l);
      moved.reset();
    }
  }
  return ok;
}

#define SKIP_UNLESS_COUNTING()                                                                 \
  do {                                                                                         \
    if (!alloc_counter::enabled) {                                                             \
      WARN("allocation counting is off in this build (sanitizer or non-glibc): test skipped"); \
      return;                                                                                  \
    }                                                                                          \
  } while (false)

}  // namespace

TEST_CASE("positive control: the counter sees operator new and malloc") {
  SKIP_UNLESS_COUNTING();
  alloc_counter::Scope scope;
  sink = new int(1);
  delete static_cast<int*>(sink);
  CHECK(scope.news() == 1);
  sink = std::malloc(16);
  std::free(sink);
  CHECK(scope.mallocs() == 1);
  // And it sees allocations made on other threads.
  alloc_counter::Scope scope2;
  std::thread t([] {
    std::vector<int> v(100);
    sink = v.data();
  });
  t.join();
  CHECK(scope2.total() >= 1);
  // Growth of a pool allocates (a new bucket): the counter would catch it.
  Pool<int> pool(
      1, [] { return 0; }, {}, PoolOptions{1000});
  alloc_counter::Scope scope3;
  CHECK(pool.grow(500) == 500);
  CHECK(scope3.total() >= 1);
}

TEST_CASE("acquire and release allocate nothing on the constructing thread") {
  SKIP_UNLESS_COUNTING();
  Pool<std::vector<int>> pool(
      4, [] { return std::vector<int>(16, 0); }, [](std::vector<int>& v) { v[0] = 0; });
  alloc_counter::Scope scope;
  const std::size_t ok = churn(pool, 5000, 0);
  auto a = pool.acquire();
  auto b = a.try_clone();  // copy-assigns into an item of equal size: no allocation
  CHECK(b);
  a.reset();
  b.reset();
  (void)pool.stats();
  (void)pool.available();
  (void)pool.size();
  const auto news = scope.news();
  const auto mallocs = scope.mallocs();
  CHECK(ok > 0);
  CHECK(news == 0);
  CHECK(mallocs == 0);
}

TEST_CASE("brand-new threads contending for the pool allocate nothing, even when they sleep") {
  SKIP_UNLESS_COUNTING();
  test_support::Watchdog dog("alloc: new threads contending", std::chrono::seconds(120));
  // Fewer slots than threads, so blocking acquirers really park (futex).
  Pool<std::vector<int>> pool(
      2, [] { return std::vector<int>(16, 0); }, [](std::vector<int>& v) { v[0] = 0; });
  constexpr std::size_t threads = 4;
  const std::size_t per_thread = 20000;
  test_support::StartGate ready(threads + 1);
  std::atomic<bool> go{false};
  std::atomic<std::size_t> finished{0};
  std::atomic<std::size_t> successes{0};
  std::vector<std::thread> workers;
  workers.reserve(threads);
  // Thread creation allocates (stack, TLS, std::thread state): that happens
  // before the counting window opens. The threads never touched the pool.
  for (std::size_t id = 0; id < threads; ++id) {
    workers.emplace_back([&, id] {
      ready.arrive_and_wait();
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      successes.fetch_add(churn(pool, per_thread, id));
      finished.fetch_add(1, std::memory_order_release);
      // Stay alive until joined: thread exit may free/allocate TLS, outside
      // the window only if we wait here.
      while (go.load(std::memory_order_acquire)) std::this_thread::yield();
    });
  }
  ready.arrive_and_wait();
  const auto waits_before = pool.stats().waits;
  alloc_counter::Scope scope;
  go.store(true, std::memory_order_release);
  while (finished.load(std::memory_order_acquire) < threads) std::this_thread::yield();
  const auto news = scope.news();
  const auto mallocs = scope.mallocs();
  go.store(false, std::memory_order_release);
  for (auto& t : workers) t.join();

  const auto st = pool.stats();
  INFO("successes " << successes.load() << ", waits " << st.waits - waits_before);
  CHECK(successes.load() > 0);
  CHECK(st.acquires == st.releases);
  CHECK(pool.available() == 2);
  CHECK(news == 0);
  CHECK(mallocs == 0);
  if (st.waits == waits_before) WARN("no acquisition had to sleep this time: the parked path went unmeasured");
}

TEST_CASE("acquire_or_grow allocates only when it grows") {
  SKIP_UNLESS_COUNTING();
  Pool<int> pool(
      2, [] { return 0; }, {}, PoolOptions{4});
  CHECK(pool.grow(2) == 2);  // the bucket for all 4 slots exists now
  alloc_counter::Scope scope;
  for (int i = 0; i < 1000; ++i) {
    auto a = pool.acquire_or_grow();
    auto b = pool.acquire_or_grow();
    REQUIRE(a);
    REQUIRE(b);
  }
  CHECK(scope.total() == 0);
}
