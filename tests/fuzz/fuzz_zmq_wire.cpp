// libFuzzer harness for daq_pool/zmq/wire.hpp (issue 22): decode_header on
// arbitrary bytes, checked against an independent reading of the documented
// layout (offsets, little-endian, the order of the checks), and the round
// trip encode(decode(x)) == x for every header it accepts; payload_checksum
// of every kind on arbitrary payloads, checked against a word-by-word
// reading of its definition. Needs no libzmq.
//
// Build and run: see tests/fuzz/CMakeLists.txt (ctest case fuzz_zmq_wire).
#include <daq_pool/zmq/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "fuzz_input.hpp"

namespace {

namespace dz = daq_pool::zmq;

std::uint64_t le(const std::uint8_t* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

/// The checksum as its doc comment defines it, one word at a time.
std::uint32_t model_checksum(const std::uint8_t* p, std::size_t n, dz::Checksum kind) {
  if (kind == dz::Checksum::none || n == 0) return 0;
  const std::size_t words = (n + 7) / 8;
  std::uint64_t a = 0, b = 0;
  const auto add = [&](std::size_t i) {
    const std::size_t at = i * 8;
    a += le(p + at, n - at < 8 ? n - at : 8);
    b += a;
  };
  bool last_taken = false;
  for (std::size_t i = 0; i < words; ++i) {
    if (kind == dz::Checksum::full || i % 512 < 8) {
      add(i);
      last_taken = i == words - 1;
    }
  }
  if (!last_taken) add(words - 1);
  const std::uint64_t c = a ^ (b * 0x9E3779B97F4A7C15ull);
  return static_cast<std::uint32_t>(c ^ (c >> 32));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  dz::WireHeader h;
  const dz::FrameError e = dz::decode_header(bytes, h);
  // The documented order of the checks.
  dz::FrameError expected = dz::FrameError::none;
  if (size < 5) {
    expected = dz::FrameError::header_too_short;
  } else if (std::memcmp(data, "DAQZ", 4) != 0) {
    expected = dz::FrameError::bad_magic;
  } else if (data[4] != 1) {
    expected = dz::FrameError::unsupported_version;
  } else if (size != 32) {
    expected = dz::FrameError::bad_header_size;
  } else if (data[5] > 2) {
    expected = dz::FrameError::unknown_checksum_kind;
  }
  FUZZ_CHECK(e == expected);
  if (e == dz::FrameError::none) {
    FUZZ_CHECK(h.flags == le(data + 6, 2));
    FUZZ_CHECK(h.frame_number == le(data + 8, 8));
    FUZZ_CHECK(h.payload_bytes == le(data + 16, 4));
    FUZZ_CHECK(h.checksum == le(data + 20, 4));
    FUZZ_CHECK(h.timestamp_ns == le(data + 24, 8));
    FUZZ_CHECK(h.end_of_stream() == ((data[6] & 1) != 0));
    FUZZ_CHECK(h.shared_numbering() == ((data[6] & 2) != 0));
    const auto again = dz::encode_header(h);
    FUZZ_CHECK(std::memcmp(again.data(), data, 32) == 0);
  }
  // The input as a payload, under each checksum kind.
  for (const dz::Checksum kind : {dz::Checksum::none, dz::Checksum::sampled, dz::Checksum::full})
    FUZZ_CHECK(dz::payload_checksum(bytes, kind) == model_checksum(data, size, kind));
  return 0;
}
