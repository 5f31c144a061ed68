// The README's Pool<T> example: pre-built frame buffers lent out without
// locks or allocation.
#include <daq_pool/daq_pool.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
  using Frame = std::vector<std::uint8_t>;
  constexpr std::size_t frame_bytes = 1 << 20;

  // 8 frames built once; every returned frame is zeroed on the returning thread.
  daq_pool::Pool<Frame> pool(
      8, [] { return Frame(frame_bytes); }, [](Frame& f) { std::fill(f.begin(), f.end(), 0); });

  {
    daq_pool::Loaned<Frame> frame = pool.acquire();  // blocks if none is free
    (*frame)[0] = 42;                                // plain pointer access, no lock
    std::printf("slot %zu, %zu of %zu free\n", frame.slot_index(), pool.available(), pool.size());
  }  // returned (and zeroed) here

  // Camera-style: never wait longer than the SDK's ring buffer allows.
  if (auto frame = pool.try_acquire_for(std::chrono::milliseconds(50))) {
    std::printf("got slot %zu, first byte %d\n", frame->slot_index(), (*frame)->at(0));
  } else {
    std::printf("pool exhausted: drop or fall back\n");
  }

  const daq_pool::PoolStats st = pool.stats();
  std::printf("acquires %llu, releases %llu, high water %zu\n", static_cast<unsigned long long>(st.acquires),
              static_cast<unsigned long long>(st.releases), st.high_water);
  return st.acquires == st.releases ? 0 : 1;
}
