// The .dqr container (daq_pool/recording/dqr_format.hpp) and its C++ reader:
// the header and entries round-trip byte for byte at the documented offsets,
// the CRC is zlib's, a hand-made file reads back frame by frame (holes and a
// cut tail included), and every kind of bad file gives a format_error naming
// the file and the offset.
#include <daq_pool/recording/dqr_reader.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "catch.hpp"
#include "dqr_files.hpp"

namespace dqr = daq_pool::recording::dqr;
using daq_pool::recording::DqrReader;
using daq_pool::recording::DqrReaderOptions;
using daq_pool::recording::format_error;
using test_support::DqrImage;
using test_support::TempDir;

namespace {

std::uint64_t le(const std::vector<std::byte>& b, std::size_t at, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= std::to_integer<std::uint64_t>(b[at + i]) << (8 * i);
  return v;
}

/// The message of the format_error `body` throws (empty if none).
template <class F>
std::string error_of(F body, std::uint64_t* offset = nullptr) {
  try {
    body();
  } catch (const format_error& e) {
    if (offset != nullptr) *offset = e.offset();
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("crc32 is zlib's CRC-32") {
  const char* text = "123456789";
  CHECK(dqr::crc32({reinterpret_cast<const std::byte*>(text), 9}) == 0xCBF43926u);
  CHECK(dqr::crc32({}) == 0u);
}

TEST_CASE("the header sits at its documented offsets") {
  DqrImage img(1000);
  img.header.layout.dtype = "<u2";
  img.header.layout.ndim = 2;
  img.header.layout.shape = {20, 25, 0, 0};
  img.header.layout.pixel_format = "Mono16";
  img.header.flags = dqr::kFlagDurableIndex;
  std::vector<std::byte> b(dqr::kHeaderBytes);
  dqr::encode_header(img.header, std::span<std::byte, dqr::kHeaderBytes>(b.data(), dqr::kHeaderBytes));
  CHECK(std::memcmp(b.data(), "DQR\0\r\n\x1a\n", 8) == 0);
  CHECK(le(b, 8, 2) == 1);
  CHECK(le(b, 10, 2) == 0);
  CHECK(le(b, 12, 4) == 160);
  CHECK(le(b, 16, 4) == 4096);
  CHECK(le(b, 20, 4) == 64);
  CHECK(le(b, 24, 8) == 4096 + 4096);
  CHECK(le(b, 32, 8) == 1000);
  CHECK(le(b, 40, 8) == 1'700'000'000'000'000'000ULL);
  CHECK(le(b, 48, 8) == 0x1234'5678'9abc'def0ULL);
  CHECK(std::memcmp(b.data() + 56, "<u2\0\0\0\0\0", 8) == 0);
  CHECK(le(b, 64, 4) == 2);
  CHECK(le(b, 68, 4) == dqr::kFlagDurableIndex);
  CHECK(le(b, 72, 8) == 20);
  CHECK(le(b, 80, 8) == 25);
  CHECK(le(b, 88, 8) == 0);
  CHECK(std::memcmp(b.data() + 104, "Mono16\0", 7) == 0);
  CHECK(le(b, 156, 4) == dqr::crc32({b.data(), 156}));

  dqr::HeaderProblem p;
  auto back = dqr::decode_header(b, p);
  REQUIRE(back);
  CHECK(back->layout.dtype == "<u2");
  CHECK(back->layout.pixel_format == "Mono16");
  CHECK(back->layout.shape[1] == 25);
  CHECK(back->record_stride == 8192);
  CHECK(back->payload_offset(2) == 4096 + 2 * 8192 + 4096);
}

TEST_CASE("an entry sits at its documented offsets") {
  dqr::IndexEntry e;
  e.record = 3;
  e.frame_number = 77;
  e.timestamp_ns = -5;
  e.payload_offset = 123456;
  e.payload_size = 999;
  e.file_id = 42;
  std::vector<std::byte> b(dqr::kEntryBytes);
  dqr::encode_entry(e, std::span<std::byte, dqr::kEntryBytes>(b.data(), dqr::kEntryBytes));
  CHECK(std::memcmp(b.data(), "DQRF", 4) == 0);
  CHECK(le(b, 8, 8) == 3);
  CHECK(le(b, 16, 8) == 77);
  CHECK(le(b, 24, 8) == static_cast<std::uint64_t>(-5));
  CHECK(le(b, 32, 8) == 123456);
  CHECK(le(b, 40, 8) == 999);
  CHECK(le(b, 48, 8) == 42);
  CHECK(le(b, 60, 4) == dqr::crc32({b.data(), 60}));
}

TEST_CASE("a hand-made file reads back: frames, holes, a cut tail") {
  TempDir dir("dqr_format");
  DqrImage img(10000);
  img.put(0, 100, 10000);
  img.put(1, 101, 1);
  img.put(2, 102, 5000, false);  // started, never committed: a hole
  img.put(3, 103, 8192);
  img.put(4, 104, 3000, false);  // the last record, uncommitted
  img.bytes.resize(img.bytes.size() - 100);  // and the file cut inside it
  const std::string path = dir.file("a.dqr");
  REQUIRE(img.write(path));

  DqrReader r(path);
  REQUIRE(r.size() == 3);
  CHECK(r.holes() == 1);
  CHECK(r.header().layout.dtype == "|u1");
  const std::uint64_t frames[] = {100, 101, 103};
  const std::size_t sizes[] = {10000, 1, 8192};
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(r.index()[i].frame_number == frames[i]);
    CHECK(r.index()[i].timestamp_ns == static_cast<std::int64_t>(frames[i] * 1000));
    const std::vector<std::byte> v = r.read(i);
    REQUIRE(v.size() == sizes[i]);
    bool same = true;
    for (std::size_t k = 0; k < v.size(); ++k) same = same && v[k] == test_support::pattern(frames[i], k);
    CHECK(same);
  }
  CHECK_THROWS_AS(r.read(3), std::out_of_range);
}

TEST_CASE("bad files: a clear error naming the file and the offset") {
  TempDir dir("dqr_bad");
  const std::string path = dir.file("bad.dqr");
  std::uint64_t offset = 999;

  SECTION("garbage") {
    std::vector<std::byte> junk(5000, std::byte{0x5a});
    DqrImage img(100);
    img.bytes = junk;
    REQUIRE(img.write(path));
    const std::string msg = error_of([&] { DqrReader r(path); }, &offset);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("not a .dqr file") != std::string::npos);
    CHECK(offset == 0);
  }
  SECTION("too short") {
    DqrImage img(100);
    img.bytes.resize(20);
    REQUIRE(img.write(path));
    CHECK(error_of([&] { DqrReader r(path); }).find("too short") != std::string::npos);
  }
  SECTION("a foreign header (an HDF5 signature)") {
    DqrImage img(100);
    const char sig[] = "\x89HDF\r\n\x1a\n";
    std::memcpy(img.bytes.data(), sig, 8);
    REQUIRE(img.write(path));
    CHECK(error_of([&] { DqrReader r(path); }).find("bad magic") != std::string::npos);
  }
  SECTION("a damaged header") {
    DqrImage img(100);
    img.bytes[33] ^= std::byte{1};
    REQUIRE(img.write(path));
    CHECK(error_of([&] { DqrReader r(path); }, &offset).find("checksum") != std::string::npos);
    CHECK(offset == 156);
  }
  SECTION("another major version") {
    DqrImage img(100);
    img.header.version_major = 2;
    dqr::encode_header(img.header, std::span<std::byte, dqr::kHeaderBytes>(img.bytes.data(), dqr::kHeaderBytes));
    REQUIRE(img.write(path));
    CHECK(error_of([&] { DqrReader r(path); }, &offset).find("version 2.0") != std::string::npos);
    CHECK(offset == 8);
  }
  SECTION("a frame truncated by the end of the file") {
    DqrImage img(10000);
    img.put(0, 1, 10000);
    img.put(1, 2, 10000);
    img.bytes.resize(img.bytes.size() - 3000);
    REQUIRE(img.write(path));
    const std::string msg = error_of([&] { DqrReader r(path); }, &offset);
    CHECK(msg.find("truncated") != std::string::npos);
    CHECK(offset == img.header.payload_offset(1));
  }
  SECTION("an entry pointing past its record / the end") {
    DqrImage img(10000);
    img.put(0, 1, 100);
    dqr::IndexEntry e{0, 1, 0, img.header.payload_offset(0), 1u << 30, img.header.file_id};
    dqr::encode_entry(e, std::span<std::byte, dqr::kEntryBytes>(img.bytes.data() + 4096, dqr::kEntryBytes));
    REQUIRE(img.write(path));
    const std::string msg = error_of([&] { DqrReader r(path); }, &offset);
    CHECK(msg.find("outside its record") != std::string::npos);
    CHECK(offset == 4096);
  }
  SECTION("a damaged entry: thrown, or skipped and counted") {
    DqrImage img(100);
    img.put(0, 1, 100);
    img.put(1, 2, 100);
    img.put(2, 3, 100);
    img.bytes[static_cast<std::size_t>(img.header.record_offset(1)) + 20] ^= std::byte{4};
    REQUIRE(img.write(path));
    const std::string msg = error_of([&] { DqrReader r(path); }, &offset);
    CHECK(msg.find("checksum") != std::string::npos);
    CHECK(offset == img.header.record_offset(1));
    DqrReader lenient(path, DqrReaderOptions{true});
    CHECK(lenient.size() == 2);
    CHECK(lenient.damaged_entries() == 1);
  }
  SECTION("an entry of another recording") {
    DqrImage img(100);
    img.put(0, 1, 100);
    DqrImage other(100);
    other.header.file_id = 7;
    other.put(0, 1, 100);
    std::memcpy(img.bytes.data() + 4096, other.bytes.data() + 4096, 64);
    REQUIRE(img.write(path));
    CHECK(error_of([&] { DqrReader r(path); }).find("another recording") != std::string::npos);
  }
  SECTION("a missing file") { CHECK_THROWS_AS(DqrReader(dir.file("none.dqr")), std::system_error); }
}
