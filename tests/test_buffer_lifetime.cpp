// Lifetime: views and PooledBuffers outlive every BufferPool handle safely;
// the buffers' memory goes only after the last of them (ASan checks the
// accesses, the custom allocator counts the releases).
#include <daq_pool/buffer_pool.hpp>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include "catch.hpp"

using daq_pool::BufferPool;
using daq_pool::BufferPoolOptions;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

namespace {

struct Counting {
  std::atomic<int> allocated{0};
  std::atomic<int> released{0};
  BufferPoolOptions options() {
    BufferPoolOptions o;
    o.allocate = [this](std::size_t bytes, std::size_t align) {
      allocated.fetch_add(1);
      return ::operator new (bytes, std::align_val_t{align});
    };
    o.deallocate = [this](void* p, std::size_t, std::size_t align) {
      released.fetch_add(1);
      ::operator delete (p, std::align_val_t{align});
    };
    return o;
  }
};

Bytes make_view(BufferPool pool, unsigned char value, std::size_t n) {
  PooledBuffer b = pool.acquire();
  std::memset(b.get_mut().data(), value, n);
  b.set_size(n);
  return std::move(b).freeze();
}

}  // namespace

TEST_CASE("views outlive every pool handle") {
  Counting c;
  Bytes view;
  Bytes slice;
  {
    BufferPool pool(3, 4096, c.options());
    BufferPool other = pool;
    view = make_view(other, 0x5A, 4096);
    slice = view.slice(100, 200);
    REQUIRE(c.allocated == 3);
  }  // both handles gone: the pool is closed, its storage stays
  CHECK(c.released == 0);
  for (std::byte x : view) REQUIRE(x == std::byte{0x5A});
  CHECK(slice[199] == std::byte{0x5A});
  CHECK(view.use_count() == 2);
  // A copy made after the pool is gone still shares the buffer.
  Bytes late = view;
  view.reset();
  late.reset();
  CHECK(c.released == 0);
  // try_into_mut on the last view works without a pool handle; dropping the
  // buffer then releases everything (the pool is closed: nothing waits).
  std::optional<PooledBuffer> m = std::move(slice).try_into_mut();
  REQUIRE(m.has_value());
  CHECK(m->size() == 4096);
  m.reset();
  CHECK(c.released == 3);
}

TEST_CASE("a PooledBuffer outlives the pool; its freeze still works") {
  Counting c;
  std::optional<PooledBuffer> b;
  {
    BufferPool pool(2, 64, c.options());
    b = pool.acquire();
  }
  b->copy_from_ptr("abc", 3);
  Bytes v = std::move(*b).freeze();
  b.reset();
  CHECK(v.size() == 3);
  CHECK(c.released == 0);
  v.reset();
  CHECK(c.released == 2);
}

TEST_CASE("the last view may be dropped on another thread after the pool is gone") {
  Counting c;
  std::vector<Bytes> views;
  {
    BufferPool pool(4, 1024, c.options());
    for (int i = 0; i < 4; ++i) views.push_back(make_view(pool, static_cast<unsigned char>(i), 1024));
  }
  std::vector<std::thread> threads;
  for (auto& v : views) {
    threads.emplace_back([view = std::move(v)]() mutable {
      const std::byte first = view[0];
      for (std::byte x : view) {
        if (x != first) std::abort();
      }
      view.reset();
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.released == 4);
  CHECK(c.allocated == 4);
}

TEST_CASE("destroying the pool with nothing out releases everything at once") {
  Counting c;
  {
    BufferPool pool(5, 100, c.options());
    Bytes v = make_view(pool, 1, 10);
  }
  CHECK(c.allocated == 5);
  CHECK(c.released == 5);
}
