// Bad BufferPool options give clear exceptions naming the argument, and a
// construction that fails part-way releases whatever it had allocated.
#include <daq_pool/buffer_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <set>
#include <stdexcept>
#include <string>

#include "catch.hpp"

using daq_pool::BufferPool;
using daq_pool::BufferPoolOptions;

namespace {

/// The message of the E that `f` throws ("" if it throws nothing).
template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// An allocator that fails in a chosen way on call number `fail_at`.
struct FailingAllocator {
  enum class How { throws, returns_null, misaligned };
  int fail_at;
  How how;
  std::set<void*> live;
  int deallocations = 0;

  BufferPoolOptions options() {
    BufferPoolOptions o;
    o.alignment = 64;
    o.allocate = [this](std::size_t bytes, std::size_t align) -> void* {
      const int call = static_cast<int>(live.size()) + deallocations + 1;
      if (call == fail_at && how == How::throws) throw std::runtime_error("device out of pinned memory");
      if (call == fail_at && how == How::returns_null) return nullptr;
      auto* p = static_cast<std::byte*>(::operator new (bytes + align, std::align_val_t{align}));
      if (call == fail_at) p += 1;  // How::misaligned
      live.insert(p);
      return p;
    };
    o.deallocate = [this](void* p, std::size_t, std::size_t align) {
      ++deallocations;
      if (live.erase(p) == 0) throw std::logic_error("unknown pointer");  // terminates: a test failure
      auto* base = reinterpret_cast<std::byte*>(reinterpret_cast<std::uintptr_t>(p) / align * align);
      ::operator delete (base, std::align_val_t{align});
    };
    return o;
  }
};

}  // namespace

TEST_CASE("pool_size 0 and buffer_capacity 0 are rejected by name") {
  CHECK(contains(message_of<std::invalid_argument>([] { BufferPool(0, 64); }), "pool_size"));
  CHECK(contains(message_of<std::invalid_argument>([] { BufferPool(4, 0); }), "buffer_capacity"));
  CHECK(contains(message_of<std::invalid_argument>([] { BufferPool(std::size_t{1} << 40, 1); }), "pool_size"));
}

TEST_CASE("alignment must be a power of two") {
  for (std::size_t bad : {std::size_t{0}, std::size_t{3}, std::size_t{100}, std::size_t{4097}, SIZE_MAX}) {
    INFO("alignment " << bad);
    BufferPoolOptions o;
    o.alignment = bad;
    const std::string m = message_of<std::invalid_argument>([&] { BufferPool(2, 64, o); });
    CHECK(contains(m, "options.alignment"));
  }
  BufferPoolOptions one;
  one.alignment = 1;
  REQUIRE_NOTHROW(BufferPool(2, 64, one));
}

TEST_CASE("pool_size * buffer_capacity must not overflow") {
  const std::string m = message_of<std::invalid_argument>([] { BufferPool(1 << 20, SIZE_MAX / 1024); });
  CHECK(contains(m, "pool_size"));
  CHECK(contains(m, "buffer_capacity"));
  CHECK(contains(m, "overflow"));
  // Rounding each buffer up to the alignment may overflow too.
  BufferPoolOptions o;
  o.alignment = std::size_t{1} << 62;
  CHECK(contains(message_of<std::invalid_argument>([&] { BufferPool(4, (std::size_t{1} << 61) + 1, o); }), "overflow"));
}

TEST_CASE("allocate and deallocate come together") {
  BufferPoolOptions only_alloc;
  only_alloc.allocate = [](std::size_t n, std::size_t a) { return ::operator new (n, std::align_val_t{a}); };
  CHECK(contains(message_of<std::invalid_argument>([&] { BufferPool(2, 64, only_alloc); }), "options.deallocate"));
  BufferPoolOptions only_dealloc;
  only_dealloc.deallocate = [](void* p, std::size_t, std::size_t a) { ::operator delete (p, std::align_val_t{a}); };
  CHECK(contains(message_of<std::invalid_argument>([&] { BufferPool(2, 64, only_dealloc); }), "options.allocate"));
}

TEST_CASE("memory that can't be had is std::bad_alloc with a message") {
  // 2^62 bytes: more than any address space, whatever the overcommit policy.
  const std::string m = message_of<std::bad_alloc>([] { BufferPool(1 << 20, std::size_t{1} << 42); });
  INFO(m);
  CHECK(contains(m, "pool_size"));
  CHECK(contains(m, "buffer_capacity"));
}

TEST_CASE("a failing allocator: the error propagates and nothing leaks") {
  SECTION("allocate throws") {
    FailingAllocator a{4, FailingAllocator::How::throws, {}, 0};
    CHECK(message_of<std::runtime_error>([&] { BufferPool(6, 100, a.options()); }) == "device out of pinned memory");
    CHECK(a.deallocations == 3);
    CHECK(a.live.empty());
  }
  SECTION("allocate returns null") {
    FailingAllocator a{3, FailingAllocator::How::returns_null, {}, 0};
    const std::string m = message_of<std::bad_alloc>([&] { BufferPool(6, 100, a.options()); });
    CHECK(contains(m, "options.allocate"));
    CHECK(a.deallocations == 2);
    CHECK(a.live.empty());
  }
  SECTION("allocate returns misaligned memory") {
    FailingAllocator a{5, FailingAllocator::How::misaligned, {}, 0};
    const std::string m = message_of<std::invalid_argument>([&] { BufferPool(6, 100, a.options()); });
    CHECK(contains(m, "options.alignment"));
    CHECK(a.deallocations == 5);  // the misaligned block too
    CHECK(a.live.empty());
  }
  SECTION("the first buffer fails") {
    FailingAllocator a{1, FailingAllocator::How::throws, {}, 0};
    CHECK_FALSE(message_of<std::runtime_error>([&] { BufferPool(2, 100, a.options()); }).empty());
    CHECK(a.deallocations == 0);
    CHECK(a.live.empty());
  }
}
