// The queue under each subscriber of a Broadcast (daq_pool/broadcast.hpp): a
// bounded ring with ONE producer (the publishing thread) and any number of
// takers (the subscriber, plus rarely the publisher evicting the oldest frame
// for a keep-latest subscriber, or a leaving subscriber and the publisher
// draining what is left).
//
// Why this ring and not a plain SPSC ring (two indices): a keep-latest
// subscriber needs the *producer* to take the oldest element out of a full
// ring, and a leaving subscriber's last frames may be drained by the
// publisher while the subscriber drains them too. With two takers, the
// take must be claimed before the element is moved out, and the producer
// must not refill a claimed slot until the move is done. Per-slot sequence
// numbers (D. Vyukov's bounded queue) give exactly that: a taker claims
// position p by a CAS on `head_`, moves the element out, then stamps the slot
// free for position p + slots; the producer writes position p only once the
// slot says p. The producer decides "full" from the sequence number of the
// slot `capacity` positions back (a taker stamps it when done), reads `head_`
// only for the high water mark (one relaxed load), and a taker never reads
// `tail_`.
//
// Why not a ring of raw pointers / indices: the element is a Bytes view
// (three words); moving it in and out of a slot that only one thread owns at
// a time needs no atomics beyond the slot's sequence number, and nothing is
// allocated after construction.
//
// The ring has a power-of-two number of slots, at least capacity + 1, so a
// slot claimed by a slow taker is never the one the producer needs next
// while the ring holds fewer than `capacity` elements.
//
// Memory orders: the slot's sequence number is the hand-off. The producer's
// store of p + 1 (after writing the value) is a release, paired with a
// taker's acquire load before it moves the value out; a taker's store of
// p + slots (after moving out) is a release, paired with the producer's
// acquire load before it overwrites the slot. The producer's publishing store
// and a taker's loads of the sequence number are seq_cst because the
// Broadcast's sleep/wake and leave handshakes are Dekker-style (store my
// flag, then load yours): see broadcast.hpp.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "daq_pool/detail/atomic.hpp"
#include "daq_pool/detail/config.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// The smallest power of two >= n (n >= 1, n <= 2^62).
constexpr std::size_t ring_slots_for(std::size_t n) noexcept {
  std::size_t s = 1;
  while (s < n) s <<= 1;
  return s;
}

