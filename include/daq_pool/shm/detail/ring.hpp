// daq_pool/shm/detail/ring.hpp: the two sides of one subscriber's control
// region (protocol version 2, daq_pool/shm/protocol.hpp): the server's
// frame-ring writer and release-ring reader, which trusts nothing it reads
// there, and the subscriber's frame-ring reader and release-ring writer.
// Internal. The cross-process wake handshake (a sleeping flag set, then the
// ring re-checked; the index published, then the flag checked) is modelled
// in tests/relacy/relacy_shm_wake.cpp.
//
// Memory orders: an entry is written with relaxed atomic stores, then its
// index with a release (here seq_cst) store; the reader loads the index with
// acquire, then the entry (so it sees the entry written). The wake handshake
// is Dekker's: each side stores its word (the index / the sleeping flag)
// seq_cst, then loads the other's word seq_cst; all four are in one total
// order, so at least one side sees the other's store: a sleeper can't miss a
// frame and stay asleep. (seq_cst operations rather than fences: GCC's
// ThreadSanitizer does not support atomic_thread_fence; on x86-64 the cost
// is the same, one locked instruction on the store side.)
#pragma once

#include "daq_pool/detail/abi.hpp"
#include "daq_pool/shm/protocol.hpp"

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm::detail {

static_assert(std::endian::native == std::endian::little,
              "daq_pool::shm: the control region's atomic words are little-endian; this build is not");
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free && std::atomic_ref<std::uint32_t>::is_always_lock_free,
              "daq_pool::shm: the control words must be lock-free atomics (they are shared between processes)");

/// The 64-bit word at `at` of a control region, as an atomic. Never allocates.
inline std::atomic_ref<std::uint64_t> word64(std::byte* base, std::size_t at) noexcept {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base + at));
}
/// The 32-bit word at `at` of a control region, as an atomic. Never allocates.
inline std::atomic_ref<std::uint32_t> word32(std::byte* base, std::size_t at) noexcept {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(base + at));
}

/// The server's side of one control region. Its own indices are private
/// (frame_head_, release_tail_) and only mirrored into the region; of the
/// subscriber's words it reads only release_head and release entries, each
/// once, and checks them.
///
/// Not thread-safe (the server guards it with the subscriber's mutex).
/// Never allocates.
class ServerRing {
 public:
  /// Writes the header of a fresh (zeroed) region of
  /// protocol::control::region_bytes(ring_slots) bytes at `base`.
  void init(std::byte* base, std::uint32_t max_in_flight, std::uint32_t ring_slots) noexcept {
    namespace c = protocol::control;
    base_ = base;
    slots_ = ring_slots;
    frame_head_ = release_tail_ = skipped_ = 0;
    word32(base, c::magic_at).store(c::magic, std::memory_order_relaxed);
    word32(base, c::version_at).store(protocol::version, std::memory_order_relaxed);  // reserved half stays 0
    word32(base, c::max_in_flight_at).store(max_in_flight, std::memory_order_relaxed);
    word32(base, c::ring_slots_at).store(ring_slots, std::memory_order_relaxed);
    word64(base, c::frame_ring_offset_at).store(c::header_bytes, std::memory_order_relaxed);
    word64(base, c::release_ring_offset_at).store(c::release_ring_offset(ring_slots), std::memory_order_relaxed);
    word64(base, c::region_bytes_at).store(c::region_bytes(ring_slots), std::memory_order_relaxed);
  }

