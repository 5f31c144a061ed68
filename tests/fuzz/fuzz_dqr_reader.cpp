// libFuzzer harness for the .dqr reader (daq_pool/recording/dqr_reader.hpp,
// issue 21): a file the fuzzer shapes, in a memfd, opened by DqrReader
// through its file-descriptor constructor (the same scan and reads as a path
// would get). The first input byte picks the shape:
//  - raw: the rest of the input is the whole file (garbage, foreign headers,
//    short files);
//  - structured: a valid header (capacity from the input), then records
//    whose entries are valid, zero, mutated after encoding, or raw bytes,
//    payload sizes and the file's final length from the input.
// Every input must end in a format_error / out_of_range / a clean read: no
// crash, no sanitizer report, no other exception; every listed frame reads
// back within its record and the file.
//
// Build and run: see tests/fuzz/CMakeLists.txt (ctest case fuzz_dqr_reader).
#include <daq_pool/recording/dqr_reader.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "fuzz_input.hpp"

namespace {

namespace dqr = daq_pool::recording::dqr;

std::vector<std::byte> structured(fuzz::Input& in) {
  dqr::FileHeader h;
  h.alignment = 4096;
  h.frame_capacity = 1 + in.u16() % 20000;
  h.record_stride = dqr::stride_for(h.frame_capacity, h.alignment);
  h.file_id = in.u16();
  h.layout.ndim = static_cast<std::uint32_t>(in.below(6));  // 5: invalid
  std::vector<std::byte> file(h.alignment);
  dqr::encode_header(h, std::span<std::byte, dqr::kHeaderBytes>(file.data(), dqr::kHeaderBytes));
  const std::size_t records = in.below(6);
  for (std::size_t r = 0; r < records && !in.done(); ++r) {
    const std::uint64_t at = h.record_offset(r);
    file.resize(static_cast<std::size_t>(at + h.record_stride));
    dqr::IndexEntry e;
    e.record = r;
    e.frame_number = in.byte();
    e.payload_offset = h.payload_offset(r);
    e.payload_size = in.u16() % (h.frame_capacity + 2);
    e.file_id = h.file_id;
    std::byte* entry = file.data() + at;
    switch (in.below(5)) {
      case 0:  // a hole
        break;
      case 1:  // raw bytes
        for (std::size_t k = 0; k < dqr::kEntryBytes; ++k) entry[k] = static_cast<std::byte>(in.byte());
        break;
      case 2: {  // valid, then one byte changed
        dqr::encode_entry(e, std::span<std::byte, dqr::kEntryBytes>(entry, dqr::kEntryBytes));
        entry[in.below(dqr::kEntryBytes)] ^= static_cast<std::byte>(1 + in.below(255));
        break;
      }
      case 3:  // valid but for one field, re-checksummed
        e.record = in.below(3) == 0 ? r + 1 : r;
        e.payload_offset += in.below(3) == 0 ? 4096 : 0;
        e.file_id += in.below(3) == 0 ? 1 : 0;
        [[fallthrough]];
      default:
        dqr::encode_entry(e, std::span<std::byte, dqr::kEntryBytes>(entry, dqr::kEntryBytes));
        break;
    }
  }
  // The file's final length: as built, or cut anywhere.
  if (in.below(2) == 0 && !file.empty()) file.resize(static_cast<std::size_t>(in.u16()) * 7 % file.size());
  if (in.below(4) == 0 && file.size() > 20) file[in.below(160)] ^= std::byte{1};  // header damage
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::vector<std::byte> file;
  if (in.below(2) == 0) {
    file.assign(reinterpret_cast<const std::byte*>(data), reinterpret_cast<const std::byte*>(data) + size);
  } else {
    file = structured(in);
  }
  const int fd = ::memfd_create("fuzz_dqr", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  std::size_t done = 0;
  while (done < file.size()) {
    const ssize_t n = ::write(fd, file.data() + done, file.size() - done);
    FUZZ_CHECK(n > 0);
    done += static_cast<std::size_t>(n);
  }
  for (bool lenient : {false, true}) {
    try {
      daq_pool::recording::DqrReader r(fd, "fuzz.dqr", daq_pool::recording::DqrReaderOptions{lenient});
      for (std::size_t i = 0; i < r.size(); ++i) {
        const auto& e = r.index()[i];
        FUZZ_CHECK(e.payload_size <= r.header().frame_capacity);
        FUZZ_CHECK(e.payload_offset + e.payload_size <= file.size());
        const std::vector<std::byte> v = r.read(i);
        FUZZ_CHECK(v.empty() || std::memcmp(v.data(), file.data() + e.payload_offset, v.size()) == 0);
      }
    } catch (const daq_pool::recording::format_error& e) {
      FUZZ_CHECK(std::strstr(e.what(), "fuzz.dqr: offset ") == e.what());
    }
  }
  ::close(fd);
  return 0;
}