template <class T>
class BroadcastRing {
 public:
  /// A ring holding at most `capacity` (>= 1) elements. Allocates its slots
  /// (the only allocation). Not thread-safe.
  explicit BroadcastRing(std::size_t capacity)
      : capacity_(capacity), mask_(ring_slots_for(capacity + 1) - 1), slots_(new Slot[mask_ + 1]) {
    for (std::size_t i = 0; i <= mask_; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
  }
  BroadcastRing(const BroadcastRing&) = delete;
  BroadcastRing& operator=(const BroadcastRing&) = delete;

  /// Most elements the ring holds. Never allocates.
  std::size_t capacity() const noexcept { return capacity_; }

  /// Producer only. Moves `v` in and returns the number of elements queued
  /// (>= 1), or returns 0 and leaves `v` alone if the ring holds `capacity`
  /// elements (or, rarely, if the slot is still being emptied by a taker).
  /// Lock-free, never allocates.
  std::size_t try_push(T& v) noexcept {
    const std::uint64_t pos = tail_.load(std::memory_order_relaxed);  // only this thread writes it
    // Full iff the element `capacity` positions back has not been taken and
    // its slot emptied yet. Judged on that slot's sequence number, not on
    // head_: a taker stamps the slot (seq_cst) *before* it looks whether the
    // publisher waits for room, and the publisher stores that it waits
    // *before* this load (seq_cst): one of them sees the other (Dekker).
    if (pos >= capacity_) {
      const std::uint64_t oldest = pos - capacity_;
      if (slots_[oldest & mask_].seq.load(std::memory_order_seq_cst) == oldest + 1) return 0;
    }
    Slot& s = slots_[pos & mask_];
    // acquire: pairs with the release in try_pop(): the taker's move out of
    // this slot happened before we overwrite it.
    if (s.seq.load(std::memory_order_acquire) != pos) return 0;
    s.value = std::move(v);
    // seq_cst (a release at least: the value is visible to the taker that
    // sees pos + 1): the Broadcast loads the subscriber's `waiting` and
    // `left` flags right after this store, Dekker-style.
    s.seq.store(pos + 1, std::memory_order_seq_cst);
    tail_.store(pos + 1, std::memory_order_relaxed);
    // The depth, for the high water mark. relaxed: a stale head can only
    // overstate it, hence the clamp; a taker may already have taken this
    // very element (depth 0), and 0 means "not pushed", hence the 1.
    const std::uint64_t depth = pos + 1 - head_.load(std::memory_order_relaxed);
    return depth == 0 ? 1 : static_cast<std::size_t>(depth < capacity_ ? depth : capacity_);
  }

  /// Any thread. Moves the oldest element into `out` and returns true, or
  /// returns false if the ring is empty. Lock-free, never allocates.
  bool try_pop(T& out) noexcept {
    std::uint64_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& s = slots_[pos & mask_];
      // seq_cst (an acquire at least: pairs with the producer's store of
      // pos + 1, so the value is there): the other half of the Dekker
      // handshakes in broadcast.hpp (a sleeper stores `waiting`, then looks).
      const std::uint64_t seq = s.seq.load(std::memory_order_seq_cst);
      const auto diff = static_cast<std::int64_t>(seq - (pos + 1));
      if (diff == 0) {
        // relaxed: the claim orders nothing by itself; the slot's sequence
        // number carries the value both ways.
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed, std::memory_order_relaxed)) {
          out = std::move(s.value);
          s.value = T{};  // the ring keeps no reference once taken
          // release: pairs with the producer's acquire in try_push(). seq_cst:
          // a blocked publisher stores its `producer_waiting` flag, then
          // retries; a block subscriber loads that flag right after this.
          s.seq.store(pos + mask_ + 1, std::memory_order_seq_cst);
          return true;
        }
        // CAS failed: pos now holds the current head; look again.
      } else if (diff < 0) {
        return false;  // the producer has not filled position pos yet: empty
      } else {
        pos = head_.load(std::memory_order_relaxed);  // another taker took pos: catch up
      }
    }
  }

  /// Elements queued right now (taken but not yet emptied slots excluded).
  /// Any thread; stale the moment it is read.
  std::size_t size() const noexcept {
    const std::uint64_t h = head_.load(std::memory_order_relaxed);
    const std::uint64_t t = tail_.load(std::memory_order_relaxed);
    return t > h ? static_cast<std::size_t>(t - h) : 0;
  }

  /// True if try_push() would refuse for lack of room right now. Producer
  /// only (it reads tail_ as the producer knows it). seq_cst: as try_push().
  bool full() const noexcept {
    const std::uint64_t pos = tail_.load(std::memory_order_relaxed);
    if (pos < capacity_) return false;
    const std::uint64_t oldest = pos - capacity_;
    return slots_[oldest & mask_].seq.load(std::memory_order_seq_cst) == oldest + 1;
  }

  /// True if a taker would find an element right now. Any thread.
  bool ready() const noexcept {
    const std::uint64_t pos = head_.load(std::memory_order_relaxed);
    // seq_cst: as in try_pop().
    return slots_[pos & mask_].seq.load(std::memory_order_seq_cst) == pos + 1;
  }

 private:
  struct Slot {
    atomic<std::uint64_t> seq{0};
    T value{};
  };

  std::size_t capacity_;
  std::size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  // Each index on its own cache line: the producer writes tail_, the
  // subscriber head_; sharing a line would bounce it on every frame.
  alignas(cache_line) atomic<std::uint64_t> tail_{0};
  alignas(cache_line) atomic<std::uint64_t> head_{0};
  char pad_[cache_line - sizeof(atomic<std::uint64_t>)] = {};
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
