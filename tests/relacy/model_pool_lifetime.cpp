// Model check (issues 10 and 15): the pool's lifetime without a reference
// count on the acquire/release path. The last Pool handle is dropped while
// loans return on other threads (and while a waiter is queued, a handle is
// copied and dropped, a reset fails): the core is destroyed exactly once,
// and never touched after.
//
// The library's own code, compiled with DAQ_POOL_USE_RELACY. Under the model
// the core lives in Relacy's heap and its destructor is the model's
// "delete": it writes a flag (an rl::var) that every entry into the core
// reads, so an access that is not ordered before the destruction is a data
// race, and one after it is an access to freed memory (the signatures of
// rl::atomic and rl::var); Relacy's heap also fails a model on a double
// free (destroyed twice) and on a leak (never destroyed: a lost reference).
#include "model_check.hpp"

#include "daq_pool/pool.hpp"

namespace {

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::detail::CoreRef;
using daq_pool::detail::LoanAccess;
using daq_pool::detail::ParkingSpot;
using daq_pool::detail::PoolAccess;
using daq_pool::detail::PoolCore;
using daq_pool::detail::WaiterNode;
using daq_pool::detail::WaitStart;
using daq_pool::detail::WaitState;

template <std::size_t N>
void use(model::Shadow<N>& shadow, Loaned<int>& loan, int who) {
  shadow.write(loan.slot_index(), who);
  RL_ASSERT(shadow.read(loan.slot_index()) == who);
}

/// The last handle goes while two loans return on other threads: whichever
/// of the three is last destroys the core (the orphan's count must match the
/// returns exactly; a release that touched the core after its push would be
/// caught here).
struct LastHandleWhileLoansReturn : rl::test_suite<LastHandleWhileLoansReturn, 3> {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> loans[2];
  model::Shadow<3> shadow;

  void before() {
    pool.emplace(3, [] { return 0; });
    loans[0].emplace(pool->acquire());
    loans[1].emplace(pool->acquire());
  }
  void thread(unsigned i) {
    if (i == 2) {
      pool.reset();  // the last handle: closes and orphans
      return;
    }
    use(shadow, *loans[i], static_cast<int>(i));
    loans[i].reset();
  }
  void after() {}  // nothing left: Relacy's heap checks the core is gone
};

/// Two handles dropped on two threads while a loan returns on a third.
struct TwoHandlesAndALoan : rl::test_suite<TwoHandlesAndALoan, 3> {
  std::optional<Pool<int>> a, b;
  std::optional<Loaned<int>> loan;
  model::Shadow<1> shadow;

  void before() {
    a.emplace(1, [] { return 0; });
    b.emplace(*a);
    loan.emplace(a->acquire());
  }
  void thread(unsigned i) {
    if (i == 0) {
      a.reset();
    } else if (i == 1) {
      b.reset();
    } else {
      use(shadow, *loan, 7);
      loan.reset();
    }
  }
  void after() {}
};

/// An asynchronous waiter queued (holding a counted reference, as asio's
/// operations with a timer or a cancellation handler do) while the last
/// handle goes and a loan returns: the waiter is served with the loan or
/// closed, and whoever drops the last reference destroys the core.
struct LastHandleWithWaiterQueued : rl::test_suite<LastHandleWithWaiterQueued, 3> {
  struct Waiter : WaiterNode<int> {
    Waiter() noexcept : WaiterNode<int>(&Waiter::complete) {}
    static void complete(WaiterNode<int>& n) noexcept { static_cast<Waiter&>(n).done.set_and_wake(1); }
    ParkingSpot done{0};
  };
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> loan;
  model::Shadow<1> shadow;
  Waiter waiter;
  CoreRef<int> ref;
  PoolCore<int>* core = nullptr;

  void before() {
    pool.emplace(1, [] { return 0; });
    loan.emplace(pool->acquire());
    core = PoolAccess::core(*pool);
    ref = CoreRef<int>(core);
    RL_ASSERT(core->start_wait(waiter) == WaitStart::queued);
  }
  void thread(unsigned i) {
    if (i == 0) {
      pool.reset();
    } else if (i == 1) {
      use(shadow, *loan, 1);
      loan.reset();
    } else {
      while (waiter.done.state() == 0) waiter.done.wait_while(0, std::nullopt);
      RL_ASSERT(waiter.state == WaitState::granted || waiter.state == WaitState::closed);
      if (waiter.state == WaitState::granted) {
        Loaned<int> l = LoanAccess::from_raw(core, waiter.slot);
        use(shadow, l, 2);
      }
      ref.reset();  // the operation's last access to the core
    }
  }
  void after() {}
};

/// A reset that fails (and a factory that fails to rebuild) retires the slot
/// while the last handle goes: the retirement and the orphan's count agree.
struct RetireWhileOrphaned : rl::test_suite<RetireWhileOrphaned, 2> {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> loan;
  int builds = 0;

  void before() {
    builds = 0;
    pool.emplace(
        2,
        [this] {
          if (++builds > 2) throw 1;  // the rebuild after the failed reset
          return 0;
        },
        [](int&) { throw 2; });
    loan.emplace(pool->acquire());
  }
  void thread(unsigned i) {
    if (i == 0)
      pool.reset();
    else
      loan.reset();  // reset throws, rebuild throws: retired
  }
  void after() {}
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  run.check<LastHandleWhileLoansReturn>("LastHandleWhileLoansReturn", 1, 2);
  run.check<TwoHandlesAndALoan>("TwoHandlesAndALoan", 1, 2);
  run.check<LastHandleWithWaiterQueued>("LastHandleWithWaiterQueued", 5, 0);
  run.check<RetireWhileOrphaned>("RetireWhileOrphaned", 1, 2);
  return run.finish();
}