  /// Puts frame descriptor `f` in the ring and publishes it; true if the
  /// subscriber was asleep and must be woken (its eventfd written).
  /// Precondition (the caller's flight table guarantees it): fewer than
  /// ring_slots descriptors unreleased, so the entry overwritten was read.
  [[nodiscard]] bool push_frame(const protocol::FrameDescriptor& f) noexcept {
    namespace c = protocol::control;
    const std::size_t at = c::frame_entry_at(frame_head_, slots_);
    word64(base_, at).store(f.sequence, std::memory_order_relaxed);
    word64(base_, at + 8).store(f.offset, std::memory_order_relaxed);
    word64(base_, at + 16).store(f.size, std::memory_order_relaxed);
    word64(base_, at + 24).store(f.timestamp_ns, std::memory_order_relaxed);
    word64(base_, at + 32).store(f.slot, std::memory_order_relaxed);  // slot, then reserved 0
    word64(base_, at + 40).store(f.skipped, std::memory_order_relaxed);
    ++frame_head_;
    word64(base_, c::sent_at).store(frame_head_, std::memory_order_relaxed);
    // seq_cst (a release, and more): the entry's stores above are visible to
    // whoever acquires this head (the subscriber's take()); and Dekker with
    // the subscriber's arm(): this store precedes our load of its flag in
    // the single total order.
    word64(base_, c::frame_head_at).store(frame_head_, std::memory_order_seq_cst);
    auto sleeping = word32(base_, c::subscriber_sleeping_at);
    // Exchange only if it looks set: the common case (it runs) is one load.
    return sleeping.load(std::memory_order_seq_cst) != 0 && sleeping.exchange(0, std::memory_order_relaxed) != 0;
  }

  /// Counts one frame skipped for this subscriber (it learns the total).
  void add_skipped() noexcept {
    ++skipped_;
    word64(base_, protocol::control::skipped_at).store(skipped_, std::memory_order_relaxed);
  }
  std::uint64_t skipped() const noexcept { return skipped_; }

  /// Sets the state word (live / revoked / stopped). release: ordered before
  /// everything this thread does next (dropping the views of revoked frames,
  /// so a subscriber that reads state after its bytes sees 1 if a buffer
  /// could have been reused).
  void set_state(std::uint32_t state) noexcept {
    word32(base_, protocol::control::state_at).store(state, std::memory_order_seq_cst);
  }

