#include <daq_pool/daq_pool.hpp>

#include "catch.hpp"

TEST_CASE("a pool lends and takes back") {
  daq_pool::Pool<int> pool(2, [] { return 7; });
  auto a = pool.acquire();
  REQUIRE(*a == 7);
  REQUIRE(pool.available() == 1);
}
