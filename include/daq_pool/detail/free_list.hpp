// A pool's free list: a lock-free LIFO of slots (a Treiber stack) whose head
// word also carries the pool's state flags.
//
// The head is one 64-bit word:
//
//   bits  0..31  index of the top slot (empty_index: no free slot)
//   bit  32      closed:   pops fail (close(), or the last Pool handle gone)
//   bit  33      waiters:  someone waits in the pool's waiter list; a release
//                          must hand its slot over instead of pushing it
//   bit  34      orphaned: the last Pool handle is gone; a release counts
//                          itself off the pool's lifetime instead of pushing
//   bits 35..63  tag (29 bits), incremented by every pop and every push: a
//                pop that read a stale head fails its CAS instead of
//                installing a stale link (the ABA problem; a stale pop would
//                need exactly 2^29 pushes and pops to happen between its
//                load and its CAS to go wrong). Pushes count too so that a
//                head value names one state of the list: see guess().
//
// Why the flags live in the head: a release's push and "is anybody waiting,
// is the pool orphaned?" are then one CAS. A push that succeeds saw neither
// flag, so the releaser is done: it never touches the pool again, which is
// what lets the last handle destroy the pool without a reference count on
// the acquire/release path (see PoolCore). A waiter sets `waiters` with a CAS
// that also checks the list is empty, so a push either comes first (the CAS
// fails and the waiter re-checks) or sees the flag: no wake-up can be lost.
// Everything is one memory location, so plain acquire/release orders do;
// no seq_cst total order is needed.
//
// Every node also records its depth (free slots at or below it), so the
// number of free slots is the top node's depth: available() is O(1) and the
// high-water mark needs no counter on the hot path.
//
// The links live in the nodes (`index`, atomic `next` and `depth`;
// `node_of(i)` finds node i), so nothing here allocates. LIFO on purpose:
// the most recently returned item is the one still in cache.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstdint>
#include <type_traits>

#include "daq_pool/detail/atomic.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

class FreeList {
 public:
  static constexpr std::uint32_t empty_index = 0xFFFF'FFFFu;
  static constexpr std::uint64_t closed_bit = std::uint64_t{1} << 32;
  static constexpr std::uint64_t waiters_bit = std::uint64_t{1} << 33;
  static constexpr std::uint64_t orphaned_bit = std::uint64_t{1} << 34;
  static constexpr std::uint64_t flag_bits = closed_bit | waiters_bit | orphaned_bit;
  /// Node indices stay below this (bit 31 marks tentative guesses).
  static constexpr std::uint32_t max_nodes = 0x7FFF'FFFFu;
  /// One step of the tag: it occupies the top bits, so it wraps by itself.
  static constexpr std::uint64_t tag_one = std::uint64_t{1} << 35;

  /// A popped node and the number of free slots left after the pop.
  template <class Node>
  struct Popped {
    Node* node = nullptr;
    std::uint32_t free_after = 0;
  };

