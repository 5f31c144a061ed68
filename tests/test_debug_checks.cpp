// Debug checks (DAQ_POOL_DEBUG, issue 6): where loans were acquired,
// outstanding() and its report at close, double return and return to the
// wrong pool, poisoned returns and canary bytes after each buffer.
//
// Compiled with DAQ_POOL_DEBUG=1 in every configuration (unless the build
// defines it), so the checks are tested in release builds too. Checks that
// abort run in a forked child whose stderr and exit are examined.
#if !defined(DAQ_POOL_DEBUG)
#define DAQ_POOL_DEBUG 1
#endif

#include <daq_pool/daq_pool.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "catch.hpp"
#include "death_test.hpp"

#if DAQ_POOL_DEBUG

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::Pool;
using daq_pool::detail::LoanAccess;

namespace {

using test_support::ChildResult;
using test_support::in_child;

bool contains(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

bool ends_with(const char *text, const char *suffix) {
  const std::size_t n = std::strlen(text), m = std::strlen(suffix);
  return n >= m && std::strcmp(text + n - m, suffix) == 0;
}

}  // namespace

TEST_CASE(
    "every loan records where it was acquired; outstanding() lists the "
    "loans still out") {
  Pool<int> pool(
      5, [] { return 0; }, {}, daq_pool::PoolOptions{6});
  CHECK(pool.outstanding().empty());

  auto a = pool.acquire();
  const auto line_a = __LINE__ - 1;
  auto b = pool.try_acquire_for(std::chrono::milliseconds(1));
  const auto line_b = __LINE__ - 1;
  auto c = pool.try_acquire();
  auto d = pool.acquire_or_grow();
  auto e = a.try_clone();
  const auto line_e = __LINE__ - 1;
  REQUIRE(b);
  REQUIRE(c);
  REQUIRE(d);
  REQUIRE(e);

  const auto out = pool.outstanding();
  REQUIRE(out.size() == 5);
  for (const auto &loan : out) {
    INFO("slot " << loan.slot << " at " << loan.acquired_at.file_name() << ":" << loan.acquired_at.line());
    CHECK(ends_with(loan.acquired_at.file_name(), "test_debug_checks.cpp"));
  }
  auto line_of = [&out](std::size_t slot) {
    for (const auto &loan : out)
      if (loan.slot == slot) return static_cast<long>(loan.acquired_at.line());
    return -1L;
  };
  CHECK(line_of(a.slot_index()) == static_cast<long>(line_a));
  CHECK(line_of(b->slot_index()) == static_cast<long>(line_b));
  CHECK(line_of(e->slot_index()) == static_cast<long>(line_e));

  b.reset();
  e.reset();
  CHECK(pool.outstanding().size() == 3);
  a.reset();
  c.reset();
  d.reset();
  CHECK(pool.outstanding().empty());
}

TEST_CASE("closing a pool with loans out prints each with where it was acquired") {
  const auto r = in_child([] {
    Pool<int> pool(3, [] { return 0; });
    auto kept = pool.acquire();
    auto returned = pool.acquire();
    returned.reset();
    pool.close();
    pool.close();  // reported once
  });
  INFO(r.err);
  CHECK(r.exited_ok);
  CHECK(contains(r.err, "pool closed with 1 loan(s) outstanding"));
  CHECK(contains(r.err, "slot 0 acquired at "));
  CHECK(contains(r.err, "test_debug_checks.cpp:"));
  // Once, not at the second close() nor at the last handle's.
  CHECK(r.err.find("outstanding") == r.err.rfind("outstanding"));
}

TEST_CASE("dropping the last handle with loans out reports them too") {
  const auto r = in_child([] {
    std::optional<daq_pool::Loaned<int>> leak;
    {
      Pool<int> pool(2, [] { return 0; });
      leak.emplace(pool.acquire());
    }
  });
  INFO(r.err);
  CHECK(r.exited_ok);
  CHECK(contains(r.err, "pool closed with 1 loan(s) outstanding"));
}

TEST_CASE("a closed pool with everything returned prints nothing") {
  const auto r = in_child([] {
    Pool<int> pool(2, [] { return 0; });
    { auto l = pool.acquire(); }
    pool.close();
  });
  CHECK(r.exited_ok);
  CHECK(r.err.empty());
}

TEST_CASE("a double return aborts with a message naming the slot") {
  const auto r = in_child([] {
    Pool<int> pool(3, [] { return 0; });
    auto keep0 = pool.acquire();
    auto l = pool.acquire();  // slot 1

    // The misuse under test (which a static analyzer rightly flags).
#if !defined(__clang_analyzer__)
    auto raw = LoanAccess::into_raw(std::move(l));
    LoanAccess::from_raw(raw.first, raw.second).reset();
    LoanAccess::from_raw(raw.first, raw.second).reset();  // again: must abort
#endif
  });
  INFO(r.err);
  CHECK(r.aborted);
  CHECK(contains(r.err, "slot 1"));
  CHECK(contains(r.err, "returned twice"));
}

TEST_CASE("a return to the wrong pool aborts with a message naming the slot") {
  const auto r = in_child([] {
    Pool<int> a(2, [] { return 0; });
    Pool<int> b(2, [] { return 0; });
    auto from_a = a.acquire();
    auto from_b = b.acquire();
    // The misuse under test (which a static analyzer rightly flags).
#if !defined(__clang_analyzer__)
    auto ra = LoanAccess::into_raw(std::move(from_a));
    auto rb = LoanAccess::into_raw(std::move(from_b));
    LoanAccess::from_raw(ra.first, rb.second).reset();  // b's slot into a
#endif
  });
  INFO(r.err);
  CHECK(r.aborted);
  CHECK(contains(r.err, "slot 0"));
  CHECK(contains(r.err, "does not belong"));
}

TEST_CASE(
    "BufferPool loans, frozen buffers included, are listed where they "
    "were acquired") {
  BufferPool pool(3, 256);
  auto b = pool.acquire();
  const auto line_b = __LINE__ - 1;
  auto f = pool.try_acquire();
  REQUIRE(f);
  Bytes view = std::move(*f).freeze();  // frozen: still out until the last view drops
  const auto out = pool.outstanding();
  REQUIRE(out.size() == 2);
  bool found = false;
  for (const auto &loan : out) {
    CHECK(ends_with(loan.acquired_at.file_name(), "test_debug_checks.cpp"));
    if (static_cast<long>(loan.acquired_at.line()) == static_cast<long>(line_b)) found = true;
  }
  CHECK(found);
  view.reset();
  CHECK(pool.outstanding().size() == 1);
}

TEST_CASE("a returned buffer's valid bytes are poisoned, so stale reads show") {
  BufferPool pool(1, 128);
  auto b = pool.acquire();
  const std::byte *stale = b.data();
  std::memset(b.data(), 'A', 64);
  b.set_size(64);
  Bytes view = std::move(b).freeze();
  CHECK(view[10] == std::byte{'A'});
  view.reset();  // the last view: the buffer returns
  // Reading through a stale pointer (the bug this exposes) sees the poison.
  for (std::size_t i = 0; i < 64; ++i) CHECK(stale[i] == std::byte{daq_pool::debug::poison_byte});
  auto again = pool.acquire();
  CHECK(again.size() == 0);
}

TEST_CASE("zero_on_release zeroes instead of poisoning") {
  daq_pool::BufferPoolOptions o;
  o.zero_on_release = true;
  BufferPool pool(1, 128, o);
  const std::byte *stale = nullptr;
  {
    auto b = pool.acquire();
    stale = b.data();
    std::memset(b.data(), 'A', 128);
    b.set_size(16);
  }  // returned unfrozen
  for (std::size_t i = 0; i < 128; ++i) CHECK(stale[i] == std::byte{0});
}

TEST_CASE(
    "writing past a buffer's capacity is caught by its canary when it "
    "returns") {
  const auto r = in_child([] {
    daq_pool::BufferPoolOptions o;
    o.alignment = 64;
    BufferPool pool(3, 100, o);
    auto keep = pool.acquire();
    auto b = pool.acquire();           // buffer 1
    b.data()[100 + 3] = std::byte{0};  // overrun: a raw write past capacity()
    b.set_size(100);
    Bytes v = std::move(b).freeze();
    v.reset();  // the return: must abort
  });
  INFO(r.err);
  CHECK(r.aborted);
  CHECK(contains(r.err, "buffer 1"));
  CHECK(contains(r.err, "overrun"));
}

TEST_CASE("buffers written exactly up to their capacity pass the canary check") {
  BufferPool pool(2, 100);
  for (int i = 0; i < 4; ++i) {
    auto b = pool.acquire();
    std::memset(b.data(), 0xFF, b.capacity());
    b.set_size(b.capacity());
  }
  CHECK(pool.available() == 2);
}

#else

TEST_CASE("debug checks are off in this build (DAQ_POOL_DEBUG=0)") { SUCCEED(); }

#endif
