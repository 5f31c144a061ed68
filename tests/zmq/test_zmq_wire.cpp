// The wire format of daq_pool/zmq.hpp: the 32-byte header's exact bytes,
// every way decode_header refuses a part, and the payload checksum against a
// plain reference implementation of its definition (which bytes each kind
// reads, what it catches and what sampling misses by design).
#include <daq_pool/zmq.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "catch.hpp"

namespace dz = daq_pool::zmq;

namespace {

std::vector<std::byte> bytes_of(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> v(n);
  std::uint64_t x = seed;
  for (auto& b : v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<std::byte>(x >> 56);
  }
  return v;
}

/// The checksum's definition, written as literally as the README states it:
/// little-endian words, the last zero-padded; sampled takes word i when
/// i % 512 < 8, then the last word if not taken; a = sum, b = sum of the
/// running a; c = a ^ (b * golden); fold to 32 bits.
std::uint32_t reference_checksum(std::span<const std::byte> p, dz::Checksum kind) {
  if (kind == dz::Checksum::none || p.empty()) return 0;
  const std::size_t m = (p.size() + 7) / 8;
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < m; ++i)
    if (kind == dz::Checksum::full || i % 512 < 8) idx.push_back(i);
  if (kind == dz::Checksum::sampled && idx.back() != m - 1) idx.push_back(m - 1);
  std::uint64_t a = 0, b = 0;
  for (const std::size_t i : idx) {
    std::uint64_t w = 0;
    for (std::size_t k = 0; k < 8 && i * 8 + k < p.size(); ++k)
      w |= std::uint64_t{std::to_integer<std::uint8_t>(p[i * 8 + k])} << (8 * k);
    a += w;
    b += a;
  }
  const std::uint64_t c = a ^ (b * 0x9E3779B97F4A7C15ull);
  return static_cast<std::uint32_t>(c ^ (c >> 32));
}

std::array<std::byte, dz::wire_header_bytes> sample_header_bytes() {
  dz::WireHeader h;
  h.frame_number = 0x0102030405060708ull;
  h.payload_bytes = 0x11223344u;
  h.timestamp_ns = 0xA1A2A3A4A5A6A7A8ull;
  h.checksum_kind = dz::Checksum::full;
  h.checksum = 0xC1C2C3C4u;
  h.flags = dz::flag_end_of_stream;
  return dz::encode_header(h);
}

}  // namespace

TEST_CASE("the header's bytes are the documented little-endian layout") {
  const auto b = sample_header_bytes();
  const unsigned char expected[32] = {'D',  'A',  'Q',  'Z',  1,    2,    1,    0,    0x08, 0x07, 0x06,
                                      0x05, 0x04, 0x03, 0x02, 0x01, 0x44, 0x33, 0x22, 0x11, 0xC4, 0xC3,
                                      0xC2, 0xC1, 0xA8, 0xA7, 0xA6, 0xA5, 0xA4, 0xA3, 0xA2, 0xA1};
  REQUIRE(b.size() == 32);
  CHECK(std::memcmp(b.data(), expected, 32) == 0);
  // Small enough for libzmq to keep inline in the zmq_msg_t (no allocation).
  STATIC_REQUIRE(dz::wire_header_bytes <= 33);
}

TEST_CASE("decode_header reads back every field") {
  const auto b = sample_header_bytes();
  dz::WireHeader h;
  REQUIRE(dz::decode_header(b, h) == dz::FrameError::none);
  CHECK(h.version == 1);
  CHECK(h.frame_number == 0x0102030405060708ull);
  CHECK(h.payload_bytes == 0x11223344u);
  CHECK(h.timestamp_ns == 0xA1A2A3A4A5A6A7A8ull);
  CHECK(h.checksum_kind == dz::Checksum::full);
  CHECK(h.checksum == 0xC1C2C3C4u);
  CHECK(h.end_of_stream());
}

