// The BufferPool example of docs/buffers.md: copy a frame out of a (fake) camera SDK
// buffer into a pre-allocated pooled buffer, freeze it into a shared view,
// hand copies of the view to consumer threads, and let the last one return
// the buffer. Then what to do when the pool runs dry: block, time out, drop
// the frame, or fall back to the heap.
#include <daq_pool/daq_pool.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// What a consumer computes from a frame (stands in for disk, preview, analysis).
std::uint64_t checksum(const daq_pool::Bytes& frame) {
  std::uint64_t sum = 0;
  for (std::byte b : frame) sum += std::to_integer<std::uint8_t>(b);
  return sum;
}

// Choice 4, heap fallback: a pooled frame if a buffer is free right now, else a
// heap copy. Consumers get a Bytes either way; only the fallback allocates.
daq_pool::Bytes pooled_or_heap(daq_pool::BufferPool& pool, std::span<const std::byte> sdk_frame) {
  if (std::optional<daq_pool::PooledBuffer> buffer = pool.try_acquire()) {
    buffer->copy_from(sdk_frame);
    return std::move(*buffer).freeze();
  }
  return daq_pool::Bytes::copy_from(sdk_frame);
}

}  // namespace

int main() {
  constexpr std::size_t frame_bytes = 1 << 20;

  // 4 buffers of 1 MiB: allocated, page-aligned and prefaulted once, here.
  daq_pool::BufferPool pool(4, frame_bytes);

  // Stands in for the camera SDK's ring buffer slot holding the newest frame.
  std::vector<std::uint8_t> sdk_ring(frame_bytes, 1);

  // Camera thread: copy the frame out of the SDK ring, then freeze it. No
  // allocation from here to the last drop.
  daq_pool::PooledBuffer buffer = pool.acquire();  // blocks while none is free
  buffer.copy_from_ptr(sdk_ring.data(), sdk_ring.size());
  daq_pool::Bytes frame = std::move(buffer).freeze();  // zero-copy; `buffer` is now empty

  // Fan out: every consumer holds its own view (copying one is an atomic
  // increment); a slice shares the same buffer.
  daq_pool::Bytes for_disk = frame;
  daq_pool::Bytes for_preview = frame.slice(0, 4096);
  std::printf("frame of %zu bytes, %zu views, %zu of %zu buffers free\n", frame.size(), frame.use_count(),
              pool.available(), pool.size());
  std::uint64_t written = 0, previewed = 0;
  std::thread disk_writer([view = std::move(for_disk), &written] { written = checksum(view); });
  std::thread preview([view = std::move(for_preview), &previewed] { previewed = checksum(view); });
  frame.reset();  // the camera's own view
  disk_writer.join();
  preview.join();
  // The last view, dropped on whichever consumer finished last, returned the buffer.
  std::printf("written %llu, previewed %llu, %zu of %zu buffers free\n", static_cast<unsigned long long>(written),
              static_cast<unsigned long long>(previewed), pool.available(), pool.size());
  bool ok = written == frame_bytes && previewed == 4096 && pool.available() == pool.size();

  // When every buffer is held by slow consumers, the camera has four choices.
  std::vector<daq_pool::Bytes> slow_consumers;
  while (std::optional<daq_pool::PooledBuffer> b = pool.try_acquire()) slow_consumers.push_back(std::move(*b).freeze());

  // 1. Block: acquire() waits until a view somewhere is dropped.
  std::thread release_one([&slow_consumers] {
    std::this_thread::sleep_for(10ms);
    slow_consumers.pop_back();
  });
  daq_pool::PooledBuffer waited = pool.acquire();
  release_one.join();
  std::printf("1. block:    got a buffer once a consumer let go\n");

  // 2. Time out: never wait longer than the SDK ring keeps the frame.
  std::optional<daq_pool::PooledBuffer> timed = pool.try_acquire_for(5ms);
  std::printf("2. time out: %s\n", timed ? "got a buffer" : "no buffer within 5 ms");

  // 3. Drop: skip this frame and count it.
  std::size_t dropped = 0;
  if (std::optional<daq_pool::PooledBuffer> now = pool.try_acquire()) {
    now->copy_from_ptr(sdk_ring.data(), sdk_ring.size());
  } else {
    ++dropped;
  }
  std::printf("3. drop:     %zu frame dropped\n", dropped);

  // 4. Heap fallback: same Bytes type for the consumers, one allocation.
  const auto* raw = reinterpret_cast<const std::byte*>(sdk_ring.data());
  daq_pool::Bytes fallback = pooled_or_heap(pool, std::span<const std::byte>(raw, sdk_ring.size()));
  std::printf("4. fallback: %zu bytes, pooled: %s\n", fallback.size(), fallback.is_pooled() ? "yes" : "no");

  ok = ok && !timed && dropped == 1 && !fallback.is_pooled() && checksum(fallback) == frame_bytes;

  const daq_pool::BufferPoolStats st = pool.stats();
  std::printf("acquires %llu, misses %llu, high water %zu, %zu bytes reserved\n",
              static_cast<unsigned long long>(st.acquires), static_cast<unsigned long long>(st.misses), st.high_water,
              st.bytes_reserved);
  return ok ? 0 : 1;
}
