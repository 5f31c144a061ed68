// Writes a .dqr recording with daq_pool::recording::Recorder, for the Python
// package's tests (python/tests/test_recording.py): frames of pool buffers,
// numbered FIRST, FIRST+1, ... with timestamps 1.7e18 + 1000 * i ns, and
// byte j of frame i equal to (i + j) mod 251 (the test checks every byte).
//
//   py_recorder PATH FRAME_BYTES N [--pause-after=K] [--dtype=<u2 --shape=H,W]
//               [--first=FIRST]
//
// --pause-after=K: after K frames are written (payload and index entry),
// prints "written K" and waits for a line on stdin before the rest (the test
// reads the file while it is being written, or kills this process there).
// Prints a JSON line with the recorder's counters at the end. A PATH ending
// in .h5 is written by daq_pool::hdf5::Hdf5Recorder instead (SWMR, flushed
// after every frame; needs --dtype and --shape; builds with daq_pool::hdf5).
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/recording/recorder.hpp>
#if PY_RECORDER_HAVE_HDF5
#include <daq_pool/hdf5.hpp>
#endif

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

namespace {

bool flag(const char* arg, const char* name, std::string& value) {
  const std::size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  value = arg + n + 1;
  return true;
}

void wait_written(const daq_pool::recording::Recorder& r, std::uint64_t n) {
  for (int i = 0; i < 10000 && r.stats().frames_written + r.stats().frames_lost < n; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: py_recorder PATH FRAME_BYTES N [--pause-after=K] [--dtype=T --shape=H,W] [--first=F]\n");
    return 2;
  }
  const std::string path = argv[1];
  const std::size_t frame_bytes = std::strtoull(argv[2], nullptr, 10);
  const std::uint64_t n = std::strtoull(argv[3], nullptr, 10);
  std::uint64_t pause_after = 0, first = 0;
  daq_pool::recording::RecorderOptions o;
  o.frame_capacity = frame_bytes;
  for (int i = 4; i < argc; ++i) {
    std::string v;
    if (flag(argv[i], "--pause-after", v)) {
      pause_after = std::strtoull(v.c_str(), nullptr, 10);
    } else if (flag(argv[i], "--first", v)) {
      first = std::strtoull(v.c_str(), nullptr, 10);
    } else if (flag(argv[i], "--dtype", v)) {
      o.layout.dtype = v;
    } else if (flag(argv[i], "--shape", v)) {
      const std::size_t comma = v.find(',');
      o.layout.ndim = 2;
      o.layout.shape[0] = std::strtoull(v.substr(0, comma).c_str(), nullptr, 10);
      o.layout.shape[1] = std::strtoull(v.substr(comma + 1).c_str(), nullptr, 10);
    } else {
      std::fprintf(stderr, "py_recorder: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  const auto fill = [](daq_pool::PooledBuffer& b, std::uint64_t i, std::size_t bytes) {
    b.set_size(bytes);
    std::span<std::byte> out = b.get_mut();
    for (std::size_t j = 0; j < bytes; ++j) out[j] = static_cast<std::byte>((i + j) % 251);
  };
  const auto stamp = [](std::uint64_t i) { return 1'700'000'000'000'000'000LL + 1000 * static_cast<std::int64_t>(i); };
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0) {
#if PY_RECORDER_HAVE_HDF5
    try {
      daq_pool::hdf5::Hdf5Options h;
      h.dtype = o.layout.dtype.empty() ? "|u1" : o.layout.dtype;
      h.height = o.layout.shape[0];
      h.width = o.layout.shape[1];
      h.flush_every = 1;
      daq_pool::BufferPool pool(4, frame_bytes);
      daq_pool::hdf5::Hdf5Recorder recorder(path, h);
      for (std::uint64_t i = 0; i < n; ++i) {
        if (pause_after != 0 && i == pause_after) {
          std::cout << "written " << recorder.stats().frames_written << std::endl;
          std::string line;
          std::getline(std::cin, line);
        }
        daq_pool::PooledBuffer b = pool.acquire();
        fill(b, i, frame_bytes);
        recorder.record(std::move(b).freeze(), first + i, stamp(i));
      }
      recorder.close();
      std::cout << "{\"frames_written\":" << recorder.stats().frames_written << "}" << std::endl;
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "py_recorder: %s\n", e.what());
      return 2;
    }
#else
    std::fprintf(stderr, "py_recorder: built without daq_pool::hdf5\n");
    return 2;
#endif
  }
  try {
    daq_pool::BufferPool pool(8, frame_bytes);
    daq_pool::recording::Recorder recorder(path, o);
    for (std::uint64_t i = 0; i < n; ++i) {
      if (pause_after != 0 && i == pause_after) {
        wait_written(recorder, i);
        std::cout << "written " << recorder.stats().frames_written << std::endl;
        std::string line;
        std::getline(std::cin, line);
      }
      std::optional<daq_pool::PooledBuffer> b = pool.try_acquire_for(std::chrono::seconds(10));
      if (!b) {
        std::fprintf(stderr, "py_recorder: no pool buffer within 10 s\n");
        return 1;
      }
      fill(*b, i, frame_bytes);
      recorder.record(std::move(*b).freeze(), first + i, stamp(i));
    }
    recorder.close();
    const auto s = recorder.stats();
    std::cout << "{\"frames_written\":" << s.frames_written << ",\"frames_lost\":" << s.frames_lost
              << ",\"direct_io\":" << (s.direct_io ? "true" : "false") << ",\"block_size\":" << s.block_size << "}"
              << std::endl;
    if (auto e = recorder.error()) {
      std::fprintf(stderr, "py_recorder: %s\n", e->c_str());
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "py_recorder: %s\n", e.what());
    return 2;
  }
  return 0;
}
