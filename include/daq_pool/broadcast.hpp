// Broadcast: one producer hands each frame (a Bytes view) to any number of
// subscribers, each through its own bounded queue with its own policy for a
// full queue. The "broadcast to consumers" step of a pipeline, lock-free and
// allocation-free on the frame path.
//
//   Broadcast channel(8);                                    // up to 8 subscribers
//   Subscriber rec = channel.subscribe({.on_full = OnFull::block, .capacity = 16});
//   Subscriber view = channel.subscribe({.on_full = OnFull::keep_latest, .capacity = 1});
//   channel.publish_for(bytes, 50ms);                        // the producer's thread
//   while (std::optional<Received> f = rec.receive()) use(f->bytes());  // a consumer's thread
//   channel.close();                                         // rec sees the rest, then the end
//
// Policies (OnFull), chosen per subscriber:
//  - block: the publisher waits for room, up to the deadline it passes to
//    publish (then the frame is dropped for that subscriber and counted as
//    timed out). For a recorder that must not lose a frame.
//  - drop_newest: the frame is skipped for this subscriber, counted. For
//    analysis that may fall behind and must see frames in order.
//  - keep_latest: the oldest queued frame is dropped to make room, counted.
//    For a live viewer: always the freshest frames, never a stale backlog.
// A slow subscriber never delays a drop_newest or keep_latest one: publish()
// queues the frame for every subscriber with room first and only then waits
// for the block subscribers that are full.
//
// Sizing: frames queued for a subscriber hold their buffers. A BufferPool
// feeding a Broadcast needs at least
//   (frames the producer holds at once) + sum over subscribers of
//   (capacity + frames that subscriber holds at once as Received, usually 1)
// buffers, or the producer finds the pool empty while every buffer sits in a
// queue (block subscribers then hold up the producer's acquire, not only its
// publish).
//
// Which thread runs what:
//  - publish(), close() and the destructor run on the owner's thread (one
//    thread at a time: the Broadcast object is not thread-safe). publish()
//    wakes sleeping subscribers (one futex wake or one eventfd write each,
//    only if that subscriber sleeps), drops frames that keep_latest evicts
//    (a last view returns its buffer to the pool on this thread), and sleeps
//    (spin, then futex) while a block subscriber is full.
//  - subscribe() may run on any thread, also while frames flow; the new
//    subscriber gets the frames published after it joined.
//  - each Subscriber is used by one thread at a time (its consumer): it
//    receives, sleeps (spin then futex; or its eventfd in the consumer's own
//    poll loop; or co_await, daq_pool/asio/broadcast.hpp), and its last view
//    of a frame returns the buffer on that thread.
//  - Received objects may be dropped on any thread, also after the
//    Subscriber left and the Broadcast is gone.
//
// Why one SPSC-style ring per subscriber (detail/broadcast_ring.hpp): the
// publisher writes only its own ring positions and never takes a lock, a
// slow subscriber's full ring concerns nobody else, and each subscriber's
// counters live next to its ring. A single shared ring with per-subscriber
// cursors (a Disruptor) would save the per-subscriber copy of the view (one
// refcount increment) but let the slowest subscriber decide when a slot can
// be reused, which is exactly what drop_newest and keep_latest must avoid.
//
// Costs: publish() is one refcount increment and one ring store per
// subscriber, plus one counter update; it allocates nothing and takes no lock
// (a block subscriber that is full makes it wait, by design). receive() moves
// a view out of the ring; dropping a Received is two atomic decrements plus
// the view's own. subscribe() allocates the subscriber's ring (and opens an
// eventfd if asked).
//
// Over 600 lines, one concept: the channel, its subscribers and their
// received frames are one protocol (the ring and the futex live in detail/);
// most lines are the doc comments of the public API.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/adaptive_spin.hpp"
#include "daq_pool/detail/atomic.hpp"
#include "daq_pool/detail/broadcast_ring.hpp"
#include "daq_pool/detail/config.hpp"
#include "daq_pool/detail/deadline.hpp"
#include "daq_pool/detail/parking.hpp"

#if defined(__linux__)
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#define DAQ_POOL_HAVE_EVENTFD 1
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// What a subscriber's full queue does to a new frame (see the header).
enum class OnFull : std::uint8_t {
  block,        ///< the publisher waits for room, up to its deadline
  drop_newest,  ///< the new frame is skipped for this subscriber, counted
  keep_latest,  ///< the oldest queued frame is dropped to make room, counted
};

/// The name of a policy ("block", "drop_newest", "keep_latest"). Never
/// allocates.
constexpr const char* to_string(OnFull p) noexcept {
  switch (p) {
    case OnFull::block:
      return "block";
    case OnFull::drop_newest:
      return "drop_newest";
    case OnFull::keep_latest:
      return "keep_latest";
  }
  return "?";
}

/// How close() ends the stream.
enum class CloseMode : std::uint8_t {
  drain,    ///< subscribers receive every frame already queued, then the end
  discard,  ///< queued frames are dropped now; subscribers see the end at once
};