  static constexpr std::uint32_t top(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h); }
  static constexpr bool is_empty(std::uint64_t h) noexcept { return top(h) == empty_index; }
  static constexpr bool is_closed(std::uint64_t h) noexcept { return (h & closed_bit) != 0; }
  static constexpr bool has_waiters(std::uint64_t h) noexcept { return (h & waiters_bit) != 0; }
  static constexpr bool is_orphaned(std::uint64_t h) noexcept { return (h & orphaned_bit) != 0; }

  /// The head word now. acquire: the top node's links and depth, written
  /// before the release CAS that pushed it, are visible to the caller.
  std::uint64_t load() const noexcept { return head_.load(std::memory_order_acquire); }

  /// Free slots in head word `h` (the top node's depth). Never allocates.
  template <class NodeOf>
  static std::uint32_t depth(std::uint64_t h, NodeOf&& node_of) noexcept {
    return is_empty(h) ? 0 : node_of(top(h)).depth.load(std::memory_order_relaxed);
  }

  /// Pops the top node, or nothing if the list is empty or closed.
  /// Lock-free (one CAS when uncontended), never allocates.
  template <class NodeOf>
  auto pop(NodeOf&& node_of) noexcept {
    using Node = std::remove_reference_t<decltype(node_of(0))>;
    std::uint64_t h = as_head(guess());
    for (;;) {
      if (is_closed(h) || is_empty(h)) {
        // Only the real head may say "nothing to pop".
        const std::uint64_t real = load();
        if (real == h) return Popped<Node>{};
        h = real;
        continue;
      }
      Node& node = node_of(top(h));
      // Possibly stale if the node was popped and pushed again meanwhile;
      // then the tag has moved and the CAS fails.
      const std::uint32_t next = node.next.load(std::memory_order_relaxed);
      const std::uint32_t depth_here = node.depth.load(std::memory_order_relaxed);
      const std::uint64_t popped = ((h & ~index_mask) + tag_one) | next;
      // acquire (success): pairs with the release of the push that freed the
      // node, so its previous user's writes (and the reset's) are visible to
      // the new user. acquire (failure): the reloaded top's links are fresh.
      if (head_.compare_exchange_strong(h, popped, std::memory_order_acq_rel, std::memory_order_acquire)) {
        publish_guess(popped);
        return Popped<Node>{&node, depth_here - 1};
      }
    }
  }

  /// Pushes `node` unless the head carries `waiters` or `orphaned`; returns
  /// false (nothing changed) if it does. Lock-free (one CAS when
  /// uncontended), never allocates. After a true return the caller must not
  /// touch the pool again: the slot is free and the pool may be gone.
  template <class Node, class NodeOf>
  bool push_unless_flagged(Node& node, NodeOf&& node_of) noexcept {
    // A head that existed: a confirmed guess (left by a CAS that succeeded),
    // else the real head. Never a tentative guess, which may name a head
    // that never came (see guess()). On failure the CAS returns the real head.
    std::uint64_t h = guess();
    bool real = false;
    for (;;) {
      if (!real && (is_tentative(h) || (h & (waiters_bit | orphaned_bit)) != 0)) {
        // Only the real head may send the caller down the slow path.
        h = load();
        real = true;
        continue;
      }
      if ((h & (waiters_bit | orphaned_bit)) != 0) return false;
      link(node, h, node_of);
      const std::uint64_t pushed_head = pushed(node, h, 0);
      // The guess goes first, marked tentative: once the CAS succeeds the
      // slot is free, and the pool may be destroyed before this thread's next
      // instruction (a guess of a head that never comes only costs a popper
      // a failed CAS).
      publish_guess(pushed_head | tentative_bit);
      // release (success): publishes the item and the links to the thread
      // that pops the node. The last access to the pool.
      if (head_.compare_exchange_strong(h, pushed_head, std::memory_order_acq_rel, std::memory_order_acquire))
        return true;
      real = true;
    }
  }

  /// One attempt to push `node` onto exactly head `h`, clearing the flags in
  /// `clear`. On failure `h` is the current head. For the waiter-list paths
  /// (called under the pool's waiter lock, which keeps the pool alive after
  /// the CAS). Never allocates.
  template <class Node, class NodeOf>
  bool try_push(std::uint64_t& h, Node& node, NodeOf&& node_of, std::uint64_t clear) noexcept {
    link(node, h, node_of);
    const std::uint64_t pushed_head = pushed(node, h, clear);
    if (!head_.compare_exchange_strong(h, pushed_head, std::memory_order_acq_rel, std::memory_order_acquire))
      return false;
    publish_guess(pushed_head);
    return true;
  }

  /// One attempt to change the flags of exactly head `h` (set `set`, clear
  /// `clear`); the top and the tag stay. On failure `h` is the current head.
  bool try_update_flags(std::uint64_t& h, std::uint64_t set, std::uint64_t clear) noexcept {
    return head_.compare_exchange_strong(h, (h & ~clear) | set, std::memory_order_acq_rel, std::memory_order_acquire);
  }

  /// Sets the flags in `set` and clears those in `clear`, whatever the head;
  /// returns the head as it was just before. Lock-free.
  std::uint64_t update_flags(std::uint64_t set, std::uint64_t clear) noexcept {
    std::uint64_t h = load();
    while (!try_update_flags(h, set, clear)) {
    }
    return h;
  }

 private:
  static constexpr std::uint64_t index_mask = 0xFFFF'FFFFu;
  /// Marks a guess published by a push before its CAS. Bit 31 of the index:
  /// free in every non-empty head (indices stay below SlotTable's max_slots,
  /// 2^31 - 1), and a pushed head is never empty.
  static constexpr std::uint64_t tentative_bit = std::uint64_t{1} << 31;

  static constexpr bool is_tentative(std::uint64_t g) noexcept { return (g & tentative_bit) != 0 && !is_empty(g); }
  /// The head value guess `g` names (the mark stripped).
  static constexpr std::uint64_t as_head(std::uint64_t g) noexcept { return is_tentative(g) ? g & ~tentative_bit : g; }

  /// The expected head for the next CAS: the head as the last CAS left it
  /// (or is about to leave it). Not the head itself: loading the word a
  /// locked instruction has just written waits for that instruction to
  /// retire, while this copy is written with a plain store. A wrong guess
  /// only costs a failed CAS, which returns the real head.
  ///
  /// A push publishes its guess *before* its CAS, because after a successful
  /// push the pool may be gone (see PoolCore), and marks it tentative. So a
  /// guess may name a head that never comes (the push's CAS failed): a pop's
  /// CAS against it fails. And it can't name a different state with the
  /// same value, because every push and pop moves the tag and a push links
  /// only onto heads that existed (a confirmed guess, left by a successful
  /// CAS, or a real load; never a tentative guess): all heads with one tag
  /// have the same top, so equal guesses carry equal links. A push that
  /// linked onto a tentative guess could link onto another push's
  /// never-come head (t, X) and publish (t+1, Y) with Y -> X, then retry on
  /// the real (t, Z) and publish (t+1, Y) again with Y -> Z: a pop that read
  /// the first guess and the link X would install X, which is not free
  /// (tests/relacy/model_free_list.cpp, GuessedHead). A stale confirmed
  /// guess is harmless: the head with its tag is gone, so a CAS against it,
  /// or against the value a push makes from it, fails. acquire: pairs with
  /// publish_guess(), so the guessed top's links, written before the guess,
  /// are visible.
  std::uint64_t guess() const noexcept { return guess_.load(std::memory_order_acquire); }
  void publish_guess(std::uint64_t h) noexcept { guess_.store(h, std::memory_order_release); }

  template <class Node, class NodeOf>
  static void link(Node& node, std::uint64_t h, NodeOf&& node_of) noexcept {
    node.next.store(top(h), std::memory_order_relaxed);
    node.depth.store(depth(h, node_of) + 1, std::memory_order_relaxed);
  }
  template <class Node>
  static std::uint64_t pushed(const Node& node, std::uint64_t h, std::uint64_t clear) noexcept {
    return (((h & ~index_mask) & ~clear) + tag_one) | node.index;
  }

  atomic<std::uint64_t> head_{empty_index};
  atomic<std::uint64_t> guess_{empty_index};  // same cache line: written right after head_
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
