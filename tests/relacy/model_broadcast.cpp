// Model check of Broadcast (daq_pool/broadcast.hpp): the per-subscriber ring
// (detail/broadcast_ring.hpp) with one producer and one or two takers, and
// the sleep/wake handshakes around it: a subscriber sleeping on its futex
// word while the publisher pushes (Dekker: `waiting` vs the slot's sequence
// number), the publisher sleeping while a block subscriber is full
// (`producer_waiting` vs the slot the subscriber empties), close() waking a
// sleeper, and a subscriber leaving while the publisher waits for its room
// or pushes into its ring.
//
// The library's own code, compiled with DAQ_POOL_USE_RELACY: every atomic an
// rl::atomic, ParkingSpot on Relacy's futex model. Relacy fails a model on a
// deadlock (a lost wake-up leaves a thread parked forever), a data race on a
// frame's contents or on a ring slot (a hand-off without its release/acquire
// pair), a use of freed memory, a leak, or a failed assertion (a frame lost,
// duplicated or out of order, a count that does not add up).
#include "model_check.hpp"

#include "daq_pool/broadcast.hpp"
#include "daq_pool/buffer_pool.hpp"

namespace {

using daq_pool::Broadcast;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::OnFull;
using daq_pool::Received;
using daq_pool::Subscriber;
using daq_pool::SubscriberOptions;
using daq_pool::detail::BroadcastRing;

// ---- the ring alone ----------------------------------------------------

/// What the ring carries in these models: the index of a shadow cell the
/// producer wrote before pushing, which the taker reads after taking.
struct Item {
  int k = -1;
};

/// One producer pushes 3 items through a ring of capacity 1, the taker takes
/// them: in order, each once, and each item's contents (written before the
/// push) visible to the taker without a race.
struct RingFifo : rl::test_suite<RingFifo, 2> {
  std::optional<BroadcastRing<Item>> ring;
  model::Shadow<3> shadow;
  int got[3] = {-1, -1, -1};

  void before() { ring.emplace(1); }
  void thread(unsigned i) {
    if (i == 0) {
      for (int k = 0; k < 3; ++k) {
        shadow.write(static_cast<std::size_t>(k), 100 + k);
        Item it{k};
        while (ring->try_push(it) == 0) rl::yield(1, $);
      }
    } else {
      for (int n = 0; n < 3; ++n) {
        Item it;
        while (!ring->try_pop(it)) rl::yield(1, $);
        RL_ASSERT(shadow.read(static_cast<std::size_t>(it.k)) == 100 + it.k);
        got[n] = it.k;
      }
    }
  }
  void after() {
    RL_ASSERT(got[0] == 0 && got[1] == 1 && got[2] == 2);
    Item it;
    RL_ASSERT(!ring->try_pop(it));
    ring.reset();
  }
};

/// Keep-latest eviction: the producer pushes 4 items into a ring of
/// capacity 1, taking the oldest out itself when the ring is full, while the
/// subscriber takes items too. Every item is taken exactly once (by one of
/// the two takers, or left in the ring) or dropped as the newest in the
/// documented race, the subscriber's are in order, and the newest is not
/// lost otherwise.
struct RingTwoTakers : rl::test_suite<RingTwoTakers, 2> {
  std::optional<BroadcastRing<Item>> ring;
  model::Shadow<4> shadow;
  int taken[4] = {0, 0, 0, 0};  // times item k was taken, counted in after()
  int consumer_got[4] = {-1, -1, -1, -1};
  int evicted[4] = {-1, -1, -1, -1};
  int dropped[4] = {0, 0, 0, 0};
  int consumer_n = 0, evicted_n = 0;

