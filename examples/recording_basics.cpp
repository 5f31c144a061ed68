// Recording frames to disk (docs/recording.md): a BufferPool sized for the
// recorder, frames written with O_DIRECT into a .dqr file, the counters
// checked, then the file read back with DqrReader. Writes a few MiB under
// $TMPDIR (or /var/tmp) and removes it.
#include <daq_pool/buffer_pool.hpp>

#if defined(__linux__)
#include <daq_pool/recording/dqr_reader.hpp>
#include <daq_pool/recording/recorder.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main() {
  const char* tmp = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe): read before any thread starts
  const std::string path =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/var/tmp") + "/recording_basics_" + std::to_string(::getpid()) + ".dqr";

  // --8<-- [start:record]
  constexpr std::size_t height = 512;
  constexpr std::size_t width = 1024;
  constexpr std::size_t frame_bytes = height * width * 2;  // Mono16

  daq_pool::recording::RecorderOptions options;
  options.frame_capacity = frame_bytes;
  options.queue_depth = 4;  // frames in flight: the recorder holds up to 4 buffers
  options.layout.dtype = "<u2";
  options.layout.ndim = 2;
  options.layout.shape = {height, width, 0, 0};
  options.layout.pixel_format = "Mono16";

  // The pool: the recorder's queue_depth buffers plus the camera's own.
  daq_pool::BufferPool pool(options.queue_depth + 2, frame_bytes);
  daq_pool::recording::Recorder recorder(path, options);
  for (std::uint64_t n = 0; n < 20; ++n) {
    daq_pool::PooledBuffer frame = pool.acquire();  // waits while the disk is behind
    std::memset(frame.data(), static_cast<int>(n), frame_bytes);  // the camera's DMA
    frame.set_size(frame_bytes);
    recorder.record(std::move(frame).freeze());  // frame number n, timestamp now
  }
  recorder.close();  // waits for the writes in flight, fdatasyncs
  const daq_pool::recording::RecorderStats st = recorder.stats();
  std::printf("%llu frames, %llu bytes, %llu lost, O_DIRECT %s\n", static_cast<unsigned long long>(st.frames_written),
              static_cast<unsigned long long>(st.bytes_written), static_cast<unsigned long long>(st.frames_lost),
              st.direct_io ? "yes" : recorder.fallback_reason().c_str());
  // --8<-- [end:record]

  // --8<-- [start:read]
  daq_pool::recording::DqrReader reader(path);
  std::vector<std::byte> pixels(reader.header().frame_capacity);
  for (std::size_t i = 0; i < reader.size(); ++i) {
    reader.read(i, pixels);  // frame reader.index()[i].frame_number
  }
  std::printf("%zu frames read back, %llu holes\n", reader.size(), static_cast<unsigned long long>(reader.holes()));
  // --8<-- [end:read]
  ::unlink(path.c_str());
  return st.frames_written == 20 && st.frames_lost == 0 && reader.size() == 20 && pixels[0] == std::byte{19} ? 0 : 1;
}
#else
int main() { return 0; }  // the recorder is Linux only (O_DIRECT, statx)
#endif
