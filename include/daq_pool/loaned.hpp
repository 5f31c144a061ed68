// Loaned<T>: exclusive, move-only access to one pooled item.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <optional>
#include <utility>

#include "daq_pool/debug.hpp"
#include "daq_pool/detail/pool_core.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

template <class T>
class Pool;

namespace detail {
struct LoanAccess;
}

/// An item on loan from a `Pool<T>`. It holds the slot's address, cached when
/// the loan was made, so every access is a plain pointer dereference: no lock,
/// no lookup. Destroying the loan (or `reset()`) returns the item to its pool,
/// running the pool's reset function on the destroying thread.
///
/// Move-only. A Loaned may be moved to and destroyed on any thread; one
/// Loaned object is not safe to use from two threads at once (like any
/// object). It keeps the pool's storage alive: destroying every Pool handle
/// while loans are out is safe. Two words; never allocates.
template <class T>
class Loaned {
 public:
  /// An empty loan (`operator bool` is false). Never allocates.
  Loaned() noexcept = default;

  /// Takes over `other`'s item; `other` becomes empty. Never allocates.
  Loaned(Loaned&& other) noexcept
      : core_(std::exchange(other.core_, nullptr)), slot_(std::exchange(other.slot_, nullptr)) {}

  /// Returns the currently held item (if any), then takes over `other`'s.
  Loaned& operator=(Loaned&& other) noexcept {
    if (this != &other) {
      reset();
      core_ = std::exchange(other.core_, nullptr);
      slot_ = std::exchange(other.slot_, nullptr);
    }
    return *this;
  }

  Loaned(const Loaned&) = delete;
  Loaned& operator=(const Loaned&) = delete;

  /// Returns the item to the pool. Lock-free, never allocates.
  ~Loaned() { reset(); }

  /// The item. Precondition: `*this` holds one. Lock-free (cached pointer).
  T& get() noexcept { return slot_->value; }
  /// The item. Precondition: `*this` holds one. Lock-free (cached pointer).
  const T& get() const noexcept { return slot_->value; }
  /// The item, as get(). Precondition: `*this` holds one.
  T& operator*() noexcept { return slot_->value; }
  /// The item, as get(). Precondition: `*this` holds one.
  const T& operator*() const noexcept { return slot_->value; }
  /// The item's members. Precondition: `*this` holds one.
  T* operator->() noexcept { return &slot_->value; }
  /// The item's members. Precondition: `*this` holds one.
  const T* operator->() const noexcept { return &slot_->value; }

  /// Copies the item out and returns the slot to the pool at once (seed
  /// `clone_item`). Costs one copy of T (which may allocate, as T's copy does).
  /// Precondition: `*this` holds an item.
  T clone_item() && {
    T copy(slot_->value);
    reset();
    return copy;
  }

  /// A second loan from the same pool holding a copy of this item
  /// (copy-assigned into the new slot), or nothing if no slot is free or the
  /// pool is closed. Never blocks. Precondition: `*this` holds an item.
  std::optional<Loaned> try_clone(source_location where = source_location::current()) const {
    detail::Slot<T>* s = core_->try_take_counted();
    if (s == nullptr) return std::nullopt;
    core_->note_acquired(*s, where);
    Loaned copy(core_, s);  // returns the slot if the assignment throws
    copy.slot_->value = slot_->value;
    return std::optional<Loaned>(std::move(copy));
  }

  /// The slot's index in its pool, stable for the pool's life (for logs and
  /// debugging). Precondition: `*this` holds an item.
  std::size_t slot_index() const noexcept { return slot_->index; }

  /// True while this loan holds an item (false once moved from or reset).
  explicit operator bool() const noexcept { return slot_ != nullptr; }

  /// Returns the item to the pool now; `*this` becomes empty. Lock-free,
  /// never allocates; a no-op on an empty loan.
  void reset() noexcept {
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
    // GCC 12 at -O3 warns that slot_ "may be used uninitialized" when a
    // Loaned inside a std::optional is destroyed (GCC bug 80635, a false
    // positive: the optional's engaged flag guards the call). Users who
    // build with -Werror would otherwise stop on it.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
    detail::Slot<T>* const s = slot_;
    if (s != nullptr) {
      detail::PoolCore<T>* const core = core_;
      slot_ = nullptr;
      core_ = nullptr;
      core->give_back(*s);
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  }

 private:
  friend class Pool<T>;
  friend struct detail::LoanAccess;

  Loaned(detail::PoolCore<T>* core, detail::Slot<T>* slot) noexcept : core_(core), slot_(slot) {}

  detail::PoolCore<T>* core_ = nullptr;
  detail::Slot<T>* slot_ = nullptr;
};

namespace detail {
/// Lets daq_pool's own layers (BufferPool) turn a loan into its raw parts and
/// back, e.g. to keep a loan inside a refcounted view without allocating.
struct LoanAccess {
  template <class T>
  static std::pair<PoolCore<T>*, Slot<T>*> into_raw(Loaned<T>&& loan) noexcept {
    return {std::exchange(loan.core_, nullptr), std::exchange(loan.slot_, nullptr)};
  }
  template <class T>
  static Loaned<T> from_raw(PoolCore<T>* core, Slot<T>* slot) noexcept {
    return Loaned<T>(core, slot);
  }
};
}  // namespace detail

static_assert(sizeof(Loaned<int>) == 2 * sizeof(void*), "a loan is two pointers");

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
