// Model check (issue 15): the waiter list's hand-off, cancellation and close
// protocol, for asynchronous waiters (what daq_pool/asio.hpp builds on) and
// blocked threads sharing one list.
//
// The library's own code (PoolCore's start_wait / abort_wait /
// abort_wait_by_key, the release slow path, close(), FreeList, ParkingSpot,
// the waiter lock), compiled with DAQ_POOL_USE_RELACY. An asynchronous waiter
// here is a WaiterNode whose on_complete does what asio.hpp's does in
// spirit: it only signals the waiter's "executor" (a model thread sleeping on
// a parking spot), which then takes the result. Relacy fails a model on a
// deadlock (a waiter never completed: a lost hand-off), a data race on a
// slot's contents (a slot handed to two owners, or without the
// release/acquire that orders its previous user first), or a failed
// assertion (a slot lost, a waiter completed twice or with a wrong result).
#include "model_check.hpp"

#include "daq_pool/pool.hpp"

namespace {

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::detail::LoanAccess;
using daq_pool::detail::ParkingSpot;
using daq_pool::detail::PoolAccess;
using daq_pool::detail::PoolCore;
using daq_pool::detail::WaiterNode;
using daq_pool::detail::WaitStart;
using daq_pool::detail::WaitState;

/// An asynchronous waiter: completed (once) by whichever thread serves it;
/// its owner waits for that on a parking spot, as an executor would run the
/// posted completion.
struct AsyncWaiter : WaiterNode<int> {
  AsyncWaiter() noexcept : WaiterNode<int>(&AsyncWaiter::complete) {}
  static void complete(WaiterNode<int>& n) noexcept {
    auto& w = static_cast<AsyncWaiter&>(n);
    RL_ASSERT(w.done.state() == 0);  // completed exactly once
    w.done.set_and_wake(1);
  }
  /// Starts the wait; false if it completed at once (acquired / closed).
  bool start(PoolCore<int>* core) {
    const WaitStart s = core->start_wait(*this);
    if (s == WaitStart::queued) return true;
    done.set(1);
    return false;
  }
  /// Waits until served; the state and slot are then this thread's.
  void await() {
    while (done.state() == 0) done.wait_while(0, std::nullopt);
  }
  ParkingSpot done{0};
};

template <std::size_t N>
void use(model::Shadow<N>& shadow, Loaned<int>& loan, int who) {
  shadow.write(loan.slot_index(), who);
  RL_ASSERT(shadow.read(loan.slot_index()) == who);
}

/// The waiter's result as a loan (empty unless granted).
Loaned<int> result(PoolCore<int>* core, AsyncWaiter& w) {
  if (w.state != WaitState::granted) return {};
  return LoanAccess::from_raw(core, w.slot);
}

void check_quiet(const Pool<int>& pool, std::size_t size) {
  const auto st = pool.stats();
  RL_ASSERT(pool.available() == size);
  RL_ASSERT(st.in_use == 0);
  RL_ASSERT(st.acquires == st.releases);
}

/// A release hands the only slot straight to a queued asynchronous waiter.
struct HandOffToAsync : rl::test_suite<HandOffToAsync, 2> {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> held;
  model::Shadow<1> shadow;
  AsyncWaiter waiter;

  void before() {
    pool.emplace(1, [] { return 0; });
    held.emplace(pool->acquire());
  }
  void thread(unsigned i) {
    PoolCore<int>* core = PoolAccess::core(*pool);
    if (i == 0) {
      use(shadow, *held, 100);
      held.reset();
    } else {
      waiter.start(core);
      waiter.await();
      RL_ASSERT(waiter.state == WaitState::granted);
      Loaned<int> l = result(core, waiter);
      use(shadow, l, 1);
    }
  }
  void after() {
    check_quiet(*pool, 1);
    pool.reset();
  }
};

/// Cancellation (by key, as asio's cancellation handler does) races the
/// release that would serve the waiter: the waiter ends with the slot or
/// cancelled, and in the second case the slot is free again.
struct CancelRacesRelease : rl::test_suite<CancelRacesRelease, 3> {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> held;
  model::Shadow<1> shadow;
  AsyncWaiter waiter;
  rl::atomic<int> queued;
  const int key = 0;

