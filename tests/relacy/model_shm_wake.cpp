// Model check (issue 20): the cross-process wake handshake of daq_pool::shm
// protocol version 2 (daq_pool/shm/detail/ring.hpp, daq_pool/shm/server.hpp,
// docs/shm.md). The server and the subscriber are two processes sharing a
// control region; the model is the same algorithm on Relacy's atomics (the
// library's ring uses std::atomic_ref on a shared mapping, which Relacy
// cannot model directly). Three threads:
//   - publish() (the publisher's thread): under the peer's mutex, collects
//     releases; at the bound (wait_when_full) it sets publisher_polling,
//     kicks the server thread if that one sleeps armed, stores
//     server_sleeping = 1 (seq_cst), re-checks release_head (seq_cst) and,
//     if still nothing, polls the server_wake eventfd without the mutex,
//     then reads it to 0 (it alone reads it while polling); else writes an
//     entry, stores frame_head (seq_cst) and, if subscriber_sleeping was
//     set, exchanges it to 0 and signals the subscriber's eventfd;
//   - the subscriber: finding the ring empty, resets its eventfd, arms
//     subscriber_sleeping, re-checks frame_head, sleeps; releases each frame
//     at once: the entry, release_head (seq_cst), and signals server_wake if
//     it exchanged a set server_sleeping to 0;
//   - the server thread: sets armed, then under the mutex collects and, if
//     no publish() polls, re-enables its one-shot epoll watch of server_wake
//     and arms server_sleeping, re-checks release_head, and sleeps in
//     epoll_wait (woken by server_wake or the kick); if a publish() polls it
//     does not arm but ticks (a timed wait). Woken by server_wake, it reads
//     that eventfd only if no publish() polls. It ends when publish() is done
//     and every frame is collected, so a release that nobody collects (the
//     server thread asleep, its wake-up consumed by publish()) is a deadlock.
// The eventfds and the epoll are modelled with one mutex, a condition
// variable and counts. Relacy fails the model on a lost wake-up (a
// deadlock), a data race on an entry (an entry read before its index was
// published or reused before it was released), or a wrong frame.
#include "model_check.hpp"

namespace {

/// The kernel side: the subscriber's eventfd; the server's eventfd
/// (server_wake), polled by publish() and watched one-shot by the server
/// thread's epoll; the kick eventfd (publish() -> server thread).
struct Kernel {
  rl::mutex m;
  rl::condition_variable cv;
  rl::var<int> subscriber_count, server_count, kick_count;
  rl::var<bool> watch_enabled;  // the one-shot epoll watch of server_wake
  void init() {
    subscriber_count($) = 0;
    server_count($) = 0;
    kick_count($) = 0;
    watch_enabled($) = true;  // added enabled when the connection is admitted
  }
  void add(rl::var<int>& count) {
    m.lock($);
    count($) = count($) + 1;
    cv.notify_all($);
    m.unlock($);
  }
  void reset(rl::var<int>& count) {
    m.lock($);
    count($) = 0;
    m.unlock($);
  }
  /// poll(): until the count is not 0 (does not read it).
  void poll(rl::var<int>& count) {
    m.lock($);
    while (count($) == 0) cv.wait(m, $);
    m.unlock($);
  }
  void enable_watch() {
    m.lock($);
    watch_enabled($) = true;
    m.unlock($);
  }
  /// The server thread's epoll_wait: true if kicked (the kick read to 0),
  /// false if server_wake is readable (the one-shot watch then disabled).
  bool epoll_wait() {
    m.lock($);
    while (kick_count($) == 0 && !(watch_enabled($) && server_count($) != 0)) cv.wait(m, $);
    const bool kicked = kick_count($) != 0;
    if (kicked) {
      kick_count($) = 0;
    } else {
      watch_enabled($) = false;
    }
    m.unlock($);
    return kicked;
  }
  /// A tick: epoll_wait with a timeout (may return at once).
  void tick() {
    m.lock($);
    cv.wait_for(m, std::chrono::milliseconds(10), $);
    m.unlock($);
  }
};

/// One subscriber's control region: max_in_flight 2, ring_slots 2.
template <int Frames>
struct Handshake : rl::test_suite<Handshake<Frames>, 3> {
  static constexpr unsigned slots = 2;
  rl::var<int> frame_entry[slots];
  rl::var<int> release_entry[slots];
  rl::atomic<unsigned> frame_head, release_head;
  rl::atomic<unsigned> subscriber_sleeping, server_sleeping;
  Kernel kernel;

