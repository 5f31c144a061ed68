// Test helpers for .dqr files: a temporary directory removed at exit, a
// hand-made file built from the format header alone (independent of the
// recorder), and the frame content pattern the recording tests verify.
#pragma once

#include <daq_pool/recording/dqr_format.hpp>

#include "temp_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace test_support {

/// Byte i of frame `frame`: every frame differs, and so does every byte.
inline std::byte pattern(std::uint64_t frame, std::size_t i) noexcept {
  return static_cast<std::byte>((frame * 131 + i * 7 + (i >> 9) + (i >> 17)) & 0xFF);
}

/// A .dqr image built in memory from dqr_format.hpp alone.
struct DqrImage {
  daq_pool::recording::dqr::FileHeader header;
  std::vector<std::byte> bytes;

  explicit DqrImage(std::uint64_t capacity, std::uint32_t alignment = 4096) {
    namespace dqr = daq_pool::recording::dqr;
    header.alignment = alignment;
    header.frame_capacity = capacity;
    header.record_stride = dqr::stride_for(capacity, alignment);
    header.created_ns = 1'700'000'000'000'000'000;
    header.file_id = 0x1234'5678'9abc'def0ULL;
    header.layout.dtype = "|u1";
    header.layout.ndim = 1;
    header.layout.shape[0] = capacity;
    bytes.assign(alignment, std::byte{0});
    dqr::encode_header(header, std::span<std::byte, dqr::kHeaderBytes>(bytes.data(), dqr::kHeaderBytes));
  }

  /// Appends record `record` (grows the image to hold it) with frame `frame`
  /// of `size` pattern bytes; `commit` false leaves its entry zero (a hole).
  void put(std::uint64_t record, std::uint64_t frame, std::size_t size, bool commit = true) {
    namespace dqr = daq_pool::recording::dqr;
    const std::uint64_t at = header.record_offset(record);
    const std::uint64_t end = at + header.alignment + dqr::round_up(size, header.alignment);
    if (bytes.size() < end) bytes.resize(static_cast<std::size_t>(end), std::byte{0});
    for (std::size_t i = 0; i < size; ++i) bytes[static_cast<std::size_t>(at + header.alignment + i)] = pattern(frame, i);
    if (!commit) return;
    dqr::IndexEntry e;
    e.record = record;
    e.frame_number = frame;
    e.timestamp_ns = static_cast<std::int64_t>(frame * 1000);
    e.payload_offset = header.payload_offset(record);
    e.payload_size = size;
    e.file_id = header.file_id;
    dqr::encode_entry(e, std::span<std::byte, dqr::kEntryBytes>(bytes.data() + at, dqr::kEntryBytes));
  }

  /// Writes the image to `path`. Returns false on failure.
  bool write(const std::string& path) const {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return done == bytes.size();
  }
};

}  // namespace test_support
