// DAQ_POOL_DEBUG=0 (issue 6): the debug checks cost nothing when off — no
// outstanding(), no location parameters — and the pools work as usual.
#if defined(DAQ_POOL_DEBUG)
#undef DAQ_POOL_DEBUG
#endif
#define DAQ_POOL_DEBUG 0

#include <daq_pool/daq_pool.hpp>

#include <cstring>

#include "catch.hpp"

namespace {
template <class P>
concept has_outstanding = requires(const P& p) {
  p.outstanding();
};
}  // namespace

static_assert(!has_outstanding<daq_pool::Pool<int>>, "outstanding() exists only in debug builds");
static_assert(!has_outstanding<daq_pool::BufferPool>, "outstanding() exists only in debug builds");
static_assert(daq_pool::debug::canary_bytes == 0, "no canary space when the checks are off");

TEST_CASE("with DAQ_POOL_DEBUG=0 pools work and nothing is poisoned") {
  daq_pool::Pool<int> pool(2, [] { return 1; });
  { auto l = pool.acquire(); }
  pool.close();
  CHECK(pool.available() == 2);

  daq_pool::BufferPool buffers(1, 64);
  const std::byte* stale = nullptr;
  {
    auto b = buffers.acquire();
    stale = b.data();
    std::memset(b.data(), 'A', 64);
    b.set_size(64);
  }
  // Not poisoned: the returned bytes are left as they were (the release
  // build's promise is only that size() is 0 on the next acquire).
  CHECK(stale[0] == std::byte{'A'});
  CHECK(buffers.stats().bytes_reserved == 4096);
}
