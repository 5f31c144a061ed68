// Model check (issues 10, 15): a pool's free list alone, detail::FreeList,
// under the ABA interleaving its tag exists for and under the head guesses
// its pops and pushes start from.
//
// A Treiber stack without a tag hands one node to two owners: A reads
// top = X and X's link Y and is preempted before its CAS; B pops X, pops Y
// and pushes X back; A's CAS still sees X on top and installs Y, which B
// holds. Every later pop returns Y a second time. The tag in the head makes
// A's CAS fail instead. On 2 cores that window is almost never hit by a
// stress test, so it is proven here, on the library's own FreeList compiled
// with DAQ_POOL_USE_RELACY.
//
// FreeList adds a second way to read a stale link: pops and pushes start
// from a published *guess* of the head, and a push publishes its guess
// before its CAS (after a successful push the pool may be gone), so a guess
// may name a head that never comes. A popper that read guess G = (X, tag)
// and X's link Y, then a push of X whose CAS fails and which retries with a
// new link: if that retry published G again (the same top, the same tag),
// the popper's CAS against G would succeed with the stale link Y. Every pop
// and every push moving the tag is what makes the retry publish a new value;
// the models below find the bug when either increment is missing.
//
// Each thread pops nodes and pushes them back, first popped first (B's
// "pop X, pop Y, push X" is one of these programs; so is a push racing a pop
// of the node it is about to link to). Ownership is checked twice over: a
// plain array, outside Relacy's view, records who holds each node (a pop of
// a node someone holds fails an assertion: the ABA bug), and an rl::var per
// node stands for its contents (a pop that doesn't happen-after the previous
// holder's push is a data race: a memory order too weak). After every
// schedule each node must be on the list exactly once (nothing lost,
// nothing linked twice) and the top's depth must count them.
#include "model_check.hpp"

#include "daq_pool/detail/free_list.hpp"

namespace {

using daq_pool::detail::FreeList;

/// A free-list node, as a pool slot is one: its index, its link, its depth.
struct Node {
  daq_pool::detail::atomic<std::uint32_t> next;
  daq_pool::detail::atomic<std::uint32_t> depth;
  std::uint32_t index = 0;
};

constexpr int nobody = -1;

/// `Threads` threads over `N` nodes; each pops `Pops` nodes (or fewer, if
/// the list is empty) and pushes them back in the order it popped them.
template <std::size_t N, std::size_t Threads, std::size_t Pops>
struct PopsThenPushes : rl::test_suite<PopsThenPushes<N, Threads, Pops>, Threads> {
  Node nodes[N];
  FreeList list;
  model::Shadow<N> contents;
  // Who holds each node. Not an rl::var: the model's threads are fibers on
  // one OS thread, so this is the real state of the schedule, whatever the
  // memory model lets the atomics return; the check can't race.
  int holder[N];

  auto node_of() {
    return [this](std::uint32_t i) -> Node& { return nodes[i]; };
  }

  void before() {
    for (std::uint32_t i = 0; i < N; ++i) {
      nodes[i].index = i;
      nodes[i].next.store(FreeList::empty_index, std::memory_order_relaxed);
      nodes[i].depth.store(0, std::memory_order_relaxed);
      holder[i] = nobody;
      contents.write(i, nobody);
    }
    // Pushed in reverse: node 0 on top, as PoolCore does with its slots.
    for (std::uint32_t i = N; i-- > 0;) RL_ASSERT(list.push_unless_flagged(nodes[i], node_of()));
  }

  Node* take(int who) {
    const auto popped = list.pop(node_of());
    if (popped.node == nullptr) return nullptr;
    Node* n = popped.node;
    // The ABA bug: the list hands out a node that someone holds.
    RL_ASSERT(holder[n->index] == nobody);
    RL_ASSERT(popped.free_after < N);
    holder[n->index] = who;
    contents.write(n->index, who);
    return n;
  }

  void give(Node* n, int who) {
    if (n == nullptr) return;
    RL_ASSERT(contents.read(n->index) == who);
    holder[n->index] = nobody;
    // No flags in this model: every push succeeds.
    RL_ASSERT(list.push_unless_flagged(*n, node_of()));
  }

  void thread(unsigned t) {
    const int who = static_cast<int>(t);
    Node* held[Pops] = {};
    for (auto& h : held) h = take(who);
    for (auto* h : held) give(h, who);
  }

  void after() {
    const std::uint64_t head = list.load();
    RL_ASSERT(FreeList::depth(head, node_of()) == N);  // the top's depth counts every node
    bool seen[N] = {};
    std::size_t count = 0;
    for (;;) {
      const auto popped = list.pop(node_of());
      if (popped.node == nullptr) break;
      RL_ASSERT(!seen[popped.node->index]);  // linked twice: a cycle or a duplicate
      seen[popped.node->index] = true;
      RL_ASSERT(++count <= N);
      RL_ASSERT(popped.free_after == N - count);
    }
    RL_ASSERT(count == N);  // none lost
    RL_ASSERT(FreeList::is_empty(list.load()));
  }
};

/// Two nodes, three threads popping two each: the smallest list with the
/// ABA interleaving (and a third thread to race either side of it).
using TwoNodes = PopsThenPushes<2, 3, 2>;
/// Three nodes, three threads popping two each: every thread may hold a
/// node at once, and the stale link A installs may point into the middle.
using ThreeNodes = PopsThenPushes<3, 3, 2>;
/// Three nodes, three threads popping one each: short programs, so that the
/// guess interleaving (a push that published its guess, lost its CAS to a
/// pop of the node it linked to, and retried; a pop that read that guess and
/// its stale link) is reached with few preemptions.
using GuessedHead = PopsThenPushes<3, 3, 1>;

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  // Random schedules first, then exhaustively every schedule with at most 2
  // preemptions, with every memory-order outcome of each: the ABA
  // interleaving needs two (A preempted before its CAS, B preempted after
  // pushing X back). An unbounded search does not finish in minutes.
  run.check<TwoNodes>("TwoNodes", 1, 2);
  run.check<ThreeNodes>("ThreeNodes", 1, 2);
  run.check<GuessedHead>("GuessedHead", 1, 3);
  return run.finish();
}