/// A subscriber's queue and policy (Broadcast::subscribe()).
struct SubscriberOptions {
  OnFull on_full = OnFull::block;  ///< what a full queue does to a new frame
  std::size_t capacity = 4;        ///< frames queued at most (1 .. Broadcast::max_capacity)
  /// Open an eventfd (Subscriber::fd()) that becomes readable when a frame
  /// or the end arrives, for the consumer's own poll/epoll loop or for
  /// co_await (daq_pool/asio/broadcast.hpp). Linux only.
  bool pollable = false;
  std::string name;  ///< for error messages and reports (may be empty)
};

/// One subscriber's counters. Each field is exact when read by itself
/// (atomics), but the fields are read one after the other: stale the moment
/// they are read while frames flow, exact once the channel is quiet.
struct SubscriberStats {
  std::uint64_t delivered = 0;  ///< frames this subscriber received
  std::uint64_t dropped = 0;    ///< frames it missed by policy (drop_newest, keep_latest evictions, block timeouts)
  std::uint64_t timed_out = 0;  ///< ... of which a block deadline passed
  std::uint64_t discarded = 0;  ///< queued frames thrown away by leave() or close(CloseMode::discard)
  std::size_t queued = 0;       ///< frames in its queue now
  std::size_t held = 0;         ///< frames received and not yet dropped (Received alive) now
  std::size_t high_water = 0;   ///< most frames ever in its queue at once
  std::size_t capacity = 0;     ///< its queue's capacity
  OnFull on_full = OnFull::block;  ///< its policy
};

/// What one publish() did.
struct PublishResult {
  std::uint32_t queued = 0;     ///< subscribers the frame was queued for
  std::uint32_t dropped = 0;    ///< subscribers that missed it (full queue: drop_newest, block timeout)
  std::uint32_t evicted = 0;    ///< older frames dropped from keep_latest queues to make room
  std::uint32_t timed_out = 0;  ///< ... of `dropped`, block subscribers whose deadline passed
};

namespace detail {

struct BroadcastCore;

/// What a subscriber's ring holds: the view and the publisher's tag.
struct BroadcastItem {
  Bytes bytes;
  std::uint64_t tag = 0;
};

/// One subscriber: its ring, counters and wake-up words. Shared by the
/// channel's table, the Subscriber handle and every Received it handed out
/// (an intrusive count: `refs` = owners << 32 | frames held).
struct SubscriberState {
  static constexpr std::uint64_t owner = std::uint64_t{1} << 32;
  static constexpr std::uint64_t held_mask = owner - 1;

  SubscriberState(std::shared_ptr<BroadcastCore> c, const SubscriberOptions& o)
      : ring(o.capacity), on_full(o.on_full), name(o.name), core(std::move(c)) {}

  BroadcastRing<BroadcastItem> ring;
  const OnFull on_full;
  const std::string name;
  int efd = -1;  // the eventfd, if pollable (closed with the state)
  std::shared_ptr<BroadcastCore> core;

  // 0: nobody waits; 1: the consumer sleeps on `spot`; 2: its eventfd is
  // armed. Written by the consumer (seq_cst, then it looks at the ring),
  // read by the publisher after each push (seq_cst): Dekker.
  alignas(cache_line) atomic<std::uint32_t> waiting{0};
  ParkingSpot spot{0};                        // the consumer's futex word
  atomic<std::uint32_t> producer_waiting{0};  // the publisher waits for room here (block)
  atomic<std::uint32_t> left{0};              // the consumer left (seq_cst both sides: Dekker with push)
  atomic<std::uint64_t> refs{2 * owner};      // the table's and the handle's
  atomic<std::uint64_t> delivered{0};         // written by the consumer only
  AdaptiveSpin receive_spin;                  // the consumer's spin before it sleeps (its own)
  // Written by the publisher only (relaxed: statistics).
  alignas(cache_line) atomic<std::uint64_t> dropped{0};
  atomic<std::uint64_t> timed_out{0};
  atomic<std::size_t> high_water{0};
  atomic<std::uint64_t> discarded{0};  // any thread that drains (fetch_add)

  ~SubscriberState() {
    drain();  // what a publisher pushed after the last drain (uncounted there)
#if defined(DAQ_POOL_HAVE_EVENTFD)
    if (efd >= 0) ::close(efd);
#endif
  }

  inline void unref(std::uint64_t n) noexcept;
  inline std::size_t drain() noexcept;
  inline void wake_consumer() noexcept;
};

/// What the Broadcast handle, every subscriber and (through them) every
/// Received share.
struct BroadcastCore {
  static constexpr std::size_t table_size = 64;

  explicit BroadcastCore(std::size_t max) : max_subscribers(max) {
    // Stored one by one: an array initializer does not initialize the model
    // checker's atomics.
    for (auto& t : table) t.store(nullptr, std::memory_order_relaxed);
  }