  void before() {
    pool.emplace(1, [] { return 0; });
    held.emplace(pool->acquire());
    waiter.cancel_key = &key;
    queued.store(0, std::memory_order_relaxed);
  }
  void thread(unsigned i) {
    PoolCore<int>* core = PoolAccess::core(*pool);
    if (i == 0) {
      // Queued, or served at once if the release came first.
      const bool waits = waiter.start(core);
      queued.store(1, std::memory_order_release);
      if (waits) waiter.await();
      Loaned<int> l = result(core, waiter);
      if (l) use(shadow, l, 1);
      RL_ASSERT(waiter.state == WaitState::granted || waiter.state == WaitState::cancelled);
    } else if (i == 1) {
      use(shadow, *held, 100);
      held.reset();
    } else {
      // The cancellation comes from the waiter's context, after its start.
      while (queued.load(std::memory_order_acquire) == 0) rl::yield(1, $);
      core->abort_wait_by_key(&key, WaitState::cancelled);
    }
  }
  void after() {
    check_quiet(*pool, 1);
    pool.reset();
  }
};

/// A deadline (abort_wait on the node, as the timer's handler does) races
/// the release that would serve the timed waiter, and a second, untimed
/// waiter: whoever gets the slot first, the untimed waiter is served in the
/// end and nothing is lost; a deadline that fires before the wait starts
/// makes the start fail (WaitStart::aborted).
struct DeadlineRacesRelease : rl::test_suite<DeadlineRacesRelease, 3> {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> held;
  model::Shadow<1> shadow;
  AsyncWaiter timed, untimed;

  void before() {
    pool.emplace(1, [] { return 0; });
    held.emplace(pool->acquire());
  }
  void thread(unsigned i) {
    PoolCore<int>* core = PoolAccess::core(*pool);
    if (i == 0) {
      core->abort_wait(timed, WaitState::timed_out);  // the timer fires
    } else if (i == 1) {
      if (timed.start(core)) timed.await();
      RL_ASSERT(timed.state == WaitState::granted || timed.state == WaitState::timed_out);
      Loaned<int> l = result(core, timed);
      if (l) use(shadow, l, 1);
    } else {
      use(shadow, *held, 100);
      held.reset();
      if (untimed.start(core)) untimed.await();
      Loaned<int> u = result(core, untimed);
      RL_ASSERT(u);
      use(shadow, u, 2);
    }
  }
  void after() {
    check_quiet(*pool, 1);
    pool.reset();
  }
};

/// close() races a release and a queued asynchronous waiter: the waiter
/// ends granted or closed, never both, never neither.
struct CloseRacesRelease : rl::test_suite<CloseRacesRelease, 3> {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> held;
  model::Shadow<1> shadow;
  AsyncWaiter waiter;

  void before() {
    pool.emplace(1, [] { return 0; });
    held.emplace(pool->acquire());
  }
  void thread(unsigned i) {
    PoolCore<int>* core = PoolAccess::core(*pool);
    if (i == 0) {
      if (waiter.start(core)) waiter.await();
      Loaned<int> l = result(core, waiter);
      if (l) use(shadow, l, 1);
      RL_ASSERT(waiter.state == WaitState::granted || waiter.state == WaitState::closed);
    } else if (i == 1) {
      use(shadow, *held, 100);
      held.reset();
    } else {
      pool->close();
    }
  }
  void after() {
    check_quiet(*pool, 1);
    RL_ASSERT(pool->is_closed());
    pool.reset();
  }
};

/// One slot, a blocked thread and an asynchronous waiter: the release
/// serves one, whose release serves the other. Neither is left waiting.
struct ThreadAndAsyncShareOneSlot : rl::test_suite<ThreadAndAsyncShareOneSlot, 3> {
  std::optional<Pool<int>> pool;
  std::optional<Loaned<int>> held;
  model::Shadow<1> shadow;
  AsyncWaiter waiter;

  void before() {
    pool.emplace(1, [] { return 0; });
    held.emplace(pool->acquire());
  }
  void thread(unsigned i) {
    PoolCore<int>* core = PoolAccess::core(*pool);
    if (i == 0) {
      use(shadow, *held, 100);
      held.reset();
    } else if (i == 1) {
      Loaned<int> l = pool->acquire();  // blocks
      use(shadow, l, 1);
    } else {
      if (waiter.start(core)) waiter.await();
      Loaned<int> l = result(core, waiter);
      RL_ASSERT(l);
      use(shadow, l, 2);
    }
  }
  void after() {
    check_quiet(*pool, 1);
    RL_ASSERT(pool->stats().acquires == 3);
    pool.reset();
  }
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  run.check<HandOffToAsync>("HandOffToAsync", 1, 2);
  run.check<CancelRacesRelease>("CancelRacesRelease", 5, 0);
  run.check<DeadlineRacesRelease>("DeadlineRacesRelease", 5, 0);
  run.check<CloseRacesRelease>("CloseRacesRelease", 5, 0);
  run.check<ThreadAndAsyncShareOneSlot>("ThreadAndAsyncShareOneSlot", 5, 0);
  return run.finish();
}