  // ---- the server process: the peer's mutex and what it guards ----
  rl::mutex peer;
  rl::var<unsigned> release_tail, in_flight;
  rl::var<bool> publisher_polling, done;
  rl::atomic<bool> armed;  // the server thread sleeps armed (Server::armed_)

  void before() {
    frame_head.store(0u, std::memory_order_relaxed);
    release_head.store(0u, std::memory_order_relaxed);
    subscriber_sleeping.store(0u, std::memory_order_relaxed);
    server_sleeping.store(0u, std::memory_order_relaxed);
    kernel.init();
    release_tail($) = 0;
    in_flight($) = 0;
    publisher_polling($) = false;
    done($) = false;
    armed.store(false, std::memory_order_relaxed);
  }

  /// collect(), the peer's mutex held (publish() and the server thread).
  void collect() {
    const unsigned head = release_head.load(std::memory_order_acquire);
    unsigned tail = release_tail($);
    RL_ASSERT(head - tail <= slots);  // the server's check of an untrusted index
    while (tail != head) {
      const int released = release_entry[tail % slots]($);
      RL_ASSERT(released == static_cast<int>(tail) + 1);  // frames are released in order here
      ++tail;
      in_flight($) = in_flight($) - 1;
    }
    release_tail($) = tail;
  }

  /// Stores server_sleeping = 1, re-checks the ring: true if nothing came.
  bool arm_server_wake() {
    server_sleeping.store(1u, std::memory_order_seq_cst);
    return release_head.load(std::memory_order_seq_cst) == release_tail($);
  }

  // ---- publish() ----
  void publisher() {
    for (int k = 1; k <= Frames; ++k) {
      peer.lock($);
      collect();
      while (in_flight($) == slots) {
        // Every slot held (wait_when_full; the spin is more collect()s).
        publisher_polling($) = true;
        if (armed.load(std::memory_order_acquire)) kernel.add(kernel.kick_count);
        if (arm_server_wake()) {
          peer.unlock($);
          kernel.poll(kernel.server_count);
          peer.lock($);
          kernel.reset(kernel.server_count);  // ours to read while polling
        }
        publisher_polling($) = false;
        collect();
      }
      const unsigned head = static_cast<unsigned>(k - 1);
      frame_entry[head % slots]($) = k;
      frame_head.store(head + 1, std::memory_order_seq_cst);
      in_flight($) = in_flight($) + 1;
      if (subscriber_sleeping.load(std::memory_order_seq_cst) != 0 &&
          subscriber_sleeping.exchange(0u, std::memory_order_relaxed) != 0)
        kernel.add(kernel.subscriber_count);
      peer.unlock($);
    }
    // Done. If everything is collected, end the server thread (stop()'s
    // wake); else it must collect the rest on its own, woken by releases.
    peer.lock($);
    done($) = true;
    const bool all_collected = in_flight($) == 0;
    peer.unlock($);
    if (all_collected) kernel.add(kernel.kick_count);
  }

  // ---- the server thread ----
  void server_thread() {
    for (;;) {
      // arm_all(): armed first, then each peer under its mutex.
      armed.store(true, std::memory_order_relaxed);
      peer.lock($);
      collect();
      if (done($) && in_flight($) == 0) {
        peer.unlock($);
        return;
      }
      bool sleep = false;
      if (!publisher_polling($)) {
        kernel.enable_watch();
        sleep = arm_server_wake();
      }
      peer.unlock($);
      if (!sleep) {
        armed.store(false, std::memory_order_relaxed);
        kernel.tick();
        continue;
      }
      if (!kernel.epoll_wait()) {
        // server_woken()
        peer.lock($);
        if (!publisher_polling($)) kernel.reset(kernel.server_count);
        peer.unlock($);
      }
      armed.store(false, std::memory_order_relaxed);
    }
  }

  // ---- the subscriber ----
  void subscriber() {
    unsigned tail = 0;
    unsigned released = 0;
    for (int k = 1; k <= Frames; ++k) {
      while (frame_head.load(std::memory_order_acquire) == tail) {
        kernel.reset(kernel.subscriber_count);
        subscriber_sleeping.store(1u, std::memory_order_seq_cst);
        if (frame_head.load(std::memory_order_seq_cst) == tail) kernel.poll(kernel.subscriber_count);
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
        kernel.add(kernel.server_count);
    }
  }

  void thread(unsigned i) {
    if (i == 0) {
      publisher();
    } else if (i == 1) {
      subscriber();
    } else {
      server_thread();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  run.check<Handshake<3>>("ThreeFrames", 1, 1);
  run.check<Handshake<5>>("FiveFrames", 1, 0);
  return run.finish();
}