  const std::size_t max_subscribers;
  atomic<SubscriberState*> table[table_size];
  atomic<std::size_t> used{0};                // table slots ever used: the publisher scans [0, used)
  atomic<std::size_t> subscribers{0};         // joined and not left
  atomic<std::uint32_t> closed{0};            // 0 open, else 1 + CloseMode
  alignas(cache_line) atomic<std::uint64_t> in_hands{0};  // frames queued for or held by subscribers
  alignas(cache_line) ParkingSpot publisher_spot{0};      // the publisher sleeps here (block)
  AdaptiveSpin room_spin;                                 // its spin before that sleep
  atomic<std::uint64_t> published{0};
};

inline void SubscriberState::unref(std::uint64_t n) noexcept {
  // acq_rel: the last owner sees everything the others did to the state.
  if (refs.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
}

/// Takes every frame out of the ring and drops it; counted as discarded.
/// Any thread (the ring allows several takers). Returns how many.
inline std::size_t SubscriberState::drain() noexcept {
  std::size_t n = 0;
  BroadcastItem b;
  while (ring.try_pop(b)) {
    b.bytes.reset();  // the view goes first, then the count: in_hands never undercounts
    ++n;
  }
  if (n != 0) {
    discarded.fetch_add(n, std::memory_order_relaxed);
    core->in_hands.fetch_sub(n, std::memory_order_release);
  }
  return n;
}

/// Wakes the consumer if it sleeps or armed its eventfd. Any thread.
inline void SubscriberState::wake_consumer() noexcept {
  const std::uint32_t w = waiting.exchange(0, std::memory_order_acq_rel);
  if (w == 1) {
    spot.advance_and_wake();
  } else if (w == 2) {
#if defined(DAQ_POOL_HAVE_EVENTFD)
    const std::uint64_t one = 1;
    // Can only fail with EAGAIN at a count of 2^64 - 2: then it is readable.
    [[maybe_unused]] const ssize_t r = ::write(efd, &one, sizeof one);
#endif
  }
}

/// How long a waiter (a subscriber waiting for a frame, the publisher
/// waiting for a block subscriber's room) may spin before it sleeps, before
/// a deadline: the channel's adaptive budget (detail/adaptive_spin.hpp),
/// or less if the deadline comes sooner (0: it has passed).
inline std::chrono::nanoseconds spin_limit_before(
    const std::optional<std::chrono::steady_clock::time_point>& deadline) noexcept {
  if (!deadline) return AdaptiveSpin::max_budget;
  return std::min<std::chrono::nanoseconds>(sleep_before(*deadline), AdaptiveSpin::max_budget);
}

}  // namespace detail

class Subscriber;

/// A frame a subscriber received: its view, counted as "held" by the
/// subscriber (SubscriberStats::held, Broadcast::in_hands()) until this
/// object is dropped or reset. Move-only. May be dropped on any thread, also
/// after its Subscriber left and its Broadcast is gone. Never allocates.
class Received {
 public:
  /// Nothing held.
  Received() noexcept = default;
  /// Takes over `o`'s frame; `o` holds nothing. Never allocates.
  Received(Received&& o) noexcept
      : bytes_(std::move(o.bytes_)), tag_(o.tag_), state_(std::exchange(o.state_, nullptr)) {}
  /// Drops the frame held now, then takes over `o`'s. Never allocates.
  Received& operator=(Received&& o) noexcept {
    if (this != &o) {
      reset();
      bytes_ = std::move(o.bytes_);
      tag_ = o.tag_;
      state_ = std::exchange(o.state_, nullptr);
    }
    return *this;
  }
  Received(const Received&) = delete;
  Received& operator=(const Received&) = delete;
  /// Drops the view (the last view returns its buffer), then the count.
  ~Received() { reset(); }

  /// The frame. Copy it to share it further (the copies are not counted).
  /// Never allocates.
  const Bytes& bytes() const noexcept { return bytes_; }
  /// The frame's first byte. Never allocates.
  const std::byte* data() const noexcept { return bytes_.data(); }
  /// The frame's size. Never allocates.
  std::size_t size() const noexcept { return bytes_.size(); }
  /// The tag the publisher gave the frame (e.g. its frame number; 0 if
  /// none). Never allocates.
  std::uint64_t tag() const noexcept { return tag_; }

  /// Takes the view out and stops counting it as held: the frame is the
  /// caller's from now on (for a consumer that hands it on, e.g. to a
  /// library that keeps views). Never allocates.
  Bytes take() && noexcept {
    Bytes b = std::move(bytes_);
    release_count();
    return b;
  }

  /// Drops the view now, then stops counting it. Never allocates.
  void reset() noexcept {
    bytes_.reset();
    release_count();
  }

 private:
  friend class Subscriber;
  Received(detail::BroadcastItem&& item, detail::SubscriberState* s) noexcept
      : bytes_(std::move(item.bytes)), tag_(item.tag), state_(s) {}

