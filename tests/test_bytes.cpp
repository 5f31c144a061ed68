// Bytes: the shared immutable view. Empty views, copies and moves share the
// buffer (use_count), slices, content equality, the heap fallback, and
// try_into_mut.
#include <daq_pool/buffer_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "catch.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

namespace {

std::vector<std::byte> pattern(std::size_t n, int seed = 0) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 7 + static_cast<std::size_t>(seed)) & 0xFF);
  return v;
}

Bytes frozen(BufferPool& pool, const std::vector<std::byte>& content) {
  PooledBuffer b = pool.acquire();
  b.copy_from(content);
  return std::move(b).freeze();
}

}  // namespace

static_assert(sizeof(Bytes) <= 3 * sizeof(void*));
static_assert(std::is_nothrow_copy_constructible_v<Bytes>);
static_assert(std::is_nothrow_move_constructible_v<Bytes>);
static_assert(std::is_nothrow_destructible_v<Bytes>);
static_assert(!std::is_copy_constructible_v<PooledBuffer>);
static_assert(std::is_nothrow_move_constructible_v<PooledBuffer>);

TEST_CASE("an empty Bytes holds nothing") {
  const Bytes e;
  CHECK(e.empty());
  CHECK(e.size() == 0);
  CHECK(e.data() == nullptr);
  CHECK(e.begin() == e.end());
  CHECK(e.span().empty());
  CHECK(e.use_count() == 0);
  CHECK_FALSE(e.is_pooled());
  CHECK(e == Bytes());
  CHECK(e.slice(0, 0).empty());
  REQUIRE_THROWS_AS(e.slice(0, 1), std::out_of_range);
  CHECK_FALSE(Bytes(e).try_into_mut().has_value());
}

TEST_CASE("freeze makes a view of the filled bytes of the buffer itself") {
  BufferPool pool(2, 256);
  PooledBuffer b = pool.acquire();
  const std::byte* where = b.data();
  const auto content = pattern(100);
  b.copy_from(content);
  Bytes v = std::move(b).freeze();
  CHECK_FALSE(static_cast<bool>(b));  // NOLINT(bugprone-use-after-move): frozen leaves it empty
  CHECK(v.data() == where);           // zero-copy
  CHECK(v.size() == 100);
  CHECK(v.is_pooled());
  CHECK(v.use_count() == 1);
  CHECK(std::vector<std::byte>(v.begin(), v.end()) == content);
  CHECK(v[42] == content[42]);
  CHECK(pool.available() == 1);  // the view holds the buffer
}

TEST_CASE("copies and moves share the buffer; the last drop returns it") {
  BufferPool pool(1, 64);
  Bytes a = frozen(pool, pattern(64));
  REQUIRE(pool.available() == 0);
  {
    Bytes b = a;
    CHECK(a.use_count() == 2);
    CHECK(b.data() == a.data());
    Bytes c = std::move(b);
    CHECK(b.empty());  // NOLINT(bugprone-use-after-move)
    CHECK(a.use_count() == 2);
    Bytes d;
    d = c;
    CHECK(a.use_count() == 3);
    d = std::move(c);
    CHECK(a.use_count() == 2);
    const Bytes& same = d;
    d = same;  // self-assignment keeps the view
    CHECK(a.use_count() == 2);
    CHECK(d == a);
  }
  CHECK(a.use_count() == 1);
  CHECK(pool.available() == 0);
  a.reset();
  CHECK(a.empty());
  CHECK(pool.available() == 1);
  CHECK(pool.stats().releases == 1);
}

TEST_CASE("assigning over a view releases what it held") {
  BufferPool pool(2, 16);
  Bytes a = frozen(pool, pattern(16, 1));
  Bytes b = frozen(pool, pattern(16, 2));
  REQUIRE(pool.available() == 0);
  a = b;  // a's buffer had one view: returned now
  CHECK(pool.available() == 1);
  CHECK(a.use_count() == 2);
  swap(a, b);
  CHECK(a == b);
}

