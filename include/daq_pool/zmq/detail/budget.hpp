// daq_pool/zmq/detail/budget.hpp: FrameSender's budget, the slot array that
// bounds how many of its frames ZeroMQ holds at once. Internal.
//
// Apart from zmq/sender.hpp so that it needs no libzmq: the Relacy model
// tests/relacy/model_zmq_budget.cpp compiles this very code with
// DAQ_POOL_USE_RELACY (every atomic an rl::atomic, a slot's view an rl::var)
// and runs the sending thread against one or two "I/O threads" running the
// free function, the sender destroyed while frees are pending.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "daq_pool/detail/abi.hpp"
#include "daq_pool/detail/atomic.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq::detail {

/// A FrameSender's budget: at most `size` of its messages held by ZeroMQ at
/// once, across every peer. One slot per message ZeroMQ may hold; the slot
/// is the free function's hint, so the free function finds the view and
/// the budget without a lookup. The block is shared by the sender and every
/// message in flight (intrusive count `refs`: 1 for the sender, 1 per
/// message), because libzmq may run a free function after the sender is
/// gone (linger, a context terminated later): the last one deletes it.
struct BudgetBlock;

/// One message's place in the budget.
struct BudgetSlot {
  /// The view's handle. Written by the sender while the slot is not busy,
  /// read by the free function while it is. Not thread-safe on its own:
  /// `busy` orders the two.
  void* view() const noexcept {
#if defined(DAQ_POOL_USE_RELACY)
    return raw($);
#else
    return raw;
#endif
  }
  /// Sets the view's handle (the sender, on a slot it just claimed).
  void set_view(void* v) noexcept {
#if defined(DAQ_POOL_USE_RELACY)
    raw($) = v;
#else
    raw = v;
#endif
  }

#if defined(DAQ_POOL_USE_RELACY)
  // Plain memory to the model checker: a read by the previous message's
  // free function that is not ordered before the sender's next write is a
  // data race.
  rl::var<void*> raw;
#else
  void* raw = nullptr;
#endif
  BudgetBlock* block = nullptr;  // constant
  // Only the sender sets it (claims a free slot); the free function clears
  // it with release after its last read of the slot, and the sender's
  // acquire load of `false` sees those reads done before it reuses the slot.
  daq_pool::detail::atomic<bool> busy{false};
};

struct BudgetBlock {
  /// Allocates a block of `n` (>= 1) slots, owned by the caller's one
  /// reference (release_owner()). Throws std::invalid_argument for 0,
  /// std::bad_alloc.
  static BudgetBlock* make(std::size_t n) {
    if (n == 0) throw std::invalid_argument("daq_pool::zmq::FrameSender: budget 0; allowed: at least 1 frame");
    return new BudgetBlock(n);
  }

  explicit BudgetBlock(std::size_t n) : size(n), slots(new BudgetSlot[n]) {
    for (std::size_t i = 0; i < n; ++i) slots[i].block = this;
  }
  ~BudgetBlock() {
#if defined(DAQ_POOL_USE_RELACY)
    // The model's "delete": a free function's read of a slot that is not
    // ordered before this write (a refcount without acq_rel) is a data race.
    for (std::size_t i = 0; i < size; ++i) slots[i].set_view(nullptr);
#endif
    delete[] slots;
  }
  BudgetBlock(const BudgetBlock&) = delete;
  BudgetBlock& operator=(const BudgetBlock&) = delete;

  /// A free slot, or nullptr if ZeroMQ holds `size` messages. Sender only.
  BudgetSlot* claim() noexcept {
    for (std::size_t k = 0; k < size; ++k) {
      BudgetSlot& slot = slots[(cursor + k) % size];
      if (!slot.busy.load(std::memory_order_acquire)) {
        slot.busy.store(true, std::memory_order_relaxed);  // only the sender writes true
        cursor = (cursor + k + 1) % size;
        // relaxed: `refs` only has to count; the deleting decrement is acq_rel.
        refs.fetch_add(1, std::memory_order_relaxed);
        held.fetch_add(1, std::memory_order_relaxed);
        return &slot;
      }
    }
    return nullptr;
  }
  /// Gives a claimed slot back (its message was never made). Sender only.
  void unclaim(BudgetSlot& slot) noexcept { drop(slot); }

  /// The free function's part, on whichever thread libzmq runs it: hands
  /// the slot's view to `release_view` (which must not throw), then frees
  /// the slot, and the block with the last reference.
  template <class ReleaseView>
  static void release(BudgetSlot& slot, ReleaseView&& release_view) noexcept {
    release_view(slot.view());
    drop(slot);
  }

  /// The end of a slot's use, on whichever thread: frees it, and the block
  /// with the last reference.
  static void drop(BudgetSlot& slot) noexcept {
    BudgetBlock* b = slot.block;
    b->held.fetch_sub(1, std::memory_order_relaxed);
    slot.busy.store(false, std::memory_order_release);
    // acq_rel: the thread that deletes sees every other thread's use done.
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete b;
  }

  /// Drops the owner's reference (FrameSender's destructor): the block goes
  /// now if no message holds a slot, else with the last free function.
  void release_owner() noexcept {
    // acq_rel: as in drop().
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// Messages ZeroMQ holds now. Thread-safe; a gauge that may be stale the
  /// moment it is read (relaxed: it orders nothing).
  std::uint64_t held_now() const noexcept { return held.load(std::memory_order_relaxed); }

  /// Calls `pause()` until no message is held or `Clock` reaches `until`;
  /// returns how many are still held.
  template <class Clock, class Pause>
  std::uint64_t drain(typename Clock::time_point until, Pause&& pause) const {
    while (held_now() != 0 && Clock::now() < until) pause();
    return held_now();
  }

  const std::size_t size;
  BudgetSlot* const slots;
  std::size_t cursor = 0;                           // sender only
  daq_pool::detail::atomic<std::uint64_t> held{0};  // messages ZeroMQ holds now (a gauge for stats)
  daq_pool::detail::atomic<std::uint32_t> refs{1};  // the owner's, plus one per claimed slot
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::zmq::detail
