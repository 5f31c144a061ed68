// Model check (issue 20): the cross-process wake handshake of daq_pool::shm
// protocol version 2 (daq_pool/shm/detail/ring.hpp, docs/shm.md). The
// server and the subscriber are two processes sharing a control region; the
// model is the same algorithm on Relacy's atomics (the library's ring uses
// std::atomic_ref on a shared mapping, which Relacy cannot model directly):
//   - frames: the server writes an entry, stores frame_head (seq_cst), loads
//     subscriber_sleeping (seq_cst) and, if set, exchanges it to 0 and
//     signals the subscriber's eventfd; the subscriber, finding the ring
//     empty, resets its eventfd, stores subscriber_sleeping = 1 (seq_cst),
//     re-checks frame_head (seq_cst), and sleeps on the eventfd only if still
//     empty;
//   - releases: the mirror image with release_head, server_sleeping and the
//     server's eventfd; the server sleeps when every slot is held.
// The eventfds are modelled with a mutex, a condition variable and a count.
// Relacy fails the model on a lost wake-up (both sides asleep: a deadlock),
// a data race on an entry (an entry read before its index was published or
// reused before it was released), or a wrong frame.
#include "model_check.hpp"

namespace {

/// An eventfd: signal() adds one; wait() blocks until the count is not 0;
/// reset() reads it to 0 (the non-blocking read before arming).
struct EventFd {
  rl::mutex m;
  rl::condition_variable cv;
  rl::var<int> count;
  void init() { count($) = 0; }
  void signal() {
    m.lock($);
    count($) = count($) + 1;
    cv.notify_one($);
    m.unlock($);
  }
  void reset() {
    m.lock($);
    count($) = 0;
    m.unlock($);
  }
  void wait() {
    m.lock($);
    while (count($) == 0) cv.wait(m, $);
    m.unlock($);
  }
};

/// One subscriber's control region: max_in_flight 2, ring_slots 2.
template <int Frames>
struct Handshake : rl::test_suite<Handshake<Frames>, 2> {
  static constexpr unsigned slots = 2;
  rl::var<int> frame_entry[slots];
  rl::var<int> release_entry[slots];
  rl::atomic<unsigned> frame_head, release_head;
  rl::atomic<unsigned> subscriber_sleeping, server_sleeping;
  EventFd subscriber_wake, server_wake;

  void before() {
    frame_head.store(0u, std::memory_order_relaxed);
    release_head.store(0u, std::memory_order_relaxed);
    subscriber_sleeping.store(0u, std::memory_order_relaxed);
    server_sleeping.store(0u, std::memory_order_relaxed);
    subscriber_wake.init();
    server_wake.init();
  }

  // ---- the server ----
  unsigned release_tail = 0;  // server-private
  unsigned in_flight = 0;

  void collect() {
    const unsigned head = release_head.load(std::memory_order_acquire);
    RL_ASSERT(head - release_tail <= slots);  // the server's check of an untrusted index
    while (release_tail != head) {
      const int released = release_entry[release_tail % slots]($);
      RL_ASSERT(released == static_cast<int>(release_tail) + 1);  // frames are released in order here
      ++release_tail;
      --in_flight;
    }
  }

  void server() {
    for (int k = 1; k <= Frames; ++k) {
      collect();
      while (in_flight == slots) {
        // Every slot held: sleep until a release (arm, re-check).
        server_wake.reset();
        server_sleeping.store(1u, std::memory_order_seq_cst);
        if (release_head.load(std::memory_order_seq_cst) == release_tail) server_wake.wait();
        server_sleeping.store(0u, std::memory_order_relaxed);
        collect();
      }
      const unsigned head = static_cast<unsigned>(k - 1);
      frame_entry[head % slots]($) = k;
      frame_head.store(head + 1, std::memory_order_seq_cst);
      ++in_flight;
      if (subscriber_sleeping.load(std::memory_order_seq_cst) != 0 &&
          subscriber_sleeping.exchange(0u, std::memory_order_relaxed) != 0)
        subscriber_wake.signal();
    }
  }

  // ---- the subscriber ----
  void subscriber() {
    unsigned tail = 0;
    unsigned released = 0;
    for (int k = 1; k <= Frames; ++k) {
      while (frame_head.load(std::memory_order_acquire) == tail) {
        subscriber_wake.reset();
        subscriber_sleeping.store(1u, std::memory_order_seq_cst);
        if (frame_head.load(std::memory_order_seq_cst) == tail) subscriber_wake.wait();
        subscriber_sleeping.store(0u, std::memory_order_relaxed);
      }
      const int frame = frame_entry[tail % slots]($);
      RL_ASSERT(frame == k);
      ++tail;
      // Release it at once: the entry, release_head, then wake a sleeping server.
      release_entry[released % slots]($) = frame;
      ++released;
      release_head.store(released, std::memory_order_seq_cst);
      if (server_sleeping.load(std::memory_order_seq_cst) != 0 &&
          server_sleeping.exchange(0u, std::memory_order_relaxed) != 0)
        server_wake.signal();
    }
  }

  void thread(unsigned i) {
    if (i == 0) {
      server();
    } else {
      subscriber();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  run.check<Handshake<3>>("ThreeFrames", 1, 2);
  run.check<Handshake<5>>("FiveFrames", 1, 0);
  return run.finish();
}
