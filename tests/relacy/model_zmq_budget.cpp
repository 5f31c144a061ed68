// Model check (issue 22) of FrameSender's budget (daq_pool/zmq/detail/
// budget.hpp): the slot array that bounds how many frames ZeroMQ holds at
// once. The sending thread claims a slot for each frame it hands to libzmq
// (and is refused when every slot is held); libzmq's I/O threads run the
// free function (BudgetBlock::release: read the slot's view, release it,
// free the slot, drop the block's reference), possibly after the sender is
// gone, in which case the last of them deletes the block.
//
// The library's own code, compiled with DAQ_POOL_USE_RELACY: the slots'
// `busy`, the `held` gauge and the `refs` count are rl::atomics, a slot's
// view handle an rl::var, and the block is allocated on Relacy's heap. What
// stands for libzmq is a mailbox per message (a release store that the I/O
// thread reads with acquire, as libzmq's pipes order the sender's writes
// before the I/O thread's reads). Relacy fails a model on a data race on a
// slot's view (a slot reused before the previous free function's read of it
// is ordered before the sender's write: `busy` without release/acquire; a
// block deleted before another thread's last read: `refs` without acq_rel),
// a use of the freed block, a double free or a leak (the block freed
// exactly once), or a failed assertion: more than `budget` slots taken, one
// slot held by two messages, a view released twice or never, held() not
// exact at quiescence, a freed slot not reusable.
#include "model_check.hpp"

#include "daq_pool/zmq/detail/budget.hpp"

namespace {

using daq_pool::zmq::detail::BudgetBlock;
using daq_pool::zmq::detail::BudgetSlot;

/// What a message's view stands for: its handle is the token's address.
/// Plain memory, outside Relacy's view (its threads are fibers on one OS
/// thread): bookkeeping of the model, not of the code under test.
struct View {
  int slot = -1;     // the slot it was sent with
  int released = 0;  // times the free function released it
};

/// The bookkeeping shared by the models: which message holds which slot
/// (plain memory, as View), how many are taken, and the free function's
/// callback that checks and records a release.
template <std::size_t Budget, std::size_t Frames>
struct Ledger {
  View views[Frames];
  int holder[Budget];     // the frame holding slot i, or -1
  std::size_t taken = 0;  // slots held now, as the model counts them

  void reset() {
    for (auto& v : views) v = View{};
    for (auto& h : holder) h = -1;
    taken = 0;
  }

  /// The sender got `slot` for frame `k`: it must have been free, and the
  /// budget must hold.
  void claimed(const BudgetBlock& block, BudgetSlot* slot, int k) {
    RL_ASSERT(slot != nullptr);
    const auto i = static_cast<std::size_t>(slot - block.slots);
    RL_ASSERT(i < Budget);
    RL_ASSERT(holder[i] == -1);  // never one slot for two messages in flight
    holder[i] = k;
    ++taken;
    RL_ASSERT(taken <= Budget);  // never more than the budget taken
    views[k].slot = static_cast<int>(i);
    slot->set_view(&views[k]);
  }

  /// The free function's release of a view: each once, from its own slot.
  void released(void* raw) {
    RL_ASSERT(raw != nullptr);
    View& v = *static_cast<View*>(raw);
    RL_ASSERT(v.released == 0);  // no view released twice
    RL_ASSERT(v.slot >= 0 && holder[v.slot] == &v - views);
    ++v.released;
    holder[v.slot] = -1;
    --taken;
  }

  /// Every message's view released exactly once: none lost.
  void all_released(std::size_t sent) const {
    for (std::size_t k = 0; k < sent; ++k) RL_ASSERT(views[k].released == 1);
    RL_ASSERT(taken == 0);
  }
};

/// libzmq's pipe from the sending thread to an I/O thread: one mailbox per
/// message.
template <std::size_t N>
struct Pipe {
  rl::atomic<BudgetSlot*> box[N];
  void reset() {
    for (auto& b : box) b.store(nullptr, std::memory_order_relaxed);
  }
  void send(std::size_t j, BudgetSlot* slot) { box[j].store(slot, std::memory_order_release); }
  BudgetSlot* receive(std::size_t j) {
    BudgetSlot* slot;
    while ((slot = box[j].load(std::memory_order_acquire)) == nullptr) rl::yield(1, $);
    return slot;
  }
};

/// The sender claims a slot for frame `k`, retrying while it is refused
/// over budget (an I/O thread frees one eventually), and sets its view.
template <class L>
BudgetSlot* claim_for(BudgetBlock& block, L& ledger, int k) {
  BudgetSlot* slot;
  while ((slot = block.claim()) == nullptr) rl::yield(1, $);
  ledger.claimed(block, slot, k);
  return slot;
}

/// Budget 2, four frames, two I/O threads (frame k freed by thread 1 + k % 2,
/// so slots come back out of order): the sender is refused while both
/// slots are held and reuses each slot as soon as it is free, reading
/// held() after every send; then drain() (a bounded wait) and the sender
/// goes, perhaps with frees still pending: the last one out deletes the
/// block.
struct TwoIoThreads : rl::test_suite<TwoIoThreads, 3> {
  static constexpr std::size_t budget = 2, frames = 4;
  BudgetBlock* block = nullptr;
  Ledger<budget, frames> ledger;
  Pipe<frames / 2> pipe[2];

