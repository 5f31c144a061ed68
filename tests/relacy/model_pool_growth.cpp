// Model check (issue 10): growth racing acquisition. A slot added by grow()
// or acquire_or_grow() (SlotTable::ensure allocating a new bucket, then
// PoolCore::add_slot building the item and publish pushing it and waking a
// sleeper) must be seen complete by the thread that pops its index: its
// bucket there, its item built, its contents written before the push
// visible, and a blocked acquirer woken for it.
//
// The library's own code: Pool<T>, PoolCore, SlotTable, IndexStack and
// Parking compiled with DAQ_POOL_USE_RELACY. Each pool starts with 32 slots,
// the whole first bucket, all on loan, so every grown slot lives in a
// bucket allocated during the model. The factory writes the item's shadow
// (an rl::var) and the item is the slot's own index; the thread that gets
// the slot checks both, so a slot handed out before its construction
// happens-before the new holder is a data race, a wrong or half-built slot
// a failed assertion, and a lost wake-up a deadlock.
//
// Only one thread of a model grows: growth is serialized by a std::mutex,
// which has no model (a fiber switched out holding it would block the one
// OS thread Relacy runs on), and only a second grower could contend for it.
#include "model_check.hpp"

#include "daq_pool/pool.hpp"

namespace {

using daq_pool::Loaned;
using daq_pool::Pool;

constexpr std::size_t first_bucket = 32;  // SlotTable's first bucket

template <std::size_t MaxSize>
struct GrowthFixture {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> held[first_bucket];
  model::Shadow<MaxSize> contents;
  int made = 0;  // items built so far: the factory runs on one thread at a time

  void start() {
    daq_pool::PoolOptions options;
    options.max_size = MaxSize;
    // The item is the index of the slot it is built for (slots are built
    // in index order), and its shadow is written where it is built.
    pool.emplace(
        first_bucket,
        [this] {
          const int k = made++;
          contents.write(static_cast<std::size_t>(k), 1000 + k);
          return k;
        },
        nullptr, options);
    for (auto& h : held) h.emplace(pool->acquire());
  }

  /// The holder of `loan` sees its slot complete, then uses it exclusively.
  void use(Loaned<int>& loan, int who) {
    const std::size_t i = loan.slot_index();
    RL_ASSERT(*loan == static_cast<int>(i));
    const int seen = contents.read(i);
    RL_ASSERT(seen == 1000 + static_cast<int>(i) || seen < 0);  // built, or a previous holder's mark
    contents.write(i, -1 - who);
    RL_ASSERT(contents.read(i) == -1 - who);
  }

  /// Every slot is back, the counters agree, nothing was built twice.
  void finish(std::size_t size) {
    for (auto& h : held) h.reset();
    const auto st = pool->stats();
    RL_ASSERT(pool->size() == size);
    RL_ASSERT(pool->available() == size);
    RL_ASSERT(st.in_use == 0);
    RL_ASSERT(st.acquires == st.releases);
    RL_ASSERT(made == static_cast<int>(size));
    pool.reset();
  }
};

/// One acquirer blocks on a pool whose every slot is out; another thread
/// grows it by one, into a new bucket. The acquirer must be woken and get
/// the new slot, built before it gets it.
struct GrowWakesAcquirer : rl::test_suite<GrowWakesAcquirer, 2> {
  GrowthFixture<first_bucket + 1> f;

  void before() { f.start(); }
  void thread(unsigned i) {
    if (i == 1) {
      RL_ASSERT(f.pool->grow(1) == 1);
      return;
    }
    Loaned<int> loan = f.pool->acquire();
    RL_ASSERT(loan.slot_index() == first_bucket);
    f.use(loan, 0);
  }
  void after() { f.finish(first_bucket + 1); }
};

/// Two acquirers block on a pool whose every slot is out; a third thread
/// grows it by two, into a new bucket. Each grown slot must wake one
/// acquirer (grow publishes each slot), and each acquirer must get a
/// different new slot, built before it gets it.
struct GrowWakesAcquirers : rl::test_suite<GrowWakesAcquirers, 3> {
  GrowthFixture<first_bucket + 2> f;
  std::optional<Loaned<int>> got[2];  // kept to the end: two slots for two

  void before() { f.start(); }
  void thread(unsigned i) {
    if (i == 2) {
      RL_ASSERT(f.pool->grow(2) == 2);
      return;
    }
    got[i].emplace(f.pool->acquire());
    f.use(*got[i], static_cast<int>(i));
  }
  void after() {
    RL_ASSERT(got[0]->slot_index() != got[1]->slot_index());
    RL_ASSERT(got[0]->slot_index() >= first_bucket && got[1]->slot_index() >= first_bucket);
    RL_ASSERT(f.pool->stats().grows == 2);
    got[0].reset();
    got[1].reset();
    f.finish(first_bucket + 2);
  }
};

/// acquire_or_grow() races a release and a blocked acquirer: it takes the
/// released slot if it finds it, else grows one slot (the last the bound
/// allows) for itself. Either way both acquirers end up with a slot, the
/// new one complete, and the pool grew at most once.
struct AcquireOrGrowRacesRelease : rl::test_suite<AcquireOrGrowRacesRelease, 3> {
  GrowthFixture<first_bucket + 1> f;

  void before() { f.start(); }
  void thread(unsigned i) {
    if (i == 0) {
      std::optional<Loaned<int>> loan = f.pool->acquire_or_grow();
      RL_ASSERT(loan.has_value());
      f.use(*loan, 0);
    } else if (i == 1) {
      f.use(*f.held[0], 1);
      f.held[0].reset();
    } else {
      Loaned<int> loan = f.pool->acquire();
      f.use(loan, 2);
    }
  }
  void after() {
    const std::uint64_t grows = f.pool->stats().grows;
    RL_ASSERT(grows <= 1);
    f.finish(first_bucket + grows);
  }
};

/// A timed acquirer waits while the pool grows by one: it either times out
/// or gets the grown slot, complete; a blocked acquirer racing it with a
/// second grown slot gets the other. No wake-up is lost to the one that
/// times out.
struct GrowRacesTimedAcquire : rl::test_suite<GrowRacesTimedAcquire, 3> {
  GrowthFixture<first_bucket + 2> f;
  bool timed_got = false;

  void before() {
    model::TickClock::reset();
    f.start();
  }
  void thread(unsigned i) {
    if (i == 0) {
      RL_ASSERT(f.pool->grow(1) == 1);
      RL_ASSERT(f.pool->grow(1) == 1);
    } else if (i == 1) {
      if (auto loan = f.pool->try_acquire_until(model::TickClock::after(3))) {
        timed_got = true;
        f.use(*loan, 1);
      }
    } else {
      Loaned<int> loan = f.pool->acquire();
      f.use(loan, 2);
    }
  }
  void after() {
    RL_ASSERT(f.pool->stats().acquires == first_bucket + (timed_got ? 2u : 1u));
    f.finish(first_bucket + 2);
  }
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  // Every schedule with one preemption of the two-thread model; the
  // three-thread ones (growth and acquisition make long executions, many
  // relaxed counters multiply the outcomes) get random schedules only.
  run.check<GrowWakesAcquirer>("GrowWakesAcquirer", 1, 1);
  run.check<GrowWakesAcquirers>("GrowWakesAcquirers", 2, 0);
  run.check<AcquireOrGrowRacesRelease>("AcquireOrGrowRacesRelease", 2, 0);
  run.check<GrowRacesTimedAcquire>("GrowRacesTimedAcquire", 2, 0);
  return run.finish();
}