TEST_CASE("decode_header refuses what is not a version-1 header, and says why") {
  auto b = sample_header_bytes();
  dz::WireHeader h;
  std::span<const std::byte> all(b);
  CHECK(dz::decode_header(all.first(0), h) == dz::FrameError::header_too_short);
  CHECK(dz::decode_header(all.first(4), h) == dz::FrameError::header_too_short);
  CHECK(dz::decode_header(all.first(5), h) == dz::FrameError::bad_header_size);
  CHECK(dz::decode_header(all.first(31), h) == dz::FrameError::bad_header_size);
  std::vector<std::byte> longer(b.begin(), b.end());
  longer.push_back(std::byte{0});
  CHECK(dz::decode_header(longer, h) == dz::FrameError::bad_header_size);

  auto bad = b;
  bad[0] = std::byte{'X'};
  CHECK(dz::decode_header(bad, h) == dz::FrameError::bad_magic);
  bad = b;
  bad[4] = std::byte{2};
  CHECK(dz::decode_header(bad, h) == dz::FrameError::unsupported_version);
  CHECK(h.version == 2);
  bad = b;
  bad[5] = std::byte{3};
  CHECK(dz::decode_header(bad, h) == dz::FrameError::unknown_checksum_kind);
  CHECK(h.frame_number == 0x0102030405060708ull);  // what could be read is there

  // Reserved flag bits are ignored, for forward compatibility.
  bad = b;
  bad[7] = std::byte{0x80};
  CHECK(dz::decode_header(bad, h) == dz::FrameError::none);

  for (int e = 0; e <= static_cast<int>(dz::FrameError::bad_end_of_stream); ++e)
    CHECK(std::strlen(dz::to_string(static_cast<dz::FrameError>(e))) > 1);
}

TEST_CASE("payload_checksum matches its definition for every size class") {
  for (const std::size_t n :
       {std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{9}, std::size_t{63}, std::size_t{64},
        std::size_t{65}, std::size_t{4095}, std::size_t{4096}, std::size_t{4097}, std::size_t{4096 + 64},
        std::size_t{4096 + 65}, std::size_t{3 * 4096 - 8}, std::size_t{1 << 20}, std::size_t{(1 << 20) + 13}}) {
    const auto p = bytes_of(n, n);
    for (const auto kind : {dz::Checksum::sampled, dz::Checksum::full}) {
      INFO("size " << n << " kind " << static_cast<int>(kind));
      CHECK(dz::payload_checksum(p, kind) == reference_checksum(p, kind));
    }
  }
  const auto p = bytes_of(100, 1);
  CHECK(dz::payload_checksum(p, dz::Checksum::none) == 0);
  CHECK(dz::payload_checksum({}, dz::Checksum::full) == 0);
  CHECK(dz::payload_checksum({}, dz::Checksum::sampled) == 0);
}

TEST_CASE("full catches any changed byte; sampled catches every page changed, and the last byte") {
  auto p = bytes_of(64 * 1024 + 5, 7);
  const std::uint32_t full = dz::payload_checksum(p, dz::Checksum::full);
  const std::uint32_t sampled = dz::payload_checksum(p, dz::Checksum::sampled);
  for (const std::size_t at : {std::size_t{0}, std::size_t{63}, std::size_t{64}, std::size_t{5000}, p.size() - 1}) {
    INFO("flipped byte " << at);
    p[at] ^= std::byte{0x01};
    CHECK(dz::payload_checksum(p, dz::Checksum::full) != full);
    const bool in_sample = (at / 8) % 512 < 8 || at / 8 == (p.size() - 1) / 8;
    CHECK((dz::payload_checksum(p, dz::Checksum::sampled) != sampled) == in_sample);
    p[at] ^= std::byte{0x01};
  }
  // Two payloads (e.g. another frame in a reused buffer) differ everywhere.
  const auto other = bytes_of(p.size(), 8);
  CHECK(dz::payload_checksum(other, dz::Checksum::sampled) != sampled);
  // Order matters: swapping two sampled words changes it.
  auto swapped = p;
  std::swap_ranges(swapped.begin(), swapped.begin() + 8, swapped.begin() + 8);
  CHECK(dz::payload_checksum(swapped, dz::Checksum::sampled) != sampled);
}

TEST_CASE("a payload above the 32-bit size field is refused with the limit named") {
  CHECK_NOTHROW(dz::detail::check_payload_size(dz::max_payload_bytes));
  try {
    dz::detail::check_payload_size(dz::max_payload_bytes + 1);
    FAIL("no exception");
  } catch (const std::length_error& e) {
    const std::string what = e.what();
    CHECK(what.find("4294967296 bytes") != std::string::npos);
    CHECK(what.find("limit of 4294967295") != std::string::npos);
  }
}