  /// Calls `on_release(slot, sequence, reserved_ok)` for each release the
  /// subscriber published since the last call, at most `limit` of them;
  /// false (and nothing consumed) if release_head is impossible: below what
  /// was consumed, or more than ring_slots ahead (a subscriber scribbling
  /// its region: the caller disconnects it). The count is in *consumed.
  template <class F>
  [[nodiscard]] bool drain_releases(F&& on_release, std::size_t limit, std::size_t* consumed) noexcept {
    namespace c = protocol::control;
    *consumed = 0;
    // acquire: pairs with the subscriber's release store of release_head, so
    // the entries below it are visible. Read once: the subscriber may change it.
    const std::uint64_t head = word64(base_, c::release_head_at).load(std::memory_order_acquire);
    const std::uint64_t ahead = head - release_tail_;  // wraps to huge if head < tail
    if (ahead > slots_) return false;
    std::size_t n = 0;
    while (release_tail_ != head && n < limit) {
      const std::size_t at = c::release_entry_at(release_tail_, slots_);
      const std::uint64_t first = word64(base_, at).load(std::memory_order_relaxed);
      const std::uint64_t sequence = word64(base_, at + 8).load(std::memory_order_relaxed);
      on_release(static_cast<std::uint32_t>(first & 0xFFFF'FFFFu), sequence, (first >> 32) == 0);
      ++release_tail_;
      ++n;
    }
    // release: our reads of the entries happen before the subscriber, which
    // acquires release_tail, reuses them.
    if (n != 0) word64(base_, c::release_tail_at).store(release_tail_, std::memory_order_release);
    *consumed = n;
    return true;
  }

  /// True if release_head differs from what was consumed (something to
  /// drain, or an impossible head that drain_releases() reports).
  bool releases_pending() const noexcept {
    return word64(base_, protocol::control::release_head_at).load(std::memory_order_acquire) != release_tail_;
  }

  /// Before the server thread sleeps: sets server_sleeping, then re-checks
  /// the release ring; true if releases are pending (don't sleep: drain).
  [[nodiscard]] bool arm_server_wake() noexcept {
    namespace c = protocol::control;
    // seq_cst store, then the seq_cst load below: Dekker with the
    // subscriber's push_release().
    word32(base_, c::server_sleeping_at).store(1, std::memory_order_seq_cst);
    return word64(base_, c::release_head_at).load(std::memory_order_seq_cst) != release_tail_;
  }

 private:
  std::byte* base_ = nullptr;
  std::uint32_t slots_ = 1;
  std::uint64_t frame_head_ = 0;
  std::uint64_t release_tail_ = 0;
  std::uint64_t skipped_ = 0;
};

/// The subscriber's side of its control region. take() and arm()/disarm()
/// are for the one receiving thread; push_release() for one releasing
/// thread at a time (the Subscriber serializes them with a mutex). Never
/// allocates.
class SubscriberRing {
 public:
  /// What take() found.
  enum class Take { frame, empty, broken };

  void init(std::byte* base, std::uint32_t ring_slots) noexcept {
    base_ = base;
    slots_ = ring_slots;
    namespace c = protocol::control;
    frame_tail_ = word64(base, c::frame_tail_at).load(std::memory_order_relaxed);
    release_head_ = word64(base, c::release_head_at).load(std::memory_order_relaxed);
  }

  /// The next frame descriptor into `out`, if there is one; `broken` if the
  /// server's head is impossible (more than ring_slots ahead, or behind).
  Take take(protocol::FrameDescriptor& out) noexcept {
    namespace c = protocol::control;
    // acquire: pairs with the server's release store of frame_head.
    const std::uint64_t head = word64(base_, c::frame_head_at).load(std::memory_order_acquire);
    if (head == frame_tail_) return Take::empty;
    if (head - frame_tail_ > slots_) return Take::broken;
    const std::size_t at = c::frame_entry_at(frame_tail_, slots_);
    out.sequence = word64(base_, at).load(std::memory_order_relaxed);
    out.offset = word64(base_, at + 8).load(std::memory_order_relaxed);
    out.size = word64(base_, at + 16).load(std::memory_order_relaxed);
    out.timestamp_ns = word64(base_, at + 24).load(std::memory_order_relaxed);
    out.slot = static_cast<std::uint32_t>(word64(base_, at + 32).load(std::memory_order_relaxed));
    out.skipped = word64(base_, at + 40).load(std::memory_order_relaxed);
    ++frame_tail_;
    word64(base_, c::frame_tail_at).store(frame_tail_, std::memory_order_release);
    return Take::frame;
  }

  /// Before sleeping: sets subscriber_sleeping, then re-checks the ring;
  /// true if a frame is there after all (then disarm() and take it).
  [[nodiscard]] bool arm() noexcept {
    namespace c = protocol::control;
    // seq_cst store, then the seq_cst load: Dekker with the server's push_frame().
    word32(base_, c::subscriber_sleeping_at).store(1, std::memory_order_seq_cst);
    return word64(base_, c::frame_head_at).load(std::memory_order_seq_cst) != frame_tail_;
  }
  void disarm() noexcept {
    word32(base_, protocol::control::subscriber_sleeping_at).store(0, std::memory_order_relaxed);
  }

  /// Publishes the release of (slot, sequence); true if the server sleeps
  /// and must be woken (its eventfd written). There is always room: at most
  /// max_in_flight <= ring_slots frames are held, each released once, and
  /// the server frees a slot only after consuming its release.
  [[nodiscard]] bool push_release(std::uint32_t slot, std::uint64_t sequence) noexcept {
    namespace c = protocol::control;
    const std::size_t at = c::release_entry_at(release_head_, slots_);
    word64(base_, at).store(slot, std::memory_order_relaxed);  // slot, then reserved 0
    word64(base_, at + 8).store(sequence, std::memory_order_relaxed);
    ++release_head_;
    // seq_cst (a release, and more): the entry is visible to the server's
    // acquire of release_head; and Dekker with its arm_server_wake().
    word64(base_, c::release_head_at).store(release_head_, std::memory_order_seq_cst);
    auto sleeping = word32(base_, c::server_sleeping_at);
    return sleeping.load(std::memory_order_seq_cst) != 0 && sleeping.exchange(0, std::memory_order_relaxed) != 0;
  }

  std::uint32_t state() const noexcept {
    return word32(base_, protocol::control::state_at).load(std::memory_order_acquire);
  }
  std::uint64_t skipped() const noexcept {
    return word64(base_, protocol::control::skipped_at).load(std::memory_order_relaxed);
  }

 private:
  std::byte* base_ = nullptr;
  std::uint32_t slots_ = 1;
  std::uint64_t frame_tail_ = 0;
  std::uint64_t release_head_ = 0;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::shm::detail
