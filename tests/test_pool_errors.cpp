// Bad construction arguments and throwing factories: the constructor reports
// the argument at fault and leaks nothing.
#include <daq_pool/daq_pool.hpp>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "catch.hpp"
#include "tracked.hpp"

using daq_pool::Pool;
using daq_pool::PoolOptions;
using test_support::Tracked;

namespace {

// The message of the std::invalid_argument thrown by `make`, or "" if it
// threw nothing (then the CHECK on the message fails too).
template <class Make>
std::string invalid_argument_message(Make make) {
  try {
    make();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("size 0 is rejected, naming size") {
  REQUIRE_THROWS_AS(Pool<int>(0, [] { return 0; }), std::invalid_argument);
  const auto msg = invalid_argument_message([] { Pool<int>(0, [] { return 0; }); });
  INFO(msg);
  CHECK(contains(msg, "size"));
}

TEST_CASE("an empty factory is rejected, naming factory") {
  REQUIRE_THROWS_AS(Pool<int>(1, std::function<int()>{}), std::invalid_argument);
  REQUIRE_THROWS_AS(Pool<int>(1, nullptr), std::invalid_argument);
  const auto msg = invalid_argument_message([] { Pool<int>(4, std::function<int()>{}, {}, PoolOptions{8}); });
  INFO(msg);
  CHECK(contains(msg, "factory"));
}

TEST_CASE("max_size below size is rejected, naming max_size") {
  REQUIRE_THROWS_AS(Pool<int>(
                        4, [] { return 0; }, {}, PoolOptions{3}),
                    std::invalid_argument);
  const auto msg = invalid_argument_message([] {
    Pool<int>(
        4, [] { return 0; }, {}, PoolOptions{1});
  });
  INFO(msg);
  CHECK(contains(msg, "max_size"));
  // 0 (never grows) and == size (no room to grow) are both valid.
  REQUIRE_NOTHROW(Pool<int>(
      4, [] { return 0; }, {}, PoolOptions{0}));
  REQUIRE_NOTHROW(Pool<int>(
      4, [] { return 0; }, {}, PoolOptions{4}));
}

TEST_CASE("sizes above Pool<T>::max_slots are rejected before anything is built") {
  int calls = 0;
  const auto factory = [&calls] {
    ++calls;
    return 0;
  };
  constexpr std::size_t too_many = Pool<int>::max_slots + 1;
  REQUIRE_THROWS_AS(Pool<int>(too_many, factory), std::invalid_argument);
  auto msg = invalid_argument_message([&] { Pool<int>(too_many, factory); });
  INFO(msg);
  CHECK(contains(msg, "size"));
  CHECK(contains(msg, std::to_string(too_many)));

  REQUIRE_THROWS_AS(Pool<int>(1, factory, {}, PoolOptions{too_many}), std::invalid_argument);
  msg = invalid_argument_message([&] { Pool<int>(1, factory, {}, PoolOptions{too_many}); });
  INFO(msg);
  CHECK(contains(msg, "max_size"));

  REQUIRE_THROWS_AS(Pool<int>(static_cast<std::size_t>(-1), factory), std::invalid_argument);
  CHECK(calls == 0);  // validation comes first: nothing was built
}

TEST_CASE("the argument checks come in a useful order") {
  // Several faults at once: each is reported, none is silently accepted.
  REQUIRE_THROWS_AS(Pool<int>(0, nullptr), std::invalid_argument);
  REQUIRE_THROWS_AS(Pool<int>(
                        0, [] { return 0; }, {}, PoolOptions{5}),
                    std::invalid_argument);
}

TEST_CASE("a factory throwing during construction propagates and leaks nothing") {
  Tracked::reset_counters();
  for (int fail_at : {0, 1, 5, 31, 32, 40}) {
    INFO("factory throws on call " << fail_at);
    int calls = 0;
    const auto factory = [&calls, fail_at] {
      if (calls++ == fail_at) throw std::runtime_error("factory failed");
      return Tracked(calls);
    };
    REQUIRE_THROWS_WITH(Pool<Tracked>(48, factory), "factory failed");
    CHECK(calls == fail_at + 1);
    // Every item built before the failure was destroyed, exactly once
    // (Tracked aborts on a double destruction; ASan reports leaked storage).
    CHECK(Tracked::alive() == 0);
  }
  CHECK(Tracked::constructions.load() == Tracked::destructions.load());
  CHECK(Tracked::constructions.load() > 0);
}

TEST_CASE("a factory that throws with growth options also leaks nothing") {
  Tracked::reset_counters();
  int calls = 0;
  const auto factory = [&calls] {
    if (++calls == 3) throw std::logic_error("third one");
    return Tracked(calls);
  };
  REQUIRE_THROWS_AS(Pool<Tracked>(
                        4, factory, [](Tracked&) {}, PoolOptions{100}),
                    std::logic_error);
  CHECK(Tracked::alive() == 0);
}

TEST_CASE("a factory throwing in grow() propagates; the slots made so far stay") {
  Tracked::reset_counters();
  {
    int calls = 0;
    int fail_at = 1000;
    Pool<Tracked> pool(
        2,
        [&] {
          if (++calls == fail_at) throw std::runtime_error("grow failed");
          return Tracked(calls);
        },
        {}, PoolOptions{10});
    fail_at = calls + 3;  // the third item grown fails
    REQUIRE_THROWS_WITH(pool.grow(5), "grow failed");
    CHECK(pool.size() == 4);
    CHECK(pool.available() == 4);
    CHECK(pool.stats().grows == 2);
    // acquire_or_grow propagates the factory's exception too.
    std::vector<daq_pool::Loaned<Tracked>> all;
    for (int i = 0; i < 4; ++i) all.push_back(pool.acquire());
    fail_at = calls + 1;
    REQUIRE_THROWS_WITH(pool.acquire_or_grow(), "grow failed");
    CHECK(pool.size() == 4);
    all.clear();
    CHECK(pool.available() == 4);
    // After the failures, growth still works.
    auto extra = pool.acquire_or_grow();
    REQUIRE(extra);
    CHECK(pool.grow(100) == 6);
    CHECK(pool.size() == 10);
    CHECK(Tracked::alive() == 10);
  }
  CHECK(Tracked::alive() == 0);
}
