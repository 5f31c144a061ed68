// A lock-free LIFO of slot indices (a Treiber stack), the free list of a pool.
//
// The links live in the nodes themselves (a node has `index` and an atomic
// `next`; `node_of(i)` finds node i), so pushing and popping never allocate. The head packs the top index with a
// 32-bit tag that every pop increments: a pop that read a stale head fails its
// CAS instead of installing a stale link (the ABA problem).
// LIFO on purpose: the most recently returned item is the one still in cache.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstdint>

#include "daq_pool/detail/atomic.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

class IndexStack {
 public:
  static constexpr std::uint32_t empty_index = 0xFFFF'FFFFu;

  /// Pushes `node`. Lock-free, never allocates.
  template <class Node>
  void push(Node& node) noexcept {
    const std::uint32_t i = node.index;
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    do {
      node.next.store(index_of(head), std::memory_order_relaxed);
      // seq_cst (not just release): the pool's Parking protocol needs this
      // store in the single total order with the waiters' re-check. The
      // release half publishes the item (and the link) to the popping thread.
    } while (!head_.compare_exchange_weak(head, pack(i, tag_of(head)), std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
  }

  /// Pops the top node (found with `node_of(index)`), or nullptr if the stack
  /// is empty. Lock-free, never allocates.
  template <class NodeOf>
  auto* pop(NodeOf&& node_of) noexcept {
    // acquire half: pairs with the release in push, so the popped item's
    // contents (and its link) written before the push are visible here.
    // seq_cst: an empty result is the waiter's re-check in the Parking
    // protocol and must sit in the total order with push (free on x86).
    std::uint64_t head = head_.load(std::memory_order_seq_cst);
    for (;;) {
      const std::uint32_t top = index_of(head);
      if (top == empty_index) return decltype(&node_of(top)){nullptr};
      auto& node = node_of(top);
      // The link may be stale if `top` was popped and pushed again meanwhile;
      // then the tag has moved and the CAS below fails.
      const std::uint32_t next = node.next.load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(head, pack(next, tag_of(head) + 1), std::memory_order_seq_cst,
                                      std::memory_order_seq_cst))
        return &node;
    }
  }

  /// True if the stack looked empty at the moment of the load.
  bool looks_empty() const noexcept { return index_of(head_.load(std::memory_order_seq_cst)) == empty_index; }

 private:
  static constexpr std::uint64_t pack(std::uint32_t index, std::uint32_t tag) noexcept {
    return (std::uint64_t{tag} << 32) | index;
  }
  static constexpr std::uint32_t index_of(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h); }
  static constexpr std::uint32_t tag_of(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h >> 32); }

  atomic<std::uint64_t> head_{pack(empty_index, 0)};
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