  void release_count() noexcept {
    if (state_ == nullptr) return;
    detail::SubscriberState* s = std::exchange(state_, nullptr);
    // release: our reads of the frame happen before the count says it is back.
    s->core->in_hands.fetch_sub(1, std::memory_order_release);
    s->unref(1);
  }

  Bytes bytes_;
  std::uint64_t tag_ = 0;
  detail::SubscriberState* state_ = nullptr;
};

/// One subscriber of a Broadcast: its queue, policy and counters. Move-only;
/// destroying it leaves the channel (leave()). One thread at a time receives
/// (not thread-safe); stats() is thread-safe.
class Subscriber {
 public:
  /// A subscriber that has left (or never joined): every use but stats-free
  /// queries throws std::logic_error.
  Subscriber() noexcept = default;
  /// Takes over `o`'s membership; `o` becomes a subscriber that has left. Never allocates.
  Subscriber(Subscriber&& o) noexcept : state_(std::exchange(o.state_, nullptr)), ended_(o.ended_) {}
  /// Leaves (as the destructor does), then takes over `o`'s membership. Never allocates.
  Subscriber& operator=(Subscriber&& o) noexcept {
    if (this != &o) {
      leave();
      state_ = std::exchange(o.state_, nullptr);
      ended_ = o.ended_;
    }
    return *this;
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;
  ~Subscriber() { leave(); }

  /// The oldest queued frame, waiting as long as it takes; nothing once the
  /// channel is closed and this subscriber's queue is empty (the end). Spins
  /// briefly, then sleeps on a futex. Throws std::logic_error after leave().
  /// Never allocates.
  std::optional<Received> receive() { return receive_impl(std::nullopt); }

  /// receive(), waiting at most `timeout`: nothing on timeout or at the end
  /// (ended() tells which). Never allocates.
  template <class Rep, class Period>
  std::optional<Received> receive_for(std::chrono::duration<Rep, Period> timeout) {
    return receive_impl(detail::deadline_after(timeout));
  }

  /// receive(), waiting until `deadline` (steady_clock) at the latest.
  std::optional<Received> receive_until(std::chrono::steady_clock::time_point deadline) {
    return receive_impl(deadline);
  }

  /// The oldest queued frame if there is one now, else nothing (ended() says
  /// whether the stream is over). Never blocks, never allocates, lock-free.
  /// Throws std::logic_error after leave().
  std::optional<Received> try_receive() {
    detail::SubscriberState& s = use("try_receive");
    return take(s);
  }

  /// True once the channel is closed and every frame queued for this
  /// subscriber was received (or discarded): receive() returns nothing from
  /// now on. Not thread-safe (the consumer's own view).
  bool ended() const noexcept { return ended_; }

  /// The eventfd of a pollable subscriber (SubscriberOptions::pollable), -1
  /// otherwise. Readable when armed (arm()) and a frame or the end arrives.
  /// Owned by the subscriber: don't close it. Never allocates.
  int fd() const noexcept { return state_ != nullptr ? state_->efd : -1; }

  /// Before polling fd(): resets the fd and asks the publisher to make it
  /// readable at the next frame (or at close). Returns false if a frame or
  /// the end is already there: call try_receive() instead of polling.
  /// Usage: `while (auto f = sub.try_receive()) use(*f); if (sub.ended())
  /// stop(); else if (sub.arm()) poll(sub.fd())`. Throws std::logic_error
  /// after leave() or for a subscriber that is not pollable.
  bool arm() {
    detail::SubscriberState& s = use("arm");
    if (s.efd < 0)
      throw std::logic_error("daq_pool::Subscriber::arm: subscriber '" + s.name +
                             "' is not pollable (SubscriberOptions::pollable)");
#if defined(DAQ_POOL_HAVE_EVENTFD)
    std::uint64_t count = 0;
    [[maybe_unused]] const ssize_t r = ::read(s.efd, &count, sizeof count);  // EAGAIN: already reset
#endif
    // seq_cst: store that we wait, then look (Dekker with publish's push,
    // then its load of `waiting`).
    s.waiting.store(2, std::memory_order_seq_cst);
    if (s.ring.ready() || s.core->closed.load(std::memory_order_seq_cst) != 0) {
      s.waiting.store(0, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  /// Leaves the channel: the publisher stops queueing frames for it, every
  /// frame still queued is dropped (counted as discarded), and a publisher
  /// waiting for this subscriber's room stops waiting. Received frames stay
  /// valid. Idempotent; the destructor calls it. Not thread-safe (the
  /// consumer's thread); never blocks, never allocates.
  void leave() noexcept {
    if (state_ == nullptr) return;
    detail::SubscriberState* s = std::exchange(state_, nullptr);
    // seq_cst: store `left`, then drain (seq_cst loads of the ring): a push
    // this drain misses sees `left` and is drained by the publisher.
    s->left.store(1, std::memory_order_seq_cst);
    s->drain();
    if (s->producer_waiting.load(std::memory_order_seq_cst) != 0) s->core->publisher_spot.advance_and_wake();
    s->core->subscribers.fetch_sub(1, std::memory_order_relaxed);
    s->unref(detail::SubscriberState::owner);
    ended_ = true;
  }

  /// True until leave(). Never allocates.
  bool joined() const noexcept { return state_ != nullptr; }

  /// This subscriber's counters (see SubscriberStats). Thread-safe (one
  /// thread may receive while another reads them); all zero after leave().
  SubscriberStats stats() const noexcept {
    SubscriberStats st;
    if (state_ == nullptr) return st;
    const detail::SubscriberState& s = *state_;
    st.delivered = s.delivered.load(std::memory_order_relaxed);
    st.dropped = s.dropped.load(std::memory_order_relaxed);
    st.timed_out = s.timed_out.load(std::memory_order_relaxed);
    st.discarded = s.discarded.load(std::memory_order_relaxed);
    st.queued = s.ring.size();
    st.held = static_cast<std::size_t>(s.refs.load(std::memory_order_relaxed) & detail::SubscriberState::held_mask);
    st.high_water = s.high_water.load(std::memory_order_relaxed);
    st.capacity = s.ring.capacity();
    st.on_full = s.on_full;
    return st;
  }

  /// The name given at subscribe() (empty after leave()).
  const std::string& name() const noexcept {
    static const std::string none;
    return state_ != nullptr ? state_->name : none;
  }

 private:
  friend class Broadcast;
  explicit Subscriber(detail::SubscriberState* s) noexcept : state_(s) {}

  detail::SubscriberState& use(const char* what) const {
    if (state_ == nullptr)
      throw std::logic_error(std::string("daq_pool::Subscriber::") + what +
                             ": this subscriber has left the channel (or was moved from)");
    return *state_;
  }

  std::optional<Received> take(detail::SubscriberState& s) {
    detail::BroadcastItem b;
    for (;;) {
      if (s.ring.try_pop(b)) {
        const std::uint32_t closed = s.core->closed.load(std::memory_order_acquire);
        if (closed == 1 + static_cast<std::uint32_t>(CloseMode::discard)) {
          b.bytes.reset();
          s.discarded.fetch_add(1, std::memory_order_relaxed);
          s.core->in_hands.fetch_sub(1, std::memory_order_release);
          continue;
        }
        // The publisher may wait for this room (block): tell it. seq_cst:
        // try_pop's stamp, then this load (Dekker with publish's wait).
        if (s.on_full == OnFull::block && s.producer_waiting.load(std::memory_order_seq_cst) != 0) {
          s.producer_waiting.store(0, std::memory_order_relaxed);
          s.core->publisher_spot.advance_and_wake();
        }
        // relaxed: one writer (this thread); a statistic.
        s.delivered.store(s.delivered.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        s.refs.fetch_add(1, std::memory_order_relaxed);  // held: the state outlives the Received
        return Received(std::move(b), &s);
      }
      // Empty. acquire: pairs with close()'s store; every frame published
      // before close() is then visible to the try_pop below.
      if (s.core->closed.load(std::memory_order_seq_cst) != 0) {
        if (s.ring.ready()) continue;
        ended_ = true;
      }
      return std::nullopt;
    }
  }

  std::optional<Received> receive_impl(std::optional<std::chrono::steady_clock::time_point> deadline) {
    detail::SubscriberState& s = use("receive");
    const auto something = [&s] {
      return s.ring.ready() || s.core->closed.load(std::memory_order_relaxed) != 0;
    };
    for (;;) {
      if (std::optional<Received> r = take(s)) return r;
      if (ended_) return std::nullopt;
      const std::chrono::nanoseconds limit = detail::spin_limit_before(deadline);
      if (deadline && limit == std::chrono::nanoseconds::zero()) return std::nullopt;  // timed out
      if (s.receive_spin.spin(something, limit)) continue;
      std::optional<std::chrono::nanoseconds> sleep;
      if (deadline) {
        sleep = detail::sleep_before(*deadline);
        if (*sleep == std::chrono::nanoseconds::zero()) return std::nullopt;
      }
      const std::uint32_t word = s.spot.state();
      // seq_cst: store that we sleep, then look at the ring and at close
      // (Dekker with publish's push / close's store, then their load of
      // `waiting`): either we see the frame, or the publisher sees us.
      s.waiting.store(1, std::memory_order_seq_cst);
      if (s.ring.ready() || s.core->closed.load(std::memory_order_seq_cst) != 0) {
        s.waiting.store(0, std::memory_order_relaxed);
        continue;
      }
      s.spot.wait_while(word, sleep);
      s.waiting.store(0, std::memory_order_relaxed);
    }
  }

  detail::SubscriberState* state_ = nullptr;
  bool ended_ = false;
};

/// A broadcast channel of Bytes: one producer publishes frames, each
/// subscriber receives its own view of every frame through its own bounded
/// queue and policy (OnFull). See the header comment for the policies,
/// sizing and threads.
///
/// The Broadcast object itself (publish, close, stats) belongs to one thread
/// at a time: not thread-safe, except subscribe(), in_hands(),
/// subscribers() and published(), which are. Movable. Destroying it closes
/// the channel (CloseMode::drain); subscribers and received frames stay
/// valid.
class Broadcast {
 public:
  /// The most subscribers a channel may be made for.
  static constexpr std::size_t max_subscribers_limit = detail::BroadcastCore::table_size;
  /// The largest queue capacity a subscriber may ask for.
  static constexpr std::size_t max_capacity = std::size_t{1} << 20;

  /// A channel for up to `max_subscribers` subscribers at once (from 1 to
  /// max_subscribers_limit; else std::invalid_argument naming the limit).
  /// Allocates its table.
  explicit Broadcast(std::size_t max_subscribers = 16) {
    if (max_subscribers == 0 || max_subscribers > max_subscribers_limit)
      throw std::invalid_argument("daq_pool::Broadcast: max_subscribers is " + std::to_string(max_subscribers) +
                                  ", must be 1.." + std::to_string(max_subscribers_limit));
    core_ = std::make_shared<detail::BroadcastCore>(max_subscribers);
  }
  /// Takes over `other`'s channel (its subscribers stay attached). Never allocates.
  Broadcast(Broadcast&&) noexcept = default;
  /// Closes this channel (as the destructor does), then takes over `o`'s. Not thread-safe.
  Broadcast& operator=(Broadcast&& o) noexcept {
    if (this != &o) {
      shut_down();
      core_ = std::move(o.core_);
    }
    return *this;
  }
  Broadcast(const Broadcast&) = delete;
  Broadcast& operator=(const Broadcast&) = delete;
  /// Closes (CloseMode::drain) if not closed yet and lets the subscribers go.
  ~Broadcast() { shut_down(); }

  /// A new subscriber, which receives the frames published from now on.
  /// Throws std::invalid_argument if options.capacity is 0 or above
  /// max_capacity, std::length_error if max_subscribers are joined already
  /// (a subscriber that left frees its place at the next publish()),
  /// std::logic_error if the channel is closed, std::system_error if the
  /// eventfd can't be opened. Thread-safe; allocates the subscriber's queue.
  Subscriber subscribe(const SubscriberOptions& options = {}) {
    detail::BroadcastCore& c = core("subscribe");
    const std::string who = options.name.empty() ? std::string("a subscriber") : "subscriber '" + options.name + "'";
    if (options.capacity == 0 || options.capacity > max_capacity)
      throw std::invalid_argument("daq_pool::Broadcast::subscribe: " + who + ": capacity is " +
                                  std::to_string(options.capacity) + ", must be 1.." + std::to_string(max_capacity));
    if (c.closed.load(std::memory_order_acquire) != 0)
      throw std::logic_error("daq_pool::Broadcast::subscribe: " + who + ": the channel is closed");
    auto* s = new detail::SubscriberState(core_, options);
    if (options.pollable) {
#if defined(DAQ_POOL_HAVE_EVENTFD)
      s->efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (s->efd < 0) {
        const int err = errno;
        delete s;
        throw std::system_error(err, std::generic_category(), "daq_pool::Broadcast::subscribe: " + who + ": eventfd");
      }
#else
      delete s;
      throw std::invalid_argument("daq_pool::Broadcast::subscribe: " + who + ": pollable needs Linux (eventfd)");
#endif
    }
    for (std::size_t i = 0; i < c.max_subscribers; ++i) {
      detail::SubscriberState* expected = nullptr;
      // seq_cst: the insertion is ordered with close()'s store and table
      // scan, so a subscriber joining during close() is woken or sees it.
      if (c.table[i].compare_exchange_strong(expected, s, std::memory_order_seq_cst)) {
        std::size_t used = c.used.load(std::memory_order_relaxed);
        while (used < i + 1 && !c.used.compare_exchange_weak(used, i + 1, std::memory_order_release)) {
        }
        c.subscribers.fetch_add(1, std::memory_order_relaxed);
        return Subscriber(s);
      }
    }
    delete s;
    throw std::length_error("daq_pool::Broadcast::subscribe: " + who + ": the channel has " +
                            std::to_string(c.max_subscribers) +
                            " subscribers already, its max_subscribers (a subscriber that left frees its place at "
                            "the next publish())");
  }

  /// Queues `frame` for every subscriber, waiting for block subscribers
  /// without limit (until they make room or leave). See publish_until().
  PublishResult publish(const Bytes& frame, std::uint64_t tag = 0) { return publish_impl(frame, tag, std::nullopt); }

  /// publish_until(frame, now + timeout).
  template <class Rep, class Period>
  PublishResult publish_for(const Bytes& frame, std::chrono::duration<Rep, Period> timeout, std::uint64_t tag = 0) {
    return publish_impl(frame, tag, detail::deadline_after(timeout));
  }

  /// Queues a view of `frame`, with `tag` (Received::tag(), e.g. the frame
  /// number), for every subscriber: at once for those with
  /// room; by policy for those whose queue is full (drop_newest: skipped;
  /// keep_latest: their oldest frame is dropped; block: waits, spinning then
  /// sleeping, until they make room or `deadline` passes, then skipped).
  /// Wakes the subscribers that sleep. Throws std::invalid_argument for an
  /// empty view and std::logic_error after close(). The owner's thread;
  /// lock-free unless a block subscriber is full; never allocates.
  PublishResult publish_until(const Bytes& frame, std::chrono::steady_clock::time_point deadline,
                              std::uint64_t tag = 0) {
    return publish_impl(frame, tag, deadline);
  }

  /// Ends the stream. drain: each subscriber receives every frame queued
  /// before, then the end; discard: queued frames are dropped now (counted
  /// as discarded) and subscribers see the end. Wakes every sleeping
  /// subscriber. Later publish() and subscribe() throw. Idempotent (a second
  /// close(discard) after close(drain) still discards). The owner's thread;
  /// never allocates.
  void close(CloseMode mode = CloseMode::drain) {
    detail::BroadcastCore& c = core("close");
    const std::uint32_t want = 1 + static_cast<std::uint32_t>(mode);
    if (c.closed.load(std::memory_order_relaxed) < want) c.closed.store(want, std::memory_order_seq_cst);
    for (std::size_t i = 0, n = c.used.load(std::memory_order_acquire); i < n; ++i) {
      detail::SubscriberState* s = c.table[i].load(std::memory_order_seq_cst);
      if (s == nullptr) continue;
      if (mode == CloseMode::discard) s->drain();
      // seq_cst: closed was stored before this load (Dekker with the sleeper).
      if (s->waiting.load(std::memory_order_seq_cst) != 0) s->wake_consumer();
    }
  }

  /// True after close(). Never allocates.
  bool closed() const noexcept { return core_ == nullptr || core_->closed.load(std::memory_order_acquire) != 0; }

  /// The exact number of frames in subscribers' hands: queued for them plus
  /// received and not yet dropped. Never less than the truth: a frame is
  /// counted before it is queued and uncounted after its view is dropped, so
  /// buffers out of a pool <= in_hands() + the frames the producer holds.
  /// Exact whenever no publish or drop is under way. Thread-safe.
  std::uint64_t in_hands() const noexcept {
    return core_ == nullptr ? 0 : core_->in_hands.load(std::memory_order_acquire);
  }
  /// Subscribers joined and not left. Thread-safe; stale when read.
  std::size_t subscribers() const noexcept {
    return core_ == nullptr ? 0 : core_->subscribers.load(std::memory_order_relaxed);
  }
  /// Frames published so far. Thread-safe.
  std::uint64_t published() const noexcept {
    return core_ == nullptr ? 0 : core_->published.load(std::memory_order_relaxed);
  }

 private:
  detail::BroadcastCore& core(const char* what) const {
    if (core_ == nullptr)
      throw std::logic_error(std::string("daq_pool::Broadcast::") + what + ": this channel was moved from");
    return *core_;
  }

  /// Takes a subscriber that left out of the table (the owner's thread only:
  /// nobody else dereferences table entries without a reference).
  void reap(std::size_t i, detail::SubscriberState* s) noexcept {
    core_->table[i].store(nullptr, std::memory_order_release);
    s->drain();  // what was pushed after its own drain
    s->unref(detail::SubscriberState::owner);
  }

  void shut_down() noexcept {
    if (core_ == nullptr) return;
    if (core_->closed.load(std::memory_order_relaxed) == 0) close(CloseMode::drain);
    for (std::size_t i = 0, n = core_->used.load(std::memory_order_acquire); i < n; ++i) {
      if (detail::SubscriberState* s = core_->table[i].load(std::memory_order_acquire)) {
        core_->table[i].store(nullptr, std::memory_order_release);
        s->unref(detail::SubscriberState::owner);
      }
    }
    core_.reset();
  }

  /// One push attempt for subscriber `s`: true if `frame` was queued (or the
  /// subscriber left); false if it is a full block subscriber.
  bool offer(detail::SubscriberState& s, const Bytes& frame, std::uint64_t tag, PublishResult& r,
             std::size_t& unused) noexcept {
    detail::BroadcastItem view{frame, tag};  // one relaxed increment
    std::size_t depth = s.ring.try_push(view);
    if (depth == 0 && s.on_full == OnFull::keep_latest) {
      // Make room: take the oldest ourselves (several rounds only if the
      // subscriber takes frames at the same time), else drop the new one.
      for (int round = 0; round < 4 && depth == 0; ++round) {
        detail::BroadcastItem old;
        if (s.ring.try_pop(old)) {
          old.bytes.reset();
          ++r.evicted;
          ++unused;  // its in_hands count goes with the evicted frame
          s.dropped.store(s.dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        }
        depth = s.ring.try_push(view);
      }
    }
    if (depth == 0) {
      if (s.on_full == OnFull::block) return false;
      ++r.dropped;
      ++unused;
      s.dropped.store(s.dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return true;
    }
    ++r.queued;
    if (depth > s.high_water.load(std::memory_order_relaxed)) s.high_water.store(depth, std::memory_order_relaxed);
    // seq_cst: after the push's seq_cst store (Dekker with a sleeper's store
    // of `waiting`, a leaver's store of `left`).
    if (s.waiting.load(std::memory_order_seq_cst) != 0) s.wake_consumer();
    // The subscriber left meanwhile and its own drain may have missed this
    // frame: drain what is left (uncounted in drain()).
    if (s.left.load(std::memory_order_seq_cst) != 0) s.drain();
    return true;
  }

  PublishResult publish_impl(const Bytes& frame, std::uint64_t tag,
                             std::optional<std::chrono::steady_clock::time_point> deadline) {
    detail::BroadcastCore& c = core("publish");
    if (frame.empty()) throw std::invalid_argument("daq_pool::Broadcast::publish: the frame is an empty view");
    if (c.closed.load(std::memory_order_relaxed) != 0)
      throw std::logic_error("daq_pool::Broadcast::publish: the channel is closed");
    // Pass 1: who is there (reaping who left).
    detail::SubscriberState* live[detail::BroadcastCore::table_size];
    std::size_t n = 0;
    for (std::size_t i = 0, end = c.used.load(std::memory_order_acquire); i < end; ++i) {
      detail::SubscriberState* s = c.table[i].load(std::memory_order_acquire);
      if (s == nullptr) continue;
      if (s->left.load(std::memory_order_acquire) != 0) {
        reap(i, s);
        continue;
      }
      live[n++] = s;
    }
    PublishResult r;
    // Counted before queued (never an undercount); the frames that were not
    // queued are uncounted at the end.
    c.in_hands.fetch_add(n, std::memory_order_relaxed);
    std::size_t unused = 0;
    // Pass 2: everyone with room, and the drop/keep-latest ones by policy.
    std::size_t full = 0;  // full block subscribers, moved to the front of `live`
    for (std::size_t k = 0; k < n; ++k) {
      if (!offer(*live[k], frame, tag, r, unused)) live[full++] = live[k];
    }
    // Pass 3: wait for the full block subscribers.
    if (full != 0) wait_for_room(c, live, full, frame, tag, deadline, r, unused);
    if (unused != 0) c.in_hands.fetch_sub(unused, std::memory_order_release);
    c.published.store(c.published.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return r;
  }

  void wait_for_room(detail::BroadcastCore& c, detail::SubscriberState** pending, std::size_t full,
                     const Bytes& frame, std::uint64_t tag,
                     std::optional<std::chrono::steady_clock::time_point> deadline,
                     PublishResult& r, std::size_t& unused) {
    // Retries every pending subscriber; keeps those still full. A subscriber
    // that left is settled (its frame uncounted).
    const auto retry = [&] {
      std::size_t still = 0;
      for (std::size_t k = 0; k < full; ++k) {
        detail::SubscriberState* s = pending[k];
        if (s->left.load(std::memory_order_seq_cst) != 0) {
          s->producer_waiting.store(0, std::memory_order_relaxed);
          ++unused;
          continue;
        }
        if (!offer(*s, frame, tag, r, unused)) {
          pending[still++] = s;
        } else {
          s->producer_waiting.store(0, std::memory_order_relaxed);
        }
      }
      full = still;
    };
    // Any pending subscriber with room (or gone): worth a retry.
    const auto some_room = [&] {
      for (std::size_t k = 0; k < full; ++k)
        if (!pending[k]->ring.full() || pending[k]->left.load(std::memory_order_relaxed) != 0) return true;
      return false;
    };
    while (full != 0) {
      const std::chrono::nanoseconds limit = detail::spin_limit_before(deadline);
      if (deadline && limit == std::chrono::nanoseconds::zero()) break;
      if (c.room_spin.spin(some_room, limit)) {
        retry();
        continue;
      }
      std::optional<std::chrono::nanoseconds> sleep;
      if (deadline) {
        sleep = detail::sleep_before(*deadline);
        if (*sleep == std::chrono::nanoseconds::zero()) break;
      }
      const std::uint32_t word = c.publisher_spot.state();
      // seq_cst: store that we wait, then look again (Dekker with the
      // subscriber's stamp of the slot it emptied, then its load of this).
      for (std::size_t k = 0; k < full; ++k) pending[k]->producer_waiting.store(1, std::memory_order_seq_cst);
      retry();
      if (full == 0) break;
      c.publisher_spot.wait_while(word, sleep);
    }
    // The deadline passed for the rest.
    for (std::size_t k = 0; k < full; ++k) {
      detail::SubscriberState* s = pending[k];
      s->producer_waiting.store(0, std::memory_order_relaxed);
      ++r.dropped;
      ++r.timed_out;
      ++unused;
      s->dropped.store(s->dropped.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      s->timed_out.store(s->timed_out.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  }

  std::shared_ptr<detail::BroadcastCore> core_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