  void before() { ring.emplace(1); }
  void thread(unsigned i) {
    if (i == 0) {
      for (int k = 0; k < 4; ++k) {
        shadow.write(static_cast<std::size_t>(k), 100 + k);
        Item it{k};
        // As Broadcast::offer(): a few rounds of "take the oldest, push",
        // then the new item is dropped (the subscriber was taking the
        // oldest at that very moment, its slot not yet emptied).
        bool pushed = ring->try_push(it) != 0;
        for (int round = 0; round < 4 && !pushed; ++round) {
          Item old;
          if (ring->try_pop(old)) {
            RL_ASSERT(shadow.read(static_cast<std::size_t>(old.k)) == 100 + old.k);
            evicted[evicted_n++] = old.k;
          } else {
            rl::yield(1, $);
          }
          pushed = ring->try_push(it) != 0;
        }
        if (!pushed) dropped[k] = 1;
      }
    } else {
      for (int n = 0; n < 2; ++n) {
        Item it;
        if (!ring->try_pop(it)) {
          rl::yield(1, $);
          continue;
        }
        RL_ASSERT(shadow.read(static_cast<std::size_t>(it.k)) == 100 + it.k);
        consumer_got[consumer_n++] = it.k;
      }
    }
  }
  void after() {
    Item rest;
    int left = -1;
    if (ring->try_pop(rest)) left = rest.k;
    // The newest survives (unless dropped in the race above).
    RL_ASSERT(dropped[3] || left == 3 || (consumer_n > 0 && consumer_got[consumer_n - 1] == 3));
    for (int n = 0; n < consumer_n; ++n) ++taken[consumer_got[n]];
    for (int n = 0; n < evicted_n; ++n) ++taken[evicted[n]];
    if (left >= 0) ++taken[left];
    for (int k = 0; k < 4; ++k) RL_ASSERT(taken[k] + dropped[k] == 1);
    for (int n = 1; n < consumer_n; ++n) RL_ASSERT(consumer_got[n] > consumer_got[n - 1]);
    ring.reset();
  }
};

// ---- the handshakes, through Broadcast and Subscriber ------------------

BufferPool make_pool(std::size_t n) {
  daq_pool::BufferPoolOptions o;
  o.alignment = 64;
  return BufferPool(n, 64, o);
}

/// A frame whose first byte is `n` (the buffer's contents: a race on them
/// between the publisher's write and a subscriber's read is reported).
Bytes frame(BufferPool& pool, int n) {
  daq_pool::PooledBuffer b = pool.acquire();
  b.set_size(1);
  b.data()[0] = std::byte(static_cast<unsigned char>(n));
  return std::move(b).freeze();
}

int number(const Received& r) { return static_cast<int>(r.data()[0]); }

SubscriberOptions opts(OnFull p, std::size_t capacity) {
  SubscriberOptions o;
  o.on_full = p;
  o.capacity = capacity;
  return o;
}

/// A block subscriber with a queue of 1 and a publisher of 2 frames: each
/// side sleeps on its futex word in turn (the subscriber while the queue is
/// empty, the publisher while it is full), then close() ends the stream.
/// Every frame arrives in order, then the end; a lost wake-up deadlocks.
struct SleepWake : rl::test_suite<SleepWake, 2> {
  std::optional<BufferPool> pool;
  std::optional<Broadcast> channel;
  std::optional<Subscriber> sub;
  int got = 0;
  bool ordered = true;

  void before() {
    pool.emplace(make_pool(4));
    channel.emplace(2);
    sub.emplace(channel->subscribe(opts(OnFull::block, 1)));
  }
  void thread(unsigned i) {
    if (i == 0) {
      for (int n = 0; n < 2; ++n) {
        const auto r = channel->publish(frame(*pool, n), static_cast<std::uint64_t>(n));
        RL_ASSERT(r.queued == 1);
      }
      channel->close();
    } else {
      while (std::optional<Received> f = sub->receive()) {
        if (number(*f) != got || f->tag() != static_cast<std::uint64_t>(got)) ordered = false;
        ++got;
      }
      RL_ASSERT(sub->ended());
    }
  }
  void after() {
    RL_ASSERT(ordered);
    RL_ASSERT(got == 2);
    RL_ASSERT(channel->in_hands() == 0);
    RL_ASSERT(pool->available() == 4);
    sub.reset();
    channel.reset();
    pool.reset();
  }
};

/// The subscriber leaves while the publisher waits for room in its full
/// queue (block, no deadline) or pushes into it: the publisher must not
/// hang, every frame queued for the subscriber is dropped (by the leaver or
/// the publisher), and the in-hands count ends at 0 with every buffer back.
struct LeaveWhilePublishing : rl::test_suite<LeaveWhilePublishing, 2> {
  std::optional<BufferPool> pool;
  std::optional<Broadcast> channel;
  std::optional<Subscriber> sub;

