// daq_pool/shm/detail/flight_table.hpp: the server's record of the frames
// one subscriber holds. Internal.
#pragma once

#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm::detail {

/// The views one subscriber holds: one entry per frame sent to it and not
/// yet released, at most `slots` of them, in a table sized once. The slot of
/// an entry travels in the frame descriptor and comes back in the release,
/// with the frame's sequence number: a release drops a view only if both
/// match a held entry, so a duplicate, stale, forged or out-of-range release
/// can never drop a view twice or another frame's view (and a table is one
/// subscriber's: never another subscriber's).
///
/// Not thread-safe (the Server guards each table with its subscriber's
/// mutex). Only init() allocates.
class FlightTable {
 public:
  /// What release() made of a release entry.
  enum class Verdict {
    released,      ///< valid: its view was moved out for dropping
    malformed,     ///< its reserved field was not 0
    out_of_range,  ///< a slot the table does not have
    stale,         ///< a slot not held, or held for another sequence (duplicate or forged)
  };

  /// Sizes the table (allocates once). Precondition: nothing held.
  void init(std::size_t count) {
    entries_ = std::make_unique<Entry[]>(count);
    free_ = std::make_unique<std::uint32_t[]>(count);
    slots_ = count;
    clear_free();
  }

  /// Entries in all.
  std::size_t slots() const noexcept { return slots_; }
  /// Entries holding a view now.
  std::size_t in_flight() const noexcept { return slots_ - free_count_; }
  /// No entry free: the subscriber is at its bound.
  bool full() const noexcept { return free_count_ == 0; }

  /// Keeps a copy of `view` for the frame numbered `sequence`, sent at
  /// `since_ns` (monotonic); its slot, or nothing when full. Never allocates
  /// (one refcount increment).
  std::optional<std::uint32_t> hold(const Bytes& view, std::uint64_t sequence, std::uint64_t since_ns) noexcept {
    if (free_count_ == 0) return std::nullopt;
    const std::uint32_t slot = free_[--free_count_];
    Entry& e = entries_[slot];
    e.view = view;
    e.sequence = sequence;
    e.since_ns = since_ns;
    e.held = true;
    return slot;
  }

  /// Handles one release entry: if valid, moves its view into `released`
  /// (for the caller to drop outside its lock). Never allocates, never throws.
  Verdict release(std::uint32_t slot, std::uint64_t sequence, bool reserved_ok, Bytes& released) noexcept {
    if (!reserved_ok) return Verdict::malformed;
    if (slot >= slots_) return Verdict::out_of_range;
    Entry& e = entries_[slot];
    if (!e.held || e.sequence != sequence) return Verdict::stale;
    e.held = false;
    free_[free_count_++] = slot;
    released = std::move(e.view);
    return Verdict::released;
  }

  /// Moves up to `n` held views into `out` (the subscriber is gone) and
  /// frees their entries; how many. Never allocates.
  std::size_t take_all(Bytes* out, std::size_t n) noexcept {
    std::size_t k = 0;
    for (std::size_t i = 0; i < slots_ && k < n; ++i) {
      if (!entries_[i].held) continue;
      entries_[i].held = false;
      free_[free_count_++] = static_cast<std::uint32_t>(i);
      out[k++] = std::move(entries_[i].view);
    }
    return k;
  }

  /// The monotonic time the oldest held frame was sent, or nothing.
  std::optional<std::uint64_t> oldest_since() const noexcept {
    std::optional<std::uint64_t> oldest;
    if (free_count_ == slots_) return oldest;
    for (std::size_t i = 0; i < slots_; ++i)
      if (entries_[i].held && (!oldest || entries_[i].since_ns < *oldest)) oldest = entries_[i].since_ns;
    return oldest;
  }

  /// Makes every entry free again, in the order the first frames take them
  /// (slot 0 first). Precondition: nothing held.
  void clear_free() noexcept {
    for (std::size_t i = 0; i < slots_; ++i) free_[i] = static_cast<std::uint32_t>(slots_ - 1 - i);
    free_count_ = slots_;
  }

 private:
  struct Entry {
    Bytes view;
    std::uint64_t sequence = 0;
    std::uint64_t since_ns = 0;
    bool held = false;
  };
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<std::uint32_t[]> free_;  // a stack of the free slots
  std::size_t slots_ = 0;
  std::size_t free_count_ = 0;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm::detail
