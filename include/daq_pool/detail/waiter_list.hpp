// The waiters of one pool: blocked threads and asynchronous operations (an
// asio coroutine, any event loop) waiting for a slot, in one FIFO list.
//
// Intrusive: a node is part of its waiter (a blocked thread's stack frame,
// an asynchronous operation's state), so queueing never allocates. Every
// field of a queued node is guarded by the pool's waiter lock; once a node
// is served (unlinked, its state set) it belongs to its waiter again.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstdint>

#include "daq_pool/detail/parking.hpp"
#include "daq_pool/detail/slot_table.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// Where a waiter stands. Written under the waiter lock.
enum class WaitState : std::uint8_t {
  idle,       // not queued (yet)
  queued,     // in the list
  granted,    // served: `slot` is the waiter's loan now
  woken,      // served (a thread's first turn): a slot was freed for it to take; retry
  closed,     // served by close(): no slot
  cancelled,  // removed by a cancellation: no slot
  timed_out,  // removed by its deadline: no slot
};

/// One waiter. A thread waiter has a parking spot; an asynchronous waiter
/// has `on_complete`, which the thread that serves it calls once, after
/// releasing the waiter lock (never with the lock held, never inline in the
/// waiter's own initiating call): the waiter's adapter must not run user
/// code there, only schedule it (asio.hpp posts the completion handler).
template <class T>
struct WaiterNode {
  using Complete = void (*)(WaiterNode&) noexcept;

  /// A thread waiter, sleeping on `spot`.
  explicit WaiterNode(ParkingSpot& spot) noexcept : parker(&spot) {}
  /// An asynchronous waiter, completed through `complete`.
  explicit WaiterNode(Complete complete) noexcept : on_complete(complete) {}
  WaiterNode(const WaiterNode&) = delete;
  WaiterNode& operator=(const WaiterNode&) = delete;

  bool is_async() const noexcept { return on_complete != nullptr; }

  WaiterNode* prev = nullptr;
  WaiterNode* next = nullptr;
  Slot<T>* slot = nullptr;           // set with WaitState::granted
  const void* cancel_key = nullptr;  // matched by PoolCore::abort_wait_by_key
  ParkingSpot* parker = nullptr;     // thread waiters
  Complete on_complete = nullptr;    // asynchronous waiters
  WaitState state = WaitState::idle;
  bool starving = false;  // a thread that lost its turn once: served directly next time
};

/// FIFO of waiter nodes. Not thread-safe: the pool's waiter lock guards it.
/// Never allocates.
template <class T>
class WaiterList {
 public:
  using Node = WaiterNode<T>;

  bool empty() const noexcept { return first_ == nullptr; }
  Node* front() const noexcept { return first_; }

  void push_back(Node& n) noexcept {
    n.prev = last_;
    n.next = nullptr;
    (last_ != nullptr ? last_->next : first_) = &n;
    last_ = &n;
  }
  void push_front(Node& n) noexcept {
    n.prev = nullptr;
    n.next = first_;
    (first_ != nullptr ? first_->prev : last_) = &n;
    first_ = &n;
  }
  void unlink(Node& n) noexcept {
    (n.prev != nullptr ? n.prev->next : first_) = n.next;
    (n.next != nullptr ? n.next->prev : last_) = n.prev;
    n.prev = n.next = nullptr;
  }
  /// The queued node whose cancel_key is `key`, or nullptr. O(waiters).
  Node* find(const void* key) const noexcept {
    for (Node* n = first_; n != nullptr; n = n->next)
      if (n->cancel_key == key) return n;
    return nullptr;
  }

 private:
  Node* first_ = nullptr;
  Node* last_ = nullptr;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
