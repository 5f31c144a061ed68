// Factories, resets and copies that throw on the Nth call, alone and under
// concurrency: the exception propagates where the API says it does, no item
// leaks, and no slot is lost — afterwards size(), available() and stats()
// agree, and every live slot can be taken.
#include <daq_pool/daq_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "threads.hpp"
#include "tracked.hpp"
#include "watchdog.hpp"

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::PoolOptions;
using test_support::Tracked;

namespace {

struct injected_fault : std::runtime_error {
  injected_fault() : std::runtime_error("injected fault") {}
};

/// Throws on every `period`-th call while armed (thread-safe): a fault that
/// strikes at unpredictable points of a concurrent run.
class Fault {
 public:
  explicit Fault(std::uint64_t period) noexcept : period_(period) {}
  void arm() noexcept { armed_.store(true); }
  void disarm() noexcept { armed_.store(false); }
  void maybe_throw() {
    const std::uint64_t n = calls_.fetch_add(1) + 1;
    if (armed_.load() && n % period_ == 0) {
      thrown_.fetch_add(1);
      throw injected_fault();
    }
  }
  std::uint64_t thrown() const noexcept { return thrown_.load(); }

 private:
  std::uint64_t period_;
  std::atomic<bool> armed_{false};
  std::atomic<std::uint64_t> calls_{0};
  std::atomic<std::uint64_t> thrown_{0};
};

/// The quiet-pool invariants: everything returned, counters consistent,
/// one live item per live slot.
template <class T>
void check_consistent(const Pool<T>& pool) {
  const auto st = pool.stats();
  CHECK(st.size == pool.size());
  CHECK(pool.available() == pool.size());
  CHECK(st.available == pool.size());
  CHECK(st.in_use == 0);
  CHECK(st.acquires == st.releases);
  CHECK(pool.size() + st.retired <= pool.max_size());
}

/// Takes every free slot at once (try_acquire until nothing), returns the
/// count, and gives them all back.
template <class T>
std::size_t drain(Pool<T>& pool) {
  std::vector<Loaned<T>> loans;
  while (auto l = pool.try_acquire()) loans.push_back(std::move(*l));
  return loans.size();
}

}  // namespace

TEST_CASE("a factory throwing on the Nth item of construction: the exception propagates, nothing leaks") {
  for (int n = 1; n <= 8; ++n) {
    Tracked::reset_counters();
    int calls = 0;
    CHECK_THROWS_AS(Pool<Tracked>(8,
                                  [&calls, n] {
                                    if (++calls == n) throw injected_fault();
                                    return Tracked(calls);
                                  }),
                    injected_fault);
    CHECK(calls == n);
    CHECK(Tracked::alive() == 0);
  }
}

