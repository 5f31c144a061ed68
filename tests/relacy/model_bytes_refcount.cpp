// Model check (issue 6, 2a): the last drop of a Bytes view returns its buffer
// to the pool, racing with copies, slices, drops and try_into_mut() on other
// threads, and with an acquirer waiting for that buffer.
//
// The library's own code: BufferPool, PooledBuffer, Bytes and the Pool<T>
// underneath, compiled with DAQ_POOL_USE_RELACY (every atomic an rl::atomic,
// Relacy's futex model for sleeping). Relacy fails a model on a data race on
// the buffer's contents (a view still reading while the next owner writes:
// a premature return, e.g. a refcount decrement without release/acquire), an
// access to freed memory or a double free (a control block released twice),
// a leak (released never), a deadlock, or a failed assertion.
#include "model_check.hpp"

#include "daq_pool/buffer_pool.hpp"

namespace {

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

constexpr std::byte pattern{0x5A};

/// One buffer of 64 bytes (small: nothing here depends on the size).
BufferPool make_pool() {
  daq_pool::BufferPoolOptions o;
  o.alignment = 64;
  return BufferPool(1, 64, o);
}

/// Freezes the pool's only buffer with 8 bytes of `pattern`, writing the
/// buffer's shadow (its contents as the model sees them) first.
Bytes frozen(BufferPool& pool, model::Shadow<1>& shadow) {
  PooledBuffer b = pool.acquire();
  shadow.write(0, 1);
  std::memset(b.data(), static_cast<int>(pattern), 8);
  b.set_size(8);
  return std::move(b).freeze();
}

/// Reads a view the way a consumer does: its bytes and the shadow.
void consume(const Bytes& v, const model::Shadow<1>& shadow) {
  RL_ASSERT(v.size() == 8 && v[0] == pattern && v[7] == pattern);
  RL_ASSERT(shadow.read(0) == 1);
}

/// The buffer is back, and the counters agree.
void check_quiet(const BufferPool& pool) {
  const auto st = pool.stats();
  RL_ASSERT(pool.available() == 1);
  RL_ASSERT(st.in_use == 0);
  RL_ASSERT(st.acquires == st.releases);
}

/// Two consumers each copy and slice their view, read it and drop every
/// view they have; a producer waits in acquire() for the pool's only buffer
/// and writes it. The last drop, whichever thread makes it, must return the
/// buffer exactly once, after both consumers' reads, and wake the producer.
struct LastViewReturns : rl::test_suite<LastViewReturns, 3> {
  std::optional<BufferPool> pool;
  model::Shadow<1> shadow;
  Bytes views[2];

  void before() {
    pool.emplace(make_pool());
    views[0] = frozen(*pool, shadow);
    views[1] = views[0];
    RL_ASSERT(views[0].use_count() == 2);
  }
  void thread(unsigned i) {
    if (i < 2) {
      Bytes copy = views[i];
      Bytes part = copy.slice(2, 4);
      consume(copy, shadow);
      RL_ASSERT(part.size() == 4 && part[0] == pattern);
      views[i].reset();
      part.reset();
      copy.reset();  // possibly the last view: returns the buffer
      return;
    }
    PooledBuffer b = pool->acquire();  // only once every view is gone
    RL_ASSERT(b.size() == 0);          // the pool's reset ran
    shadow.write(0, 2);
  }
  void after() {
    check_quiet(*pool);
    RL_ASSERT(pool->stats().acquires == 2);
    pool.reset();
  }
};

/// One consumer drops its view while the other tries to turn its own view
/// back into a writable buffer: try_into_mut() may succeed only once it is
/// the last view, and then its writes must be ordered after the other
/// consumer's reads. A waiting producer gets the buffer after either path.
struct TryIntoMutRacesDrop : rl::test_suite<TryIntoMutRacesDrop, 3> {
  std::optional<BufferPool> pool;
  model::Shadow<1> shadow;
  Bytes views[2];
  bool became_mut = false;

  void before() {
    pool.emplace(make_pool());
    views[0] = frozen(*pool, shadow);
    views[1] = views[0];
  }
  void thread(unsigned i) {
    if (i == 0) {
      consume(views[0], shadow);
      views[0].reset();
    } else if (i == 1) {
      consume(views[1], shadow);
      if (auto b = std::move(views[1]).try_into_mut()) {
        became_mut = true;
        RL_ASSERT(views[1].use_count() == 0);
        RL_ASSERT(b->size() == 8);
        shadow.write(0, 3);  // writable again: no other view may be reading
        b->get_mut()[0] = std::byte{0};
      } else {
        RL_ASSERT(!views[1].empty());  // unchanged on failure
        views[1].reset();
      }
    } else {
      PooledBuffer b = pool->acquire();
      RL_ASSERT(b.size() == 0);
      shadow.write(0, 2);
    }
  }
  void after() {
    check_quiet(*pool);
    pool.reset();
  }
};

/// Views of a heap copy (Bytes::copy_from, the exhausted-pool fallback)
/// dropped on several threads: the block is freed exactly once, by the last
/// (Relacy tracks the allocation: a double free, a use after free or a leak
/// fails the model).
struct HeapViewsLastDropFrees : rl::test_suite<HeapViewsLastDropFrees, 3> {
  Bytes views[3];

  void before() {
    const std::byte src[5] = {pattern, pattern, pattern, pattern, pattern};
    views[0] = Bytes::copy_from(src);
    views[1] = views[0];
    views[2] = views[1].slice(1, 3);
    RL_ASSERT(!views[0].is_pooled() && views[0].use_count() == 3);
  }
  void thread(unsigned i) {
    Bytes mine = std::move(views[i]);
    Bytes copy = mine;
    RL_ASSERT(copy[0] == pattern);
    RL_ASSERT(!std::move(copy).try_into_mut());  // never for a heap view
  }
};

}  // namespace

int main(int argc, char** argv) {
  model::Runner run(argc, argv, 20000);
  run.check<LastViewReturns>("LastViewReturns", 1, 2);
  run.check<TryIntoMutRacesDrop>("TryIntoMutRacesDrop", 1, 2);
  run.check<HeapViewsLastDropFrees>("HeapViewsLastDropFrees", 1, 2);
  return run.finish();
}
