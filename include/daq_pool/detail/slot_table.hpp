// Where a pool's items live: slots in geometrically sized buckets.
//
// Slot i is found in O(1) with a bit scan, and growing only appends a bucket,
// so a slot never moves: pointers cached by loans stay valid while other
// threads grow the pool. Each slot is cache-line aligned so that two threads
// holding neighbouring slots don't false-share.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>

#include "daq_pool/debug.hpp"
#include "daq_pool/detail/atomic.hpp"
#include "daq_pool/detail/config.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// One pooled item and its bookkeeping. `value` is constructed only while
/// `alive` (a retired slot holds no object).
template <class T>
struct alignas(std::max(cache_line, alignof(T))) Slot {
  Slot() noexcept {}
  ~Slot() {}
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  union {
    T value;  // first member: a Slot* is also the item's address
  };
  atomic<std::uint32_t> next{0};   // free-list link (FreeList, IndexStack)
  atomic<std::uint32_t> depth{0};  // free slots at or below this one while free (FreeList)
  std::uint32_t index = 0;
  bool alive = false;
  // Written only by the thread that holds the slot (or is returning it), so a
  // relaxed load + store is race-free; atomics only so stats() may read them.
  atomic<std::uint64_t> loans{0};
  atomic<std::uint64_t> returns{0};
#if DAQ_POOL_DEBUG
  // Debug builds only, guarded by the pool's debug mutex: on loan right
  // now, and where the loan was acquired.
  bool debug_lent = false;
  source_location debug_acquired_at{};
#endif
};

template <class T>
class SlotTable {
 public:
  /// Largest number of slots a pool can have (indices are 32-bit, one value
  /// is the free list's "empty" marker).
  static constexpr std::size_t max_slots = 0x7FFF'FFFFu;

  /// Reserves nothing yet; `capacity` (<= max_slots) bounds ensure().
  explicit SlotTable(std::size_t capacity) noexcept : capacity_(capacity) {
#if defined(DAQ_POOL_USE_RELACY)
    // rl::atomic's default constructor leaves the value unset (std::atomic's
    // value-initializes it); the model checker flags reading it.
    for (auto& b : buckets_) b.store(nullptr, std::memory_order_relaxed);
#endif
  }
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;

  /// Frees the buckets. Objects in slots must have been destroyed before.
  ~SlotTable() {
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      Slot<T>* p = buckets_[b].load(std::memory_order_relaxed);
      if (p == nullptr) continue;
      for (std::size_t k = 0; k < bucket_length(b); ++k) p[k].~Slot<T>();
      ::operator delete (p, std::align_val_t{alignof(Slot<T>)});
    }
  }

  /// Makes sure slots [0, count) have storage. Not thread-safe with itself
  /// (the pool serializes growth); safe against concurrent slot() calls for
  /// indices below the previous count. Throws std::bad_alloc.
  void ensure(std::size_t count) {
    for (std::size_t b = 0; bucket_first(b) < count; ++b) {
      if (buckets_[b].load(std::memory_order_relaxed) != nullptr) continue;
      const std::size_t n = bucket_length(b);
      auto* p = static_cast<Slot<T>*>(::operator new (n * sizeof(Slot<T>), std::align_val_t{alignof(Slot<T>)}));
      for (std::size_t k = 0; k < n; ++k) ::new (static_cast<void*>(p + k)) Slot<T>();
      // release: a thread that later learns an index in this bucket (through
      // the free list or a loan) also sees the bucket's contents.
      buckets_[b].store(p, std::memory_order_release);
    }
  }

  /// The slot with index `i`, which must have storage. Lock-free, O(1).
  Slot<T>& slot(std::uint32_t i) const noexcept {
    const std::uint64_t j = std::uint64_t{i} + first_bucket_length;
    const auto b = static_cast<std::size_t>(std::bit_width(j)) - (first_bucket_shift + 1);
    return buckets_[b].load(std::memory_order_acquire)[j - (std::uint64_t{1} << (b + first_bucket_shift))];
  }

  std::size_t capacity() const noexcept { return capacity_; }

 private:
  // Bucket b holds indices [2^(b+5) - 32, 2^(b+6) - 32), cut at capacity.
  static constexpr std::size_t first_bucket_shift = 5;
  static constexpr std::size_t first_bucket_length = std::size_t{1} << first_bucket_shift;
  static constexpr std::size_t bucket_first(std::size_t b) noexcept {
    return (std::size_t{1} << (b + first_bucket_shift)) - first_bucket_length;
  }
  std::size_t bucket_length(std::size_t b) const noexcept {
    return std::min(std::size_t{1} << (b + first_bucket_shift), capacity_ - bucket_first(b));
  }

  std::size_t capacity_;
  std::array<atomic<Slot<T>*>, 27> buckets_{};
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