TEST_CASE("a reset throwing on the Nth return: the item is rebuilt, the slot stays, the failure is counted") {
  Tracked::reset_counters();
  Fault reset_fault(3);
  {
    Pool<Tracked> pool(
        2, [] { return Tracked(1); },
        [&reset_fault](Tracked& t) {
          reset_fault.maybe_throw();
          t.value = 0;
        });
    reset_fault.arm();
    for (int i = 0; i < 30; ++i) {
      auto l = pool.acquire();
      l->value = 5;
    }
    CHECK(reset_fault.thrown() == 10);
    const auto st = pool.stats();
    CHECK(st.reset_failures == 10);
    CHECK(st.retired == 0);
    CHECK(pool.size() == 2);
    check_consistent(pool);
    CHECK(Tracked::alive() == 2);
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("reset and rebuild both throwing retire the slot; growth revives it") {
  Tracked::reset_counters();
  Fault reset_fault(1);
  Fault factory_fault(1);
  {
    Pool<Tracked> pool(
        3,
        [&factory_fault] {
          factory_fault.maybe_throw();
          return Tracked(1);
        },
        [&reset_fault](Tracked&) { reset_fault.maybe_throw(); });
    reset_fault.arm();
    factory_fault.arm();
    { auto l = pool.acquire(); }
    CHECK(pool.size() == 2);
    CHECK(pool.stats().retired == 1);
    CHECK(pool.stats().reset_failures == 1);
    CHECK(Tracked::alive() == 2);
    check_consistent(pool);
    reset_fault.disarm();
    CHECK(drain(pool) == 2);
    // A retired slot is revived by grow() (even without max_size), once the
    // factory works again.
    CHECK_THROWS_AS(pool.grow(1), injected_fault);
    CHECK(pool.size() == 2);
    factory_fault.disarm();
    CHECK(pool.grow(5) == 1);
    CHECK(pool.size() == 3);
    CHECK(drain(pool) == 3);
    check_consistent(pool);
  }
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("throwing factories and resets under concurrency lose no slot") {
  Tracked::reset_counters();
  test_support::Watchdog watchdog("throwing factories and resets under concurrency", std::chrono::seconds(120));
  Fault reset_fault(3);    // every 3rd reset throws
  Fault factory_fault(2);  // every 2nd factory call after construction throws
  constexpr std::size_t initial = 4;
  constexpr std::size_t bound = 8;
  const std::size_t cycles = test_support::scaled(20000);
  std::atomic<std::uint64_t> grow_throws{0};
  std::atomic<std::uint64_t> taken{0};
  {
    Pool<Tracked> pool(
        initial,
        [&factory_fault] {
          factory_fault.maybe_throw();
          return Tracked(1);
        },
        [&reset_fault](Tracked& t) {
          reset_fault.maybe_throw();
          t.value = 0;
        },
        PoolOptions{bound});
    reset_fault.arm();
    factory_fault.arm();

    std::atomic<std::size_t> workers_done{0};
    test_support::run_threads(4, [&](std::size_t id) {
      if (id == 3) {
        // The grower: revives retired slots and adds new ones, through both
        // growth calls, until the workers are done.
        while (workers_done.load() < 3) {
          try {
            pool.grow(1);
            if (auto l = pool.acquire_or_grow()) taken.fetch_add(1);
          } catch (const injected_fault&) {
            grow_throws.fetch_add(1);
          }
          std::this_thread::yield();
        }
        return;
      }
      for (std::size_t i = 0; i < cycles; ++i) {
        // Bounded waits: with every slot retired at some moment, a blocking
        // acquire would wait for the grower; this keeps each worker moving.
        std::optional<Loaned<Tracked>> l;
        switch (i % 3) {
          case 0:
            l = pool.try_acquire();
            break;
          case 1:
            l = pool.try_acquire_for(std::chrono::microseconds(50));
            break;
          default:
            try {
              l = pool.acquire_or_grow();
            } catch (const injected_fault&) {
              grow_throws.fetch_add(1);
            }
        }
        if (l) {
          (*l)->checked();
          (*l)->value = static_cast<int>(id);
          taken.fetch_add(1);
        }
      }
      workers_done.fetch_add(1);
    });

    reset_fault.disarm();
    factory_fault.disarm();
    INFO("reset throws " << reset_fault.thrown() << ", factory throws " << factory_fault.thrown() << ", growth throws "
                         << grow_throws.load());
    CHECK(reset_fault.thrown() > 0);
    CHECK(factory_fault.thrown() > 0);

    const auto st = pool.stats();
    CHECK(st.reset_failures == reset_fault.thrown());
    CHECK(st.acquires == taken.load());
    check_consistent(pool);
    // One live item per live slot: a retired slot holds none, none leaked.
    CHECK(Tracked::alive() == static_cast<long>(pool.size()));
    CHECK(drain(pool) == pool.size());

    // No slot lost: reviving every retired slot gives back exactly the slots
    // ever created.
    const std::size_t live = pool.size();
    const std::size_t retired = static_cast<std::size_t>(st.retired);
    CHECK(pool.grow(bound) == bound - live);
    CHECK(pool.size() == bound);
    CHECK(pool.stats().retired == 0);
    CHECK(live + retired <= bound);
    CHECK(drain(pool) == bound);
    check_consistent(pool);
    CHECK(Tracked::alive() == static_cast<long>(bound));
  }
  CHECK(Tracked::alive() == 0);
}

namespace {

/// An item whose copy assignment throws while armed (try_clone copies into
/// the new slot).
struct Fragile {
  static inline std::atomic<bool> fail{false};
  int value = 0;
  Fragile() = default;
  explicit Fragile(int v) : value(v) {}
  Fragile(const Fragile&) = default;
  Fragile& operator=(const Fragile& o) {
    if (fail.load()) throw injected_fault();
    value = o.value;
    return *this;
  }
};

}  // namespace

TEST_CASE("try_clone whose copy throws returns the new slot and propagates the exception") {
  Pool<Fragile> pool(3, [] { return Fragile(1); });
  auto a = pool.acquire();
  Fragile::fail.store(true);
  CHECK_THROWS_AS(a.try_clone(), injected_fault);
  Fragile::fail.store(false);
  CHECK(pool.available() == 2);
  auto b = a.try_clone();
  REQUIRE(b);
  CHECK(pool.available() == 1);
  b.reset();
  a.reset();
  check_consistent(pool);
}

TEST_CASE("a factory throwing in acquire_or_grow under concurrency loses no slot") {
  Tracked::reset_counters();
  test_support::Watchdog watchdog("acquire_or_grow with a throwing factory", std::chrono::seconds(120));
  Fault factory_fault(2);
  std::atomic<std::uint64_t> throws{0};
  {
    Pool<Tracked> pool(
        1,
        [&factory_fault] {
          factory_fault.maybe_throw();
          return Tracked(1);
        },
        {}, PoolOptions{6});
    factory_fault.arm();
    const std::size_t cycles = test_support::scaled(5000);
    test_support::run_threads(3, [&](std::size_t) {
      for (std::size_t i = 0; i < cycles; ++i) {
        try {
          auto l = pool.acquire_or_grow();
          if (l) (*l)->checked();
        } catch (const injected_fault&) {
          throws.fetch_add(1);
        }
      }
    });
    factory_fault.disarm();
    CHECK(throws.load() == factory_fault.thrown());
    check_consistent(pool);
    CHECK(pool.stats().retired == 0);
    CHECK(Tracked::alive() == static_cast<long>(pool.size()));
    CHECK(drain(pool) == pool.size());
  }
  CHECK(Tracked::alive() == 0);
}
