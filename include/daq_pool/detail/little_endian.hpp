// Little-endian loads and stores of unsigned integers: the one helper every
// wire and file format of daq-pool uses (ZeroMQ frames, shared-memory
// messages, recordings), so that a format's byte order is written down once.
// No system library: a format header that includes only this can be read by
// someone implementing it in another language.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// Writes `value` at `at` as sizeof(T) little-endian bytes. `at` needs no
/// alignment. Never allocates.
template <std::unsigned_integral T>
inline void store_le(std::byte* at, T value) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(at, &value, sizeof(T));  // one store: memory order is the wire's
  } else {
    for (std::size_t i = 0; i < sizeof(T); ++i) at[i] = static_cast<std::byte>((value >> (8 * i)) & 0xFFu);
  }
}

/// Reads sizeof(T) little-endian bytes at `at`. `at` needs no alignment.
/// Never allocates.
template <std::unsigned_integral T>
[[nodiscard]] inline T load_le(const std::byte* at) noexcept {
  T value = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&value, at, sizeof(T));
  } else {
    for (std::size_t i = 0; i < sizeof(T); ++i)
      value = static_cast<T>(value | (static_cast<T>(std::to_integer<std::uint8_t>(at[i])) << (8 * i)));
  }
  return value;
}

/// Reads the first `n` (0..8) little-endian bytes at `at` as the low bytes of
/// a 64-bit value (the rest zero): a trailing partial word of a payload.
/// Never allocates.
[[nodiscard]] inline std::uint64_t load_le_partial(const std::byte* at, std::size_t n) noexcept {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < n && i < 8; ++i)
    value |= std::uint64_t{std::to_integer<std::uint8_t>(at[i])} << (8 * i);
  return value;
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