TEST_CASE("slices share the buffer and are bounds-checked") {
  BufferPool pool(1, 100);
  const auto content = pattern(100, 3);
  Bytes v = frozen(pool, content);

  Bytes s = v.slice(10, 20);
  CHECK(s.data() == v.data() + 10);
  CHECK(s.size() == 20);
  CHECK(v.use_count() == 2);
  CHECK(std::vector<std::byte>(s.begin(), s.end()) ==
        std::vector<std::byte>(content.begin() + 10, content.begin() + 30));
  Bytes ss = s.slice(5, 15);  // a slice of a slice: still relative to its view
  CHECK(ss.data() == v.data() + 15);
  CHECK(ss.size() == 15);
  CHECK(v.use_count() == 3);

  CHECK(v.slice(0, 100) == v);
  CHECK(v.slice(100, 0).empty());
  CHECK(v.slice(0, 0).use_count() == 0);  // an empty slice holds nothing
  REQUIRE_THROWS_AS(v.slice(0, 101), std::out_of_range);
  REQUIRE_THROWS_AS(v.slice(101, 0), std::out_of_range);
  REQUIRE_THROWS_AS(v.slice(50, 51), std::out_of_range);
  REQUIRE_THROWS_AS(s.slice(15, 6), std::out_of_range);
  REQUIRE_THROWS_AS(v.slice(1, SIZE_MAX), std::out_of_range);  // offset + length wraps
  CHECK(v.use_count() == 3);                                   // failed slices took no reference

  v.reset();
  s.reset();
  CHECK(pool.available() == 0);  // ss still holds it
  ss.reset();
  CHECK(pool.available() == 1);
}

TEST_CASE("operator== compares contents, not identity") {
  BufferPool pool(2, 32);
  Bytes a = frozen(pool, pattern(32, 5));
  Bytes b = frozen(pool, pattern(32, 5));
  CHECK(a.data() != b.data());
  CHECK(a == b);
  CHECK(a == Bytes::copy_from(pattern(32, 5)));
  CHECK_FALSE(a == b.slice(0, 31));
  CHECK(a != Bytes::copy_from(pattern(32, 6)));
  CHECK(a.slice(3, 0) == Bytes());
}

TEST_CASE("Bytes::copy_from is a heap-backed view of the same type") {
  const auto content = pattern(1000, 9);
  Bytes h = Bytes::copy_from(content);
  CHECK_FALSE(h.is_pooled());
  CHECK(h.size() == 1000);
  CHECK(h.data() != content.data());
  CHECK(std::vector<std::byte>(h.begin(), h.end()) == content);
  CHECK(reinterpret_cast<std::uintptr_t>(h.data()) % alignof(std::max_align_t) == 0);
  Bytes c = h;
  Bytes s = h.slice(500, 500);
  CHECK(h.use_count() == 3);
  CHECK(s[0] == content[500]);
  CHECK_FALSE(std::move(c).try_into_mut().has_value());  // not pooled
  CHECK(c.size() == 1000);                               // left unchanged
  CHECK(Bytes::copy_from({}).empty());
}

TEST_CASE("try_into_mut gives the buffer back only to the sole view") {
  BufferPool pool(1, 64);
  Bytes v = frozen(pool, pattern(40, 1));
  const std::byte* where = v.data();

  Bytes other = v;
  CHECK_FALSE(std::move(v).try_into_mut().has_value());
  CHECK(v.size() == 40);  // failure leaves the view alone
  CHECK(v.use_count() == 2);
  other.reset();

  std::optional<PooledBuffer> m = std::move(v).try_into_mut();
  REQUIRE(m.has_value());
  CHECK(v.empty());
  CHECK(m->data() == where);
  CHECK(m->size() == 40);  // contents and size as frozen
  CHECK(m->data()[1] == pattern(40, 1)[1]);
  CHECK(pool.available() == 0);

  // Writable and freezable again; a slice that is the only view also works.
  m->copy_from(pattern(64, 2));
  Bytes again = std::move(*m).freeze();
  CHECK(again == Bytes::copy_from(pattern(64, 2)));
  Bytes part = again.slice(8, 8);
  again.reset();
  std::optional<PooledBuffer> m2 = std::move(part).try_into_mut();
  REQUIRE(m2.has_value());
  CHECK(m2->size() == 64);  // the whole buffer
  m.reset();
  m2.reset();
  CHECK(pool.available() == 1);
  const auto st = pool.stats();
  CHECK(st.acquires == 1);
  CHECK(st.releases == 1);
}