  void before() {
    pool.emplace(make_pool(4));
    channel.emplace(2);
    sub.emplace(channel->subscribe(opts(OnFull::block, 1)));
  }
  void thread(unsigned i) {
    if (i == 0) {
      for (int n = 0; n < 2; ++n) channel->publish(frame(*pool, n));
    } else {
      if (std::optional<Received> f = sub->receive()) RL_ASSERT(number(*f) == 0);
      sub->leave();
    }
  }
  void after() {
    channel->close();
    RL_ASSERT(channel->in_hands() == 0);
    RL_ASSERT(pool->available() == 4);
    sub.reset();
    channel.reset();
    pool.reset();
  }
};

/// The subscriber leaves, taking nothing, while the publisher waits for
/// room in its full queue (block, no deadline): leave() must wake the
/// publisher, which then gives up on it; the queued frame is dropped and
/// every buffer comes back.
struct LeaveWhileFull : rl::test_suite<LeaveWhileFull, 2> {
  std::optional<BufferPool> pool;
  std::optional<Broadcast> channel;
  std::optional<Subscriber> sub;
  std::uint32_t queued = 0;

  void before() {
    pool.emplace(make_pool(4));
    channel.emplace(2);
    sub.emplace(channel->subscribe(opts(OnFull::block, 1)));
  }
  void thread(unsigned i) {
    if (i == 0) {
      for (int n = 0; n < 2; ++n) queued += channel->publish(frame(*pool, n)).queued;  // 0 to 2: the leave may come first
    } else {
      sub->leave();
    }
  }
  void after() {
    RL_ASSERT(queued <= 2);
    channel->close();
    RL_ASSERT(channel->in_hands() == 0);
    RL_ASSERT(pool->available() == 4);
    sub.reset();
    channel.reset();
    pool.reset();
  }
};

/// A keep-latest subscriber (queue of 1) that sleeps while the publisher
/// evicts its oldest frame (2 frames): frames arrive in order, the last one always,
/// and close() wakes it for the end.
struct KeepLatestSleeper : rl::test_suite<KeepLatestSleeper, 2> {
  std::optional<BufferPool> pool;
  std::optional<Broadcast> channel;
  std::optional<Subscriber> sub;
  int last = -1;
  bool ordered = true;

  void before() {
    pool.emplace(make_pool(4));
    channel.emplace(2);
    sub.emplace(channel->subscribe(opts(OnFull::keep_latest, 1)));
  }
  void thread(unsigned i) {
    if (i == 0) {
      for (int n = 0; n < 2; ++n) channel->publish(frame(*pool, n));
      channel->close();
    } else {
      while (std::optional<Received> f = sub->receive()) {
        if (number(*f) <= last) ordered = false;
        last = number(*f);
      }
    }
  }
  void after() {
    RL_ASSERT(ordered);
    RL_ASSERT(last == 1);
    const auto st = sub->stats();
    RL_ASSERT(st.delivered + st.dropped == 2);
    RL_ASSERT(channel->in_hands() == 0);
    sub.reset();
    channel.reset();
    RL_ASSERT(pool->available() == 4);
    pool.reset();
  }
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  run.check<RingFifo>("RingFifo", 1, 2);
  run.check<RingTwoTakers>("RingTwoTakers", 1, 2);
  run.check<SleepWake>("SleepWake", 1, 1);
  run.check<LeaveWhilePublishing>("LeaveWhilePublishing", 1, 1);
  run.check<LeaveWhileFull>("LeaveWhileFull", 1, 1);
  run.check<KeepLatestSleeper>("KeepLatestSleeper", 1, 1);
  return run.finish();
}
