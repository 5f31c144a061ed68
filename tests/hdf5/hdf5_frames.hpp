// The frames the HDF5 tests record: uint16 pixels, pixel i of frame f equal
// to (f * 1000 + i) % 65536, which tests/hdf5/read_h5.py checks.
#pragma once

#include <daq_pool/buffer_pool.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace test_support {

/// A frame of `pixels` uint16 pixels from `pool` (whose buffers hold at
/// least 2 * pixels bytes), filled for frame `f`. Blocks until a buffer is
/// free.
inline daq_pool::Bytes u16_frame(daq_pool::BufferPool& pool, std::uint64_t f, std::size_t pixels) {
  auto b = pool.acquire();
  auto* px = reinterpret_cast<std::uint16_t*>(b.data());
  for (std::size_t i = 0; i < pixels; ++i) px[i] = static_cast<std::uint16_t>((f * 1000 + i) % 65536);
  b.set_size(pixels * 2);
  return std::move(b).freeze();
}

}  // namespace test_support