  void before() {
    ledger.reset();
    pipe[0].reset();
    pipe[1].reset();
    model::TickClock::reset();
    block = BudgetBlock::make(budget);
  }
  void thread(unsigned i) {
    if (i == 0) {
      for (int k = 0; k < static_cast<int>(frames); ++k) {
        BudgetSlot* slot = claim_for(*block, ledger, k);
        pipe[k % 2].send(static_cast<std::size_t>(k / 2), slot);
        RL_ASSERT(block->held_now() <= budget);
      }
      // drain(): first one look (the deadline already reached, as a close
      // that cannot wait), then a bounded wait. It reads 0 only after every
      // free function's decrement: every view released by then.
      const auto pause = [] { rl::yield(1, $); };
      std::uint64_t left = block->drain<model::TickClock>(model::TickClock::after(1), pause);
      RL_ASSERT(left <= budget);
      if (left == 0) ledger.all_released(frames);
      left = block->drain<model::TickClock>(model::TickClock::after(8), pause);
      RL_ASSERT(left <= budget);
      if (left == 0) ledger.all_released(frames);
      block->release_owner();  // ~FrameSender
    } else {
      for (std::size_t j = 0; j < frames / 2; ++j) {
        BudgetSlot* slot = pipe[i - 1].receive(j);
        BudgetBlock::release(*slot, [this](void* raw) { ledger.released(raw); });
      }
    }
  }
  void after() { ledger.all_released(frames); }
};

/// Budget 2, three frames, one I/O thread, the sender kept: the third frame
/// must wait for a freed slot and reuse it. At quiescence, held() is exactly
/// 0, every slot is free, the whole budget can be claimed again (and one
/// more claim is refused), and a slot freed while the cursor points at a
/// held one is found.
struct HeldAtQuiescence : rl::test_suite<HeldAtQuiescence, 2> {
  static constexpr std::size_t budget = 2, frames = 3;
  BudgetBlock* block = nullptr;
  Ledger<budget, frames> ledger;
  Pipe<frames> pipe;

  void before() {
    ledger.reset();
    pipe.reset();
    block = BudgetBlock::make(budget);
  }
  void thread(unsigned i) {
    if (i == 0) {
      for (int k = 0; k < static_cast<int>(frames); ++k) {
        BudgetSlot* slot = claim_for(*block, ledger, k);
        pipe.send(static_cast<std::size_t>(k), slot);
        RL_ASSERT(block->held_now() <= budget);
      }
    } else {
      for (std::size_t j = 0; j < frames; ++j) {
        BudgetSlot* slot = pipe.receive(j);
        BudgetBlock::release(*slot, [this](void* raw) { ledger.released(raw); });
      }
    }
  }
  void after() {
    ledger.all_released(frames);
    RL_ASSERT(block->held_now() == 0);  // exact at quiescence
    for (std::size_t s = 0; s < budget; ++s) RL_ASSERT(!block->slots[s].busy.load(std::memory_order_relaxed));
    // Every freed slot is claimable again: the whole budget, then a refusal.
    BudgetSlot* a = block->claim();
    BudgetSlot* b = block->claim();
    RL_ASSERT(a != nullptr && b != nullptr && a != b);
    RL_ASSERT(block->claim() == nullptr);
    RL_ASSERT(block->held_now() == budget);
    // The cursor is back at `a`, which stays held; `b` is freed: found.
    block->unclaim(*b);
    BudgetSlot* again = block->claim();
    RL_ASSERT(again == b);
    block->unclaim(*again);
    block->unclaim(*a);
    RL_ASSERT(block->held_now() == 0);
    block->release_owner();
  }
};

/// The sender goes first: it sends frame 0 (I/O thread 1), claims a slot
/// for frame 1 and gives it back unused (libzmq could not make the
/// message), claims again for frame 2 (I/O thread 2) and is destroyed at
/// once. The two free functions race each other and the sender's
/// release_owner(): whichever drops the last reference deletes the block,
/// exactly once, after every other thread's last use of it.
struct SenderGoesFirst : rl::test_suite<SenderGoesFirst, 3> {
  static constexpr std::size_t budget = 2, frames = 3;
  BudgetBlock* block = nullptr;
  Ledger<budget, frames> ledger;
  Pipe<1> pipe[2];

  void before() {
    ledger.reset();
    pipe[0].reset();
    pipe[1].reset();
    block = BudgetBlock::make(budget);
  }
  void thread(unsigned i) {
    if (i == 0) {
      BudgetSlot* first = claim_for(*block, ledger, 0);
      pipe[0].send(0, first);
      BudgetSlot* unused = block->claim();  // the other slot: free from the start
      RL_ASSERT(unused != nullptr && unused != first);
      block->unclaim(*unused);
      // The sender's own unclaim is visible to it: a slot is free, whatever
      // the I/O thread did with `first`.
      BudgetSlot* third = block->claim();
      RL_ASSERT(third != nullptr);
      ledger.claimed(*block, third, 2);
      pipe[1].send(0, third);
      block->release_owner();  // ~FrameSender with two frames possibly in flight
    } else {
      BudgetSlot* slot = pipe[i - 1].receive(0);
      BudgetBlock::release(*slot, [this](void* raw) { ledger.released(raw); });
    }
  }
  void after() {
    RL_ASSERT(ledger.views[0].released == 1 && ledger.views[2].released == 1);
    RL_ASSERT(ledger.views[1].released == 0 && ledger.taken == 0);
  }
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  run.check<TwoIoThreads>("TwoIoThreads", 1, 2);
  run.check<HeldAtQuiescence>("HeldAtQuiescence", 1, 2);
  run.check<SenderGoesFirst>("SenderGoesFirst", 1, 2);
  return run.finish();
}
